"""Where rnnlab may write: what an output path holds, what may replace it, and who is writing.

rnnlab writes plain files (vectors, plots) and five kinds of folder (below). An existing output
is replaced only when it is of the same kind and the user said so (`overwrite`); a folder that
holds anything rnnlab does not write there, or another kind of output, is never replaced or
emptied; a file never stands in for a folder or the other way round. `check_output` runs these
checks, and whether the place is writable at all, before any work starts, so a mistake costs
seconds, not a training run.

rnnlab's own downloads and token stores go under the user cache, `cache_dir()`.

A writer holds an advisory lock (flock) while it works, so two processes never write one output
at once. The kernel drops the lock when its process ends, however it ends, so a crashed run
never leaves a stale lock behind.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from rnnlab.errors import RnnlabError

LOCK = ".rnnlab.lock"  # inside a training run's folder, which is never swapped out whole
CARD_FILES = ("card.json", "README.md")  # a ready-made model's card, beside its files


def _config_format(path: Path) -> str | None:
    """The "format" of `path/config.json`, or None when there is no readable one."""
    try:
        config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return config.get("format") if isinstance(config, dict) else None


def _is_run(path: Path) -> bool:
    return any((path / name).exists() for name in ("best", "last", "metrics.jsonl", LOCK))


@dataclass(frozen=True)
class FolderKind:
    """A kind of folder rnnlab writes: what it is called, what it holds, how to recognise it."""

    description: str
    entries: frozenset[str]
    marker: Callable[[Path], bool]


FOLDER_KINDS = {
    "language-model": FolderKind(
        "a language model",
        frozenset({"model.safetensors", "config.json", "vocab.json", "training.json",
                   "training.safetensors", *CARD_FILES}),
        lambda p: _config_format(p) == "rnnlab-lm"),
    "word-vectors": FolderKind(
        "word vectors",
        frozenset({"vectors.safetensors", "vocab.json", "config.json", *CARD_FILES}),
        lambda p: (p / "vectors.safetensors").is_file()
        and (not (p / "config.json").exists() or _config_format(p) == "rnnlab-word2vec")),
    "training-run": FolderKind(
        "a training run",
        frozenset({"best", "last", "metrics.jsonl", "curve.png", LOCK}),
        _is_run),
    "demo": FolderKind(
        "a demo output",
        frozenset({"corpus", "word2vec", "lm", "score.txt", "samples.txt", "summary.json",
                   "demo.txt"}),
        lambda p: (p / "summary.json").is_file()),
    "token-store": FolderKind(
        "a token store",
        frozenset({"config.json", "vocab.json", "ids.bin", "offsets.bin"}),
        lambda p: _config_format(p) == "rnnlab-store"),
}


def _temporary(name: str) -> bool:
    """rnnlab's own debris: atomic writes' temporaries, set-aside folders and lock files."""
    return name.startswith(".") and name.endswith((".tmp", ".old", ".lock"))


def folder_kind(path: str | os.PathLike) -> str | None:
    """"empty", the FOLDER_KINDS name of an rnnlab folder, or None for anything else."""
    path = Path(path)
    names = {n for n in os.listdir(path) if not _temporary(n) or n == LOCK}
    if not names:
        return "empty"
    for name, kind in FOLDER_KINDS.items():
        if names <= kind.entries and kind.marker(path):
            return name
    return None


def describe(path: Path) -> str:
    """What is at `path`, in a few words, for a refusal."""
    if not path.is_dir():
        return "a file"
    found = folder_kind(path)
    if found in FOLDER_KINDS:
        return FOLDER_KINDS[found].description
    if found == "empty":
        return "an empty folder"
    foreign = sorted(n for n in os.listdir(path) if not _temporary(n))
    shown = ", ".join(foreign[:3]) + (", ..." if len(foreign) > 3 else "")
    return f"files rnnlab did not write ({shown})"


def check_replaceable(path: Path, kind: str) -> None:
    """Refuse to replace `path` (which exists) with a folder of `kind` unless it is one already."""
    if not path.is_dir():
        raise RnnlabError(f"{path}: is a file, not a folder; rnnlab never replaces it with "
                          f"{FOLDER_KINDS[kind].description}")
    found = folder_kind(path)
    if found not in ("empty", kind):
        raise RnnlabError(f"{path}: holds {describe(path)}; rnnlab never replaces or empties it "
                          f"(choose another output)")


def check_output(path: str | os.PathLike, kind: str = "file", *, overwrite: bool = False,
                 resume: bool = False, inputs: tuple = ()) -> Path:
    """`path` made absolute when rnnlab may write `kind` there; else one-line RnnlabError.

    `kind` is "file" or a FOLDER_KINDS name. A training run may also be continued (`resume`).
    `inputs` are the files and folders the command reads: the output must not be or hold one.
    """
    path = Path(path)
    full = path.resolve()
    if full == Path.cwd().resolve():
        raise RnnlabError(f"{path}: is the current folder; name a new folder for the output")
    for source in inputs:
        source_path = Path(source).resolve()
        if full == source_path or source_path in full.parents or full in source_path.parents:
            raise RnnlabError(f"{path}: the output would overwrite the input {source}; "
                              f"choose another output")
    if full.exists():
        _check_existing(path, full, kind, overwrite, resume)
    check_writable(path, full)
    return full


def _check_existing(path: Path, full: Path, kind: str, overwrite: bool, resume: bool) -> None:
    if kind == "file":
        if full.is_dir():
            raise RnnlabError(f"{path}: is a folder; name a file for the output")
        if not overwrite:
            raise RnnlabError(f"{path}: exists; pass --overwrite to replace it")
        return
    check_replaceable(path, kind)
    if folder_kind(full) == "empty":
        return
    if kind == "training-run" and not (overwrite or resume):
        raise RnnlabError(f"{path}: holds a training run; pass --resume to continue it or "
                          f"--overwrite to start it again")
    if not (overwrite or resume):
        raise RnnlabError(f"{path}: holds {FOLDER_KINDS[kind].description}; "
                          f"pass --overwrite to replace it")


def check_writable(path: Path, full: Path) -> None:
    """Try to create a file where the output will be written: in the nearest existing folder
    above it, and inside it when it is a folder already (a training run writes there)."""
    above = full.parent
    while not above.exists():
        above = above.parent
    if not above.is_dir():
        raise RnnlabError(f"{path}: cannot be created, {above} is a file")
    for folder in (above, full) if full.is_dir() else (above,):
        try:
            fd, probe = tempfile.mkstemp(dir=folder, prefix=".rnnlab-probe.", suffix=".tmp")
            os.close(fd)
            os.unlink(probe)
        except OSError as e:
            raise RnnlabError(f"{path}: cannot write in {folder} ({e.strerror})") from None


def _lock_path(path: Path, kind: str) -> Path:
    # A folder swapped in whole would take a lock inside it away: theirs sit beside them.
    if kind == "training-run":
        return path / LOCK
    return path.parent / f".{path.name}.lock"


@contextlib.contextmanager
def output_lock(path: str | os.PathLike, kind: str = "file", wait: bool = False) -> Iterator[None]:
    """Hold an exclusive lock on writing `path`; a second writer gets one RnnlabError line, or
    (`wait`) waits for the first to finish.

    The lock file records the holder's process id for that message. A lock file beside the
    output is removed on exit; a training run's stays in its folder unless it is all there is.
    """
    path = Path(path)
    lock = _lock_path(path, kind)
    made = not lock.parent.exists()
    lock.parent.mkdir(parents=True, exist_ok=True)
    fd = _acquire(lock, path, wait)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield
    finally:
        # Unlinked while still held, so a waiting process cannot take a lock on a lost file.
        alone = kind == "training-run" and os.listdir(lock.parent) == [LOCK]
        if kind != "training-run" or alone:
            with contextlib.suppress(OSError):
                os.unlink(lock)
        if alone and made:
            with contextlib.suppress(OSError):
                lock.parent.rmdir()
        os.close(fd)


def _acquire(lock: Path, path: Path, wait: bool = False) -> int:
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except OSError as e:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "?"
            os.close(fd)
            if e.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            raise RnnlabError(f"{path}: another rnnlab process (pid {holder}) is writing it; "
                              f"wait for it to finish or choose another output") from None
        # The previous holder may have unlinked the file between our open and our flock.
        with contextlib.suppress(FileNotFoundError):
            if os.stat(lock).st_ino == os.fstat(fd).st_ino:
                return fd
        os.close(fd)


def cache_dir() -> Path:
    """The user cache folder: $RNNLAB_CACHE, else $XDG_CACHE_HOME/rnnlab, else ~/.cache/rnnlab."""
    if os.environ.get("RNNLAB_CACHE"):
        return Path(os.environ["RNNLAB_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "rnnlab"


def is_main_process() -> bool:
    """True except in the worker processes of torchrun beyond rank 0, which never write."""
    return int(os.environ.get("RANK", "0")) == 0


PLOT_FORMATS = ("png", "svg", "pdf")


def plot_format(path: str | os.PathLike) -> str:
    """The image format a plot's file name asks for (png, svg or pdf); anything else is refused."""
    suffix = Path(path).suffix.lower().lstrip(".")
    if suffix not in PLOT_FORMATS:
        raise RnnlabError(f"{path}: cannot tell the image format from its name; end it in "
                          f"{', '.join('.' + f for f in PLOT_FORMATS)}")
    return suffix
