"""Interpolated Kneser–Ney bigram model: the count-based baseline an LSTM has to beat.

With c(v, w) the bigram counts, D the absolute discount and N1+ the number of distinct
neighbours (Chen & Goodman 1998):

    P(w | v)  = max(c(v, w) − D, 0) / c(v) + λ(v) · P_cont(w),   λ(v) = D · N1+(v •) / c(v)
    P_cont(w) = max(N1+(• w) − D₁, 0) / N1+(• •) + D₁ · N1+(types) / N1+(• •) · 1/V

P_cont counts in how many different contexts w appeared, not how often ("Francisco" is
frequent but follows only "San"). It is itself interpolated with the uniform distribution
so that every word of the vocabulary, seen or not, gets a probability above zero. A context
never seen in training falls back to P_cont. D = n1 / (n1 + 2 n2), from the numbers of
bigrams seen once and twice (Ney et al. 1994), and likewise D₁ from the continuation counts.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from rnnlab.errors import RnnlabError


def _discount(counts: np.ndarray) -> float:
    """Ney's estimate n1 / (n1 + 2 n2), kept inside (0, 1) for tiny corpora."""
    n1, n2 = np.count_nonzero(counts == 1), np.count_nonzero(counts == 2)
    if n1 == 0:
        return 0.5
    return float(min(max(n1 / (n1 + 2 * n2), 0.05), 0.95))


class KneserNeyBigram:
    """Interpolated Kneser–Ney bigram model over token ids 0..vocab_size-1."""

    def __init__(self, vocab_size: int) -> None:
        if vocab_size < 1:
            raise RnnlabError(f"vocab_size must be positive, got {vocab_size}")
        self.V = vocab_size
        self.fitted = False

    def fit(self, ids: Sequence[int] | np.ndarray) -> KneserNeyBigram:
        """Count the bigrams of one token stream (consecutive ids) and set the discounts."""
        ids = np.asarray(ids, dtype=np.int64)
        if ids.ndim != 1 or len(ids) < 2:
            raise RnnlabError("Kneser-Ney needs a stream of at least two token ids")
        if ids.min() < 0 or ids.max() >= self.V:
            raise RnnlabError(f"token ids must lie in [0, {self.V}), got {ids.min()}..{ids.max()}")
        V = self.V
        # Each bigram (v, w) as one integer key v·V + w; sorted keys make lookups a searchsorted.
        self.keys, self.counts = np.unique(ids[:-1] * V + ids[1:], return_counts=True)
        v, w = self.keys // V, self.keys % V
        self.D = _discount(self.counts)
        self.context_count = np.bincount(v, weights=self.counts, minlength=V)  # c(v)
        self.followers = np.bincount(v, minlength=V)  # N1+(v •)
        continuation = np.bincount(w, minlength=V).astype(np.float64)  # N1+(• w)
        total = continuation.sum()  # N1+(• •), the number of distinct bigrams
        self.D1 = _discount(continuation[continuation > 0])
        seen_types = np.count_nonzero(continuation)
        self.p_cont = (np.maximum(continuation - self.D1, 0.0) / total
                       + self.D1 * seen_types / total / V)
        self.fitted = True
        return self

    def _check(self) -> None:
        if not self.fitted:
            raise RnnlabError("the Kneser-Ney model must be fitted before use")

    def prob(self, context: np.ndarray | Sequence[int], word: np.ndarray | Sequence[int]) -> np.ndarray:
        """P(word | context) for aligned arrays of context and word ids."""
        self._check()
        v = np.asarray(context, dtype=np.int64)
        w = np.asarray(word, dtype=np.int64)
        keys = v * self.V + w
        pos = np.clip(np.searchsorted(self.keys, keys), 0, len(self.keys) - 1)
        c_vw = np.where(self.keys[pos] == keys, self.counts[pos], 0)
        c_v = self.context_count[v]
        seen = c_v > 0
        safe = np.where(seen, c_v, 1.0)
        lam = np.where(seen, self.D * self.followers[v] / safe, 1.0)
        return np.where(seen, np.maximum(c_vw - self.D, 0.0) / safe, 0.0) + lam * self.p_cont[w]

    def distribution(self, context: int) -> np.ndarray:
        """The whole next-word distribution P(· | context), shape (vocab_size,)."""
        return self.prob(np.full(self.V, context), np.arange(self.V))

    def log_likelihood(self, ids: Sequence[int] | np.ndarray) -> tuple[float, int]:
        """Total natural-log probability of ids[1:] given each previous id, and the count."""
        ids = np.asarray(ids, dtype=np.int64)
        if len(ids) < 2:
            raise RnnlabError("need at least two token ids to score a stream")
        return float(np.log(self.prob(ids[:-1], ids[1:])).sum()), len(ids) - 1

    def perplexity(self, ids: Sequence[int] | np.ndarray) -> float:
        """exp of the mean negative log-probability of each token given the one before."""
        total, n = self.log_likelihood(ids)
        return math.exp(-total / n)
