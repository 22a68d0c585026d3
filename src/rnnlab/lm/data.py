"""Token ids into training batches, in the two ways language models are trained.

Stream mode (the standard PTB setup): the ids of the whole text (see TextPipeline) are cut
into `batch` columns and read `bptt` steps at a time; the state is carried from block to block
and detached between them (truncated BPTT). With a seed, the block lengths vary around `bptt`
as in AWD-LSTM (Merity et al. 2018), so that the blocks of every epoch start elsewhere.

Sentence mode (the lecture's formulation): each sentence `<s> w1 .. wn </s>` starts from a
zero state; sentences of a batch are padded and their lengths passed along. Inputs are
`<s> w1 .. wn`, targets `w1 .. wn </s>`; padded targets are IGNORE.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor

from rnnlab.errors import RnnlabError
from rnnlab.text.corpus import read_whole_lines

IGNORE = -100  # cross_entropy's ignore_index: padded target positions


def read_text(path: str | Path, encoding: str = "utf-8", errors: str = "strict") -> list[str]:
    """All lines of a text file (plain or .gz), whole, through the text pipeline's checks."""
    return list(read_whole_lines(path, encoding, errors))


def split_lines(lines: Sequence[str], valid: float, test: float) -> tuple[list, list, list]:
    """Cut lines into train / valid / test by fractions, in file order (deterministic).

    Contiguous pieces keep held-out text out of the training stream's context."""
    if valid < 0 or test < 0 or valid + test >= 1:
        raise RnnlabError(f"split fractions must be >= 0 and leave some training text, "
                          f"got valid {valid}, test {test}")
    n = len(lines)
    n_valid, n_test = round(n * valid), round(n * test)
    n_train = n - n_valid - n_test
    if n_train < 1 or (valid > 0 and n_valid < 1) or (test > 0 and n_test < 1):
        raise RnnlabError(f"{n} lines are too few to split into fractions {valid} / {test}")
    lines = list(lines)
    return lines[:n_train], lines[n_train:n_train + n_valid], lines[n_train + n_valid:]


# ----- stream mode -----

def batchify(ids: Sequence[int] | Tensor, batch: int) -> Tensor:
    """Cut the stream into `batch` equal columns: (N, batch); the last len % batch ids drop."""
    ids = torch.as_tensor(ids, dtype=torch.long)
    n = ids.numel() // batch
    if n < 2:
        raise RnnlabError(f"{ids.numel()} tokens are too few for {batch} streams; "
                          f"use more text or a smaller batch")
    return ids[: n * batch].view(batch, n).t().contiguous()


def stream_block(data: Tensor, start: int, bptt: int) -> tuple[Tensor, Tensor]:
    """Inputs data[start : start+len] and targets one step ahead, each (len, B)."""
    n = min(bptt, data.shape[0] - 1 - start)
    return data[start : start + n], data[start + 1 : start + 1 + n]


def draw_length(bptt: int, generator: torch.Generator) -> int:
    """One variable BPTT length: N(bptt, 5²) with probability 0.95, else N(bptt/2, 5²), floored,
    then held within [min(5, bptt), bptt + 20]."""
    centre = bptt if torch.rand(1, generator=generator).item() < 0.95 else bptt / 2
    length = math.floor(centre + 5 * torch.randn(1, generator=generator).item())
    # Below 5 a block learns almost nothing; the cap (4 standard deviations) bounds the memory.
    return max(min(5, bptt), min(length, bptt + 20))


def variable_blocks(rows: int, bptt: int, generator: torch.Generator) -> list[tuple[int, int]]:
    """(start, length) of blocks of drawn lengths that cover the rows - 1 targets in order."""
    blocks, start = [], 0
    while start < rows - 1:
        length = min(draw_length(bptt, generator), rows - 1 - start)
        blocks.append((start, length))
        start += length
    return blocks


def epoch_seed(seed: int | None, epoch: int) -> int | None:
    """The seed of one epoch's draws: from (seed, epoch) alone, so a resumed epoch draws alike."""
    return None if seed is None else seed * 1_000_003 + epoch


def stream_blocks(rows: int, bptt: int, seed: int | None = None,
                  epoch: int = 0) -> range | list[tuple[int, int]]:
    """The blocks of an epoch over `rows` rows, in order: start rows `bptt` apart (the last
    block may be shorter), or with a seed (start, length) pairs drawn anew for each epoch."""
    if seed is None:
        return range(0, rows - 1, bptt)
    return variable_blocks(rows, bptt, torch.Generator().manual_seed(epoch_seed(seed, epoch)))


def block_span(block: int | tuple[int, int], bptt: int, rows: int) -> tuple[int, int]:
    """(start, length) of a block of `stream_blocks`, cut at the last row."""
    start, length = block if isinstance(block, tuple) else (block, bptt)
    return start, min(length, rows - 1 - start)


# ----- sentence mode -----

def pad_sentences(sentences: Sequence[Sequence[int]]) -> tuple[Tensor, Tensor, Tensor]:
    """Inputs (T, B) padded with 0, targets (T, B) padded with IGNORE, lengths (B,)."""
    lengths = torch.tensor([len(s) - 1 for s in sentences])
    if lengths.min() < 1:
        raise RnnlabError("a sentence needs at least <s> and </s>")
    T, B = int(lengths.max()), len(sentences)
    x = torch.zeros(T, B, dtype=torch.long)
    y = torch.full((T, B), IGNORE, dtype=torch.long)
    for b, s in enumerate(sentences):
        s = torch.as_tensor(s, dtype=torch.long)
        x[: len(s) - 1, b] = s[:-1]
        y[: len(s) - 1, b] = s[1:]
    return x, y, lengths


class SentenceOrder(Sequence):
    """An epoch's batches of sentence indices: one tensor of indices (int32, 4 bytes a sentence),
    cut into a list of `batch` of them when a batch is asked for."""

    def __init__(self, order: Tensor, batch: int) -> None:
        self.order, self.batch = order, batch

    def __len__(self) -> int:
        return -(-len(self.order) // self.batch)

    def __getitem__(self, i: int) -> list[int]:
        i = range(len(self))[i]  # IndexError past the end ends iteration
        return self.order[i * self.batch : (i + 1) * self.batch].tolist()


def sentence_batches(n: int, batch: int, seed: int | None = None) -> SentenceOrder:
    """Indices of the sentences in each batch; shuffled by `seed` (None keeps file order)."""
    # int32 halves the order's memory: randperm draws the same permutation in either dtype.
    dtype = torch.int32 if n < 2**31 else torch.int64
    if seed is None:
        return SentenceOrder(torch.arange(n, dtype=dtype), batch)
    generator = torch.Generator().manual_seed(seed)
    return SentenceOrder(torch.randperm(n, generator=generator, dtype=dtype), batch)


# ----- batches for the trainer -----

class StreamBatches:
    """A token stream as (N, batch) columns, read in blocks of `bptt` (or, with `seed`, of
    variable lengths around it); the state carries over."""

    carries_state = True

    def __init__(self, ids: Sequence[int], batch: int, bptt: int,
                 seed: int | None = None) -> None:
        self.data = batchify(ids, batch)
        self.bptt, self.seed = bptt, seed

    def epoch(self, epoch: int) -> range | list[tuple[int, int]]:
        """The blocks of an epoch, in order (every epoch reads the stream front to back)."""
        return stream_blocks(self.data.shape[0], self.bptt, self.seed, epoch)

    def get(self, block: int | tuple[int, int],
            columns: slice = slice(None)) -> tuple[Tensor, Tensor, None]:
        """(inputs, targets, lengths=None) of a block (its start row, or (start, length)),
        in these columns of the batch."""
        start, length = block_span(block, self.bptt, self.data.shape[0])
        x, y = stream_block(self.data[:, columns], start, length)
        return x, y, None


class SentenceBatches:
    """Sentences in padded batches with lengths, reshuffled every epoch when `seed` is set."""

    carries_state = False

    def __init__(self, sentences: Sequence[Sequence[int]], batch: int,
                 seed: int | None = None) -> None:
        if not sentences:
            raise RnnlabError("no sentences to train or evaluate on")
        self.sentences, self.batch, self.seed = list(sentences), batch, seed

    def epoch(self, epoch: int) -> SentenceOrder:
        """The batches (lists of sentence indices) of an epoch; the same epoch, the same order."""
        return sentence_batches(len(self.sentences), self.batch, epoch_seed(self.seed, epoch))

    def get(self, indices: list[int]) -> tuple[Tensor, Tensor, Tensor]:
        """(inputs, targets, lengths) of the batch of these sentences."""
        return pad_sentences([self.sentences[i] for i in indices])

