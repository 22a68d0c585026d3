"""`rnnlab data list|get|path`: the known corpora, downloaded, verified and cached by name."""

from __future__ import annotations

import argparse

from rnnlab import datasets
from rnnlab.cli._progress import DownloadBars
from rnnlab.errors import RnnlabError

WHERE = ("Lookup order: the mirror (--data-dir or $RNNLAB_DATA, laid out as <dir>/<corpus>/<file>, "
         "files may be .gz), then the cache ($RNNLAB_CACHE, else $XDG_CACHE_HOME/rnnlab, else "
         "~/.cache/rnnlab), then the canonical URL.")


def register(subparsers) -> None:
    """Add `data` with its actions `list`, `get` and `path`."""
    data = subparsers.add_parser(
        "data", help="known corpora: list them, download and verify, print local paths",
        description="Known corpora by name, each file checked against its recorded SHA-256. " + WHERE)
    sub = data.add_subparsers(dest="action", metavar="ACTION", required=True)

    p = sub.add_parser("list", help="show the known corpora with source URL, size, licence and SHA-256",
                       description="Show every known corpus: per file its split, size, canonical URL and "
                                   "SHA-256, and the corpus licence.")
    p.set_defaults(func=run_list)

    p = sub.add_parser("get", help="make a corpus available locally (download if needed) and print its paths",
                       description="Find or download every file of a corpus, verify it, and print one "
                                   "'split<TAB>path' line per file. " + WHERE)
    p.add_argument("name", help="corpus name (see `rnnlab data list`)")
    p.add_argument("--data-dir", help="local mirror folder (default: $RNNLAB_DATA)")
    p.add_argument("--overwrite", action="store_true",
                   help="download again a cached file that fails its checksum (refused otherwise)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run_get)

    p = sub.add_parser("path", help="print local paths of a corpus already mirrored or cached (no download)",
                       description="Print one 'split<TAB>path' line per file of a corpus, or just the path "
                                   "with --split; fails if a file is neither mirrored nor cached. " + WHERE)
    p.add_argument("name", help="corpus name (see `rnnlab data list`)")
    p.add_argument("--data-dir", help="local mirror folder (default: $RNNLAB_DATA)")
    p.add_argument("--split", help="print only this split's path (e.g. train)")
    p.set_defaults(func=run_path)


def run_list(args: argparse.Namespace) -> None:
    """Print the registry."""
    for corpus in datasets.REGISTRY.values():
        print(f"{corpus.name}: {corpus.description} ({corpus.size / 1e6:.1f} MB)")
        print(f"  licence: {corpus.licence}")
        for f in corpus.files:
            print(f"  {f.split:<6} {f.name}  {f.size:,} bytes  {f.url}")
            print(f"  {'':<6} sha256 {f.sha256}")
            if not f.served:
                print(f"  {'':<6} no URL serves this file: put it in a mirror (--data-dir)")
        if corpus.derived:
            print(f"  train/valid/test derived into the cache: {datasets.POEM_SPLITS}")


def run_get(args: argparse.Namespace) -> None:
    """Fetch a corpus and print its paths."""
    paths = datasets.corpus_files(args.name, args.data_dir, progress=DownloadBars(not args.quiet),
                                  overwrite=args.overwrite)
    for split, path in paths.items():
        print(f"{split}\t{path}")


def run_path(args: argparse.Namespace) -> None:
    """Print the local paths of a corpus without downloading."""
    splits = datasets.get_corpus(args.name).splits
    if args.split is not None and args.split not in splits:
        raise RnnlabError(f"{args.name} has no split {args.split!r}; it has {', '.join(splits)}")
    paths = datasets.corpus_files(args.name, args.data_dir, download_missing=False)
    for split, path in paths.items():
        if args.split is None:
            print(f"{split}\t{path}")
        elif split == args.split:
            print(path)
