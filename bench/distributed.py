"""Data-parallel training on CPU: 2 torchrun processes (gloo) against 1 process, side by side.

The PTB-small model (2 × 200 LSTM, 10k vocabulary, bptt 20, global batch 20, SGD, loss summed
over time) trains one epoch over the first tenth of PTB train, as

- `1 process, T threads`: `rnnlab train --threads T`;
- `2 processes (gloo)`: `torchrun --standalone --nproc_per_node=2 -m rnnlab train --threads 1`,
  each process taking 10 of the 20 columns of every batch;

repeated in interleaved rounds (the machine is shared); tokens/s is the epoch's training rate
that `rnnlab train` records in metrics.jsonl, medians over rounds, ratios within a round.

The final weights of the two runs are compared too, but after a whole epoch they differ by far
more than rounding: SGD at lr 1 on this model is chaotic, so any change in the last bit grows
(in one process, 1e-7 added to one bias became 2e-6 after 10 steps and 1.7 after 40). That the
averaging is exact is tested on short runs, to 1e-6, in tests/test_distributed.py.

    python bench/distributed.py                # 3 rounds, results in results/distributed.json
    python bench/distributed.py --rounds 1     # a quick look
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from safetensors.torch import load_file

from rnnlab.fileio import atomic_write

ROOT = Path(__file__).resolve().parent.parent
PTB = ROOT.parent / "shared" / "data" / "ptb" / "ptb.train.txt.gz"
RESULTS = ROOT / "bench" / "results" / "distributed.json"
MODEL = ["--hidden-size", "200", "--embed-size", "200", "--layers", "2", "--no-tie",
         "--bptt", "20", "--batch-size", "20", "--epochs", "1", "--no-progress", "--quiet"]


def train(variant: str, text: Path, out: Path, threads: int) -> tuple[float, float]:
    """(tokens/s of the epoch, wall seconds of the whole command) for one variant."""
    if variant == "2 processes (gloo)":
        launch = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                  "--nproc_per_node=2", "-m", "rnnlab", "train", "--threads", "1"]
    else:
        launch = [sys.executable, "-m", "rnnlab", "train", "--threads", str(threads)]
    env = dict(os.environ, OMP_NUM_THREADS="1" if "2 processes" in variant else str(threads))
    start = time.perf_counter()
    subprocess.run([*launch, str(text), *MODEL, "-o", str(out)], check=True, env=env)
    wall = time.perf_counter() - start
    record = json.loads((out / "metrics.jsonl").read_text().splitlines()[0])
    return record["tokens_per_s"], wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--fraction", type=float, default=0.1, help="share of PTB train used")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    with gzip.open(PTB, "rt", encoding="utf-8") as f:
        lines = f.read().splitlines()
    lines = lines[: int(len(lines) * args.fraction)]
    variants = {"1 process, 2 threads": 2, "1 process, 1 thread": 1, "2 processes (gloo)": 1}
    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs; PTB-small model, global batch 20, "
          f"bptt 20, one epoch of {len(lines)} lines; {args.rounds} interleaved rounds")
    rates = {v: [] for v in variants}
    walls = {v: [] for v in variants}
    diffs = []
    with tempfile.TemporaryDirectory() as tmp:
        text = Path(tmp) / "ptb-part.txt"
        text.write_text("\n".join(lines) + "\n", encoding="utf-8")
        for r in range(args.rounds):
            order = list(variants) if r % 2 == 0 else list(reversed(variants))
            for v in order:
                out = Path(tmp) / f"{r}-{v.split()[0]}-{variants[v]}"
                rate, wall = train(v, text, out, variants[v])
                rates[v].append(rate)
                walls[v].append(wall)
                print(f"  round {r + 1}: {v:24s} {rate:8,.0f} tokens/s  ({wall:.0f} s in all)",
                      flush=True)
            one = load_file(str(Path(tmp) / f"{r}-1-2" / "last" / "model.safetensors"))
            two = load_file(str(Path(tmp) / f"{r}-2-1" / "last" / "model.safetensors"))
            diffs.append(max(float((one[k] - two[k]).abs().max()) for k in one))
    base = "1 process, 2 threads"
    result = {
        "benchmark": "distributed", "machine": platform.machine(), "cpus": os.cpu_count(),
        "torch": torch.__version__, "settings": {"model": MODEL, "lines": len(lines),
                                                 "rounds": args.rounds},
        "tokens_per_s": {v: statistics.median(x) for v, x in rates.items()},
        "runs": rates, "command_seconds": walls,
        "ratio_to_1_process_2_threads": {
            v: statistics.median(a / b for a, b in zip(rates[v], rates[base])) for v in variants},
        "max_weight_difference_2_vs_1_process": max(diffs),
        "command": " ".join(["python", *sys.argv]),
    }
    print(json.dumps({k: result[k] for k in ("tokens_per_s", "ratio_to_1_process_2_threads",
                                             "max_weight_difference_2_vs_1_process")}, indent=2))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(args.out) as f:
        f.write(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
