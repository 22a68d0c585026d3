"""Dynamic evaluation (Krause et al. 2018, "Dynamic Evaluation of Neural Sequence Models").

The text is read in order, one column, in segments s_1, s_2, … of `bptt` tokens (one sentence
at a time in sentence mode). Each segment is scored first, with the weights as they are, and
that score is what counts; then one gradient step on the segment's mean loss L(s_i) adapts
the weights, so that only later segments are predicted by weights that have seen it. The
hidden state runs on across segments as in the static evaluation. Every token is counted
once, as rnnlab.lm.evaluation counts it, through the same loop, so with η = 0 the dynamic
figure is the static one exactly. The update, for each weight θ (θ_0: the trained weights):

    SGD:  θ ← θ − η ∇L(s_i) + λ (θ_0 − θ)
    RMS:  θ ← θ − η ∇L(s_i) / (√MS + ε) + λ · min(√MS / mean(√MS), 1/λ) ⊙ (θ_0 − θ)

MS (per weight) is the mean of ∇L² over the segments of a training text (`gradient_rms`,
read like the evaluation: batches of `STATS_COLUMNS` columns, `bptt` steps); mean(√MS)
averages over every weight, so the decay pulls back hardest the weights that the training
data moves most (the paper's "global prior"); the clip keeps a step from overshooting θ_0.
The authors' code (word level, AWD-LSTM) segments by 5 tokens; on the paper's equations, used
here, its defaults are η = 5e-5, λ = 0.002 and ε = 2e-5. Its first version took λ = 0.02,
η = 0.002 and ε = 0.001, but on √ of the *sum* of squares over ~1,900 statistics batches of
PTB and with the decay divided by the *sum* over AWD-LSTM's ~14 weight tensors: on the mean,
used here so that neither the length of the training text nor the number of tensors matters,
those are η ≈ 5e-5, ε ≈ 2e-5 and λ ≈ 0.0014. The weights adapted are those of a copy: the
model is never changed.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from rnnlab.errors import RnnlabError
from rnnlab.lm.data import IGNORE, pad_sentences
from rnnlab.lm.evaluation import stream_columns

STATS_COLUMNS = 100  # columns of the training text read side by side for MS, as in the paper's code


@dataclass
class Dynamic:
    """Settings of a dynamic evaluation (see the module's docstring). `lr` (η) and `decay` (λ)
    default to the rule's values: SGD η = 0.1, λ = 0; RMS (with `stats`, the training text:
    a path or lines, or its statistics from LM.gradient_rms) the authors' code's η = 5e-5,
    λ = 0.002, which beat η = 1e-4, λ = 0.02 on each model measured (bench/dynamic.py,
    bench/lm_awd.py). `bptt` defaults to 5 tokens (words), 20 (characters)."""

    lr: float | None = None
    decay: float | None = None
    bptt: int | None = None
    epsilon: float = 2e-5
    stats: str | Path | Iterable[str] | list[Tensor] | None = None

    def resolved(self, level: str) -> Dynamic:
        """These settings with every default filled in; RnnlabError for a value out of range."""
        rms = self.stats is not None
        out = Dynamic(lr=self.lr if self.lr is not None else (5e-5 if rms else 0.1),
                      decay=self.decay if self.decay is not None else (0.002 if rms else 0.0),
                      bptt=self.bptt if self.bptt is not None else (20 if level == "char" else 5),
                      epsilon=self.epsilon, stats=self.stats)
        check(out.lr, out.decay, out.bptt, out.epsilon)
        return out

    def computed(self) -> list[Tensor] | None:
        """`stats` when they are statistics already computed (LM.gradient_rms), not a text."""
        stats = self.stats
        return stats if isinstance(stats, list) and stats and isinstance(stats[0], Tensor) else None


def adapted(model) -> list[Tensor]:
    """The weights that dynamic evaluation adapts and measures: every trainable one."""
    return [p for p in model.parameters() if p.requires_grad]


def check_stats(model, rms: list[Tensor]) -> None:
    """RnnlabError unless `rms` has one tensor per adapted weight of `model`, of its shape."""
    if [r.shape for r in rms] != [p.shape for p in adapted(model)]:
        raise RnnlabError("the gradient statistics are not this model's")


def check(lr: float | None, decay: float | None, bptt: int | None, epsilon: float = 2e-5) -> None:
    """RnnlabError unless η ≥ 0, 0 ≤ λ ≤ 1, bptt ≥ 1 and ε > 0 (None: the default)."""
    if lr is not None and not (math.isfinite(lr) and lr >= 0):
        raise RnnlabError(f"--dynamic-lr must be a number ≥ 0, got {lr}")
    if decay is not None and not 0 <= decay <= 1:
        raise RnnlabError(f"--dynamic-decay must be between 0 and 1, got {decay}")
    if bptt is not None and bptt < 1:
        raise RnnlabError(f"--dynamic-bptt must be at least 1, got {bptt}")
    if not (math.isfinite(epsilon) and epsilon > 0):
        raise RnnlabError(f"epsilon must be > 0, got {epsilon}")


def _batches(encoded: Sequence, mode: str, context: list[int], bptt: int, columns: int):
    """(inputs, targets, carried state?, lengths) batches of a text, as the evaluation reads it."""
    if mode == "sentence":
        for i in range(0, len(encoded), columns):
            x, y, lengths = pad_sentences(encoded[i : i + columns])
            yield x, y, False, lengths
        return
    x, y = stream_columns(context + list(encoded), columns)
    for t in range(0, x.shape[0], bptt):
        yield x[t : t + bptt], y[t : t + bptt], True, None


def _loss(model, x: Tensor, y: Tensor, state, lengths) -> tuple[Tensor, object]:
    """Mean −log P over the real targets of one batch (a graph to differentiate) and the state."""
    logits, state = model(x, state, lengths)
    return F.cross_entropy(logits.float().flatten(0, 1), y.flatten(), ignore_index=IGNORE), state


def gradient_rms(model, encoded: Sequence, mode: str, context: list[int], bptt: int,
                 progress: Callable[[int], None] | None = None) -> list[Tensor]:
    """√MS for each trainable weight: the root mean square of ∇L over the batches of a text."""
    device = next(model.parameters()).device
    params = adapted(model)
    sums = [torch.zeros_like(p) for p in params]
    was_training, batches, state = model.training, 0, None
    model.eval()  # no dropout: the gradients are those of the model that will be adapted
    for x, y, carry, lengths in _batches(encoded, mode, context, bptt, STATS_COLUMNS):
        x, y = x.to(device), y.to(device)
        if (y != IGNORE).any():
            with torch.enable_grad():
                loss, state = _loss(model, x, y, state if carry else None, lengths)
                grads = torch.autograd.grad(loss, params)
            state = state if not carry else _detach(state)
            for s, g in zip(sums, grads):
                s += g.square()
            batches += 1
        if progress:
            progress(int((y != IGNORE).sum()))
    model.train(was_training)
    if batches == 0:
        raise RnnlabError("the text for the gradient statistics has no tokens")
    return [(s / batches).sqrt() for s in sums]


def _detach(state):
    """The state without its graph (truncated backpropagation)."""
    return tuple(s.detach() for s in state) if isinstance(state, tuple) else state.detach()


class Adapter:
    """The `learn` of rnnlab.lm.evaluation.loss_sums: one update of a copy of `model` per
    segment read (see the module's docstring); `model` itself is left as it is."""

    def __init__(self, model, settings: Dynamic, rms: list[Tensor] | None = None) -> None:
        self.model = copy.deepcopy(model)
        self.params = adapted(self.model)
        self.start = [p.detach().clone() for p in self.params]
        self.lr = settings.lr
        if rms is None:  # SGD: every weight alike
            self.scale: list = [None] * len(self.params)
            self.pull: list = [settings.decay] * len(self.params)
        else:
            mean = torch.cat([r.flatten() for r in rms]).mean()
            self.scale = [r + settings.epsilon for r in rms]
            self.pull = [settings.decay * (r / mean).clamp(max=1 / settings.decay)
                         if settings.decay else 0.0 for r in rms]

    @torch.no_grad()
    def __call__(self, x: Tensor, y: Tensor, state, lengths) -> None:
        """One step on the mean loss of the segment (x, y) just scored, read from `state`."""
        if not (y != IGNORE).any():
            return
        with torch.enable_grad():
            loss, _ = _loss(self.model, x, y, state, lengths)
            grads = torch.autograd.grad(loss, self.params)
        for p, g, p0, scale, pull in zip(self.params, grads, self.start, self.scale, self.pull):
            # θ + pull·(θ0 − θ) first: both terms of the update are taken at the weights before it
            if isinstance(pull, Tensor) or pull:
                p.lerp_(p0, pull)
            if scale is None:
                p.add_(g, alpha=-self.lr)
            else:
                p.addcdiv_(g, scale, value=-self.lr)
