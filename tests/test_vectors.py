"""WordVectors: look-up, counts, cosine queries with a planted analogy, gensim agreement, CLI."""

import numpy as np
import pytest

from rnnlab.cli import main
from rnnlab.errors import RnnlabError
from rnnlab.word2vec import WordVectors
from rnnlab.word2vec.vectors import UnknownWordError

#               royal male female person fruit colour
PLANTED = {
    "king":   [1.0, 1.0, 0.0, 1.0, 0.0, 0.0],
    "queen":  [1.0, 0.0, 1.0, 1.0, 0.0, 0.0],
    "man":    [0.0, 1.0, 0.0, 1.0, 0.0, 0.0],
    "woman":  [0.0, 0.0, 1.0, 1.0, 0.0, 0.0],
    "crown":  [1.0, 0.0, 0.0, 0.0, 0.0, 0.2],
    "apple":  [0.0, 0.0, 0.0, 0.0, 1.0, 0.5],
    "banana": [0.0, 0.0, 0.0, 0.0, 1.0, 0.8],
    "red":    [0.0, 0.0, 0.0, 0.0, 0.3, 1.0],
}  # fmt: skip


@pytest.fixture
def planted():
    counts = [80, 70, 60, 50, 40, 30, 20, 10]
    return WordVectors(list(PLANTED), np.array(list(PLANTED.values())), counts=counts)


def cos(a, b):
    return float(np.dot(a, b) / np.linalg.norm(a) / np.linalg.norm(b))


def test_lookup_and_counts(planted):
    assert len(planted) == 8 and planted.vector_size == 6
    assert "king" in planted and "King" not in planted
    assert planted["queen"].tolist() == PLANTED["queen"]
    assert planted[["man", "woman"]].shape == (2, 6)
    assert planted.key_to_index["apple"] == 5 and planted.index_to_key[5] == "apple"
    assert planted.get_vecattr("woman", "count") == 50
    assert planted.get_vecattr("woman", "index") == 3
    assert planted.vocabulary(3) == [("king", 80), ("queen", 70), ("man", 60)]
    assert planted.vectors.dtype == np.float32


def test_unknown_words_are_key_errors_and_user_errors(planted):
    with pytest.raises(KeyError):
        planted["King"]
    with pytest.raises(RnnlabError, match="'King' is not in the vocabulary .*did you mean 'king'"):
        planted.most_similar("King")
    assert issubclass(UnknownWordError, KeyError)
    plain = WordVectors(["a"], np.ones((1, 2)))
    assert plain.vocabulary() == [("a", None)]
    with pytest.raises(RnnlabError, match="no counts"):
        plain.get_vecattr("a", "count")


def test_construction_checks():
    with pytest.raises(RnnlabError, match="duplicate word 'b' \\(entries 2 and 3\\)"):
        WordVectors(["a", "b", "b"], np.ones((3, 2)))
    with pytest.raises(RnnlabError, match="shape"):
        WordVectors(["a", "b"], np.ones((3, 2)))
    with pytest.raises(RnnlabError, match="counts"):
        WordVectors(["a"], np.ones((1, 2)), counts=[1, 2])


def test_similarity_is_the_cosine_and_normed_matrix_is_cached(planted):
    assert planted.similarity("king", "queen") == pytest.approx(cos(PLANTED["king"], PLANTED["queen"]))
    assert planted.distance("king", "king") == pytest.approx(0.0, abs=1e-6)
    normed = planted.get_normed_vectors()
    assert normed is planted.get_normed_vectors()
    np.testing.assert_allclose(np.linalg.norm(normed, axis=1), 1.0, rtol=1e-6)
    planted.vectors[0] *= -1
    planted.fill_norms(force=True)
    assert planted.similarity("king", "man") < 0
    zero = WordVectors(["z", "a"], np.array([[0.0, 0.0], [1.0, 0.0]]))
    assert zero.similarity("z", "a") == 0.0  # a zero vector has cosine 0, not nan


def test_planted_analogy_king_man_woman_queen(planted):
    answer = planted.analogy("man", "king", "woman")
    assert [w for w, _ in answer] == ["queen"]
    expected = cos(
        PLANTED["queen"],
        np.array(PLANTED["king"]) / np.sqrt(3) - np.array(PLANTED["man"]) / np.sqrt(2)
        + np.array(PLANTED["woman"]) / np.sqrt(2),
    )
    assert answer[0][1] == pytest.approx(expected, rel=1e-5)
    top = planted.most_similar(positive=["king", "woman"], negative=["man"], topn=3)
    assert top[0][0] == "queen" and len(top) == 3
    assert all(w not in ("king", "woman", "man") for w, _ in top)
    assert [s for _, s in top] == sorted((s for _, s in top), reverse=True)


def test_most_similar_options(planted):
    assert planted.most_similar("apple", topn=1)[0][0] == "banana"
    # only the 5 most frequent rows may answer
    assert all(planted.key_to_index[w] < 5 for w, _ in planted.most_similar("apple", restrict_vocab=5))
    scores = planted.most_similar("apple", topn=None)
    assert scores.shape == (8,) and scores[5] == pytest.approx(1.0)
    by_vector = planted.similar_by_vector(np.array(PLANTED["red"]), topn=1)
    assert by_vector[0][0] == "red" and by_vector[0][1] == pytest.approx(1.0)
    assert planted.similar_by_word("red", topn=1)[0][0] != "red"
    assert len(planted.most_similar("king", topn=100)) == 7
    weighted = planted.most_similar(positive=[("apple", 1.0), ("red", 3.0)], topn=1)
    assert weighted[0][0] == "banana"
    with pytest.raises(RnnlabError, match="at least one"):
        planted.most_similar()


def test_doesnt_match(planted):
    assert planted.doesnt_match(["king", "queen", "man", "apple"]) == "apple"
    with pytest.raises(RnnlabError):
        planted.doesnt_match(["king"])


def test_pca_recovers_a_line():
    t = np.linspace(-1, 1, 5)
    wv = WordVectors(list("abcde"), np.outer(t, [3.0, 4.0, 0.0]))
    coords, share = wv.pca(list("abcde"), normalize=False)
    assert share[0] == pytest.approx(1.0) and share[1] == pytest.approx(0.0, abs=1e-12)
    np.testing.assert_allclose(np.abs(coords[:, 0]), 5 * np.abs(t), atol=1e-12)
    coords, _ = wv.pca(list("abcde"))  # unit vectors: -u, -u, 0, u, u
    np.testing.assert_allclose(np.abs(coords[:, 0]), [1, 1, 0, 1, 1], atol=1e-12)


def test_agrees_with_gensim_keyedvectors():
    models = pytest.importorskip("gensim.models")
    rng = np.random.default_rng(1)
    words = [f"w{i}" for i in range(300)]
    vectors = rng.standard_normal((300, 20)).astype(np.float32)
    ours = WordVectors(words, vectors)
    kv = models.KeyedVectors(20)
    kv.add_vectors(words, vectors)
    for query in [dict(positive=["w3"]), dict(positive=["w1", "w2"], negative=["w7"], restrict_vocab=100)]:
        mine, theirs = ours.most_similar(**query, topn=10), kv.most_similar(**query, topn=10)
        assert [w for w, _ in mine] == [w for w, _ in theirs]
        np.testing.assert_allclose([s for _, s in mine], [s for _, s in theirs], atol=1e-6)
    assert ours.similarity("w4", "w9") == pytest.approx(float(kv.similarity("w4", "w9")), abs=1e-6)
    assert ours.doesnt_match(words[:12]) == kv.doesnt_match(words[:12])


def test_cli_similar_and_analogy(tmp_path, planted, capsys):
    planted.save(tmp_path / "v.bin")
    assert main(["similar", str(tmp_path / "v.bin"), "apple", "--topn", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and lines[0].split()[0] == "banana"
    assert main(["analogy", str(tmp_path / "v.bin"), "man", "king", "woman", "--topn", "3"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "man : king = woman : ?" and out[1].split()[0] == "queen" and len(out) == 4
    assert main(["similar", str(tmp_path / "v.bin"), "Apple"]) == 2
    err = capsys.readouterr().err
    assert "'Apple' is not in the vocabulary" in err and err.count("\n") == 1


def test_non_finite_rows_built_in_python_never_rank_and_cannot_be_queried():
    v = np.array([[1, 0], [np.nan, 1], [0.9, 0.1], [np.inf, 0], [0.5, 0.5]], np.float32)
    wv = WordVectors(list("abcde"), v)
    with np.errstate(invalid="ignore"):  # inf / inf while normalising the "d" row
        assert [w for w, _ in wv.most_similar("a", topn=4)] == ["c", "e"]
        assert len(wv.most_similar("a", topn=None)) == 5  # raw cosines, NaN included, as asked
        for query in ("b", "d", [np.array([np.nan, 1.0])]):
            with pytest.raises(RnnlabError, match="NaN or infinite"):
                wv.most_similar(query)
