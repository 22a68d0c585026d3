"""Atomic file writes: a crash mid-write leaves the earlier file intact.

Temporary files and folders are created private (mkstemp: 0600, mkdtemp: 0700); they get the
modes that the user's umask gives any new file (0644 and 0755 under umask 022) before they are
renamed into place, as with any Unix tool.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from rnnlab.outputs import check_replaceable


def umask() -> int:
    """The process's file-mode creation mask (reading it means setting it, so it is set back)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO]:
    """Open a temporary file beside `path`; on success flush, fsync and rename it over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~umask())
        with os.fdopen(fd, mode, encoding=None if "b" in mode else encoding) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(e, OSError) and e.filename is None:  # a full disk: say which file
            e.filename = str(path)
        raise


def follow_umask(folder: Path) -> None:
    """Give `folder` and everything in it the modes the umask gives new files and folders
    (some writers, safetensors among them, create their files private)."""
    mask = umask()
    os.chmod(folder, 0o777 & ~mask)
    for root, dirs, files in os.walk(folder):
        for name in dirs:
            os.chmod(os.path.join(root, name), 0o777 & ~mask)
        for name in files:
            os.chmod(os.path.join(root, name), 0o666 & ~mask)


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike, kind: str) -> Iterator[Path]:
    """Build a folder under a temporary name; on success swap it in for `path` whole.

    `kind` names what the folder is (see rnnlab.outputs): an existing `path` is replaced only
    when it is an empty folder or an rnnlab folder of that kind, checked before and at the swap.
    """
    path = Path(path)
    if path.exists():
        check_replaceable(path, kind)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    try:
        yield tmp
        follow_umask(tmp)
        old = None
        if path.exists():
            check_replaceable(path, kind)
            old = path.parent / f".{path.name}.old"
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
        os.replace(tmp, path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def file_fingerprint(path: str | os.PathLike) -> dict:
    """{"size", "sha256"} of a file's bytes: enough to notice that a file has changed."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return {"size": os.path.getsize(path), "sha256": digest.hexdigest()}
