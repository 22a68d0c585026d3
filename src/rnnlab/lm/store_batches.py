"""Training batches read from a token store (rnnlab.text.store) instead of from memory.

`StoreStreamBatches` is StreamBatches over ids on disk: the same `batch` columns of N rows and
the same blocks of `bptt` rows, each block read when it is asked for (one positioned read per
column), so memory does not grow with the corpus and a run from a store equals a run from its
text, resumed runs included.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from rnnlab.errors import RnnlabError
from rnnlab.lm.data import stream_starts
from rnnlab.text.store import TokenStore


class StoreStreamBatches:
    """A store's ids as (N, batch) columns, read in blocks of `bptt`; the state carries over.

    Ids at or above `limit` (the vocabulary's size) read as `<unk>`.
    """

    carries_state = True

    def __init__(self, store: TokenStore, limit: int, batch: int, bptt: int) -> None:
        self.store, self.limit, self.batch, self.bptt = store, limit, batch, bptt
        self.rows = len(store) // batch  # batchify's N: the last len % batch ids drop
        if self.rows < 2:
            raise RnnlabError(f"{len(store)} tokens are too few for {batch} streams; "
                              f"use more text or a smaller batch")
        self.starts = stream_starts(torch.empty(self.rows, 0), bptt)

    def epoch(self, epoch: int) -> list[int]:
        """The blocks of an epoch, in order (every epoch reads the stream front to back)."""
        return self.starts

    def get(self, start: int) -> tuple[Tensor, Tensor, None]:
        """(inputs, targets, lengths=None) of the block starting at row `start`."""
        n = min(self.bptt, self.rows - 1 - start)
        # Column c is ids[c*N : (c+1)*N]; the block needs its rows start .. start+n.
        columns = [self.store.ids(c * self.rows + start, c * self.rows + start + n + 1, self.limit)
                   for c in range(self.batch)]
        block = torch.from_numpy(np.stack(columns, axis=1))
        return block[:-1], block[1:], None
