"""PTB word-level language models: Zaremba et al.'s small config, a ≤6M-parameter model in ≤60
minutes, and word2vec-initialised against random embeddings.

    python bench/lm_ptb.py small            # benchmark 1: seeds 1 and 2 (13 epochs each; resumes)
    python bench/lm_ptb.py small --run seed2    # one seed only (e.g. two side by side)
    python bench/lm_ptb.py best             # benchmark 2 (60-minute budget)
    python bench/lm_ptb.py vectors          # benchmark 3: the lecture's recipe, --vectors vs random
    python bench/lm_ptb.py small --report   # write the JSON from the epochs done so far

Each run keeps its model folder under --work (outside the repository) and resumes from its
`last` checkpoint when started again; results go to bench/results/lm_ptb_<name>.json.
Data: ../shared/data/ptb (Mikolov's PTB, 10k vocabulary; `<eos>` is rnnlab's `</s>`).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

from rnnlab.fileio import atomic_write
from rnnlab.lm import train_language_model

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data" / "ptb"
RESULTS = ROOT / "bench" / "results"
FILES = {"train": DATA / "ptb.train.txt.gz", "valid": DATA / "ptb.valid.txt",
         "test": DATA / "ptb.test.txt"}

# Zaremba et al. 2014, "small": 2 × 200, no dropout, U(±0.1), SGD lr 1 halved every epoch
# after epoch 4, 13 epochs, clip 5, bptt 20, batch 20, loss summed over time. Paper: 120.7 / 114.5.
SMALL = dict(cell="lstm", layers=2, hidden_size=200, embed_size=200, dropout=0.0,
             tie_weights=False, init_range=0.1, optimizer="sgd", lr=1.0, schedule="zaremba",
             lr_decay=0.5, decay_after=4, epochs=13, clip=5.0, bptt=20, batch_size=20,
             loss="sum", eval_batch_size=10, seed=1)

# Benchmark 2: at most 6M parameters, at most 60 minutes of training. Tied 2 × 350 LSTM with
# dropout 0.4 (≈ 5.5M parameters). At ~3,300 tokens/s (2 threads) 60 minutes are ~13 PTB epochs,
# so Zaremba's schedule is compressed to anneal within them: lr 1 for 5 epochs, then × 0.7.
BEST = dict(SMALL, hidden_size=350, embed_size=350, tie_weights=True, dropout=0.4,
            init_range=0.05, bptt=35, decay_after=5, lr_decay=0.7, epochs=14,
            max_minutes=60.0)

# Benchmark 3, the lecture's recipe as `rnnlab train TRAIN --vectors vectors.bin` runs it: the
# small config with `rnnlab embed`'s default vectors (skip-gram, d100, window 5, negative 5,
# 5 epochs) trained on PTB train, sizes from the vectors (embedding = hidden = 100, tied), the
# vectors fine-tuned; against the same model started at random, for the same 2 epochs.
VECTOR_DIM = 100
VECTORS = dict(SMALL, embed_size=None, hidden_size=None, tie_weights=True, epochs=2)
RANDOM = dict(VECTORS, embed_size=VECTOR_DIM, hidden_size=VECTOR_DIM)

PAPER = {"small": {"valid_ppl": 120.7, "test_ppl": 114.5,
                   # a plain torch.nn.LSTM reproduction: summed loss, seed 1, on this kind of machine
                   "anchor_here_valid_ppl_by_epoch": [182, 145, 135, 130, 119, 118],
                   "anchor_here_valid_test": [117.2, 113.3]}}
REQUIRED = {"small": {"test_ppl_max": 116.0, "of": "median over seeds"}}


def count_params(model: torch.nn.Module) -> int:
    """Parameters, tied ones once."""
    return sum(p.numel() for p in model.parameters())


def report(name: str, runs: dict[str, Path], settings: dict[str, dict], extra: dict) -> dict:
    """Write bench/results/lm_ptb_<name>.json from the runs' metrics.jsonl (done or not)."""
    out = {"benchmark": f"lm_ptb_{name}", "machine": platform.machine(),
           "torch": torch.__version__, "threads": torch.get_num_threads(), "runs": {}, **extra}
    for run, folder in runs.items():
        lines = []
        if (folder / "metrics.jsonl").exists():
            lines = [json.loads(x) for x in (folder / "metrics.jsonl").read_text().splitlines()]
        epochs = [r for r in lines if "epoch" in r]
        test = next((r for r in lines if "test_ppl" in r), None)
        out["runs"][run] = {
            "settings": settings[run], "epochs_done": len(epochs),
            "valid_ppl_by_epoch": [round(r["valid_ppl"], 2) for r in epochs],
            "train_ppl_by_epoch": [round(r["train_ppl"], 2) for r in epochs],
            "seconds_by_epoch": [r["seconds"] for r in epochs],
            "tokens_per_s": [r["tokens_per_s"] for r in epochs],
            "best_valid_ppl": min((r["valid_ppl"] for r in epochs), default=None),
            "test_ppl": test["test_ppl"] if test else None,
            "finished": test is not None,
        }
    tests = [r["test_ppl"] for r in out["runs"].values() if r["test_ppl"] is not None]
    if len(runs) > 1 and tests:
        out["median_test_ppl"] = statistics.median(tests)
        out["finished_runs"] = len(tests)
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"lm_ptb_{name}.json"
    with atomic_write(path) as f:
        f.write(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out["runs"], indent=2))
    print(f"wrote {path}")
    return out


def run(folder: Path, settings: dict) -> dict:
    """Train (or resume) one configuration in `folder`; return summary numbers."""
    resume = (folder / "last" / "training.json").exists()
    print(f"{'resuming' if resume else 'training'} {folder}: {json.dumps(settings)}", flush=True)
    start = time.perf_counter()
    if resume:
        runtime = {k: v for k, v in settings.items() if k in ("epochs", "max_minutes")}
        result = train_language_model(None, folder, resume=True, report=say, **runtime)
    else:
        result = train_language_model(FILES["train"], folder, valid=str(FILES["valid"]),
                                      test=str(FILES["test"]), report=say, **settings)
    return {"params": count_params(result.lm.model), "stopped": result.stopped,
            "test": result.test, "wall_s_this_run": round(time.perf_counter() - start)}


def say(kind: str, data: dict) -> None:
    """Print the trainer's records and notes (no progress bar: the log stays readable)."""
    if kind == "metrics":
        print(json.dumps(data), flush=True)
    elif kind == "note":
        print(data["message"], flush=True)


def word2vec_file(work: Path, dim: int) -> Path:
    """`rnnlab embed`'s default vectors (skip-gram, window 5, negative 5, 5 epochs) trained
    on PTB train with min-count 1, `</s>` for each line end, as a word2vec .bin file."""
    path = work / f"ptb-rnnlab-w2v-{dim}.bin"
    if path.exists():
        return path
    from rnnlab.lm.data import read_text
    from rnnlab.text.pipeline import TextPipeline
    from rnnlab.word2vec import Word2Vec

    sentences = list(TextPipeline().token_lines(read_text(FILES["train"])))
    start = time.perf_counter()
    model = Word2Vec(sentences, vector_size=dim, min_count=1, workers=torch.get_num_threads(),
                     seed=1)
    model.wv.save(path)
    print(f"word2vec: {len(model.wv)} words x {dim} in {time.perf_counter() - start:.0f} s",
          flush=True)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("which", choices=["small", "best", "vectors"])
    parser.add_argument("--work", type=Path, default=Path("/tmp/rnnlab-bench"),
                        help="folder for the model folders (outside the repository)")
    parser.add_argument("--report", action="store_true",
                        help="only write the JSON from the epochs done so far")
    parser.add_argument("--run", help="train only this run of the benchmark (e.g. random or "
                                      "word2vec, to run them side by side); the JSON covers all")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (1 is fastest on a busy 2-core machine)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    work = args.work
    if args.which == "small":
        runs = {"seed1": work / "ptb_small", "seed2": work / "ptb_small_seed2"}
        settings = {"seed1": SMALL, "seed2": dict(SMALL, seed=2)}
    elif args.which == "best":
        runs, settings = {"best": work / "ptb_best"}, {"best": BEST}
    else:
        runs = {"random": work / "ptb_vec_random", "word2vec": work / "ptb_vec_w2v"}
        settings = {"random": RANDOM, "word2vec": dict(VECTORS, vectors=None)}
    extra = {"paper": PAPER.get(args.which), "required": REQUIRED.get(args.which),
             "command": " ".join(["python", *sys.argv])}
    previous = RESULTS / f"lm_ptb_{args.which}.json"
    if previous.exists():  # keep the summaries of earlier (or side-by-side) runs
        kept = ("command",) if args.report else ()
        extra |= {k: v for k, v in json.loads(previous.read_text()).items()
                  if k.endswith("_summary") or k in kept}
    if not args.report:
        for run_name, folder in runs.items():
            if args.run and run_name != args.run:
                continue
            cfg = dict(settings[run_name])
            if run_name == "word2vec":
                cfg["vectors"] = str(word2vec_file(work, VECTOR_DIM))
                settings[run_name] = cfg
            extra[f"{run_name}_summary"] = run(folder, cfg)
    report(args.which, runs, settings, extra)


if __name__ == "__main__":
    main()
