"""Vector files: word2vec text/binary, GloVe, native folder; gensim interop; damaged files."""

import gzip
import warnings

import numpy as np
import pytest
import safetensors.numpy

from rnnlab.errors import RnnlabError
from rnnlab.text.vocab import Vocabulary
from rnnlab.word2vec import WordVectors
from rnnlab.word2vec.formats import detect_format, write_vectors

WORDS = ["the", "king", "queen", "café", "日本", "😀", "</s>"]


@pytest.fixture
def wv():
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((len(WORDS), 5)).astype(np.float32) * 10.0 ** rng.integers(-3, 3, (7, 5))
    return WordVectors(WORDS, vectors, counts=[70, 60, 50, 40, 30, 20, 10])


@pytest.mark.parametrize("name", ["v.bin", "v.bin.gz", "v-folder"])
def test_binary_and_native_round_trip_bit_exactly(tmp_path, wv, name):
    wv.save(tmp_path / name)
    loaded = WordVectors.load(tmp_path / name)
    assert loaded.index_to_key == WORDS
    assert loaded.vectors.tobytes() == wv.vectors.tobytes()
    loaded.save(tmp_path / ("again-" + name))
    if "folder" not in name:
        assert (tmp_path / ("again-" + name)).read_bytes() == (tmp_path / name).read_bytes()
    else:
        assert loaded.counts.tolist() == wv.counts.tolist()


@pytest.mark.parametrize("name", ["v.txt", "v.vec", "v.txt.gz"])
def test_text_round_trip_to_printed_precision(tmp_path, wv, name):
    wv.save(tmp_path / name)
    loaded = WordVectors.load(tmp_path / name)
    assert loaded.index_to_key == WORDS and loaded.counts is None
    np.testing.assert_allclose(loaded.vectors, wv.vectors, rtol=6e-6, atol=0)
    assert not np.array_equal(loaded.vectors, wv.vectors)  # six digits do lose a little
    wv.save(tmp_path / name, precision=9)
    assert np.array_equal(WordVectors.load(tmp_path / name).vectors, wv.vectors)


def test_text_layout(tmp_path):
    WordVectors(["a", "b"], np.array([[0.5, -1.25], [3e-7, 1e6]])).save(tmp_path / "v.txt")
    assert (tmp_path / "v.txt").read_text() == "2 2\na 0.5 -1.25\nb 3e-07 1e+06\n"


@pytest.mark.parametrize("binary", [True, False])
def test_gensim_reads_ours(tmp_path, wv, binary):
    KeyedVectors = pytest.importorskip("gensim.models").KeyedVectors
    path = tmp_path / ("v.bin" if binary else "v.txt")
    wv.save(path, precision=9, vocab_path=tmp_path / "v.vocab")
    kv = KeyedVectors.load_word2vec_format(path, binary=binary, fvocab=str(tmp_path / "v.vocab"))
    assert kv.index_to_key == WORDS
    assert np.array_equal(kv.vectors, wv.vectors)
    assert kv.get_vecattr("café", "count") == 40


@pytest.mark.parametrize("binary", [True, False])
def test_we_read_gensims(tmp_path, wv, binary):
    KeyedVectors = pytest.importorskip("gensim.models").KeyedVectors
    kv = KeyedVectors(wv.vector_size)
    kv.add_vectors(WORDS, wv.vectors)
    for w, c in zip(WORDS, wv.counts.tolist()):
        kv.set_vecattr(w, "count", c)
    path = tmp_path / ("g.bin" if binary else "g.txt")
    kv.save_word2vec_format(path, binary=binary, fvocab=str(tmp_path / "g.vocab"))
    loaded = WordVectors.load(path, vocab_path=tmp_path / "g.vocab")
    assert loaded.index_to_key == WORDS
    assert np.array_equal(loaded.vectors, wv.vectors)  # gensim prints float32s exactly
    assert loaded.counts.tolist() == wv.counts.tolist()


def test_word2vec_c_text_with_trailing_spaces(tmp_path):
    (tmp_path / "c.txt").write_text("2 3\n</s> 0.001 -0.002 0.003 \nthe 1.000000 2.000000 3.000000 \n")
    wv = WordVectors.load(tmp_path / "c.txt")
    assert wv.index_to_key == ["</s>", "the"]
    assert wv["the"].tolist() == [1.0, 2.0, 3.0]


def test_glove_without_header_and_words_with_spaces(tmp_path):
    (tmp_path / "glove.6B.3d.txt").write_text("the 0.1 0.2 0.3\n, -1 0 1\n. . . 4 5 6\n\n")
    assert detect_format(tmp_path / "glove.6B.3d.txt") == "glove"
    wv = WordVectors.load(tmp_path / "glove.6B.3d.txt")
    assert wv.index_to_key == ["the", ",", ". . ."]
    np.testing.assert_array_equal(wv[". . ."], np.float32([4, 5, 6]))
    assert WordVectors.load(tmp_path / "glove.6B.3d.txt", limit=2).index_to_key == ["the", ","]
    WordVectors(["a", "b"], np.eye(2)).save(tmp_path / "g", format="glove")
    assert (tmp_path / "g").read_text() == "a 1 0\nb 0 1\n"


def test_format_detection_by_content(tmp_path, wv):
    wv.save(tmp_path / "v.bin")
    wv.save(tmp_path / "v.txt")
    (tmp_path / "v.bin").rename(tmp_path / "model.w2v")
    (tmp_path / "v.txt").rename(tmp_path / "model.embeddings")
    assert detect_format(tmp_path / "model.w2v") == "word2vec-binary"
    assert detect_format(tmp_path / "model.embeddings") == "word2vec-text"
    assert WordVectors.load(tmp_path / "model.w2v").index_to_key == WORDS


def test_binary_with_and_without_record_newlines_and_limit(tmp_path, wv):
    rows = [w.encode() + b" " + v.tobytes() for w, v in zip(WORDS, wv.vectors)]
    (tmp_path / "gensim-style.bin").write_bytes(b"7 5\n" + b"".join(rows))
    (tmp_path / "c-style.bin").write_bytes(b"7 5\n" + b"".join(r + b"\n" for r in rows))
    for name in ("gensim-style.bin", "c-style.bin"):
        loaded = WordVectors.load(tmp_path / name)
        assert loaded.index_to_key == WORDS and np.array_equal(loaded.vectors, wv.vectors)
    assert WordVectors.load(tmp_path / "c-style.bin", limit=3).index_to_key == WORDS[:3]


def test_native_folder_memory_mapped(tmp_path, wv):
    wv.save(tmp_path / "model")
    assert Vocabulary.load(tmp_path / "model" / "vocab.json").itos == WORDS
    mapped = WordVectors.load(tmp_path / "model", mmap=True)
    assert not mapped.vectors.flags.writeable  # a read-only view of the file, not a copy
    assert np.array_equal(mapped.vectors, wv.vectors)
    assert mapped.most_similar("king", topn=2) == wv.most_similar("king", topn=2)


def test_native_folder_as_the_trainer_writes_it(tmp_path, wv):
    folder = tmp_path / "trained"
    folder.mkdir()
    out = np.zeros_like(wv.vectors)
    (folder / "vectors.safetensors").write_bytes(
        safetensors.numpy.save({"output": out, "input": wv.vectors})
    )
    Vocabulary.build([["king", "king", "the"]]).save(folder / "vocab.json")
    with pytest.raises(RnnlabError, match="shape"):
        WordVectors.load(folder)
    (folder / "vectors.safetensors").write_bytes(safetensors.numpy.save({"input": wv.vectors[:5]}))
    for mmap in (False, True):
        loaded = WordVectors.load(folder, mmap=mmap)
        assert loaded.index_to_key == ["<unk>", "<s>", "</s>", "king", "the"]
        assert loaded.get_vecattr("king", "count") == 2


def test_saving_words_word2vec_files_cannot_hold(tmp_path):
    with pytest.raises(RnnlabError, match="whitespace"):
        WordVectors(["new york"], np.ones((1, 2))).save(tmp_path / "v.bin")
    with pytest.raises(RnnlabError, match="cannot tell the format"):
        WordVectors(["a"], np.ones((1, 2))).save(tmp_path / "v.npy")


def write(path, content):
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return path


FLOATS = np.float32([1, 2]).tobytes()


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("v.txt", "2 x\na 1 2\n", "header"),
        ("v.txt", "3 2\na 1 2\nb 3 4\n", "declares 3 words, the file has only 2"),
        ("v.txt", "1 2\na 1 2\nb 3 4\n", "line 3: more words than the header's 1"),
        ("v.txt", "2 2\na 1 2\nb 3 4 5\n", "line 3: 3 values, expected 2"),
        ("v.txt", "2 2\na 1 2\nb 3\n", "line 3: 1 values, expected 2"),
        ("v.txt", "2 2\na 1 2\nb 3 x\n", "line 3: a value is not a number"),
        ("v.txt", "2 2\na 1 2\na 3 4\n", "duplicate word 'a' \\(entries 1 and 2\\)"),
        ("v.txt", "0 2\n", "declares 0 words"),
        ("v.txt", b"1 2\n\xff 1 2\n", "invalid utf-8"),
        ("v.txt", "x\n", "neither a 'COUNT DIM' header nor"),
        ("glove.txt", "a 1 2\nb 3\n", "line 2: 1 values, expected 2"),
        ("v.bin", b"2 2\na " + FLOATS + b"b " + FLOATS[:5], "truncated"),
        ("v.bin", b"3 2\na " + FLOATS + b"b " + FLOATS + b"c " + FLOATS[:7], "body at vector 3"),
        ("v.bin", b"1 2\na " + FLOATS + b"b " + FLOATS, "data after the 1 vectors"),
        ("v.bin", b"2 2\na " + FLOATS + b"a " + FLOATS, "duplicate word 'a'"),
        ("v.bin", b"a " + FLOATS, "header"),
        ("v.bin", b"1 2\n\xff " + FLOATS, "not UTF-8"),
        ("v.bin", b"", "empty file"),
    ],
)
def test_bad_files_give_one_line_errors(tmp_path, name, content, message):
    path = write(tmp_path / name, content)
    with pytest.raises(RnnlabError, match=message) as err:
        WordVectors.load(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_bad_paths_and_folders(tmp_path):
    with pytest.raises(RnnlabError, match="no such file"):
        WordVectors.load(tmp_path / "missing.bin")
    with pytest.raises(RnnlabError, match="not a vectors folder"):
        WordVectors.load(tmp_path)
    gz = tmp_path / "v.txt.gz"
    gz.write_bytes(gzip.compress(b"1 2\na 1 2\n" * 1000)[:40])
    with pytest.raises(RnnlabError, match="truncated gzip"):
        WordVectors.load(gz)
    with pytest.raises(RnnlabError, match="unknown vectors format"):
        WordVectors.load(tmp_path, format="fasttext")


def test_failed_save_keeps_the_old_file(tmp_path, wv):
    wv.save(tmp_path / "v.bin")
    before = (tmp_path / "v.bin").read_bytes()
    with pytest.raises(RnnlabError):
        WordVectors(["a b"], np.ones((1, 5))).save(tmp_path / "v.bin")
    assert (tmp_path / "v.bin").read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["v.bin"]


NON_FINITE = np.array([[1, 0], [np.nan, 1], [0.9, 0.1], [np.inf, 0], [0.5, 0.5], [2, -np.inf]], np.float32)
NON_FINITE_WORDS = ["the", "bad", "cat", "worse", "sat", "worst"]


@pytest.mark.parametrize("name, format", [
    ("v.txt", None), ("v.txt.gz", None), ("g.txt", "glove"), ("v.bin", None), ("v-folder", None),
])
def test_non_finite_vectors_are_left_out_with_one_warning_line(tmp_path, capsys, name, format):
    path = tmp_path / name
    write_vectors(path, NON_FINITE_WORDS, NON_FINITE, counts=[60, 50, 40, 30, 20, 10], format=format)
    assert WordVectors.load(path).index_to_key == ["the", "cat", "sat"]
    assert capsys.readouterr().err == ""  # the library never prints
    said = []
    loaded = WordVectors.load(path, on_warning=said.append)
    assert loaded.index_to_key == ["the", "cat", "sat"]
    assert np.array_equal(loaded.vectors, NON_FINITE[[0, 2, 4]])
    if name == "v-folder":
        assert loaded.counts.tolist() == [60, 40, 20]
    assert said == [f"{path}: 3 of 6 words have NaN or infinite values and are left out: "
                    "'bad', 'worse', 'worst'"]
    assert loaded.most_similar("the", topn=5) == [("cat", pytest.approx(0.99388373)),
                                                  ("sat", pytest.approx(0.70710678))]


def test_non_finite_memory_mapped_folder_is_copied_without_them(tmp_path, wv):
    write_vectors(tmp_path / "v", NON_FINITE_WORDS, NON_FINITE)
    said = []
    loaded = WordVectors.load(tmp_path / "v", mmap=True, limit=3, on_warning=said.append)
    assert loaded.vectors.flags.writeable  # a copy in memory
    assert loaded.index_to_key == ["the", "cat"] and np.array_equal(loaded.vectors, NON_FINITE[[0, 2]])
    assert len(said) == 1 and "1 of 3 words" in said[0]
    wv.save(tmp_path / "good")
    good = WordVectors.load(tmp_path / "good", mmap=True, on_warning=said.append)
    assert not good.vectors.flags.writeable  # still mapped
    assert len(said) == 1


def test_every_spelling_of_non_finite_text_and_overflow(tmp_path):
    lines = ["a 1 2", "b NaN 1", "c -Infinity 1", "d 1e39 1", "e 1 -1e39", "f -inf 0", "g 3e38 1"]
    (tmp_path / "v.txt").write_text(f"{len(lines)} 2\n" + "\n".join(lines) + "\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no numpy overflow warning either
        said = []
        loaded = WordVectors.load(tmp_path / "v.txt", on_warning=said.append)
    assert loaded.index_to_key == ["a", "g"]  # 3e38 still fits a float32
    assert len(said) == 1 and "5 of 7 words" in said[0] and "'b', 'c', 'd', ..." in said[0]


def test_a_file_without_one_finite_vector_is_an_error(tmp_path):
    (tmp_path / "v.txt").write_text("a nan 1\nb inf 0\n")
    with pytest.raises(RnnlabError, match="every vector holds NaN or infinite values"):
        WordVectors.load(tmp_path / "v.txt")
