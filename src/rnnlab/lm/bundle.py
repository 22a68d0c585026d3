"""A trained language model as one object: the network, its vocabulary and its text pipeline.

`LM.load(path)` reads a model folder or a training run's folder (its best/ model, else last/);
`score`, `evaluate`, `generate`, `write`, `step` and `activations` are everything the command
line, the demo and the diagnostics do with a model. Example:

    lm = LM.load("ptb-small")
    lm.score("the cat sat on the mat").perplexity
    "".join(lm.write("the meaning of", length=20, seed=1))
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from rnnlab.diagnostics import gate_activations
from rnnlab.errors import RnnlabError
from rnnlab.lm import evaluation
from rnnlab.lm.cache import Cache, Cached
from rnnlab.lm.checkpoint import load_weights, model_folder, read_config, save_model
from rnnlab.lm.data import read_text
from rnnlab.lm.dynamic import Adapter, Dynamic, check_stats, gradient_rms
from rnnlab.lm.forms import FormDecoder, make_form
from rnnlab.lm.generate import sample_ids
from rnnlab.lm.model import LanguageModel
from rnnlab.lm.score import MAX_LOSS, SentenceScore, TokenScore, check_logits, check_loss, score_ids
from rnnlab.text.pipeline import TextPipeline
from rnnlab.text.script import check_script, converter, model_script
from rnnlab.text.vocab import EOS, Vocabulary

DEFAULT_EVAL_COLUMNS = 10  # training's default eval_batch_size; used when a folder names none


def _counting(progress: Callable[[int, int], None] | None,
              total: int) -> Callable[[int], None] | None:
    """A callback that adds up the tokens read and reports progress(done, total)."""
    if progress is None:
        return None
    done = 0

    def advance(n: int) -> None:
        nonlocal done
        done += n
        progress(done, total)

    return advance


@dataclass
class Activations:
    """What each layer holds after reading each token: `tokens` (as the model saw them, the
    start token first) and per layer a dict of (T, H) arrays: "h", "C" for the LSTM family,
    and the gates ("i", "f", "o"; "z", "r" for the GRU)."""

    tokens: list[str]
    layers: list[dict[str, np.ndarray]]


@dataclass
class Prepared:
    """A generation ready for its first draw: the ids read first (start token and prime), the
    prime's unknown tokens, the most tokens to draw, the poem's decoder (or None) and the
    conversion of each drawn token to the caller's script (or None)."""

    context: list[int]
    unknown: list[str]
    length: int
    decoder: FormDecoder | None
    convert: Callable[[str], str] | None

    def token(self, token: str) -> str:
        """A drawn token as the caller reads it (in the caller's script)."""
        return token if self.convert is None else self.convert(token)


class LM:
    """A language model ready to use; see the module's docstring."""

    def __init__(self, model: LanguageModel, vocab: Vocabulary, pipeline: TextPipeline,
                 config: dict | None = None) -> None:
        if len(vocab) != model.config["vocab_size"]:
            raise RnnlabError(f"vocabulary has {len(vocab)} tokens but the model expects "
                              f"{model.config['vocab_size']}")
        self.model, self.vocab, self.pipeline = model, vocab, pipeline
        self.config = dict(config or {})  # the rest of config.json: evaluation columns, epoch...

    @classmethod
    def load(cls, path: str | Path, device: str | torch.device = "cpu") -> LM:
        """The model in a model folder, or in a training run's folder (best/, else last/)."""
        folder = model_folder(path)
        config = read_config(folder)
        vocab = Vocabulary.load(folder / "vocab.json")
        model = load_weights(folder, config, vocab)
        return cls(model.to(device).eval(), vocab, TextPipeline.from_config(config), config)

    def save(self, path: str | Path, extra: dict | None = None,
             training: dict | None = None) -> Path:
        """Write a model folder (see checkpoint.save_model); `extra` joins config.json."""
        # The script training recorded goes with the model; a model without one is read as before.
        script = {"script": self.config["script"]} if "script" in self.config else {}
        config = {**self.pipeline.to_config(), "eval_batch_size": self.eval_batch_size,
                  **script, **(extra or {})}
        return save_model(path, self.model, self.vocab, config, training)

    @property
    def device(self) -> torch.device:
        """Where the model's parameters are."""
        return next(self.model.parameters()).device

    @property
    def script(self) -> str:
        """"simplified" or "traditional": config.json's "script", else read from the vocabulary."""
        return model_script(self.config, self.vocab.itos)

    @property
    def eval_batch_size(self) -> int:
        """Columns (stream) or sentences read side by side when evaluating, as in training."""
        return int(self.config.get("eval_batch_size", DEFAULT_EVAL_COLUMNS))

    def score(self, text: str, eos: bool = True) -> SentenceScore:
        """P(w_t | <S>, w_1 … w_{t-1}) for each token of `text` (and of the end marker if `eos`)."""
        tokens = next(self.pipeline.token_lines([text]), None)
        if not tokens or (self.pipeline.level == "char" and tokens == ["\n"]):
            raise RnnlabError("nothing to score: the sentence has no tokens")
        if self.pipeline.mode == "sentence":
            tokens = tokens[1:]  # the start marker is the context
        if not eos:
            tokens = tokens[:-1]
        ids = self.vocab.encode(tokens)
        chosen = score_ids(self.model, self.pipeline.start_ids(self.vocab), ids)
        return SentenceScore(text, [TokenScore(t, self.vocab.itos[i], i, math.exp(lp), lp,
                                               unknown=t not in self.vocab.stoi)
                                    for t, i, lp in zip(tokens, ids, chosen)])

    def evaluate(self, source: str | Path | Iterable[str], batch_size: int | None = None,
                 encoding: str = "utf-8", errors: str = "strict",
                 progress: Callable[[int, int], None] | None = None,
                 dynamic: Dynamic | None = None, cache: Cache | None = None) -> dict:
        """Mean loss per token of a text file (or lines): {"loss", "perplexity", "tokens",
        "oov", "oov_rate"[, "bits_per_char"]}, counted as rnnlab.lm.evaluation says.

        `batch_size`: columns read side by side (default: as the model was validated in
        training, so the figures agree). `progress(done, total)` is called as tokens are read.
        "oov" counts tokens not in the vocabulary, scored as `<unk>`. With `dynamic` (see
        rnnlab.lm.dynamic) or `cache` (rnnlab.lm.cache, stream mode), one at a time, the text
        is read as one column, and the result holds the static figures of that reading and,
        under "dynamic" or "cache", the other ones with their settings; `batch_size` does not
        apply. The model is not changed.
        """
        if dynamic is not None and cache is not None:
            raise RnnlabError("dynamic evaluation and the neural cache are evaluated separately")
        if cache is not None and self.pipeline.mode == "sentence":
            raise RnnlabError("the neural cache reads a stream; this model reads sentences")
        settings = dynamic.resolved(self.pipeline.level) if dynamic is not None else None
        encoded, oov = self._encode(source, encoding, errors)
        mode, context = self.pipeline.mode, self.pipeline.start_ids(self.vocab)
        rms = settings.computed() if settings is not None else None
        if rms is not None:
            check_stats(self.model, rms)
        stats = None  # a training text to read for the RMS rule's statistics
        if settings is not None and settings.stats is not None and rms is None:
            stats, _ = self._encode(settings.stats, encoding, errors)
        passes = 1 if settings is None and cache is None else 2
        total_targets = passes * evaluation.count_targets(encoded, mode)
        total_targets += evaluation.count_targets(stats, mode) if stats is not None else 0
        step = _counting(progress, total_targets)
        columns = (batch_size or self.eval_batch_size) if passes == 1 else 1
        block = settings.bptt if settings is not None else evaluation.EVAL_BPTT
        total, count = evaluation.loss_sums(self.model, encoded, mode, context, columns,
                                            progress=step, block=block)
        result = {**self._summary(total, count), "oov": oov, "oov_rate": oov / count}
        if cache is not None:
            total, count = evaluation.loss_sums(Cached(self.model, cache), encoded, mode, context,
                                                1, progress=step)
            named = {"size": cache.size, "theta": cache.theta, "lambda": cache.lam}
            return {**result, "cache": {**self._summary(total, count), **named}}
        if settings is None:
            return result
        if stats is not None:
            rms = gradient_rms(self.model, stats, mode, context, settings.bptt, step)
        adapter = Adapter(self.model, settings, rms)
        total, count = evaluation.loss_sums(adapter.model, encoded, mode, context, 1,
                                            progress=step, block=settings.bptt, learn=adapter)
        if not total / count <= MAX_LOSS:  # NaN too: the steps blew the copy's weights up
            raise RnnlabError(f"dynamic evaluation diverged at η {settings.lr:g} (the adapted "
                              f"copy overflowed; the model is unchanged): try a smaller "
                              f"--dynamic-lr")
        rule = {"rule": "rms" if rms else "sgd", "lr": settings.lr, "decay": settings.decay,
                "bptt": settings.bptt}
        return {**result, "dynamic": {**self._summary(total, count), **rule}}

    def gradient_rms(self, source: str | Path | Iterable[str], bptt: int | None = None,
                     encoding: str = "utf-8", errors: str = "strict",
                     progress: Callable[[int, int], None] | None = None) -> list[torch.Tensor]:
        """The RMS rule's √MS of a training text, to pass as `Dynamic(stats=...)` to several
        evaluations (tuning η, say) without reading the text each time; `bptt`: the segments'
        length, as the evaluation's (default: Dynamic's)."""
        bptt = Dynamic(bptt=bptt).resolved(self.pipeline.level).bptt
        encoded, _ = self._encode(source, encoding, errors)
        step = _counting(progress, evaluation.count_targets(encoded, self.pipeline.mode))
        return gradient_rms(self.model, encoded, self.pipeline.mode,
                            self.pipeline.start_ids(self.vocab), bptt, step)

    def _encode(self, source: str | Path | Iterable[str], encoding: str,
                errors: str) -> tuple[list, int]:
        """The ids of a text file (or lines), as the pipeline encodes them, and how many of its
        tokens are not in the vocabulary."""
        lines = read_text(source, encoding, errors) if isinstance(source, (str, Path)) else source
        oov = 0

        def counted(token_lines):  # the tokens pass by once, on their way to being encoded
            nonlocal oov
            for tokens in token_lines:
                oov += sum(t not in self.vocab.stoi for t in tokens)
                yield tokens

        return self.pipeline.encode_tokens(counted(self.pipeline.token_lines(lines)), self.vocab), oov

    def _summary(self, total: float, count: int) -> dict:
        """evaluation.summary of summed losses; RnnlabError for no tokens or a non-finite loss."""
        if count == 0:
            raise RnnlabError("nothing to evaluate: the text has no tokens")
        check_loss(total / count)
        return evaluation.summary(total, count, self.pipeline.level)

    def prepare(self, prime: str = "", length: int = 100, beam: int = 0, form: int | None = None,
                lines: int | None = None, acrostic: str | None = None, rhyme: bool = False,
                script: str | None = None) -> Prepared:
        """Everything a generation needs before its first draw (see `generate`); the studio
        streams from it too. Raises RnnlabError for settings that clash or a prime that does
        not fit the form."""
        from_model = None
        poem = make_form(form, lines, acrostic, beam, rhyme)
        if script is not None:
            check_script(script)
            own = self.script
            to_model, from_model = converter(script, own), converter(own, script)
            prime = to_model(prime)
            acrostic = to_model(acrostic) if acrostic else acrostic
            poem = make_form(form, lines, acrostic, beam, rhyme)  # the acrostic as the model reads it
        decoder = None
        if poem is not None:
            decoder = FormDecoder(poem, self.vocab, self.pipeline)
            decoder.read_prime(self.pipeline.tokenize(prime))
            length = decoder.max_tokens()
        ids, unknown = self.pipeline.encode_prompt(prime, self.vocab)
        return Prepared(self.pipeline.start_ids(self.vocab) + ids, unknown, length, decoder,
                        from_model)

    def generate(self, prime: str = "", length: int = 100, temperature: float = 1.0,
                 top_k: int = 0, top_p: float = 1.0, seed: int | None = None, beam: int = 0,
                 stop_at_eos: bool = False, avoid_unk: bool = False, form: int | None = None,
                 lines: int | None = None, acrostic: str | None = None, rhyme: bool = False,
                 script: str | None = None) -> Iterator[str]:
        """Continue `prime` by up to `length` tokens, yielding each token as it is drawn.

        beam > 0 yields the most probable continuation instead (at the end). `stop_at_eos`
        ends at `</s>`; `avoid_unk` never emits `<unk>`; unknown prime words are read as
        `<unk>` (`pipeline.encode_prompt` tells which). The same seed gives the same text.
        `form` (5 or 7 characters a line), `lines` (4 or 8) and `acrostic` (line i starts with
        its i-th character) write one poem of that shape, the prime being its start, and end
        after its last "。" (`length` does not apply); see rnnlab.lm.forms. `rhyme` (with a
        form) ends the even lines in one rhyme, by modern Mandarin finals, not the Tang rhyme
        tables (see rnnlab.lm.rhyme). `script` ("simplified" or "traditional") is the script
        of the prime, the acrostic and the text yielded, converted from and to the model's own
        (see rnnlab.text.script).
        """
        p = self.prepare(prime, length, beam, form, lines, acrostic, rhyme, script)
        eos_id = self.vocab.stoi.get(EOS) if stop_at_eos else None
        banned = self.vocab.unk_id if avoid_unk else None
        drawn = sample_ids(self.model, p.context, p.length, temperature, top_k, top_p, seed, beam,
                           eos_id, banned, p.decoder)
        return (p.token(self.vocab.itos[i]) for i in drawn)

    def write(self, prime: str = "", **options) -> Iterator[str]:
        """The text that continues `prime`, piece by piece as `generate` draws tokens."""
        return self.pipeline.pieces(self.generate(prime, **options), after=prime)

    @torch.inference_mode()
    def step(self, token: int, state=None) -> tuple[torch.Tensor, object]:
        """Feed one token id: (logits over the vocabulary (V,), the new state)."""
        self.model.eval()
        logits, state = self.model.step(torch.tensor([token], device=self.device), state)
        check_logits(logits)
        return logits[0], state

    @torch.inference_mode()
    def activations(self, text: str) -> Activations:
        """Every layer's h (and C) and gates after each token of `text`, from the start token."""
        ids, _ = self.pipeline.encode_prompt(text, self.vocab)
        ids = self.pipeline.start_ids(self.vocab) + ids
        self.model.eval()
        cells = self.model.rnn.cells
        states = [cell.zero_state(1, self.model.embedding.weight) for cell in cells]
        layers: list[dict[str, list]] = [{} for _ in cells]
        for token in ids:
            x = self.model.embedding.weight[token].unsqueeze(0)
            for k, cell in enumerate(cells):
                gates = gate_activations(cell, x, states[k])
                x, states[k] = cell(x, states[k])
                record = {"h": x, **({"C": states[k][1]} if cell.has_cell_state else {}), **gates}
                for name, value in record.items():
                    layers[k].setdefault(name, []).append(value[0].float().cpu().numpy())
        return Activations([self.vocab.itos[i] for i in ids],
                           [{k: np.stack(v) for k, v in layer.items()} for layer in layers])

    def memory(self, text: str, position: int) -> tuple[list[str], list[float]]:
        """How much each earlier token still matters to the token at `position`: the tokens as
        `activations` lists them (start token first) up to that position, and for each earlier
        k the gradient norm ‖∂ log p(x_t | x_<t) / ∂ e_k‖ over its input embedding e_k."""
        ids, _ = self.pipeline.encode_prompt(text, self.vocab)
        ids = self.pipeline.start_ids(self.vocab) + ids
        if not 1 <= position < len(ids):
            raise RnnlabError(f"position must be between 1 and {len(ids) - 1} (the text's "
                              f"tokens after the start token), got {position}")
        self.model.eval()
        with torch.enable_grad():
            inputs = self.model.embedding.weight[ids[:position]].detach().requires_grad_()
            out, _ = self.model.rnn(inputs.unsqueeze(1))
            if self.model.projection is not None:
                out = self.model.projection(out)
            logp = torch.log_softmax(self.model.decoder(out[-1, 0]), -1)[ids[position]]
            (grad,) = torch.autograd.grad(logp, inputs)
        return ([self.vocab.itos[i] for i in ids[:position + 1]],
                grad.norm(dim=-1).tolist())
