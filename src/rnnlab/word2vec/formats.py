"""Word-vector files: word2vec.c text and binary, GloVe text, and rnnlab's native folder.

word2vec text: a header line "COUNT DIM", then one line per word, "word v1 v2 ... vDIM"
(word2vec.c ends each line with a space; that is accepted). GloVe text is the same without
the header. word2vec binary: the same header, then per word its UTF-8 bytes, a space and DIM
little-endian float32s; word2vec.c adds a newline after each vector, gensim does not; both
load. These are the files gensim's `KeyedVectors.save_word2vec_format` and
`load_word2vec_format` read and write. Any of them may be gzip-compressed (name ending .gz).

Memory: a binary file is memory-mapped and parsed in place, so loading costs one copy of the
vectors, not two. The vectors cannot stay a view of that file, because the words in between
have different lengths, so rows do not sit at a fixed stride. The native folder
(`vectors.safetensors` with the tensor "input", plus `vocab.json` in rnnlab.text.Vocabulary's
JSON format) keeps the matrix contiguous; `read_native(path, mmap=True)` maps it without
reading it (np.memmap, read-only), which suits vectors larger than memory; `read_vectors`
pages through it once to check the values (below), and copies it only if some are dropped.

Every reader returns (words, matrix, counts or None). Damaged files raise a one-line
RnnlabError: wrong header, inconsistent dimension, truncated binary body, bad numbers.
Writers go through atomic_write / atomic_dir, so a crash leaves the earlier file intact.

NaN and infinity ("nan", "inf", a value too large for float32, or such floats in a binary
body) are numbers, so the file is not damaged, but such a vector has no direction: its cosine
with anything is NaN, and in a language model's embedding it turns every loss into NaN. The
rule: `read_vectors` leaves out every word whose vector holds one, and passes one line naming
the file, how many words and the first few to its `on_warning` callback (silent without one;
the command line prints it as a "warning:" line); those words are then simply unknown (a
language model keeps its random initialisation for them). A file in which no vector is finite
is an error.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import mmap
import os
import re
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO

import numpy as np
import safetensors.numpy

from rnnlab.errors import RnnlabError
from rnnlab.fileio import atomic_dir, atomic_write
from rnnlab.text.corpus import check_file, open_binary, read_chunks, read_whole_lines
from rnnlab.text.vocab import Vocabulary

FORMATS = ("word2vec-text", "word2vec-binary", "glove", "native")
NATIVE_VECTORS, NATIVE_VOCAB = "vectors.safetensors", "vocab.json"

# Characters that end a word in word2vec.c's reader (and in gensim's).
_SEPARATORS = re.compile("[ \t\n\r]")

Loaded = tuple[list[str], np.ndarray, np.ndarray | None]


def _parse_header(line: bytes | str) -> tuple[int, int] | None:
    """(count, dim) from a "COUNT DIM" line, or None when the line is not one."""
    parts = line.split()
    if len(parts) != 2 or not all(p.isdigit() for p in parts):
        return None
    return int(parts[0]), int(parts[1])


def _first_line(path: Path, size: int = 1 << 16) -> bytes:
    """The first line of the (decompressed) file, or its first `size` bytes."""
    chunk = next(read_chunks(path, size), b"")
    return chunk.split(b"\n", 1)[0]


def detect_format(path: str | os.PathLike) -> str:
    """Which of FORMATS a path holds: by folder or suffix, then by looking at the first lines."""
    path = Path(path)
    if path.is_dir():
        return "native"
    suffix = Path(path.name.removesuffix(".gz")).suffix
    if suffix == ".bin":
        return "word2vec-binary"
    check_file(path)
    first = _first_line(path)
    header = _parse_header(first)
    if header is None:
        if not _is_record(first, None):
            raise RnnlabError(f"{path}: line 1 is neither a 'COUNT DIM' header nor a 'word value ...' line")
        return "glove"
    if suffix in (".txt", ".vec"):
        return "word2vec-text"
    # Unknown suffix: the line after the header is a text record or the start of binary data.
    head = next(read_chunks(path, 1 << 16), b"")
    record = head[len(first) + 1 :].split(b"\n", 1)[0]
    return "word2vec-text" if _is_record(record, header[1]) else "word2vec-binary"


def _is_record(line: bytes, dim: int | None) -> bool:
    """Whether `line` is UTF-8 "word v1 ... v_dim" (any number of values when dim is None)."""
    try:
        parts = line.decode().rstrip().split(" ")
        np.array(parts[1:], dtype=np.float32)
    except (UnicodeDecodeError, ValueError):
        return False
    return len(parts) > 1 if dim is None else len(parts) == dim + 1


def _allocate(path: Path, n: int, dim: int) -> np.ndarray:
    try:
        return np.empty((n, dim), dtype=np.float32)
    except (MemoryError, ValueError):
        raise RnnlabError(f"{path}: header claims {n} x {dim} vectors, too many for memory") from None


def read_text(
    path: str | os.PathLike, header: bool = True, limit: int | None = None, errors: str = "strict"
) -> Loaded:
    """word2vec text (`header=True`) or GloVe text (`header=False`); at most `limit` words."""
    path = check_file(path)
    lines = enumerate(read_whole_lines(path, "utf-8", errors), 1)
    if header:
        _, first = next(lines, (1, ""))
        size = _parse_header(first)
        if size is None:
            raise RnnlabError(f"{path}: line 1 should be the header 'COUNT DIM', got {first[:60]!r}")
        n, dim = size
        if n == 0 or dim == 0:
            raise RnnlabError(f"{path}: header declares {n} words of dimension {dim}")
    else:
        # GloVe has no header: count lines first, so the matrix is allocated once.
        n = 1 + sum(chunk.count(b"\n") for chunk in read_chunks(path))
        dim = 0
    if limit is not None:
        n = min(n, limit)
    words: list[str] = []
    matrix = _allocate(path, n, dim) if header else None
    for lineno, line in lines:
        line = line.rstrip()
        if not line:
            continue
        if len(words) == n:
            if header and limit is None:
                raise RnnlabError(f"{path}: line {lineno}: more words than the header's {n}")
            break
        if matrix is None:
            dim = len(line.split(" ")) - 1
            if dim == 0:
                raise RnnlabError(f"{path}: line {lineno}: a word without values")
            matrix = _allocate(path, n, dim)
        # GloVe 840B has words that contain spaces, so its lines are split from the right;
        # word2vec files cannot hold such words, and a line with extra values is an error.
        parts = line.split(" ") if header else line.rsplit(" ", dim)
        if len(parts) != dim + 1:
            raise RnnlabError(
                f"{path}: line {lineno}: {len(parts) - 1} values, expected {dim} (inconsistent dimension)"
            )
        try:
            # A value beyond float32's range becomes inf, which read_vectors then reports.
            with np.errstate(over="ignore"):
                matrix[len(words)] = np.array(parts[1:], dtype=np.float32)
        except ValueError:
            raise RnnlabError(f"{path}: line {lineno}: a value is not a number") from None
        words.append(parts[0])
    if header and len(words) < n:
        raise RnnlabError(f"{path}: header declares {n} words, the file has only {len(words)}")
    if matrix is None:
        raise RnnlabError(f"{path}: no vectors")
    return words, matrix[: len(words)], None


@contextlib.contextmanager
def _bytes_of(path: Path) -> Iterator[bytes | mmap.mmap]:
    """The file's bytes: memory-mapped when plain, decompressed into memory when gzip."""
    with open_binary(path) as f:
        if isinstance(f, gzip.GzipFile):
            yield b"".join(read_chunks(path))
            return
        if os.fstat(f.fileno()).st_size == 0:
            raise RnnlabError(f"{path}: empty file")
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
            yield m


def read_binary(path: str | os.PathLike, limit: int | None = None, errors: str = "strict") -> Loaded:
    """word2vec.c binary vectors; at most `limit` words."""
    path = check_file(path)
    with _bytes_of(path) as buf:
        end = buf.find(b"\n", 0, 256)
        size = _parse_header(buf[: max(end, 0)])
        if end < 0 or size is None:
            raise RnnlabError(f"{path}: the file should start with the header line 'COUNT DIM'")
        n, dim = size
        if n == 0 or dim == 0:
            raise RnnlabError(f"{path}: header declares {n} words of dimension {dim}")
        n = n if limit is None else min(n, limit)
        record = 4 * dim
        # Every record is at least a space and the vector; checked before allocating.
        if n * (record + 1) > len(buf) - end - 1:
            raise RnnlabError(
                f"{path}: truncated: {n} vectors of dimension {dim} need more than {len(buf) - end - 1} bytes"
            )
        words: list[str] = []
        matrix = _allocate(path, n, dim)
        pos = end + 1
        for i in range(n):
            while buf[pos : pos + 1] == b"\n":
                pos += 1
            space = buf.find(b" ", pos)
            if space < 0 or space + 1 + record > len(buf):
                raise RnnlabError(f"{path}: truncated binary body at vector {i + 1} of {n} (byte {pos})")
            try:
                words.append(buf[pos:space].decode("utf-8", errors))
            except UnicodeDecodeError as e:
                raise RnnlabError(
                    f"{path}: word {i + 1} is not UTF-8 (byte {pos + e.start}); "
                    "use errors='replace' to read it anyway"
                ) from None
            matrix[i] = np.frombuffer(buf, dtype="<f4", count=dim, offset=space + 1)
            pos = space + 1 + record
        if limit is None and buf[pos : pos + 64].strip():
            raise RnnlabError(f"{path}: data after the {n} vectors the header declares")
    return words, matrix, None


def _memmap_safetensor(path: Path, name: str) -> np.memmap:
    """A read-only np.memmap of one float32 tensor in a safetensors file."""
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(n))
    info = header[name]
    if info["dtype"] != "F32":
        raise RnnlabError(f"{path}: tensor {name!r} is {info['dtype']}, mmap needs F32")
    begin, end = info["data_offsets"]
    shape = tuple(info["shape"])
    if end - begin != 4 * int(np.prod(shape)) or 8 + n + end > path.stat().st_size:
        raise RnnlabError(f"{path}: tensor {name!r} does not fit the file")
    return np.memmap(path, dtype="<f4", mode="r", offset=8 + n + begin, shape=shape)


def read_native(path: str | os.PathLike, mmap: bool = False) -> Loaded:
    """A native folder: `vectors.safetensors` ("input" rows) and `vocab.json` (words, counts)."""
    path = Path(path)
    tensors, vocab_file = path / NATIVE_VECTORS, path / NATIVE_VOCAB
    for f in (tensors, vocab_file):
        if not f.is_file():
            raise RnnlabError(f"{path}: not a vectors folder (no {f.name})")
    vocab = Vocabulary.load(vocab_file)
    try:
        if mmap:
            matrix = _memmap_safetensor(tensors, "input")
        else:
            with safetensors.safe_open(tensors, framework="numpy") as f:
                matrix = f.get_tensor("input").astype(np.float32, copy=False)
    except (KeyError, ValueError, OSError, safetensors.SafetensorError) as e:
        raise RnnlabError(f"{tensors}: cannot read tensor 'input' ({e})") from None
    if matrix.ndim != 2 or matrix.shape[0] != len(vocab):
        raise RnnlabError(f"{path}: 'input' has shape {matrix.shape}, the vocabulary {len(vocab)} words")
    return vocab.itos, matrix, vocab.counts


def read_vectors(
    path: str | os.PathLike,
    format: str | None = None,
    limit: int | None = None,
    mmap: bool = False,
    errors: str = "strict",
    on_warning: Callable[[str], None] | None = None,
) -> Loaded:
    """Read any of FORMATS, detecting the format when `format` is None; see `drop_non_finite`."""
    if limit is not None and limit < 1:
        raise RnnlabError(f"limit must be at least 1, got {limit}")
    format = format or detect_format(path)
    if format == "native":
        words, matrix, counts = read_native(path, mmap=mmap)
        loaded = words[:limit], matrix[:limit], counts[:limit]
    elif format == "word2vec-binary":
        loaded = read_binary(path, limit, errors)
    elif format in ("word2vec-text", "glove"):
        loaded = read_text(path, header=format == "word2vec-text", limit=limit, errors=errors)
    else:
        raise RnnlabError(f"unknown vectors format {format!r}; choose one of {', '.join(FORMATS)}")
    return drop_non_finite(path, *loaded, on_warning=on_warning)


def drop_non_finite(
    path: str | os.PathLike,
    words: list[str],
    matrix: np.ndarray,
    counts: np.ndarray | None,
    on_warning: Callable[[str], None] | None = None,
) -> Loaded:
    """Leave out the words whose vector holds NaN or infinity, saying so in one line to `on_warning`."""
    finite = np.empty(len(words), dtype=bool)
    # Row blocks keep the check's temporary small; a memory-mapped matrix is only paged through.
    for start in range(0, len(words), 1 << 16):
        finite[start : start + (1 << 16)] = np.isfinite(matrix[start : start + (1 << 16)]).all(axis=1)
    if finite.all():
        return words, matrix, counts
    bad = np.flatnonzero(~finite)
    if len(bad) == len(words):
        raise RnnlabError(f"{path}: every vector holds NaN or infinite values")
    shown = ", ".join(repr(words[i]) for i in bad[:3]) + (", ..." if len(bad) > 3 else "")
    if on_warning is not None:
        on_warning(f"{path}: {len(bad)} of {len(words)} words have NaN or infinite values "
                   f"and are left out: {shown}")
    kept = [w for w, ok in zip(words, finite) if ok]
    return kept, matrix[finite], None if counts is None else counts[finite]


def format_for(path: str | os.PathLike) -> str:
    """The format `save` picks from a name: .bin binary, .txt/.vec text, no suffix (or a
    trailing slash) a folder."""
    if str(path).endswith(("/", os.sep)):
        return "native"
    suffix = Path(Path(path).name.removesuffix(".gz")).suffix
    if suffix == ".bin":
        return "word2vec-binary"
    if suffix in (".txt", ".vec"):
        return "word2vec-text"
    if suffix == "":
        return "native"
    raise RnnlabError(f"{path}: cannot tell the format from {suffix!r}; use .bin, .txt, .vec or a folder")


@contextlib.contextmanager
def _open_write(path: Path) -> Iterator[IO[bytes]]:
    """An atomic binary writer, gzip-compressing when the name ends in .gz."""
    with atomic_write(path, "wb") as f:
        if path.suffix == ".gz":
            with gzip.GzipFile(fileobj=f, mode="wb", mtime=0) as g:
                yield g
        else:
            yield f


def _check_words(words: Sequence[str]) -> None:
    bad = next((w for w in words if not w or _SEPARATORS.search(w)), None)
    if bad is not None:
        raise RnnlabError(
            f"word {bad!r} is empty or holds whitespace, which word2vec files cannot store; "
            "save to a folder instead"
        )


def write_text(
    path: str | os.PathLike,
    words: Sequence[str],
    matrix: np.ndarray,
    header: bool = True,
    precision: int = 6,
) -> None:
    """word2vec text (or GloVe text with `header=False`), `precision` significant digits.

    Six digits match word2vec.c's files; nine reproduce every float32 exactly.
    """
    path = Path(path)
    _check_words(words)
    n, dim = matrix.shape
    row_format = " ".join([f"%.{precision}g"] * dim)
    with _open_write(path) as f:
        if header:
            f.write(f"{n} {dim}\n".encode())
        for start in range(0, n, 10000):
            block = zip(words[start : start + 10000], matrix[start : start + 10000].tolist())
            lines = (f"{w} {row_format % tuple(r)}\n" for w, r in block)
            f.write("".join(lines).encode())


def write_binary(path: str | os.PathLike, words: Sequence[str], matrix: np.ndarray) -> None:
    """word2vec.c binary: header, then per word its UTF-8 bytes, a space, float32s, newline."""
    path = Path(path)
    _check_words(words)
    n, dim = matrix.shape
    with _open_write(path) as f:
        f.write(f"{n} {dim}\n".encode())
        for start in range(0, n, 10000):
            rows = np.ascontiguousarray(matrix[start : start + 10000], dtype="<f4")
            f.write(
                b"".join(
                    w.encode() + b" " + r.tobytes() + b"\n"
                    for w, r in zip(words[start : start + 10000], rows)
                )
            )


def write_native(
    path: str | os.PathLike, words: Sequence[str], matrix: np.ndarray, counts: np.ndarray | None
) -> None:
    """A native folder: `vectors.safetensors` with "input" and `vocab.json` (counts 0 if None)."""
    matrix = np.ascontiguousarray(matrix, dtype=np.float32)
    with atomic_dir(path, "word-vectors") as tmp:
        (tmp / NATIVE_VECTORS).write_bytes(safetensors.numpy.save({"input": matrix}))
        Vocabulary(words, counts, specials=()).save(tmp / NATIVE_VOCAB)


def write_vectors(
    path: str | os.PathLike,
    words: Sequence[str],
    matrix: np.ndarray,
    counts: np.ndarray | None = None,
    format: str | None = None,
    precision: int = 6,
) -> None:
    """Write any of FORMATS, chosen from the name (see `format_for`) when `format` is None."""
    format = format or format_for(path)
    if format == "native":
        write_native(path, words, matrix, counts)
    elif format == "word2vec-binary":
        write_binary(path, words, matrix)
    elif format in ("word2vec-text", "glove"):
        write_text(path, words, matrix, header=format == "word2vec-text", precision=precision)
    else:
        raise RnnlabError(f"unknown vectors format {format!r}; choose one of {', '.join(FORMATS)}")
