"""How good are word vectors: analogy accuracy, correlation with human similarity, a 2-D map.

`evaluate_analogies` reads Mikolov's questions-words.txt (": section" lines, then "a b c d"
lines meaning a : b = c : d) and answers each question by 3CosAdd over the `restrict_vocab`
most frequent words, the input words left out, exactly as gensim's
`evaluate_word_analogies` does; questions with a word outside those N are skipped and
counted (the OOV share). All questions are answered at once in batches of matrix products.

`evaluate_similarity` reads word pairs with human scores (WordSim-353, SimLex-999: "w1 w2
score" lines, tab-separated, "#" comments) and reports Spearman's rank correlation (ties get
their average rank) and Pearson's correlation between the human scores and the cosines.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rnnlab.errors import RnnlabError
from rnnlab.fileio import atomic_write
from rnnlab.outputs import plot_format
from rnnlab.text.corpus import read_lines
from rnnlab.word2vec.vectors import WordVectors, unit_rows


@dataclass
class SectionScore:
    """Analogy results of one section: questions answered and answered correctly."""

    name: str
    correct: int = 0
    total: int = 0

    @property
    def accuracy(self) -> float:
        """Share of answered questions that were right (nan when none was answered)."""
        return self.correct / self.total if self.total else float("nan")


@dataclass
class AnalogyResult:
    """Per-section and total analogy accuracy, and the questions skipped for unknown words."""

    sections: list[SectionScore] = field(default_factory=list)
    questions: int = 0
    oov: int = 0

    @property
    def correct(self) -> int:
        """Questions answered correctly, all sections."""
        return sum(s.correct for s in self.sections)

    @property
    def total(self) -> int:
        """Questions answered (all words known), all sections."""
        return sum(s.total for s in self.sections)

    @property
    def accuracy(self) -> float:
        """Total accuracy over the answered questions."""
        return self.correct / self.total if self.total else float("nan")

    @property
    def oov_share(self) -> float:
        """Share of all questions skipped because a word was unknown."""
        return self.oov / self.questions if self.questions else float("nan")

    def summary(self) -> str:
        """A small table: one line per section, then the total and the OOV share."""
        lines = [f"{s.name:<32} {s.correct:>6}/{s.total:<6} {s.accuracy:7.2%}" for s in self.sections]
        lines.append(f"{'total':<32} {self.correct:>6}/{self.total:<6} {self.accuracy:7.2%}")
        lines.append(f"skipped (unknown words): {self.oov}/{self.questions} = {self.oov_share:.1%}")
        return "\n".join(lines)


@dataclass
class SimilarityResult:
    """Correlation of cosine similarity with human scores, and the pairs skipped."""

    spearman: float
    pearson: float
    pairs: int
    oov: int

    @property
    def oov_share(self) -> float:
        """Share of all pairs skipped because a word was unknown."""
        total = self.pairs + self.oov
        return self.oov / total if total else float("nan")

    def summary(self) -> str:
        """One line: Spearman, Pearson, pairs used and skipped."""
        return (
            f"spearman {self.spearman:.4f}  pearson {self.pearson:.4f}  pairs {self.pairs}  "
            f"skipped {self.oov} ({self.oov_share:.1%})"
        )


def _known_words(wv: WordVectors, restrict_vocab: int, case_insensitive: bool) -> dict[str, int]:
    """Word -> row among the first `restrict_vocab` rows; upper-cased keys map to the most
    frequent spelling (the first row) when `case_insensitive`."""
    known: dict[str, int] = {}
    for i, word in enumerate(wv.index_to_key[:restrict_vocab]):
        known.setdefault(word.upper() if case_insensitive else word, i)
    return known


def read_analogies(path: str | os.PathLike) -> list[tuple[str, list[tuple[str, str, str, str]]]]:
    """The sections of an analogy file: (name, [(a, b, c, d), ...])."""
    sections: list[tuple[str, list[tuple[str, str, str, str]]]] = []
    for n, line in enumerate(read_lines(path), 1):
        if line.startswith(":"):
            sections.append((line[1:].strip(), []))
            continue
        words = line.split()
        if not words:
            continue
        if len(words) != 4:
            raise RnnlabError(f"{path}, line {n}: expected 4 words 'a b c d', got {len(words)}")
        if not sections:
            raise RnnlabError(f"{path}, line {n}: question before the first ': section' line")
        sections[-1][1].append(tuple(words))
    return sections


def evaluate_analogies(
    wv: WordVectors,
    path: str | os.PathLike,
    restrict_vocab: int = 30000,
    case_insensitive: bool = True,
    batch_size: int = 256,
    progress: Callable[[int], None] | None = None,
) -> AnalogyResult:
    """Accuracy of 3CosAdd on an analogy file, per section and in total (as gensim scores it);
    `progress` hears how many questions have been answered so far."""
    known = _known_words(wv, restrict_vocab, case_insensitive)
    unit = wv.get_normed_vectors()[:restrict_vocab]
    # canon[i]: the row that stands for row i's (case-folded) word; a prediction of any
    # spelling of an input word is left out, as gensim leaves it out.
    canon = np.array([known[w.upper() if case_insensitive else w] for w in wv.index_to_key[:restrict_vocab]])
    variants = np.flatnonzero(canon != np.arange(len(canon)))
    result = AnalogyResult()
    for name, questions in read_analogies(path):
        section = SectionScore(name)
        result.sections.append(section)
        rows = []
        for q in questions:
            key = [w.upper() for w in q] if case_insensitive else q
            if all(w in known for w in key):
                rows.append([known[w] for w in key])
        result.questions += len(questions)
        result.oov += len(questions) - len(rows)
        ids = np.array(rows, dtype=np.int64).reshape(-1, 4)
        for start in range(0, len(ids), batch_size):
            a, b, c, d = ids[start : start + batch_size].T
            scores = unit_rows(unit[b] + unit[c] - unit[a]) @ unit.T
            r = np.arange(len(a))
            scores[r, a] = scores[r, b] = scores[r, c] = -np.inf
            if len(variants):
                v = canon[variants]
                drop = (v == a[:, None]) | (v == b[:, None]) | (v == c[:, None])
                scores[:, variants] = np.where(drop, -np.inf, scores[:, variants])
            section.correct += int(np.sum(canon[np.argmax(scores, axis=1)] == d))
            section.total += len(a)
            if progress:
                progress(result.total)
    return result


def rank_average(x: np.ndarray) -> np.ndarray:
    """Ranks 1..n of `x`, tied values sharing the average of their ranks."""
    x = np.asarray(x)
    order = np.argsort(x, kind="stable")
    sorted_x = x[order]
    # Each run of equal values spans sorted positions [first, last]; its rank is their mean + 1.
    new_run = np.r_[True, sorted_x[1:] != sorted_x[:-1]]
    run = np.cumsum(new_run) - 1
    starts = np.flatnonzero(new_run)
    ends = np.r_[starts[1:], len(x)] - 1
    ranks = np.empty(len(x))
    ranks[order] = (starts[run] + ends[run]) / 2 + 1
    return ranks


def pearson(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson's r = cov(x, y) / (std(x) std(y))."""
    x = np.asarray(x, dtype=np.float64) - np.mean(x)
    y = np.asarray(y, dtype=np.float64) - np.mean(y)
    denom = np.sqrt(np.sum(x * x) * np.sum(y * y))
    return float(np.sum(x * y) / denom) if denom > 0 else float("nan")


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman's rho: Pearson's r of the (tie-averaged) ranks."""
    return pearson(rank_average(x), rank_average(y))


def read_word_pairs(path: str | os.PathLike) -> list[tuple[str, str, float]]:
    """(w1, w2, score) from a word-pair file: tab- or space-separated, '#' comments."""
    pairs = []
    for n, line in enumerate(read_lines(path), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        fields = line.split("\t") if "\t" in line else line.split()
        try:
            pairs.append((fields[0].strip(), fields[1].strip(), float(fields[2])))
        except (IndexError, ValueError):
            raise RnnlabError(f"{path}, line {n}: expected 'word1<TAB>word2<TAB>score'") from None
    if not pairs:
        raise RnnlabError(f"{path}: no word pairs")
    return pairs


def evaluate_similarity(
    wv: WordVectors,
    path: str | os.PathLike,
    restrict_vocab: int = 300000,
    case_insensitive: bool = True,
) -> SimilarityResult:
    """Spearman and Pearson correlation of cosine similarity with a file's human scores."""
    known = _known_words(wv, restrict_vocab, case_insensitive)
    unit = wv.get_normed_vectors()
    human, model, oov = [], [], 0
    for w1, w2, score in read_word_pairs(path):
        if case_insensitive:
            w1, w2 = w1.upper(), w2.upper()
        if w1 not in known or w2 not in known:
            oov += 1
            continue
        human.append(score)
        model.append(float(unit[known[w1]] @ unit[known[w2]]))
    if len(human) < 2:
        raise RnnlabError(f"{path}: fewer than two pairs with both words known")
    return SimilarityResult(spearman(human, model), pearson(human, model), len(human), oov)


def plot_word_map(
    wv: WordVectors, words: Sequence[str], path: str | os.PathLike, title: str | None = None
) -> None:
    """Save a picture (png, svg or pdf, by the name) of `words` on the first two principal axes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    coords, share = wv.pca(words)
    fig, ax = plt.subplots(figsize=(7, 6))
    ax.scatter(coords[:, 0], coords[:, 1], s=20, color="tab:blue")
    for (x, y), word in zip(coords, words):
        ax.annotate(word, (x, y), xytext=(4, 4), textcoords="offset points", fontsize=11)
    ax.set_xlabel(f"PC 1 ({share[0]:.0%} of variance)")
    ax.set_ylabel(f"PC 2 ({share[1]:.0%} of variance)")
    ax.set_title(title or f"{len(words)} word vectors, PCA")
    ax.axhline(0, color="0.85", lw=0.8, zorder=0)
    ax.axvline(0, color="0.85", lw=0.8, zorder=0)
    fig.tight_layout()
    with atomic_write(Path(path), "wb") as f:
        fig.savefig(f, format=plot_format(path), dpi=120)
    plt.close(fig)
