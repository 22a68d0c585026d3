"""Text from a trained language model, one token at a time (or the most probable by beam search).

Sampling follows the lecture: feed the prime, read the distribution over the next token,
draw one, feed it back. The distribution can be sharpened by a temperature T (softmax of
logits / T), cut to the k most probable tokens (top-k) or to the smallest set whose
probability reaches p (top-p, "nucleus"). The draw itself is one uniform number looked up
in the cumulative distribution (cumsum + searchsorted): at batch 1 that costs ~17 µs for a
10k vocabulary, where `torch.multinomial` costs ~216 µs.

The model runs on its own device; each step's logits come to the CPU, where the draws and the
beam's bookkeeping happen with a CPU generator. So one seed gives the same text on every
device (up to rounding in the logits), and a draw costs a few small CPU operations instead of
as many GPU kernel launches.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
from torch import Tensor

from rnnlab.cells import map_state
from rnnlab.errors import RnnlabError
from rnnlab.lm.forms import NO_BEAM, FormDecoder
from rnnlab.lm.score import NOT_FINITE, check_logits, model_device


def allowed_distribution(
    logits: Tensor, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0
) -> tuple[Tensor, Tensor | None]:
    """The tokens a draw may return and their probabilities, from one step's logits (V,).

    Returns (probs, ids): `ids` are the allowed token ids in order of decreasing probability
    and `probs` their renormalised probabilities; `ids` is None when every token is allowed
    (then `probs` is aligned with the vocabulary).
    """
    ids = None
    if top_k and top_k < logits.shape[-1]:
        logits, ids = torch.topk(logits, top_k)  # sorted, most probable first
    elif top_p < 1.0:
        logits, ids = torch.sort(logits, descending=True)
    if temperature != 1.0:
        # Shifted to a maximum of 0 first, so that a tiny temperature cannot overflow to inf.
        logits = (logits - logits.max()) / temperature
    probs = torch.softmax(logits, -1)
    if not bool(torch.isfinite(probs).all()):  # NaN or +inf logits: no distribution to draw from
        raise RnnlabError(NOT_FINITE)
    if top_p < 1.0:
        # Keep a token while the mass before it is below p: the smallest prefix reaching p.
        n = int((torch.cumsum(probs, -1) - probs < top_p).sum())
        probs, ids = probs[:n] / probs[:n].sum(), ids[:n]
    return probs, ids


def draw(probs: Tensor, generator: torch.Generator) -> int:
    """One index drawn from `probs` (not necessarily normalised) by inverting its CDF.

    The uniform number comes from `generator` on its own device, so a CPU generator can drive
    draws from probabilities on a GPU.
    """
    cdf = torch.cumsum(probs, -1)
    u = torch.rand(1, generator=generator, dtype=cdf.dtype, device=generator.device)
    u = u.to(cdf.device) * cdf[-1]
    # right=True: the first index whose cdf exceeds u, never one of probability zero.
    j = int(torch.searchsorted(cdf, u, right=True))
    if j == len(cdf):  # u rounded up to the total: take the last token that has mass
        j = int(torch.searchsorted(cdf, cdf[-1:]))
    return j


def sample_token(
    logits: Tensor, generator: torch.Generator, temperature: float = 1.0, top_k: int = 0,
    top_p: float = 1.0,
) -> int:
    """Draw the next token id from one step's logits (V,) under temperature, top-k and top-p."""
    probs, ids = allowed_distribution(logits, temperature, top_k, top_p)
    j = draw(probs, generator)
    return j if ids is None else int(ids[j])


def check_options(length: int, temperature: float, top_k: int, top_p: float, beam: int) -> None:
    """Raise RnnlabError, in one line, for a setting that has no meaning."""
    if length < 0:
        raise RnnlabError(f"length must be 0 or more, got {length}")
    if not temperature > 0:
        raise RnnlabError(f"temperature must be greater than 0, got {temperature}")
    if top_k < 0:
        raise RnnlabError(f"top-k must be 0 (off) or more, got {top_k}")
    if not 0 < top_p <= 1:
        raise RnnlabError(f"top-p must be in (0, 1], got {top_p}")
    if beam < 0:
        raise RnnlabError(f"beam must be 0 (sampling) or more, got {beam}")


def _select_batch(state, index: Tensor):
    """Rows `index` of a state whose batch axis is 1 (a tensor or a tuple of tensors)."""
    return map_state(lambda s: s.index_select(1, index), state)


def beam_search(
    model, state, logits: Tensor, length: int, beam: int, eos_id: int | None = None,
    banned: int | None = None,
) -> list[int]:
    """The most probable continuation of at most `length` tokens, keeping `beam` hypotheses.

    `logits` (V,) and `state` are the model's after the prime. A hypothesis that emits
    `eos_id` is finished; the best finished or surviving one by total log-probability wins.
    Token `banned` is never chosen. The scores are kept on the CPU, in float64.
    """
    device = logits.device
    scores = torch.zeros(1, dtype=torch.float64)
    seqs: list[list[int]] = [[]]
    logits = logits.unsqueeze(0)
    finished: list[tuple[float, list[int]]] = []
    for _ in range(length):
        check_logits(logits)
        V = logits.shape[-1]
        logp = torch.log_softmax(logits.cpu().double(), -1)
        if banned is not None:
            logp[:, banned] = -math.inf
        total = (scores.unsqueeze(1) + logp).view(-1)
        top, flat = torch.topk(total, min(beam, total.numel()))
        rows, tokens = (flat // V).tolist(), (flat % V).tolist()
        keep = []
        for k, (r, t) in enumerate(zip(rows, tokens)):
            if t == eos_id:
                finished.append((float(top[k]), seqs[r] + [t]))
            else:
                keep.append(k)
        if not keep:
            seqs = []
            break
        seqs = [seqs[rows[k]] + [tokens[k]] for k in keep]
        scores = top[keep]
        # Log-probabilities only fall as a hypothesis grows: none can overtake a finished one
        # that already scores higher.
        if finished and max(f[0] for f in finished) >= float(scores.max()):
            break
        state = _select_batch(state, torch.tensor([rows[k] for k in keep], device=device))
        logits, state = model.step(torch.tensor([tokens[k] for k in keep], device=device), state)
    candidates = finished + [(float(s), q) for s, q in zip(scores, seqs)]
    return max(candidates, key=lambda c: c[0])[1] if candidates else []


def sample_ids(
    model, context: list[int], length: int = 100, temperature: float = 1.0, top_k: int = 0,
    top_p: float = 1.0, seed: int | None = None, beam: int = 0, eos_id: int | None = None,
    banned: int | None = None, constraint: FormDecoder | None = None,
) -> Iterator[int]:
    """Continue the ids `context` by up to `length` ids, yielding each as soon as it is drawn.

    beam > 0 yields the most probable continuation instead of a sample (at the end). Drawing
    `eos_id` ends the text; `banned` is never drawn. A `constraint` (rnnlab.lm.forms, already
    past the context) masks every token that breaks its form before each draw and ends the
    text when its poem is done; it does not go with beam search. The same seed gives the same
    ids. The model is put in eval mode (no dropout).
    """
    check_options(length, temperature, top_k, top_p, beam)
    if constraint is not None and beam:
        raise RnnlabError(NO_BEAM)
    device = model_device(model)
    model.eval()
    # The context is read here, not in the generator, so that a model whose outputs overflow
    # fails before the first id is asked for.
    with torch.inference_mode():
        out, state = model(torch.tensor(context, device=device).view(-1, 1))
    logits = out[-1, 0]
    check_logits(logits)
    return _generate(model, logits, state, length, temperature, top_k, top_p, seed, beam,
                     eos_id, banned, constraint)


def _generate(model, logits, state, length, temperature, top_k, top_p, seed, beam, eos_id,
              banned, constraint=None):
    generator = torch.Generator()
    if seed is None:
        generator.seed()
    else:
        generator.manual_seed(seed)
    device = logits.device
    # Grad mode is thread-wide: each model call gets its own no-grad block, never one held
    # open across a `yield`, which would leak into the caller's code.
    with torch.inference_mode():
        if beam:
            best = beam_search(model, state, logits, length, beam, eos_id, banned)
    if beam:
        yield from best
        return
    logits = logits.cpu()
    if constraint is not None and constraint.done:  # the context was a whole poem
        return
    for _ in range(length):
        if banned is not None:
            logits = logits.clone()
            logits[banned] = -math.inf
        if constraint is not None:
            logits = constraint.mask(logits)
        token = sample_token(logits, generator, temperature, top_k, top_p)
        yield token
        if token == eos_id or (constraint is not None and constraint.advance(token)):
            return
        with torch.inference_mode():
            logits, state = model.step(torch.tensor([token], device=device), state)
        logits = logits[0].cpu()
