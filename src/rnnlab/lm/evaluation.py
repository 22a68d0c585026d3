"""The one evaluation of a language model: mean loss per token over a text, every token once.

Training (validation and test figures) and `rnnlab evaluate` both call `loss_sums`, so a run's
recorded validation perplexity is exactly what evaluating its model on the same file gives.

What is counted: every token the text pipeline makes of the file, end markers included (`</s>`
after each line; the newline at character level), each predicted once from everything before
it; the first from the start token "<S>". Nothing is dropped at the end.

Stream mode cuts the ids into `columns` pieces read side by side, each from a zero state but
from its true previous token (columns=1 is the exact probability of the whole text); each
column is read in blocks of EVAL_BPTT steps with the state carried. Sentence mode reads
`columns` sentences at a time, in file order, each from a zero state. Per-token losses come
from float32 logits and are summed in float64.

Dynamic evaluation (rnnlab.lm.dynamic) runs through this same loop: `learn` is called after
each block (a sentence batch) has been scored, with what was read, so that only the blocks
after it are predicted by the adapted weights; the scores never come from a graph-building pass.
The neural cache (rnnlab.lm.cache) is a model whose logits are its mixture's log-probabilities.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from rnnlab.lm.data import IGNORE, pad_sentences
from rnnlab.lm.distributed import Group

EVAL_BPTT = 256  # steps per block: only memory depends on it, not the result


def stream_columns(ids: Sequence[int], columns: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs and targets (T, columns): the stream cut into pieces, each target exactly once."""
    n = len(ids) - 1
    columns = max(1, min(columns, n))
    bounds = [round(b * n / columns) for b in range(columns + 1)]
    T = max(bounds[b + 1] - bounds[b] for b in range(columns))
    x = torch.zeros(T, columns, dtype=torch.long)
    y = torch.full((T, columns), IGNORE, dtype=torch.long)
    data = torch.tensor(ids)
    for b in range(columns):
        a, e = bounds[b], bounds[b + 1]
        x[: e - a, b] = data[a:e]
        y[: e - a, b] = data[a + 1 : e + 1]
    return x, y


# learn(inputs, targets, state read from or None, lengths or None), after a block is scored
Learn = Callable[[Tensor, Tensor, object, "Tensor | None"], None]


def _nll(logits: Tensor, target: Tensor,
         record: Callable[[Tensor], None] | None = None) -> tuple[float, int]:
    """Σ −log P(target) over real targets (float64 sum of float32 terms) and their count;
    `record` gets the real targets' losses, in (time, column) order."""
    losses = F.cross_entropy(logits.float().flatten(0, 1), target.flatten(), ignore_index=IGNORE,
                             reduction="none")
    if losses.device.type == "mps":  # no float64 there
        losses = losses.cpu()
    if record:
        record(losses[target.flatten().to(losses.device) != IGNORE])
    return float(losses.double().sum()), int((target != IGNORE).sum())


@torch.no_grad()
def loss_sums(model, encoded: Sequence, mode: str, context: list[int], columns: int,
              group: Group | None = None,
              progress: Callable[[int], None] | None = None, block: int = EVAL_BPTT,
              learn: Learn | None = None,
              record: Callable[[Tensor], None] | None = None) -> tuple[float, int]:
    """(Σ −log P, token count) of `encoded` (TextPipeline.encode's ids) under `model`.

    `context` is the start token's id (stream mode). In a process group each rank takes its
    share of the columns or sentence batches; the caller adds the ranks' sums. `progress` is
    called with the number of targets done after each block of `block` steps (stream mode).
    `learn`, if given, is called after each block is scored (see the module's docstring);
    `record` gets each block's per-token losses.
    """
    group = group or Group()
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    if mode == "sentence":
        batches = [encoded[i : i + columns] for i in range(0, len(encoded), columns)]
        for batch in group.share(batches):
            x, y, lengths = pad_sentences(batch)
            x, y = x.to(device), y.to(device)
            logits, _ = model(x, lengths=lengths)
            nll, n = _nll(logits, y, record)
            total, count = total + nll, count + n
            if learn:
                learn(x, y, None, lengths)
            if progress:
                progress(n)
    else:
        x, y = stream_columns(context + list(encoded), columns)
        span = group.span(x.shape[1])
        x, y, state = x[:, span].to(device), y[:, span].to(device), None
        for t in range(0, x.shape[0] if x.shape[1] else 0, block):
            read = state
            logits, state = model(x[t : t + block], read)
            nll, n = _nll(logits, y[t : t + block], record)
            total, count = total + nll, count + n
            if learn:
                learn(x[t : t + block], y[t : t + block], read, None)
            if progress:
                progress(n)
    model.train(was_training)
    return total, count


def summary(total: float, count: int, level: str) -> dict:
    """{"loss" (nats per token), "perplexity", "tokens"[, "bits_per_char"]} of summed losses."""
    loss = total / max(count, 1)
    out = {"loss": loss, "perplexity": math.exp(min(loss, 700.0)), "tokens": count}
    if level == "char":
        out["bits_per_char"] = loss / math.log(2)
    return out


def count_targets(encoded: Sequence, mode: str) -> int:
    """How many tokens `loss_sums` predicts for `encoded` (for a progress bar's total)."""
    return sum(len(s) - 1 for s in encoded) if mode == "sentence" else len(encoded)
