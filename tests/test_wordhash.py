"""Words split at whitespace, hashed in compiled code: exactly str.split()'s words and counts."""

from __future__ import annotations

import random
from collections import Counter

import numpy as np
import pytest

from rnnlab.text import store, wordhash
from rnnlab.text.pipeline import TextPipeline
from rnnlab.text.store import prepare_store
from rnnlab.text.wordhash import HashCollisionError, WordTable

ASCII_SPACES = " \t\n\r\x0b\x0c"
PIECES = ["the", "cat", "Émile", "中文", "“quoted”", "a–b", "x\u00e9", "naïve", "日本語", "😀",
          "e\u0301", "\u00c2\u00a9"]


def utf8(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-8"), np.uint8)


def random_text(seed: int, words: int = 400) -> str:
    rng = random.Random(seed)
    parts = []
    for _ in range(words):
        parts.append(rng.choice(PIECES) + rng.choice(["", str(rng.randrange(50))]))
        parts.append(rng.choice([" ", " ", "  ", "\t", "\n", "\r\n", " \n\n", "\x0b", "\x0c"]))
    return "".join(parts)


def test_other_spaces_are_what_str_split_splits_at_beyond_ascii():
    spaces = {chr(c) for c in range(0x110000) if chr(c).isspace()}
    assert set(wordhash.OTHER_SPACES) == spaces - set(ASCII_SPACES)
    wide = {bytes(b for b in row if b >= 0) for row in wordhash.WIDE_SPACES.tolist()}
    assert wide == {c.encode() for c in wordhash.OTHER_SPACES if ord(c) >= 0x80}


@pytest.mark.parametrize("seed", range(5))
def test_scan_finds_str_splits_words_and_line_ends(seed):
    text = random_text(seed)
    data = utf8(text)
    h1, h2, start, stop, ends_line = wordhash.scan(data)
    words = [data[a:b].tobytes().decode() for a, b in zip(start.tolist(), stop.tolist())]
    assert words == text.split()
    # The last word of each line that has words is marked.
    last_of_line = []
    for line in text.split("\n")[:-1]:
        last_of_line += [False] * (len(line.split()) - 1) + [True] if line.split() else []
    last_of_line += [False] * len(text.split("\n")[-1].split())
    assert ends_line.tolist() == last_of_line
    # Equal words, equal hashes; different words, different pairs.
    pairs = {}
    for word, a, b in zip(words, h1.tolist(), h2.tolist()):
        assert pairs.setdefault(word, (a, b)) == (a, b)
    assert len(set(pairs.values())) == len(pairs)


@pytest.mark.parametrize("space", list(wordhash.OTHER_SPACES))
def test_scan_gives_up_at_a_space_only_unicode_calls_space(space):
    assert wordhash.scan(utf8(f"one two{space}three\n")) is None
    assert wordhash.scan(utf8(f"{space}")) is None


def test_scan_reads_lead_bytes_of_other_characters_as_word_bytes():
    # 0xC2, 0xE1, 0xE2 and 0xE3 also lead characters that are not spaces.
    text = "© ᚠ – ‘x’ 、 \u2080 \u205e"
    h1, *_ = wordhash.scan(utf8(text))
    assert len(h1) == len(text.split())


def test_count_words_counts_in_order_of_first_occurrence_past_its_first_table():
    words = [f"w{i % 6000}" for i in range(20_000)] + ["w0", "new"]  # > 4096 distinct: grows
    h1, h2, start, stop, _ = wordhash.scan(utf8(" ".join(words)))
    first, counts = wordhash.count_words(h1, h2)
    expected = Counter(words)
    assert [words[i] for i in first.tolist()] == list(expected)
    assert counts.tolist() == list(expected.values())


def test_a_clash_of_first_hashes_is_reported_not_merged():
    first, _ = wordhash.count_words(np.array([7, 7], np.uint64), np.array([1, 2], np.uint64))
    assert first.tolist() == [-1]
    table = WordTable()
    table.add(np.array([7], np.uint64), np.array([1], np.uint64), np.array([3]), b"a")
    with pytest.raises(HashCollisionError):
        table.add(np.array([7], np.uint64), np.array([2], np.uint64), np.array([1]), b"b")


def test_word_table_merges_batches_grows_and_looks_words_up():
    table = WordTable(capacity=8)  # grows many times
    batches = [random_text(seed, 300) for seed in range(6)]
    for text in batches:
        data = utf8(text)
        h1, h2, start, stop, _ = wordhash.scan(data)
        first, counts = wordhash.count_words(h1, h2)
        table.add(h1[first], h2[first], counts, wordhash.words_of(data, start[first], stop[first]))
    everything = Counter(w for text in batches for w in text.split())
    assert table.totals() == dict(everything)
    assert list(table.totals()) == list(everything)  # first occurrences, in order
    ids_of = np.arange(len(table)) + 100
    h1, h2, *_ = wordhash.scan(utf8("cat unseen cat"))
    assert table.lookup(h1, h2, ids_of).tolist() == [100 + list(everything).index("cat"), -1,
                                                     100 + list(everything).index("cat")]


def test_line_marks_for_streams_and_sentences():
    ids = np.array([5, 6, 7, 8])
    ends_line = np.array([False, True, False, False])  # the batch ends inside a line
    out, ends = wordhash.with_line_marks(ids, ends_line, 1, -1)
    assert out.tolist() == [5, 6, 1, 7, 8] and ends.tolist() == [3]
    out, ends = wordhash.with_line_marks(ids, np.array([True, False, False, True]), 1, 2)
    assert out.tolist() == [2, 5, 1, 2, 6, 7, 8, 1] and ends.tolist() == [3, 8]


def test_batches_of_plain_words_take_the_hashed_way(tmp_path):
    store._start(store._Job(TextPipeline()))
    try:
        assert isinstance(store._count("the cat\nthe\n"), tuple)
        assert isinstance(store._count(store._Raw("x", 0, b"the cat\n")), tuple)
    finally:
        store._start(None)


def test_a_clash_falls_back_to_counting_in_python(tmp_path, monkeypatch):
    path = tmp_path / "a.txt"
    path.write_text("the cat sat\non the mat\n", encoding="utf-8")
    good = prepare_store(path, tmp_path / "good", workers=1)

    def clash(*args):
        raise HashCollisionError("two words share a hash")

    monkeypatch.setattr(WordTable, "add", clash)
    again = prepare_store(path, tmp_path / "again", workers=1)
    assert again.ids().tolist() == good.ids().tolist()
    assert again.whole_vocab == good.whole_vocab
