"""`rnnlab prepare`: read corpora once into a token store on disk (rnnlab.text.store)."""

from __future__ import annotations

import argparse

from rnnlab.cli._options import add_encoding_options, add_overwrite, add_progress_options, check_at_least
from rnnlab.cli._progress import PrepareBars
from rnnlab.text.pipeline import MODES, TextPipeline
from rnnlab.text.tokenize import LEVELS

EPILOG = """\
Two streaming passes over the text, in memory bounded by the vocabulary: the first counts
every token, the second writes the ids (uint16 when the vocabulary has at most 65,536 tokens,
else uint32) and where each line starts. STORE gets config.json (the settings and the
SHA-256 of every file), vocab.json (the whole vocabulary with counts, by count, ties in order
of first occurrence), ids.bin and offsets.bin. The store is written whole or not at all, does
not need the text any more, and is refused in one line when a file is missing or damaged.
The vocabulary is kept whole: --min-count and --max-vocab are applied when the store is read.
`rnnlab train STORE` trains from it (in the store's mode) and `rnnlab embed STORE` learns word
vectors from it (a store of words), reading it from disk batch by batch. `train` and `embed`
also make stores by themselves, in the cache, for text over 256 MB (their --store).

examples:
  rnnlab prepare wiki.train.txt -o wiki-store
  rnnlab prepare part1.txt.gz part2.txt.gz --level char --lower -o chars-store
  rnnlab prepare ptb.train.txt --mode sentence -o ptb-sentences
"""


def register(subparsers) -> None:
    """Add the `prepare` subcommand."""
    p = subparsers.add_parser(
        "prepare", help="read corpora once into a token store on disk (for text bigger than memory)",
        description="Tokenize text files (plain or .gz, one sentence or line per line) into a "
                    "token store: ids on disk that are read in pieces, never held whole.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("corpus", nargs="+", metavar="CORPUS", help="text files, read in this order")
    p.add_argument("-o", "--output", required=True, metavar="STORE", help="folder for the store")
    add_overwrite(p)
    p.add_argument("--level", choices=LEVELS, default="word",
                   help="tokens: words (whitespace), characters, segmented (pre-segmented text) "
                        "or jieba (raw Chinese, needs jieba) (word)")
    p.add_argument("--mode", choices=MODES, default="stream",
                   help="stream: one continuous text, each line ending in </s>; sentence: each "
                        "line '<s> ... </s>' (stream)")
    p.add_argument("--lower", action="store_true", default=False, help="lowercase the text")
    add_encoding_options(p)
    p.add_argument("--threads", type=int, default=None,
                   help="processes that tokenize (default: every core this process may use)")
    add_progress_options(p, "summary line")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> None:
    """Prepare the store and print one summary line."""
    from rnnlab.outputs import check_output, output_lock
    from rnnlab.text.store import KIND, prepare_store

    check_at_least("--threads", args.threads)
    pipeline = TextPipeline(args.level, args.mode, args.lower)
    # Before reading the corpus: a wrong output costs seconds, not a pass over the text.
    check_output(args.output, KIND, overwrite=args.overwrite, inputs=tuple(args.corpus))
    bars = PrepareBars(args.progress and not args.quiet)
    with output_lock(args.output, KIND):
        try:
            store = prepare_store(args.corpus, args.output, pipeline, encoding=args.encoding,
                                  errors=args.errors, workers=args.threads, progress=bars)
        finally:
            bars.close()
    if not args.quiet:
        print(f"{args.output}: {len(store):,} tokens in {store.num_lines:,} lines, "
              f"{len(store.whole_vocab):,} distinct tokens ({store.config['dtype']})")
