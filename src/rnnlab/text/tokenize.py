"""Tokenizers: one line of text in, a list of tokens out.

Three levels: "word" (whitespace, optionally lowercased and with punctuation split off),
"char" (Unicode code points, spaces kept; a Python str is already a sequence of code points,
so characters outside the BMP such as emoji stay whole) and "segmented" (text already split
into tokens by spaces, e.g. the output of a Chinese word segmenter, taken exactly as it is).
"""

from __future__ import annotations

import re
from collections.abc import Callable

from rnnlab.errors import RnnlabError

LEVELS = ("word", "char", "segmented")

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


def get_tokenizer(
    level: str = "word", lower: bool = False, split_punct: bool = False
) -> Callable[[str], list[str]]:
    """The tokenizer for `level` ("word", "char" or "segmented") with its options bound."""
    if level == "word":
        return lambda line: tokenize_words(line, lower=lower, split_punct=split_punct)
    if level == "char":
        return (lambda line: list(line.lower())) if lower else tokenize_chars
    if level == "segmented":
        return tokenize_segmented
    raise RnnlabError(f"unknown tokenizer level {level!r}; choose one of {', '.join(LEVELS)}")
