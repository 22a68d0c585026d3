"""Activation regularisation (AR) and temporal activation regularisation (TAR), Merity et al. 2017.

Both penalise the last recurrent layer's outputs h_t, in the training loss only:

    AR  = α · mean(m ⊙ h_t)²           on the output after its dropout (mask m): large
                                        activations cost, so the softmax sees small, spread ones;
    TAR = β · mean(h_t − h_{t−1})²     on the output before dropout (dropout's noise would
                                        otherwise count as change): a slowly moving state.

The means run over every unit of every real step (and, for TAR, every pair of consecutive real
steps), so that the penalty is per token like the AWD-LSTM's mean cross-entropy; padding counts
for nothing. TAR only compares steps within a batch, as the AWD-LSTM does.
"""

from __future__ import annotations

import torch
from torch import Tensor


def activation_penalty(raw: Tensor, dropped: Tensor, ar: float, tar: float,
                       lengths: Tensor | None = None) -> Tensor:
    """α·mean(dropped²) + β·mean((raw_t − raw_{t−1})²) over the real steps of (T, B, H) outputs."""
    T, B, H = raw.shape
    real = torch.ones(T, B, 1, dtype=raw.dtype, device=raw.device)
    if lengths is not None:
        steps = torch.arange(T, device=raw.device).unsqueeze(1)
        real = (steps < lengths.to(raw.device)).unsqueeze(2).to(raw.dtype)
    penalty = raw.new_zeros(())
    if ar:
        penalty = penalty + ar * (dropped.pow(2) * real).sum() / (real.sum() * H)
    # Step t and t-1 are both real exactly where t is: lengths cut a sequence's end only. A
    # padded batch is as long as its longest sequence, so T > 1 leaves a pair to compare.
    pairs = real[1:]
    if tar and T > 1:
        penalty = penalty + tar * ((raw[1:] - raw[:-1]).pow(2) * pairs).sum() / (pairs.sum() * H)
    return penalty
