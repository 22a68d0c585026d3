"""Long-range memory: can a cell carry the first token across N distractors to the last step?

The lecture's "I am from China, ... I speak Chinese": each sequence starts with one of K key
tokens, then N distractor tokens drawn uniformly from D others; after the last token the
model must name the key (chance is 1/K). Every cell gets the same hidden size, data, optimiser
and number of steps; accuracy is measured on held-out sequences, over several seeds.

Second part, the exploding case (SPEC §1): an RNN whose U has spectral radius above 1, trained
by plain gradient descent with and without gradient clipping.

    python bench/memory.py            # full run (about 20 minutes here)
    python bench/memory.py --quick    # a smoke test in well under a minute
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from rnnlab.cells import CELL_TYPES
from rnnlab.diagnostics import recurrent_radius, set_recurrent_radius
from rnnlab.fileio import atomic_write
from rnnlab.recurrent import Recurrent

RESULTS = Path(__file__).parent / "results"


def make_batch(n: int, batch: int, keys: int, distractors: int, g: torch.Generator):
    """One-hot inputs (n+1, batch, keys+distractors) and targets (batch,): the first token."""
    y = torch.randint(0, keys, (batch,), generator=g)
    noise = torch.randint(keys, keys + distractors, (n, batch), generator=g)
    ids = torch.cat([y[None], noise])
    return F.one_hot(ids, keys + distractors).float(), y


class Classifier(nn.Module):
    """A recurrent layer read at its last step, then a linear layer to the K keys."""

    def __init__(self, cell_type: str, vocab: int, hidden: int, keys: int, **cell_options) -> None:
        super().__init__()
        self.rnn = Recurrent(cell_type, vocab, hidden, output="last", fast=True, **cell_options)
        self.head = nn.Linear(hidden, keys)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.rnn(x)[0])


def accuracy(model: Classifier, x: torch.Tensor, y: torch.Tensor) -> float:
    """Fraction of sequences whose key is named correctly."""
    with torch.no_grad():
        return (model(x).argmax(1) == y).float().mean().item()


def train(model: Classifier, n: int, args, seed: int, optimizer: torch.optim.Optimizer,
          clip: float | None) -> dict:
    """Train on fresh batches; stop early if the loss or a parameter goes non-finite."""
    g = torch.Generator().manual_seed(seed)
    params = list(model.parameters())
    loss_value, finite_steps = math.nan, 0
    for _ in range(args.steps):
        x, y = make_batch(n, args.batch, args.keys, args.distractors, g)
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        if clip is not None:
            torch.nn.utils.clip_grad_norm_(params, clip)
        optimizer.step()
        loss_value = loss.item()
        if not (math.isfinite(loss_value) and all(torch.isfinite(p).all() for p in params)):
            break
        finite_steps += 1
    return {"final_loss": loss_value if math.isfinite(loss_value) else None,
            "finite_steps": finite_steps, "went_nonfinite": finite_steps < args.steps}


def memory_run(cell_type: str, n: int, seed: int, args, test) -> dict:
    """One cell at one distance with one seed: parameter count, accuracy, time."""
    torch.manual_seed(seed)
    model = Classifier(cell_type, args.keys + args.distractors, args.hidden, args.keys)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    start = time.perf_counter()
    result = train(model, n, args, seed + 1000, optimizer, args.clip)
    return {"cell": cell_type, "n": n, "seed": seed, "accuracy": accuracy(model, *test),
            "params_recurrent": sum(p.numel() for p in model.rnn.parameters()),
            "params_total": sum(p.numel() for p in model.parameters()),
            "seconds": time.perf_counter() - start, **result}


def exploding_runs(args) -> list[dict]:
    """RNNs started at ρ(U) = args.explode_radius, plain SGD, with and without clipping."""
    test = make_batch(args.explode_n, args.eval, args.keys, args.distractors,
                      torch.Generator().manual_seed(99))
    rows = []
    for cell_type in ("rnn", "rnn-relu"):
        for clip in (None, args.clip):
            torch.manual_seed(0)
            model = Classifier(cell_type, args.keys + args.distractors, args.hidden, args.keys)
            set_recurrent_radius(model.rnn, args.explode_radius)
            rho = recurrent_radius(model.rnn)
            optimizer = torch.optim.SGD(model.parameters(), lr=args.explode_lr)
            result = train(model, args.explode_n, args, 1000, optimizer, clip)
            acc = accuracy(model, *test) if not result["went_nonfinite"] else None
            rows.append({"cell": cell_type, "rho": rho, "clip": clip, "accuracy": acc, **result})
            fate = (f"NON-FINITE after {result['finite_steps']} steps"
                    if result["went_nonfinite"] else f"finite, accuracy {acc:.3f}")
            print(f"  {cell_type:8s} ρ(U)={rho:.2f} clip={clip!s:4s} {fate}", flush=True)
    return rows


def summarise(runs: list[dict], cells: list[str], distances: list[int]) -> dict:
    """Per cell and distance: mean, min and max accuracy over the seeds."""
    table = {}
    for c in cells:
        for n in distances:
            accs = [r["accuracy"] for r in runs if r["cell"] == c and r["n"] == n]
            if accs:
                table[f"{c}/{n}"] = {"mean": float(np.mean(accs)), "min": min(accs),
                                     "max": max(accs), "seeds": len(accs)}
    return table


def print_table(table: dict, cells: list[str], distances: list[int], params: dict) -> None:
    """Accuracy as mean [min–max] over seeds, one row per cell."""
    print(f"\n{'cell':9s} {'params':>7s} " + " ".join(f"{'N=' + str(n):>17s}" for n in distances))
    for c in cells:
        entries = []
        for n in distances:
            e = table.get(f"{c}/{n}")
            entries.append(f"{e['mean']:.2f} [{e['min']:.2f}–{e['max']:.2f}]" if e else "-")
        print(f"{c:9s} {params.get(c, 0):7d} " + " ".join(f"{s:>17s}" for s in entries))


def plot(table: dict, cells: list[str], distances: list[int], chance: float, path: Path) -> None:
    """Accuracy against distance, one line per cell, bars from the worst to the best seed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for c in cells:
        ns = [n for n in distances if f"{c}/{n}" in table]
        mean = np.array([table[f"{c}/{n}"]["mean"] for n in ns])
        lo = mean - np.array([table[f"{c}/{n}"]["min"] for n in ns])
        hi = np.array([table[f"{c}/{n}"]["max"] for n in ns]) - mean
        ax.errorbar(ns, mean, yerr=[lo, hi], marker="o", capsize=3, label=c)
    ax.axhline(chance, color="gray", linestyle=":", label="chance")
    ax.set_xscale("log")
    ax.set_xticks(distances, [str(n) for n in distances])
    ax.set_xlabel("distractors N between the key and the answer")
    ax.set_ylabel("held-out accuracy")
    ax.set_ylim(0, 1.05)
    ax.set_title("Long-range memory: mean over seeds, bars min–max")
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_write(path, "wb") as f:
        fig.savefig(f, format="png", dpi=120)
    plt.close(fig)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cells", default=",".join(CELL_TYPES))
    p.add_argument("--distances", default="5,10,20,50,100")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--steps", type=int, default=1000, help="training steps per run")
    p.add_argument("--hidden", type=int, default=32)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-2, help="Adam learning rate")
    p.add_argument("--clip", type=float, default=1.0, help="gradient-norm clipping threshold")
    p.add_argument("--keys", type=int, default=4, help="K, the classes to remember")
    p.add_argument("--distractors", type=int, default=8, help="D, distinct distractor tokens")
    p.add_argument("--eval", type=int, default=1000, help="held-out sequences per distance")
    p.add_argument("--explode-radius", type=float, default=2.5)
    p.add_argument("--explode-n", type=int, default=20)
    p.add_argument("--explode-lr", type=float, default=0.1, help="SGD learning rate")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--quick", action="store_true", help="a smoke test: 2 distances, 1 seed")
    p.add_argument("--out", help="JSON path; the PNG goes beside it "
                   "(default bench/results/memory.json, with --quick a temporary folder)")
    args = p.parse_args()
    if args.quick:
        args.distances, args.seeds, args.steps, args.eval = "5,20", 1, 60, 200
    default = Path(tempfile.gettempdir()) / "memory-quick.json" if args.quick \
        else RESULTS / "memory.json"
    args.out = args.out or str(default)
    torch.set_num_threads(args.threads)
    cells = args.cells.split(",")
    distances = [int(n) for n in args.distances.split(",")]
    print(f"settings: {vars(args)}; torch {torch.__version__}, {platform.machine()}", flush=True)

    tests = {n: make_batch(n, args.eval, args.keys, args.distractors,
                           torch.Generator().manual_seed(99)) for n in distances}
    runs, start = [], time.perf_counter()
    for seed in range(args.seeds):  # seeds outermost, so a cut-short run still covers all cells
        for n in distances:
            for c in cells:
                r = memory_run(c, n, seed, args, tests[n])
                runs.append(r)
                print(f"seed {seed} N={n:3d} {c:9s} acc {r['accuracy']:.3f} "
                      f"loss {r['final_loss']} {r['seconds']:.1f}s "
                      f"(total {time.perf_counter() - start:.0f}s)", flush=True)
    params = {r["cell"]: r["params_recurrent"] for r in runs}
    table = summarise(runs, cells, distances)
    print_table(table, cells, distances, params)
    print(f"\nexploding case: ρ(U) = {args.explode_radius}, N = {args.explode_n}, "
          f"SGD lr {args.explode_lr}, {args.steps} steps, clip {args.clip} or none", flush=True)
    explode = exploding_runs(args)

    out = Path(args.out)
    with atomic_write(out) as f:
        json.dump({"settings": vars(args), "torch": torch.__version__, "chance": 1 / args.keys,
                   "params_recurrent": params, "table": table, "runs": runs,
                   "exploding": explode, "seconds": time.perf_counter() - start}, f, indent=1)
    plot(table, cells, distances, 1 / args.keys, out.with_suffix(".png"))
    print(f"wrote {out} and {out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
