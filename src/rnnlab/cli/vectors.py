"""Commands that query word vectors: similar, analogy, vectors-eval, vectors-plot, vectors-projector."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rnnlab.cli._options import THREADS_HELP, add_overwrite, check_at_least
from rnnlab.cli._progress import bar
from rnnlab.errors import RnnlabError
from rnnlab.outputs import check_output, plot_format
from rnnlab.ready import resolve
from rnnlab.text.width import display_width, pad
from rnnlab.word2vec.evaluate import evaluate_analogies, evaluate_similarity, plot_word_map
from rnnlab.word2vec.projector import write_projector
from rnnlab.word2vec.vectors import WordVectors

CPU_ONLY = " Runs on the CPU (NumPy, multi-threaded); there is no GPU path and no --device option."
VECTORS_HELP = (
    "word vectors: a .bin (word2vec binary), .txt/.vec (word2vec text, or GloVe without a "
    "header), a model folder written by `rnnlab embed`, or the name of ready-made vectors "
    "(`rnnlab models`)"
)


def _add_vectors_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("vectors", metavar="VECTORS", help=VECTORS_HELP)
    p.add_argument("--limit", type=int, default=None, help="load only the first N (most frequent) words")
    p.add_argument("--threads", type=int, default=None,
                   help=f"{THREADS_HELP} for NumPy's matrix products (default: all cores)")


def _load(args: argparse.Namespace) -> WordVectors:
    check_at_least("--threads", args.threads)
    if args.threads:
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=args.threads)  # for the rest of this command
    for name in ("limit", "topn", "restrict_vocab"):
        value = getattr(args, name, None)
        if value is not None and value < 1:
            raise RnnlabError(f"--{name.replace('_', '-')} must be at least 1, got {value}")
    path = resolve(args.vectors, lambda note: print(note, file=sys.stderr))
    return WordVectors.load(path, limit=args.limit, on_warning=print_warning)


def print_warning(message: str) -> None:
    """A library warning as one "warning: ..." line on stderr."""
    print(f"warning: {message}", file=sys.stderr)


def gensim_test_file(name: str) -> Path | None:
    """A file of the evaluation sets gensim ships (gensim.test.utils.datapath), if installed."""
    try:
        from gensim.test.utils import datapath
    except ImportError:
        return None
    path = Path(datapath(name))
    return path if path.is_file() else None


def print_scores(rows: list[tuple[str, float]]) -> None:
    """Words and scores in two columns, padded by display width so that Chinese lines up too."""
    width = max((display_width(word) for word, _ in rows), default=0)
    for word, score in rows:
        print(f"{pad(word, width)}  {score:7.4f}")


def run_similar(args: argparse.Namespace) -> None:
    wv = _load(args)
    print_scores(wv.most_similar(args.word, topn=args.topn, restrict_vocab=args.restrict_vocab))


def run_analogy(args: argparse.Namespace) -> None:
    wv = _load(args)
    print(f"{args.a} : {args.b} = {args.c} : ?")
    print_scores(wv.analogy(args.a, args.b, args.c, topn=args.topn, restrict_vocab=args.restrict_vocab))


def run_eval(args: argparse.Namespace) -> None:
    analogies, similarity = args.analogies, args.similarity
    if analogies is None and not similarity:
        analogies = gensim_test_file("questions-words.txt")
        wordsim = gensim_test_file("wordsim353.tsv")
        if analogies is None or wordsim is None:
            raise RnnlabError("gensim's evaluation sets are not installed; pass --analogies/--similarity")
        similarity = [wordsim]
    wv = _load(args)
    case_insensitive = not args.case_sensitive
    if analogies is not None:
        with bar(None, "analogies", unit="question") as shown:
            result = evaluate_analogies(wv, analogies, args.restrict_vocab, case_insensitive,
                                        progress=lambda done: shown.update(done - shown.n))
        print(f"analogies: {analogies} (restricted to the {args.restrict_vocab} most frequent words)")
        print(result.summary())
    for path in similarity or []:
        result = evaluate_similarity(wv, path, case_insensitive=case_insensitive)
        print(f"similarity: {path}\n{result.summary()}")


def run_plot(args: argparse.Namespace) -> None:
    plot_format(args.output)
    check_output(args.output, overwrite=args.overwrite, inputs=(args.vectors,))
    wv = _load(args)
    plot_word_map(wv, args.words, args.output, title=args.title)
    print(f"wrote {args.output}")


def run_projector(args: argparse.Namespace) -> None:
    stem = str(args.output)
    if stem.endswith(".tsv"):
        raise RnnlabError(f"{stem}: -o takes the start of two file names (it writes "
                          f"{stem[:-4]}-vectors.tsv and {stem[:-4]}-metadata.tsv); leave out .tsv")
    paths = [Path(f"{stem}-vectors.tsv"), Path(f"{stem}-metadata.tsv")]
    for path in paths:
        check_output(path, overwrite=args.overwrite, inputs=(args.vectors,))
    wv = _load(args)
    paths[0].parent.mkdir(parents=True, exist_ok=True)
    n = write_projector(wv, *paths)
    print(f"wrote {paths[0]} and {paths[1]}: {n} words x {wv.vector_size}")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the vector query commands."""
    p = subparsers.add_parser(
        "similar",
        help="nearest words to a word by cosine similarity",
        description="Print the words whose vectors are closest (cosine) to WORD's." + CPU_ONLY,
    )
    _add_vectors_args(p)
    p.add_argument("word", metavar="WORD", help="the word whose neighbours are wanted")
    p.add_argument("--topn", type=int, default=10, help="how many neighbours (default 10)")
    p.add_argument("--restrict-vocab", type=int, default=None, help="search the N most frequent words only")
    p.set_defaults(func=run_similar)

    p = subparsers.add_parser(
        "analogy",
        help="solve A is to B as C is to ? (king - man + woman)",
        description="A is to B as C is to ?: print the words nearest to B - A + C (3CosAdd), "
        "e.g. `rnnlab analogy vectors.bin man king woman` -> queen." + CPU_ONLY,
    )
    _add_vectors_args(p)
    p.add_argument("a", metavar="A", help="the first word of the known pair (man)")
    p.add_argument("b", metavar="B", help="the second word of the known pair (king)")
    p.add_argument("c", metavar="C", help="the word whose partner is wanted (woman)")
    p.add_argument("--topn", type=int, default=5, help="how many answers (default 5)")
    p.add_argument("--restrict-vocab", type=int, default=None, help="search the N most frequent words only")
    p.set_defaults(func=run_analogy)

    p = subparsers.add_parser(
        "vectors-eval",
        help="analogy accuracy and word-similarity correlation",
        description="Score word vectors on analogy questions (accuracy per section) and on "
        "word-pair similarity sets (Spearman/Pearson). Without --analogies/--similarity, "
        "uses gensim's bundled questions-words.txt and wordsim353.tsv." + CPU_ONLY,
    )
    _add_vectors_args(p)
    p.add_argument("--analogies", metavar="FILE", help="analogy questions (questions-words.txt format)")
    p.add_argument(
        "--similarity",
        metavar="FILE",
        nargs="+",
        help="word pairs with human scores (wordsim353.tsv, simlex999.txt)",
    )
    p.add_argument(
        "--restrict-vocab", type=int, default=30000, help="analogies: only the N most frequent words (30000)"
    )
    p.add_argument("--case-sensitive", action="store_true", help="do not fold case when matching words")
    p.set_defaults(func=run_eval)

    p = subparsers.add_parser(
        "vectors-plot",
        help="2-D PCA map of chosen words (PNG, SVG or PDF)",
        description="Project the vectors of WORDS onto their first two principal axes and save "
        "the picture, e.g. king queen man woman." + CPU_ONLY,
    )
    _add_vectors_args(p)
    p.add_argument("words", metavar="WORD", nargs="+")
    p.add_argument("-o", "--output", required=True,
                   help="image file to write: .png, .svg or .pdf")
    add_overwrite(p)
    p.add_argument("--title", default=None, help="plot title")
    p.set_defaults(func=run_plot)

    p = subparsers.add_parser(
        "vectors-projector",
        help="write the vectors as the Embedding Projector's two TSV files",
        description="Write OUTPUT-vectors.tsv (one row of numbers per word) and "
        "OUTPUT-metadata.tsv (one word per line) to load into the TensorFlow Embedding "
        "Projector (projector.tensorflow.org, 'Load'). Tabs and newlines inside words are "
        "written as \\t and \\n, which the Projector cannot otherwise read." + CPU_ONLY,
    )
    _add_vectors_args(p)
    p.add_argument("-o", "--output", required=True, metavar="OUTPUT",
                   help="the start of the two file names, e.g. out/words for "
                        "out/words-vectors.tsv and out/words-metadata.tsv")
    add_overwrite(p)
    p.set_defaults(func=run_projector)
