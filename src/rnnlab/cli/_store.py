"""`--store`: `train` and `embed` read large text files through a token store cached on disk."""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from collections.abc import Sequence

from rnnlab.cli._progress import PrepareBars
from rnnlab.errors import RnnlabError
from rnnlab.outputs import is_main_process
from rnnlab.text.pipeline import TextPipeline
from rnnlab.text.store import TokenStore
from rnnlab.text.store_cache import AUTO_BYTES, STORE_CHOICES, cached_store, wants_store

STORE_HELP = (f"read the text files through a token store (as `rnnlab prepare` makes) cached in "
              f"$RNNLAB_CACHE/stores, else ~/.cache/rnnlab/stores, built on first use and "
              f"reused while the files are unchanged: auto: when they hold more than "
              f"{AUTO_BYTES >> 20} MB in all; always; never: read them into memory (auto)")


def add_store_option(parser: argparse.ArgumentParser) -> None:
    """Add --store auto|always|never."""
    parser.add_argument("--store", choices=STORE_CHOICES, default="auto", help=STORE_HELP)


def text_store(paths: Sequence[str | os.PathLike], pipeline: TextPipeline, encoding: str,
               errors: str, args: argparse.Namespace, unfit: str | None = None) -> TokenStore | None:
    """The cached store to read text files through when --store asks for one, else None.

    `unfit` says why this run cannot read a store: `auto` then reads the text into memory,
    `always` is refused.
    """
    if not wants_store(paths, args.store):
        return None
    if unfit:
        if args.store == "always":
            raise RnnlabError(f"--store always: {unfit}")
        return None
    shown = not args.quiet and is_main_process()
    bars = PrepareBars(shown and args.progress)
    try:
        store = cached_store(paths, pipeline, encoding=encoding, errors=errors, progress=bars)
    finally:
        bars.close()
    if shown:
        print(f"reading the text through the token store cached in {store.path}; remove it "
              f"with: rm -r {shlex.quote(str(store.path))}", file=sys.stderr, flush=True)
    return store
