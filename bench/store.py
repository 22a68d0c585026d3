"""Corpora bigger than memory: peak memory and speed of `prepare`, `embed` and `train` on stores.

    python bench/store.py make            # build the 0.5, 1.5 and 5 GB corpora under --work
    python bench/store.py run             # measure them (about 40 minutes here, alone)
    python bench/store.py clean           # delete the generated corpora and stores
    python bench/store.py speed           # only word2vec from the store against the text
    python bench/store.py run --sizes 0.05 --quick   # a smoke test in a few minutes

The corpora concatenate the English benchmark corpora (WikiText-2 train, War and Peace, the
King James Bible, the text8-style Wikipedia sample), each copy's lines shuffled with its own
seed, until the size is reached. Each command runs as its own process (the real CLI); its peak
memory is measured two ways: ru_maxrss from wait4 (the process itself) and the largest sum of
the resident sets of the process and all its descendants, sampled every 20 ms from /proc
(prepare's tokenizing workers are separate processes). Words are whitespace tokens.

Required: every peak below 2 GB and growing by less than 10 % from the smallest corpus to the
largest; prepare at >= 5M words/s on a plain text file with both cores; word2vec's words/s on a
store within 5 % of the same run from the text in memory. Results: bench/results/store.json.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

from rnnlab.fileio import atomic_write

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data"
RESULTS = ROOT / "bench" / "results"
SOURCES = ["wikitext-2/wiki.train.tokens.gz", "war-and-peace/warandpeace.txt.gz",
           "kjv-bible/kjv.txt.gz", "gensim-test-corpora/enwiki206-text8style.txt.gz"]
GB = 10**9
# word2vec settings for the memory runs: a cheap pass over ~1G words (CBOW, 50 dimensions, a
# window of 2, one noise word, strong subsampling); memory does not depend on them (the matrices
# are vocabulary x 50 floats). The speed comparison uses `rnnlab embed`'s defaults.
EMBED = ["--cbow", "--embed-size", "50", "--window", "2", "--negative", "1", "--sample", "1e-4",
         "--epochs", "1", "--min-count", "5"]
SPEED_BYTES = 50 * 10**6  # the text of the word2vec speed comparison: the first 50 MB
# The language model: 50,000 words through the adaptive softmax, no validation text (the
# memory of a run over the store, not of an evaluation).
TRAIN = ["--max-steps", "200", "--max-vocab", "50000", "--decoder", "adaptive",
         "--hidden-size", "200", "--layers", "2", "--batch-size", "20", "--bptt", "35",
         "--epochs", "1"]


def corpus_lines() -> list[str]:
    """Every line of the source corpora, newline kept."""
    lines = []
    for name in SOURCES:
        with gzip.open(DATA / name, "rt", encoding="utf-8") as f:
            lines.extend(line if line.endswith("\n") else line + "\n" for line in f)
    return lines


def make(work: Path, sizes: list[float]) -> None:
    """Write corpus-<size>GB.txt for each size: shuffled copies of the sources, concatenated."""
    work.mkdir(parents=True, exist_ok=True)
    lines = corpus_lines()
    for size in sizes:
        path = work / f"corpus-{size:g}GB.txt"
        if path.exists():
            continue
        part, written, seed = path.with_suffix(".part"), 0, 0
        with open(part, "w", encoding="utf-8") as f:
            while written < size * GB:
                copy = lines[:]
                random.Random(seed).shuffle(copy)
                text = "".join(copy)
                f.write(text)
                written += len(text.encode())
                seed += 1
        part.rename(path)
        print(f"{path}: {written / GB:.2f} GB, {seed} copies", flush=True)


def tree_rss(pid: int) -> int:
    """Resident bytes of a process and all its descendants, from /proc."""
    total, stack = 0, [pid]
    while stack:
        p = stack.pop()
        try:
            with open(f"/proc/{p}/statm") as f:
                total += int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
            with open(f"/proc/{p}/task/{p}/children") as f:
                stack.extend(int(c) for c in f.read().split())
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total


def measure(command: list[str]) -> dict:
    """Run a command; its seconds, wait4 peak RSS and sampled peak RSS of its process tree."""
    start = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    peak, done = [0], threading.Event()

    def sample() -> None:
        while not done.wait(0.02):
            peak[0] = max(peak[0], tree_rss(proc.pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    done.set()
    sampler.join()
    stderr = proc.stderr.read()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({proc.returncode}):\n{stderr[-2000:]}")
    return {"seconds": round(seconds, 2), "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
            "peak_tree_rss_mb": round(peak[0] / 2**20, 1), "stderr_tail": stderr[-400:]}


def rnnlab(*args: str) -> list[str]:
    """The real CLI, as a user runs it."""
    return [sys.executable, "-m", "rnnlab", *args]


def run_size(work: Path, size: float) -> dict:
    """prepare, embed --epochs 1 and train --max-steps 200 on one corpus; a row measured
    before (its JSON line in work/rows.jsonl) is kept."""
    done = work / "rows.jsonl"
    for line in done.read_text().splitlines() if done.exists() else []:
        if str(size) in json.loads(line):
            return json.loads(line)[str(size)]
    text = work / f"corpus-{size:g}GB.txt"
    store = work / f"store-{size:g}GB"
    row = {"size_gb": round(text.stat().st_size / GB, 3)}
    row["prepare"] = measure(rnnlab("prepare", str(text), "-o", str(store), "--overwrite",
                                    "--no-progress"))
    config = json.loads((store / "config.json").read_text())
    # Whitespace tokens: every token but the one end marker of each line with words.
    words = row["words"] = config["tokens"] - config["lines"]
    row["vocabulary"] = config["vocab_size"]
    row["prepare"]["words_per_s"] = round(words / row["prepare"]["seconds"])
    vectors = work / f"vectors-{size:g}GB.bin"
    row["embed"] = measure(rnnlab("embed", str(store), "-o", str(vectors), "--overwrite",
                                  "--no-progress", *EMBED))
    row["embed"]["words_per_s"] = round(words / row["embed"]["seconds"])
    model = work / f"lm-{size:g}GB-run"
    row["train"] = measure(rnnlab("train", str(store), "-o", str(model), "--overwrite",
                                  "--no-progress", *TRAIN))
    print(json.dumps({size: row}), flush=True)
    with open(done, "a") as f:
        f.write(json.dumps({size: row}) + "\n")
    return row


def embed_speed(work: Path, size: float, repeats: int) -> dict:
    """word2vec words/s (the epoch's own figure: training time only) of `rnnlab embed` with its
    defaults for one epoch, from a text in memory and from its store, in alternation
    (`repeats` pairs after one not counted); the median of the pairs' ratios."""
    text, store = work / "speed.txt", work / "speed-store"
    with open(work / f"corpus-{size:g}GB.txt", "rb") as f:
        head = f.read(SPEED_BYTES)
    text.write_bytes(head[: head.rfind(b"\n") + 1])
    measure(rnnlab("prepare", str(text), "-o", str(store), "--overwrite", "--quiet"))
    runs = {"text": [], "store": []}
    # A first pair warms the page cache and numba's compiled-code cache; it is not counted
    # (measured cold, the text's first epoch ran at 0.6 of the next ones).
    for repeat in range(repeats + 1):
        for name, source, extra in (("text", text, ["--store", "never"]), ("store", store, [])):
            vectors = work / f"speed-{name}-vectors"
            run = measure(rnnlab("embed", str(source), "-o", str(vectors), "--overwrite",
                                 "--no-progress", "--epochs", "1", *extra))
            run["train_words_per_s"] = json.loads((vectors / "config.json").read_text()
                                                  )["loss_history"][-1]["words_per_s"]
            print(f"embed from the {name}: {run['train_words_per_s']:,} words/s, "
                  f"{run['seconds']} s", flush=True)
            if repeat:
                runs[name].append(run)
    ratios = [s["train_words_per_s"] / t["train_words_per_s"]
              for t, s in zip(runs["text"], runs["store"])]
    out = {"text_bytes": text.stat().st_size, "repeats": repeats}
    for name, got in runs.items():
        out[name] = {"train_words_per_s": [r["train_words_per_s"] for r in got],
                     "seconds": [r["seconds"] for r in got],
                     "median_words_per_s": statistics.median(r["train_words_per_s"] for r in got),
                     "median_seconds": statistics.median(r["seconds"] for r in got),
                     "peak_tree_rss_mb": max(r["peak_tree_rss_mb"] for r in got)}
    out["ratios_store_to_text"] = [round(r, 4) for r in ratios]
    out["ratio_store_to_text"] = round(statistics.median(ratios), 4)
    return out


def speed(args: argparse.Namespace) -> None:
    """The word2vec comparison alone, merged into the results' `embed_speed`."""
    got = embed_speed(args.work, args.sizes[0], args.repeats)
    print(json.dumps(got, indent=2))
    if not args.quick:
        path = RESULTS / "store.json"
        result = json.loads(path.read_text())
        result["embed_speed"] = got
        with atomic_write(path) as f:
            f.write(json.dumps(result, indent=2) + "\n")


def run(args: argparse.Namespace) -> None:
    """Measure every size, then the word2vec speed comparison on the smallest."""
    rows = {f"{size:g}GB": run_size(args.work, size) for size in args.sizes}
    first, last = rows[f"{args.sizes[0]:g}GB"], rows[f"{args.sizes[-1]:g}GB"]
    growth = {cmd: round(last[cmd]["peak_tree_rss_mb"] / first[cmd]["peak_tree_rss_mb"] - 1, 4)
              for cmd in ("prepare", "embed", "train")}
    result = {
        "benchmark": "store", "machine": platform.machine(), "cpus": os.cpu_count(),
        "alone": True, "load_average_start": os.getloadavg()[0],
        "embed_settings": EMBED, "train_settings": TRAIN, "sizes": rows,
        "peak_growth_smallest_to_largest": growth,
        "embed_speed": embed_speed(args.work, args.sizes[0], args.repeats),
    }
    if not args.quick:
        with atomic_write(RESULTS / "store.json") as f:
            f.write(json.dumps(result, indent=2) + "\n")
    print(json.dumps({"growth": growth, "embed_speed": result["embed_speed"]}, indent=2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("action", choices=["make", "run", "speed", "clean"])
    parser.add_argument("--work", type=Path, default=Path("/tmp/rnnlab-bench/store"))
    parser.add_argument("--sizes", type=float, nargs="+", default=[0.5, 1.5, 5.0])
    parser.add_argument("--quick", action="store_true", help="do not write the results")
    parser.add_argument("--repeats", type=int, default=3,
                        help="word2vec speed: pairs of runs (text, store) in alternation")
    args = parser.parse_args()
    if args.action == "clean":
        shutil.rmtree(args.work, ignore_errors=True)
        return
    make(args.work, args.sizes[:1] if args.action == "speed" else args.sizes)
    if args.action == "run":
        run(args)
    elif args.action == "speed":
        speed(args)


if __name__ == "__main__":
    main()
