"""Word vectors as the two TSV files of the TensorFlow Embedding Projector (projector.tensorflow.org).

vectors.tsv holds one row of tab-separated numbers per word, no header; metadata.tsv one label
per line in the same order, and with a single column no header either. The Projector splits
the metadata at newlines and tabs without any quoting, skips lines that are blank after
trimming, and takes a first line with a tab for a header. So a label never holds a tab, a
newline or a carriage return (they are written as the two characters \\t, \\n, \\r, and a
backslash as \\\\), and a word that is nothing but white space is written as its code points
(\\u0020), or its row would vanish and every later label would slide onto the wrong point.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import numpy as np

from rnnlab.word2vec.vectors import WordVectors

_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
ROWS_PER_CHUNK = 2000  # rows formatted at a time: a few hundred kilobytes of text


def projector_label(word: str) -> str:
    """`word` as one line of a single-column Projector metadata file (see the module's doc)."""
    # JavaScript's trim() also strips U+FEFF, which Python does not count as white space.
    if word.strip().strip("\ufeff") == "":
        return "".join(f"\\u{ord(c):04x}" for c in word) or "\\u0000"
    return word.translate(_ESCAPES)


def _rows(wv: WordVectors, limit: int | None) -> int:
    return len(wv) if limit is None else min(limit, len(wv))


def vectors_tsv(wv: WordVectors, limit: int | None = None, digits: int = 7) -> Iterator[str]:
    """The Projector's vectors.tsv in chunks of text: the first `limit` rows (all by default)."""
    n = _rows(wv, limit)
    form = "\t".join([f"%.{digits}g"] * wv.vector_size)
    for start in range(0, n, ROWS_PER_CHUNK):
        block = np.asarray(wv.vectors[start:min(n, start + ROWS_PER_CHUNK)], dtype=np.float64)
        yield "".join(form % tuple(row) + "\n" for row in block)


def metadata_tsv(wv: WordVectors, limit: int | None = None) -> Iterator[str]:
    """The Projector's metadata.tsv in chunks of text: one label per word, no header."""
    words = wv.index_to_key[:_rows(wv, limit)]
    for start in range(0, len(words), ROWS_PER_CHUNK):
        yield "".join(projector_label(w) + "\n" for w in words[start:start + ROWS_PER_CHUNK])


def write_projector(wv: WordVectors, vectors_path: str | os.PathLike, metadata_path: str | os.PathLike,
                    limit: int | None = None) -> int:
    """Write both files (UTF-8) and return how many words they hold."""
    for path, chunks in ((vectors_path, vectors_tsv(wv, limit)), (metadata_path, metadata_tsv(wv, limit))):
        with open(path, "w", encoding="utf-8", newline="\n") as f:
            f.writelines(chunks)
    return _rows(wv, limit)
