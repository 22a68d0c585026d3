"""Analogy accuracy and similarity correlation on tiny files with known answers; CLI commands."""

import numpy as np
import pytest

from rnnlab.cli import main
from rnnlab.cli import vectors as cli_vectors
from rnnlab.errors import RnnlabError
from rnnlab.word2vec import WordVectors
from rnnlab.word2vec.evaluate import (
    evaluate_analogies,
    evaluate_similarity,
    pearson,
    rank_average,
    spearman,
)


def planted_vectors():
    """Capitals = country + (capital - country) offset; king/queen on a royal/gender plane."""
    e = np.eye(9)
    country, capital = e[3], e[4]
    rows = {
        "france": e[0] + country, "paris": e[0] + capital,
        "germany": e[1] + country, "berlin": e[1] + capital,
        "italy": e[2] + country, "rome": e[2] + capital,
        "king": e[5] + e[6] + e[8], "queen": e[5] + e[7] + e[8],
        "man": e[6] + e[8], "woman": e[7] + e[8],
    }  # fmt: skip
    return WordVectors(list(rows), np.array(list(rows.values())))


ANALOGIES = """\
: capital-common-countries
France Paris Germany Berlin
france paris italy rome
germany berlin france paris
france paris germany rome
france paris spain madrid
: family
man king woman queen
king man queen woman
man woman king prince
"""


@pytest.fixture
def files(tmp_path):
    (tmp_path / "q.txt").write_text(ANALOGIES)
    return tmp_path


def test_analogies_per_section_total_and_oov(files):
    r = evaluate_analogies(planted_vectors(), files / "q.txt")
    assert [(s.name, s.correct, s.total) for s in r.sections] == [
        ("capital-common-countries", 3, 4),  # 'rome' for germany is wrong; spain/madrid unknown
        ("family", 2, 2),  # 'prince' is unknown
    ]
    assert (r.correct, r.total, r.questions, r.oov) == (5, 6, 8, 2)
    assert r.accuracy == pytest.approx(5 / 6) and r.oov_share == pytest.approx(2 / 8)
    assert "total" in r.summary() and "2/8" in r.summary()


def test_case_and_restrict_vocab(files):
    wv = planted_vectors()
    r = evaluate_analogies(wv, files / "q.txt", case_insensitive=False)
    assert r.sections[0].total == 3  # "France Paris Germany Berlin" is now unknown
    r = evaluate_analogies(wv, files / "q.txt", restrict_vocab=6)  # no king, queen, man, woman
    assert (r.sections[1].total, r.oov) == (0, 4)  # spain/madrid and the three family questions
    assert np.isnan(r.sections[1].accuracy)


def test_batches_do_not_change_the_answer(files):
    wv = planted_vectors()
    one = evaluate_analogies(wv, files / "q.txt", batch_size=1)
    assert one.sections == evaluate_analogies(wv, files / "q.txt").sections


def test_analogies_agree_with_gensim_including_case_variants(tmp_path):
    models = pytest.importorskip("gensim.models")
    rng = np.random.default_rng(3)
    words = [f"w{i}" for i in range(40)]
    vectors = rng.standard_normal((40, 4)).astype(np.float32)
    # Upper-case variants close to their word: gensim never answers with a spelling of an input.
    variants = [f"W{i}" for i in range(0, 40, 3)]
    vectors = np.vstack([vectors, vectors[::3] + 0.05 * rng.standard_normal((len(variants), 4))])
    words += variants
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    lines = []
    for section in ("one", "two"):
        lines.append(f": {section}")
        for k in range(120):
            a, b, c = rng.choice(40, 3, replace=False)
            scores = unit @ (unit[b] - unit[a] + unit[c])
            scores[[a, b, c]] = -np.inf
            d = int(np.argmax(scores)) % 40 if k % 2 else rng.integers(40)
            lines.append(" ".join(f"w{i}" for i in (a, b, c, d)))
    (tmp_path / "q.txt").write_text("\n".join(lines) + "\n")
    kv = models.KeyedVectors(4)
    kv.add_vectors(words, vectors)
    ours = WordVectors(words, vectors)
    for restrict in (52, 30):
        _, sections = kv.evaluate_word_analogies(str(tmp_path / "q.txt"), restrict_vocab=restrict)
        result = evaluate_analogies(ours, tmp_path / "q.txt", restrict_vocab=restrict)
        theirs = [(s["section"], len(s["correct"]), len(s["correct"] + s["incorrect"])) for s in sections]
        assert [(s.name, s.correct, s.total) for s in result.sections] == theirs[:-1]
        assert result.correct > 0


def test_bad_analogy_files(tmp_path):
    wv = planted_vectors()
    (tmp_path / "a.txt").write_text("man king woman queen\n")
    with pytest.raises(RnnlabError, match="line 1: question before the first"):
        evaluate_analogies(wv, tmp_path / "a.txt")
    (tmp_path / "b.txt").write_text(": s\nman king woman\n")
    with pytest.raises(RnnlabError, match="line 2: expected 4 words"):
        evaluate_analogies(wv, tmp_path / "b.txt")


def test_rank_average_and_spearman_by_hand():
    assert rank_average([10, 30, 20, 20]).tolist() == [1.0, 4.0, 2.5, 2.5]
    assert rank_average([5, 5, 5]).tolist() == [2.0, 2.0, 2.0]
    # x ranks 1..5; y = [5, 6, 7, 8, 7] ranks [1, 2, 3.5, 5, 3.5]. Centred: dx = [-2, -1, 0, 1, 2],
    # dy = [-2, -1, .5, 2, .5]; sum dx*dy = 8, sum dx^2 = 10, sum dy^2 = 9.5; rho = 8 / sqrt(95).
    assert spearman([1, 2, 3, 4, 5], [5, 6, 7, 8, 7]) == pytest.approx(8 / np.sqrt(95))
    assert pearson([1, 2, 3], [2, 4, 6]) == pytest.approx(1.0)
    assert np.isnan(pearson([1, 1, 1], [1, 2, 3]))


def test_spearman_matches_scipy_with_ties():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 6, 50), rng.integers(0, 4, 50) + 0.1 * rng.integers(0, 6, 50)
    assert spearman(x, y) == pytest.approx(stats.spearmanr(x, y).statistic, abs=1e-12)
    assert pearson(x, y) == pytest.approx(stats.pearsonr(x, y).statistic, abs=1e-12)


PAIRS = """\
# Word 1\tWord 2\tHuman (mean)
king\tqueen\t8.0
King\tman\t6.0
paris\tberlin\t9.0
king\tparis\t1.0
man\tprince\t5.0
"""


def test_similarity_known_answer(tmp_path):
    (tmp_path / "pairs.tsv").write_text(PAIRS)
    wv = planted_vectors()
    r = evaluate_similarity(wv, tmp_path / "pairs.tsv")
    # cosines: king-queen 2/3, king-man 2/sqrt(6) = .816, paris-berlin 1/2, king-paris 0.
    # human ranks [3, 2, 4, 1], model ranks [3, 4, 2, 1]: d = [0, -2, 2, 0];
    # rho = 1 - 6 * 8 / (4 * 15) = 0.2.
    assert r.spearman == pytest.approx(0.2)
    model = [2 / 3, 2 / np.sqrt(6), 0.5, 0.0]
    assert r.pearson == pytest.approx(np.corrcoef([8, 6, 9, 1], model)[0, 1], rel=1e-6)
    assert (r.pairs, r.oov) == (4, 1) and r.oov_share == pytest.approx(0.2)
    assert evaluate_similarity(wv, tmp_path / "pairs.tsv", case_insensitive=False).pairs == 3
    (tmp_path / "bad.txt").write_text("king queen x\n")
    with pytest.raises(RnnlabError, match="line 1"):
        evaluate_similarity(wv, tmp_path / "bad.txt")
    (tmp_path / "none.txt").write_text("a\tb\t1\nc\td\t2\n")
    with pytest.raises(RnnlabError, match="fewer than two pairs"):
        evaluate_similarity(wv, tmp_path / "none.txt")


def test_cli_vectors_eval(files, capsys, monkeypatch):
    (files / "pairs.tsv").write_text(PAIRS)
    planted_vectors().save(files / "v.txt")
    args = ["vectors-eval", str(files / "v.txt"), "--analogies", str(files / "q.txt")]
    assert main([*args, "--similarity", str(files / "pairs.tsv"), str(files / "pairs.tsv")]) == 0
    out = capsys.readouterr().out
    assert "5/6" in out and out.count("spearman 0.2000") == 2
    # without flags: gensim's bundled sets (here swapped for the tiny files)
    monkeypatch.setattr(cli_vectors, "gensim_test_file", lambda name: files / {
        "questions-words.txt": "q.txt", "wordsim353.tsv": "pairs.tsv"}[name])
    assert main(["vectors-eval", str(files / "v.txt")]) == 0
    out = capsys.readouterr().out
    assert "5/6" in out and "spearman 0.2000" in out
    monkeypatch.setattr(cli_vectors, "gensim_test_file", lambda name: None)
    assert main(["vectors-eval", str(files / "v.txt")]) == 2
    assert "pass --analogies" in capsys.readouterr().err


def test_gensim_ships_the_default_sets():
    pytest.importorskip("gensim")
    assert cli_vectors.gensim_test_file("questions-words.txt").stat().st_size > 500_000
    assert cli_vectors.gensim_test_file("wordsim353.tsv") is not None


def test_cli_vectors_plot(tmp_path, capsys):
    planted_vectors().save(tmp_path / "v.bin")
    out = tmp_path / "map.png"
    args = ["vectors-plot", str(tmp_path / "v.bin"), "king", "queen", "man", "woman", "-o", str(out)]
    assert main(args) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["vectors-plot", str(tmp_path / "v.bin"), "king", "-o", str(out), "--overwrite"]) == 2
    assert "at least two words" in capsys.readouterr().err
