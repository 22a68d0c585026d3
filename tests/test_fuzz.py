"""Property-based tests: tokenizers, the corpus reader, word-vector files and vocabularies.

Arbitrary input either works or raises RnnlabError, never another exception; what should
round-trip does. Example counts stay modest so that the file runs in seconds.
"""

from __future__ import annotations

import gzip
import json
import shutil
import tempfile
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from rnnlab.errors import RnnlabError
from rnnlab.text import corpus
from rnnlab.text.tokenize import get_tokenizer, tokenize_chars, tokenize_words
from rnnlab.text.vocab import Vocabulary
from rnnlab.word2vec.vectors import WordVectors

FEW = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Text with the awkward parts of Unicode: surrogates are left out because a str holding one
# cannot be written as UTF-8 at all.
texts = st.text(st.characters(blacklist_categories=("Cs",)), max_size=200)


SCRATCH = Path(tempfile.mkdtemp(prefix="rnnlab-fuzz-"))


@pytest.fixture(scope="module", autouse=True)
def remove_scratch():
    yield
    shutil.rmtree(SCRATCH, ignore_errors=True)


def in_file(data: bytes, name: str) -> Path:
    """`data` written to a fresh temporary file called `name` (hypothesis runs many examples
    per test, so pytest's per-test tmp_path cannot serve)."""
    folder = Path(tempfile.mkdtemp(dir=SCRATCH))
    path = folder / name
    path.write_bytes(data)
    return path


# -- tokenizers ------------------------------------------------------------------------------


@FEW
@given(texts, st.booleans(), st.booleans())
def test_word_tokens_are_nonempty_and_spaceless(text, lower, split_punct):
    tokens = tokenize_words(text, lower=lower, split_punct=split_punct)
    assert all(t and not any(c.isspace() for c in t) for t in tokens)
    if not split_punct:
        assert " ".join(tokens) == " ".join((text.lower() if lower else text).split())


@FEW
@given(texts)
def test_char_tokens_round_trip(text):
    assert "".join(tokenize_chars(text)) == text
    assert get_tokenizer("char")(text) == list(text)
    assert "".join(get_tokenizer("char", lower=True)(text)) == text.lower()


@FEW
@given(texts, st.sampled_from(["word", "char", "segmented"]), st.booleans(), st.booleans())
def test_every_level_takes_any_text(text, level, lower, split_punct):
    tokens = get_tokenizer(level, lower, split_punct)(text)
    assert isinstance(tokens, list) and all(isinstance(t, str) for t in tokens)


# -- the corpus reader -----------------------------------------------------------------------


@FEW
@given(st.binary(max_size=300), st.sampled_from(["a.txt", "a.txt.gz"]), st.integers(1, 9))
def test_any_bytes_read_as_lines_or_fail_cleanly(data, name, chunk):
    path = in_file(gzip.compress(data) if name.endswith(".gz") else data, name)
    # Tiny chunks and pieces put chunk edges inside multi-byte characters and lines.
    with mock.patch.object(corpus, "CHUNK_BYTES", chunk), mock.patch.object(corpus, "MAX_PIECE_CHARS", 4):
        try:
            lines = list(corpus.read_lines(path))
        except RnnlabError:
            return
    assert all(isinstance(line, str) and "\n" not in line for line in lines)


@FEW
@given(texts, st.integers(1, 9), st.integers(1, 9))
def test_text_survives_any_chunking(text, chunk, piece):
    assume(text.strip() and "\0" not in text and "\r" not in text and not text.startswith("\ufeff"))
    path = in_file(text.encode(), "a.txt")
    with mock.patch.object(corpus, "CHUNK_BYTES", chunk):
        pieces = list(corpus.read_pieces(path, max_chars=piece))
    # Longer only to keep a token whole: no space or tab before the one it was cut after.
    assert all(len(p) <= piece or not {" ", "\t"} & set(p[:-1]) for p, _ in pieces)
    lines, current = [], ""
    for p, ends_line in pieces:
        current += p
        if ends_line:
            lines.append(current)
            current = ""
    assert current == ""
    assert lines == text.removesuffix("\n").split("\n")


# -- word-vector files -----------------------------------------------------------------------

VECTOR_NAMES = ["v.txt", "v.bin", "v.vec", "v.txt.gz", "v.bin.gz", "v.glove", "vectors"]


def load_or_refuse(path: Path) -> None:
    """Load word vectors; a failure must be an RnnlabError (anything else propagates)."""
    try:
        wv = WordVectors.load(path)
    except RnnlabError:
        return
    assert wv.vectors.ndim == 2 and wv.vectors.shape[0] == len(wv.index_to_key) > 0


@FEW
@given(st.binary(max_size=300), st.sampled_from(VECTOR_NAMES))
def test_any_bytes_as_vectors_load_or_fail_cleanly(data, name):
    load_or_refuse(in_file(gzip.compress(data) if name.endswith(".gz") else data, name))


words = st.text(st.characters(blacklist_categories=("Cs", "Zs", "Cc")), min_size=1, max_size=8)
numbers = st.floats(allow_nan=False, allow_infinity=False, width=32)


@st.composite
def damaged_vector_files(draw) -> tuple[bytes, str]:
    """A well-formed word2vec text or binary file, then cut short or with a byte changed."""
    dim = draw(st.integers(1, 4))
    rows = draw(st.lists(st.tuples(words, st.lists(numbers, min_size=dim, max_size=dim)), min_size=1,
                         max_size=5))
    binary = draw(st.booleans())
    header = f"{len(rows)} {dim}\n".encode()
    if binary:
        body = b"".join(w.encode() + b" " + np.array(v, "<f4").tobytes() + b"\n" for w, v in rows)
    else:
        body = "".join(f"{w} {' '.join(map(repr, v))}\n" for w, v in rows).encode()
    data = bytearray(header + body)
    cut = draw(st.integers(0, len(data)))
    if draw(st.booleans()) and cut < len(data):
        data[cut] = draw(st.integers(0, 255))
    else:
        del data[cut:]
    return bytes(data), "v.bin" if binary else "v.txt"


@FEW
@given(damaged_vector_files())
def test_damaged_vector_files_load_or_fail_cleanly(file):
    data, name = file
    load_or_refuse(in_file(data, name))


@FEW
@given(st.binary(max_size=200))
def test_damaged_native_folder_loads_or_fails_cleanly(data):
    folder = in_file(b"", "unused").parent / "vectors"
    folder.mkdir()
    (folder / "vectors.safetensors").write_bytes(data)
    Vocabulary(["a", "b"], [2, 1], specials=()).save(folder / "vocab.json")
    load_or_refuse(folder)


# -- vocabularies ----------------------------------------------------------------------------


def vocab_or_refuse(path: Path) -> None:
    try:
        vocab = Vocabulary.load(path)
    except RnnlabError:
        return
    assert len(vocab.counts) == len(vocab.itos) and (vocab.counts >= 0).all()


@FEW
@given(st.binary(max_size=300), st.sampled_from(["vocab.json", "vocab.txt", "vocab"]))
def test_any_bytes_as_vocabulary_load_or_fail_cleanly(data, name):
    vocab_or_refuse(in_file(data, name))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=8,
)


@FEW
@given(json_values, json_values, json_values)
def test_any_json_vocabulary_loads_or_fails_cleanly(tokens, counts, specials):
    doc = {"format": "rnnlab-vocab", "version": 1, "tokens": tokens, "counts": counts, "specials": specials}
    vocab_or_refuse(in_file(json.dumps(doc).encode(), "vocab.json"))


@FEW
@given(st.lists(st.tuples(words, st.integers(0, 2**80)), max_size=5))
def test_text_vocabulary_with_any_counts(rows):
    vocab_or_refuse(in_file("".join(f"{w}\t{c}\n" for w, c in rows).encode(), "vocab.txt"))
