"""Chinese text end to end: characters outside the BMP, UTF-8 files, word vectors, the CLI."""

import os
import subprocess
import sys

import numpy as np
import pytest

from rnnlab.cli import main
from rnnlab.text import corpus
from rnnlab.text.corpus import Corpus
from rnnlab.text.tokenize import get_tokenizer
from rnnlab.text.vocab import Vocabulary
from rnnlab.text.width import display_width
from rnnlab.word2vec.vectors import WordVectors

# Han, Latin, digits, full-width punctuation, an ideographic space, U+20000 (a CJK Extension B
# character, 4 bytes in UTF-8, a surrogate pair in UTF-16) and an emoji.
MIXED = "床前明月光，hello world 2024年！\u3000𠀀字😀 ok."

# Planted geometry: axis 0 royalty, 1 gender, 2 city, 3 country, 4 China vs Japan.
PLANTED = {
    "国王": [1, 1, 0, 0, 0],
    "王后": [1, -1, 0, 0, 0],
    "男人": [0, 1, 0, 0, 0],
    "女人": [0, -1, 0, 0, 0],
    "北京": [0, 0, 1, 0, 1],
    "东京": [0, 0, 1, 0, -1],
    "中国": [0, 0, 0, 1, 1],
    "日本": [0, 0, 0, 1, -1],
    "𠀀字": [0.1, 0, 0, 0, 0.9],
    "apple": [0, 0, 0.1, 0.1, 0],
}


@pytest.fixture
def vectors():
    words = list(PLANTED)
    rng = np.random.default_rng(0)
    # A little noise so that no two cosines tie.
    matrix = np.array([PLANTED[w] for w in words], dtype=np.float32) + 0.01 * rng.normal(size=(10, 5))
    return WordVectors(words, matrix.astype(np.float32))


def clean_env(**settings):
    """This environment without locale and Python encoding settings, plus `settings`."""
    unset = ("LANG", "LC_", "PYTHONIOENCODING", "PYTHONUTF8")
    env = {k: v for k, v in os.environ.items() if not k.startswith(unset)}
    return env | settings


def run_cli(*args, env):
    return subprocess.run([sys.executable, "-m", "rnnlab", *args], capture_output=True, env=env, timeout=120)


def test_chars_are_code_points_and_join_back():
    tokens = get_tokenizer("char")(MIXED)
    assert "".join(tokens) == MIXED
    assert len(tokens) == 32 and all(len(t) == 1 for t in tokens)
    assert "𠀀" in tokens and "😀" in tokens and "\u3000" in tokens


def test_word_levels_on_mixed_text():
    assert get_tokenizer("segmented")("我 爱 NLP ， 😀 𠀀字") == ["我", "爱", "NLP", "，", "😀", "𠀀字"]
    # Han characters are letters to the word tokenizer; the ideographic space separates words.
    assert get_tokenizer("word", lower=True, split_punct=True)(MIXED) == [
        "床前明月光", "，", "hello", "world", "2024年", "！", "𠀀字", "😀", "ok", ".",
    ]


def test_corpus_reads_4_byte_characters_across_chunk_boundaries(tmp_path, monkeypatch):
    path = tmp_path / "mixed.txt"
    path.write_text(f"{MIXED}\n{MIXED[::-1]}\n", encoding="utf-8")
    # 3-byte chunks cut every 4-byte character (𠀀, 😀) and most 3-byte Han characters apart.
    monkeypatch.setattr(corpus, "CHUNK_BYTES", 3)
    lines = list(Corpus(path, level="char", by_line=False))
    assert "".join(lines[0]) == f"{MIXED}\n{MIXED[::-1]}\n"


def test_vocabulary_files_hold_utf8_not_escapes(tmp_path):
    vocab = Vocabulary.build([get_tokenizer("char")(MIXED), list("床前𠀀😀")])
    for name in ("vocab.json", "vocab.txt"):
        vocab.save(tmp_path / name)
        data = (tmp_path / name).read_bytes()
        assert "床".encode() in data and "𠀀".encode() in data and "😀".encode() in data
        assert b"\\u" not in data
        assert Vocabulary.load(tmp_path / name) == vocab
    assert vocab.counts[vocab["床"]] == 2 and vocab.counts[vocab["𠀀"]] == 2


def test_neighbours_and_analogies_answer_in_chinese(vectors):
    assert vectors.most_similar("北京", topn=1)[0][0] == "𠀀字"
    assert vectors.analogy("男人", "国王", "女人")[0][0] == "王后"
    assert vectors.analogy("中国", "北京", "日本")[0][0] == "东京"


@pytest.mark.parametrize("name", ["v.txt", "v.bin", "v.txt.gz", "model"])
def test_vector_files_round_trip_chinese_words(tmp_path, vectors, name):
    vectors.save(tmp_path / name, precision=9)
    back = WordVectors.load(tmp_path / name)
    assert back.index_to_key == vectors.index_to_key
    np.testing.assert_array_equal(back.vectors, vectors.vectors)


def test_word2vec_binary_stores_words_as_utf8_bytes(tmp_path, vectors):
    vectors.save(tmp_path / "v.bin")
    data = (tmp_path / "v.bin").read_bytes()
    assert data.startswith(b"10 5\n" + "国王".encode() + b" ")
    assert b"\n" + "𠀀字".encode() + b" " in data


def test_display_width_counts_wide_characters_twice():
    words = ("apple", "北京", "𠀀字", "😀", "ｏｋ", "é", "e\u0301")
    assert [display_width(w) for w in words] == [5, 4, 4, 2, 4, 1, 1]


def test_similar_and_analogy_print_aligned_columns(tmp_path, vectors, capsys):
    vectors.save(tmp_path / "v.bin")
    assert main(["similar", str(tmp_path / "v.bin"), "北京", "--topn", "9"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines[:1]] == ["𠀀字"] and len(lines) == 9
    # Right-aligned scores end in the same terminal column whatever the width of the word.
    assert len({display_width(line) for line in lines}) == 1
    assert any(display_width(line) != len(line) for line in lines)
    assert main(["analogy", str(tmp_path / "v.bin"), "男人", "国王", "女人", "--topn", "2"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "男人 : 国王 = 女人 : ?" and out[1].split()[0] == "王后"


@pytest.mark.parametrize("lang", ["C.UTF-8", "C"])
def test_cli_prints_chinese_as_utf8(tmp_path, vectors, lang):
    vectors.save(tmp_path / "v.bin")
    result = run_cli("similar", str(tmp_path / "v.bin"), "北京", "--topn", "2", env=clean_env(LANG=lang))
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    out = result.stdout.decode("utf-8")
    assert out.split()[0] == "𠀀字" and len(out.splitlines()) == 2


def test_cli_escapes_what_a_non_utf8_stdout_cannot_show(tmp_path, vectors):
    vectors.save(tmp_path / "v.bin")
    env = clean_env(LANG="C.UTF-8", PYTHONIOENCODING="ascii")
    result = run_cli("similar", str(tmp_path / "v.bin"), "北京", "--topn", "1", env=env)
    assert result.returncode == 0 and b"Traceback" not in result.stderr
    assert result.stdout.startswith(b"\\U00020000\\u5b57  ")


POEM = ["床前明月光，", "疑是地上霜。", "举头望明月，", "低头思故乡。", "𠀀字😀 hello 世界"]


def test_char_model_trains_and_generates_valid_utf8(tmp_path):
    from rnnlab.lm import train_language_model

    (tmp_path / "poem.txt").write_text("\n".join(POEM * 30) + "\n", encoding="utf-8")
    result = train_language_model(
        tmp_path / "poem.txt", tmp_path / "m", split=(0.1, 0), level="char", layers=1,
        hidden_size=32, optimizer="adam", lr=0.01, bptt=10, batch_size=8, epochs=3,
    )
    assert result.history[-1]["valid_bpc"] < result.history[0]["valid_bpc"]
    data = (tmp_path / "m" / "best" / "vocab.json").read_bytes()
    assert "床".encode() in data and "𠀀".encode() in data and "😀".encode() in data
    assert b"\\u" not in data
    chars = set("".join(POEM)) | {"\n"}
    assert set(result.lm.vocab.itos) == chars | {"<unk>"}

    prime = "床前𠀀"
    run = run_cli("generate", str(tmp_path / "m" / "best"), "--prime", prime, "--length", "40",
                  "--seed", "1", env=clean_env(LANG="C.UTF-8"))
    assert run.returncode == 0, run.stderr.decode(errors="replace")
    text = run.stdout.decode("utf-8")  # strict: raises on anything that is not UTF-8
    # The prime, 40 characters and a final newline unless the last character drawn was one.
    assert text.startswith(prime) and len(text) in (43, 44) and text.endswith("\n")
    assert set(text) <= chars


SEGMENTED = ["我 爱 北京 天安门", "天安门 上 太阳 升", "我 爱 𠀀字 😀", "北京 是 首都"] * 6
LM_TINY = dict(split=(0.1, 0), layers=1, hidden_size=8, bptt=5, batch_size=2, eval_batch_size=2, epochs=1,
               threads=1)


def test_segmented_model_keeps_the_given_words(tmp_path):
    from rnnlab.lm import LM, train_language_model

    (tmp_path / "seg.txt").write_text("\n".join(SEGMENTED) + "\n", encoding="utf-8")
    result = train_language_model(tmp_path / "seg.txt", tmp_path / "m", level="segmented", **LM_TINY)
    words = {w for line in SEGMENTED for w in line.split()}
    assert set(result.lm.vocab.itos) == words | {"<unk>", "</s>"}
    lm = LM.load(tmp_path / "m" / "best")
    assert lm.pipeline.level == "segmented"
    score = lm.score("我 爱 北京")
    assert [r.token for r in score.rows] == ["我", "爱", "北京", "</s>"]
    assert all(r.mapped == r.token for r in score.rows)


def test_jieba_model_trains_on_raw_chinese(tmp_path, fake_jieba):
    fake_jieba({"北京", "天安门", "太阳", "首都", "𠀀字"})
    raw = [line.replace(" ", "") for line in SEGMENTED]
    (tmp_path / "raw.txt").write_text("\n".join(raw) + "\n", encoding="utf-8")
    assert main(["train", str(tmp_path / "raw.txt"), "-o", str(tmp_path / "m"), "--level", "jieba",
                 "--split", "0.1", "0", "--layers", "1", "--hidden-size", "8", "--bptt", "5",
                 "--batch-size", "2", "--eval-batch-size", "2", "--epochs", "1", "--quiet",
                 "--no-progress", "--threads", "1"]) == 0
    from rnnlab.lm import LM

    lm = LM.load(tmp_path / "m" / "best")
    vocab = lm.vocab
    assert lm.pipeline.level == "jieba"
    words = {w for line in SEGMENTED for w in line.split()}
    assert set(vocab.itos) == words | {"<unk>", "</s>"}


def test_jieba_generation_joins_words_without_spaces(tmp_path, fake_jieba, capsys):
    fake_jieba({"北京", "天安门", "太阳", "首都", "𠀀字"})
    raw = [line.replace(" ", "") for line in SEGMENTED]
    (tmp_path / "raw.txt").write_text("\n".join(raw) + "\n", encoding="utf-8")
    assert main(["train", str(tmp_path / "raw.txt"), "-o", str(tmp_path / "m"), "--level", "jieba",
                 "--layers", "1", "--hidden-size", "8", "--bptt", "5", "--batch-size", "2",
                 "--epochs", "1", "--quiet", "--no-progress", "--threads", "1"]) == 0
    capsys.readouterr()
    assert main(["generate", str(tmp_path / "m"), "--prime", "北京", "--length", "30",
                 "--seed", "1", "--no-unk"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("北京") and len(text.strip()) > len("北京")
    assert " " not in text
