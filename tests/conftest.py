"""Fixtures shared by several test files."""

import sys
import types

import pytest


@pytest.fixture
def fake_jieba(monkeypatch):
    """Install a stand-in jieba (jieba itself is an optional extra): `fake_jieba(words)` makes
    lcut a greedy longest match over `words`, one token per other character (spaces too), and
    returns a record of its calls."""

    def install(words):
        calls = {"log_level": None, "lines": []}
        longest_first = sorted(words, key=len, reverse=True)

        def lcut(line):
            calls["lines"].append(line)
            tokens, i = [], 0
            while i < len(line):
                j = next((i + len(w) for w in longest_first if line.startswith(w, i)), i + 1)
                tokens.append(line[i:j])
                i = j
            return tokens

        def set_log_level(level):
            calls["log_level"] = level

        monkeypatch.setitem(sys.modules, "jieba",
                            types.SimpleNamespace(lcut=lcut, setLogLevel=set_log_level))
        return calls

    return install
