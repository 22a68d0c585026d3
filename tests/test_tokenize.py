"""Tokenizers: words (whitespace, lowercasing, punctuation), characters, pre-segmented text."""

import pytest

from rnnlab.errors import RnnlabError
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
