"""Scoring a sentence: every token's probability given everything before it, as a table.

The model gives P(w_t | <S>, w_1, …, w_{t-1}) for every token (docs/lecture.md). A sentence's
log-probability is the sum of those logs, and its perplexity exp(−mean log P): the number of
equally likely choices that would leave the model as unsure as it was. At character level
the same mean, divided by ln 2, is bits per character. "<S>" is the pipeline's start token.

The model may live on any device: token tensors are built where its parameters are, and the
log-probabilities are summed in float64 on the CPU.
"""

from __future__ import annotations

import math
import sys
import unicodedata
from dataclasses import dataclass, field

import torch

from rnnlab.errors import RnnlabError
from rnnlab.text.width import display_width, pad

# exp() of a larger loss overflows; no model with sane weights comes near e^-709 per token.
MAX_LOSS = math.log(sys.float_info.max)
NOT_FINITE = "the model's outputs are not finite (NaN or infinite logits): its weights overflow"


def check_logits(logits: torch.Tensor) -> None:
    """Raise RnnlabError when the model's logits hold NaN or infinite values."""
    if not bool(torch.isfinite(logits).all()):
        raise RnnlabError(NOT_FINITE)


def check_loss(loss: float) -> None:
    """Raise RnnlabError when a mean loss (nats per token) is NaN, infinite or past MAX_LOSS."""
    if not math.isfinite(loss):
        raise RnnlabError(NOT_FINITE)
    if loss > MAX_LOSS:
        raise RnnlabError(f"the model's outputs overflow (a loss of {loss:.3g} nats per token): "
                          f"its weights are far too large")


def model_device(model) -> torch.device:
    """The device of the model's parameters, where its inputs have to be."""
    return next(model.parameters()).device


@dataclass
class TokenScore:
    """One row of a sentence's score table."""

    token: str  # as written
    mapped: str  # as the model sees it (<unk> for unknown words)
    id: int
    prob: float  # P(token | everything before it)
    logprob: float  # natural log
    unknown: bool = False  # not in the vocabulary (a literal "<unk>" in the text is in it)


@dataclass
class SentenceScore:
    """Every token's probability given its prefix, and the sentence's totals."""

    text: str
    rows: list[TokenScore] = field(default_factory=list)

    @property
    def logprob(self) -> float:
        """log P(sentence) = Σ_t log P(w_t | <S>, w_1, …, w_{t-1})."""
        return sum(r.logprob for r in self.rows)

    @property
    def perplexity(self) -> float:
        """exp of the mean negative log-probability per token."""
        return math.exp(-self.logprob / len(self.rows))

    @property
    def oov(self) -> int:
        """How many tokens are not in the vocabulary and were scored as `<unk>`."""
        return sum(r.unknown for r in self.rows)


@torch.inference_mode()
def score_ids(model, context: list[int], ids: list[int]) -> list[float]:
    """log P(ids[t] | context, ids[:t]) for every t, in float64 (model put in eval mode)."""
    model.eval()
    logits, _ = model(torch.tensor(context + ids[:-1], device=model_device(model)).view(-1, 1))
    # One sentence's logits are small: they are read on the CPU.
    logp = torch.log_softmax(logits[:, 0].cpu().double(), -1)
    chosen = logp[torch.arange(len(ids)), torch.tensor(ids)].tolist()
    check_loss(-sum(chosen) / len(ids))
    return chosen


OOV_MARK = "*"  # after <unk> in a score table: the token as written is not in the vocabulary


# Characters that reorder, hide or break a terminal line (controls, bidi overrides, joiners,
# line separators, private use, surrogates, unassigned): shown as their code point.
HIDDEN_CATEGORIES = ("Cc", "Cf", "Zl", "Zp", "Co", "Cs", "Cn")
MARK_CATEGORIES = ("Mn", "Mc", "Me")
VISIBLE_WHITESPACE = {" ": "␣", "\n": "\\n", "\t": "\\t"}


def show_text(text: str, whitespace: bool = False) -> str:
    """`text` safe on a terminal line: hidden characters, and combining marks with no base
    character before them (they would join whatever is printed first), shown as U+XXXX;
    with `whitespace`, spaces, newlines and tabs shown as ␣, \\n and \\t."""
    shown, after_base = [], False
    for ch in text:
        category = unicodedata.category(ch)
        if whitespace and ch in VISIBLE_WHITESPACE:
            shown.append(VISIBLE_WHITESPACE[ch])
            after_base = False
        elif category in HIDDEN_CATEGORIES or (category in MARK_CATEGORIES and not after_base):
            shown.append(f"U+{ord(ch):04X}")
            after_base = False
        else:
            shown.append(ch)
            after_base = after_base if category in MARK_CATEGORIES else not ch.isspace()
    return "".join(shown)


def show_token(token: str) -> str:
    """A token printable in one table cell: whitespace made visible, hidden characters and
    detached combining marks as U+XXXX (`show_text`)."""
    return show_text(token, whitespace=True)


def format_table(score: SentenceScore) -> str:
    """The lecture's chain of conditional probabilities as a table, with the sentence's totals."""
    width = max(8, *(display_width(show_token(r.token)) for r in score.rows))
    header = f"{'t':>3}  {pad('token', width)}  {pad('as', width)}  {'P(w_t | <S>, …)':>16}  {'log P':>8}"
    lines = [header, "-" * display_width(header)]
    for t, r in enumerate(score.rows, 1):
        mapped = r.mapped + OOV_MARK if r.unknown else r.mapped if r.mapped != r.token else ""
        lines.append(f"{t:>3}  {pad(show_token(r.token), width)}  {pad(show_token(mapped), width)}  "
                     f"{r.prob:>16.6f}  {r.logprob:>8.3f}")
    totals = (f"total log P = {score.logprob:.3f} nats ({score.logprob / math.log(2):.3f} bits) "
              f"over {len(score.rows)} tokens; perplexity {score.perplexity:.2f}")
    if score.oov:
        totals += f"; {score.oov} not in the vocabulary (<unk>{OOV_MARK})"
    lines.append(totals)
    return "\n".join(lines)
