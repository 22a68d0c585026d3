"""Words split at whitespace, counted and looked up by their hashes in compiled code.

The token store's fast path (rnnlab.text.store) for text whose words are split at whitespace.
In Python, str.split() and a dict cost about 0.4 µs a word on a small machine; these loops
cost a few tens of nanoseconds, which is what reading gigabytes at millions of words a second
needs.

A word is a maximal run of bytes of UTF-8 text other than ASCII whitespace. That is exactly
str.split()'s word when the text holds no other character that str.isspace() calls space
(`OTHER_SPACES`): `scan` looks for them as it goes and gives up (None) when it meets one, and
the caller goes the slow way. UTF-8 never uses an ASCII byte inside a multi-byte character, so
no word is cut in the middle of one.

A word is known by two 64-bit hashes of its bytes: FNV-1a, and the same recipe with another
start and multiplier. The tables key on the first and keep the second;
two different words that share the first are caught by the second (HashCollisionError) instead
of being merged. Both would have to agree, by chance about 2^-128, for two words to be confused.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from rnnlab.errors import RnnlabError

# What str.isspace() calls space besides " \t\n\r\x0b\x0c" (tests/test_wordhash.py checks it).
OTHER_SPACES = ("\x1c\x1d\x1e\x1f\x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006"
                "\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000")
# Byte classes: part of a word, space, line break, and bytes that may start one of OTHER_SPACES
# (\x1c-\x1f themselves; 0xC2, 0xE1, 0xE2 and 0xE3 lead the others in UTF-8).
WORD, SPACE, NEWLINE, MAYBE = 0, 1, 2, 3
CLASSES = np.zeros(256, np.uint8)
CLASSES[[9, 11, 12, 13, 32]] = SPACE
CLASSES[10] = NEWLINE
CLASSES[[0x1C, 0x1D, 0x1E, 0x1F, 0xC2, 0xE1, 0xE2, 0xE3]] = MAYBE
# The UTF-8 of OTHER_SPACES beyond ASCII: (lead byte, second byte, third byte or -1).
WIDE_SPACES = np.array([(0xC2, 0x85, -1), (0xC2, 0xA0, -1), (0xE1, 0x9A, 0x80),
                        *((0xE2, 0x80, 0x80 + k) for k in range(11)),
                        (0xE2, 0x80, 0xA8), (0xE2, 0x80, 0xA9), (0xE2, 0x80, 0xAF),
                        (0xE2, 0x81, 0x9F), (0xE3, 0x80, 0x80)], np.int64)
FNV_OFFSET, FNV_PRIME = np.uint64(0xCBF29CE484222325), np.uint64(0x100000001B3)
MIX = np.uint64(0x9E3779B97F4A7C15)  # the second hash's multiplier: the golden ratio's 64 bits
SEED = np.uint64(0x2545F4914F6CDD1D)


class HashCollisionError(RnnlabError):
    """Two different words with the same first hash (never seen; the caller goes the slow way)."""


@njit(cache=True, nogil=True)
def _other_space(data, i, wide) -> bool:
    """Whether one of OTHER_SPACES starts at data[i] (a MAYBE byte)."""
    if data[i] < 0x80:
        return True
    for k in range(len(wide)):
        if (data[i] == wide[k, 0] and i + 1 < len(data) and data[i + 1] == wide[k, 1]
                and (wide[k, 2] < 0 or (i + 2 < len(data) and data[i + 2] == wide[k, 2]))):
            return True
    return False


@njit(cache=True, nogil=True)
def _scan(data, classes, wide):
    n_max = len(data) // 2 + 1
    h1 = np.empty(n_max, np.uint64)
    h2 = np.empty(n_max, np.uint64)
    start = np.empty(n_max, np.int64)
    stop = np.empty(n_max, np.int64)
    ends_line = np.zeros(n_max, np.bool_)
    n, i, size = 0, 0, len(data)
    while i < size:
        kind = classes[data[i]]
        if kind == SPACE or kind == NEWLINE:
            if kind == NEWLINE and n > 0:
                ends_line[n - 1] = True
            i += 1
            continue
        a, c = FNV_OFFSET, SEED
        start[n] = i
        while i < size:
            kind = classes[data[i]]
            if kind == SPACE or kind == NEWLINE:
                break
            if kind == MAYBE and _other_space(data, i, wide):
                return False, h1[:0], h2[:0], start[:0], stop[:0], ends_line[:0]
            a = (a ^ np.uint64(data[i])) * FNV_PRIME
            c = (c ^ np.uint64(data[i])) * MIX
            i += 1
        h1[n], h2[n], stop[n] = a, c, i
        n += 1
    return True, h1[:n], h2[:n], start[:n], stop[:n], ends_line[:n]


def scan(data: np.ndarray) -> tuple[np.ndarray, ...] | None:
    """The words of UTF-8 bytes (uint8): (h1, h2, start, stop, ends_line) for each word, in
    order, or None when the text holds one of OTHER_SPACES.

    `ends_line` marks the last word before a line break (b"\\n").
    """
    ok, *words = _scan(data, CLASSES, WIDE_SPACES)
    return tuple(words) if ok else None


@njit(cache=True, nogil=True)
def _slot(keys, used, key):
    """The slot of `key` in an open-addressing table (linear probing), or the free slot for it."""
    mask = np.uint64(len(keys) - 1)
    s = key & mask
    while used[s] and keys[s] != key:
        s = (s + np.uint64(1)) & mask
    return s


@njit(cache=True, nogil=True)
def count_words(h1, h2):
    """Distinct words of a batch in order of first occurrence: (index of the first, count);
    -1 as the first index reports a clash of first hashes."""
    first = np.empty(len(h1), np.int64)
    counts = np.zeros(len(h1), np.int64)
    # A table that fits in the cache, grown as words come: most words of a batch repeat.
    keys = np.empty(1 << 12, np.uint64)
    used = np.zeros(1 << 12, np.bool_)
    where = np.empty(1 << 12, np.int64)
    n = 0
    for i in range(len(h1)):
        s = _slot(keys, used, h1[i])
        if not used[s]:
            if 2 * (n + 1) > len(keys):
                keys, used, where = _grown(keys, used, where)
                s = _slot(keys, used, h1[i])
            used[s], keys[s], where[s] = True, h1[i], n
            first[n] = i
            n += 1
        elif h2[first[where[s]]] != h2[i]:
            first[0] = -1
            return first[:1], counts[:1]
        counts[where[s]] += 1
    return first[:n], counts[:n]


@njit(cache=True, nogil=True)
def _grown(keys, used, where):
    """The table with twice the slots, every key placed again."""
    new_keys = np.empty(2 * len(keys), np.uint64)
    new_used = np.zeros(2 * len(keys), np.bool_)
    new_where = np.empty(2 * len(keys), np.int64)
    for s in range(len(keys)):
        if used[s]:
            t = _slot(new_keys, new_used, keys[s])
            new_used[t], new_keys[t], new_where[t] = True, keys[s], where[s]
    return new_keys, new_used, new_where


@njit(cache=True, nogil=True)
def _merge(keys, used, where, table_h2, totals, n, h1, h2, counts, is_new):
    """Add a batch's distinct words to the table; False on a clash."""
    for j in range(len(h1)):
        s = _slot(keys, used, h1[j])
        if not used[s]:
            used[s], keys[s], where[s] = True, h1[j], n
            table_h2[n], totals[n] = h2[j], 0
            is_new[j] = True
            n += 1
        elif table_h2[where[s]] != h2[j]:
            return False
        totals[where[s]] += counts[j]
    return True


@njit(cache=True, nogil=True)
def lookup(keys, used, where, table_h2, h1, h2, ids_of):
    """The id of each word (ids_of[its table index]); -1 for a word the table lacks."""
    out = np.empty(len(h1), np.int64)
    for i in range(len(h1)):
        s = _slot(keys, used, h1[i])
        out[i] = ids_of[where[s]] if used[s] and table_h2[where[s]] == h2[i] else -1
    return out


@njit(cache=True, nogil=True)
def with_line_marks(ids, ends_line, eos, bos):
    """The ids with `eos` after each line's last word (and `bos` before its first, when bos >=
    0), and where each line ends in the result."""
    lines = int(ends_line.sum())
    out = np.empty(len(ids) + lines * (2 if bos >= 0 else 1), np.int64)
    ends = np.empty(lines, np.int64)
    j, line, starting = 0, 0, True
    for i in range(len(ids)):
        if starting and bos >= 0:
            out[j] = bos
            j += 1
        out[j] = ids[i]
        j += 1
        starting = ends_line[i]
        if starting:
            out[j] = eos
            j += 1
            ends[line] = j
            line += 1
    return out, ends


@njit(cache=True, nogil=True)
def _join(data, start, stop):
    out = np.empty(max((stop - start).sum() + len(start) - 1, 0), np.uint8)
    j = 0
    for k in range(len(start)):
        if k:
            out[j] = 32
            j += 1
        out[j : j + stop[k] - start[k]] = data[start[k] : stop[k]]
        j += stop[k] - start[k]
    return out


def words_of(data: np.ndarray, start: np.ndarray, stop: np.ndarray) -> bytes:
    """The words at these positions of `data`, joined by spaces (for WordTable.add)."""
    return _join(data, start, stop).tobytes()


class WordTable:
    """Distinct words with their total counts, in order of first occurrence, growing as needed."""

    def __init__(self, capacity: int = 1 << 16) -> None:
        self.keys = np.empty(capacity, np.uint64)
        self.used = np.zeros(capacity, np.bool_)
        self.where = np.empty(capacity, np.int64)
        self.h2 = np.empty(capacity // 2, np.uint64)
        self.counts = np.zeros(capacity // 2, np.int64)
        self.words: list[bytes] = []

    def __len__(self) -> int:
        return len(self.words)

    def add(self, h1, h2, counts, words: bytes) -> None:
        """Add distinct words: their hashes, counts and bytes (joined by spaces), in order."""
        n = len(self.words)
        while 2 * (n + len(h1)) > len(self.keys):
            self._grow()
        is_new = np.zeros(len(h1), np.bool_)
        if not _merge(self.keys, self.used, self.where, self.h2, self.counts, n, h1, h2, counts,
                      is_new):
            raise HashCollisionError("two words share a hash")
        if is_new.any():
            split = words.split(b" ")
            self.words.extend(split[j] for j in np.flatnonzero(is_new).tolist())

    def _grow(self) -> None:
        """Twice the slots, every word placed again at its own index."""
        n = len(self.words)
        order = np.argsort(self.where[self.used])
        keys, h2, counts = self.keys[self.used][order], self.h2[:n], self.counts[:n]
        capacity = 2 * len(self.keys)
        self.keys = np.empty(capacity, np.uint64)
        self.used = np.zeros(capacity, np.bool_)
        self.where = np.empty(capacity, np.int64)
        self.h2 = np.empty(capacity // 2, np.uint64)
        self.counts = np.zeros(capacity // 2, np.int64)
        _merge(self.keys, self.used, self.where, self.h2, self.counts, 0, keys, h2, counts,
               np.zeros(n, np.bool_))

    def totals(self) -> dict[str, int]:
        """Every word (decoded) with its count, in order of first occurrence."""
        return {w.decode("utf-8", "surrogatepass"): c
                for w, c in zip(self.words, self.counts[:len(self.words)].tolist())}

    def lookup(self, h1, h2, ids_of) -> np.ndarray:
        """Each word's id through ids_of (by table index); -1 where the table lacks it."""
        return lookup(self.keys, self.used, self.where, self.h2, h1, h2, ids_of)
