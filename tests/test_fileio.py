"""Atomic writes: a failure mid-write leaves the earlier file (or folder) intact and no debris."""

import errno
import os

import pytest

from rnnlab.errors import RnnlabError
from rnnlab.fileio import atomic_dir, atomic_write


def test_atomic_write_replaces_on_success(tmp_path):
    path = tmp_path / "out.txt"
    path.write_text("old")
    with atomic_write(path) as f:
        f.write("new")
    assert path.read_text() == "new"
    assert os.listdir(tmp_path) == ["out.txt"]


@pytest.mark.parametrize("mode", ["w", "wb"])
def test_failure_mid_write_keeps_the_old_file(tmp_path, mode):
    path = tmp_path / "vectors.bin"
    path.write_bytes(b"good")
    with pytest.raises(RuntimeError), atomic_write(path, mode) as f:
        f.write("half" if mode == "w" else b"half")
        raise RuntimeError("disk full")
    assert path.read_bytes() == b"good"
    assert os.listdir(tmp_path) == ["vectors.bin"]


def test_failure_on_first_write_creates_nothing(tmp_path):
    path = tmp_path / "sub" / "model.json"
    with pytest.raises(KeyboardInterrupt), atomic_write(path):
        raise KeyboardInterrupt
    assert not path.exists()
    assert os.listdir(tmp_path / "sub") == []


def vectors_folder(path, content="old"):
    """A folder as rnnlab writes word vectors (its marker file is vectors.safetensors)."""
    path.mkdir()
    (path / "vectors.safetensors").write_text(content)
    return path


def test_atomic_dir_swaps_whole_folder(tmp_path):
    path = vectors_folder(tmp_path / "model")
    with atomic_dir(path, "word-vectors") as tmp:
        (tmp / "vectors.safetensors").write_text("new")
        (tmp / "vocab.json").write_text("new")
        assert (path / "vectors.safetensors").read_text() == "old"
    assert sorted(os.listdir(path)) == ["vectors.safetensors", "vocab.json"]
    assert (path / "vectors.safetensors").read_text() == "new"
    assert os.listdir(tmp_path) == ["model"]


def test_atomic_dir_failure_keeps_the_old_folder(tmp_path):
    path = vectors_folder(tmp_path / "model", "good")
    with pytest.raises(ValueError), atomic_dir(path, "word-vectors") as tmp:
        (tmp / "vectors.safetensors").write_text("half")
        raise ValueError("NaN in weights")
    assert (path / "vectors.safetensors").read_text() == "good"
    assert os.listdir(tmp_path) == ["model"]


@pytest.mark.parametrize("setup", ["foreign folder", "other kind", "regular file"])
def test_atomic_dir_never_replaces_what_is_not_its_kind(tmp_path, setup):
    path = tmp_path / "out"
    if setup == "foreign folder":
        path.mkdir()
        (path / "thesis.tex").write_text("years of work")
    elif setup == "other kind":
        vectors_folder(path)
    else:
        path.write_text("a file")
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    with pytest.raises(RnnlabError), atomic_dir(path, "language-model") as tmp:
        (tmp / "config.json").write_text("{}")
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before
    assert sorted(os.listdir(tmp_path)) == ["out"]


def test_atomic_dir_fills_an_empty_folder(tmp_path):
    path = tmp_path / "out"
    path.mkdir()
    with atomic_dir(path, "word-vectors") as tmp:
        (tmp / "vectors.safetensors").write_text("new")
    assert os.listdir(path) == ["vectors.safetensors"]


def test_written_files_follow_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        with atomic_write(tmp_path / "a.txt") as f:
            f.write("x")
        with atomic_dir(tmp_path / "v", "word-vectors") as tmp:
            (tmp / "vectors.safetensors").write_text("x")
            os.chmod(tmp / "vectors.safetensors", 0o600)  # as safetensors writes its files
        os.umask(0o027)
        with atomic_write(tmp_path / "b.txt") as f:
            f.write("x")
    finally:
        os.umask(old)
    mode = lambda p: oct(p.stat().st_mode & 0o777)  # noqa: E731
    assert mode(tmp_path / "a.txt") == "0o644"
    assert mode(tmp_path / "v") == "0o755"
    assert mode(tmp_path / "v" / "vectors.safetensors") == "0o644"
    assert mode(tmp_path / "b.txt") == "0o640"


def test_a_failed_write_names_its_file(tmp_path, monkeypatch):
    def full_disk(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(OSError) as caught, atomic_write(tmp_path / "a.txt") as f:
        f.write("x")
    assert caught.value.filename == str(tmp_path / "a.txt")
    assert os.listdir(tmp_path) == []
