"""Speed of rnnlab's recurrent layers against torch.nn.LSTM / nn.RNN, side by side.

Measures tokens per second of the whole PTB language-model training step (embedding, 2 recurrent
layers, 10k-way softmax decoder, cross-entropy summed over steps, backward, gradient clipping,
SGD step; the state carried over, detached) for Zaremba et al.'s "small" (2×200, 20 steps,
batch 20) and "medium" (2×650, 35 steps, batch 20) shapes, and of the 2-layer recurrent stack
alone (forward + backward). Every variant runs once per round, rounds are interleaved (the
machine is shared), and results are medians over rounds; the ratio to nn.LSTM is taken within
each round. Tokens are random ids: the speed does not depend on the text. Both the elapsed
(wall) time and this process's CPU time are recorded; on a machine busy with other work the
CPU time of a single-threaded run is the steadier measure of the code itself.

    python bench/recurrent.py                          # full run, recorded in results/recurrent.json
    python bench/recurrent.py --quick                  # a short run
    python bench/recurrent.py --threads 1 --clock cpu  # targets judged by CPU time, one thread
    python bench/recurrent.py --only mogrifier "mogrifier looped" --shapes small   # some variants
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

from rnnlab.fileio import atomic_write
from rnnlab.recurrent import Recurrent, detach_state

VOCAB = 10_000
SHAPES = {"small": (200, 20, 20), "medium": (650, 35, 20)}  # hidden, steps, batch
# Timed iterations per variant and round, for the language model and the layers alone.
ITERS = {"small": (4, 8), "medium": (2, 3)}
CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}
# (name, recurrent cell or torch.nn class, options, rnnlab fast path)
VARIANTS = [
    ("nn.LSTM", "nn.LSTM", {}, None),
    ("lstm", "lstm", {}, True),
    ("nn.RNN", "nn.RNN", {}, None),
    ("rnn", "rnn", {}, True),
    ("coupled", "coupled", {}, True),
    ("gru", "gru", {}, True),
    ("peephole-diagonal", "peephole", {"diagonal": True}, True),
    ("peephole-full", "peephole", {"diagonal": False}, True),
    ("mogrifier", "mogrifier", {}, True),
    ("lstm looped", "lstm", {}, False),
    ("rnn looped", "rnn", {}, False),
    ("coupled looped", "coupled", {}, False),
    ("gru looped", "gru", {}, False),
    ("peephole-diagonal looped", "peephole", {"diagonal": True}, False),
    ("peephole-full looped", "peephole", {"diagonal": False}, False),
    ("mogrifier looped", "mogrifier", {}, False),
]
# The targets: rnnlab's speed as a fraction of the torch layer named.
TARGETS = {"lstm": ("nn.LSTM", 0.95), "rnn": ("nn.RNN", 0.95), "coupled": ("nn.LSTM", 0.8),
           "gru": ("nn.LSTM", 0.8), "peephole-diagonal": ("nn.LSTM", 0.8),
           "peephole-full": ("nn.LSTM", 0.7)}


def make_layers(cell: str, options: dict, fast: bool | None, hidden: int) -> nn.Module:
    """Two recurrent layers of `hidden` units, torch's or rnnlab's."""
    if cell == "nn.LSTM":
        return nn.LSTM(hidden, hidden, 2)
    if cell == "nn.RNN":
        return nn.RNN(hidden, hidden, 2)
    return Recurrent(cell, hidden, hidden, num_layers=2, fast=fast, **options)


class LanguageModel(nn.Module):
    """Embedding, recurrent layers, linear decoder to the vocabulary."""

    def __init__(self, layers: nn.Module, hidden: int) -> None:
        super().__init__()
        self.embed, self.layers, self.decoder = nn.Embedding(VOCAB, hidden), layers, nn.Linear(hidden, VOCAB)
        for p in self.parameters():
            nn.init.uniform_(p, -0.1, 0.1)

    def forward(self, tokens, state):
        out, state = self.layers(self.embed(tokens), state)
        return self.decoder(out), state


def lm_runner(layers: nn.Module, hidden: int, steps: int, batch: int):
    """A closure doing one training step of the language model on fixed random tokens."""
    model = LanguageModel(layers, hidden)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    tokens = torch.randint(VOCAB, (steps + 1, batch))
    state = None

    def step() -> None:
        nonlocal state
        logits, state = model(tokens[:-1], state)
        state = detach_state(state)
        # Summed over the steps, averaged over the batch (Zaremba et al.'s convention).
        loss = nn.functional.cross_entropy(logits.view(-1, VOCAB), tokens[1:].reshape(-1)) * steps
        optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        optimizer.step()

    return step


def layers_runner(layers: nn.Module, hidden: int, steps: int, batch: int):
    """A closure doing forward + backward of the recurrent layers alone."""
    x = torch.randn(steps, batch, hidden, requires_grad=True)
    weight = torch.randn(steps, batch, hidden)

    def step() -> None:
        out, _ = layers(x, None)
        (out * weight).sum().backward()

    return step


def measure(runners: dict, rounds: int, iters: int, tokens: int) -> dict[str, dict[str, list[float]]]:
    """Tokens/s of each runner per round by each clock; rounds interleave the runners, order rotating."""
    names = list(runners)
    for run in runners.values():  # warm-up: allocator, BLAS, autograd caches
        run()
    speeds = {clock: {name: [] for name in names} for clock in CLOCKS}
    for r in range(rounds):
        for name in names[r % len(names):] + names[: r % len(names)]:
            start = {clock: read() for clock, read in CLOCKS.items()}
            for _ in range(iters):
                runners[name]()
            for clock, read in CLOCKS.items():
                speeds[clock][name].append(iters * tokens / (read() - start[clock]))
    return speeds


def summarize(speeds: dict[str, list[float]], judge: bool) -> dict[str, dict]:
    """Median tokens/s and median per-round ratio to nn.LSTM; with `judge`, the targets met or not."""
    summary = {}
    for name, s in speeds.items():
        ratios = [a / b for a, b in zip(s, speeds["nn.LSTM"])]
        summary[name] = {"tokens_per_s": statistics.median(s), "ratio_to_nn_lstm": statistics.median(ratios),
                         "per_round": [round(v, 1) for v in s]}
    for name, (ref, target) in TARGETS.items() if judge else ():
        if name in summary:
            ratio = statistics.median(a / b for a, b in zip(speeds[name], speeds[ref]))
            summary[name].update(target=f">= {target} x {ref}", ratio_to_target_ref=ratio,
                                 met=ratio >= target)
    return summary


def print_table(title: str, by_clock: dict[str, dict[str, dict]], primary: str) -> None:
    """Both clocks side by side; the targets judged by the primary clock."""
    print(f"\n{title}")
    print(f"{'variant':26s} {'wall tok/s':>10s} {'× nn.LSTM':>9s} {'cpu tok/s':>10s} {'× nn.LSTM':>9s}   "
          f"target ({primary} clock)")
    for name in by_clock[primary]:
        wall, cpu, row = by_clock["wall"][name], by_clock["cpu"][name], by_clock[primary][name]
        target = ""
        if "target" in row:
            verdict = "ok" if row["met"] else "MISSED"
            target = f"{row['target']}: {row['ratio_to_target_ref']:.2f} {verdict}"
        print(f"{name:26s} {wall['tokens_per_s']:10.0f} {wall['ratio_to_nn_lstm']:9.2f} "
              f"{cpu['tokens_per_s']:10.0f} {cpu['ratio_to_nn_lstm']:9.2f}   {target}", flush=True)


def main() -> None:
    """Run the benchmark, print the tables and record them in bench/results/recurrent.json."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="3 rounds of 1 iteration each")
    parser.add_argument("--rounds", type=int, help="interleaved rounds (default 5, quick 3)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2, the cores here)")
    parser.add_argument("--clock", choices=list(CLOCKS), default="wall",
                        help="the clock the targets are judged by (both are printed): wall, elapsed time "
                             "(default); cpu, this process's CPU time, steadier on a busy machine with "
                             "--threads 1")
    parser.add_argument("--shapes", nargs="+", default=list(SHAPES), choices=list(SHAPES))
    parser.add_argument("--no-looped", action="store_true", help="leave out the slow looped-cell variants")
    parser.add_argument("--only", nargs="+", choices=[v[0] for v in VARIANTS], metavar="VARIANT",
                        help="these variants alone, beside nn.LSTM (the reference); recorded apart")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "recurrent.json"),
                        help="JSON file; runs with other settings already in it are kept")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rounds = args.rounds or (3 if args.quick else 5)
    variants = [v for v in VARIANTS if not (args.no_looped and v[3] is False)
                and (not args.only or v[0] in ("nn.LSTM", *args.only))]
    print(f"torch {torch.__version__}, {args.threads} threads, {rounds} interleaved rounds, vocabulary "
          f"{VOCAB}, random tokens, float32; load average {os.getloadavg()[0]:.1f}")
    run = {"settings": {"command": " ".join(sys.argv), "torch": torch.__version__, "threads": args.threads,
                        "clock": args.clock, "rounds": rounds, "quick": args.quick, "vocab": VOCAB,
                        "machine": f"{platform.machine()}, {os.cpu_count()} cpus",
                        "load_average_before": os.getloadavg()[0]}}
    for shape in args.shapes:
        hidden, steps, batch = SHAPES[shape]
        for what, make_runner, iters in zip(("lm", "layers"), (lm_runner, layers_runner), ITERS[shape]):
            torch.manual_seed(0)
            runners = {name: make_runner(make_layers(cell, options, fast, hidden), hidden, steps, batch)
                       for name, cell, options, fast in variants}
            speeds = measure(runners, rounds, 1 if args.quick else iters, steps * batch)
            # The targets are for the whole training step; the layers alone are for comparison.
            by_clock = {clock: summarize(s, judge=what == "lm") for clock, s in speeds.items()}
            label = "language-model training step" if what == "lm" else "recurrent layers alone, fwd+bwd"
            print_table(f"{shape} (2×{hidden}, {steps} steps, batch {batch}): {label}", by_clock, args.clock)
            run[f"{shape}/{what}"] = by_clock
    run["settings"]["load_average_after"] = os.getloadavg()[0]
    path = Path(args.out)
    results = json.loads(path.read_text()) if path.exists() else {}
    only = f", only {' / '.join(args.only)}" if args.only else ""
    results[f"{args.threads} threads{', quick' if args.quick else ''}{only}"] = run
    with atomic_write(path) as f:
        json.dump(results, f, indent=1)
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
