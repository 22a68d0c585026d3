"""`rnnlab embed`: train word2vec vectors on text files (docs/lecture.md §3)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rnnlab.cli._options import (
    add_data_dir,
    add_encoding_options,
    add_overwrite,
    add_progress_options,
    check_at_least,
)
from rnnlab.cli._progress import DownloadBars, word2vec_bar
from rnnlab.datasets import file_or_corpus
from rnnlab.outputs import check_output, output_lock
from rnnlab.text.corpus import Corpus
from rnnlab.word2vec.formats import format_for
from rnnlab.word2vec.train import Word2Vec

EPILOG = """\
examples:
  rnnlab embed wiki.txt.gz -o vectors.bin                  skip-gram, 100-d, word2vec binary
  rnnlab embed a.txt b.txt -o model --embed-size 300 --cbow the lecture's 300-d, CBOW, model folder
  rnnlab embed more.txt -o model2 --init model             go on training a model folder

One JSON line per epoch goes to stdout ({"epoch", "loss", "alpha", "words", "seconds",
"words_per_s"}; none with --quiet); the progress bar goes to stderr (none with --no-progress
or --quiet). A .bin or .txt output holds the input
vectors only; a folder also keeps the output weights, counts and settings to train further.
"""

# Model settings: the flag, Word2Vec's name, and word2vec.c's / gensim's default.
SETTINGS = [
    ("--embed-size", "vector_size", int, 100,
     "dimension of the vectors, the language model's embedding size (the lecture uses 300)"),
    ("--window", "window", int, 5, "largest distance between a word and a neighbour"),
    ("--negative", "negative", int, 5, "noise words per example for negative sampling (0: none)"),
    ("--min-count", "min_count", int, 5, "drop words seen fewer times"),
    ("--max-vocab", "max_vocab_size", int, None, "keep at most this many words (most frequent)"),
    ("--sample", "sample", float, 1e-3, "subsampling threshold for frequent words (0: off)"),
    ("--epochs", "epochs", int, 5, "passes over the corpus"),
    ("--alpha", "alpha", float, None, "initial learning rate (default 0.025 skip-gram, 0.05 CBOW)"),
    ("--min-alpha", "min_alpha", float, 1e-4, "final learning rate"),
    ("--threads", "workers", int, 2, "CPU threads (1 with --seed gives identical vectors)"),
    ("--seed", "seed", int, 1, "random seed"),
]


def run(args: argparse.Namespace) -> None:
    check_at_least("--threads", args.workers)
    out_format = format_for(args.output)
    kind = "word-vectors" if out_format == "native" else "file"
    inputs = tuple(c for c in [*args.corpus, args.init] if c is not None and Path(c).exists())
    # Before reading the corpus: a wrong output costs seconds, not an embedding run.
    check_output(args.output, kind, overwrite=args.overwrite, inputs=inputs)
    with output_lock(args.output, kind):
        train_and_save(args, out_format)


def train_and_save(args: argparse.Namespace, out_format: str) -> None:
    """Train (or continue) the vectors and write them in `out_format`."""
    downloads = DownloadBars(args.progress and not args.quiet)
    corpus = Corpus([file_or_corpus(c, "train", args.data_dir, downloads) for c in args.corpus],
                    level=args.level, lower=args.lower, encoding=args.encoding, errors=args.errors)
    if args.init is not None:
        model = Word2Vec.load(args.init)
        for flag in ("epochs", "alpha", "min_alpha", "workers", "seed"):
            if getattr(args, flag) is not None:
                setattr(model, flag, getattr(args, flag))
        model.build_vocab(corpus, update=True)
    else:
        settings = {name: getattr(args, name) for _, name, _, default, _ in SETTINGS}
        settings = {k: v for k, v in settings.items() if v is not None}
        model = Word2Vec(**settings, hs=args.hs, sg=not args.cbow)
        model.build_vocab(corpus)
    model.train(corpus, progress=word2vec_bar(args.progress and not args.quiet),
                on_epoch=None if args.quiet else lambda r: print(json.dumps(r), flush=True))
    if out_format == "native":
        model.save(args.output)
    else:
        model.wv.save(args.output)
    print(f"wrote {args.output}: {len(model.wv)} words x {model.vector_size}", flush=True)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `embed`."""
    p = subparsers.add_parser(
        "embed",
        help="train word vectors (word2vec skip-gram or CBOW) on text files",
        description="Train word2vec vectors on text, one sentence per line (words split at whitespace, "
        "or raw Chinese cut by jieba with --level jieba), "
        "with word2vec.c's defaults: skip-gram, 100-d, window 5, 5 negatives, min-count 5, "
        "sample 1e-3, 5 epochs. Runs on the CPU only: word2vec.c's algorithm compiled by numba, "
        "multi-threaded (--threads), with no GPU path and no --device option (each update "
        "touches a few rows of the weights, too small and too scattered to gain on a GPU).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("corpus", nargs="+", metavar="CORPUS",
                   help="text files, plain or .gz, or the name of a known corpus (`rnnlab data "
                        "list`: its training split, from $RNNLAB_DATA, the cache or the web)")
    p.add_argument("-o", "--output", required=True, metavar="VECTORS",
                   help="output: .bin (word2vec binary), .txt (word2vec text) or a model folder")
    for flag, name, kind, default, text in SETTINGS:
        flags = (flag, "--size") if flag == "--embed-size" else (flag,)
        shown = f" (default {default})" if default is not None else ""
        p.add_argument(*flags, dest=name, type=kind, default=None,
                       metavar="N" if kind is int else "X", help=text + shown)
    p.add_argument("--cbow", action="store_true", help="CBOW instead of skip-gram")
    p.add_argument("--hs", action="store_true",
                   help="hierarchical softmax (with --negative 0 alone, else with negative sampling)")
    p.add_argument("--level", choices=("word", "segmented", "jieba"), default="word",
                   help="word: split at whitespace (default); segmented: pre-segmented text (e.g. "
                   "Chinese split by spaces) taken exactly, --lower ignored; jieba: raw Chinese "
                   "cut into words by jieba (pip install 'rnnlab[chinese]')")
    p.add_argument("--lower", action="store_true", help="lowercase the text")
    add_encoding_options(p)
    add_data_dir(p)
    p.add_argument("--init", metavar="MODEL", default=None,
                   help="continue training this model folder with its settings (only --epochs, --alpha, "
                   "--min-alpha, --threads and --seed apply); new words seen min-count times join")
    add_overwrite(p)
    add_progress_options(p, "epoch lines")
    p.set_defaults(func=run)

