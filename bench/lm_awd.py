"""Beyond Zaremba: AWD-LSTM's regularisers and schedule, and dynamic evaluation, on a CPU budget.

    python bench/lm_awd.py ptb                    # ≤ 6M parameters, 60 minutes of training
    python bench/lm_awd.py ptb-light              # batch 40, milder regularisers (it did worse)
    python bench/lm_awd.py ptb-b40                # batch 40, the first hour's regularisers
    python bench/lm_awd.py ptb-long               # ptb-b40 for 150 minutes, a slower schedule
    python bench/lm_awd.py wikitext2              # ≤ 10M parameters, 60 minutes
    python bench/lm_awd.py shakespeare            # characters, 30 minutes
    python bench/lm_awd.py shakespeare-plain      # its baseline: plain dropout, no averaging
    python bench/lm_awd.py shakespeare-mogrifier  # the same with the Mogrifier cell
    python bench/lm_awd.py ablation --run no-weight-drop --threads 1   # one technique off

A row trains one epoch, then as many more as its first epochs' pace fits in the budget (the
epochs' training seconds: evaluation excluded), the last `finetune` of them AWD-LSTM's
fine-tuning (from the best weights, the weights averaged over every step; more of them when
epochs run faster than planned once it has started). It then scores the
best model on the test text (Tiny Shakespeare: on the validation tenth), and the PTB model
also with dynamic evaluation (segments of 5 tokens; the SGD or RMS rule, η and λ chosen on
the first fifth of the validation text) and with a neural cache (AWD-LSTM's PTB values); the
records are written before the dynamic evaluation, and again with it. Runs keep their folders
under --work and resume: a run stopped is finished by the same command.
Results: bench/results/lm_<corpus>_awd.json, one record per row and way of scoring
(`corpus`, `minutes`, `params` with tied weights once, `dynamic`, `test_ppl`).

The ablation trains the PTB hour's model with one technique off, for the same number of
epochs (equal tokens; variable BPTT makes the step counts differ by a few per cent), one seed
each; two one-thread runs side by side are fair to each other.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from pathlib import Path

import torch
from lm_ptb import FILES as PTB
from lm_ptb import count_params, say
from lm_use import FAST

from rnnlab.errors import RnnlabError
from rnnlab.fileio import atomic_write
from rnnlab.lm import LM, Cache, Dynamic, train_language_model
from rnnlab.lm.data import read_text

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data"
RESULTS = ROOT / "bench" / "results"
WT2 = {"train": DATA / "wikitext-2" / "wiki.train.tokens.gz",
       "valid": DATA / "wikitext-2" / "wiki.valid.tokens",
       "test": DATA / "wikitext-2" / "wiki.test.tokens"}
SHAKESPEARE = {"train": DATA / "tinyshakespeare" / "input.txt"}

# The PTB hour (also the ablation's base): the tied 2 × 350 LSTM of the Zaremba-style
# 60-minute benchmark (bptt 35, batch 20, lr annealed × 0.7 an epoch), with AWD-LSTM's
# regularisers at milder rates than for its 1150-unit model trained 500 epochs (an hour is ~12
# epochs: a small model, briefly trained, underfits before it overfits), its per-token loss at
# lr 30 with clip 0.25 and variable BPTT, and 2 fine-tuning epochs that average the weights
# (NT-ASGD itself would not trigger while the rate falls). The adaptive softmax (head: the words
# covering 85 % of the tokens) makes a step 1.6 times faster on this machine (3,543 against
# 2,157 tokens/s, 2 threads; 5.60M parameters).
PTB_HOUR = dict(
    cell="lstm", layers=2, hidden_size=350, embed_size=350, tie_weights=True, init_range=0.05,
    decoder="adaptive", optimizer="sgd", loss="mean", lr=30.0, clip=0.25, schedule="zaremba",
    decay_after=4, lr_decay=0.7, bptt=35, variable_bptt=True, batch_size=20, eval_batch_size=10,
    weight_decay=1.2e-6, weight_drop=0.3, dropout_input=0.3, dropout_hidden=0.2,
    dropout_output=0.3, dropout_words=0.05, ar=2.0, tar=1.0, asgd=False, seed=1)
PTB_FINETUNE = 2

# The PTB hour at batch 40 (the WikiText-2 hour's model ran 1.5 times as many tokens a second
# as at 20), with milder regularisers (in the first hour the training loss, dropout on, stayed
# above 4.2 while validation still fell at every epoch) and lr 30 kept for 5 epochs, then 3
# averaged fine-tuning epochs. It did worse: 17 epochs in the hour, but validation stalled near
# 98 from the 11th epoch while the training loss fell to 3.8 (bench/results/lm_ptb_awd.json).
PTB_LIGHT = dict(PTB_HOUR, batch_size=40, decay_after=5, weight_drop=0.2, dropout_input=0.15,
                 dropout_hidden=0.1, dropout_output=0.2, dropout_words=0.0)
PTB_LIGHT_FINETUNE = 3

# The first hour's regularisers at batch 40 (~1.5 times the tokens a second: 17 to 26 epochs
# in an hour, as the machine's pace goes, against 11), lr 30 kept for 10 epochs and then × 0.8
# an epoch (the first hour's validation still fell at every epoch when the budget ended; the
# light one's had stalled at a low rate), and 4 averaged fine-tuning epochs. It did better:
# 19 epochs, test 84.1, dynamic evaluation 78.2, cache 76.4 (bench/results/lm_ptb_awd.json).
PTB_B40 = dict(PTB_HOUR, batch_size=40, decay_after=10, lr_decay=0.8)
PTB_B40_FINETUNE = 4

# The b40 hour with AWD-LSTM's own PTB rates (weight drop 0.5, locked dropout 0.4 / 0.25 / 0.4,
# embedding dropout 0.1), all else equal: the light hour did worse than b40 and, after the rate
# began to fall, b40's training perplexity (dropout on) fell to 57 while validation's stayed
# at 88, so the model overfits within the hour. It underfit instead: 21 epochs, validation
# behind b40's at every one, averaged 91.7, test 87.7 (bench/results/lm_ptb_awd.json).
PTB_HEAVY = dict(PTB_B40, weight_drop=0.5, dropout_input=0.4, dropout_hidden=0.25,
                 dropout_output=0.4, dropout_words=0.1)

# The b40 hour averaging for longer at a higher rate: in the ablation an averaged epoch at lr 30
# took validation from 135.8 to 113.8 (unaveraged, the same epoch spiked to 194.6), b40's 4
# averaged epochs from lr 7.9 gained 5.9 and ptb-light's at lr 0.85 only 1.8, so here the rate
# falls from the 9th epoch by only × 0.9 an epoch, and the last 11 epochs fine-tune, averaging
# while it falls (from lr 19.7 to 6.9 in the run). The best hour: 22 epochs (fine-tuning
# restarted from the 9th, the 10th and 11th having jumped at lr 24 and 22), valid 86.8, test
# 83.4 (bench/results/lm_ptb_awd.json).
PTB_AVERAGED = dict(PTB_B40, decay_after=8, lr_decay=0.9)
PTB_AVERAGED_FINETUNE = 11

# The same for 150 minutes (~50 epochs at the pace that ran the hour): lr 30 for 20 epochs,
# then × 0.93 an epoch (~4 at the 48th), and 8 averaged fine-tuning epochs. At 130 minutes
# (49 epochs) it overfit: validation stalled at 92.5–93.2 from the 31st epoch while the training
# perplexity fell to 44, averaging reached 88.8, test 83.6 (bench/results/lm_ptb_awd.json).
PTB_LONG = dict(PTB_B40, decay_after=20, lr_decay=0.93)
PTB_LONG_FINETUNE = 8

# Each technique off in turn (the others as in the PTB hour).
ABLATION = {
    "all": {},
    "no-weight-drop": {"weight_drop": 0.0},
    "no-locked-dropout": {"dropout_input": 0.0, "dropout_hidden": 0.0, "dropout_output": 0.0},
    "no-embedding-dropout": {"dropout_words": 0.0},
    "no-ar-tar": {"ar": 0.0, "tar": 0.0},
    "no-variable-bptt": {"variable_bptt": False},
    "no-averaging": {"finetune": 0},
}
ABLATION_EPOCHS = 4  # 3 of training and, where averaging is on, 1 of fine-tuning

# WikiText-2 (33,278 words): tied 2 × 256 with the adaptive softmax (9.73M parameters), batch 40
# (4,350 tokens/s against 2,848 at batch 20 on this machine, 2 threads; 80 gains no more): an
# hour is then ~7 epochs of its 2.1M words. The regularisers are lighter than the PTB hour's:
# in the ablation's 4 epochs, every dropout taken out made the model better.
WT2_HOUR = dict(PTB_HOUR, hidden_size=256, embed_size=256, batch_size=40, decay_after=2,
                weight_drop=0.1, dropout_input=0.1, dropout_hidden=0.1, dropout_output=0.1,
                dropout_words=0.0)
WT2_FINETUNE = 1

# Tiny Shakespeare, characters: the 2 × 512 model of the 30-minute Adam benchmark (embedding
# 128, untied, bptt 100, batch 64, lr 2e-3 divided by 4 when validation stalls, dropout 0.2),
# here with weight drop and locked dropout instead of plain dropout, and a last epoch that
# averages the weights. Milder than AWD-LSTM's character-level PTB model (weight drop 0.5,
# input 0.1, between layers 0.25, output 0.1): on this machine half an hour is 6 epochs, and
# the plain model's validation loss still falls at every one of them (the regularisers slowed
# the PTB hour's first epochs).
SHAKESPEARE_HALF_HOUR = dict(
    level="char", mode="stream", split=(0.1, 0.0), cell="lstm", layers=2, hidden_size=512,
    embed_size=128, tie_weights=False, init_range=None, optimizer="adam", lr=2e-3, clip=5.0,
    bptt=100, batch_size=64, weight_drop=0.2, dropout_input=0.1, dropout_hidden=0.1,
    dropout_output=0.1, seed=1)
SHAKESPEARE_FINETUNE = 1
# The same with the Mogrifier LSTM cell (5 rounds), for an equal-time comparison with the row
# above (`--minutes 20 --threads 1`, the two side by side).
SHAKESPEARE_MOGRIFIER = dict(SHAKESPEARE_HALF_HOUR, cell="mogrifier")
# The baseline, re-measured in this harness (same budget accounting) on the same machine.
SHAKESPEARE_PLAIN = dict(FAST, level="char", mode="stream", split=(0.1, 0.0), tie_weights=False,
                         init_range=None, seed=1)

ROWS = {  # name: (data, settings, budget in minutes, fine-tuning epochs, parameter cap)
    "ptb": (PTB, PTB_HOUR, 60.0, PTB_FINETUNE, 6_000_000),
    "ptb-light": (PTB, PTB_LIGHT, 60.0, PTB_LIGHT_FINETUNE, 6_000_000),
    "ptb-b40": (PTB, PTB_B40, 60.0, PTB_B40_FINETUNE, 6_000_000),
    "ptb-heavy": (PTB, PTB_HEAVY, 60.0, PTB_B40_FINETUNE, 6_000_000),
    "ptb-averaged": (PTB, PTB_AVERAGED, 60.0, PTB_AVERAGED_FINETUNE, 6_000_000),
    "ptb-long": (PTB, PTB_LONG, 150.0, PTB_LONG_FINETUNE, 6_000_000),
    "wikitext2": (WT2, WT2_HOUR, 60.0, WT2_FINETUNE, 10_000_000),
    "shakespeare": (SHAKESPEARE, SHAKESPEARE_HALF_HOUR, 30.0, SHAKESPEARE_FINETUNE, None),
    "shakespeare-plain": (SHAKESPEARE, SHAKESPEARE_PLAIN, 30.0, 0, None),
    "shakespeare-mogrifier": (SHAKESPEARE, SHAKESPEARE_MOGRIFIER, 30.0, SHAKESPEARE_FINETUNE,
                              None),
}
# The rules, η and λ tried on the first fifth of the validation text, RMS with the statistics
# of the training text. An η that diverges drops out: SGD η 1.0 did on the PTB hour's
# model (136.5 against 117.4 static), where 0.3 did best of 0.1 / 0.3. λ 0.002 is the
# authors' code's default; their paper's runs (λ 0.02 on a sum over the ~14 weight tensors of
# AWD-LSTM) amount to about 0.0014 on the mean that rnnlab and that default use.
DYNAMIC_TRIED = (("sgd", 0.2, 0.0), ("sgd", 0.3, 0.0), ("sgd", 0.5, 0.0), ("rms", 1e-4, 0.02),
                 ("rms", 5e-5, 0.002), ("rms", 1e-4, 0.002))
PTB_CACHE = Cache(size=500, theta=1.0, lam=0.1)


def history(folder: Path) -> list[dict]:
    """The epoch records of a run folder so far."""
    path = folder / "metrics.jsonl"
    lines = path.read_text().splitlines() if path.exists() else []
    return [r for r in map(json.loads, lines) if "epoch" in r and not r.get("partial")]


def plan(done: list[dict], budget_s: float, finetune: int) -> tuple[int, int]:
    """(training epochs, fine-tuning epochs) that fit in `budget_s` seconds of training after
    the epochs `done`, at the slowest one's pace, the `finetune` fine-tuning ones last (fewer if
    the budget ends first; once they have started, as many as the budget leaves room for)."""
    spent, pace = sum(r["seconds"] for r in done), max(r["seconds"] for r in done)
    total = len(done) + max(0, math.floor((budget_s - spent) / pace))
    trained = sum(r.get("phase") != "finetune" for r in done)
    if trained < len(done):  # fine-tuning already: only its count changes
        return trained, total - trained
    return max(total - finetune, trained), min(finetune, total - trained)


class Replan:
    """The trainer's report, which stops the run (as Ctrl-C does: with a checkpoint, after the
    step under way) to plan again when an epoch ran slower than planned and the plan no longer
    fits the budget, or, faster, so that one more fits."""

    def __init__(self, folder: Path, budget_s: float, finetune: int) -> None:
        self.done, self.budget_s, self.finetune = history(folder), budget_s, finetune
        self.planned = plan(self.done, budget_s, finetune)
        self.asked = False

    def __call__(self, kind: str, data: dict) -> bool:
        say(kind, data)
        if self.asked or kind != "metrics" or "epoch" not in data or data.get("partial"):
            return self.asked
        self.done.append(data)
        now = sum(plan(self.done, self.budget_s, self.finetune))
        # Not grown when the next epoch starts fine-tuning: the trainer has switched to it at
        # the stop, which the history (all training epochs) would not show.
        self.asked = now < sum(self.planned) or (now > sum(self.planned)
                                                 and len(self.done) != self.planned[0])
        return self.asked


def train_within(folder: Path, data: dict, settings: dict, budget_s: float,
                 finetune: int) -> dict:
    """One epoch, then as many as fit in `budget_s` seconds of training, planned at the slowest
    epoch's pace and planned again when the pace changes the plan (the last `finetune` of them
    fine-tuning); resumes where an earlier call stopped."""
    inputs = {k: str(v) for k, v in data.items() if k != "train"}
    if not (folder / "last" / "training.json").exists():
        train_language_model(data["train"], folder, report=say, epochs=1, **inputs, **settings)
    while True:
        replan = Replan(folder, budget_s, finetune)
        epochs, tune = replan.planned
        result = train_language_model(None, folder, resume=True, report=replan, epochs=epochs,
                                      finetune=tune)
        if result.stopped != "interrupted":
            break
        if not replan.asked:  # a Ctrl-C of the person running it
            sys.exit("interrupted: the same command resumes the run")
        say("note", {"message": "an epoch's pace changed the plan: planning again"})
    return {"params": count_params(result.lm.model),
            "stopped": result.stopped, "test": result.test}


def tuned_dynamic(lm: LM, data: dict) -> dict:
    """Dynamic evaluation on the test text with the rule, η and λ that did best on the first
    fifth of the validation text."""
    start = time.perf_counter()
    rms = lm.gradient_rms(data["train"])
    print(f"gradient statistics of the training text: {time.perf_counter() - start:.0f} s")
    lines = read_text(data["valid"])
    head = lines[: len(lines) // 5]
    settings = {f"{rule} {lr:g} λ {decay:g}":
                Dynamic(lr=lr, decay=decay, stats=rms if rule == "rms" else None)
                for rule, lr, decay in DYNAMIC_TRIED}
    tried = {}  # name: perplexity on the head, None where it diverged
    for name, dynamic in settings.items():
        try:
            got = lm.evaluate(head, dynamic=dynamic)
        except RnnlabError as e:
            tried[name] = None
            print(f"dynamic {name}: {e}", flush=True)
            continue
        tried[name] = got["dynamic"]["perplexity"]
        print(f"dynamic {name}: validation head {got['perplexity']:.2f} -> {tried[name]:.2f}",
              flush=True)
    best = min((n for n in tried if tried[n] is not None), key=tried.get)
    start = time.perf_counter()
    got = lm.evaluate(data["test"], dynamic=settings[best])
    return {"static": got["perplexity"], "dynamic": got["dynamic"], "tried": tried,
            "seconds": round(time.perf_counter() - start)}


def row_base(name: str, folder: Path, budget: float, trained: dict) -> dict:
    """What every record of a row says: its budget, minutes spent, parameters and epochs."""
    done = history(folder)
    return {"row": name, "corpus": name.split("-")[0], "seeds": 1, "budget_minutes": budget,
            "minutes": round(sum(r["seconds"] for r in done) / 60, 2),
            "params": trained["params"], "epochs": len(done),
            "threads": torch.get_num_threads()}


def static_records(base: dict, folder: Path, data: dict, trained: dict) -> list[dict]:
    """The row's static figure, and for PTB the neural cache's."""
    best = min(history(folder), key=lambda r: r["valid_loss"])
    if "test" not in data:  # Tiny Shakespeare: the validation tenth is the figure
        return [{**base, "dynamic": False, "valid_nats_per_char": best["valid_loss"]}]
    records = [{**base, "dynamic": False, "test_ppl": trained["test"]["ppl"],
                "valid_ppl": best["valid_ppl"]}]
    if base["corpus"] == "ptb":
        cache = LM.load(folder / "best").evaluate(data["test"], cache=PTB_CACHE)
        records.append({**base, "dynamic": False, "cache": cache["cache"],
                        "test_ppl": cache["cache"]["perplexity"]})
    return records


def dynamic_record(base: dict, folder: Path, data: dict) -> dict:
    """The row's figure with dynamic evaluation, its rule and η tuned on validation."""
    dyn = tuned_dynamic(LM.load(folder / "best"), data)
    return {**base, "dynamic": True, "test_ppl": dyn["dynamic"]["perplexity"],
            "static_one_column_ppl": dyn["static"], "rule": dyn["dynamic"]["rule"],
            "lr": dyn["dynamic"]["lr"], "decay": dyn["dynamic"]["decay"],
            "bptt": dyn["dynamic"]["bptt"], "validation_head_ppl_by_rule": dyn["tried"],
            "evaluation_seconds": dyn["seconds"]}


def curve(folder: Path) -> list[dict]:
    """The epochs of a run, for the JSON."""
    keep = ("epoch", "lr", "train_loss", "valid_loss", "valid_ppl", "seconds", "tokens_per_s",
            "phase", "averaged")
    return [{k: r[k] for k in keep if k in r} for r in history(folder)]


def write(corpus: str, entry: str, value: dict) -> Path:
    """Merge `value` under `entry` into bench/results/lm_<corpus>_awd.json."""
    path = RESULTS / f"lm_{corpus}_awd.json"
    out = json.loads(path.read_text()) if path.exists() else {}
    out.update({"benchmark": f"lm_{corpus}_awd", "machine": platform.machine(),
                "torch": torch.__version__, entry: value})
    with atomic_write(path) as f:
        f.write(json.dumps(out, indent=2) + "\n")
    print(f"wrote {path}")
    return path


def row(args) -> None:
    """Train (or resume) a row within its budget, score it and write its records."""
    data, settings, budget, finetune, cap = ROWS[args.which]
    budget = args.minutes or budget
    name = f"{args.which}-{budget:g}min"
    folder = args.work / name
    trained = train_within(folder, data, settings, budget * 60, finetune)
    if cap is not None and trained["params"] > cap:
        sys.exit(f"{trained['params']} parameters, more than {cap}")
    base = row_base(name, folder, budget, trained)
    records = static_records(base, folder, data, trained)
    result = dict(records=records, settings=settings, finetune=finetune, curve=curve(folder),
                  command=" ".join(["python", *sys.argv]),
                  date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()))
    write(base["corpus"], name, result)  # written before the long dynamic evaluation
    if base["corpus"] == "ptb":
        records.append(dynamic_record(base, folder, data))
        write(base["corpus"], name, result)


def ablation(args) -> None:
    """Train the ablation's runs (or one, --run) for ABLATION_EPOCHS epochs; write the table."""
    for run, change in ABLATION.items():
        if args.run and run != args.run:
            continue
        settings = {**PTB_HOUR, **change}
        finetune = settings.pop("finetune", 1)
        folder = args.work / f"ablation-{run}"
        fresh = not (folder / "last" / "training.json").exists()  # else resume (or done)
        first = dict(valid=str(PTB["valid"]), test=str(PTB["test"]), **settings) if fresh else {}
        train_language_model(PTB["train"] if fresh else None, folder, resume=not fresh,
                             report=say, epochs=ABLATION_EPOCHS - finetune, finetune=finetune,
                             **first)
    table = {}
    for run in ABLATION:
        folder = args.work / f"ablation-{run}"
        lines = [json.loads(x) for x in (folder / "metrics.jsonl").read_text().splitlines()] \
            if (folder / "metrics.jsonl").exists() else []
        test = next((r["test_ppl"] for r in lines if "test_ppl" in r), None)
        table[run] = {"off": ABLATION[run], "test_ppl": test, "curve": curve(folder)}
    write("ptb", "ablation", {"epochs": ABLATION_EPOCHS, "base": PTB_HOUR, "runs": table,
                              "threads": torch.get_num_threads(),
                              "command": " ".join(["python", *sys.argv])})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("which", choices=[*ROWS, "ablation"])
    parser.add_argument("--minutes", type=float, help="the training budget (default: the row's)")
    parser.add_argument("--run", choices=list(ABLATION), help="ablation: train only this run")
    parser.add_argument("--work", type=Path, default=Path("/tmp/rnnlab-awd"),
                        help="folder for the runs (outside the repository)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    ablation(args) if args.which == "ablation" else row(args)


if __name__ == "__main__":
    main()
