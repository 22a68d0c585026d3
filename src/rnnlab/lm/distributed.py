"""Data-parallel training over processes with torch.distributed, as launched by torchrun.

torchrun starts one process per device and tells each its RANK, WORLD_SIZE and LOCAL_RANK.
Every process builds the same model from the same seed and walks the same global batches; each
takes its own share of a batch: a contiguous slice of the stream's columns (stream mode) or of
the batch's sentences (sentence mode). DistributedDataParallel then averages the gradients, and
the loss is scaled so that this average is exactly the gradient one process would compute on
the whole batch: W processes with batch B/W train the same model as one process with batch B.

Without torchrun (WORLD_SIZE unset or 1) `Group` is a single process and every collective
below is the identity, so the trainer has one code path.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist
from torch import Tensor

from rnnlab.cells import map_state
from rnnlab.errors import RnnlabError


@dataclass
class Group:
    """This process's place among the training processes."""

    rank: int = 0
    world: int = 1
    started: bool = False  # whether this module initialised the process group

    @property
    def main(self) -> bool:
        """Rank 0 alone writes checkpoints, metrics, plots and messages."""
        return self.rank == 0

    def span(self, n: int) -> slice:
        """This rank's contiguous part of n things; shares differ by at most one, may be empty."""
        return slice(self.rank * n // self.world, (self.rank + 1) * n // self.world)

    def share(self, items: list) -> list:
        """This rank's contiguous part of a list."""
        return items[self.span(len(items))]

    def columns(self, batch: int) -> slice:
        """This rank's columns of a training batch, which must split into equal shares."""
        if batch % self.world:
            raise RnnlabError(f"batch size {batch} does not split evenly over {self.world} "
                              f"processes; choose a multiple of {self.world}")
        return self.span(batch)

    def sum(self, values: list[float], device: torch.device) -> list[float]:
        """Element-wise sums over all ranks."""
        if self.world == 1:
            return list(values)
        t = torch.tensor(values, dtype=torch.float64, device=device)
        dist.all_reduce(t)
        return t.tolist()

    def gather(self, obj) -> list:
        """Every rank's `obj`, in rank order (its tensors must be on the CPU)."""
        if self.world == 1:
            return [obj]
        out = [None] * self.world
        dist.all_gather_object(out, obj)
        return out

    def close(self) -> None:
        """Leave the process group if this module joined it."""
        if self.started and dist.is_initialized():
            dist.barrier()  # tearing gloo down while a peer still talks aborts that peer
            dist.destroy_process_group()
            self.started = False


def join(device: torch.device) -> Group:
    """The process group torchrun's environment describes, joined if need be."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Group()
    if not dist.is_available():
        raise RnnlabError("this torch build has no torch.distributed")
    started = False
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend, timeout=timedelta(minutes=30))
        started = True
    return Group(dist.get_rank(), dist.get_world_size(), started)


def wrap(model: torch.nn.Module, group: Group, device: torch.device) -> torch.nn.Module:
    """The model as the training step calls it: DistributedDataParallel over several ranks."""
    if group.world == 1:
        return model
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


def cat_columns(parts: list[Tensor | tuple[Tensor, ...]]) -> Tensor | tuple[Tensor, ...]:
    """Ranks' carried states (layers, b, H) joined into the whole batch's, in column order."""
    return map_state(lambda *p: torch.cat(p, dim=1), *parts)
