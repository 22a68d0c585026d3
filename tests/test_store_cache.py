"""Cached token stores: built once, reused while the text is unchanged, rebuilt when it changes,
and what `train` and `embed` do with them (`--store`)."""

from __future__ import annotations

import json
import os
import shlex
import threading
from pathlib import Path

import numpy as np
import pytest

from rnnlab.cli import main
from rnnlab.errors import RnnlabError
from rnnlab.lm import checkpoint
from rnnlab.text import store_cache
from rnnlab.text.pipeline import TextPipeline
from rnnlab.text.store import TokenStore, prepare_store
from rnnlab.text.store_cache import cache_path, cached_store, wants_store
from rnnlab.word2vec import Word2Vec, WordVectors

TEXT = "the cat sat on the mat\nthe dog sat on the log\na cat and a dog\n" * 8


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    """$RNNLAB_CACHE in the test's folder."""
    monkeypatch.setenv("RNNLAB_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "stores"


@pytest.fixture
def text(tmp_path) -> Path:
    path = tmp_path / "my corpus.txt"
    path.write_text(TEXT)
    return path


class Builds:
    """prepare_store, counting its calls."""

    def __init__(self, monkeypatch) -> None:
        self.calls = 0
        monkeypatch.setattr(store_cache, "prepare_store", self)

    def __call__(self, *args, **kwargs) -> TokenStore:
        self.calls += 1
        return prepare_store(*args, **kwargs)


def test_wants_store_by_size_or_choice(text, monkeypatch):
    size = len(TEXT)
    assert not wants_store([text], "auto")  # far below AUTO_BYTES
    assert wants_store([text], "auto", threshold=size - 1)
    assert not wants_store([text], "auto", threshold=size)
    assert wants_store([text, text], "auto", threshold=2 * size - 1)  # the files in all
    monkeypatch.setattr(store_cache, "AUTO_BYTES", size - 1)
    assert wants_store(text, "auto")
    assert wants_store([text], "always") and not wants_store([text], "never")
    with pytest.raises(RnnlabError, match="store must be one of auto, always, never"):
        wants_store([text], "sometimes")
    with pytest.raises(RnnlabError, match="no such file"):
        wants_store([text.parent / "missing.txt"], "auto")


def test_the_cache_is_under_rnnlab_cache_named_after_the_file(cache, text, monkeypatch):
    path = cache_path([text], TextPipeline())
    assert path.parent == cache and path.name.startswith("my_corpus.txt-")
    assert len(path.name) == len("my_corpus.txt-") + 16
    assert cache_path([text], TextPipeline(lower=True)) != path
    assert cache_path([text], TextPipeline(), encoding="latin-1") != path
    assert cache_path([text, text], TextPipeline()) != path
    monkeypatch.delenv("RNNLAB_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(text.parent / "xdg"))
    assert cache_path([text], TextPipeline()).parent == text.parent / "xdg" / "rnnlab" / "stores"


def test_a_store_is_built_once_and_rebuilt_when_the_text_changes(cache, text, monkeypatch):
    builds = Builds(monkeypatch)
    phases = []
    store = cached_store([text], TextPipeline(), progress=lambda phase, done, total: phases.append(phase))
    assert builds.calls == 1 and phases[0] == "count" and phases[-1] == "write"
    assert store.path.parent == cache and len(store) == 8 * (6 + 6 + 5 + 3)
    ids_before = store.ids().tolist()
    written = (store.path / "ids.bin").stat().st_mtime_ns
    again = cached_store([text], TextPipeline())
    assert builds.calls == 1 and again.path == store.path  # reused, not rewritten
    assert (store.path / "ids.bin").stat().st_mtime_ns == written
    assert again.ids().tolist() == ids_before

    text.write_text(TEXT + "a new line\n")
    changed = cached_store([text], TextPipeline())
    assert builds.calls == 2 and changed.path != store.path and len(changed) == len(store) + 4
    assert TokenStore(store.path).ids().tolist() == ids_before  # the old one is left alone

    os.utime(text, ns=(1, 1))  # the same bytes, another modification time: built again
    assert cached_store([text], TextPipeline()).path != changed.path and builds.calls == 3


def test_a_damaged_cached_store_is_built_again(cache, text, monkeypatch):
    store = cached_store([text], TextPipeline())
    (store.path / "ids.bin").write_bytes(b"\0\0")
    builds = Builds(monkeypatch)
    assert len(cached_store([text], TextPipeline())) == len(store) and builds.calls == 1


def test_a_folder_rnnlab_did_not_write_is_never_replaced(cache, text):
    path = cache_path([text], TextPipeline())
    path.mkdir(parents=True)
    (path / "notes.txt").write_text("mine")
    with pytest.raises(RnnlabError, match="rnnlab never replaces or empties it"):
        cached_store([text], TextPipeline())
    assert os.listdir(path) == ["notes.txt"] and os.listdir(cache) == [path.name]


def test_processes_asking_at_once_build_one_store(cache, text, monkeypatch):
    builds = Builds(monkeypatch)
    paths = []
    threads = [threading.Thread(target=lambda: paths.append(cached_store([text], TextPipeline())
                                                            .path)) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert builds.calls == 1 and len(set(paths)) == 1 and len(paths) == 3
    assert sorted(os.listdir(cache)) == [paths[0].name]  # no lock file or temporary left


# -- the command line --------------------------------------------------------------------------


EMBED = ["--embed-size", "8", "--min-count", "1", "--epochs", "2", "--threads", "1", "--no-progress"]


def cache_line(err: str) -> Path:
    """The store named by the CLI's one line about it."""
    line = next(line for line in err.splitlines() if "token store cached in" in line)
    return Path(shlex.split(line.split("remove it with: ")[1])[2])


def test_embed_reads_large_text_through_a_cached_store(cache, text, tmp_path, capsys, monkeypatch):
    assert main(["embed", str(text), "-o", str(tmp_path / "memory.txt"), *EMBED]) == 0
    assert "token store" not in capsys.readouterr().err and not cache.exists()
    monkeypatch.setattr(store_cache, "AUTO_BYTES", len(TEXT) - 1)
    assert main(["embed", str(text), "-o", str(tmp_path / "store.txt"), *EMBED]) == 0
    err = capsys.readouterr().err
    store = cache_line(err)
    assert store.parent == cache and TokenStore(store).config["sources"][0]["path"] == str(text)
    assert f"rm -r {shlex.quote(str(store))}" in err
    a, b = (WordVectors.load(tmp_path / name) for name in ("memory.txt", "store.txt"))
    assert a.index_to_key == b.index_to_key and np.array_equal(a.vectors, b.vectors)
    # Reused the second time; --store never reads the text into memory again.
    built = (store / "config.json").stat().st_mtime_ns
    assert main(["embed", str(text), "-o", str(tmp_path / "again.txt"), *EMBED]) == 0
    assert cache_line(capsys.readouterr().err) == store
    assert (store / "config.json").stat().st_mtime_ns == built
    assert main(["embed", str(text), "-o", str(tmp_path / "never.txt"), *EMBED, "--store", "never"]) == 0
    assert "token store" not in capsys.readouterr().err
    assert main(["embed", str(text), "-o", str(tmp_path / "quiet.txt"), *EMBED, "--quiet"]) == 0
    assert capsys.readouterr().err == ""


def test_embed_continues_a_model_from_a_cached_store(cache, text, tmp_path):
    first = Word2Vec([line.split() for line in TEXT.splitlines()], vector_size=8, min_count=1,
                     epochs=1, workers=1)
    first.save(tmp_path / "model")
    args = ["--init", str(tmp_path / "model"), "--epochs", "1", "--threads", "1", "--quiet"]
    assert main(["embed", str(text), "-o", str(tmp_path / "memory"), *args, "--store", "never"]) == 0
    assert main(["embed", str(text), "-o", str(tmp_path / "store"), *args, "--store", "always"]) == 0
    a, b = (Word2Vec.load(tmp_path / name) for name in ("memory", "store"))
    assert a.vocab == b.vocab and np.array_equal(a.w_in, b.w_in) and b.epochs_trained == 2


TRAIN = ["--hidden-size", "8", "--batch-size", "2", "--bptt", "4", "--epochs", "1",
         "--max-steps", "3", "--threads", "1", "--no-progress"]


def test_train_reads_large_text_through_a_cached_store(cache, text, tmp_path, capsys):
    valid = tmp_path / "valid.txt"
    valid.write_text("the cat sat\n")
    argv = ["train", str(text), "--valid", str(valid), *TRAIN]
    assert main([*argv, "-o", str(tmp_path / "run"), "--store", "always"]) == 0
    store = cache_line(capsys.readouterr().err)
    assert store.parent == cache
    state = checkpoint.load_training(tmp_path / "run" / "last")[0]
    assert state["train"] == str(store)
    assert main([*argv, "-o", str(tmp_path / "memory"), "--store", "never"]) == 0
    assert "token store" not in capsys.readouterr().err
    a, b = ([{k: v for k, v in json.loads(line).items() if k not in ("seconds", "tokens_per_s")}
             for line in (tmp_path / run / "metrics.jsonl").read_text().splitlines()]
            for run in ("run", "memory"))
    assert a == b and np.isfinite(a[0]["valid_loss"])  # the same run from the store and memory


def test_train_reads_text_into_memory_where_a_store_cannot_serve(cache, text, tmp_path, capsys,
                                                                 monkeypatch):
    monkeypatch.setattr(store_cache, "AUTO_BYTES", 0)
    base = ["train", str(text), *TRAIN]
    assert main([*base, "-o", str(tmp_path / "split"), "--split", "0.2", "0.2"]) == 0
    assert "token store" not in capsys.readouterr().err and not cache.exists()
    assert main([*base, "-o", str(tmp_path / "always"), "--split", "0.2", "0.2", "--store",
                 "always"]) == 2
    assert "--store always: a token store cannot be split" in capsys.readouterr().err


@pytest.mark.parametrize("args", [["--mode", "sentence"], ["--variable-bptt"]],
                         ids=["sentence", "variable-bptt"])
def test_train_reads_sentences_and_variable_blocks_through_a_cached_store(cache, text, tmp_path,
                                                                          capsys, args):
    argv = ["train", str(text), "--valid", str(text), *TRAIN, *args]
    assert main([*argv, "-o", str(tmp_path / "store"), "--store", "always"]) == 0
    store = cache_line(capsys.readouterr().err)
    assert TokenStore(store).pipeline.mode == ("sentence" if "sentence" in args else "stream")
    assert main([*argv, "-o", str(tmp_path / "memory"), "--store", "never"]) == 0
    a, b = ([{k: v for k, v in json.loads(line).items() if k not in ("seconds", "tokens_per_s")}
             for line in (tmp_path / run / "metrics.jsonl").read_text().splitlines()]
            for run in ("store", "memory"))
    assert a == b and np.isfinite(a[0]["valid_loss"])  # the same run from the store and memory
