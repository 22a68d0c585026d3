"""The neural cache (Grave et al. 2017, "Improving Neural Language Models with a Continuous Cache").

While a text is read, the last `size` pairs (h_i, x_{i+1}) are kept: the top layer's output at
step i and the token that followed it. At step t the cache puts probability on the tokens
that followed hidden states like the present one,

    p_cache(w) = Σ_{i in the window, x_{i+1} = w} softmax_i(θ · h_t·h_i),

and the model's prediction becomes p(w) = (1 − λ) p_model(w) + λ p_cache(w) (no history yet:
p_model alone). Only pairs whose token has been read are in the window, so the score of a
token never depends on it or on anything after it. Nothing is learnt: the model is not changed.
The AWD-LSTM code's values: PTB size 500, θ = 1.0, λ = 0.1; WikiText-2 size 3785, θ = 0.662,
λ = 0.1279. `Cached` wraps a model so that rnnlab.lm.evaluation reads it like any other: its
"logits" are the log-probabilities of the mixture.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from rnnlab.errors import RnnlabError


@dataclass
class Cache:
    """Settings of a neural cache: `size` pairs kept, `theta` (θ) and `lam` (λ)."""

    size: int = 500
    theta: float = 1.0
    lam: float = 0.1


def check(size: int | None, theta: float | None, lam: float | None) -> None:
    """RnnlabError unless size ≥ 1, θ ≥ 0 and 0 ≤ λ < 1 (None: the default)."""
    if size is not None and size < 1:
        raise RnnlabError(f"--cache must be at least 1, got {size}")
    if theta is not None and not (math.isfinite(theta) and theta >= 0):
        raise RnnlabError(f"--cache-theta must be a number ≥ 0, got {theta}")
    if lam is not None and not 0 <= lam < 1:
        raise RnnlabError(f"--cache-lambda must be in [0, 1), got {lam}")


class Cached(nn.Module):
    """`model` with a neural cache, for one column read in order (see the module's docstring)."""

    def __init__(self, model: nn.Module, settings: Cache) -> None:
        super().__init__()
        check(settings.size, settings.theta, settings.lam)
        self.model, self.settings = model, settings
        self.train(model.training)  # so that the evaluation leaves `model` in the mode it found
        self.keys: Tensor | None = None  # (n, H) hidden states whose next token is known
        self.values: Tensor | None = None  # (n,) those next tokens
        self.pending: Tensor | None = None  # the last hidden state; its token comes next

    def forward(self, tokens: Tensor, state=None, lengths=None) -> tuple[Tensor, object]:
        """Log-probabilities (T, 1, V) of the mixture for token ids (T, 1), and the state."""
        if tokens.shape[1] != 1 or lengths is not None:
            raise RnnlabError("the neural cache reads one column of a stream")
        seen = []
        hook = self.model.rnn.register_forward_hook(lambda m, i, out: seen.append(out[0]))
        try:
            logits, state = self.model(tokens, state)
        finally:
            hook.remove()
        h, x = seen[-1][:, 0].float(), tokens[:, 0]
        logp = torch.log_softmax(logits[:, 0].float(), -1)
        keys, values = self._history(h, x)
        n = keys.shape[0] - (h.shape[0] - 1)  # pairs from before this block
        T, size = h.shape[0], self.settings.size
        # query t sees pairs n - size + t … n + t − 1: the last `size` whose token came by t
        j = torch.arange(keys.shape[0], device=h.device)
        t = torch.arange(T, device=h.device).unsqueeze(1)
        window = (j < n + t) & (j >= n + t - size)
        scores = (self.settings.theta * h @ keys.T).masked_fill(~window, -math.inf)
        attn = torch.softmax(scores, -1).nan_to_num(0.0)  # no pair yet: an empty cache
        p_cache = torch.zeros_like(logp).scatter_add_(1, values.expand(T, -1), attn)
        lam = self.settings.lam * window.any(1, keepdim=True)
        mixed = torch.log((1 - lam) * logp.exp() + lam * p_cache)
        return mixed.unsqueeze(1), state

    def _history(self, h: Tensor, x: Tensor) -> tuple[Tensor, Tensor]:
        """Keys and values for this block: the kept pairs, the pending state with x's first
        token, and each state of the block but the last with the token after it; keeps the
        last `size` pairs (and the block's last state, pending) for the next block."""
        keys, values = [h[:0]], [x[:0]]
        if self.keys is not None:
            keys.append(self.keys)
            values.append(self.values)
        if self.pending is not None:
            keys.append(self.pending)
            values.append(x[:1])
        keys, values = torch.cat(keys + [h[:-1]]), torch.cat(values + [x[1:]])
        self.keys, self.values = keys[-self.settings.size:], values[-self.settings.size:]
        self.pending = h[-1:]
        return keys, values
