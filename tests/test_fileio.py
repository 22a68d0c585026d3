"""Atomic writes: a failure mid-write leaves the earlier file (or folder) intact and no debris."""

import os

import pytest

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


def test_atomic_dir_swaps_whole_folder(tmp_path):
    path = tmp_path / "model"
    path.mkdir()
    (path / "old.txt").write_text("old")
    with atomic_dir(path) as tmp:
        (tmp / "new.txt").write_text("new")
        assert not (path / "new.txt").exists()
    assert sorted(os.listdir(path)) == ["new.txt"]
    assert os.listdir(tmp_path) == ["model"]


def test_atomic_dir_failure_keeps_the_old_folder(tmp_path):
    path = tmp_path / "model"
    path.mkdir()
    (path / "weights").write_text("good")
    with pytest.raises(ValueError), atomic_dir(path) as tmp:
        (tmp / "weights").write_text("half")
        raise ValueError("NaN in weights")
    assert (path / "weights").read_text() == "good"
    assert os.listdir(tmp_path) == ["model"]
