"""Training from a token store: the same blocks, the same run, as from the text."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from rnnlab.cli import main
from rnnlab.errors import RnnlabError
from rnnlab.lm.data import StreamBatches, read_text
from rnnlab.lm.store_batches import StoreStreamBatches
from rnnlab.lm.train import train_language_model
from rnnlab.text.pipeline import TextPipeline
from rnnlab.text.store import prepare_store

WORDS = "the cat sat on a mat and dog ran to house".split()
TINY = dict(hidden_size=12, embed_size=12, layers=1, batch_size=4, bptt=5, eval_batch_size=2,
            threads=1)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    rng = np.random.default_rng(0)
    folder = tmp_path_factory.mktemp("corpus")
    lines = [" ".join(rng.choice(WORDS, size=rng.integers(3, 9))) for _ in range(120)]
    rare = ["a zebra sat on the yak", "the gnu ran"]  # cut by min_count 2: read as <unk>
    (folder / "train.txt").write_text("\n".join(lines[:50] + rare + lines[50:100]) + "\n")
    (folder / "valid.txt").write_text("\n".join(lines[100:]) + "\n")
    prepare_store([folder / "train.txt"], folder / "store", workers=1)
    return folder


def timeless(history):
    return [{k: v for k, v in r.items() if k not in ("seconds", "tokens_per_s")} for r in history]


@pytest.mark.parametrize("min_count", [1, 2])
def test_blocks_from_the_store_are_the_blocks_from_memory(corpus, min_count):
    from rnnlab.text.store import TokenStore

    store = TokenStore(corpus / "store")
    pipe = TextPipeline()
    lines = read_text(corpus / "train.txt")
    vocab = pipe.build_vocab(lines, min_count=min_count)
    assert store.vocab(min_count) == vocab
    assert len(vocab) == len(store.whole_vocab) - (3 if min_count == 2 else 0)
    memory = StreamBatches(pipe.encode(lines, vocab), 3, 7)
    disk = StoreStreamBatches(store, len(vocab), 3, 7)
    assert disk.epoch(0) == memory.epoch(0) and len(disk.epoch(0)) > 10
    for start in disk.epoch(0):
        (x, y, _), (mx, my, _) = disk.get(start), memory.get(start)
        assert torch.equal(x, mx) and torch.equal(y, my) and x.dtype == torch.long
    with pytest.raises(RnnlabError, match="too few for 1000 streams"):
        StoreStreamBatches(store, len(vocab), 1000, 7)


def test_training_from_the_store_is_training_from_the_text(corpus, tmp_path):
    settings = dict(TINY, valid=str(corpus / "valid.txt"), epochs=2, min_count=2, dropout=0.2)
    text = train_language_model(corpus / "train.txt", tmp_path / "text", **settings)
    store = train_language_model(corpus / "store", tmp_path / "store", **settings)
    assert timeless(store.history) == timeless(text.history)
    assert np.isfinite(store.history[0]["train_loss"])
    a, b = (load_file(str(tmp_path / run / "last" / "model.safetensors")) for run in ("text", "store"))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_run_from_the_store_resumes_exactly(corpus, tmp_path):
    settings = dict(TINY, epochs=2, optimizer="adam", dropout=0.3)
    straight = train_language_model(corpus / "store", tmp_path / "a", **settings)
    steps = straight.history[0]["step"]
    stopped = train_language_model(corpus / "store", tmp_path / "b", max_steps=steps + 2, **settings)
    assert stopped.stopped == "max-steps"
    resumed = train_language_model(None, tmp_path / "b", resume=True, max_steps=None)
    assert timeless(resumed.history) == timeless(straight.history)


def test_the_command_line_takes_a_store_and_its_settings(corpus, tmp_path, capsys):
    chars = tmp_path / "chars"
    assert main(["prepare", str(corpus / "train.txt"), "-o", str(chars), "--level", "char",
                 "--quiet"]) == 0
    argv = ["train", str(chars), "--hidden-size", "8", "--batch-size", "2", "--epochs", "1",
            "--max-steps", "3", "--quiet", "--threads", "1"]
    assert main([*argv, "-o", str(tmp_path / "run")]) == 0  # char level, from the store
    assert '"level": "char"' in (tmp_path / "run" / "last" / "config.json").read_text()
    capsys.readouterr()
    assert main([*argv, "-o", str(tmp_path / "word"), "--level", "word"]) == 2
    assert "prepared with level 'char', not 'word'" in capsys.readouterr().err
    assert main([*argv, "-o", str(tmp_path / "sentence"), "--mode", "sentence"]) == 2
    assert "prepared with mode 'stream', not 'sentence'" in capsys.readouterr().err
    assert main([*argv, "-o", str(tmp_path / "split"), "--split", "0.1", "0.1"]) == 2
    assert "cannot be split" in capsys.readouterr().err
