"""The saved state of a training run: counters in `last/training.json`, tensors beside them.

`last/` holds everything needed to continue exactly: the settings, the counters below, the
optimizer, every process's random generators, the carried hidden state of the whole batch and,
under NT-ASGD, the averaged weights beside the raw ones (`training.safetensors`:
"rng.torch[.RANK]", "rng.cuda[.RANK]", "hidden.K", "optimizer.*", "average.NAME"; where the
average began and how many steps it holds in training.json's "average"), so that a resumed
run ends with the same weights as an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from rnnlab.cells import map_state, state_parts
from rnnlab.fileio import atomic_write
from rnnlab.lm import distributed
from rnnlab.lm.bundle import LM


@dataclass
class Progress:
    """Where a run stands: position in the data, schedule, best so far, this epoch's sums."""

    epoch: int = 1
    step_in_epoch: int = 0
    global_step: int = 0
    lr: float = 0.0
    best_valid: float | None = None
    best_epoch: int | None = None
    bad_epochs: int = 0
    phase: str = "train"  # "finetune" once fine-tuning began (AWD-LSTM)
    history: list[dict] = field(default_factory=list)  # one metrics record per epoch
    skipped: int = 0
    epoch_loss: float = 0.0
    epoch_tokens: int = 0
    epoch_seconds: float = 0.0  # training time in this epoch so far, resumed parts included

    def to_json(self) -> dict:
        """The counters as training.json keeps them."""
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, state: dict) -> Progress:
        """The counters of a training.json (keys an older version did not write keep defaults)."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in state.items() if k in names})


def rank_tensors(ranks: list[dict]) -> tuple[dict[str, Tensor], int | None]:
    """The tensors to save from each rank's {"rng.*": ..., "hidden": state or None}: generator
    states under a ".RANK" suffix (none for rank 0), and the whole batch's hidden state put
    back together from the ranks' columns as "hidden.K"; with the number of hidden parts."""
    tensors = {}
    for rank, got in enumerate(ranks):
        suffix = f".{rank}" if rank else ""
        tensors.update({k + suffix: v for k, v in got.items() if k.startswith("rng.")})
    hidden = [got["hidden"] for got in ranks]
    if all(h is None for h in hidden):
        return tensors, None
    like = next(h for h in hidden if h is not None)
    zeros = map_state(torch.zeros_like, like)
    parts = distributed.cat_columns([zeros if h is None else h for h in hidden])
    parts = state_parts(parts)
    tensors.update({f"hidden.{k}": p for k, p in enumerate(parts)})
    return tensors, len(parts)


def hidden_columns(tensors: dict[str, Tensor], parts: int, cols: slice, device: torch.device):
    """This rank's columns of the saved hidden state (a tensor, or a tuple for the LSTM family)."""
    h = [tensors[f"hidden.{k}"][:, cols].to(device) for k in range(parts)]
    return tuple(h) if len(h) == 2 else h[0]


def restore_generators(tensors: dict[str, Tensor], rank: int, device: torch.device) -> None:
    """Set this rank's random generators as they were saved."""
    suffix = f".{rank}" if rank else ""
    torch.set_rng_state(tensors["rng.torch" + suffix])
    if device.type == "cuda" and "rng.cuda" + suffix in tensors:
        torch.cuda.set_rng_state(tensors["rng.cuda" + suffix], device)


class RunFolder:
    """The files of a run's folder: best/, last/, metrics.jsonl and curve.png. Only rank 0
    writes them; without a folder (or on another rank) every write is skipped."""

    def __init__(self, out: Path | None, main: bool, extra: dict | None = None) -> None:
        self.out = out if main else None
        self.extra = extra or {}  # joins every config.json (the recipe)

    def save_last(self, lm: LM, epoch: int, state: dict, tensors: dict[str, Tensor],
                  optimizer: torch.optim.Optimizer) -> None:
        """`last/`: the model and everything needed to continue (see the module's docstring)."""
        if self.out is not None:
            lm.save(self.out / "last", {**self.extra, "epoch": epoch},
                    {"state": state, "tensors": tensors, "optimizer": optimizer})

    def save_best(self, lm: LM, record: dict) -> None:
        """`best/`: the model with its metrics record in config.json."""
        if self.out is not None:
            lm.save(self.out / "best", {**self.extra, **record})

    def write_metrics(self, records: list[dict]) -> None:
        """metrics.jsonl: one JSON record per line."""
        if self.out is not None:
            with atomic_write(self.out / "metrics.jsonl") as f:
                f.writelines(json.dumps(record) + "\n" for record in records)

    def plot(self, records: list[dict], level: str) -> None:
        """curve.png: train and validation curves of the records."""
        if self.out is not None and records:
            from rnnlab.lm.plot import plot_curve

            plot_curve(records, self.out / "curve.png", level)
