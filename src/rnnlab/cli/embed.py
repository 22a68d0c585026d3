"""`rnnlab embed`: train word2vec vectors on text files (docs/lecture.md §3)."""

from __future__ import annotations

import argparse
import json
import shlex
from pathlib import Path

from rnnlab.cli._options import (
    add_data_dir,
    add_encoding_options,
    add_overwrite,
    add_progress_options,
    check_at_least,
)
from rnnlab.cli._progress import DownloadBars, word2vec_bar
from rnnlab.cli._store import add_store_option, text_store
from rnnlab.datasets import file_or_corpus
from rnnlab.errors import RnnlabError
from rnnlab.outputs import check_output, output_lock
from rnnlab.text.corpus import Corpus
from rnnlab.text.pipeline import TextPipeline
from rnnlab.text.store import TokenStore, is_store
from rnnlab.word2vec.formats import format_for
from rnnlab.word2vec.store_jobs import WORD_LEVELS, open_word_store
from rnnlab.word2vec.train import Word2Vec

EPILOG = """\
examples:
  rnnlab embed wiki.txt.gz -o vectors.bin                  skip-gram, 100-d, word2vec binary
  rnnlab embed a.txt b.txt -o model --embed-size 300 --cbow the lecture's 300-d, CBOW, model folder
  rnnlab embed more.txt -o model2 --init model             go on training a model folder
  rnnlab prepare wiki.txt -o wiki-store && rnnlab embed wiki-store -o vectors.bin
                                                           from a token store, read from disk

One JSON line per epoch goes to stdout ({"epoch", "loss", "alpha", "words", "seconds",
"words_per_s"}; none with --quiet); the progress bar goes to stderr (none with --no-progress
or --quiet). A .bin or .txt output holds the input
vectors only; a folder also keeps the output weights, counts and settings to train further.

A token store (`rnnlab prepare`, --mode stream or sentence) is read from disk job by job, in
memory that does not grow with the corpus; each of its lines is a sentence, and its level and
case are used unless --level or --lower say otherwise (a store that does not fit is refused).
With one thread and a seed it gives the same vectors as its text.
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


def read_corpus(args: argparse.Namespace) -> dict:
    """The corpus as Word2Vec takes it: {"corpus_file": a token store} (given, or cached for
    large text) or {"sentences": a Corpus of the text files}."""
    if any(is_store(c) for c in args.corpus):
        if len(args.corpus) > 1:
            raise RnnlabError("a token store is read alone: give it without other corpora")
        return {"corpus_file": fitting_store(args.corpus[0], args.level, args.lower)}
    level, lower = args.level or "word", bool(args.lower)
    downloads = DownloadBars(args.progress and not args.quiet)
    paths = [file_or_corpus(c, "train", args.data_dir, downloads) for c in args.corpus]
    # Markers do not matter to word2vec, nor case to pre-segmented text: train's store serves.
    pipeline = TextPipeline(level, "stream", lower and level != "segmented")
    store = text_store(paths, pipeline, args.encoding, args.errors, args)
    if store is not None:
        return {"corpus_file": store}
    return {"sentences": Corpus(paths, level=level, lower=lower, encoding=args.encoding,
                                errors=args.errors)}


def fitting_store(path: str, level: str | None, lower: bool | None) -> TokenStore:
    """The store at `path`, opened, when its words are those --level and --lower ask for (the
    store's own unless given); else one line naming the difference and the store that fits."""
    store = TokenStore(path, verify=False)  # its settings, before its files are read through
    have = store.pipeline
    level = level or (have.level if have.level in WORD_LEVELS else "word")
    if have.level == level and (have.lower or not lower or level == "segmented"):
        return open_word_store(path)
    sources = " ".join(shlex.quote(s["path"]) for s in store.config["sources"])
    wanted = _flags(level, bool(lower))
    raise RnnlabError(f"{path}: a store prepared with {_flags(have.level, have.lower)}, not "
                      f"{wanted} as asked; prepare one that fits: rnnlab prepare {sources} "
                      f"{wanted} -o STORE")


def _flags(level: str, lower: bool) -> str:
    return f"--level {level}" + (" --lower" if lower and level != "segmented" else "")


def train_and_save(args: argparse.Namespace, out_format: str) -> None:
    """Train (or continue) the vectors and write them in `out_format`."""
    if args.init is not None:
        model = Word2Vec.load(args.init)
        for flag in ("epochs", "alpha", "min_alpha", "workers", "seed"):
            if getattr(args, flag) is not None:
                setattr(model, flag, getattr(args, flag))
    else:
        settings = {name: getattr(args, name) for _, name, _, default, _ in SETTINGS}
        settings = {k: v for k, v in settings.items() if v is not None}
        model = Word2Vec(**settings, hs=args.hs, sg=not args.cbow)
    # The settings checked first: a wrong one costs seconds, not a store built for nothing.
    corpus = read_corpus(args)
    model.build_vocab(**corpus, update=args.init is not None)
    model.train(**corpus, progress=word2vec_bar(args.progress and not args.quiet),
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
                        "list`: its training split, from $RNNLAB_DATA, the cache or the web), "
                        "or one token store (`rnnlab prepare`)")
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
    p.add_argument("--level", choices=WORD_LEVELS, default=None,
                   help="word: split at whitespace (default; a store's level); segmented: "
                   "pre-segmented text (e.g. Chinese split by spaces) taken exactly, --lower "
                   "ignored; jieba: raw Chinese cut into words by jieba (pip install "
                   "'rnnlab[chinese]')")
    p.add_argument("--lower", action="store_true", default=None,
                   help="lowercase the text (default: not; a store's case)")
    add_encoding_options(p)
    add_store_option(p)
    add_data_dir(p)
    p.add_argument("--init", metavar="MODEL", default=None,
                   help="continue training this model folder with its settings (only --epochs, --alpha, "
                   "--min-alpha, --threads and --seed apply); new words seen min-count times join")
    add_overwrite(p)
    add_progress_options(p, "epoch lines")
    p.set_defaults(func=run)

