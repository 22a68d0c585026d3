"""Tang poems: how well character models write them, against the Kneser–Ney baseline.

    python bench/poetry.py train --threads 1      # the larger model, 60 minutes (idle machine)
    python bench/poetry.py measure                # every figure, for every model at hand
    python bench/poetry.py measure --samples 20   # a quick rehearsal

Models: `tang` (the ready-made model, its shipped float16 weights), `tang-large` (2 × 384,
trained by `train` for 60 minutes into --work; measured if present) and an interpolated
Kneser–Ney character bigram model counted on the same training split, with the same vocabulary.

For each, on the test split of rnnlab data's tang-poems (poems never seen in training):
- bits per character, every character and each poem's newline counted, as `rnnlab evaluate`;
- `--samples` unconstrained poems (seed k for the k-th; one poem = up to the newline): the
  share that are well-formed 5- or 7-character poems of 4 or 8 lines (the corpus's own share
  is measured on its test poems); and the same with `--form`/`--lines` (the four shapes in
  turn), which constrained decoding makes well-formed by construction;
- copying: the share of the generated lines (5 or more characters between punctuation) that
  appear verbatim as a line of a training poem, beside the same share for the test poems;
- distinct bigrams: distinct character bigrams / all bigrams inside the samples, beside the
  same for as many test poems.
Results go to bench/results/poetry.json, with a few poems and the commands that wrote them.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import random
import re
import sys
import time
from pathlib import Path

import numpy as np
import torch

from rnnlab.fileio import atomic_write
from rnnlab.lm import LM, KneserNeyBigram, train_language_model
from rnnlab.lm.data import read_text
from rnnlab.lm.forms import HAN
from rnnlab.ready import resolve

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
from build_ready_models import MODELS, texts  # noqa: E402  (the same data and settings)

RESULTS = ROOT / "bench" / "results" / "poetry.json"
LARGE = dict(MODELS["tang"][2], hidden_size=384, embed_size=192, dropout=0.2)
LARGE_MINUTES = 60
SHAPES = [(5, 4), (5, 8), (7, 4), (7, 8)]
WELL_FORMED = re.compile(r"^(?:(H{5}，H{5}。){2}|(H{5}，H{5}。){4}|(H{7}，H{7}。){2}|(H{7}，H{7}。){4})$"
                         .replace("H", HAN.pattern))
LINE_BREAK = re.compile("[，。？！；：、]")
EXAMPLES = [dict(form=5, lines=4, seed=1), dict(form=7, lines=4, seed=2),
            dict(form=5, lines=4, acrostic="春夏秋冬", seed=3)]


def poem_lines(poem: str) -> list[str]:
    """The lines of a poem worth comparing: 5 or more characters between punctuation marks."""
    return [line for line in LINE_BREAK.split(poem) if len(line) >= 5]


def copied(poems: list[str], training_lines: set[str]) -> float:
    """Share of the poems' lines found verbatim among the training poems' lines."""
    lines = [line for poem in poems for line in poem_lines(poem)]
    return sum(line in training_lines for line in lines) / max(1, len(lines))


def distinct_bigrams(poems: list[str]) -> float:
    """Distinct character bigrams / all bigrams, counted inside each poem."""
    grams = [poem[i : i + 2] for poem in poems for i in range(len(poem) - 1)]
    return len(set(grams)) / max(1, len(grams))


def well_formed(poems: list[str]) -> float:
    """Share of the poems that are regular 5- or 7-character poems of 4 or 8 lines."""
    return sum(WELL_FORMED.match(p) is not None for p in poems) / max(1, len(poems))


def lm_poems(lm: LM, n: int, shaped: bool) -> list[str]:
    """n poems from `lm`, seed k for the k-th: free (up to the newline) or in the four shapes."""
    poems = []
    for k in range(n):
        if shaped:
            chars, lines = SHAPES[k % len(SHAPES)]
            poems.append("".join(lm.write(form=chars, lines=lines, seed=k)))
            continue
        text = []
        for token in lm.generate(length=200, seed=k):
            if token == "\n":
                break
            text.append(token)
        poems.append("".join(text))
    return poems


def kn_poems(kn: KneserNeyBigram, lm: LM, n: int) -> list[str]:
    """n poems drawn from the bigram model, from the newline that starts each poem."""
    newline = lm.vocab.stoi["\n"]
    poems = []
    for k in range(n):
        rng, prev, text = np.random.default_rng(k), newline, []
        while len(text) < 200:
            p = kn.distribution(prev)
            prev = int(rng.choice(len(p), p=p / p.sum()))
            if prev == newline:
                break
            text.append(lm.vocab.itos[prev])
        poems.append("".join(text))
    return poems


def measure_lm(name: str, lm: LM, test: Path, n: int, training_lines: set[str]) -> dict:
    """Bits per character on the test split and the sample statistics of one model."""
    start = time.perf_counter()
    bits = lm.evaluate(test)["bits_per_char"]
    free, shaped = lm_poems(lm, n, False), lm_poems(lm, n, True)
    examples = []
    for ex in EXAMPLES:
        flags = " ".join(f"--{k} {v}" for k, v in ex.items())
        examples.append({"command": f"rnnlab generate {name} {flags}", "poem": "".join(lm.write(**ex))})
    return {"test_bits_per_char": round(bits, 3), "well_formed_free": well_formed(free),
            "well_formed_with_form": well_formed(shaped),
            "copied_lines_free": round(copied(free, training_lines), 4),
            "copied_lines_with_form": round(copied(shaped, training_lines), 4),
            "distinct_bigrams_free": round(distinct_bigrams(free), 4),
            "distinct_bigrams_with_form": round(distinct_bigrams(shaped), 4),
            "parameters": sum(p.numel() for p in lm.model.parameters()),
            "samples": free[:3], "examples": examples,
            "measure_seconds": round(time.perf_counter() - start)}


def measure_kn(lm: LM, train: Path, test: Path, n: int, training_lines: set[str]) -> dict:
    """The bigram baseline, counted on the training split with `lm`'s vocabulary."""
    start = lm.pipeline.start_ids(lm.vocab)  # the newline before the first poem
    kn = KneserNeyBigram(len(lm.vocab)).fit(start + lm.pipeline.encode(read_text(train), lm.vocab))
    total, count = kn.log_likelihood(start + lm.pipeline.encode(read_text(test), lm.vocab))
    free = kn_poems(kn, lm, n)
    return {"test_bits_per_char": round(-total / count / math.log(2), 3),
            "well_formed_free": well_formed(free),
            "copied_lines_free": round(copied(free, training_lines), 4),
            "distinct_bigrams_free": round(distinct_bigrams(free), 4), "samples": free[:3]}


def measure(args) -> None:
    """Every figure for every model at hand, merged into bench/results/poetry.json."""
    files = texts({"corpus": "tang-poems"}, args.work)
    train_poems, test_poems = read_text(files["train"]), read_text(files["test"])
    training_lines = {line for poem in train_poems for line in poem_lines(poem)}
    reference = random.Random(0).sample(test_poems, args.samples)
    results = {"corpus_test": {"poems": len(test_poems), "well_formed": well_formed(test_poems),
                               "copied_lines": round(copied(test_poems, training_lines), 4),
                               "distinct_bigrams_of_samples": round(distinct_bigrams(reference), 4)}}
    models = {"tang": resolve("tang", lambda _: None)}
    if (args.work / "tang-large" / "best").is_dir():
        models["tang-large"] = args.work / "tang-large"
    for name, path in models.items():
        lm = LM.load(path)
        results[name] = measure_lm(name, lm, files["test"], args.samples, training_lines)
        print(name, json.dumps({k: v for k, v in results[name].items()
                                if k not in ("samples", "examples")}), flush=True)
    results["kneser_ney"] = measure_kn(LM.load(models["tang"]), files["train"], files["test"],
                                       args.samples, training_lines)
    print("kneser_ney", results["kneser_ney"]["test_bits_per_char"], flush=True)
    large = args.work / "tang-large" / "last" / "training.json"
    if large.is_file():
        state = json.loads(large.read_text())
        results["tang-large"]["settings"] = LARGE
        results["tang-large"]["training_seconds"] = round(
            sum(r["seconds"] for r in state["history"]) + state["epoch_seconds"])
    results["config"] = {"samples": args.samples, "threads": args.threads,
                         "machine": platform.machine(), "torch": torch.__version__}
    with atomic_write(RESULTS) as f:
        json.dump(results, f, indent=1, ensure_ascii=False)
    print(f"wrote {RESULTS}")


def train(args) -> None:
    """The larger model: 2 × 384, trained for LARGE_MINUTES on the training split."""
    files = texts({"corpus": "tang-poems"}, args.work)
    train_language_model(files["train"], args.work / "tang-large", overwrite=True,
                         valid=str(files["valid"]), test=str(files["test"]),
                         max_minutes=args.minutes, **LARGE)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("what", choices=["train", "measure"])
    parser.add_argument("--work", type=Path, default=Path("/tmp/rnnlab-bench"),
                        help="training folders (outside the repository)")
    parser.add_argument("--samples", type=int, default=200, help="poems sampled per model")
    parser.add_argument("--minutes", type=float, default=LARGE_MINUTES)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    (train if args.what == "train" else measure)(args)


if __name__ == "__main__":
    main()
