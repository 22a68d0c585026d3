"""Word2vec training speed and quality: rnnlab's engine against gensim, side by side.

    python bench/word2vec.py                    # WikiText-2 train, 3 interleaved runs each
    python bench/word2vec.py --corpus large     # + text8-style Wikipedia sample, KJV, War and Peace
    python bench/word2vec.py --quick            # a 300k-token slice, 1 run: a smoke test

Both get the same tokens (whitespace-split lines, case kept) and settings: d100, window 5,
negative 5, min_count 5, sample 1e-3, 5 epochs, 2 threads, skip-gram and then CBOW, alpha
0.025 for skip-gram and 0.05 for CBOW (word2vec.c's; gensim's own CBOW default is 0.025). Runs are
interleaved (gensim, rnnlab, rnnlab, gensim, ...) and medians reported. words/s = raw corpus
tokens x epochs / seconds of `train()`; building the vocabulary is excluded for both.

Quality, by the same evaluators for both (rnnlab.word2vec.evaluate): Google analogies over the
30k most frequent words, case-folded, questions with unknown words skipped; WordSim-353 and
SimLex-999 Spearman; and the negative-sampling loss -log s(v.u) - sum_k log s(-v.u_k) on one
fixed sample of 200k (context, centre) pairs from WikiText-2 *valid* with 5 fixed noise words
each (unigram^0.75), computed from each model's input and output matrices (gensim's
wv.vectors and syn1neg).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np

from rnnlab.fileio import atomic_write
from rnnlab.text.corpus import Corpus
from rnnlab.word2vec import Word2Vec, WordVectors
from rnnlab.word2vec.evaluate import evaluate_analogies, evaluate_similarity

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
SMALL = [DATA / "wikitext-2" / "wiki.train.tokens.gz"]
LARGE = SMALL + [DATA / "gensim-test-corpora" / "enwiki206-text8style.txt.gz",
                 DATA / "kjv-bible" / "kjv.txt.gz", DATA / "war-and-peace" / "warandpeace.txt.gz"]
HELD_OUT = DATA / "wikitext-2" / "wiki.valid.tokens"
EVAL = DATA / "word-embedding-eval"
SETTINGS = dict(vector_size=100, window=5, negative=5, min_count=5, sample=1e-3, epochs=5)
ALPHA = {True: 0.025, False: 0.05}  # skip-gram, CBOW
RESULTS = Path(__file__).resolve().parent / "results" / "word2vec.json"


def train_gensim(sentences: list[list[str]], sg: bool, threads: int, seed: int):
    """gensim's Word2Vec: (seconds of train(), input matrix, output matrix, words)."""
    from gensim.models import Word2Vec as GensimWord2Vec

    model = GensimWord2Vec(**SETTINGS, sg=int(sg), alpha=ALPHA[sg], workers=threads, seed=seed)
    model.build_vocab(sentences)
    start = time.perf_counter()
    model.train(sentences, total_examples=model.corpus_count, epochs=model.epochs)
    seconds = time.perf_counter() - start
    counts = [model.wv.get_vecattr(w, "count") for w in model.wv.index_to_key]
    return seconds, model.wv.vectors, model.syn1neg, model.wv.index_to_key, counts


def train_rnnlab(sentences: list[list[str]], sg: bool, threads: int, seed: int):
    """rnnlab's Word2Vec: (seconds of train(), input matrix, output matrix, words)."""
    model = Word2Vec(**SETTINGS, sg=sg, alpha=ALPHA[sg], workers=threads, seed=seed)
    model.build_vocab(sentences)
    start = time.perf_counter()
    model.train(sentences)
    seconds = time.perf_counter() - start
    return seconds, model.w_in, model.w_out, model.vocab.itos, model.vocab.counts.tolist()


def held_out_pairs(words: list[str], counts: list[int], n: int = 200_000, negatives: int = 5,
                   seed: int = 0) -> tuple[list[str], list[str], np.ndarray]:
    """A fixed sample of (context, centre) word pairs within the window, plus noise words."""
    known = set(words)
    rng = np.random.default_rng(seed)
    contexts, centres = [], []
    for sentence in Corpus(HELD_OUT):
        s = [w for w in sentence if w in known]
        for i, centre in enumerate(s):
            for j in range(max(0, i - SETTINGS["window"]), min(len(s), i + SETTINGS["window"] + 1)):
                if j != i:
                    contexts.append(s[j])
                    centres.append(centre)
    pick = rng.choice(len(contexts), size=min(n, len(contexts)), replace=False)
    p = np.asarray(counts, dtype=np.float64) ** 0.75
    noise = rng.choice(len(words), size=(len(pick), negatives), p=p / p.sum())
    noise_words = np.array(words, dtype=object)[noise]
    return [contexts[i] for i in pick], [centres[i] for i in pick], noise_words


def held_out_loss(w_in: np.ndarray, w_out: np.ndarray, words: list[str], pairs) -> float:
    """Mean negative-sampling loss of the fixed pairs under one model's matrices."""
    index = {w: i for i, w in enumerate(words)}
    contexts, centres, noise = pairs
    c = np.array([index[w] for w in contexts])
    o = np.array([index[w] for w in centres])
    k = np.vectorize(index.__getitem__)(noise)
    total = 0.0
    for s in range(0, len(c), 20_000):
        v = w_in[c[s:s + 20_000]].astype(np.float64)
        pos = np.einsum("nd,nd->n", v, w_out[o[s:s + 20_000]])
        neg = np.einsum("nd,nkd->nk", v, w_out[k[s:s + 20_000]])
        total += np.logaddexp(0, -pos).sum() + np.logaddexp(0, neg).sum()
    return total / len(c)


def quality(w_in, w_out, words, counts, pairs) -> dict:
    """Analogy accuracy, word-similarity Spearman and held-out loss of one model."""
    wv = WordVectors(words, w_in, counts)
    analogies = evaluate_analogies(wv, EVAL / "questions-words.txt", restrict_vocab=30000)
    ws = evaluate_similarity(wv, EVAL / "wordsim353.tsv")
    sl = evaluate_similarity(wv, EVAL / "simlex999.txt")
    return {"analogy": analogies.accuracy, "analogy_questions": analogies.total,
            "analogy_skipped": analogies.oov, "wordsim353": ws.spearman, "wordsim353_oov": ws.oov,
            "simlex999": sl.spearman, "simlex999_oov": sl.oov,
            "held_out_loss": held_out_loss(w_in, w_out, words, pairs)}


def median_of(runs: list[dict]) -> dict:
    """Medians of every number over runs."""
    return {k: statistics.median(r[k] for r in runs) for k in runs[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corpus", choices=["small", "large"], default="small")
    parser.add_argument("--runs", type=int, default=3, help="interleaved runs per system and model")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--models", default="sg,cbow", help="comma-separated: sg, cbow")
    parser.add_argument("--quick", action="store_true", help="a 300k-token slice, one run")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    runs = 1 if args.quick else args.runs

    sentences = list(Corpus(SMALL if args.corpus == "small" else LARGE))
    if args.quick:
        sentences = sentences[: next(i for i, n in enumerate(np.cumsum([len(s) for s in sentences]))
                                     if n >= 300_000)]
    tokens = sum(len(s) for s in sentences)
    print(f"corpus {args.corpus}{' (quick slice)' if args.quick else ''}: {len(sentences)} sentences, "
          f"{tokens:,} tokens; settings {SETTINGS}, {args.threads} threads, {runs} runs; "
          f"load average {os.getloadavg()[0]:.2f}")
    Word2Vec([["warm", "up"]] * 50, min_count=1, epochs=1, workers=1)  # numba's compile, outside timing
    systems = {"gensim": train_gensim, "rnnlab": train_rnnlab}
    pairs = None
    report = {"corpus": args.corpus, "quick": args.quick, "tokens": tokens, "settings": SETTINGS,
              "threads": args.threads, "runs": runs,
              "timing": "train() only; vocabulary building excluded for both",
              "words_per_s": "raw corpus tokens x epochs / train seconds",
              "machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
              "load_average_start": os.getloadavg()[0], "models": {}}
    for name in args.models.split(","):
        sg = name == "sg"
        results: dict[str, list[dict]] = {"gensim": [], "rnnlab": []}
        for r in range(runs):
            order = ["gensim", "rnnlab"] if r % 2 == 0 else ["rnnlab", "gensim"]
            for system in order:
                seconds, w_in, w_out, words, counts = systems[system](sentences, sg, args.threads, seed=1 + r)
                if pairs is None:
                    pairs = held_out_pairs(words, counts)
                row = {"words_per_s": tokens * SETTINGS["epochs"] / seconds, "seconds": seconds,
                       **quality(w_in, w_out, words, counts, pairs)}
                results[system].append(row)
                print(f"{name} run {r + 1} {system:7s} {row['words_per_s'] / 1e6:6.3f}M words/s  "
                      f"analogy {100 * row['analogy']:5.2f}%  ws353 {row['wordsim353']:.3f}  "
                      f"simlex {row['simlex999']:.3f}  held-out loss {row['held_out_loss']:.4f}", flush=True)
        med = {s: median_of(rows) for s, rows in results.items()}
        speed_ratios = [a["words_per_s"] / b["words_per_s"]
                        for a, b in zip(results["rnnlab"], results["gensim"])]
        g, m = med["gensim"], med["rnnlab"]
        ratio = statistics.median(speed_ratios)
        checks = {"speed_ratio_median": ratio,
                  "speed_ratio_ok (>= 1.3)": bool(ratio >= 1.3),
                  "analogy_ok (>= gensim - 1 point)": bool(m["analogy"] >= g["analogy"] - 0.01),
                  "wordsim353_ok (>= gensim - 0.02)": bool(m["wordsim353"] >= g["wordsim353"] - 0.02),
                  "held_out_loss_ok (<= gensim + 0.02)":
                      bool(m["held_out_loss"] <= g["held_out_loss"] + 0.02)}
        report["models"][name] = {"median": med, "runs": results, "speed_ratios": speed_ratios,
                                  "checks": checks}
        print(f"\n{name}: median over {runs} runs")
        print(f"{'':8s} {'words/s':>10s} {'analogy':>8s} {'ws353':>7s} {'simlex':>7s} {'loss':>7s}")
        for s in ("gensim", "rnnlab"):
            x = med[s]
            print(f"{s:8s} {x['words_per_s'] / 1e6:9.3f}M {100 * x['analogy']:7.2f}% {x['wordsim353']:7.3f} "
                  f"{x['simlex999']:7.3f} {x['held_out_loss']:7.4f}")
        print(json.dumps(checks), "\n", flush=True)
    report["load_average_end"] = os.getloadavg()[0]
    # One file for both corpora: each run replaces its own entry.
    saved = json.loads(args.out.read_text()) if args.out.is_file() else {}
    saved[args.corpus + ("-quick" if args.quick else "")] = report
    with atomic_write(args.out) as f:
        json.dump(saved, f, indent=1)
    print(f"wrote {args.out} [{args.corpus}{'-quick' if args.quick else ''}]")


if __name__ == "__main__":
    main()
