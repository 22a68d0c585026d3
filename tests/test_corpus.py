"""Corpus streaming: plain and gzip, chunk boundaries, long lines, bounded memory, bad input."""

import gzip
import tracemalloc

import pytest

from rnnlab.errors import RnnlabError
from rnnlab.text import corpus as corpus_module
from rnnlab.text.corpus import Corpus, read_lines, read_pieces

TEXT = "The quick brown fox\r\n\njumps over 😀 the lazy dög\nlast line without newline"


@pytest.fixture
def text_file(tmp_path):
    path = tmp_path / "c.txt"
    path.write_text(TEXT, encoding="utf-8", newline="")
    return path


def test_read_lines_strips_line_breaks_and_keeps_empty_lines(text_file):
    assert list(read_lines(text_file)) == [
        "The quick brown fox", "", "jumps over 😀 the lazy dög", "last line without newline",
    ]


def test_gzip_reads_like_plain(text_file, tmp_path):
    gz = tmp_path / "c.txt.gz"
    gz.write_bytes(gzip.compress(text_file.read_bytes()))
    assert list(read_lines(gz)) == list(read_lines(text_file))
    # gzip is recognised by its magic bytes as well as by the suffix
    hidden = tmp_path / "c.data"
    hidden.write_bytes(gz.read_bytes())
    assert list(read_lines(hidden)) == list(read_lines(text_file))


def test_utf8_bom_is_dropped(tmp_path):
    path = tmp_path / "bom.txt"
    path.write_bytes("\ufeffa b\n".encode())
    assert list(read_lines(path)) == ["a b"]


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 64])
@pytest.mark.parametrize("max_chars", [3, 10, 1000])
def test_tiny_chunks_and_pieces_change_nothing(text_file, monkeypatch, chunk, max_chars):
    """Multi-byte characters, CRLF and long lines split across any chunk boundary."""
    monkeypatch.setattr(corpus_module, "CHUNK_BYTES", chunk)
    pieces = list(read_pieces(text_file, max_chars=max_chars))
    # Longer only to keep a token whole: no space or tab before the one it was cut after.
    assert all(len(p) <= max_chars or not {" ", "\t"} & set(p[:-1]) for p, _ in pieces)
    lines, current = [], ""
    for piece, ends_line in pieces:
        current += piece
        if ends_line:
            lines.append(current)
            current = ""
    assert lines == TEXT.replace("\r\n", "\n").split("\n")
    words = [w for line in lines for w in line.split()]
    assert [w for s in Corpus(text_file) for w in s] == words


def test_long_line_pieces_cut_after_spaces(tmp_path):
    path = tmp_path / "one-line.txt"
    path.write_text("aaa bbb ccc ddd")
    assert list(read_pieces(path, max_chars=9)) == [("aaa bbb ", False), ("ccc ddd", True)]
    path.write_text("abcdefghij kl")  # a token longer than a piece stays whole ...
    assert list(read_pieces(path, max_chars=4)) == [("abcdefghij ", False), ("kl", True)]
    # ... except where anything may be cut (characters): then at the limit
    assert list(read_pieces(path, max_chars=4, anywhere=True)) == [
        ("abcd", False), ("efgh", False), ("ij ", False), ("kl", True)]


def test_corpus_levels_and_reiteration(text_file):
    c = Corpus(text_file, lower=True)
    first = list(c)
    assert first == list(c)  # re-iterable: reads the file again
    assert first[0] == ["the", "quick", "brown", "fox"]
    assert len(first) == 3  # the empty line yields no sentence
    chars = list(Corpus(text_file, level="char"))
    assert chars[1] == list("jumps over 😀 the lazy dög")


def test_corpus_several_files_and_sentence_pieces(tmp_path):
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text("1 2 3 4 5 6 7\n8\n")
    b.write_text("9 10 11")
    sentences = list(Corpus([a, b], max_sentence_length=3))
    assert sentences == [["1", "2", "3"], ["4", "5", "6"], ["7"], ["8"], ["9", "10", "11"]]


def test_corpus_as_one_continuous_stream(tmp_path):
    path = tmp_path / "s.txt"
    path.write_text("1 2 3\n\n4 5\n6\n")
    assert list(Corpus(path, by_line=False, max_sentence_length=4)) == [["1", "2", "3", "4"], ["5", "6"]]
    path.write_text("ab\nc\n")
    assert list(Corpus(path, level="char", by_line=False)) == [["a", "b", "\n", "c", "\n"]]


def test_five_megabyte_single_line_in_bounded_memory(tmp_path):
    path = tmp_path / "text8-like.txt"
    n = 1_000_000
    with open(path, "w") as f:
        f.write(" ".join(f"w{i % 9973}" for i in range(n)))
    size = path.stat().st_size
    assert size > 5_000_000
    tracemalloc.start()
    try:
        count = pieces = 0
        for sentence in Corpus(path, max_sentence_length=1000):
            assert len(sentence) <= 1000
            count += len(sentence)
            pieces += 1
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert count == n and pieces == n // 1000
    # Holding the line whole would take more than its 5 MB as bytes plus as much again as str.
    assert peak < 4_000_000, f"peak {peak} bytes for a {size}-byte line"


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "empty file"),
        (b"  \n\t\n", "only whitespace"),
        (b"abc\x00def", "binary data \\(NUL byte at offset 3\\)"),
        (b"ok\nbad \xff here", "invalid utf-8 at byte offset 7, line 2"),
        (b"ends in half a char \xc3", "invalid utf-8 at byte offset 20, line 1"),
    ],
)
def test_bad_files_give_one_line_errors(tmp_path, content, message):
    path = tmp_path / "bad.txt"
    path.write_bytes(content)
    with pytest.raises(RnnlabError, match=message) as err:
        list(read_lines(path))
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_invalid_utf8_offset_across_chunks(tmp_path, monkeypatch):
    monkeypatch.setattr(corpus_module, "CHUNK_BYTES", 4)
    path = tmp_path / "bad.txt"
    path.write_bytes("éé\né".encode() + b"\xe9x")  # offsets: é=0-1, é=2-3, \n=4, é=5-6, bad=7
    with pytest.raises(RnnlabError, match="byte offset 7, line 2"):
        list(read_lines(path))


def test_errors_replace_and_other_encodings(tmp_path):
    path = tmp_path / "latin.txt"
    path.write_bytes("café\n".encode("latin-1"))
    assert list(read_lines(path, errors="replace")) == ["caf\ufffd"]
    assert list(read_lines(path, encoding="latin-1")) == ["café"]
    utf16 = tmp_path / "u16.txt"
    utf16.write_bytes("a b\nc\n".encode("utf-16"))
    assert list(Corpus(utf16, encoding="utf-16")) == [["a", "b"], ["c"]]
    with pytest.raises(RnnlabError, match="unknown text encoding"):
        Corpus(path, encoding="no-such-codec")
    with pytest.raises(RnnlabError, match="error handler"):
        Corpus(path, errors="whatever")


def test_missing_directory_and_gzip_damage(tmp_path):
    with pytest.raises(RnnlabError, match="no such file"):
        Corpus(tmp_path / "nope.txt")
    with pytest.raises(RnnlabError, match="is a directory"):
        list(read_lines(tmp_path))
    data = gzip.compress(("word " * 20000).encode())
    truncated = tmp_path / "t.txt.gz"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(RnnlabError, match="truncated gzip"):
        list(read_lines(truncated))
    corrupt = tmp_path / "c.txt.gz"
    corrupt.write_bytes(data[:20] + bytes(50) + data[70:])
    with pytest.raises(RnnlabError, match="gzip"):
        list(read_lines(corrupt))
    with pytest.raises(RnnlabError, match="no corpus files"):
        Corpus([])
