"""Generation as a stream of server-sent events, each token with the distribution it came from.

The model reads the prime and then one token per step on a worker thread, so the event loop
keeps serving other requests; between tokens the stream checks whether its client is still
there and stops when it has gone. `Jobs` admits a fixed number of generations at once, lets a
few more wait, and refuses the rest, so a busy studio answers 503 instead of slowing everyone.
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
    """What to generate: the prime and the sampling settings (see rnnlab.lm.generate)."""

    prime: str
    length: int
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    seed: int | None = None

    def check(self) -> None:
        """Raise RnnlabError for a setting that has no meaning."""
        check_options(self.length, self.temperature, self.top_k, self.top_p, 0)


def _event(data: dict) -> str:
    return f"data: {json.dumps(data, ensure_ascii=False)}\n\n"


@torch.inference_mode()
def _read(lm: LM, ids: list[int]):
    """The logits (V,) after reading `ids` in one pass, and the state."""
    out, state = lm.model(torch.tensor(ids, device=lm.device).view(-1, 1))
    return out[-1, 0], state


async def events(lm: LM, context: list[int], options: Options, jobs: Jobs,
                 request, lead: dict | None = None) -> AsyncIterator[str]:
    """The event stream of one generation after the ids `context` (start token and prime);
    the caller has reserved its place in `jobs`. `lead`, when given, is sent first (a
    branch's chosen token). A model that fails mid-way (non-finite logits) ends the stream
    with an "error" event."""
    try:
        if lead is not None:
            yield _event(lead)
        async with jobs.slots:
            async for event in _tokens(lm, context, options, request):
                yield event
    except RnnlabError as e:
        yield _event({"error": str(e)})
    finally:
        jobs.release()


async def _tokens(lm: LM, context: list[int], options: Options, request) -> AsyncIterator[str]:
    logits, state = await anyio.to_thread.run_sync(_read, lm, context)
    seed = options.seed if options.seed is not None else random.randrange(2**31)
    generator = torch.Generator().manual_seed(seed)
    written, count = options.prime, 0
    for _ in range(options.length):
        if await request.is_disconnected():
            return
        probs, allowed = allowed_distribution(logits.float().cpu(), options.temperature,
                                              options.top_k, options.top_p)
        j = draw(probs, generator)
        token = j if allowed is None else int(allowed[j])
        top_p, top_j = torch.topk(probs, min(TOP, len(probs)))
        top_ids = [i if allowed is None else int(allowed[i]) for i in top_j.tolist()]
        top = [[lm.vocab.itos[i], round(p, 5)] for p, i in zip(top_p.tolist(), top_ids)]
        word = lm.vocab.itos[token]
        piece = next(lm.pipeline.pieces([word], after=written))
        written += piece
        count += 1
        # The ids let the page branch: it sends back the tokens so far exactly (?ids=).
        yield _event({"token": word, "id": token, "piece": piece,
                      "prob": round(float(probs[j]), 5), "top": top, "top_ids": top_ids})
        logits, state = await anyio.to_thread.run_sync(lm.step, token, state)
    yield _event({"done": True, "tokens": count, "seed": seed})
