"""Tokenizers: words (whitespace, lowercasing, punctuation), characters, pre-segmented text, jieba."""

import logging
import sys

import pytest

from rnnlab.errors import RnnlabError
from rnnlab.text.corpus import Corpus
from rnnlab.text.tokenize import get_tokenizer, tokenize_chars, tokenize_segmented, tokenize_words


def test_words_split_on_any_whitespace():
    assert tokenize_words("  The cat\tsat\u3000on  the mat. ") == ["The", "cat", "sat", "on", "the", "mat."]


def test_words_lower_and_split_punct():
    line = "Hello, World! Don't re-use (it)."
    assert tokenize_words(line, lower=True) == ["hello,", "world!", "don't", "re-use", "(it)."]
    assert tokenize_words(line, split_punct=True) == [
        "Hello", ",", "World", "!", "Don't", "re-use", "(", "it", ")", ".",
    ]


def test_words_keep_unicode_letters_whole():
    assert tokenize_words("Ünïcode naïve café…", split_punct=True) == ["Ünïcode", "naïve", "café", "…"]
    assert tokenize_words("ÄÖÜ", lower=True) == ["äöü"]


def test_chars_are_code_points_outside_the_bmp_too():
    tokens = tokenize_chars("a 😀𝄞é")
    assert tokens == ["a", " ", "😀", "𝄞", "é"]
    assert all(len(t) == 1 for t in tokens)


def test_segmented_keeps_tokens_exactly():
    assert tokenize_segmented("我 爱 北京 天安门 , OK") == ["我", "爱", "北京", "天安门", ",", "OK"]


def test_get_tokenizer_levels_and_options():
    assert get_tokenizer("word", lower=True, split_punct=True)("A, b") == ["a", ",", "b"]
    assert get_tokenizer("char")("Ab c") == ["A", "b", " ", "c"]
    assert get_tokenizer("char", lower=True)("Ab") == ["a", "b"]
    assert get_tokenizer("segmented", lower=True)("Ab ,") == ["Ab", ","]
    with pytest.raises(RnnlabError, match="unknown tokenizer level"):
        get_tokenizer("sentencepiece")


def test_jieba_missing_is_one_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "jieba", None)  # makes `import jieba` fail even if installed
    with pytest.raises(RnnlabError) as e:
        get_tokenizer("jieba")
    assert str(e.value) == (
        "raw Chinese text needs a word segmenter: pip install 'rnnlab[chinese]' (jieba), "
        "or pass pre-segmented text with --level segmented"
    )


def test_jieba_level_segments_with_jieba_and_drops_spaces(fake_jieba):
    calls = fake_jieba({"北京", "天安门", "ok"})
    tokenize = get_tokenizer("jieba")
    assert calls["log_level"] == logging.WARNING
    assert tokenize("我爱北京 天安门\u3000!") == ["我", "爱", "北京", "天安门", "!"]
    assert get_tokenizer("jieba", lower=True)("OK北京") == ["ok", "北京"]
    assert calls["lines"][-1] == "ok北京"


def test_corpus_reads_raw_chinese_through_jieba(fake_jieba, tmp_path):
    fake_jieba({"北京", "天安门"})
    path = tmp_path / "raw.txt"
    path.write_text("我爱北京天安门\n\n天安门 北京\n", encoding="utf-8")
    assert list(Corpus(path, level="jieba")) == [["我", "爱", "北京", "天安门"], ["天安门", "北京"]]
