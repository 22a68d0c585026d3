"""Word vectors (SPEC §3): the look-up table, its files and its evaluation."""

from rnnlab.word2vec.train import Word2Vec as Word2Vec
from rnnlab.word2vec.vectors import WordVectors

__all__ = ["WordVectors"]
