"""Scoring text with a trained language model: per-token probabilities and perplexity.

The model gives P(w_t | <S>, w_1, …, w_{t-1}) for every token (SPEC.md §4). A sentence's
log-probability is the sum of those logs, and its perplexity exp(−mean log P): the number of
equally likely choices that would leave the model as unsure as it was. At character level
the same mean, divided by ln 2, is bits per character.

"<S>" is the start of a sentence: `<s>` in sentence mode; in stream mode, where lines are
only separated, the end of the line before (`</s>`, or the newline at character level).

The model may live on any device: token tensors are built where its parameters are, and the
log-probabilities are summed in float64 (on the CPU for MPS, which has no float64).
"""

from __future__ import annotations

import math
import sys
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from rnnlab.errors import RnnlabError
from rnnlab.lm.data import IGNORE, encode_tokens, pad_sentences, read_text, tokenize_lines
from rnnlab.text.tokenize import get_tokenizer
from rnnlab.text.vocab import BOS, EOS
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


def start_token(config: dict) -> str:
    """The token standing for the start of a sentence under this model's level and mode."""
    if config["mode"] == "sentence":
        return BOS
    return "\n" if config["level"] == "char" else EOS


def start_ids(vocab, config: dict) -> list[int]:
    """The context every sentence is read from: the id of `start_token`."""
    token = start_token(config)
    if token not in vocab.stoi:
        raise RnnlabError(f"the model's vocabulary has no start token {token!r}")
    return [vocab.stoi[token]]


def encode_prompt(vocab, config: dict, text: str) -> tuple[list[int], list[str]]:
    """Ids of the tokens of `text` (no markers) and the tokens that were mapped to `<unk>`."""
    tokens = get_tokenizer(config["level"], lower=config.get("lower", False))(text)
    unknown = [t for t in tokens if t not in vocab.stoi]
    if unknown and vocab.unk_id is None:
        raise RnnlabError(f"{unknown[0]!r} is not in the model's vocabulary, which has no <unk>")
    return vocab.encode(tokens), unknown


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


def score_sentence(model, vocab, config: dict, text: str, eos: bool = True) -> SentenceScore:
    """P(w_t | <S>, w_1 … w_{t-1}) for each token of `text` (and of the end marker if `eos`)."""
    tokens = next(tokenize_lines([text], config["level"], config["mode"], config.get("lower", False)),
                  None)
    if not tokens:
        raise RnnlabError("nothing to score: the sentence has no tokens")
    if config["mode"] == "sentence":
        tokens = tokens[1:]  # tokenize_lines put the start marker first; it is the context
    if not eos:
        tokens = tokens[:-1]
    context = start_ids(vocab, config)
    ids = vocab.encode(tokens)
    model.eval()
    with torch.inference_mode():
        logits, _ = model(torch.tensor(context + ids[:-1], device=model_device(model)).view(-1, 1))
        # One sentence's logits are small: the table is read on the CPU.
        logp = torch.log_softmax(logits[:, 0].cpu().double(), -1)
        chosen = logp[torch.arange(len(ids)), torch.tensor(ids)].tolist()
    check_loss(-sum(chosen) / len(ids))
    return SentenceScore(text, [TokenScore(t, vocab.itos[i], i, math.exp(lp), lp,
                                           unknown=t not in vocab.stoi)
                                for t, i, lp in zip(tokens, ids, chosen)])


def _stream_columns(ids: list[int], batch: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs and targets (T, B): the stream cut into `batch` pieces, each target exactly once.

    A piece starts from a zero state but from its true previous token, so with batch 1 the
    result is exactly the model's probability of the whole stream.
    """
    n = len(ids) - 1
    batch = max(1, min(batch, n))
    bounds = [round(b * n / batch) for b in range(batch + 1)]
    T = max(bounds[b + 1] - bounds[b] for b in range(batch))
    x = torch.zeros(T, batch, dtype=torch.long)
    y = torch.full((T, batch), IGNORE, dtype=torch.long)
    data = torch.tensor(ids)
    for b in range(batch):
        a, e = bounds[b], bounds[b + 1]
        x[: e - a, b] = data[a:e]
        y[: e - a, b] = data[a + 1 : e + 1]
    return x, y


def _nll_sum(logits: torch.Tensor, target: torch.Tensor) -> float:
    """Σ −log P(target) over the targets that are not IGNORE, summed in float64."""
    if logits.device.type == "mps":  # no float64 there
        logits, target = logits.cpu(), target.cpu()
    return float(F.cross_entropy(logits.flatten(0, 1).double(), target.flatten(),
                                 ignore_index=IGNORE, reduction="sum"))


def evaluate_ids(model, vocab, config: dict, encoded, batch: int = 16, bptt: int = 256) -> dict:
    """Loss, perplexity and bits per token of already-encoded text (see `evaluate`)."""
    total, count = 0.0, 0
    device = model_device(model)
    model.eval()
    with torch.inference_mode():
        if config["mode"] == "sentence":
            for i in range(0, len(encoded), batch):
                x, y, lengths = pad_sentences(encoded[i : i + batch])
                # lengths stay on the CPU, where packing a padded batch reads them.
                logits, _ = model(x.to(device), lengths=lengths)
                total += _nll_sum(logits, y.to(device))
                count += int((y != IGNORE).sum())
        else:
            x, y = _stream_columns(start_ids(vocab, config) + list(encoded), batch)
            x, y = x.to(device), y.to(device)
            state = None
            for t in range(0, x.shape[0], bptt):
                logits, state = model(x[t : t + bptt], state)
                target = y[t : t + bptt]
                total += _nll_sum(logits, target)
                count += int((target != IGNORE).sum())
    if count == 0:
        raise RnnlabError("nothing to evaluate: the text has no tokens")
    loss = total / count
    check_loss(loss)
    return {"tokens": count, "loss": loss, "ppl": math.exp(loss), "bits": loss / math.log(2),
            "level": config["level"]}


def evaluate(model, vocab, config: dict, path: str | Path, batch: int = 16, bptt: int = 256,
             encoding: str = "utf-8", errors: str = "strict") -> dict:
    """Mean loss (nats per token), perplexity and bits per token of a text file.

    Every token is predicted once, end markers included; at character level "loss" is nats
    per character and "bits" bits per character. In stream mode the file is cut into `batch`
    pieces read side by side (batch 1: exact, slower). `encoding`/`errors` as for `read_lines`.
    "oov" counts the tokens not in the vocabulary, scored as `<unk>` ("oov_rate": their share
    of "tokens"); a literal `<unk>` in the text is in the vocabulary and not counted.
    """
    lines = read_text(path, encoding, errors)
    oov = 0

    def counted(token_lines):  # the tokens pass by once, on their way to being encoded
        nonlocal oov
        for tokens in token_lines:
            oov += sum(t not in vocab.stoi for t in tokens)
            yield tokens

    token_lines = tokenize_lines(lines, config["level"], config["mode"], config.get("lower", False))
    result = evaluate_ids(model, vocab, config, encode_tokens(counted(token_lines), vocab,
                                                              config["mode"]), batch, bptt)
    return {**result, "oov": oov, "oov_rate": oov / result["tokens"]}


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
