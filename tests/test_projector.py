"""`rnnlab vectors-projector`: the Embedding Projector's two TSV files, and its bad input."""

from __future__ import annotations

import numpy as np
import pytest

from rnnlab.cli import main
from rnnlab.word2vec.vectors import WordVectors

WORDS = ["the", "cat", "猫", "tab\there", "new\nline", " "]


@pytest.fixture
def vectors(tmp_path):
    rng = np.random.default_rng(0)
    wv = WordVectors(WORDS, rng.normal(size=(len(WORDS), 5)).astype(np.float32))
    wv.save(tmp_path / "v")  # a native folder: keeps any word, tabs and newlines included
    return tmp_path / "v", wv


def test_writes_vectors_and_metadata_in_the_same_order(tmp_path, vectors, capsys):
    path, wv = vectors
    assert main(["vectors-projector", str(path), "-o", str(tmp_path / "out" / "w")]) == 0
    assert capsys.readouterr().out.strip().endswith(": 6 words x 5")
    rows = (tmp_path / "out" / "w-vectors.tsv").read_text(encoding="utf-8").splitlines()
    assert len(rows) == 6 and all(len(r.split("\t")) == 5 for r in rows)
    np.testing.assert_allclose(np.array([r.split("\t") for r in rows], dtype=np.float32), wv.vectors,
                               rtol=1e-6, atol=1e-6)
    labels = (tmp_path / "out" / "w-metadata.tsv").read_text(encoding="utf-8").split("\n")
    assert labels == ["the", "cat", "猫", "tab\\there", "new\\nline", "\\u0020", ""]


def test_limit_keeps_the_most_frequent_words(tmp_path, vectors):
    path, _ = vectors
    assert main(["vectors-projector", str(path), "-o", str(tmp_path / "w"), "--limit", "2"]) == 0
    assert (tmp_path / "w-metadata.tsv").read_text(encoding="utf-8") == "the\ncat\n"
    assert len((tmp_path / "w-vectors.tsv").read_text().splitlines()) == 2


@pytest.mark.parametrize("argv, needle", [
    (["-o", "{d}/w.tsv"], "leave out .tsv"),
    (["-o", "{d}/w", "--limit", "0"], "--limit must be at least 1"),
    (["-o", "{d}/existing"], "exists; pass --overwrite"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, vectors, capsys, argv, needle):
    path, _ = vectors
    (tmp_path / "existing-vectors.tsv").write_text("precious\n")
    args = [a.format(d=tmp_path) for a in argv]
    assert main(["vectors-projector", str(path), *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and needle in err
    assert (tmp_path / "existing-vectors.tsv").read_text() == "precious\n"
    assert not (tmp_path / "w-metadata.tsv").exists()


def test_overwrite_replaces_and_missing_vectors_are_one_line(tmp_path, vectors, capsys):
    path, _ = vectors
    (tmp_path / "existing-vectors.tsv").write_text("old\n")
    assert main(["vectors-projector", str(path), "-o", str(tmp_path / "existing"), "--overwrite"]) == 0
    assert len((tmp_path / "existing-vectors.tsv").read_text().splitlines()) == 6
    capsys.readouterr()
    assert main(["vectors-projector", str(tmp_path / "nope.bin"), "-o", str(tmp_path / "x")]) == 2
    assert capsys.readouterr().err.count("\n") == 1
