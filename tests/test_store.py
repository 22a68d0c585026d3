"""The token store: the same ids as the text pipeline, a cuttable vocabulary, damage refused."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import pytest

from rnnlab import outputs
from rnnlab.cli import main
from rnnlab.errors import RnnlabError
from rnnlab.lm.data import read_text
from rnnlab.text import corpus, pipeline, store
from rnnlab.text.pipeline import TextPipeline
from rnnlab.text.store import TokenStore, prepare_store

# Blank lines, a Windows line end, trailing carriage returns, literal markers, capitals,
# accents, spaces that are not " " (str.split splits at them) and a line with no line break.
TEXT = ("The cat sat on the mat\n\n  the dog sat\r\nA <unk> word  \r\r\n"
        "émile écrit\n\t\nnon\u2028breaking\x85or\x1cseparated </s> <s>\n\u3000\nthe end")
MORE = "the cat came back\nthe very next day\n"


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def expected(paths, pipe: TextPipeline, min_count: int = 1):
    """What the in-memory path makes of the same files: its vocabulary and its ids."""
    lines = [line for p in paths for line in read_text(p)]
    vocab = pipe.build_vocab(lines, min_count=min_count)
    return vocab, pipe.encode(lines, vocab)


def store_lines(s: TokenStore, limit=None) -> list[list[int]]:
    return [s.line(i, limit).tolist() for i in range(s.num_lines)]


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("mode", ["stream", "sentence"])
@pytest.mark.parametrize("level", ["word", "char"])
@pytest.mark.parametrize("lower", [False, True])
def test_store_holds_what_the_pipeline_encodes(tmp_path, monkeypatch, level, mode, lower, workers):
    # Many small batches, cut within lines, which must stay in order.
    monkeypatch.setattr(store, "BATCH_CHARS", 8)
    monkeypatch.setattr(corpus, "CHUNK_BYTES", 5)
    paths = [write(tmp_path, "a.txt", TEXT), write(tmp_path, "b.txt", MORE)]
    pipe = TextPipeline(level, mode, lower)
    s = prepare_store(paths, tmp_path / "store", pipe, workers=workers)
    vocab, ids = expected(paths, pipe)
    assert s.vocab() == vocab
    assert s.pipeline == pipe
    if mode == "stream":
        assert s.ids().tolist() == ids
    else:
        assert store_lines(s) == ids
        assert s.ids().tolist() == [i for line in ids for i in line]


def test_long_lines_read_in_pieces_give_the_same_ids(tmp_path, monkeypatch):
    # Lines longer than a piece are tokenized in pieces, as TextPipeline does with text8.
    for module in (corpus, pipeline):
        monkeypatch.setattr(module, "MAX_PIECE_CHARS", 10)
    monkeypatch.setattr(store, "BATCH_CHARS", 12)
    monkeypatch.setattr(corpus, "CHUNK_BYTES", 3)
    path = write(tmp_path, "long.txt", "alpha beta gamma delta epsilon zeta eta theta\nshort\n"
                                       "averyveryverylongtokenindeed and more\n")
    for level, mode in [("word", "stream"), ("char", "stream"), ("word", "sentence"),
                        ("char", "sentence")]:
        pipe = TextPipeline(level, mode)
        s = prepare_store([path], tmp_path / level / mode, pipe, workers=1)
        vocab, ids = expected([path], pipe)
        assert s.vocab() == vocab
        assert (s.ids().tolist() if mode == "stream" else store_lines(s)) == ids


@pytest.mark.parametrize("mode", ["stream", "sentence"])
def test_text_holding_the_sentinels_is_read_line_by_line_with_the_same_ids(tmp_path, mode):
    path = write(tmp_path, "odd.txt", "a \x01 b\n\nc\x01d \x01\n" + MORE)
    pipe = TextPipeline(mode=mode)
    s = prepare_store([path], tmp_path / "store", pipe, workers=1)
    vocab, ids = expected([path], pipe)
    assert "c\x01d" in s.vocab().stoi
    assert s.vocab() == vocab
    assert (s.ids().tolist() if mode == "stream" else store_lines(s)) == ids


@pytest.mark.parametrize("odd_at", ["head", "tail"])
def test_a_long_line_cut_across_batches_keeps_every_token_with_sentinels_about(tmp_path, monkeypatch,
                                                                                odd_at):
    # The batch holding a sentinel character goes line by line, with the line cut short at its end.
    monkeypatch.setattr(store, "BATCH_CHARS", 12)
    monkeypatch.setattr(corpus, "CHUNK_BYTES", 12)
    odd = "x\x01y "
    line = (odd if odd_at == "head" else "") + "aa bb cc dd ee ff gg hh " + (odd if odd_at == "tail" else "")
    path = write(tmp_path, "long.txt", line + "\n  \nii jj\n")
    s = prepare_store([path], tmp_path / "store", workers=1)
    vocab, ids = expected([path], TextPipeline())
    assert s.vocab() == vocab
    assert s.ids().tolist() == ids
    assert s.offsets().tolist() == [0, ids.index(vocab.eos_id) + 1, len(ids)]


def test_a_vocabulary_beyond_uint16_is_stored_as_uint32(tmp_path):
    words = [f"w{i}" for i in range(70_000)]
    path = write(tmp_path, "many.txt", " ".join(words) + "\n" + " ".join(words[:5]) + "\n")
    s = prepare_store([path], tmp_path / "store", workers=1)
    assert s.config["dtype"] == "uint32"
    assert (tmp_path / "store" / "ids.bin").stat().st_size == 4 * (70_000 + 5 + 2)
    vocab, ids = expected([path], TextPipeline())
    assert len(vocab) == 70_002  # <unk>, </s> and the words
    assert s.vocab() == vocab
    assert s.ids().tolist() == ids
    assert s.ids(70_010, 70_013).tolist() == ids[70_010:70_013]
    assert s.ids().max() == 70_001


def test_a_small_vocabulary_is_stored_as_uint16(tmp_path):
    s = prepare_store([write(tmp_path, "a.txt", TEXT)], tmp_path / "store", workers=1)
    assert s.config["dtype"] == "uint16"
    assert (tmp_path / "store" / "ids.bin").stat().st_size == 2 * len(s)


def test_vocabulary_order_ties_by_first_occurrence_and_cuts_are_id_thresholds(tmp_path):
    path = write(tmp_path, "a.txt", "b a c\na b d\nd e\n")
    s = prepare_store([path], tmp_path / "store", workers=2)
    # Counts: b 2, a 2, d 2, c 1, e 1; equal counts keep the order the text shows them in.
    assert s.whole_vocab.itos == ["<unk>", "</s>", "b", "a", "d", "c", "e"]
    assert s.whole_vocab.counts.tolist() == [0, 3, 2, 2, 2, 1, 1]
    assert s.vocab_limit(min_count=2) == 5
    assert s.vocab_limit(max_size=4) == 4
    assert s.vocab_limit(min_count=2, max_size=6) == 5
    cut = s.vocab(min_count=2)
    assert cut == TextPipeline().build_vocab(read_text(path), min_count=2)
    assert cut.itos == ["<unk>", "</s>", "b", "a", "d"]
    assert cut.counts.tolist() == [2, 3, 2, 2, 2]  # <unk> stands for c and e
    assert s.vocab(max_size=4) == TextPipeline().build_vocab(read_text(path), max_size=4)
    # b a c </s> a b d </s> d e </s>: c, e (and with max_size 4, d) read as <unk>.
    assert s.ids(limit=5).tolist() == [2, 3, 0, 1, 3, 2, 4, 1, 4, 0, 1]
    assert s.ids(limit=4).tolist() == [2, 3, 0, 1, 3, 2, 0, 1, 0, 0, 1]
    assert s.line(2, limit=5).tolist() == [4, 0, 1]
    with pytest.raises(RnnlabError) as built:
        TextPipeline().build_vocab(read_text(path), min_count=3)
    with pytest.raises(RnnlabError, match="--min-count 1 keeps 5 tokens") as cut_off:
        s.vocab(min_count=3)
    assert str(cut_off.value) == str(built.value)
    with pytest.raises(RnnlabError, match="no room for the 2 specials"):
        s.vocab(max_size=1)


def test_offsets_mark_where_lines_start(tmp_path):
    path = write(tmp_path, "a.txt", "a b\n\nc\n d e f \n")
    words = prepare_store([path], tmp_path / "w", workers=1)
    assert words.num_lines == 3  # the blank line has no words
    assert words.offsets().tolist() == [0, 3, 5, 9]
    assert words.offsets(1, 2).tolist() == [3, 5]
    assert words.line(2).tolist() == words.ids(5, 9).tolist()
    chars = prepare_store([path], tmp_path / "c", TextPipeline("char"), workers=1)
    assert chars.offsets().tolist() == [0, 4, 5, 7, 15]  # the blank line's newline is text
    sentences = prepare_store([path], tmp_path / "s", TextPipeline(mode="sentence"), workers=1)
    assert sentences.offsets().tolist() == [0, 4, 7, 12]
    with pytest.raises(IndexError):
        words.line(3)


def test_store_works_after_its_text_is_deleted(tmp_path):
    path = write(tmp_path, "a.txt", TEXT)
    vocab, ids = expected([path], TextPipeline())
    prepare_store([path], tmp_path / "store", workers=1)
    path.unlink()
    s = TokenStore(tmp_path / "store")
    assert s.vocab() == vocab
    assert s.ids().tolist() == ids


def flip_byte(name: str):
    def damage(folder: Path) -> None:
        data = bytearray((folder / name).read_bytes())
        data[len(data) // 2] ^= 0x01
        (folder / name).write_bytes(bytes(data))
    return damage


def truncate(name: str):
    def damage(folder: Path) -> None:
        data = (folder / name).read_bytes()
        (folder / name).write_bytes(data[:-2])
    return damage


def remove(name: str):
    return lambda folder: (folder / name).unlink()


def edit_config(change):
    def damage(folder: Path) -> None:
        config = json.loads((folder / "config.json").read_text())
        change(config)
        (folder / "config.json").write_text(json.dumps(config))
    return damage


DAMAGE = {
    "flipped id": (flip_byte("ids.bin"), "ids.bin: fails its SHA-256 check"),
    "flipped offset": (flip_byte("offsets.bin"), "offsets.bin: fails its SHA-256 check"),
    "flipped vocabulary": (flip_byte("vocab.json"), "vocab.json: fails its SHA-256 check"),
    "truncated ids": (truncate("ids.bin"), "truncated or damaged"),
    "missing offsets": (remove("offsets.bin"), "offsets.bin: missing"),
    "missing config": (remove("config.json"), "not a token store (no config.json)"),
    "garbled config": (lambda f: (f / "config.json").write_text("{"), "config.json: unreadable"),
    "other format": (edit_config(lambda c: c.update(format="x")), "not an rnnlab token store"),
    "newer version": (edit_config(lambda c: c.update(version=2)), "version 2 is not supported"),
    "tokens miscounted": (edit_config(lambda c: c.update(tokens=3)), "do not add up"),
    "unknown dtype": (edit_config(lambda c: c.update(dtype="int8")), "do not add up"),
}


@pytest.mark.parametrize("case", DAMAGE)
def test_damaged_store_is_refused_in_one_line(tmp_path, case):
    damage, needle = DAMAGE[case]
    prepare_store([write(tmp_path, "a.txt", TEXT)], tmp_path / "store", workers=1)
    TokenStore(tmp_path / "store")  # sound before the damage
    damage(tmp_path / "store")
    with pytest.raises(RnnlabError, match=re.escape(needle)) as err:
        TokenStore(tmp_path / "store")
    assert "\n" not in str(err.value)


def test_a_store_truncated_after_opening_is_refused_on_reading(tmp_path):
    s = prepare_store([write(tmp_path, "a.txt", TEXT)], tmp_path / "store", workers=1)
    truncate("ids.bin")(tmp_path / "store")
    with pytest.raises(RnnlabError, match="ends early"):
        s.ids()


def test_settings_that_do_not_fit_are_refused(tmp_path):
    s = prepare_store([write(tmp_path, "a.txt", TEXT)], tmp_path / "store", TextPipeline("char"),
                      workers=1)
    s.check_pipeline(TextPipeline("char"))
    with pytest.raises(RnnlabError, match="prepared with level 'char', not 'word'"):
        s.check_pipeline(TextPipeline("word"))
    with pytest.raises(RnnlabError, match="prepared with mode 'stream', not 'sentence'"):
        s.check_pipeline(TextPipeline("char", "sentence"))
    with pytest.raises(RnnlabError, match="prepared with lower False, not True"):
        s.check_pipeline(TextPipeline("char", lower=True))


def test_a_failed_prepare_leaves_no_half_written_store(tmp_path):
    path = write(tmp_path, "a.txt", TEXT)
    good = prepare_store([path], tmp_path / "store", workers=1)
    before = {p.name: p.read_bytes() for p in (tmp_path / "store").iterdir()}

    def stop(phase, done, total):
        if phase == "write":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        prepare_store([path], tmp_path / "store", TextPipeline("char"), workers=1, progress=stop)
    with pytest.raises(KeyboardInterrupt):
        prepare_store([path], tmp_path / "new", workers=1, progress=stop)
    assert sorted(os.listdir(tmp_path)) == ["a.txt", "store"]  # no temporary folder left
    assert {p.name: p.read_bytes() for p in (tmp_path / "store").iterdir()} == before
    assert TokenStore(tmp_path / "store").ids().tolist() == good.ids().tolist()


def test_reading_holds_nothing_open_or_mapped_between_calls(tmp_path):
    s = prepare_store([write(tmp_path, "a.txt", TEXT * 50)], tmp_path / "store", workers=1)
    chunks = [s.ids(start, start + 100) for start in range(0, len(s), 100)]
    assert np.concatenate(chunks).tolist() == s.ids().tolist()
    ids_file = str((tmp_path / "store" / "ids.bin").resolve())
    assert ids_file not in Path("/proc/self/maps").read_text()
    fds = Path("/proc/self/fd")
    assert all(os.path.realpath(fds / fd) != ids_file for fd in os.listdir(fds))
    assert all(not c.flags.writeable or c.base is None or isinstance(c.base, np.ndarray)
               for c in chunks)  # copies, not views of a map


def test_the_store_is_an_rnnlab_folder_kind(tmp_path):
    prepare_store([write(tmp_path, "a.txt", TEXT)], tmp_path / "store", workers=1)
    assert outputs.folder_kind(tmp_path / "store") == "token-store"
    assert store.is_store(tmp_path / "store")
    assert not store.is_store(tmp_path)
    with pytest.raises(RnnlabError, match="holds a token store; rnnlab never replaces"):
        outputs.check_output(tmp_path / "store", "language-model")


def test_prepare_command_writes_a_store_and_says_what_is_in_it(tmp_path, capsys):
    path = write(tmp_path, "a.txt", "b a c\na b d\nd e\n")
    assert main(["prepare", str(path), "-o", str(tmp_path / "store"), "--no-progress",
                 "--threads", "2", "--mode", "sentence", "--lower"]) == 0
    out = capsys.readouterr().out
    assert out == f"{tmp_path / 'store'}: 14 tokens in 3 lines, 8 distinct tokens (uint16)\n"
    s = TokenStore(tmp_path / "store")
    assert s.pipeline == TextPipeline("word", "sentence", True)
    assert main(["prepare", str(path), "-o", str(tmp_path / "store"), "--quiet", "--overwrite",
                 "--level", "char"]) == 0
    assert capsys.readouterr().out == ""
    assert TokenStore(tmp_path / "store").pipeline.level == "char"


def test_progress_reports_both_passes_and_gzip_text_reads_the_same(tmp_path, monkeypatch):
    import gzip

    monkeypatch.setattr(store, "BATCH_CHARS", 16)
    monkeypatch.setattr(corpus, "CHUNK_BYTES", 10)
    plain = write(tmp_path, "a.txt", MORE * 3)
    packed = tmp_path / "a.txt.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    reports = []
    s = prepare_store([plain], tmp_path / "plain", workers=2,
                      progress=lambda *r: reports.append(r))
    assert [r[0] for r in reports] == sorted(r[0] for r in reports)  # "count", then "write"
    for phase in ("count", "write"):
        done = [d for p, d, _ in reports if p == phase]
        assert done == sorted(done) and done[-1] == len(MORE * 3) and len(done) > 2
    assert {t for _, _, t in reports} == {len(MORE * 3)}
    reports.clear()
    z = prepare_store([packed], tmp_path / "packed", workers=1, progress=lambda *r: reports.append(r))
    assert {t for _, _, t in reports} == {None}
    assert z.ids().tolist() == s.ids().tolist()
