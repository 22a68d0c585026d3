"""Tokenizers: one line of text in, a list of tokens out.

Four levels: "word" (whitespace, optionally lowercased and with punctuation split off),
"char" (Unicode code points, spaces kept; a Python str is already a sequence of code points,
so characters outside the BMP such as emoji stay whole), "segmented" (text already split
into tokens by spaces, e.g. the output of a Chinese word segmenter, taken exactly as it is)
and "jieba" (raw Chinese text cut into words by the jieba segmenter, the optional extra
`rnnlab[chinese]`; English words and numbers in between come out whole).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable

from rnnlab.errors import RnnlabError

LEVELS = ("word", "char", "segmented", "jieba")
# Levels whose tokens do not end at spaces: their long lines may be cut anywhere (characters
# join back exactly; unspaced Chinese has no space to wait for).
UNSPACED_LEVELS = ("char", "jieba")

NO_JIEBA = (
    "raw Chinese text needs a word segmenter: pip install 'rnnlab[chinese]' (jieba), "
    "or pass pre-segmented text with --level segmented"
)

# A word is a run of letters/digits, with inner apostrophes or hyphens kept ("don't",
# "well-known"); every other non-space character is a token of its own.
PUNCT_SPLIT = re.compile(r"\w+(?:['’-]\w+)*|[^\w\s]")


def tokenize_words(line: str, lower: bool = False, split_punct: bool = False) -> list[str]:
    """Split on whitespace; optionally lowercase and split punctuation off the words."""
    if lower:
        line = line.lower()
    return PUNCT_SPLIT.findall(line) if split_punct else line.split()


def tokenize_chars(line: str) -> list[str]:
    """Every Unicode code point is a token, whitespace included."""
    return list(line)


def tokenize_segmented(line: str) -> list[str]:
    """Tokens already separated by whitespace, kept exactly (no case or punctuation changes)."""
    return line.split()


def jieba_tokenizer(lower: bool = False) -> Callable[[str], list[str]]:
    """Chinese word segmentation by jieba, imported here so that it stays optional."""
    try:
        import jieba
    except ImportError:
        raise RnnlabError(NO_JIEBA) from None
    # jieba reports loading its dictionary on stderr at DEBUG level, which would mix into
    # the CLI's output.
    jieba.setLogLevel(logging.WARNING)

    def tokenize(line: str) -> list[str]:
        # jieba hands back each space between words as a token of its own.
        return [t for t in jieba.lcut(line.lower() if lower else line) if t.strip()]

    return tokenize


def get_tokenizer(
    level: str = "word", lower: bool = False, split_punct: bool = False
) -> Callable[[str], list[str]]:
    """The tokenizer for `level` (one of LEVELS) with its options bound.

    "jieba" raises RnnlabError here, before any text is read, when jieba is not installed.
    """
    if level == "word":
        return lambda line: tokenize_words(line, lower=lower, split_punct=split_punct)
    if level == "char":
        return (lambda line: list(line.lower())) if lower else tokenize_chars
    if level == "segmented":
        return tokenize_segmented
    if level == "jieba":
        return jieba_tokenizer(lower)
    raise RnnlabError(f"unknown tokenizer level {level!r}; choose one of {', '.join(LEVELS)}")
