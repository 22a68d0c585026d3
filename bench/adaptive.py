"""Adaptive against full softmax on WikiText-2's 33k-word vocabulary, 30 minutes each.

    python bench/adaptive.py              # both runs side by side, one thread and one core each
    python bench/adaptive.py --minutes 1  # a smoke test (results not written)
    python bench/adaptive.py --report     # write the results from the runs already done

The same tied 2 x 256 LSTM, the same data, schedule and seed; only the decoder differs. Each
run is its own process pinned to its own core with one torch thread, so the two share nothing
but the memory bus. Training stops after --minutes of training time (the trainer's clock,
validation included, as `rnnlab train --max-minutes`), then the model as it stands is scored on
the validation text; perplexities of both decoders are exact (normalised over the whole
vocabulary), so they compare. Tokens/s: training tokens over training seconds, per epoch.
Required: adaptive at >= 2x the tokens/s of full, and the lower validation perplexity at the
end. Results: bench/results/adaptive.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
from pathlib import Path

import torch

from rnnlab.fileio import atomic_write

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data" / "wikitext-2"
RESULTS = ROOT / "bench" / "results"
FILES = {"train": DATA / "wiki.train.tokens.gz", "valid": DATA / "wiki.valid.tokens"}
# The ready WikiText-2 model's recipe (SGD lr 1, summed loss, dropout 0.3), a little wider and
# over the whole vocabulary.
SETTINGS = dict(level="word", layers=2, hidden_size=256, dropout=0.3, lr=1.0, epochs=1000,
                seed=1)
DECODERS = ("full", "adaptive")


def count_params(model: torch.nn.Module) -> int:
    """Parameters, tied ones once."""
    return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())


def train_one(decoder: str, work: Path, minutes: float) -> dict:
    """One run in this process (one thread): its records, throughput and last validation."""
    from rnnlab.lm import train_language_model

    torch.set_num_threads(1)
    rates: list[float] = []
    last_rate = [None]

    def say(kind: str, data: dict) -> None:
        if kind == "step" and "tokens_per_s" in data:
            last_rate[0] = data["tokens_per_s"]  # the epoch's average so far
        elif kind == "epoch_end" and last_rate[0] is not None:
            rates.append(round(last_rate[0]))
            last_rate[0] = None
        elif kind == "metrics":
            print(decoder, json.dumps(data), flush=True)

    folder = work / f"wt2-{decoder}"
    result = train_language_model(FILES["train"], folder, valid=str(FILES["valid"]),
                                  overwrite=True, report=say, decoder=decoder,
                                  max_minutes=minutes, **SETTINGS)
    records = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    return {"decoder": decoder, "params": count_params(result.lm.model),
            "config": {k: v for k, v in result.lm.model.config.items()
                       if k in ("decoder", "cutoffs", "vocab_size")},
            "stopped": result.stopped, "steps": records[-1]["step"],
            "epochs": round(records[-1]["epoch"], 3),
            "tokens_per_s_by_epoch": rates, "tokens_per_s_median": statistics.median(rates),
            "valid_ppl_end": records[-1]["valid_ppl"],
            "valid_ppl_curve": [(round(r["epoch"], 3), r["valid_ppl"]) for r in records]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--work", type=Path, default=Path("/tmp/rnnlab-bench/adaptive"))
    parser.add_argument("--report", action="store_true",
                        help="only write the results of the runs in --work")
    parser.add_argument("--run", choices=DECODERS, help=argparse.SUPPRESS)  # one child's run
    args = parser.parse_args()
    if args.run:
        out = train_one(args.run, args.work, args.minutes)
        (args.work / f"{args.run}.json").write_text(json.dumps(out))
        return
    args.work.mkdir(parents=True, exist_ok=True)
    load = None
    if not args.report:
        load = os.getloadavg()[0]
        children = [subprocess.Popen(["taskset", "-c", str(core), sys.executable, __file__,
                                      "--run", decoder, "--minutes", str(args.minutes),
                                      "--work", str(args.work)])
                    for core, decoder in enumerate(DECODERS)]
        if any(child.wait() for child in children):
            raise SystemExit("a run failed")
    report(args.work, args.minutes, load)


def report(work: Path, minutes: float, load: float | None) -> None:
    """Compare the two runs saved in `work` and write the results (for a full-length run)."""
    runs = {d: json.loads((work / f"{d}.json").read_text()) for d in DECODERS}
    full, adaptive = runs["full"], runs["adaptive"]
    result = {
        "benchmark": "adaptive", "machine": platform.machine(), "torch": torch.__version__,
        "side_by_side": "two runs, one thread each, each pinned to its own core",
        "load_average_start": load, "minutes": minutes, "settings": SETTINGS,
        "runs": runs,
        "speedup_tokens_per_s": round(adaptive["tokens_per_s_median"]
                                      / full["tokens_per_s_median"], 3),
        "required": {"speedup": ">= 2", "valid_ppl": "adaptive below full at the end"},
    }
    result["passed"] = (result["speedup_tokens_per_s"] >= 2
                        and adaptive["valid_ppl_end"] < full["valid_ppl_end"])
    if minutes >= 30:
        with atomic_write(RESULTS / "adaptive.json") as f:
            f.write(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("speedup_tokens_per_s", "passed")}))


if __name__ == "__main__":
    main()
