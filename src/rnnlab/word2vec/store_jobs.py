"""Word2vec from a token store: the vocabulary from its counts, the training jobs read from disk.

A store (rnnlab.text.store) already holds what `count_words` counts. Its vocabulary is every
token of the text by count, ties in order of first occurrence, after the markers the text
pipeline adds (`<unk>`, `</s>`, and `<s>` in sentence mode); without them it is count_words'
words and counts, and a min_count / max_size cut is a prefix: no pass over the text.

A line of the store is a sentence, its markers left out; a line longer than
MAX_SENTENCE_LENGTH words comes in pieces of that many, as `Corpus` reads it. Every epoch
reads the store in blocks of READ_TOKENS ids (positioned reads), maps store ids to the model's
ids through a table (-1: a marker or a word the model does not keep, dropped), and cuts jobs
where train.py cuts the same corpus held in memory: a job ends with the first sentence that
reaches the next multiple of `job_words` kept words. So with one worker and a seed the
vectors are those trained from the text. Memory: the vocabulary, the table, and the blocks
and jobs in flight; nothing grows with the corpus.

A literal `<unk>`, `<s>` or `</s>` in the text is the store's marker, so it is no word here
(the text path counts it as one).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import numpy as np

from rnnlab.errors import RnnlabError
from rnnlab.text.corpus import MAX_SENTENCE_LENGTH
from rnnlab.text.store import TokenStore, cut_vocab, vocab_limit
from rnnlab.text.vocab import Vocabulary

WORD_LEVELS = ("word", "segmented", "jieba")
READ_TOKENS = 1 << 20  # ids read at once
LINE_BLOCK = 1 << 16  # line offsets read at once

# (ids, sentence starts, first sentence, end sentence, position of the first word in the
# epoch's kept words): what engine.train_chunk trains on, and where its learning rate stands.
Job = tuple[np.ndarray, np.ndarray, int, int, int]


def open_word_store(path: str | os.PathLike) -> TokenStore:
    """A token store of words, its files checked; a store of characters is refused."""
    store = TokenStore(path)
    if store.pipeline.level not in WORD_LEVELS:
        raise RnnlabError(f"{path}: a store of {store.pipeline.level} tokens; word vectors need "
                          f"words (rnnlab prepare --level word, segmented or jieba)")
    return store


def store_words(store: TokenStore, min_count: int = 1, max_size: int | None = None) -> Vocabulary:
    """What count_words makes of the store's text: its words and counts, cut the same way."""
    whole = store.whole_vocab
    markers = len(whole.specials)
    words = Vocabulary(whole.itos[markers:], whole.counts[markers:], specials=())
    return cut_vocab(words, vocab_limit(words, min_count, max_size))


def id_table(store: TokenStore, vocab: Vocabulary) -> np.ndarray:
    """Store id -> the model's id (int32); -1 for the markers and the words `vocab` lacks."""
    whole, stoi = store.whole_vocab, vocab.stoi
    markers = len(whole.specials)
    table = np.full(len(whole), -1, np.int32)
    table[markers:] = np.fromiter((stoi.get(w, -1) for w in whole.itos[markers:]), np.int32,
                                  len(whole) - markers)
    return table


class StoreJobs:
    """A store's words as the model keeps them, cut into train.py's jobs, read anew every epoch.

    `total`: the words kept (what the in-memory path encodes); `raw`: every word of the text.
    """

    def __init__(self, store: TokenStore, vocab: Vocabulary, job_words: int,
                 max_sentence: int = MAX_SENTENCE_LENGTH) -> None:
        self.store, self.job_words, self.max_sentence = store, job_words, max_sentence
        self.table = id_table(store, vocab)
        self.total = int(store.whole_vocab.counts[self.table >= 0].sum())
        self.lead = int(store.pipeline.mode == "sentence")  # `<s>` before each line
        self.raw = len(store) - (1 + self.lead) * store.num_lines  # and `</s>` after it

    def __iter__(self) -> Iterator[Job]:
        """The jobs of one epoch, in order: sentences first..end of the arrays read so far."""
        J = self.job_words
        ids, starts, position = np.zeros(0, np.int32), np.zeros(1, np.int64), 0
        for block_ids, block_starts in self._blocks():
            ids = np.concatenate([ids, block_ids])
            starts = np.concatenate([starts[:-1], starts[-1] + block_starts])
            first = 0
            while True:
                # The first sentence whose end reaches the next multiple of J closes the job.
                edge = starts[first] + (position // J + 1) * J - position
                end = first + 1 + int(np.searchsorted(starts[first + 1:], edge))
                if end >= len(starts):
                    break  # not in what is read so far
                yield ids, starts, first, end, position
                position += int(starts[end] - starts[first])
                first = end
            ids, starts = ids[starts[first]:], starts[first:] - starts[first]  # the job goes on
        if len(starts) > 1:
            yield ids, starts, 0, len(starts) - 1, position

    def _blocks(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(kept ids, sentence starts from 0) of about READ_TOKENS ids at a time; sentences
        left with no word are left out."""
        for first in range(0, self.store.num_lines, LINE_BLOCK):
            begins, stops = self._sentences(self.store.offsets(first, first + LINE_BLOCK))
            i = 0
            while i < len(begins):
                j = max(i + 1, int(np.searchsorted(stops, begins[i] + READ_TOKENS, "right")))
                yield self._read(begins[i:j], stops[i:j])
                i = j

    def _sentences(self, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Where the sentences of these lines begin and stop in the store: each line's words,
        its markers left out, in pieces of at most max_sentence."""
        begins, ends = offsets[:-1] + self.lead, offsets[1:] - 1
        pieces = -(-(ends - begins) // self.max_sentence)
        line = np.repeat(np.arange(len(pieces)), pieces)
        nth = np.arange(len(line)) - np.repeat(np.cumsum(pieces) - pieces, pieces)
        starts = begins[line] + nth * self.max_sentence
        return starts, np.minimum(starts + self.max_sentence, ends[line])

    def _read(self, begins: np.ndarray, stops: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The kept ids of the store's sentences [begins, stops), and where each one starts."""
        ids = self.table[self.store.ids(int(begins[0]), int(stops[-1]))]
        kept = ids >= 0
        # Only markers lie between one sentence's stop and the next one's begin, and they are
        # dropped: the kept ids before each begin are where the sentences start.
        before = np.concatenate([[0], np.cumsum(kept)])
        return ids[kept], np.unique(before[np.append(begins, stops[-1]) - begins[0]])
