"""Word vectors (the lecture's part 3, docs/lecture.md): the look-up table, its files and its evaluation."""

from rnnlab.word2vec.train import Word2Vec as Word2Vec
from rnnlab.word2vec.vectors import WordVectors

__all__ = ["WordVectors"]
