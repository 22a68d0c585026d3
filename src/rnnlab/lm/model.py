"""The recurrent language model: embedding -> Recurrent -> decoder -> softmax.

One model serves word and character level. It learns P(w_t | w_<t) (docs/lecture.md): the logits at
step t score the token at t+1. With `tie_weights` the decoder reuses the embedding matrix
(Press & Wolf 2017); when the top layer's size differs from the embedding's, a linear
projection H -> E sits in between so the tie still holds.

The decoder is a full softmax (logits W h + b) or, with `decoder="adaptive"`, an adaptive
softmax (rnnlab.lm.adaptive), whose outputs are log-probabilities: valid logits (log_softmax
leaves them as they are), so whatever reads logits reads them alike. Training asks
`forward(..., targets=y)` for the summed loss, which the adaptive softmax computes without
the (T, B, V) matrix.

Dropout: `dropout` is Zaremba et al.'s, fresh at every step, on the embedding's output, between
layers and on the last layer's output. The AWD-LSTM's (Merity et al. 2018, rnnlab.dropout) take
its place where given: locked dropout `dropout_input`, `dropout_hidden`, `dropout_output` (None:
`dropout` there), whole words `dropout_words`, and DropConnect `weight_drop` on the recurrent
matrices. All act in training only.
"""

from __future__ import annotations

from operator import itemgetter

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnlab.cells import State, map_state
from rnnlab.dropout import check_rate, embedding_dropout, locked_dropout
from rnnlab.errors import RnnlabError
from rnnlab.lm.adaptive import (
    DECODERS,
    TAIL_SHRINK,
    AdaptiveSoftmax,
    check_cutoffs,
    check_shrink,
    weight_count,
)
from rnnlab.lm.data import IGNORE
from rnnlab.memory import check_fits
from rnnlab.recurrent import Recurrent, check_settings

# Weight matrices per cell: one per gate or candidate (the equations in docs/lecture.md); the
# Mogrifier's 5 rounds add 5 I×H matrices, less than 3 gates' worth (the count bounds memory).
GATES = {"rnn": 1, "rnn-relu": 1, "lstm": 4, "peephole": 4, "coupled": 3, "gru": 3,
         "mogrifier": 7}
# The AWD-LSTM's rates with their "off" values: config.json names them only when set, so that
# the folders of models trained without them stay as they were.
REGULARISERS = {"dropout_input": None, "dropout_hidden": None, "dropout_output": None,
                "dropout_words": 0.0, "weight_drop": 0.0}


def sequence_loss(logits: Tensor, targets: Tensor) -> Tensor:
    """The full decoder's loss: cross-entropy summed over all real targets (padding ignored)."""
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1),
                           ignore_index=IGNORE, reduction="sum")


def check_size(vocab_size: int, embed_size: int, hidden_size: int, num_layers: int,
               cell: str = "lstm", tie_weights: bool = True, cutoffs: list[int] | None = None,
               tail_shrink: float = TAIL_SHRINK) -> None:
    """Refuse, before allocating anything, a model whose float32 weights exceed physical memory;
    `cutoffs` for an adaptive decoder."""
    V, E, H = vocab_size, embed_size, hidden_size
    recurrent = sum(GATES[cell] * H * (H + (E if k == 0 else H) + 1) for k in range(num_layers))
    decoder = V + (H * E if H != E else 0) if tie_weights else V * (H + 1)
    if cutoffs:
        decoder = (H * E if tie_weights and H != E else 0) + weight_count(
            E if tie_weights else H, V, cutoffs, tail_shrink, tie_weights)
    need = 4 * (V * E + recurrent + decoder)
    check_fits(need, f"the weights alone of a {cell} model with vocabulary {V}, embedding {E}, "
                     f"hidden size {H} and {num_layers} layers")


class LanguageModel(nn.Module):
    """Embedding, `num_layers` recurrent layers of one cell type, and a softmax decoder: full,
    or adaptive with `cutoffs` (and `tail_shrink` for untied tails; see rnnlab.lm.adaptive)."""

    def __init__(
        self,
        vocab_size: int,
        embed_size: int = 200,
        hidden_size: int = 200,
        num_layers: int = 2,
        cell: str = "lstm",
        dropout: float = 0.0,
        tie_weights: bool = True,
        init_range: float | None = None,
        dropout_input: float | None = None,
        dropout_hidden: float | None = None,
        dropout_output: float | None = None,
        dropout_words: float = 0.0,
        weight_drop: float = 0.0,
        decoder: str = "full",
        cutoffs: list[int] | None = None,
        tail_shrink: float = TAIL_SHRINK,
        **cell_options,
    ) -> None:
        super().__init__()
        rates = dict(dropout_input=dropout_input, dropout_hidden=dropout_hidden,
                     dropout_output=dropout_output, dropout_words=dropout_words,
                     weight_drop=weight_drop)
        check_settings(cell, num_layers, dropout)
        for name, rate in rates.items():
            if rate is not None:
                check_rate(name, rate)
        if min(vocab_size, embed_size, hidden_size) < 1:
            raise RnnlabError("vocabulary, embedding and hidden sizes must be positive")
        if decoder not in DECODERS:
            raise RnnlabError(f"decoder must be one of {', '.join(DECODERS)}, got {decoder!r}")
        self.adaptive = decoder == "adaptive"
        if self.adaptive != (cutoffs is not None):
            raise RnnlabError("the adaptive decoder needs cutoffs, and only it takes them")
        if self.adaptive:
            cutoffs = check_cutoffs(cutoffs, vocab_size)
            check_shrink(tail_shrink)
        check_size(vocab_size, embed_size, hidden_size, num_layers, cell, tie_weights, cutoffs,
                   tail_shrink)
        # Only an adaptive model names its decoder: a full model's config.json is as it was.
        adaptive = dict(decoder=decoder, cutoffs=cutoffs, tail_shrink=tail_shrink
                        ) if self.adaptive else {}
        self.config = dict(vocab_size=vocab_size, embed_size=embed_size, hidden_size=hidden_size,
                           num_layers=num_layers, cell=cell, dropout=dropout,
                           tie_weights=tie_weights, init_range=init_range, **cell_options,
                           **{k: v for k, v in rates.items() if v != REGULARISERS[k]}, **adaptive)
        self.dropout = dropout
        self.dropout_input, self.dropout_output = dropout_input, dropout_output
        self.dropout_words = dropout_words
        self.embedding = nn.Embedding(vocab_size, embed_size)
        self.rnn = Recurrent(cell, embed_size, hidden_size, num_layers,
                             dropout=dropout if dropout_hidden is None else dropout_hidden,
                             weight_drop=weight_drop, locked=dropout_hidden is not None,
                             **cell_options)
        self.projection = None
        self._decoder_t, self._decoder_t_key = None, None
        if tie_weights and hidden_size != embed_size:
            self.projection = nn.Linear(hidden_size, embed_size, bias=False)
        size = embed_size if tie_weights else hidden_size
        if self.adaptive:
            tied = self.embedding.weight if tie_weights else None
            self.decoder = AdaptiveSoftmax(size, vocab_size, cutoffs, tail_shrink, tied)
        else:
            self.decoder = nn.Linear(size, vocab_size)
        self.init_weights(init_range)
        if tie_weights and not self.adaptive:
            self.decoder.weight = self.embedding.weight

    def init_weights(self, init_range: float | None) -> None:
        """Uniform ±init_range for every weight (Zaremba et al.), or cell defaults and ±0.1."""
        with torch.no_grad():
            if init_range is not None:
                for p in self.parameters():
                    p.uniform_(-init_range, init_range)
                return
            # Embedding and decoder need small values; N(0, 1) rows blow up a tied softmax.
            self.embedding.weight.uniform_(-0.1, 0.1)
            if self.adaptive:
                self.decoder.init_weights()
                return
            self.decoder.weight.uniform_(-0.1, 0.1)
            self.decoder.bias.zero_()

    def zero_state(self, batch: int) -> State:
        """The all-zero initial state for `batch` streams."""
        return self.rnn.zero_state(batch, self.embedding.weight)

    def forward(
        self, tokens: Tensor, state: State | None = None, lengths: Tensor | None = None,
        activations: bool = False, targets: Tensor | None = None,
    ) -> tuple[Tensor, State] | tuple[Tensor, State, tuple[Tensor, Tensor]]:
        """Logits (T, B, V) for token ids (T, B), and the final state; `lengths` for padding.

        With `targets` (T, B), the summed −log P of its real targets (IGNORE skipped) comes
        instead of the logits. `activations=True` adds the last layer's output (T, B, H) before
        and after its dropout, what activation regularisation (rnnlab.lm.regularisers) penalises.
        """
        if self.dropout_words:
            x = embedding_dropout(self.embedding.weight, tokens, self.dropout_words, self.training)
        else:
            x = self.embedding(tokens)
        x = self._drop(x, self.dropout_input)
        raw, state = self.rnn(x, state, lengths)
        out = self._drop(raw, self.dropout_output)
        h = out if self.projection is None else self.projection(out)
        if targets is None:
            first = self.decoder(h)
        elif self.adaptive:
            first = self.decoder.loss(h, targets)
        else:
            first = sequence_loss(self.decoder(h).float(), targets)
        return (first, state, (raw, out)) if activations else (first, state)

    def _drop(self, x: Tensor, locked: float | None) -> Tensor:
        """Locked dropout at rate `locked` when given, else Zaremba's, fresh at every step."""
        if locked is None:
            return F.dropout(x, self.dropout, self.training)
        return locked_dropout(x, locked, self.training)

    @torch.no_grad()
    def step(self, token: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        """One step for token ids (B,): logits (B, V) (the adaptive decoder's log-probabilities)
        and the new state (no dropout, no graph).

        Runs each cell's own equations on its own parameters, skipping the sequence machinery,
        so that generating at batch 1 costs little more than the matrix products.
        """
        if state is None:
            state = self.zero_state(token.shape[0])
        x = self.embedding.weight[token]
        layers = []
        for k, cell in enumerate(self.rnn.cells):
            x, s = cell.forward(x, map_state(itemgetter(k), state))
            layers.append(s)
        new_state = map_state(lambda *s: torch.stack(s), *layers)
        if self.projection is not None:
            x = x @ self.projection.weight.T
        if self.adaptive:
            return self.decoder(x), new_state
        return torch.addmm(self.decoder.bias, x, self.decoder_t()), new_state

    def decoder_t(self) -> Tensor:
        """The decoder weight transposed into contiguous memory, rebuilt only when it changes.

        At batch 1 the (V, E) weight read through a transposed view costs a third of a step.
        """
        w = self.decoder.weight
        key = (w.data_ptr(), w._version)
        if self._decoder_t_key != key:
            self._decoder_t, self._decoder_t_key = w.detach().t().contiguous(), key
        return self._decoder_t

    def load_vectors(self, wv, vocab, freeze: bool = False) -> dict:
        """Copy word vectors into the embedding rows of matching tokens (exact, then case-folded).

        Unmatched rows keep their random initialisation. Returns the coverage counts.
        """
        E = self.embedding.weight.shape[1]
        dim = int(wv.vectors.shape[1])
        if dim != E:
            raise RnnlabError(f"word vectors have dimension {dim} but the embedding has {E}; "
                              f"use an embedding size of {dim}")
        if freeze and self.decoder.weight is self.embedding.weight:
            raise RnnlabError("frozen vectors cannot be tied to the decoder; turn off weight tying")
        # Lowercase matching goes both ways ("Dog" -> "dog", "the" -> "The"); the first
        # (most frequent) vector of a lowercased form wins.
        by_lower: dict[str, int] = {}
        for j, key in enumerate(wv.index_to_key):
            by_lower.setdefault(key.lower(), j)
        exact = lower = 0
        rows, sources = [], []
        for i, token in enumerate(vocab.itos):
            if token in wv.key_to_index:
                sources.append(wv.key_to_index[token])
                exact += 1
            elif token.lower() in by_lower:
                sources.append(by_lower[token.lower()])
                lower += 1
            else:
                continue
            rows.append(i)
        with torch.no_grad():
            if rows:
                vectors = torch.as_tensor(wv.vectors[sources], dtype=self.embedding.weight.dtype)
                # WordVectors.load drops such words; vectors built in Python are checked here.
                if not torch.isfinite(vectors).all():
                    raise RnnlabError("word vectors hold NaN or infinite values; "
                                      "they would make every loss NaN")
                self.embedding.weight[torch.tensor(rows)] = vectors
        self.embedding.weight.requires_grad_(not freeze)
        total = len(vocab.itos)
        return {"matched": exact + lower, "exact": exact, "lowercase": lower, "total": total,
                "coverage": (exact + lower) / total, "frozen": freeze}
