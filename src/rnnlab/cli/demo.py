"""`rnnlab demo`: word vectors and an LSTM language model on a Wikipedia sample, in minutes."""

from __future__ import annotations

import argparse

from rnnlab.cli._options import add_overwrite
from rnnlab.cli._progress import TrainingReport
from rnnlab.outputs import check_output, output_lock


def register(subparsers) -> None:
    """Add the demo subcommand."""
    p = subparsers.add_parser(
        "demo", help="word2vec + LSTM language model on a Wikipedia sample (a few minutes)",
        description="Extract plain text from the Wikipedia sample that ships with gensim, train "
                    "word vectors, train an LSTM language model fed by them, compare its "
                    "validation perplexity with a Kneser-Ney bigram model, score a sentence and "
                    "sample text. Needs the demo extra: pip install 'rnnlab[demo]'.")
    p.add_argument("-o", "--outdir", default="demo-output",
                   help="folder for every artifact (default: demo-output)")
    p.add_argument("--quick", action="store_true",
                   help="tiny corpus and models: a smoke test in seconds, not a result")
    p.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    add_overwrite(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rnnlab.demo import run_demo  # torch and gensim load only when the demo runs

    check_output(args.outdir, "demo", overwrite=args.overwrite)
    with output_lock(args.outdir, "demo"):
        run_demo(args.outdir, quick=args.quick, seed=args.seed, say=print,
                 report=TrainingReport(progress=not args.quick, notes=False, records=False))
    return 0
