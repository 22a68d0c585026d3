"""The adaptive softmax (Grave et al. 2017, "Efficient softmax approximation for GPUs").

Word ids are sorted by count (rnnlab.text.vocab), so cut-offs c_1 < … < c_n split the
vocabulary into a head [0, c_1) of frequent words and tail clusters [c_i, c_{i+1}) of rarer
ones (c_{n+1} = V). The head is one softmax over its words and one entry per cluster; cluster
i has its own softmax over its words, read from the hidden output h projected by P_i:

    p_head = softmax([W_0 h + b_0 ; C h + c])     (c_1 words, then n clusters)
    p_i    = softmax(W_i P_i h + b_i)             (the words of cluster i)

    log p(w) = log p_head(w)                             w in the head
    log p(w) = log p_head(cluster i) + log p_i(w)        w in cluster i

Every factor is normalised, so p is a distribution over the whole vocabulary and perplexities
compare with a full softmax's. Two operations: `loss` is Σ −log p(target) for training, which
runs the head for every target but cluster i's softmax only for the targets in it: with most
tokens among a few thousand frequent words, most never touch the large tail matrices, which
is where the speed comes from. `forward` builds the whole (…, V) log-probability matrix, for
evaluation, scoring and generation.

Sizes. Untied, cluster i projects to d_i = size / shrink^i (Grave et al.: shrink 4): rarer
words get fewer dimensions, and their rows W_i are (|cluster i|, d_i). Tied (`tied`, the
embedding matrix (V, size)), every word's output row, in the head and in the tails, is its
embedding row, so the tails project to the full size (P_i: size × size) and `shrink` does not
apply; the cluster rows C, the projections and the biases are the decoder's own.

Default cut-offs (`default_cutoffs`): the head holds the fewest most frequent words that cover
HEAD_SHARE of the training tokens; then boundaries GROWTH times the one before, each kept while
the cluster after it would be no smaller than the cluster before it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnlab.errors import RnnlabError
from rnnlab.lm.data import IGNORE

DECODERS = ("full", "adaptive")
HEAD_SHARE = 0.85  # of the training tokens, covered by the head's words
GROWTH = 4  # each default boundary this many times the one before
TAIL_SHRINK = 4.0  # Grave et al.'s: cluster i projects to size / 4^i (untied)


def check_cutoffs(cutoffs, vocab_size: int | None = None) -> list[int]:
    """The cut-offs as a list; RnnlabError unless whole numbers, increasing, from 1 and below
    `vocab_size` (when given)."""
    whole = isinstance(cutoffs, (list, tuple)) and all(type(c) is int for c in cutoffs)
    if not (whole and cutoffs and cutoffs[0] >= 1 and all(a < b for a, b in zip(cutoffs, cutoffs[1:]))):
        raise RnnlabError(f"cutoffs must be increasing whole numbers of at least 1, "
                          f"got {cutoffs!r}")
    if vocab_size is not None and cutoffs[-1] >= vocab_size:
        raise RnnlabError(f"cutoffs must be below the vocabulary size {vocab_size}, "
                          f"got {list(cutoffs)}")
    return list(cutoffs)


def check_shrink(shrink) -> None:
    """RnnlabError unless the tail shrink factor is a number of at least 1."""
    if type(shrink) not in (int, float) or not 1 <= shrink < float("inf"):
        raise RnnlabError(f"tail_shrink must be a number of at least 1, got {shrink!r}")


def default_cutoffs(counts: Sequence[int]) -> list[int]:
    """Cut-offs from a vocabulary's counts, ids by decreasing count (see the module's docstring)."""
    V = len(counts)
    if V < 2:
        raise RnnlabError("the adaptive decoder needs a vocabulary of at least 2 tokens")
    share = np.cumsum(np.asarray(counts, dtype=np.float64)) / max(float(np.sum(counts)), 1.0)
    cutoffs = [min(max(int(np.searchsorted(share, HEAD_SHARE)) + 1, 1), V - 1)]
    while True:
        last, nxt = cutoffs[-1], cutoffs[-1] * GROWTH
        if V - nxt < nxt - last:
            return cutoffs
        cutoffs.append(nxt)


def wide(logits: Tensor) -> Tensor:
    """Logits of half precision (under autocast) in float32, so that the loss is float32."""
    return logits.float() if logits.dtype in (torch.float16, torch.bfloat16) else logits


def tail_sizes(size: int, cutoffs: Sequence[int], shrink: float, tied: bool) -> list[int]:
    """The size d_i each tail cluster projects the hidden output to."""
    return [size if tied else max(1, round(size / shrink ** i)) for i in range(1, len(cutoffs) + 1)]


def weight_count(size: int, vocab_size: int, cutoffs: Sequence[int], shrink: float,
                 tied: bool) -> int:
    """Parameters of an adaptive decoder, tied rows not counted (they are the embedding's)."""
    bounds = [0, *cutoffs, vocab_size]
    dims = tail_sizes(size, cutoffs, shrink, tied)
    count = vocab_size + len(cutoffs) * (size + 1) + sum(size * d for d in dims)
    if not tied:
        count += sum((bounds[i + 1] - bounds[i]) * d for i, d in enumerate([size, *dims]))
    return count


class AdaptiveSoftmax(nn.Module):
    """The head and tail softmaxes of an adaptive decoder (see the module's docstring)."""

    def __init__(self, size: int, vocab_size: int, cutoffs: Sequence[int],
                 shrink: float = TAIL_SHRINK, tied: nn.Parameter | None = None) -> None:
        super().__init__()
        self.bounds = [0, *check_cutoffs(cutoffs, vocab_size), vocab_size]
        check_shrink(shrink)
        dims = tail_sizes(size, cutoffs, shrink, tied is not None)
        self.clusters = nn.Linear(size, len(cutoffs))  # the head's entry for each cluster
        self.projections = nn.ModuleList(nn.Linear(size, d, bias=False) for d in dims)
        self.bias = nn.Parameter(torch.zeros(vocab_size))  # every word's, cluster by cluster
        self.weight = tied  # (V, size), shared with the embedding; None: the rows below
        self.weights = None if tied is not None else nn.ParameterList(
            nn.Parameter(torch.empty(hi - lo, d))
            for lo, hi, d in zip(self.bounds, self.bounds[1:], [size, *dims]))
        self.init_weights()

    def init_weights(self) -> None:
        """Own word rows and cluster rows uniform in ±0.1, biases zero (as the full decoder)."""
        with torch.no_grad():
            for w in [self.clusters.weight, *(self.weights or [])]:
                w.uniform_(-0.1, 0.1)
            self.clusters.bias.zero_()
            self.bias.zero_()

    def rows(self, i: int) -> tuple[Tensor, Tensor]:
        """Cluster i's output rows and biases (0: the head's words)."""
        lo, hi = self.bounds[i], self.bounds[i + 1]
        weight = self.weights[i] if self.weight is None else self.weight[lo:hi]
        return weight, self.bias[lo:hi]

    def head(self, h: Tensor) -> Tensor:
        """The head's logits (…, c_1 + n): its words, then one per tail cluster."""
        return torch.cat([F.linear(h, *self.rows(0)), self.clusters(h)], -1)

    def tail(self, i: int, h: Tensor) -> Tensor:
        """Tail cluster i's logits (…, |cluster i|), i ≥ 1."""
        return F.linear(self.projections[i - 1](h), *self.rows(i))

    def forward(self, h: Tensor) -> Tensor:
        """log p(w) for every word w (…, V) from hidden outputs h (…, size)."""
        head = torch.log_softmax(self.head(h), -1)
        c1 = self.bounds[1]
        parts = [head[..., :c1]]
        for i in range(1, len(self.bounds) - 1):
            tail = torch.log_softmax(self.tail(i, h), -1)
            parts.append(head[..., c1 + i - 1 : c1 + i] + tail)
        return torch.cat(parts, -1)

    def loss(self, h: Tensor, targets: Tensor) -> Tensor:
        """Σ −log p(target) over the real targets (IGNORE skipped), for hidden outputs h
        (…, size) and targets (…); each tail runs only on the targets in its cluster."""
        h, y = h.flatten(0, -2), targets.flatten()
        c1 = self.bounds[1]
        cluster = sum((y >= c).long() for c in self.bounds[1:-1])  # 0: the head (and IGNORE)
        head_target = torch.where(cluster == 0, y, c1 - 1 + cluster)
        loss = F.cross_entropy(wide(self.head(h)), head_target, ignore_index=IGNORE,
                               reduction="sum")
        for i in range(1, len(self.bounds) - 1):
            # Also when no target falls in cluster i: its weights then get a zero gradient,
            # which every rank's DistributedDataParallel expects of every weight.
            rows = (cluster == i).nonzero().squeeze(1)
            logits = wide(self.tail(i, h[rows]))
            loss = loss + F.cross_entropy(logits, y[rows] - self.bounds[i], reduction="sum")
        return loss
