"""Training from a token store: the same blocks, the same run, as from the text."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from rnnlab.cli import main
from rnnlab.errors import RnnlabError
from rnnlab.lm.data import IGNORE, SentenceBatches, StreamBatches, read_text
from rnnlab.lm.distributed import Group
from rnnlab.lm.settings import TrainSettings
from rnnlab.lm.store_batches import StoreSentenceBatches, StoreStreamBatches
from rnnlab.lm.train import train_language_model
from rnnlab.lm.trainer import Trainer
from rnnlab.text.pipeline import TextPipeline
from rnnlab.text.store import TokenStore, prepare_store

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
    prepare_store([folder / "train.txt"], folder / "sentences", TextPipeline(mode="sentence"),
                  workers=1)
    return folder


@pytest.fixture
def reads(monkeypatch):
    """(start, stop) of every read of a store's ids, as the trainer makes them."""
    calls = []
    ids = TokenStore.ids

    def recorded(self, start=0, stop=None, limit=None):
        calls.append((start, stop))
        return ids(self, start, stop, limit)

    monkeypatch.setattr(TokenStore, "ids", recorded)
    return calls


def timeless(history):
    return [{k: v for k, v in r.items() if k not in ("seconds", "tokens_per_s")} for r in history]


@pytest.mark.parametrize("min_count", [1, 2])
def test_blocks_from_the_store_are_the_blocks_from_memory(corpus, min_count):
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
    # --variable-bptt: the same drawn blocks, epoch by epoch, in any columns
    memory = StreamBatches(pipe.encode(lines, vocab), 4, 7, seed=11)
    disk = StoreStreamBatches(store, len(vocab), 4, 7, seed=11)
    assert disk.epoch(3) == memory.epoch(3) != disk.epoch(4) == memory.epoch(4)
    assert {n for _, n in disk.epoch(3)} != {7}
    for block in disk.epoch(3):
        for columns in (slice(None), slice(0, 2), slice(2, 4)):
            (x, y, _), (mx, my, _) = disk.get(block, columns), memory.get(block, columns)
            assert torch.equal(x, mx) and torch.equal(y, my)
            assert x.shape == (block[1], 4 if columns == slice(None) else 2)
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
    # a store prepared in sentence mode trains in sentence mode, and only in it
    sentences = [str(corpus / "sentences"), *argv[2:]]
    assert main(["train", *sentences, "-o", str(tmp_path / "sentence")]) == 0
    last = tmp_path / "sentence" / "last"
    assert '"mode": "sentence"' in (last / "config.json").read_text()
    assert '"<s>"' in (last / "vocab.json").read_text()
    capsys.readouterr()
    assert main(["train", *sentences, "-o", str(tmp_path / "stream"), "--mode", "stream"]) == 2
    err = capsys.readouterr().err
    assert "prepared with mode 'sentence', not 'stream'" in err and len(err.splitlines()) == 1


@pytest.mark.parametrize("min_count", [1, 2])
def test_sentences_from_the_store_are_the_sentences_from_memory(corpus, min_count):
    store = TokenStore(corpus / "sentences")
    pipe = TextPipeline(mode="sentence")
    lines = read_text(corpus / "train.txt")
    vocab = pipe.build_vocab(lines, min_count=min_count)
    assert store.vocab(min_count) == vocab and store.num_lines == 102
    memory = SentenceBatches(pipe.encode(lines, vocab), 8, seed=3)
    disk = StoreSentenceBatches(store, len(vocab), 8, seed=3)
    assert list(disk.epoch(1)) != list(disk.epoch(2))
    for epoch in (1, 2):
        batches = list(disk.epoch(epoch))
        assert batches == list(memory.epoch(epoch)) and len(batches) == 13  # 12 of 8, 1 of 6
        unknown = 0
        for indices in batches:
            (x, y, lengths), (mx, my, mlengths) = disk.get(indices), memory.get(indices)
            assert torch.equal(x, mx) and torch.equal(y, my) and torch.equal(lengths, mlengths)
            unknown += int((x[y != IGNORE] == vocab.unk_id).sum())  # padding is 0, <unk>'s id
        assert unknown == (3 if min_count == 2 else 0)  # zebra, yak and gnu read as <unk>


def assert_same_weights(a, b):
    wa, wb = (load_file(str(folder / "last" / "model.safetensors")) for folder in (a, b))
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


@pytest.mark.parametrize("store, settings", [
    ("store", dict(variable_bptt=True, loss="mean", lr=2.0, dropout=0.2)),
    ("sentences", dict(mode="sentence", optimizer="adam", dropout=0.3, batch_size=8)),
], ids=["stream-variable-bptt", "sentence"])
def test_a_run_from_the_store_is_the_run_from_the_text_and_resumes_exactly(
        corpus, tmp_path, reads, store, settings):
    settings = dict(TINY, valid=str(corpus / "valid.txt"), epochs=2, min_count=2, **settings)
    text = train_language_model(corpus / "train.txt", tmp_path / "text", **settings)
    assert reads == []  # the text run reads no store
    straight = train_language_model(corpus / store, tmp_path / "straight", **settings)
    assert timeless(straight.history) == timeless(text.history)
    assert np.isfinite(text.history[-1]["valid_loss"])
    assert_same_weights(tmp_path / "text", tmp_path / "straight")
    # Reads are of one block's columns or one sentence, never the whole stream.
    longest = (settings["bptt"] + 20 + 1 if store == "store"
               else max(len(line.split()) for line in read_text(corpus / "train.txt")) + 2)
    assert max(stop - start for start, stop in reads) <= longest < len(TokenStore(corpus / store)) / 10
    steps = straight.history[0]["step"]
    stopped = train_language_model(corpus / store, tmp_path / "resumed", max_steps=steps + 3,
                                   **settings)
    assert stopped.stopped == "max-steps"
    resumed = train_language_model(None, tmp_path / "resumed", resume=True, max_steps=None)
    assert timeless(resumed.history) == timeless(straight.history)
    assert_same_weights(tmp_path / "straight", tmp_path / "resumed")


@pytest.mark.parametrize("store, settings", [
    ("store", dict(batch_size=4, variable_bptt=True)),  # rank 1 of 2: columns 2 and 3
    ("sentences", dict(mode="sentence", batch_size=5)),  # rank 1 of 2: sentences 3 to 5 of 5
], ids=["stream", "sentence"])
def test_a_rank_reads_only_its_share_of_a_batch(corpus, reads, store, settings):
    s = TrainSettings(**dict(TINY, **settings))
    trainer = Trainer(corpus / store, s, None, None)
    trainer.setup()
    whole = trainer.data.train
    item = whole.epoch(1)[1]
    x, y, lengths = whole.get(item)
    reads.clear()
    trainer.group = Group(rank=1, world=2)
    mx, my, mlengths, real = trainer.local_batch(item)
    if whole.carries_state:
        assert torch.equal(mx, x[:, 2:]) and torch.equal(my, y[:, 2:]) and real
        # one read per column of the block, inside columns 2 and 3 (whole.rows ids each)
        assert [start // whole.rows for start, _ in reads] == [2, 3]
        assert all(stop - start == item[1] + 1 for start, stop in reads)
    else:
        assert torch.equal(mlengths, lengths[2:]) and mx.shape[1] == 3
        assert torch.equal(mx, x[: int(mlengths.max()), 2:])
        assert torch.equal(my, y[: int(mlengths.max()), 2:])
        assert len(reads) == 3  # the rank's 3 sentences, each read alone
