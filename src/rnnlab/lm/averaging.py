"""NT-ASGD (Merity et al. 2018): SGD until validation stalls, then the average of the weights.

Averaged SGD (Polyak and Juditsky 1992) takes plain SGD steps w_1, w_2, ... and answers with
their mean w̄_n = (1/n) Σ_{k≤n} w_k, which settles where the iterates keep circling a minimum.
Non-monotonically triggered ASGD starts the average only once the validation loss has stopped
improving: when the last check is worse than the best of the checks more than `nonmono` checks
before it. The average is kept here as a running mean, w̄_n = w̄_{n-1} + (w_n - w̄_{n-1}) / n:
what torch.optim.ASGD with t0=0 and lambd=0 keeps (which drops the first step and applies a
changed learning rate one step late), but outside the optimizer, so that the steps stay the
optimizer's own and a checkpoint keeps the mean as plain tensors.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import torch
from torch import Tensor, nn

PREFIX = "average."  # the mean's tensors in training.safetensors


def nt_asgd_trigger(losses: Sequence[float], nonmono: int) -> bool:
    """Whether the last validation loss of `losses` is worse than the best of the checks more
    than `nonmono` checks before it (so averaging should start)."""
    *before, last = losses
    return len(before) > nonmono and last > min(before[:-nonmono])


class WeightAverage:
    """The running mean of a model's trained parameters over the steps since `start`."""

    def __init__(self, model: nn.Module) -> None:
        self.params = {k: p for k, p in model.named_parameters() if p.requires_grad}
        self.mean: dict[str, Tensor] | None = None
        self.count = 0
        self.since: int | None = None  # the global step at which averaging began

    @property
    def active(self) -> bool:
        """Whether averaging has begun."""
        return self.mean is not None

    def start(self, step: int) -> None:
        """Begin a new average after global step `step` (the weights so far do not count)."""
        self.mean = {k: p.detach().clone() for k, p in self.params.items()}
        self.count, self.since = 0, step

    @torch.no_grad()
    def update(self) -> None:
        """Add the weights after a step to the mean."""
        self.count += 1
        for k, p in self.params.items():
            self.mean[k].add_(p.detach() - self.mean[k], alpha=1.0 / self.count)

    @contextlib.contextmanager
    def swapped_in(self) -> Iterator[None]:
        """Within the block the model holds the averaged weights, then its own again."""
        if self.mean is None:
            yield
            return
        with torch.no_grad():
            raw = {k: p.detach().clone() for k, p in self.params.items()}
            for k, p in self.params.items():
                p.copy_(self.mean[k])
        try:
            yield
        finally:
            with torch.no_grad():
                for k, p in self.params.items():
                    p.copy_(raw[k])

    def to_json(self) -> dict | None:
        """Where the average stands, for training.json (None before it began)."""
        return None if self.mean is None else {"since": self.since, "count": self.count}

    def tensors(self) -> dict[str, Tensor]:
        """The mean's tensors, for training.safetensors."""
        return {PREFIX + k: v for k, v in (self.mean or {}).items()}

    def restore(self, saved: dict | None, tensors: dict[str, Tensor]) -> None:
        """Continue the average to_json and tensors describe (nothing when `saved` is None)."""
        if saved is None:
            self.mean, self.count, self.since = None, 0, None
            return
        device = next(iter(self.params.values())).device
        self.mean = {k: tensors[PREFIX + k].to(device, copy=True) for k in self.params}
        self.count, self.since = saved["count"], saved["since"]
