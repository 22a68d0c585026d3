"""Terminal display width, so that columns of Chinese (two columns a character) line up."""

from __future__ import annotations

import unicodedata


def display_width(text: str) -> int:
    """Terminal columns of `text`: two for wide characters (CJK, emoji), none for combining marks."""
    return sum(
        0 if unicodedata.combining(c) else 2 if unicodedata.east_asian_width(c) in ("W", "F") else 1
        for c in text
    )


def pad(text: str, width: int) -> str:
    """`text` left-aligned in `width` terminal columns (str.ljust counts characters, not columns)."""
    return text + " " * (width - display_width(text))
