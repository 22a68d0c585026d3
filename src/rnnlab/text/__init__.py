"""The text pipeline shared by word2vec and the language model.

tokenize.py: a line -> tokens (words, characters, pre-segmented text); corpus.py: files ->
lines or tokenized sentences, streamed in bounded memory; vocab.py: tokens <-> ids, counts.
"""

from rnnlab.text.corpus import Corpus, read_lines
from rnnlab.text.tokenize import get_tokenizer, tokenize_chars, tokenize_words
from rnnlab.text.vocab import BOS, EOS, UNK, Vocabulary

__all__ = [
    "BOS",
    "EOS",
    "UNK",
    "Corpus",
    "Vocabulary",
    "get_tokenizer",
    "read_lines",
    "tokenize_chars",
    "tokenize_words",
]
