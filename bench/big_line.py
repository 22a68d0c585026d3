"""One 200 MB line: does each command stream it in memory bounded by the vocabulary?

Writes a single-line text file of random words (a 5,000-word vocabulary, Zipf frequencies, the
shape of real text) into a temporary folder under /tmp, and a 1 MB one like it. Each step runs
in a fresh Python process on both files; its peak RSS comes from os.wait4 (that child's own,
unlike RUSAGE_CHILDREN's maximum over all children, and without parsing /usr/bin/time). The
difference between the two runs is what the long line costs, imports and model aside:

- vocab: rnnlab.text.Corpus + count_words, the vocabulary pass `rnnlab embed` makes;
- embed: `rnnlab embed`, one epoch, 20-d, one thread;
- lm-read: rnnlab.lm.data.read_text, the language model's first step (the text as lines);
- lm-data: read_text, the text pipeline's vocabulary and ids, and StreamBatches, as `rnnlab train`
  prepares data;
- train: `rnnlab train` on a tiny model for --max-steps steps.

    python bench/big_line.py              # 200 MB, about ten minutes on one core
    python bench/big_line.py --mb 20      # quicker
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from rnnlab.fileio import atomic_write

RESULTS = Path(__file__).parent / "results"

VOCAB_STEP = """
import json, sys
from rnnlab.text.corpus import Corpus
from rnnlab.word2vec.train import count_words
vocab = count_words(Corpus(sys.argv[1]), 1)
print(json.dumps({"vocab": len(vocab), "tokens": int(vocab.counts.sum())}))
"""

LM_READ_STEP = """
import json, sys
from rnnlab.lm.data import read_text
lines = read_text(sys.argv[1])
print(json.dumps({"lines": len(lines), "chars": sum(map(len, lines))}))
"""

LM_DATA_STEP = """
import json, sys
from rnnlab.lm.data import StreamBatches, read_text
from rnnlab.text.pipeline import TextPipeline
lines = read_text(sys.argv[1])
pipeline = TextPipeline()
vocab = pipeline.build_vocab(lines)
ids = pipeline.encode(lines, vocab)
data = StreamBatches(ids, 20, 35).data
print(json.dumps({"ids": len(ids), "eos": int(vocab.counts[vocab.eos_id]),
                  "tensor_bytes": data.element_size() * data.numel()}))
"""


def make_vocabulary(n: int, rng: np.random.Generator) -> list[str]:
    """`n` distinct made-up lowercase words of 2 to 10 letters."""
    words: set[str] = set()
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    while len(words) < n:
        words.add("".join(rng.choice(letters, rng.integers(2, 11))))
    return sorted(words)


def write_line(path: Path, mb: float, vocab_size: int, seed: int) -> int:
    """A file of one line of about `mb` MB of Zipf-distributed words; returns the word count."""
    rng = np.random.default_rng(seed)
    words = np.array(make_vocabulary(vocab_size, rng))
    p = 1.0 / np.arange(1, vocab_size + 1)
    target, written, count = int(mb * 1e6), 0, 0
    with open(path, "w", encoding="ascii") as f:
        while written < target:
            chunk = " ".join(words[rng.choice(vocab_size, 1 << 20, p=p / p.sum())]) + " "
            chunk = chunk[: target - written]
            f.write(chunk)
            written += len(chunk)
            count += len(chunk.split())
        f.write("\n")
    return count


def measure(name: str, argv: list[str], env: dict) -> dict:
    """Run `argv`; its exit code, seconds, peak RSS (MB) and the last stdout line."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=out, stderr=err, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode()
    rc = os.waitstatus_to_exitcode(status)
    result = {"exit_code": rc, "seconds": round(seconds, 1), "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
              "output": (stdout.strip().splitlines() or [""])[-1]}
    if rc != 0:
        result["stderr"] = stderr.strip()[-2000:]
    print(f"{name:16s} exit {rc}  {seconds:7.1f} s  peak RSS {usage.ru_maxrss / 1024:8.1f} MB  "
          f"{result['output'][:90]}", flush=True)
    return result


def steps(text: Path, out: Path, max_steps: int) -> dict[str, list[str]]:
    """The command line of every step on the file `text`, writing under `out`."""
    py = [sys.executable]
    return {
        "vocab": py + ["-c", VOCAB_STEP, str(text)],
        "embed": py + ["-m", "rnnlab", "embed", str(text), "-o", str(out / "v.bin"), "--size", "20",
                       "--epochs", "1", "--threads", "1", "--min-count", "1", "--quiet"],
        "lm-read": py + ["-c", LM_READ_STEP, str(text)],
        "lm-data": py + ["-c", LM_DATA_STEP, str(text)],
        "train": py + ["-m", "rnnlab", "train", str(text), "-o", str(out / "lm"), "--max-steps",
                       str(max_steps), "--layers", "1", "--hidden-size", "16", "--min-count", "1",
                       "--batch-size", "20", "--bptt", "35", "--threads", "1", "--no-progress", "--quiet"],
    }


def main() -> None:
    """Write the lines, run every step on both, print and save the results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=200, help="size of the line in MB (200)")
    parser.add_argument("--small-mb", type=float, default=1, help="size of the reference line (1)")
    parser.add_argument("--vocab", type=int, default=5000, help="distinct words (5000)")
    parser.add_argument("--max-steps", type=int, default=5, help="training steps of `rnnlab train`")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS / "big_line.json")
    args = parser.parse_args()

    # One thread everywhere: the machine is shared and memory, not speed, is measured.
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1"}
    tmp = Path(tempfile.mkdtemp(prefix="rnnlab-big-line-", dir="/tmp"))
    try:
        words = {}
        for size, mb in (("small", args.small_mb), ("big", args.mb)):
            start = time.perf_counter()
            words[size] = write_line(tmp / f"{size}.txt", mb, args.vocab, args.seed)
            print(f"wrote {size}.txt: {mb:g} MB, {words[size]} words, one line, "
                  f"in {time.perf_counter() - start:.0f} s")
        settings = {**{k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
                    "words": words["big"], "small_words": words["small"],
                    "bytes_per_word": round((tmp / "big.txt").stat().st_size / words["big"], 2),
                    "python": platform.python_version(), "machine": platform.machine(),
                    "cpus": os.cpu_count()}
        print(json.dumps(settings))
        results = {}
        for size in ("small", "big"):
            (tmp / size).mkdir()
            for name, argv in steps(tmp / f"{size}.txt", tmp / size, args.max_steps).items():
                results.setdefault(name, {})[size] = measure(f"{name} ({size})", argv, env)
    finally:
        shutil.rmtree(tmp)
    print(f"{'step':8s} {'seconds':>8s} {'peak MB':>8s} {'+ MB':>8s} {'bytes/word':>10s}")
    for name, r in results.items():
        growth = r["big"]["peak_rss_mb"] - r["small"]["peak_rss_mb"]
        r["growth_mb"] = round(growth, 1)
        r["bytes_per_word"] = round(growth * 2**20 / (words["big"] - words["small"]), 2)
        print(f"{name:8s} {r['big']['seconds']:8.1f} {r['big']['peak_rss_mb']:8.1f} "
              f"{growth:8.1f} {r['bytes_per_word']:10.2f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(args.out, "w") as f:
        json.dump({"settings": settings, "results": results}, f, indent=1)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
