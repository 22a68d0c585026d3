"""Training batches read from a token store (rnnlab.text.store) instead of from memory.

Each class is its in-memory twin of rnnlab.lm.data over ids on disk, with the twin's epochs (the
same blocks, the same shuffled sentences, from the same shared code), so a run from a store
equals a run from its text, resumed runs included. A batch is read when it is asked for, and
only the part asked for: under torchrun each rank reads its own columns or its own sentences.

- `StoreStreamBatches` is StreamBatches: `batch` columns of N rows, column c being the ids
  c*N .. (c+1)*N - 1, read in blocks of `bptt` rows (or of drawn lengths), one positioned read
  per column of a block.
- `StoreSentenceBatches` is SentenceBatches: store line i is sentence i (`<s> .. </s>`); a
  batch reads each of its sentences' two offsets and then its ids, so nothing per line is kept
  but the epoch's order (4 bytes a sentence, see rnnlab.lm.data.SentenceOrder).

Memory does not grow with the corpus beyond that order and the list of an epoch's blocks.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from rnnlab.errors import RnnlabError
from rnnlab.lm.data import (
    SentenceOrder,
    block_span,
    epoch_seed,
    pad_sentences,
    sentence_batches,
    stream_blocks,
)
from rnnlab.text.store import TokenStore


class StoreStreamBatches:
    """A store's ids as (N, batch) columns, read in blocks of `bptt` (or, with `seed`, of
    variable lengths around it); the state carries over.

    Ids at or above `limit` (the vocabulary's size) read as `<unk>`.
    """

    carries_state = True

    def __init__(self, store: TokenStore, limit: int, batch: int, bptt: int,
                 seed: int | None = None) -> None:
        self.store, self.limit, self.batch = store, limit, batch
        self.bptt, self.seed = bptt, seed
        self.rows = len(store) // batch  # batchify's N: the last len % batch ids drop
        if self.rows < 2:
            raise RnnlabError(f"{len(store)} tokens are too few for {batch} streams; "
                              f"use more text or a smaller batch")

    def epoch(self, epoch: int) -> range | list[tuple[int, int]]:
        """The blocks of an epoch, in order (every epoch reads the stream front to back)."""
        return stream_blocks(self.rows, self.bptt, self.seed, epoch)

    def get(self, block: int | tuple[int, int],
            columns: slice = slice(None)) -> tuple[Tensor, Tensor, None]:
        """(inputs, targets, lengths=None) of a block (its start row, or (start, length)),
        in these columns of the batch: only they are read."""
        start, n = block_span(block, self.bptt, self.rows)
        # The block needs rows start .. start+n of each column: inputs and targets overlap.
        first = [c * self.rows + start for c in range(self.batch)[columns]]
        ids = np.stack([self.store.ids(i, i + n + 1, self.limit) for i in first], axis=1)
        ids = torch.from_numpy(ids)
        return ids[:-1], ids[1:], None


class StoreSentenceBatches:
    """A store's lines as sentences in padded batches with lengths, reshuffled every epoch
    when `seed` is set. Ids at or above `limit` read as `<unk>`."""

    carries_state = False

    def __init__(self, store: TokenStore, limit: int, batch: int,
                 seed: int | None = None) -> None:
        if not store.num_lines:
            raise RnnlabError("no sentences to train or evaluate on")
        self.store, self.limit, self.batch, self.seed = store, limit, batch, seed

    def epoch(self, epoch: int) -> SentenceOrder:
        """The batches (lists of sentence indices) of an epoch; the same epoch, the same order."""
        return sentence_batches(self.store.num_lines, self.batch, epoch_seed(self.seed, epoch))

    def get(self, indices: list[int]) -> tuple[Tensor, Tensor, Tensor]:
        """(inputs, targets, lengths) of the batch of these sentences, read from disk."""
        return pad_sentences([self.store.line(i, self.limit) for i in indices])
