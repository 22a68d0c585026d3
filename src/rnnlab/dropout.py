"""The AWD-LSTM's dropouts (Merity et al. 2018): masks shared over time, over words, over a batch.

Ordinary dropout draws a fresh mask for every entry at every time step, which for a recurrent
network means that no two steps see the same sub-network. These three draw fewer, larger masks:

- locked (variational) dropout (Gal & Ghahramani 2016): one mask per sequence, the same at
  every time step;
- embedding dropout: whole words, i.e. rows of the embedding matrix, dropped for a batch;
- DropConnect on the recurrent weights (Wan et al. 2013): entries of the hidden-to-hidden
  matrices dropped once per forward call, so every step uses the same dropped matrix and the
  fused kernels, which take weights as they are, still run.

Each keeps what it does not drop scaled by 1/(1 - p) (inverted dropout), so nothing changes in
evaluation, where all three are the identity.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from rnnlab.errors import RnnlabError


def check_rate(name: str, p: float) -> None:
    """RnnlabError unless the dropout rate `p` is in [0, 1)."""
    if not 0.0 <= p < 1.0:
        raise RnnlabError(f"{name} must be in [0, 1), got {p}")


def keep_mask(like: Tensor, shape: tuple[int, ...], p: float) -> Tensor:
    """Bernoulli(1 - p) entries scaled by 1/(1 - p): E[mask] = 1, so E[x * mask] = x."""
    return like.new_empty(shape).bernoulli_(1.0 - p).div_(1.0 - p)


def locked_dropout(x: Tensor, p: float, training: bool) -> Tensor:
    """Dropout on x (T, B, D) with one mask per sequence (B, D), the same at every step."""
    if not training or p == 0.0:
        return x
    return x * keep_mask(x, (1, *x.shape[1:]), p)


def embedding_dropout(weight: Tensor, tokens: Tensor, p: float, training: bool) -> Tensor:
    """The embeddings of `tokens` with whole words dropped: a word dropped once is dropped
    wherever it occurs in the batch (Merity et al.'s `embedded_dropout`)."""
    x = F.embedding(tokens, weight)
    if not training or p == 0.0:
        return x
    # A mask over the vocabulary read at the tokens equals masking the matrix's rows, without
    # the V x E product; the gradient reaches a kept row scaled by 1/(1 - p), a dropped row not.
    keep = keep_mask(weight, (weight.shape[0],), p)
    return x * keep[tokens].unsqueeze(-1)


def drop_connect(weight: Tensor, p: float, columns: slice = slice(None)) -> Tensor:
    """`weight` with `columns` (the hidden-to-hidden block) DropConnect-masked, the rest as is."""
    mask = torch.ones_like(weight)
    block = mask[:, columns]
    block.copy_(keep_mask(weight, tuple(block.shape), p))
    return weight * mask
