"""Corpus readers that stream text from disk (plain or gzip) in bounded memory.

Files are read in chunks of CHUNK_BYTES (256 KiB) through an incremental decoder, so a corpus
of any size costs the memory of a chunk plus what the consumer keeps (a vocabulary: its counts).
Line breaks ("\\n", "\\r\\n") separate sentences and are not tokens themselves. A line longer than
`MAX_PIECE_CHARS` (text8 is one 100 MB line) is handed on in pieces, cut after a space or tab,
so no line is ever held whole; the pieces concatenate back to the line exactly. A token longer
than a piece is kept whole, never cut into invented words: its piece runs on to the next space
or tab, so memory is bounded by the longest token. Only levels whose tokens are not separated
by spaces (characters, raw Chinese for jieba) cut a piece without a space at the limit.

Bad input raises a one-line RnnlabError naming the file: missing path, directory, empty file,
whitespace only, binary data (a NUL byte, for ASCII-compatible encodings), text that does not
decode (with the byte offset and line; pass errors="replace" to substitute U+FFFD instead),
a truncated or corrupt gzip file, an unknown encoding.
"""

from __future__ import annotations

import codecs
import gzip
import itertools
import os
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

from rnnlab.errors import RnnlabError
from rnnlab.text.tokenize import UNSPACED_LEVELS, get_tokenizer

CHUNK_BYTES = 1 << 18
MAX_PIECE_CHARS = 1 << 16
MAX_SENTENCE_LENGTH = 10000  # word2vec.c's MAX_SENTENCE_LENGTH: longer lines come in pieces

PathLike = str | os.PathLike


def check_file(path: PathLike) -> Path:
    """`path` as a Path, or a one-line RnnlabError when it is missing or a directory."""
    path = Path(path)
    if not path.exists():
        raise RnnlabError(f"{path}: no such file")
    if path.is_dir():
        raise RnnlabError(f"{path}: is a directory, expected a text file")
    return path


def open_binary(path: PathLike) -> IO[bytes]:
    """Open a plain or gzip file (by suffix or magic bytes) for reading bytes."""
    path = check_file(path)
    try:
        with open(path, "rb") as f:
            magic = f.read(2)
        return gzip.open(path, "rb") if magic == b"\x1f\x8b" or path.suffix == ".gz" else open(path, "rb")
    except OSError as e:
        raise RnnlabError(f"{path}: cannot open ({e.strerror or e})") from None


def read_chunks(path: PathLike, size: int | None = None) -> Iterator[bytes]:
    """The (decompressed) bytes of `path` in chunks of `size` (CHUNK_BYTES), gzip damage as RnnlabError."""
    size = size or CHUNK_BYTES
    with open_binary(path) as f:
        while True:
            try:
                chunk = f.read(size)
            except EOFError:
                raise RnnlabError(f"{path}: truncated gzip file (the stream ends early)") from None
            except (gzip.BadGzipFile, zlib.error) as e:
                raise RnnlabError(f"{path}: corrupt gzip file ({e})") from None
            except OSError as e:
                raise RnnlabError(f"{path}: cannot read ({e.strerror or e})") from None
            if not chunk:
                return
            yield chunk


def _lookup_codec(encoding: str, errors: str) -> codecs.CodecInfo:
    try:
        codec = codecs.lookup(encoding)
    except LookupError:
        raise RnnlabError(f"unknown text encoding {encoding!r}") from None
    try:
        codecs.lookup_error(errors)
    except LookupError:
        raise RnnlabError(f"unknown encoding error handler {errors!r} (try --errors replace)") from None
    return codec


def _decoded_chunks(path: PathLike, encoding: str, errors: str) -> Iterator[str]:
    """The text of `path` in decoded chunks, with every input check of the module."""
    codec = _lookup_codec(encoding, errors)
    # UTF-16/32 text is full of NUL bytes; every other common encoding keeps ASCII as is.
    ascii_compatible = not codec.name.startswith(("utf-16", "utf-32"))
    decoder = codec.incrementaldecoder(errors)
    offset = newlines = 0
    seen_text = False
    for chunk in itertools.chain(read_chunks(path), [None]):
        final = chunk is None
        data = b"" if final else chunk
        if ascii_compatible and (nul := data.find(b"\0")) >= 0:
            raise RnnlabError(f"{path}: binary data (NUL byte at offset {offset + nul}), not text")
        pending = decoder.getstate()[0]
        try:
            text = decoder.decode(data, final=final)
        except UnicodeDecodeError as e:
            # e.start counts from the bytes the decoder held back from the previous chunk.
            at = offset - len(pending) + e.start
            where = f"byte offset {at}"
            if ascii_compatible:
                line = newlines + (pending + data)[: e.start].count(b"\n") + 1
                where += f", line {line}"
            raise RnnlabError(
                f"{path}: invalid {codec.name} at {where} ({e.reason}); "
                "use --errors replace to read it anyway"
            ) from None
        if offset == 0 and text.startswith("\ufeff"):
            text = text[1:]
        offset += len(data)
        newlines += data.count(b"\n")
        seen_text = seen_text or (bool(text) and not text.isspace())
        if text:
            yield text
    if offset == 0:
        raise RnnlabError(f"{path}: empty file")
    if not seen_text:
        raise RnnlabError(f"{path}: contains only whitespace")


def split_long(text: str, max_chars: int, anywhere: bool = False) -> Iterator[str]:
    """`text` in consecutive pieces of at most `max_chars`, each cut after its last space or tab.

    A piece with no space or tab is kept whole up to the next one (a long token is never cut),
    unless `anywhere`, where it is cut at `max_chars`.
    """
    start = 0
    while len(text) - start > max_chars:
        end = start + max_chars
        space = max(text.rfind(" ", start, end), text.rfind("\t", start, end))
        if space < start and not anywhere:
            space = min((i for i in (text.find(" ", end), text.find("\t", end)) if i >= 0),
                        default=-1)
            if space in (-1, len(text) - 1):  # the token runs to the end: the last piece
                break
        end = space + 1 if space >= start else end
        yield text[start:end]
        start = end
    yield text[start:]


def read_pieces(
    path: PathLike, encoding: str = "utf-8", errors: str = "strict", max_chars: int | None = None,
    anywhere: bool = False,
) -> Iterator[tuple[str, bool]]:
    """(text, ends_line) pairs: every line, long ones cut into pieces by `split_long`."""
    max_chars = max_chars or MAX_PIECE_CHARS
    held: list[str] = []  # text after the last cut, joined only once it can be cut again
    for text in _decoded_chunks(path, encoding, errors):
        if not anywhere and not any(c in text for c in " \t\n"):
            held.append(text)  # a long token goes on: joining at every chunk would be quadratic
            continue
        *lines, last = ("".join(held) + text).split("\n")
        for line in lines:
            *pieces, tail = split_long(line.removesuffix("\r"), max_chars, anywhere)
            for piece in pieces:
                yield piece, False
            yield tail, True
        *pieces, rest = split_long(last, max_chars, anywhere)
        for piece in pieces:
            yield piece, False
        held = [rest]
    if rest := "".join(held):
        *pieces, tail = split_long(rest.removesuffix("\r"), max_chars, anywhere)
        for piece in pieces:
            yield piece, False
        yield tail, True


def read_lines(path: PathLike, encoding: str = "utf-8", errors: str = "strict") -> Iterator[str]:
    """The lines of a plain or .gz text file, streamed, without their line breaks.

    Empty lines are kept. A line longer than MAX_PIECE_CHARS comes in several pieces (cut after
    a space or tab, tokens kept whole) that concatenate to the line; use `Corpus` for sentence
    boundaries.
    """
    for text, _ in read_pieces(path, encoding, errors):
        yield text


def read_whole_lines(path: PathLike, encoding: str = "utf-8", errors: str = "strict") -> Iterator[str]:
    """The lines of a text file, each whole however long (for callers that keep them anyway)."""
    parts: list[str] = []
    for text, ends_line in read_pieces(path, encoding, errors):
        parts.append(text)
        if ends_line:
            yield "".join(parts)
            parts = []


class Corpus:
    """A re-iterable stream of tokenized sentences (one per line) from one or more files.

    `paths`: one path or a list, each plain or .gz; `encoding`/`errors` as for `read_lines`.
    Each iteration re-reads the files. A line longer than `max_sentence_length` tokens is
    yielded in consecutive pieces of that many tokens (the last one shorter); empty lines are
    skipped; line breaks are not tokens (append `</s>` yourself where a model wants one).
    `level` is "word", "char" or "segmented", with `lower`/`split_punct` (rnnlab.text.tokenize).
    With `by_line=False` each file is one continuous stream, cut only every
    `max_sentence_length` tokens; at the char level every line then ends in a "\n" token.
    """

    def __init__(
        self,
        paths: PathLike | Iterable[PathLike],
        level: str = "word",
        lower: bool = False,
        split_punct: bool = False,
        encoding: str = "utf-8",
        errors: str = "strict",
        max_sentence_length: int = MAX_SENTENCE_LENGTH,
        by_line: bool = True,
    ) -> None:
        if isinstance(paths, (str, os.PathLike)):
            paths = [paths]
        self.paths = [check_file(p) for p in paths]
        if not self.paths:
            raise RnnlabError("no corpus files given")
        if max_sentence_length < 1:
            raise RnnlabError(f"max_sentence_length must be at least 1, got {max_sentence_length}")
        _lookup_codec(encoding, errors)
        self.level, self.lower, self.split_punct = level, lower, split_punct
        self.tokenize = get_tokenizer(level, lower, split_punct)
        self.encoding, self.errors = encoding, errors
        self.max_sentence_length = max_sentence_length
        self.by_line = by_line

    def __iter__(self) -> Iterator[list[str]]:
        n = self.max_sentence_length
        newline = ["\n"] if self.level == "char" and not self.by_line else []
        for path in self.paths:
            sentence: list[str] = []
            for text, ends_line in read_pieces(path, self.encoding, self.errors,
                                               anywhere=self.level in UNSPACED_LEVELS):
                sentence += self.tokenize(text)
                if ends_line:
                    sentence += newline
                if len(sentence) >= n:
                    start = 0
                    while len(sentence) - start >= n:
                        yield sentence[start : start + n]
                        start += n
                    sentence = sentence[start:]
                if ends_line and self.by_line and sentence:
                    yield sentence
                    sentence = []
            if sentence:
                yield sentence

    def __repr__(self) -> str:
        names = ", ".join(str(p) for p in self.paths)
        return f"Corpus([{names}], level={self.level!r}, lower={self.lower})"
