"""Word2Vec training on tiny corpora with planted structure; tables, files and the CLI."""

import gzip
import json
import sys

import numpy as np
import pytest

from rnnlab.cli import main
from rnnlab.errors import RnnlabError
from rnnlab.word2vec import Word2Vec, WordVectors
from rnnlab.word2vec.huffman import huffman_codes
from rnnlab.word2vec.train import (
    alias_probabilities,
    alias_table,
    keep_probabilities,
    noise_distribution,
)

GENDER = {"m": ["he", "his", "him", "sir"], "f": ["she", "her", "hers", "madam"]}
ROLE = {"royal": ["crown", "throne", "palace", "reign"], "common": ["street", "work", "house", "job"]}
PERSON = {("m", "royal"): "king", ("f", "royal"): "queen", ("m", "common"): "man",
          ("f", "common"): "woman"}


def planted_corpus(n: int = 1500, seed: int = 0) -> list[list[str]]:
    """Sentences of one person word with two gender and two role context words, shuffled."""
    rng = np.random.default_rng(seed)
    sentences = []
    for _ in range(n):
        (gender, role), person = list(PERSON.items())[rng.integers(4)]
        words = [person, *rng.choice(GENDER[gender], 2), *rng.choice(ROLE[role], 2)]
        sentences.append([str(w) for w in rng.permutation(words)])
    return sentences


def topic_corpus(n: int = 800, seed: int = 0) -> list[list[str]]:
    """cat/dog share contexts (pets), car/truck share others (roads); never mixed."""
    rng = np.random.default_rng(seed)
    topics = [(["cat", "dog"], ["eats", "food", "pet", "fur", "vet"]),
              (["car", "truck"], ["drives", "road", "fuel", "wheel", "garage"])]
    sentences = []
    for _ in range(n):
        subjects, contexts = topics[rng.integers(2)]
        sentences.append([str(rng.choice(subjects)), *map(str, rng.choice(contexts, 4))])
    return sentences


SMALL = dict(vector_size=16, window=3, min_count=1, sample=0, epochs=8, workers=1)


# -- the sampling tables ---------------------------------------------------------------------


def test_keep_probabilities_follow_word2vec_c():
    counts = np.array([100_000, 5_000, 50, 1])
    t = 1e-3 * counts.sum()
    expected = np.minimum(1, (np.sqrt(counts / t) + 1) * t / counts)
    np.testing.assert_allclose(keep_probabilities(counts, 1e-3), expected, rtol=1e-6)
    assert keep_probabilities(counts, 1e-3)[0] == pytest.approx(0.03346, abs=1e-5)
    assert keep_probabilities(counts, 1e-3)[2:].tolist() == [1.0, 1.0]
    assert keep_probabilities(counts, 0).tolist() == [1.0] * 4


def test_noise_table_is_unigram_to_the_three_quarters():
    counts = np.array([1000, 300, 300, 20, 5, 1])
    p = noise_distribution(counts)
    np.testing.assert_allclose(p / p[-1], counts**0.75)
    prob, alias = alias_table(p)
    np.testing.assert_allclose(alias_probabilities(prob, alias), p, atol=1e-7)


def test_a_literal_unk_token_keeps_its_own_count():
    corpus = [["<unk>", "a", "a", "b", "rare1"], ["<unk>", "a", "a", "b", "rare2", "rare3"]]
    model = Word2Vec(min_count=2)
    model.build_vocab(corpus)
    assert dict(zip(model.vocab.itos, model.vocab.counts.tolist())) == {"a": 4, "<unk>": 2, "b": 2}


def test_huffman_codes_are_prefix_free_and_shorter_for_frequent_words():
    counts = np.array([900, 400, 400, 120, 60, 33, 9, 8, 2, 1, 1])
    codes, points, lengths = huffman_codes(counts)
    words = ["".join(map(str, codes[w, : lengths[w]])) for w in range(len(counts))]
    assert len(set(words)) == len(words)
    assert not any(a != b and b.startswith(a) for a in words for b in words)
    assert sum(2.0 ** -len(w) for w in words) == pytest.approx(1.0)  # a full binary tree
    for a in range(len(counts)):
        for b in range(len(counts)):
            if counts[a] > counts[b]:
                assert lengths[a] <= lengths[b]
    assert lengths[0] < lengths[-1]
    assert (points[:, 0] == len(counts) - 2).all()  # every path starts at the root
    for w in range(len(counts)):
        assert 0 <= points[w, : lengths[w]].min() and points[w, : lengths[w]].max() <= len(counts) - 2


def test_huffman_of_one_word_is_empty():
    codes, points, lengths = huffman_codes(np.array([5]))
    assert lengths.tolist() == [0]


# -- what training learns --------------------------------------------------------------------


@pytest.mark.parametrize("sg,hs,negative", [(True, False, 5), (False, False, 5), (True, True, 0),
                                            (False, True, 0)])
def test_words_sharing_contexts_end_up_nearer(sg, hs, negative):
    model = Word2Vec(topic_corpus(), sg=sg, hs=hs, negative=negative, seed=3, **SMALL)
    wv = model.wv
    assert wv.similarity("cat", "dog") > max(wv.similarity("cat", w) for w in ("car", "truck")) + 0.1
    assert wv.similarity("car", "truck") > max(wv.similarity("car", w) for w in ("cat", "dog")) + 0.1
    losses = [r["loss"] for r in model.loss_history]
    assert len(losses) == 8 and losses[-1] < losses[0]


def test_planted_analogy_is_recovered():
    model = Word2Vec(planted_corpus(), vector_size=20, window=5, min_count=1, sample=0, epochs=10,
                     workers=1, seed=1)
    answers = model.wv.analogy("man", "king", "woman", topn=3)
    assert answers[0][0] == "queen"
    assert model.wv.analogy("king", "queen", "man")[0][0] == "woman"


def test_fixed_seed_with_one_worker_is_bit_identical():
    corpus = topic_corpus(300)
    a = Word2Vec(corpus, seed=7, **SMALL)
    b = Word2Vec(corpus, seed=7, **SMALL)
    c = Word2Vec(corpus, seed=8, **SMALL)
    assert np.array_equal(a.w_in, b.w_in) and np.array_equal(a.w_out, b.w_out)
    assert a.loss_history[-1]["loss"] == b.loss_history[-1]["loss"]
    assert not np.array_equal(a.w_in, c.w_in)


def test_two_workers_train_too():
    model = Word2Vec(topic_corpus(), seed=3, **{**SMALL, "workers": 2})
    assert np.isfinite(model.w_in).all()
    assert model.wv.similarity("cat", "dog") > model.wv.similarity("cat", "car")


def test_subsampling_keeps_words_with_the_formula_probability():
    corpus = [["the", "the", "the", "a", "b"]] * 2000
    model = Word2Vec(vector_size=4, min_count=1, sample=1e-2, epochs=1, workers=1, window=1)
    model.build_vocab(corpus)
    model.train(corpus)
    # Skip-gram with window 1 makes 2 (n - 1) examples from a sentence of n kept words.
    keep = keep_probabilities(model.vocab.counts, 1e-2)
    p_the, p_a, p_b = (keep[model.vocab[w]] for w in ("the", "a", "b"))
    kept = 3 * p_the + p_a + p_b
    some = 1 - (1 - p_the) ** 3 * (1 - p_a) * (1 - p_b)
    expected = len(corpus) * 2 * (kept - some)
    assert p_the < 0.2 and model.loss_history[-1]["examples"] == pytest.approx(expected, rel=0.08)
    model.sample = 0
    model.train(corpus, epochs=1)
    assert model.loss_history[-1]["examples"] == len(corpus) * 8


def test_defaults_are_word2vec_c_and_gensim():
    m = Word2Vec()
    assert (m.vector_size, m.window, m.negative, m.min_count, m.sample, m.epochs, m.sg, m.hs) == (
        100, 5, 5, 5, 1e-3, 5, True, False)
    assert m.alpha == 0.025 and Word2Vec(sg=False).alpha == 0.05 and m.min_alpha == 1e-4


def test_bad_settings_and_inputs_are_user_errors():
    with pytest.raises(RnnlabError, match="negative"):
        Word2Vec(negative=0, hs=False)
    with pytest.raises(RnnlabError, match="re-iterable"):
        Word2Vec(iter(topic_corpus(10)), min_count=1)
    with pytest.raises(RnnlabError, match="list of tokens"):
        Word2Vec(["a sentence as a string"], min_count=1)
    with pytest.raises(RnnlabError, match="min_count"):
        Word2Vec([["a", "b"]], min_count=5)
    with pytest.raises(RnnlabError, match="two words"):
        Word2Vec([["a", "a"]], min_count=1)
    with pytest.raises(RnnlabError, match="build_vocab"):
        Word2Vec().train([["a"]])


# -- files: the model folder and continued training -----------------------------------------


@pytest.mark.parametrize("hs,negative", [(False, 5), (True, 0), (True, 3)])
def test_model_folder_round_trips(tmp_path, hs, negative):
    model = Word2Vec(topic_corpus(200), hs=hs, negative=negative, seed=2, **SMALL)
    model.save(tmp_path / "model")
    names = sorted(p.name for p in (tmp_path / "model").iterdir())
    assert names == ["config.json", "vectors.safetensors", "vocab.json"]
    back = Word2Vec.load(tmp_path / "model")
    assert back.settings() == model.settings()
    assert back.vocab == model.vocab and back.epochs_trained == model.epochs_trained
    for name in ("w_in", "w_out", "w_hs"):
        assert np.array_equal(getattr(back, name), getattr(model, name))
    assert back.loss_history == model.loss_history
    wv = WordVectors.load(tmp_path / "model")  # the folder is a vectors folder as well
    assert np.array_equal(wv.vectors, model.w_in) and wv.index_to_key == model.vocab.itos


def test_training_continues_on_more_text_with_new_words(tmp_path):
    model = Word2Vec(topic_corpus(300), seed=2, **{**SMALL, "min_count": 2})
    model.save(tmp_path / "model")
    model = Word2Vec.load(tmp_path / "model")
    old_rows = model.w_in.copy()
    more = [["cat", "chases", "mouse", "pet"]] * 30 + [["rare", "word"]]
    model.build_vocab(more, update=True)
    assert "mouse" in model.wv and "chases" in model.wv and "rare" not in model.wv
    assert np.array_equal(model.w_in[: len(old_rows)], old_rows)
    assert model.vocab.counts[model.vocab["cat"]] > 30 and model.vocab.counts[model.vocab["mouse"]] == 30
    before = model.wv.similarity("cat", "mouse")
    model.train(more)
    assert model.epochs_trained == 16 and len(model.loss_history) == 16
    assert model.wv.similarity("cat", "mouse") > before


def test_load_rejects_foreign_folders(tmp_path):
    with pytest.raises(RnnlabError, match="not a word2vec model folder"):
        Word2Vec.load(tmp_path)
    (tmp_path / "config.json").write_text('{"format": "rnnlab-word2vec", "version": 99}')
    with pytest.raises(RnnlabError, match="version"):
        Word2Vec.load(tmp_path)


# -- the command line --------------------------------------------------------------------------


@pytest.fixture
def corpus_file(tmp_path):
    path = tmp_path / "corpus.txt.gz"
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.writelines(" ".join(s) + "\n" for s in topic_corpus(300))
    return path


@pytest.mark.parametrize("out", ["v.bin", "v.txt", "model"])
def test_cli_writes_bin_txt_and_model_folder(tmp_path, corpus_file, capsys, out):
    args = ["embed", str(corpus_file), "-o", str(tmp_path / out), "--size", "12", "--min-count", "1",
            "--epochs", "2", "--threads", "1", "--no-progress"]
    assert main(args) == 0
    lines = capsys.readouterr().out.splitlines()
    records = [json.loads(line) for line in lines[:2]]
    assert [r["epoch"] for r in records] == [1, 2] and all(r["loss"] > 0 for r in records)
    wv = WordVectors.load(tmp_path / out)
    assert wv.vector_size == 12 and "truck" in wv
    if out == "model":
        assert main(["embed", str(corpus_file), "-o", str(tmp_path / "model2"), "--init",
                     str(tmp_path / "model"), "--epochs", "1", "--quiet"]) == 0
        assert Word2Vec.load(tmp_path / "model2").epochs_trained == 3


def test_corpus_file_trains_like_the_same_sentences(corpus_file):
    settings = {**SMALL, "epochs": 2}
    from_file = Word2Vec(corpus_file=corpus_file, **settings)
    from_list = Word2Vec(topic_corpus(300), **settings)
    assert from_file.vocab == from_list.vocab and np.array_equal(from_file.w_in, from_list.w_in)


def test_cli_reports_user_errors(tmp_path, capsys):
    assert main(["embed", str(tmp_path / "missing.txt"), "-o", str(tmp_path / "v.bin")]) == 2
    assert "rnnlab embed: error:" in capsys.readouterr().err


EMBED_TINY = ["--size", "8", "--min-count", "1", "--epochs", "1", "--threads", "1", "--quiet"]


def test_cli_level_segmented_keeps_words_exactly_and_word_lowercases(tmp_path):
    path = tmp_path / "seg.txt"
    path.write_text("我 爱 北京 OK\n北京 是 首都 OK\n" * 5, encoding="utf-8")
    assert main(["embed", str(path), "-o", str(tmp_path / "seg_vectors.txt"), "--level", "segmented",
                 "--lower", *EMBED_TINY]) == 0
    assert set(WordVectors.load(tmp_path / "seg_vectors.txt").index_to_key) == {
        "我", "爱", "北京", "是", "首都", "OK"}
    assert main(["embed", str(path), "-o", str(tmp_path / "word.txt"), "--lower", *EMBED_TINY]) == 0
    words = WordVectors.load(tmp_path / "word.txt").index_to_key
    assert "ok" in words and "OK" not in words


def test_cli_level_jieba_segments_raw_chinese(tmp_path, fake_jieba):
    fake_jieba({"北京", "首都"})
    path = tmp_path / "raw.txt"
    path.write_text("我爱北京\n北京是首都\n" * 5, encoding="utf-8")
    assert main(["embed", str(path), "-o", str(tmp_path / "v.txt"), "--level", "jieba", *EMBED_TINY]) == 0
    assert set(WordVectors.load(tmp_path / "v.txt").index_to_key) == {"我", "爱", "北京", "是", "首都"}


def test_cli_level_jieba_without_jieba_is_one_clear_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "jieba", None)
    path = tmp_path / "raw.txt"
    path.write_text("我爱北京\n", encoding="utf-8")
    assert main(["embed", str(path), "-o", str(tmp_path / "v.txt"), "--level", "jieba", *EMBED_TINY]) == 2
    assert "pip install 'rnnlab[chinese]'" in capsys.readouterr().err


# -- from a token store ------------------------------------------------------------------------


def write_corpus(path, sentences) -> None:
    path.write_text("".join(" ".join(s) + "\n" for s in sentences) + "\n  \n", encoding="utf-8")


@pytest.fixture
def texts(tmp_path):
    """A corpus with rare words (cut by min_count) and a line of 60 words, and its stores."""
    from rnnlab.text.pipeline import TextPipeline
    from rnnlab.text.store import prepare_store

    sentences = topic_corpus(400) + [["zebra", "once"], ["cat"] * 60, ["yak"]] + topic_corpus(200, seed=1)
    write_corpus(tmp_path / "c.txt", sentences)
    for mode in ("stream", "sentence"):
        prepare_store(tmp_path / "c.txt", tmp_path / mode, TextPipeline("word", mode), workers=1)
    return tmp_path


@pytest.mark.parametrize("mode", ["stream", "sentence"])
@pytest.mark.parametrize("sg,hs,negative", [(True, False, 5), (False, True, 0)])
def test_a_store_trains_the_vectors_its_text_trains(texts, monkeypatch, mode, sg, hs, negative):
    from rnnlab.word2vec import store_jobs, train

    # Many jobs and many small reads, so that jobs run across the blocks read.
    monkeypatch.setattr(train, "JOB_WORDS", 97)
    monkeypatch.setattr(store_jobs, "READ_TOKENS", 50)
    monkeypatch.setattr(store_jobs, "LINE_BLOCK", 7)
    settings = dict(SMALL, epochs=2, min_count=2, sample=1e-2, sg=sg, hs=hs, negative=negative, seed=4)
    seen = {"text": [], "store": []}
    text = Word2Vec(**settings)
    text.build_vocab(corpus_file=texts / "c.txt")
    text.train(corpus_file=texts / "c.txt", progress=lambda *a: seen["text"].append(a[:2]))
    store = Word2Vec(**settings)
    store.build_vocab(corpus_file=texts / mode)
    store.train(corpus_file=texts / mode, progress=lambda *a: seen["store"].append(a[:2]))
    assert store.vocab == text.vocab and "zebra" not in store.vocab and len(store.vocab) == 14
    assert store.vocab.counts.tolist() == text.vocab.counts.tolist()
    assert np.array_equal(store.w_in, text.w_in) and np.array_equal(store.w_out, text.w_out)
    assert np.array_equal(store.w_hs, text.w_hs)
    assert store.loss_history[-1]["loss"] == text.loss_history[-1]["loss"]
    assert seen["store"] == seen["text"] and seen["store"][-1] == (2 * 3063, 2 * 3063)
    assert store.loss_history[-1]["words"] == 3063


def test_a_store_is_cut_into_the_jobs_of_its_text(texts, monkeypatch):
    """Every job, at every job size and sentence length (a long line comes in pieces)."""
    from rnnlab.text.corpus import Corpus
    from rnnlab.text.store import TokenStore
    from rnnlab.word2vec import store_jobs, train

    model = Word2Vec(min_count=3, max_vocab_size=9)
    model.build_vocab(corpus_file=texts / "c.txt")
    for mode in ("stream", "sentence"):
        store = TokenStore(texts / mode)
        for max_sentence in (1, 7, 10_000):
            for job_words in (1, 10, 333, 10**6):
                monkeypatch.setattr(train, "JOB_WORDS", job_words)
                sentences = Corpus(texts / "c.txt", max_sentence_length=max_sentence)
                text = train._ArrayJobs(*model.encode(sentences))
                disk = store_jobs.StoreJobs(store, model.vocab, job_words, max_sentence)
                assert (disk.total, disk.raw) == (text.total, text.raw)
                a, b = list(text), list(disk)
                assert len(a) == len(b) <= -(-text.total // job_words)
                for (ids, starts, s0, s1, p), (ids2, starts2, t0, t1, p2) in zip(a, b):
                    assert p == p2
                    assert np.array_equal(starts[s0:s1 + 1] - starts[s0], starts2[t0:t1 + 1] - starts2[t0])
                    assert np.array_equal(ids[starts[s0]:starts[s1]], ids2[starts2[t0]:starts2[t1]])


def test_a_store_is_read_in_blocks_never_whole(texts, monkeypatch):
    from rnnlab.text.store import TokenStore
    from rnnlab.word2vec import store_jobs

    monkeypatch.setattr(store_jobs, "READ_TOKENS", 64)
    reads = []
    ids = TokenStore.ids

    def recorded(self, start=0, stop=None, limit=None):
        reads.append(stop - start)
        return ids(self, start, stop, limit)

    monkeypatch.setattr(TokenStore, "ids", recorded)
    model = Word2Vec(corpus_file=texts / "stream", **{**SMALL, "epochs": 2})
    assert max(reads) <= 64 and sum(reads) > 2 * 3063  # every word read, a block at a time
    assert model.wv.similarity("cat", "dog") > model.wv.similarity("cat", "car")


def test_a_model_goes_on_training_from_a_store_as_from_its_text(texts, tmp_path):
    Word2Vec(topic_corpus(100), **SMALL).save(tmp_path / "model")
    more = [["cat", "chases", "mouse"]] * 20 + topic_corpus(50)
    write_corpus(tmp_path / "more.txt", more)
    from rnnlab.text.store import prepare_store

    prepare_store(tmp_path / "more.txt", tmp_path / "more", workers=1)
    models = []
    for corpus in (tmp_path / "more.txt", tmp_path / "more"):
        model = Word2Vec.load(tmp_path / "model")
        model.build_vocab(corpus_file=corpus, update=True)
        model.train(corpus_file=corpus)
        models.append(model)
    text, store = models
    assert store.vocab == text.vocab and "mouse" in store.vocab
    assert store.vocab.counts[store.vocab["mouse"]] == 20
    assert np.array_equal(store.w_in, text.w_in) and store.epochs_trained == 16


def test_two_workers_train_from_a_store(texts):
    model = Word2Vec(corpus_file=texts / "stream", seed=3, **{**SMALL, "workers": 2})
    assert np.isfinite(model.w_in).all() and model.epochs_trained == 8
    assert model.wv.similarity("cat", "dog") > model.wv.similarity("cat", "car")


def test_cli_embeds_a_store_in_its_own_level_and_case(tmp_path, capsys):
    write_corpus(tmp_path / "c.txt", [["The", "Cat", "sat"], ["the", "cat", "ran"]] * 5)
    assert main(["prepare", str(tmp_path / "c.txt"), "--lower", "-o", str(tmp_path / "lower"),
                 "--quiet"]) == 0
    assert main(["embed", str(tmp_path / "lower"), "-o", str(tmp_path / "v.txt"), *EMBED_TINY]) == 0
    assert sorted(WordVectors.load(tmp_path / "v.txt").index_to_key) == ["cat", "ran", "sat", "the"]
    assert main(["embed", str(tmp_path / "lower"), "-o", str(tmp_path / "w.txt"), "--lower",
                 "--level", "word", *EMBED_TINY]) == 0
    assert capsys.readouterr().err == ""
