"""The token store: a corpus read once into token ids on disk, for corpora bigger than memory.

`prepare_store` reads the text twice, streaming: pass 1 counts every token, pass 2 writes the
ids. Each pass hands batches of about BATCH_CHARS of text (UTF-8 text as bytes, which the
workers decode) to worker processes and takes their results back in order, so the store does
not depend on the number of workers. Words split at whitespace are hashed, counted and looked
up in compiled code (rnnlab.text.wordhash); other levels go through TextPipeline line by line. Memory is
bounded by the vocabulary and the batches in flight; a line longer than a batch is cut before
a token in a stream of words, and held whole at other levels and in sentence mode (as
TextPipeline holds it). The ids are exactly `TextPipeline.encode` of the same text with the
store's whole vocabulary, so a model trained from a store and from the text are the same.

A store is a folder (written whole or not at all):
- `config.json`: {"format": "rnnlab-store", "version": 1, "pipeline": {level, mode, lower},
  "encoding", "errors", "dtype", "tokens", "lines", "vocab_size", "sources": [{path, size}],
  "files": {name: {"size", "sha256"}}}: the settings, and a manifest of the three files below;
- `vocab.json`: the whole vocabulary with its counts (rnnlab.text.vocab), in Vocabulary.build's
  order: the specials, then every token by count, descending, ties by first occurrence in the
  text. A `min_count` or `max_size` cut keeps a prefix of that order, so it is an id threshold:
  ids at or above it read as `<unk>`, and one store serves any cut;
- `ids.bin`: the token ids, little-endian uint16 when the vocabulary has at most 65,536
  tokens, else uint32; in sentence mode each line's `<s> .. </s>` one after the other;
- `offsets.bin`: little-endian int64, `lines + 1` entries: where each line's ids start, then
  the number of ids. A line is what the pipeline makes of one line of text; lines without
  tokens are skipped, as TextPipeline skips them (a character stream keeps them: their newline).

`TokenStore` reads a store with positioned reads (os.pread), so no page of the ids stays
mapped or cached in the process between calls and its memory does not grow with the corpus.
It refuses, in one line, a store that is damaged (a missing, truncated or changed file) or
whose settings do not fit the caller's.
"""

from __future__ import annotations

import codecs
import hashlib
import itertools
import json
import os
import signal
from collections import Counter, deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from multiprocessing import get_all_start_methods, get_context
from multiprocessing.context import BaseContext
from pathlib import Path

import numpy as np

from rnnlab.errors import RnnlabError
from rnnlab.fileio import atomic_dir, file_fingerprint
from rnnlab.formats import check_format
from rnnlab.text import wordhash
from rnnlab.text.corpus import _decoded_chunks, _lookup_codec, check_file, read_chunks
from rnnlab.text.pipeline import TextPipeline
from rnnlab.text.tokenize import get_tokenizer
from rnnlab.text.vocab import BOS, EOS, Vocabulary, _refuse_min_count
from rnnlab.text.wordhash import HashCollisionError, WordTable

FORMAT, VERSION = "rnnlab-store", 1
KIND = "token-store"  # its name among rnnlab.outputs' folder kinds
CONFIG, VOCAB, IDS, OFFSETS = "config.json", "vocab.json", "ids.bin", "offsets.bin"
DTYPES = {"uint16": np.dtype("<u2"), "uint32": np.dtype("<u4")}
OFFSET_DTYPE = np.dtype("<i8")
BATCH_CHARS = 1 << 20  # text handed to a worker at once, cut at a line end
IN_FLIGHT = 2  # batches queued per worker: enough to keep it busy, few enough to bound memory
WRITE_BUFFER = 1 << 20

# (phase, done, total): phase "count" or "write"; bytes read so far (characters, for text in
# another encoding than UTF-8) against the bytes of the files on disk; total None for gzip.
Progress = Callable[[str, int, int | None], None]


# ----- reading text into tokens, in the worker processes -----

# Words split at whitespace (the "word" level without punctuation splitting, and "segmented")
# are hashed and counted in compiled code (rnnlab.text.wordhash), a whole batch at a time; a
# batch holding a space that only Unicode calls space, and every other level, goes line by line
# through TextPipeline.token_lines itself.
FAST_LEVELS = ("word", "segmented")


@dataclass(frozen=True)
class _Job:
    """What a worker needs: the pipeline and, in pass 2, the vocabulary (as a dict and, for
    words split at whitespace, as the counting pass's hash table with each word's id) and the
    dtype of the ids."""

    pipeline: TextPipeline
    stoi: dict[str, int] | None = None
    table: WordTable | None = None
    ids_of: np.ndarray | None = None
    dtype: str = "uint16"
    hashed: bool = True  # pass 1 hashes words split at whitespace (False after a HashCollisionError)
    errors: str = "strict"  # undecodable bytes, for batches of UTF-8 bytes


@dataclass(frozen=True)
class _Raw:
    """A batch of UTF-8 text as bytes, read from `path` at `offset`: the worker decodes it."""

    path: str
    offset: int
    data: bytes


# Set in each worker by _start: the vocabulary is sent once, not with every batch.
_job: _Job | None = None


def _start(job: _Job | None) -> None:
    global _job
    _job = job


def _start_worker(job: _Job) -> None:
    # Ctrl-C is the main process's to handle (it ends the pool); a worker would print a traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _start(job)


def _hashing() -> bool:
    return _job.hashed and _job.pipeline.level in FAST_LEVELS


def _text(batch: str | _Raw) -> str:
    """A batch's text: as it came, or its bytes decoded, with rnnlab.text.corpus's checks."""
    if isinstance(batch, str):
        return batch
    if (nul := batch.data.find(b"\0")) >= 0:
        raise RnnlabError(f"{batch.path}: binary data (NUL byte at offset {batch.offset + nul}), "
                          f"not text")
    try:
        return batch.data.decode("utf-8", _job.errors)
    except UnicodeDecodeError as e:
        at = batch.offset + e.start
        raise RnnlabError(f"{batch.path}: invalid utf-8 at byte offset {at}, line "
                          f"{_line_at(batch.path, at)} ({e.reason}); use --errors replace to read "
                          f"it anyway") from None


def _line_at(path: str, offset: int) -> int:
    """The line of a byte offset (read again from the file: for error messages only)."""
    newlines = done = 0
    for chunk in read_chunks(path):
        newlines += chunk[: max(offset - done, 0)].count(b"\n")
        done += len(chunk)
        if done >= offset:
            break
    return newlines + 1


def _scan(batch: str | _Raw, check: bool = True) -> tuple[np.ndarray, tuple | None]:
    """A batch's UTF-8 bytes (lowercased first where the pipeline says so) and their
    wordhash.scan, None when the batch must go line by line. `check=False` skips the checks
    of undecoded bytes (pass 2: pass 1 made them, and a text changed since fails its lookups)."""
    lower = _job.pipeline.level == "word" and _job.pipeline.lower  # "segmented" keeps its case
    if isinstance(batch, _Raw) and _job.errors == "strict" and not lower:
        if check:
            _text(batch)  # the words are read from the bytes as they are
        data = np.frombuffer(batch.data, np.uint8)
    else:
        text = _text(batch).lower() if lower else _text(batch)
        data = np.frombuffer(text.encode("utf-8", "surrogatepass"), np.uint8)
    return data, wordhash.scan(data)


def _line_tokens(text: str) -> Iterator[tuple[list[str], bool]]:
    """(tokens, ends_line) of each line with tokens, markers included, by TextPipeline.token_lines."""
    *lines, last = text.split("\n")
    for line in lines:
        tokens = [t for part in _job.pipeline.token_lines((line,)) for t in part]
        if tokens:
            yield tokens, True
    # A line cut short before a token (streams of words only): its end, and its end marker, come
    # with the next batch.
    if tokens := _job.pipeline.tokenize(last):
        yield tokens, False


def _count(batch: str | _Raw) -> Counter[str] | tuple:
    """Pass 1: a batch's tokens with their counts, in order of first occurrence: a Counter, or,
    for words split at whitespace, (h1, h2, counts, words joined by spaces, lines ended)."""
    data, words = _scan(batch) if _hashing() else (None, None)
    if words is not None:
        h1, h2, start, stop, ends_line = words
        first, counts = wordhash.count_words(h1, h2)
        if len(first) and first[0] < 0:
            raise HashCollisionError("two words share a hash")
        return (h1[first], h2[first], counts, wordhash.words_of(data, start[first], stop[first]),
                int(ends_line.sum()))
    counter: Counter[str] = Counter()
    for tokens, _ in _line_tokens(_text(batch)):
        counter.update(tokens)
    if not _hashing():
        return counter
    # Words (whitespace-free, markers included) hashed alike, for the same table.
    # (They hold no space at all, so scan reads every one.)
    joined = " ".join(counter).encode("utf-8", "surrogatepass")
    h1, h2, *_ = wordhash.scan(np.frombuffer(joined, np.uint8))
    return h1, h2, np.fromiter(counter.values(), np.int64, len(counter)), joined, 0


def _encode(batch: str | _Raw) -> tuple[bytes, np.ndarray, int]:
    """Pass 2: a batch's ids (the store's bytes), where its lines end, and how many ids it has."""
    _, words = _scan(batch, check=False) if _job.table is not None else (None, None)
    if words is not None:
        h1, h2, _, _, ends_line = words
        ids = _job.table.lookup(h1, h2, _job.ids_of)
        if len(ids) and ids.min() < 0:
            raise _changed(repr("a word"))
        sentence = _job.pipeline.mode == "sentence"
        ids, ends = wordhash.with_line_marks(ids, ends_line, _job.stoi[EOS],
                                             _job.stoi[BOS] if sentence else -1)
    else:
        try:
            lines = [([_job.stoi[t] for t in tokens], ends)
                     for tokens, ends in _line_tokens(_text(batch))]
        except KeyError as e:
            raise _changed(repr(e.args[0])) from None
        ids = np.fromiter((i for line, _ in lines for i in line), np.int64)
        ends = np.cumsum([len(line) for line, _ in lines], dtype=np.int64)
        ends = ends[[ended for _, ended in lines]] if lines else ends
    return ids.astype(DTYPES[_job.dtype]).tobytes(), ends, len(ids)


def _changed(token: str) -> RnnlabError:
    return RnnlabError(f"the text changed while it was read (a token {token} that the first "
                       f"pass did not see); prepare the store again")


def _cut(text: str | bytes, within_line: bool) -> int:
    """Where a batch may end: after its last line break, or (`within_line`) before its last token."""
    newline, space, tab = ("\n", " ", "\t") if isinstance(text, str) else (b"\n", b" ", b"\t")
    cut = text.rfind(newline) + 1
    if cut or not within_line:
        return cut
    stripped = text.rstrip()
    # After a space or tab that has a token after it: the rest of the line keeps a token, so
    # its end still gets its end marker.
    return max(stripped.rfind(space), stripped.rfind(tab)) + 1


def _pieces(chunks: Iterator, within_line: bool) -> Iterator:
    """About BATCH_CHARS of whole lines (str or bytes, as the chunks), each ending in a line
    break. A longer line is cut before a token when `within_line`, else held whole."""
    held, size, need = [], 0, BATCH_CHARS
    for chunk in chunks:
        held.append(chunk)
        size += len(chunk)
        if size < need:
            continue
        text = chunk[:0].join(held)
        cut = _cut(text, within_line)
        held, size = [text[cut:]], len(text) - cut
        # Without a cut, wait for twice the text: joining at every chunk would be quadratic.
        need = BATCH_CHARS if cut else 2 * size
        if cut:
            yield text[:cut]
    if held and (text := held[0][:0].join(held)):
        newline = "\n" if isinstance(text, str) else b"\n"
        yield text if text.endswith(newline) else text + newline


def _raw_batches(path: Path, within_line: bool) -> Iterator[tuple[_Raw, int]]:
    """The batches of a UTF-8 file as bytes (its BOM dropped), and their sizes."""
    offset, seen = 0, False
    for piece in _pieces(read_chunks(path, BATCH_CHARS), within_line):
        size = len(piece)
        if offset == 0 and piece.startswith(codecs.BOM_UTF8):
            piece, offset = piece[len(codecs.BOM_UTF8):], len(codecs.BOM_UTF8)
        seen = seen or bool(piece.strip())
        yield _Raw(str(path), offset, piece), size
        offset += len(piece)
    if offset == 0:
        raise RnnlabError(f"{path}: empty file")
    if not seen:
        raise RnnlabError(f"{path}: contains only whitespace")


def _batches(paths: Sequence[Path], encoding: str, errors: str,
             pipeline: TextPipeline) -> Iterator[tuple[str | _Raw, int]]:
    """(batch, size) of about BATCH_CHARS of whole lines (see _pieces; a line is cut only in
    streams of words, as TextPipeline does). UTF-8 text goes to the workers as bytes (size in
    bytes), which decode it; other encodings as text (size in characters)."""
    within_line = pipeline.level in FAST_LEVELS and pipeline.mode == "stream"
    for path in paths:
        if codecs.lookup(encoding).name == "utf-8":
            yield from _raw_batches(path, within_line)
        else:
            for text in _pieces(_decoded_chunks(path, encoding, errors), within_line):
                yield text, len(text)


def _context() -> BaseContext:
    """Fork where there is fork: spawn and forkserver run the caller's main script again in
    every worker, which a script without an `if __name__ == "__main__"` guard does not survive.
    (A forked worker's RSS counts the caller's pages again, shared as they are.)"""
    return get_context("fork" if "fork" in get_all_start_methods() else "spawn")


def _in_order(func: Callable, batches: Iterator[tuple[str, int]], job: _Job,
              workers: int) -> Iterator[tuple[object, int]]:
    """(func(batch), characters) for every batch, in order, run in `workers` processes."""
    if workers <= 1:
        _start(job)
        try:
            for batch, size in batches:
                yield func(batch), size
        finally:
            _start(None)
        return
    with _context().Pool(workers, initializer=_start_worker, initargs=(job,)) as pool:
        pending: deque = deque()
        for batch, size in batches:
            pending.append((pool.apply_async(func, (batch,)), size))
            if len(pending) >= workers * IN_FLIGHT:
                result, done = pending.popleft()
                yield result.get(), done
        while pending:
            result, done = pending.popleft()
            yield result.get(), done

# ----- the vocabulary: kept whole, cut by an id threshold -----

def whole_vocab(counter: Counter[str], specials: Sequence[str]) -> Vocabulary:
    """Every counted token: Vocabulary.build's order and counts with no token dropped."""
    special_set = set(specials)
    # sorted() is stable: equal counts keep the counter's order, first occurrence.
    ranked = sorted(((t, c) for t, c in counter.items() if t not in special_set), key=lambda tc: -tc[1])
    itos = [*specials, *(t for t, _ in ranked)]
    counts = [counter.get(t, 0) for t in specials] + [c for _, c in ranked]
    return Vocabulary(itos, counts, specials)


def vocab_limit(whole: Vocabulary, min_count: int = 1, max_size: int | None = None) -> int:
    """The id threshold of a cut: ids below it are kept, the rest read as `<unk>`."""
    specials = len(whole.specials)
    if max_size is not None and max_size < specials:
        raise RnnlabError(f"max_size {max_size} leaves no room for the {specials} specials")
    ranked = whole.counts[specials:]  # descending, so the tokens kept are a prefix
    limit = specials + int(np.count_nonzero(ranked >= min_count))
    if limit == specials and min_count > 1 and len(ranked):
        _refuse_min_count(Counter(dict(zip(whole.itos[specials:], ranked.tolist()))), set(), min_count)
    return limit if max_size is None else min(limit, max_size)


def cut_vocab(whole: Vocabulary, limit: int) -> Vocabulary:
    """The first `limit` tokens; `<unk>`'s count takes those of the tokens cut off (as in build)."""
    counts = whole.counts[:limit].copy()
    if whole.unk_id is not None:
        counts[whole.unk_id] += int(whole.counts[limit:].sum())
    return Vocabulary(whole.itos[:limit], counts, whole.specials)


# ----- writing a store -----

def _count_pass(paths, pipeline, encoding, errors, workers, progress, total,
                hashed: bool) -> tuple[Counter[str], WordTable | None]:
    """Pass 1: every token's count in order of first occurrence, and (`hashed`, words split at
    whitespace) the hash table of the words, which pass 2 looks the words up in."""
    counter: Counter[str] = Counter()
    table = WordTable() if hashed and pipeline.level in FAST_LEVELS else None
    done = marks = 0
    batches = _batches(paths, encoding, errors, pipeline)
    job = _Job(pipeline, hashed=hashed, errors=errors)
    for counts, size in _in_order(_count, batches, job, workers):
        # Batches in order: first occurrences stay in corpus order.
        if table is None:
            counter.update(counts)
        else:
            h1, h2, n, words, ended = counts
            table.add(h1, h2, n, words)
            marks += ended
        done += size
        progress("count", done, total)
    if table is not None:
        counter = Counter(table.totals())
        counter[EOS] += marks
        if pipeline.mode == "sentence":
            counter[BOS] += marks
    return counter, table


def _write_pass(folder, paths, job, encoding, errors, workers, progress, total) -> tuple[int, int, dict]:
    """Write ids.bin and offsets.bin; (tokens, lines, {name: fingerprint})."""
    tokens, lines, done = 0, 0, 0
    digests = {IDS: hashlib.sha256(), OFFSETS: hashlib.sha256()}
    batches = _batches(paths, encoding, errors, job.pipeline)
    with open(folder / IDS, "wb", buffering=WRITE_BUFFER) as ids_file, \
            open(folder / OFFSETS, "wb", buffering=WRITE_BUFFER) as offsets_file:
        def write(name: str, f, data: bytes) -> None:
            f.write(data)
            digests[name].update(data)

        write(OFFSETS, offsets_file, np.zeros(1, OFFSET_DTYPE).tobytes())
        for (ids, ends, count), size in _in_order(_encode, batches, job, workers):
            write(IDS, ids_file, ids)
            write(OFFSETS, offsets_file, (tokens + ends).astype(OFFSET_DTYPE).tobytes())
            tokens += count
            lines += len(ends)
            done += size
            progress("write", done, total)
    files = {name: {"size": os.path.getsize(folder / name), "sha256": d.hexdigest()}
             for name, d in digests.items()}
    return tokens, lines, files


def _gzipped(path: Path) -> bool:
    with open(path, "rb") as f:
        return path.suffix == ".gz" or f.read(2) == b"\x1f\x8b"


def _default_workers() -> int:
    """The cores this process may run on (taskset and cgroups' cpusets respected)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def prepare_store(
    paths: str | os.PathLike | Sequence[str | os.PathLike],
    store: str | os.PathLike,
    pipeline: TextPipeline | None = None,
    *,
    encoding: str = "utf-8",
    errors: str = "strict",
    workers: int | None = None,
    progress: Progress | None = None,
) -> TokenStore:
    """Read text files (plain or .gz) into a token store at `store` (see the module's docstring).

    `workers`: processes that tokenize (default: every core this process may use).
    `store` is replaced only when it is an empty folder or a token store already.
    """
    pipeline = pipeline or TextPipeline()
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    paths = [check_file(p) for p in paths]
    if not paths:
        raise RnnlabError("no corpus files given")
    _lookup_codec(encoding, errors)
    get_tokenizer(pipeline.level, lower=pipeline.lower)  # jieba missing: refused before reading
    workers = workers or _default_workers()
    if workers < 1:
        raise RnnlabError(f"workers must be at least 1, got {workers}")
    progress = progress or (lambda phase, done, total: None)
    total = None if any(_gzipped(p) for p in paths) else sum(os.path.getsize(p) for p in paths)

    try:
        counter, table = _count_pass(paths, pipeline, encoding, errors, workers, progress, total,
                                     hashed=True)
    except HashCollisionError:  # two words with one first hash (about 2^-64 a pair): count the slow way
        counter, table = _count_pass(paths, pipeline, encoding, errors, workers, progress, total,
                                     hashed=False)
    whole = whole_vocab(counter, pipeline.specials)
    # The table's words lead the counter, in the table's order: their ids without decoding again.
    words = [] if table is None else itertools.islice(counter, len(table))
    ids_of = None if table is None else np.fromiter(map(whole.stoi.__getitem__, words), np.int64)
    del counter
    dtype = "uint16" if len(whole) <= 1 << 16 else "uint32"
    job = _Job(pipeline, whole.stoi, table, ids_of, dtype, errors=errors)
    with atomic_dir(store, KIND) as folder:
        tokens, lines, files = _write_pass(folder, paths, job, encoding, errors, workers, progress,
                                           total)
        whole.save(folder / VOCAB)
        files[VOCAB] = file_fingerprint(folder / VOCAB)
        config = {
            "format": FORMAT, "version": VERSION, "pipeline": pipeline.to_config(),
            "encoding": encoding, "errors": errors, "dtype": dtype, "tokens": tokens,
            "lines": lines, "vocab_size": len(whole),
            "sources": [{"path": str(p.resolve()), "size": os.path.getsize(p)} for p in paths],
            "files": files,
        }
        (folder / CONFIG).write_text(json.dumps(config, indent=1, ensure_ascii=False) + "\n",
                                     encoding="utf-8")
    return TokenStore(store, verify=False)


# ----- reading a store -----

def is_store(path: str | os.PathLike) -> bool:
    """Whether `path` is a folder that says it is a token store (damaged or not)."""
    try:
        doc = json.loads((Path(path) / CONFIG).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(doc, dict) and doc.get("format") == FORMAT


def store_pipeline(path: str | os.PathLike) -> TextPipeline:
    """The pipeline a store was prepared with (its config.json checked, not its files)."""
    return TextPipeline.from_config(_load_config(Path(path))["pipeline"])


def data_fingerprint(path: str | os.PathLike) -> dict:
    """{"size", "sha256"} of a text file, or of a store's config.json (which holds the SHA-256
    of every other file): what a resumed run compares to notice changed data."""
    path = Path(path)
    return file_fingerprint(path / CONFIG if path.is_dir() else path)


def _pread(path: Path, offset: int, size: int) -> bytes:
    """`size` bytes at `offset`, read without mapping the file."""
    parts = []
    with open(path, "rb", buffering=0) as f:
        while size > 0:
            data = os.pread(f.fileno(), size, offset)
            if not data:
                raise RnnlabError(f"{path}: ends early (truncated); prepare the store again")
            parts.append(data)
            offset += len(data)
            size -= len(data)
    return b"".join(parts)


def _load_config(path: Path) -> dict:
    if not path.is_dir():
        raise RnnlabError(f"{path}: not a token store (not a folder)")
    try:
        config = json.loads((path / CONFIG).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RnnlabError(f"{path}: not a token store (no {CONFIG})") from None
    except (OSError, ValueError) as e:
        raise RnnlabError(f"{path}/{CONFIG}: unreadable ({e}); prepare the store again") from None
    check_format(config, path / CONFIG, FORMAT, VERSION, "token store")
    try:
        TextPipeline.from_config(config["pipeline"])
        sizes = {name: int(config["files"][name]["size"]) for name in (IDS, OFFSETS, VOCAB)}
        ok = (config["dtype"] in DTYPES
              and sizes[IDS] == int(config["tokens"]) * DTYPES[config["dtype"]].itemsize
              and sizes[OFFSETS] == (int(config["lines"]) + 1) * OFFSET_DTYPE.itemsize)
    except (KeyError, TypeError, ValueError, RnnlabError):
        ok = False
    if not ok:
        raise RnnlabError(f"{path}/{CONFIG}: damaged (its settings do not add up); "
                          f"prepare the store again")
    return config


def _check_files(path: Path, files: dict, verify: bool) -> None:
    """One-line refusal for a missing file, one of the wrong size or (`verify`) content."""
    for name, expected in files.items():
        file = path / name
        if not file.is_file():
            raise RnnlabError(f"{file}: missing; the store is incomplete, prepare it again")
        size = file.stat().st_size
        if size != expected["size"]:
            raise RnnlabError(f"{file}: {size:,} bytes, not the {expected['size']:,} the store "
                              f"was written with (truncated or damaged); prepare it again")
        if verify and file_fingerprint(file)["sha256"] != expected["sha256"]:
            raise RnnlabError(f"{file}: fails its SHA-256 check (damaged); prepare the store again")


class TokenStore:
    """A prepared store: its pipeline, vocabulary, ids and line offsets.

    Opening checks every file's size and (`verify`, the default) SHA-256. Reads are
    positioned reads: nothing stays open or mapped between calls, so a reader can be handed
    to worker processes and reading the whole store in chunks keeps memory flat.
    """

    def __init__(self, path: str | os.PathLike, verify: bool = True) -> None:
        self.path = Path(path)
        self.config = _load_config(self.path)
        _check_files(self.path, self.config["files"], verify)
        self.pipeline = TextPipeline.from_config(self.config["pipeline"])
        self.dtype = DTYPES[self.config["dtype"]]
        self.whole_vocab = Vocabulary.load(self.path / VOCAB)
        if len(self.whole_vocab) != self.config["vocab_size"] or \
                self.whole_vocab.specials != self.pipeline.specials:
            raise RnnlabError(f"{self.path / VOCAB}: does not fit the store's settings; "
                              f"prepare it again")

    def __len__(self) -> int:
        return int(self.config["tokens"])

    def __repr__(self) -> str:
        return f"TokenStore({str(self.path)!r}, {len(self):,} tokens, {self.num_lines:,} lines)"

    @property
    def num_lines(self) -> int:
        """Lines with ids (see the module's docstring)."""
        return int(self.config["lines"])

    def check_pipeline(self, pipeline: TextPipeline) -> None:
        """Refuse, in one line, a caller that reads text with other settings than the store's."""
        for key, wanted in pipeline.to_config().items():
            have = self.pipeline.to_config()[key]
            if have != wanted:
                raise RnnlabError(f"{self.path}: a store prepared with {key} {have!r}, not "
                                  f"{wanted!r}; prepare one with the settings asked for")

    def vocab_limit(self, min_count: int = 1, max_size: int | None = None) -> int:
        """The id threshold of this cut (ids at or above it read as `<unk>`)."""
        return vocab_limit(self.whole_vocab, min_count, max_size)

    def vocab(self, min_count: int = 1, max_size: int | None = None) -> Vocabulary:
        """The vocabulary that TextPipeline.build_vocab(text, min_count, max_size) would build."""
        return cut_vocab(self.whole_vocab, self.vocab_limit(min_count, max_size))

    def ids(self, start: int = 0, stop: int | None = None, limit: int | None = None) -> np.ndarray:
        """ids[start:stop] as int64; ids at or above `limit` (a vocab_limit) become `<unk>`."""
        start, stop, _ = slice(start, stop).indices(len(self))
        count = max(stop - start, 0)
        size = self.dtype.itemsize
        ids = np.frombuffer(_pread(self.path / IDS, start * size, count * size), self.dtype)
        ids = ids.astype(np.int64)
        if limit is not None and limit < len(self.whole_vocab):
            ids[ids >= limit] = self.whole_vocab.unk_id
        return ids

    def offsets(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Where lines start..stop-1 begin, then where line stop-1 ends: stop - start + 1 values."""
        start, stop, _ = slice(start, stop).indices(self.num_lines)
        stop = max(stop, start)
        size = OFFSET_DTYPE.itemsize
        data = _pread(self.path / OFFSETS, start * size, (stop - start + 1) * size)
        return np.frombuffer(data, OFFSET_DTYPE).astype(np.int64)

    def line(self, index: int, limit: int | None = None) -> np.ndarray:
        """The ids of line `index` (markers included)."""
        if not 0 <= index < self.num_lines:
            raise IndexError(f"line {index} of {self.num_lines}")
        begin, end = self.offsets(index, index + 1)
        return self.ids(int(begin), int(end), limit)
