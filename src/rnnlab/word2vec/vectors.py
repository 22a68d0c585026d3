"""WordVectors: a look-up table word -> vector, with the queries gensim's KeyedVectors offers.

Rows are in vocabulary order (most frequent first, as trainers and word2vec files store them),
so `restrict_vocab=N` means "only the N most frequent words". Similarity is the cosine,
computed on a unit-normalised copy of the matrix that is built once and cached.

Analogies use 3CosAdd (Mikolov et al. 2013), as gensim's `most_similar` does: "a is to b as
c is to ?" is answered by the word d that maximises cos(d, b - a + c), over unit vectors,
leaving out a, b and c themselves; king - man + woman ≈ queen.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence

import numpy as np

from rnnlab.errors import RnnlabError
from rnnlab.text.vocab import Vocabulary
from rnnlab.word2vec import formats

Query = str | np.ndarray | tuple[str, float]


class UnknownWordError(RnnlabError, KeyError):
    """A word that is not in the vocabulary; a KeyError as in gensim, and a user error."""

    def __str__(self) -> str:
        return str(self.args[0])


def unit_rows(x: np.ndarray) -> np.ndarray:
    """Rows divided by their L2 norm; all-zero rows stay zero."""
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.where(norms > 0, norms, 1.0)


class WordVectors:
    """Word vectors: `index_to_key`, `key_to_index`, `vectors` (float32, n x dim), `counts`."""

    def __init__(
        self,
        words: Sequence[str],
        vectors: np.ndarray,
        counts: Sequence[int] | np.ndarray | None = None,
    ) -> None:
        self.index_to_key = list(words)
        self.key_to_index = {w: i for i, w in enumerate(self.index_to_key)}
        if len(self.key_to_index) != len(self.index_to_key):
            dup = next(w for i, w in enumerate(self.index_to_key) if self.key_to_index[w] != i)
            first = self.index_to_key.index(dup)
            raise RnnlabError(
                f"duplicate word {dup!r} (entries {first + 1} and {self.key_to_index[dup] + 1})"
            )
        # A float32 np.memmap passes through without a copy.
        self.vectors = np.asarray(vectors, dtype=np.float32)
        if self.vectors.ndim != 2 or self.vectors.shape[0] != len(self.index_to_key):
            raise RnnlabError(f"vectors of shape {self.vectors.shape} for {len(self.index_to_key)} words")
        self.counts = None if counts is None else np.asarray(counts, dtype=np.int64)
        if self.counts is not None and self.counts.shape != (len(self.index_to_key),):
            raise RnnlabError(f"{self.counts.shape} counts for {len(self.index_to_key)} words")
        self._normed: np.ndarray | None = None

    # -- look-up ---------------------------------------------------------------------------

    @property
    def vector_size(self) -> int:
        """The dimension of every vector."""
        return self.vectors.shape[1]

    def __len__(self) -> int:
        return len(self.index_to_key)

    def __contains__(self, word: object) -> bool:
        return word in self.key_to_index

    def __getitem__(self, word: str | Iterable[str]) -> np.ndarray:
        if isinstance(word, str):
            return self.vectors[self.get_index(word)]
        return self.vectors[[self.get_index(w) for w in word]]

    def __repr__(self) -> str:
        return f"WordVectors({len(self)} words, dim {self.vector_size})"

    def has_index_for(self, word: str) -> bool:
        """True when `word` has a vector (gensim's name for `in`)."""
        return word in self.key_to_index

    def get_index(self, word: str) -> int:
        """The row of `word`; UnknownWordError (a KeyError and RnnlabError) when it has none."""
        i = self.key_to_index.get(word)
        if i is None:
            hint = next((v for v in (word.lower(), word.capitalize()) if v in self), None)
            hint = f"; did you mean {hint!r}?" if hint else ""
            raise UnknownWordError(f"word {word!r} is not in the vocabulary ({len(self)} words){hint}")
        return i

    def get_vector(self, word: str, norm: bool = False) -> np.ndarray:
        """The vector of `word`, or its unit-length version with `norm=True`."""
        i = self.get_index(word)
        return self.get_normed_vectors()[i] if norm else self.vectors[i]

    def get_vecattr(self, word: str, attr: str) -> int:
        """A per-word attribute as in gensim: "count" (corpus frequency) or "index"."""
        i = self.get_index(word)
        if attr == "index":
            return i
        if attr != "count":
            raise RnnlabError(f"unknown word attribute {attr!r}; use 'count' or 'index'")
        if self.counts is None:
            raise RnnlabError("these vectors carry no counts (word2vec files store none)")
        return int(self.counts[i])

    def vocabulary(self, limit: int | None = None) -> list[tuple[str, int | None]]:
        """(word, count) pairs in row order (count None when unknown), the first `limit`."""
        words = self.index_to_key[:limit]
        counts = [None] * len(words) if self.counts is None else self.counts[:limit].tolist()
        return list(zip(words, counts))

    # -- similarity ------------------------------------------------------------------------

    def get_normed_vectors(self) -> np.ndarray:
        """The unit-normalised matrix, computed on first use and cached."""
        if self._normed is None:
            self._normed = unit_rows(self.vectors).astype(np.float32, copy=False)
        return self._normed

    def fill_norms(self, force: bool = False) -> None:
        """(Re)compute the cached unit vectors; call with `force=True` after editing `vectors`."""
        if force:
            self._normed = None
        self.get_normed_vectors()

    def similarity(self, a: str, b: str) -> float:
        """Cosine similarity of two words."""
        return float(self.get_vector(a, norm=True) @ self.get_vector(b, norm=True))

    def distance(self, a: str, b: str) -> float:
        """Cosine distance, 1 - similarity."""
        return 1.0 - self.similarity(a, b)

    def most_similar(
        self,
        positive: Query | Sequence[Query] | None = None,
        negative: Query | Sequence[Query] | None = None,
        topn: int | None = 10,
        restrict_vocab: int | None = None,
    ) -> list[tuple[str, float]] | np.ndarray:
        """Words nearest to the mean of unit(positive) - unit(negative) (3CosAdd), as gensim.

        Entries are words, (word, weight) pairs or raw vectors; input words are left out of
        the answer. `restrict_vocab=N` searches the first N rows only. With `topn=None` the
        cosine of every candidate row is returned instead.
        """
        positive = _as_list(positive)
        negative = _as_list(negative)
        if not positive and not negative:
            raise RnnlabError("most_similar needs at least one positive or negative word")
        terms, exclude = [], set()
        for sign, items in ((1.0, positive), (-1.0, negative)):
            for item in items:
                item, weight = item if isinstance(item, tuple) else (item, 1.0)
                if isinstance(item, str):
                    exclude.add(self.get_index(item))
                    vector = self.get_vector(item, norm=True)
                else:  # a raw vector is used as given, as gensim does
                    vector = np.asarray(item, dtype=np.float32)
                terms.append(sign * weight * vector)
        mean = np.mean(terms, axis=0)
        # Loading drops such rows, but vectors built in Python or a raw query may still hold them.
        if not np.isfinite(mean).all():
            raise RnnlabError("the query holds NaN or infinite values, so it has no nearest words")
        return self._nearest(unit_rows(mean), topn, restrict_vocab, exclude)

    def similar_by_vector(
        self, vector: np.ndarray, topn: int = 10, restrict_vocab: int | None = None
    ) -> list[tuple[str, float]]:
        """The `topn` words whose vectors have the highest cosine with `vector`."""
        return self.most_similar([np.asarray(vector)], topn=topn, restrict_vocab=restrict_vocab)

    def similar_by_word(
        self, word: str, topn: int = 10, restrict_vocab: int | None = None
    ) -> list[tuple[str, float]]:
        """The `topn` nearest neighbours of `word`, itself left out."""
        return self.most_similar([word], topn=topn, restrict_vocab=restrict_vocab)

    def analogy(
        self, a: str, b: str, c: str, topn: int = 1, restrict_vocab: int | None = None
    ) -> list[tuple[str, float]]:
        """a is to b as c is to ?: the best `topn` words d for b - a + c (3CosAdd).

        `analogy("man", "king", "woman")[0][0]` is "queen" in good vectors.
        """
        return self.most_similar([b, c], [a], topn=topn, restrict_vocab=restrict_vocab)

    def doesnt_match(self, words: Sequence[str]) -> str:
        """The word furthest (by cosine) from the mean of the unit vectors of all `words`."""
        if len(words) < 2:
            raise RnnlabError("doesnt_match needs at least two words")
        unit = self.get_normed_vectors()[[self.get_index(w) for w in words]]
        scores = unit @ unit_rows(unit.mean(axis=0))
        return words[int(np.argmin(scores))]

    def _nearest(
        self,
        query: np.ndarray,
        topn: int | None,
        restrict_vocab: int | None,
        exclude: set[int],
    ) -> list[tuple[str, float]] | np.ndarray:
        """Top rows by cosine with the unit vector `query`, rows in `exclude` left out."""
        scores = self.get_normed_vectors()[:restrict_vocab] @ query
        if topn is None:
            return scores
        k = min(topn + len(exclude), len(scores))
        if k <= 0:
            return []
        # Partial sort of the k best, then a stable sort (of ascending ids) so ties go to the
        # more frequent word.
        best = np.sort(np.argpartition(-scores, k - 1)[:k])
        best = best[np.argsort(-scores[best], kind="stable")]
        # A row with NaN or infinity (possible only in vectors built in Python) has no cosine.
        found = [(self.index_to_key[i], float(scores[i])) for i in best
                 if i not in exclude and not np.isnan(scores[i])]
        return found[:topn]

    def pca(self, words: Sequence[str], normalize: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """2-D coordinates of `words` on their first two principal axes, and the variance share.

        Unit vectors by default, the geometry cosine similarity sees (raw vectors mostly spread
        along their length, i.e. word frequency). Centre the rows X, take the SVD X = U S V^T;
        the coordinates are X V[:, :2] and axis k explains S_k^2 / sum(S^2) of the variance.
        """
        if len(words) < 2:
            raise RnnlabError("a PCA map needs at least two words")
        x = self[list(words)].astype(np.float64)
        if normalize:
            x = unit_rows(x)
        x -= x.mean(axis=0)
        _, s, vt = np.linalg.svd(x, full_matrices=False)
        coords = x @ vt[:2].T
        if coords.shape[1] < 2:
            coords = np.pad(coords, ((0, 0), (0, 2 - coords.shape[1])))
        share = s[:2] ** 2 / max(float(np.sum(s**2)), 1e-30)
        return coords, np.pad(share, (0, 2 - len(share)))

    def tsne(self, words: Sequence[str], perplexity: float = 30.0, seed: int = 0,
             iterations: int = 750) -> np.ndarray:
        """2-D t-SNE coordinates of the unit vectors of `words` (exact; see word2vec.tsne)."""
        from rnnlab.word2vec.tsne import tsne

        if len(words) < 2:
            raise RnnlabError("a t-SNE map needs at least two words")
        x = unit_rows(self[list(words)].astype(np.float64))
        return tsne(x, perplexity=perplexity, iterations=iterations, seed=seed)

    # -- files -----------------------------------------------------------------------------

    @classmethod
    def load(
        cls,
        path: str | os.PathLike,
        format: str | None = None,
        limit: int | None = None,
        mmap: bool = False,
        errors: str = "strict",
        vocab_path: str | os.PathLike | None = None,
        on_warning: Callable[[str], None] | None = None,
    ) -> WordVectors:
        """Load vectors, choosing the format from the path when `format` is None.

        A folder is a native model folder; .bin is word2vec binary; .txt/.vec is word2vec text
        when the first line is a "COUNT DIM" header and GloVe text when it is not (.gz allowed
        after any of these). `limit` keeps the first (most frequent) words, `mmap` maps a
        native folder's matrix read-only instead of reading it, `errors="replace"` accepts
        words that are not valid UTF-8, `vocab_path` reads counts from a vocabulary file
        ("word count" lines, as word2vec.c's -save-vocab and gensim's fvocab write them).
        Words whose vector holds NaN or infinity are left out, and `on_warning` gets one line
        saying which ("PATH: N of M words have NaN or infinite values and are left out: ...").
        """
        words, matrix, counts = formats.read_vectors(path, format, limit, mmap, errors, on_warning)
        try:
            vectors = cls(words, matrix, counts)
        except RnnlabError as e:
            raise RnnlabError(f"{path}: {e}") from None
        if vocab_path is not None:
            vectors.counts = _counts_from(vocab_path, vectors.index_to_key)
        return vectors

    def save(
        self,
        path: str | os.PathLike,
        format: str | None = None,
        precision: int = 6,
        vocab_path: str | os.PathLike | None = None,
    ) -> None:
        """Save by name: .bin binary, .txt/.vec text with header, no suffix a native folder.

        Text keeps `precision` significant digits (9 reproduces float32 exactly). `vocab_path`
        also writes the counts as "word<TAB>count" lines, which gensim reads as `fvocab`.
        """
        formats.write_vectors(path, self.index_to_key, self.vectors, self.counts, format, precision)
        if vocab_path is not None:
            if self.counts is None:
                raise RnnlabError("these vectors carry no counts to write to a vocabulary file")
            Vocabulary(self.index_to_key, self.counts, specials=()).save(vocab_path)


def _as_list(items: Query | Sequence[Query] | None) -> list[Query]:
    if items is None:
        return []
    if isinstance(items, (str, np.ndarray)):
        return [items]
    return list(items)


def _counts_from(path: str | os.PathLike, words: list[str]) -> np.ndarray:
    """Counts for `words` from a vocabulary file; every word must be listed."""
    vocab = Vocabulary.load(path)
    missing = next((w for w in words if w not in vocab.stoi), None)
    if missing is not None:
        raise RnnlabError(f"{path}: word {missing!r} of the vectors is not in this vocabulary")
    return vocab.counts[[vocab.stoi[w] for w in words]]
