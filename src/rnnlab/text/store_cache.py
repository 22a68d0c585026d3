"""Token stores made on the fly: large text files read through a store cached on disk.

`rnnlab train` and `rnnlab embed` read small text into memory. Text files larger than
AUTO_BYTES in all (any size with `--store always`) are read once into a token store
(rnnlab.text.store) in the user's cache, `stores/` under rnnlab.outputs.cache_dir()
($RNNLAB_CACHE, else $XDG_CACHE_HOME/rnnlab, else ~/.cache/rnnlab), and trained from there.

A cached store is named after the first file and a hash of what decides its contents: every
file's absolute path, size and modification time, the pipeline, the encoding and the error
handler. So a changed file gets a new store, and the old one is left alone (a run may still
be reading it) until the user removes it. A store is built under a lock: processes that ask
for the same one at once (torchrun's) build it once, the others wait and read it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Sequence
from pathlib import Path

from rnnlab.errors import RnnlabError
from rnnlab.outputs import cache_dir, output_lock
from rnnlab.text.corpus import check_file
from rnnlab.text.pipeline import TextPipeline
from rnnlab.text.store import KIND, VERSION, Progress, TokenStore, prepare_store

AUTO_BYTES = 256 << 20  # `--store auto` reads text files larger than this in all through a store
STORE_CHOICES = ("auto", "always", "never")

Paths = str | os.PathLike | Sequence[str | os.PathLike]


def _paths(paths: Paths) -> list[Path]:
    return [check_file(p) for p in ([paths] if isinstance(paths, (str, os.PathLike)) else paths)]


def wants_store(paths: Paths, choice: str, threshold: int | None = None) -> bool:
    """Whether `--store CHOICE` reads these text files through a store: "always", "never", or
    "auto": when they hold more than `threshold` (AUTO_BYTES) bytes in all."""
    if choice not in STORE_CHOICES:
        raise RnnlabError(f"store must be one of {', '.join(STORE_CHOICES)}, got {choice!r}")
    if choice != "auto":
        return choice == "always"
    threshold = AUTO_BYTES if threshold is None else threshold
    return sum(p.stat().st_size for p in _paths(paths)) > threshold


def cache_path(paths: Paths, pipeline: TextPipeline, encoding: str = "utf-8",
               errors: str = "strict") -> Path:
    """Where the store of these files, read this way, is cached."""
    files = [p.resolve() for p in _paths(paths)]
    key = {"version": VERSION, "pipeline": pipeline.to_config(), "encoding": encoding,
           "errors": errors,
           "files": [[str(p), p.stat().st_size, p.stat().st_mtime_ns] for p in files]}
    digest = hashlib.sha256(json.dumps(key).encode()).hexdigest()[:16]
    name = re.sub(r"[^\w.-]+", "_", files[0].name)[:48]
    return cache_dir() / "stores" / f"{name}-{digest}"


def cached_store(paths: Paths, pipeline: TextPipeline, *, encoding: str = "utf-8",
                 errors: str = "strict", workers: int | None = None,
                 progress: Progress | None = None) -> TokenStore:
    """The token store of text files read with `pipeline`, from the cache; built by
    prepare_store (reporting to `progress`) when it is missing or damaged."""
    files = _paths(paths)
    path = cache_path(files, pipeline, encoding, errors)
    with output_lock(path, KIND, wait=True):
        try:
            store = TokenStore(path, verify=False)  # sizes checked; SHA-256 by whoever reads it
            store.check_pipeline(pipeline)
            return store
        except RnnlabError:
            pass  # missing or damaged: built (again); a folder rnnlab did not write is refused
        return prepare_store(files, path, pipeline, encoding=encoding, errors=errors,
                             workers=workers, progress=progress)
