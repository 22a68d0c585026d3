"""Long-range memory: can a cell carry the first token across N distractors to the last step?

The lecture's "I am from China, ... I speak Chinese": each sequence starts with one of K key
tokens, then N distractor tokens drawn uniformly from D others, all one-hot; the classifier
reads the recurrent layer at its last step and must name the key (chance is 1/K). Every cell
gets the same hidden size, data, optimiser (Adam, gradient clipping) and at most the same
number of steps; a run stops early once solved (mean training loss over the last 50 batches
below --solved-loss). Accuracy is measured on held-out sequences, over several seeds.

Each cell is trained from two initialisations, as rows "<cell>" and "<cell>+mem":
- default: rnnlab.cells as it is (uniform ±1/sqrt(H); LSTM-family forget-gate bias 1.0);
- memory (+mem): start out remembering, with b = --memory-bias. lstm and peephole: forget
  bias +b and input bias -b, so f ≈ 0.95 keeps C and i ≈ 0.05 keeps distractors out (the
  constant form of Tallec & Ollivier's chrono initialisation); coupled: forget bias +b (its
  input gate is 1 - f); gru: update-gate bias -b (keep 1 - z ≈ 0.95); rnn and rnn-relu:
  U = I and b = 0 (Le, Jaitly & Hinton 2015's IRNN).

Second part, the exploding case (docs/lecture.md §1): an RNN whose U has spectral radius above 1, trained
by plain gradient descent with and without gradient clipping.

    python bench/memory.py            # full run (about 25 minutes here, two workers)
    python bench/memory.py --quick    # a smoke test in well under a minute
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
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
INITS = ("default", "mem")


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


def make_model(cell_type: str, init: str, args) -> Classifier:
    """A classifier with the cell's default initialisation or the memory one (module docstring)."""
    b = args.memory_bias
    gated_forget = init == "mem" and cell_type in ("lstm", "peephole", "coupled")
    options = {"forget_bias": b} if gated_forget else {}
    model = Classifier(cell_type, args.keys + args.distractors, args.hidden, args.keys, **options)
    if init == "mem":
        cell, H = model.rnn.cells[0], args.hidden
        with torch.no_grad():
            if cell_type in ("rnn", "rnn-relu"):
                cell.U.copy_(torch.eye(H))
                cell.b.zero_()
            elif cell_type in ("lstm", "peephole"):
                cell.b[:H].fill_(-b)  # the input gate i, first in the order [i, f, c̃, o]
            elif cell_type == "gru":
                cell.b_zr[:H].fill_(-b)  # the update gate z, first in [z, r]
    return model


def accuracy(model: Classifier, x: torch.Tensor, y: torch.Tensor) -> float:
    """Fraction of sequences whose key is named correctly."""
    with torch.no_grad():
        return (model(x).argmax(1) == y).float().mean().item()


def train(model: Classifier, n: int, args, seed: int, optimizer: torch.optim.Optimizer,
          clip: float | None, solved_loss: float = 0.0) -> dict:
    """Train on fresh batches; stop when solved or when the loss or a parameter goes non-finite."""
    g = torch.Generator().manual_seed(seed)
    params = list(model.parameters())
    losses: list[float] = []
    finite, solved_at = True, None
    for step in range(1, args.steps + 1):
        x, y = make_batch(n, args.batch, args.keys, args.distractors, g)
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        if clip is not None:
            torch.nn.utils.clip_grad_norm_(params, clip)
        optimizer.step()
        losses.append(loss.item())
        if not (math.isfinite(losses[-1]) and all(torch.isfinite(p).all() for p in params)):
            finite = False
            break
        if len(losses) >= 50 and np.mean(losses[-50:]) < solved_loss:
            solved_at = step
            break
    return {"final_loss": losses[-1] if finite else None, "steps_run": len(losses),
            "went_nonfinite": not finite, "solved_at": solved_at}


def memory_run(job: tuple[str, str, int, int], args) -> dict:
    """One cell and initialisation at one distance with one seed: accuracy, steps, time."""
    cell_type, init, n, seed = job
    torch.set_num_threads(args.threads)
    test = make_batch(n, args.eval, args.keys, args.distractors, torch.Generator().manual_seed(99))
    torch.manual_seed(seed)
    model = make_model(cell_type, init, args)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    start = time.perf_counter()
    result = train(model, n, args, seed + 1000, optimizer, args.clip, args.solved_loss)
    return {"cell": cell_type, "init": init, "row": row_name(cell_type, init), "n": n,
            "seed": seed, "accuracy": accuracy(model, *test),
            "params_recurrent": sum(p.numel() for p in model.rnn.parameters()),
            "params_total": sum(p.numel() for p in model.parameters()),
            "seconds": time.perf_counter() - start, **result}


def row_name(cell_type: str, init: str) -> str:
    """The table row of a cell and initialisation: "lstm" or "lstm+mem"."""
    return cell_type if init == "default" else f"{cell_type}+{init}"


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
            fate = (f"NON-FINITE at step {result['steps_run']}"
                    if result["went_nonfinite"] else f"finite, accuracy {acc:.3f}")
            print(f"  {cell_type:8s} ρ(U)={rho:.2f} clip={clip!s:4s} {fate}", flush=True)
    return rows


def summarise(runs: list[dict], rows: list[str], distances: list[int]) -> dict:
    """Per row and distance: mean, min and max accuracy over the seeds, and steps used."""
    table = {}
    for r in rows:
        for n in distances:
            cell = [x for x in runs if x["row"] == r and x["n"] == n]
            if cell:
                accs = [x["accuracy"] for x in cell]
                table[f"{r}/{n}"] = {"mean": float(np.mean(accs)), "min": min(accs),
                                     "max": max(accs), "seeds": len(accs),
                                     "solved_at": [x["solved_at"] for x in cell]}
    return table


def print_table(table: dict, rows: list[str], distances: list[int], params: dict) -> None:
    """Accuracy as mean [min–max] over seeds, one row per cell and initialisation."""
    print(f"\n{'row':13s} {'params':>7s} " + " ".join(f"{'N=' + str(n):>17s}" for n in distances))
    for r in rows:
        entries = []
        for n in distances:
            e = table.get(f"{r}/{n}")
            entries.append(f"{e['mean']:.2f} [{e['min']:.2f}–{e['max']:.2f}]" if e else "-")
        print(f"{r:13s} {params.get(r, 0):7d} " + " ".join(f"{s:>17s}" for s in entries))


def plot(table: dict, cells: list[str], distances: list[int], chance: float, path: Path) -> None:
    """Accuracy against distance, one panel per initialisation, bars from worst to best seed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5), sharey=True)
    titles = {"default": "default initialisation", "mem": "memory initialisation (+mem)"}
    for ax, init in zip(axes, INITS):
        for k, c in enumerate(cells):
            r = row_name(c, init)
            ns = [n for n in distances if f"{r}/{n}" in table]
            mean = np.array([table[f"{r}/{n}"]["mean"] for n in ns])
            lo = mean - np.array([table[f"{r}/{n}"]["min"] for n in ns])
            hi = np.array([table[f"{r}/{n}"]["max"] for n in ns]) - mean
            ax.errorbar(np.array(ns) * (1 + 0.02 * (k - 2.5)), mean, yerr=[lo, hi], marker="o",
                        capsize=3, label=c, color=f"C{k}")
        ax.axhline(chance, color="gray", linestyle=":", label="chance")
        ax.set_xscale("log")
        ax.set_xticks(distances, [str(n) for n in distances])
        ax.minorticks_off()
        ax.set_xlabel("distractors N between the key and the answer")
        ax.set_ylim(0, 1.05)
        ax.set_title(titles[init])
    axes[0].set_ylabel("held-out accuracy (mean over seeds, bars min–max)")
    axes[1].legend(fontsize=8)
    fig.suptitle("Long-range memory: same hidden size, data, optimiser and step budget")
    fig.tight_layout()
    with atomic_write(path, "wb") as f:
        fig.savefig(f, format="png", dpi=120)
    plt.close(fig)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cells", default=",".join(CELL_TYPES))
    p.add_argument("--inits", default=",".join(INITS), help="default, mem or both")
    p.add_argument("--distances", default="5,10,20,50,100")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--steps", type=int, default=1000, help="most training steps per run")
    p.add_argument("--solved-loss", type=float, default=0.01,
                   help="stop a run once its mean training loss over 50 steps is below this")
    p.add_argument("--hidden", type=int, default=32)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--lr", type=float, default=3e-3, help="Adam learning rate")
    p.add_argument("--clip", type=float, default=1.0, help="gradient-norm clipping threshold")
    p.add_argument("--memory-bias", type=float, default=3.0,
                   help="gate bias b of the memory initialisation (+mem rows)")
    p.add_argument("--keys", type=int, default=4, help="K, the classes to remember")
    p.add_argument("--distractors", type=int, default=8, help="D, distinct distractor tokens")
    p.add_argument("--eval", type=int, default=1000, help="held-out sequences per distance")
    p.add_argument("--explode-radius", type=float, default=2.5)
    p.add_argument("--explode-n", type=int, default=20)
    p.add_argument("--explode-lr", type=float, default=0.1, help="SGD learning rate")
    p.add_argument("--threads", type=int, default=1, help="torch threads per worker")
    p.add_argument("--workers", type=int, default=2, help="runs trained side by side")
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
    cells, inits = args.cells.split(","), args.inits.split(",")
    distances = [int(n) for n in args.distances.split(",")]
    rows = [row_name(c, i) for i in inits for c in cells]
    print(f"settings: {vars(args)}; torch {torch.__version__}, {platform.machine()}", flush=True)

    # seeds outermost, so a cut-short run still covers every row
    jobs = [(c, i, n, s) for s in range(args.seeds) for n in distances for i in inits for c in cells]
    runs, start = [], time.perf_counter()
    with ProcessPoolExecutor(args.workers) as pool:
        for r in pool.map(memory_run, jobs, [args] * len(jobs)):
            runs.append(r)
            print(f"seed {r['seed']} N={r['n']:3d} {r['row']:13s} acc {r['accuracy']:.3f} "
                  f"solved at {r['solved_at']} loss {r['final_loss']} {r['seconds']:.1f}s "
                  f"(total {time.perf_counter() - start:.0f}s)", flush=True)
    params = {r["row"]: r["params_recurrent"] for r in runs}
    table = summarise(runs, rows, distances)
    print_table(table, rows, distances, params)
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
