"""Generation as a stream of server-sent events, each token with the distribution it came from.

The model reads the prime and then one token per step on a worker thread, so the event loop
keeps serving other requests; between tokens the stream checks whether its client is still
there and stops when it has gone. A poem form (rnnlab.lm.forms) masks each step's logits and
ends the stream after the poem's last line, as `LM.generate` does, both set up by `LM.prepare`.
`Jobs` admits a fixed number of generations at once, lets a few more wait, and refuses the rest,
so a busy studio answers 503 instead of slowing everyone.
"""

from __future__ import annotations

import json
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass

import anyio
import torch

from rnnlab.errors import RnnlabError
from rnnlab.lm import LM
from rnnlab.lm.bundle import Prepared
from rnnlab.lm.forms import make_form
from rnnlab.lm.generate import allowed_distribution, check_options, draw

TOP = 10  # the alternatives each token event shows


class BusyError(Exception):
    """Every generation slot and every waiting place is taken."""


class Jobs:
    """At most `running` generations at once and `waiting` more in line; the rest are BusyError."""

    def __init__(self, running: int = 16, waiting: int = 4) -> None:
        self.slots = anyio.Semaphore(running)
        self.capacity = running + waiting
        self.admitted = 0

    def reserve(self) -> None:
        """Take a place (running or waiting), or raise BusyError; `release` gives it back."""
        if self.admitted >= self.capacity:
            raise BusyError
        self.admitted += 1

    def release(self) -> None:
        """Give back the place `reserve` took."""
        self.admitted -= 1


@dataclass(frozen=True)
class Options:
    """What to generate: the prime, the sampling settings (see rnnlab.lm.generate) and the
    poem's form, rhyme and script (see LM.generate)."""

    prime: str
    length: int
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    seed: int | None = None
    form: int | None = None
    lines: int | None = None
    acrostic: str | None = None
    rhyme: bool = False
    script: str | None = None
    after: tuple[int, ...] = ()  # a branch: the ids written after the prime so far

    def check(self) -> None:
        """Raise RnnlabError for a setting that has no meaning."""
        check_options(self.length, self.temperature, self.top_k, self.top_p, 0)
        make_form(self.form, self.lines, self.acrostic, 0, self.rhyme)

    def prepare(self, lm: LM) -> Prepared:
        """The generation ready for its first draw: the prime, then a branch's ids, read
        against the form."""
        prepared = lm.prepare(self.prime, self.length, 0, self.form, self.lines, self.acrostic,
                              self.rhyme, self.script)
        prepared.context.extend(self.after)
        if prepared.decoder is not None and self.after:
            prepared.decoder.read_prime([lm.vocab.itos[i] for i in self.after])
            prepared.length = prepared.decoder.max_tokens()
        return prepared


def _event(data: dict) -> str:
    return f"data: {json.dumps(data, ensure_ascii=False)}\n\n"


@torch.inference_mode()
def _read(lm: LM, ids: list[int]):
    """The logits (V,) after reading `ids` in one pass, and the state."""
    out, state = lm.model(torch.tensor(ids, device=lm.device).view(-1, 1))
    return out[-1, 0], state


async def events(lm: LM, prepared: Prepared, options: Options, jobs: Jobs,
                 request) -> AsyncIterator[str]:
    """The event stream of one generation `prepared` by `options.prepare`; the caller has
    reserved its place in `jobs`. A branch's chosen token (the last of `options.after`) comes
    first, as the page cannot tell how it is spaced. A model that fails mid-way (non-finite
    logits) ends the stream with an "error" event."""
    try:
        written = options.prime
        if options.after:
            words = [prepared.token(lm.vocab.itos[i]) for i in options.after]
            pieces = list(lm.pipeline.pieces(words, after=written))
            written += "".join(pieces)
            yield _event({"branch": words[-1], "piece": pieces[-1]})
        async with jobs.slots:
            async for event in _tokens(lm, prepared, options, request, written):
                yield event
    except RnnlabError as e:
        yield _event({"error": str(e)})
    finally:
        jobs.release()


async def _tokens(lm: LM, prepared: Prepared, options: Options, request,
                  written: str) -> AsyncIterator[str]:
    logits, state = await anyio.to_thread.run_sync(_read, lm, prepared.context)
    seed = options.seed if options.seed is not None else random.randrange(2**31)
    generator = torch.Generator().manual_seed(seed)
    count, decoder = 0, prepared.decoder
    for _ in range(0 if decoder is not None and decoder.done else prepared.length):
        if await request.is_disconnected():
            return
        logits = logits.float().cpu()
        if decoder is not None:
            logits = decoder.mask(logits)
        probs, allowed = allowed_distribution(logits, options.temperature, options.top_k,
                                              options.top_p)
        j = draw(probs, generator)
        token = j if allowed is None else int(allowed[j])
        top_p, top_j = torch.topk(probs, min(TOP, len(probs)))
        top_ids = [i if allowed is None else int(allowed[i]) for i in top_j.tolist()]
        top = [[prepared.token(lm.vocab.itos[i]), round(p, 5)]
               for p, i in zip(top_p.tolist(), top_ids) if p > 0 or decoder is None]
        top_ids = top_ids[: len(top)]  # the masked tokens (probability 0) are left out
        word = prepared.token(lm.vocab.itos[token])
        piece = next(lm.pipeline.pieces([word], after=written))
        written += piece
        count += 1
        # The ids let the page branch: it sends back the tokens so far exactly (?ids=).
        yield _event({"token": word, "id": token, "piece": piece,
                      "prob": round(float(probs[j]), 5), "top": top, "top_ids": top_ids})
        if decoder is not None and decoder.advance(token):
            break
        logits, state = await anyio.to_thread.run_sync(lm.step, token, state)
    yield _event({"done": True, "tokens": count, "seed": seed})
