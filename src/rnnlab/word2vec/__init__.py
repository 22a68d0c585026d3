"""Word vectors (SPEC §3): the look-up table, its files and its evaluation."""

from rnnlab.word2vec.vectors import WordVectors

__all__ = ["WordVectors"]
