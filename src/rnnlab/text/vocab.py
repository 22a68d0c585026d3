"""The vocabulary: token <-> id, with corpus counts, in a deterministic order.

Order: the special tokens first (in the order given), then every other token by count,
descending, ties broken by first occurrence in the corpus. The same corpus always gives the
same ids. Tokens below `min_count` or beyond `max_size` are dropped; when `<unk>` is in the
vocabulary its count includes the occurrences of the tokens it stands for, so the counts still
add up to the corpus size.

Files: `.json` holds {"format": "rnnlab-vocab", "version": 1, "tokens": [...], "counts": [...],
"specials": [...]} in UTF-8 (no escapes); any other name holds text, one "token<TAB>count" per
line (word2vec.c's `-save-vocab` "token count" lines load too).
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np

from rnnlab.errors import RnnlabError
from rnnlab.fileio import atomic_write
from rnnlab.formats import check_format

UNK, BOS, EOS = "<unk>", "<s>", "</s>"
SPECIALS = (UNK, BOS, EOS)
FORMAT, VERSION = "rnnlab-vocab", 1
FEW_TOKENS = 5  # what a suggested min_count keeps at least, when the text has that many


def _refuse_min_count(counter: Counter[str], specials: set[str], min_count: int) -> None:
    """Raise RnnlabError: every token is rarer than min_count; suggest one that keeps a few."""
    counts = sorted((c for t, c in counter.items() if t not in specials), reverse=True)
    if not counts:  # nothing but specials: no min_count would help
        return
    suggest = counts[min(len(counts), FEW_TOKENS) - 1]
    kept = sum(c >= suggest for c in counts)
    raise RnnlabError(f"no token occurs min_count={min_count} times: the text has "
                      f"{len(counts):,} distinct tokens, seen at most {counts[0]:,} times; "
                      f"lower min_count (--min-count {suggest} keeps {kept:,} tokens)")


class Vocabulary:
    """Tokens `itos`, ids `stoi`, counts (int64, aligned with itos) and the special tokens.

    `Vocabulary.build(sentences, ...)` counts a corpus; `Vocabulary(itos, counts, specials)`
    takes the tokens as given and prepends nothing: `specials` only says which of them are
    special. `vocab[token]` is the id, `<unk>`'s id for an unknown token when the vocabulary
    has `<unk>`, else a KeyError.
    """

    def __init__(
        self,
        itos: Sequence[str],
        counts: Sequence[int] | np.ndarray | None = None,
        specials: Sequence[str] = SPECIALS,
    ) -> None:
        self.itos = list(itos)
        self.stoi = {t: i for i, t in enumerate(self.itos)}
        if len(self.stoi) != len(self.itos):
            dup = next(t for i, t in enumerate(self.itos) if self.stoi[t] != i)
            raise RnnlabError(f"duplicate token {dup!r} in vocabulary")
        counts = np.zeros(len(self.itos)) if counts is None else np.asarray(counts)
        if counts.shape != (len(self.itos),):
            raise RnnlabError(f"{len(counts)} counts for {len(self.itos)} tokens")
        # Counts past int64 (a damaged file) would wrap around or overflow in astype below.
        if counts.size and not (
            np.issubdtype(counts.dtype, np.number)
            and 0 <= counts.min()
            and counts.max() <= np.iinfo(np.int64).max
            and np.all(counts == np.floor(counts))
        ):
            raise RnnlabError("vocabulary counts must be non-negative integers below 2**63")
        self.counts = counts.astype(np.int64)
        self.specials = tuple(t for t in specials if t in self.stoi)

    @classmethod
    def build(
        cls,
        sentences: Iterable[Sequence[str]],
        min_count: int = 1,
        max_size: int | None = None,
        specials: Sequence[str] = SPECIALS,
    ) -> Vocabulary:
        """Count tokens in one pass; keep specials, then tokens by count (ties: first seen).

        `max_size` bounds the whole vocabulary, specials included.
        """
        if max_size is not None and max_size < len(specials):
            raise RnnlabError(f"max_size {max_size} leaves no room for the {len(specials)} specials")
        counter: Counter[str] = Counter()
        for sentence in sentences:
            counter.update(sentence)  # a dict, so iteration order is first occurrence
        special_set = set(specials)
        ranked = sorted(
            ((t, c) for t, c in counter.items() if c >= min_count and t not in special_set),
            key=lambda tc: -tc[1],  # sorted() is stable: equal counts keep first-seen order
        )
        if not ranked and min_count > 1:
            _refuse_min_count(counter, special_set, min_count)
        if max_size is not None:
            ranked = ranked[: max_size - len(specials)]
        itos = [*specials, *(t for t, _ in ranked)]
        counts = [counter.get(t, 0) for t in specials] + [c for _, c in ranked]
        vocab = cls(itos, counts, specials)
        if UNK in special_set:  # a corpus's own literal "<unk>" word keeps its own count
            vocab.counts[vocab.stoi[UNK]] += sum(counter.values()) - sum(counts)
        return vocab

    def __len__(self) -> int:
        return len(self.itos)

    def __contains__(self, token: object) -> bool:
        return token in self.stoi

    def __iter__(self) -> Iterator[str]:
        return iter(self.itos)

    def __getitem__(self, token: str) -> int:
        i = self.stoi.get(token, self.unk_id)
        if i is None:
            raise KeyError(token)
        return i

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Vocabulary)
            and self.itos == other.itos
            and self.specials == other.specials
            and np.array_equal(self.counts, other.counts)
        )

    def __repr__(self) -> str:
        return f"Vocabulary({len(self)} tokens, specials={list(self.specials)})"

    @property
    def unk_id(self) -> int | None:
        """Id of `<unk>`, or None when the vocabulary has none (then unknown tokens raise)."""
        return self.stoi.get(UNK)

    @property
    def bos_id(self) -> int | None:
        """Id of `<s>`, or None."""
        return self.stoi.get(BOS)

    @property
    def eos_id(self) -> int | None:
        """Id of `</s>`, or None."""
        return self.stoi.get(EOS)

    def encode(self, tokens: Iterable[str]) -> list[int]:
        """Token ids; unknown tokens map to `<unk>` (KeyError when there is none)."""
        return [self[t] for t in tokens]

    def decode(self, ids: Iterable[int]) -> list[str]:
        """Tokens for ids."""
        return [self.itos[i] for i in ids]

    def save(self, path: str | os.PathLike) -> None:
        """Write UTF-8 JSON (`.json`) or text lines "token<TAB>count" (any other name)."""
        path = Path(path)
        if path.suffix == ".json":
            doc = {
                "format": FORMAT,
                "version": VERSION,
                "tokens": self.itos,
                "counts": self.counts.tolist(),
                "specials": list(self.specials),
            }
            with atomic_write(path, "w") as f:
                json.dump(doc, f, ensure_ascii=False)
            return
        bad = next((t for t in self.itos if t == "" or any(c in t for c in "\t\n\r")), None)
        if bad is not None:
            raise RnnlabError(f"token {bad!r} cannot be stored in a text vocabulary; use .json")
        with atomic_write(path, "w") as f:
            f.writelines(f"{t}\t{c}\n" for t, c in zip(self.itos, self.counts.tolist()))

    @classmethod
    def load(cls, path: str | os.PathLike) -> Vocabulary:
        """Read a vocabulary written by `save` (JSON or text), checking it thoroughly."""
        path = Path(path)
        if not path.is_file():
            raise RnnlabError(f"{path}: no such vocabulary file")
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as e:
            raise RnnlabError(f"{path}: not UTF-8 (byte offset {e.start})") from None
        if path.suffix == ".json":
            return cls._from_json(path, text)
        if not text.strip():
            raise RnnlabError(f"{path}: empty vocabulary file")
        itos, counts = [], []
        # split("\n"), not splitlines(): tokens may contain U+2028 and other line separators.
        for n, line in enumerate(text.removesuffix("\n").split("\n"), 1):
            line = line.removesuffix("\r")
            sep = "\t" if "\t" in line else " "
            token, _, count = line.rpartition(sep)
            if not _ or not count.isdigit():
                raise RnnlabError(f"{path}, line {n}: expected 'token<TAB>count', got {line!r}")
            itos.append(token)
            counts.append(int(count))
        try:
            return cls(itos, counts)
        except RnnlabError as e:
            raise RnnlabError(f"{path}: {e}") from None

    @classmethod
    def _from_json(cls, path: Path, text: str) -> Vocabulary:
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as e:
            raise RnnlabError(f"{path}: invalid JSON ({e.msg}, line {e.lineno})") from None
        check_format(doc, path, FORMAT, VERSION, "vocabulary")
        tokens, counts, specials = doc.get("tokens"), doc.get("counts"), doc.get("specials", [])
        if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
            raise RnnlabError(f"{path}: 'tokens' must be a list of strings")
        if not isinstance(counts, list) or not all(
            isinstance(c, int) and not isinstance(c, bool) for c in counts
        ):
            raise RnnlabError(f"{path}: 'counts' must be a list of integers")
        if not isinstance(specials, list) or not all(s in tokens for s in specials):
            raise RnnlabError(f"{path}: 'specials' must list tokens of the vocabulary")
        try:
            return cls(tokens, counts, specials)
        except RnnlabError as e:
            raise RnnlabError(f"{path}: {e}") from None
