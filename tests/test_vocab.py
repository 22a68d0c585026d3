"""Vocabulary: order, min_count, max_size, specials, lookups, file round trips, bad files."""

import json

import numpy as np
import pytest

from rnnlab.errors import RnnlabError
from rnnlab.text.vocab import BOS, EOS, UNK, Vocabulary

SENTENCES = [["b", "a", "c", "a"], ["d", "c", "b", "e"], ["a", "é", "é"]]
# counts: a 3, b 2, c 2, é 2, d 1, e 1; first seen: b, a, c, d, e, é


def test_order_is_specials_then_count_then_first_occurrence():
    v = Vocabulary.build(SENTENCES)
    assert v.itos == [UNK, BOS, EOS, "a", "b", "c", "é", "d", "e"]
    assert v.counts.tolist() == [0, 0, 0, 3, 2, 2, 2, 1, 1]
    assert v.counts.dtype == np.int64
    assert v.stoi == {t: i for i, t in enumerate(v.itos)}
    assert Vocabulary.build(reversed(SENTENCES), specials=()).itos == ["a", "é", "c", "b", "d", "e"]


def test_min_count_max_size_and_unk_absorbs_dropped_counts():
    v = Vocabulary.build(SENTENCES, min_count=2)
    assert v.itos == [UNK, BOS, EOS, "a", "b", "c", "é"]
    assert v.counts[v.unk_id] == 2  # d and e
    v = Vocabulary.build(SENTENCES, max_size=5)
    assert v.itos == [UNK, BOS, EOS, "a", "b"]
    assert v.counts.sum() == sum(map(len, SENTENCES))
    v = Vocabulary.build(SENTENCES, max_size=2, specials=())
    assert v.itos == ["a", "b"] and v.unk_id is None
    with pytest.raises(RnnlabError, match="no room"):
        Vocabulary.build(SENTENCES, max_size=2)


def test_specials_found_in_the_corpus_keep_their_count():
    v = Vocabulary.build([["<unk>", "x", "<unk>", "x", "x"]], specials=(UNK, EOS))
    assert v.itos == [UNK, EOS, "x"] and v.counts.tolist() == [2, 0, 3]


def test_lookup_encode_decode():
    v = Vocabulary.build(SENTENCES)
    assert v["a"] == 3 and v["zzz"] == v.unk_id == 0
    assert (v.bos_id, v.eos_id) == (1, 2)
    ids = v.encode(["a", "new", "é"])
    assert ids == [3, 0, 6]
    assert v.decode(ids) == ["a", UNK, "é"]
    assert "a" in v and "zzz" not in v and len(v) == 9
    plain = Vocabulary.build(SENTENCES, specials=())
    with pytest.raises(KeyError):
        plain["zzz"]


def test_direct_construction_marks_specials_present():
    v = Vocabulary(["x", "y"])
    assert v.specials == () and v.unk_id is None and v.counts.tolist() == [0, 0]
    v = Vocabulary(["x", UNK], counts=[4, 1])
    assert v.specials == (UNK,) and v["q"] == 1
    with pytest.raises(RnnlabError, match="duplicate"):
        Vocabulary(["x", "x"])
    with pytest.raises(RnnlabError, match="counts"):
        Vocabulary(["x"], counts=[1, 2])
    with pytest.raises(RnnlabError, match="non-negative"):
        Vocabulary(["x"], counts=[-1])


@pytest.mark.parametrize("name", ["vocab.json", "vocab.txt", "vocab"])
def test_round_trip(tmp_path, name):
    v = Vocabulary.build(SENTENCES + [["日本", "😀", "a\u2028b"]])
    v.save(tmp_path / name)
    assert Vocabulary.load(tmp_path / name) == v


def test_json_is_utf8_and_documented_layout(tmp_path):
    v = Vocabulary.build([["é", "a b"]], specials=(UNK,))
    v.save(tmp_path / "v.json")
    raw = (tmp_path / "v.json").read_bytes()
    assert "é".encode() in raw and b"\\u" not in raw
    assert json.loads(raw) == {
        "format": "rnnlab-vocab", "version": 1, "tokens": [UNK, "é", "a b"], "counts": [0, 1, 1],
        "specials": [UNK],
    }
    assert Vocabulary.load(tmp_path / "v.json") == v  # spaces survive in JSON


def test_text_format_and_word2vec_vocab_lines(tmp_path):
    Vocabulary.build([["é", "x", "x"]], specials=()).save(tmp_path / "v.txt")
    assert (tmp_path / "v.txt").read_text(encoding="utf-8") == "x\t2\né\t1\n"
    (tmp_path / "w2v.vocab").write_text("</s> 0\nthe 12\nof 7\n")
    v = Vocabulary.load(tmp_path / "w2v.vocab")
    assert v.itos == ["</s>", "the", "of"] and v.counts.tolist() == [0, 12, 7] and v.specials == (EOS,)
    with pytest.raises(RnnlabError, match="cannot be stored in a text vocabulary"):
        Vocabulary(["a\tb"]).save(tmp_path / "bad.txt")


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("v.txt", "", "empty vocabulary"),
        ("v.txt", "a\t1\nb\n", "line 2: expected"),
        ("v.txt", "a\t1\na\t2\n", "duplicate token 'a'"),
        ("v.txt", "a\tx\n", "line 1"),
        ("v.json", "{not json", "invalid JSON"),
        ("v.json", '{"format": "other"}', "not an rnnlab vocabulary"),
        ("v.json", '{"format": "rnnlab-vocab", "version": 9}', "version 9"),
        ("v.json", '{"format": "rnnlab-vocab", "version": 1, "tokens": ["a"], "counts": [1, 2]}', "counts"),
        ("v.json", '{"format": "rnnlab-vocab", "version": 1, "tokens": [1], "counts": [1]}', "strings"),
        (
            "v.json",
            '{"format": "rnnlab-vocab", "version": 1, "tokens": ["a"], "counts": [1], "specials": ["<s>"]}',
            "specials",
        ),
    ],
)
def test_bad_files(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(RnnlabError, match=message):
        Vocabulary.load(path)


def test_missing_and_non_utf8_files(tmp_path):
    with pytest.raises(RnnlabError, match="no such vocabulary"):
        Vocabulary.load(tmp_path / "none.json")
    (tmp_path / "v.txt").write_bytes(b"caf\xe9\t1\n")
    with pytest.raises(RnnlabError, match="not UTF-8 \\(byte offset 3\\)"):
        Vocabulary.load(tmp_path / "v.txt")
