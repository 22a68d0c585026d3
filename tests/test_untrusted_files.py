"""Untrusted files run no code: model and vector loaders read safetensors and JSON only.

Each case puts a pickle whose unpickling creates a marker file where a model file is expected,
under the names a user might try, and checks the one-line refusal and that the marker never
appears. Unpickling entry points are also replaced by traps, so a loader that merely tried
(and failed) to unpickle would be caught too.
"""

from __future__ import annotations

import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from rnnlab.cli import main

REAL_LOADS = pickle.loads  # kept before the traps below replace it
PICKLE_NAMES = ["model.pt", "model.pth", "model.bin", "pytorch_model.bin", "model.pkl"]


class Payload:
    """Unpickling this object calls open(marker, "w"), i.e. runs code that creates a file."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


@pytest.fixture
def marker(tmp_path: Path) -> Path:
    path = tmp_path / "pwned"
    yield path
    assert not path.exists(), "a model file was unpickled: it ran code"


@pytest.fixture
def payload(marker: Path) -> bytes:
    data = pickle.dumps(Payload(marker))
    # The payload works: unpickled once here, it makes the marker.
    REAL_LOADS(data)
    assert marker.exists()
    marker.unlink()
    return data


@pytest.fixture(autouse=True)
def no_unpickling(monkeypatch):
    """Any attempt to unpickle during a test fails it."""

    def trap(*args, **kwargs):
        raise AssertionError("a loader tried to unpickle a file")

    for module, name in [(pickle, "load"), (pickle, "loads"), (pickle, "Unpickler"), (torch, "load")]:
        monkeypatch.setattr(module, name, trap)


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    """A good language-model folder and a good word2vec model folder."""
    from rnnlab.lm.checkpoint import save_model
    from rnnlab.lm.model import LanguageModel
    from rnnlab.text.vocab import Vocabulary
    from rnnlab.word2vec.train import Word2Vec

    d = tmp_path_factory.mktemp("models")
    vocab = Vocabulary(["<unk>", "</s>", "the", "cat", "sat"], specials=("<unk>", "</s>"))
    save_model(d / "lm", LanguageModel(len(vocab), 4, 4, 1), vocab,
               {"level": "word", "mode": "stream", "lower": False})
    Word2Vec([["the", "cat", "sat"]] * 10, vector_size=4, min_count=1, epochs=1, workers=1).save(d / "w2v")
    (d / "corpus.txt").write_text("the cat sat\n" * 10)
    return d


def refused(capsys, argv: list, *needles: str) -> None:
    """Exit 2 with one error line holding every needle."""
    rc = main([str(a) for a in argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and err[0].startswith(f"rnnlab {argv[0]}: error: "), err
    for needle in needles:
        assert needle in err[0], (needle, err[0])


def folder_with(models: Path, tmp_path: Path, kind: str, remove: str, name: str, data: bytes) -> Path:
    """A copy of a model folder without its weights `remove`, holding `data` as `name`."""
    folder = tmp_path / kind
    shutil.copytree(models / kind, folder)
    (folder / remove).unlink()
    (folder / name).write_bytes(data)
    return folder


# -- language-model folders ------------------------------------------------------------------


@pytest.mark.parametrize("name", PICKLE_NAMES)
def test_lm_folder_with_pickled_weights_is_refused(capsys, models, tmp_path, payload, name):
    folder = folder_with(models, tmp_path, "lm", "model.safetensors", name, payload)
    refused(capsys, ["generate", folder, "--length", "2"], "model.safetensors missing")
    refused(capsys, ["evaluate", folder, models / "corpus.txt"], "model.safetensors missing")


def test_pickle_named_safetensors_in_lm_folder(capsys, models, tmp_path, payload):
    folder = folder_with(models, tmp_path, "lm", "model.safetensors", "model.safetensors", payload)
    refused(capsys, ["generate", folder, "--length", "2"], "model.safetensors")
    refused(capsys, ["score", folder, "the cat"], "model.safetensors")


@pytest.mark.parametrize("name", PICKLE_NAMES)
def test_pickle_file_given_as_model(capsys, tmp_path, payload, name):
    (tmp_path / name).write_bytes(payload)
    refused(capsys, ["generate", tmp_path / name], name)


def test_pickle_as_training_state_is_refused(capsys, models, tmp_path, payload):
    run = tmp_path / "run"
    shutil.copytree(models / "lm", run / "last")
    (run / "last" / "training.json").write_text("{}")
    (run / "last" / "training.safetensors").write_bytes(payload)
    refused(capsys, ["train", "-o", run, "--resume", "--no-progress"], "training state")


# -- word2vec model folders and vector files -------------------------------------------------


@pytest.mark.parametrize("name", PICKLE_NAMES)
def test_w2v_folder_with_pickled_weights_is_refused(capsys, models, tmp_path, payload, name):
    folder = folder_with(models, tmp_path, "w2v", "vectors.safetensors", name, payload)
    refused(capsys, ["similar", folder, "the"], "vectors.safetensors")
    refused(capsys, ["embed", models / "corpus.txt", "-o", tmp_path / "out", "--init", folder, "--quiet"],
            "vectors.safetensors")
    assert not (tmp_path / "out").exists()


def test_pickle_named_safetensors_in_w2v_folder(capsys, models, tmp_path, payload):
    folder = folder_with(models, tmp_path, "w2v", "vectors.safetensors", "vectors.safetensors", payload)
    refused(capsys, ["similar", folder, "the"], "vectors.safetensors")
    refused(capsys, ["vectors-eval", folder, "--analogies", models / "corpus.txt"], "vectors.safetensors")
    refused(capsys, ["embed", models / "corpus.txt", "-o", tmp_path / "out", "--init", folder, "--quiet"],
            "vectors.safetensors")


@pytest.mark.parametrize("name", [*PICKLE_NAMES, "vectors.safetensors", "vectors.txt", "vectors.vec"])
def test_pickle_as_vectors_file(capsys, models, tmp_path, payload, name):
    (tmp_path / name).write_bytes(payload)
    refused(capsys, ["similar", tmp_path / name, "the"], name)
    refused(capsys, ["train", models / "corpus.txt", "-o", tmp_path / "run", "--no-progress",
                     "--vectors", tmp_path / name], name)
    assert not (tmp_path / "run").exists()


# -- in a fresh process ----------------------------------------------------------------------


def test_fresh_process_never_unpickles(models, tmp_path, marker):
    payload = pickle.dumps(Payload(marker))
    lm = folder_with(models, tmp_path, "lm", "model.safetensors", "model.safetensors", payload)
    (lm / "model.pt").write_bytes(payload)
    result = subprocess.run([sys.executable, "-m", "rnnlab", "generate", str(lm)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
