"""Dynamic evaluation's rules and defaults on the two ready-made language models.

    python bench/dynamic.py            # 2 threads; run it alone on the machine

The word model (`wikitext2`: 2 × 200 LSTM, 20,000 words) reads the first 120 lines of
WikiText-2's validation file, the character model (`shakespeare`: 2 × 256) the first 1,000
lines of its validation tenth (Tiny Shakespeare's last 10 % of lines); the RMS rule's
statistics come from the first 3,000 and 8,000 training lines. Each row is the static figure
of the one-column reading and the dynamic one, for SGD and the RMS rule at the defaults and
at the step sizes and decays around them (the authors' code: η 5e-5, λ 0.002).
Result: bench/results/dynamic.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from rnnlab.errors import RnnlabError
from rnnlab.fileio import atomic_write
from rnnlab.lm import LM, Dynamic
from rnnlab.lm.data import read_text, split_lines
from rnnlab.ready import resolve

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data"
RESULT = ROOT / "bench" / "results" / "dynamic.json"

TRIED = {  # name: (rule, η, λ); None: the default
    "sgd default": ("sgd", None, None),
    "sgd η 0.3": ("sgd", 0.3, None),
    "rms default": ("rms", None, None),
    "rms η 5e-5 λ 0.002 (authors' code)": ("rms", 5e-5, 0.002),
    "rms η 1e-4 λ 0.002": ("rms", 1e-4, 0.002),
    "rms η 5e-5 λ 0.02": ("rms", 5e-5, 0.02),
}


def texts() -> dict:
    """model name: (held-out lines, training lines for the statistics)."""
    wt2 = DATA / "wikitext-2"
    train, valid, _ = split_lines(read_text(DATA / "tinyshakespeare" / "input.txt"), 0.1, 0.0)
    return {"wikitext2": (read_text(wt2 / "wiki.valid.tokens")[:120],
                          read_text(wt2 / "wiki.train.tokens.gz")[:3000]),
            "shakespeare": (valid[:1000], train[:8000])}  # the ready model's own split


def measure(name: str, held_out: list[str], train: list[str]) -> dict:
    """The static and dynamic figures of one ready-made model, for every setting tried:
    perplexity for words, nats per character for characters."""
    lm = LM.load(resolve(name))
    figure = "loss" if lm.pipeline.level == "char" else "perplexity"
    rms = lm.gradient_rms(train)
    rows = {}
    for label, (rule, lr, decay) in TRIED.items():
        start = time.perf_counter()
        try:
            got = lm.evaluate(held_out, dynamic=Dynamic(lr=lr, decay=decay,
                                                        stats=rms if rule == "rms" else None))
        except RnnlabError as e:  # a step size that diverges
            rows[label] = {"error": str(e)}
            continue
        d = got["dynamic"]
        rows[label] = {"static": got[figure], "dynamic": d[figure], "rule": d["rule"],
                       "lr": d["lr"], "decay": d["decay"], "bptt": d["bptt"],
                       "tokens": got["tokens"], "seconds": round(time.perf_counter() - start, 1)}
        print(name, label, rows[label], flush=True)
    return {"figure": figure, "rows": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    out = {"benchmark": "dynamic", "machine": platform.machine(), "torch": torch.__version__,
           "threads": args.threads, "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    for name, (held_out, train) in texts().items():
        out[name] = measure(name, held_out, train)
    with atomic_write(RESULT) as f:
        f.write(json.dumps(out, indent=2) + "\n")
    print(f"wrote {RESULT}")


if __name__ == "__main__":
    main()
