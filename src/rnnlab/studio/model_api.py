"""The studio's language-model endpoints: list, generate (server-sent events), score, read
(activations), tokens, memory (gradient over earlier tokens) and the activations export."""

from __future__ import annotations

import anyio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from rnnlab.errors import RnnlabError
from rnnlab.lm import LM
from rnnlab.lm.units import saturation, units_like
from rnnlab.studio import params
from rnnlab.studio.exports import activations_npz, lstmvis_zip, require_h5py
from rnnlab.studio.generation import BusyError, Jobs, Options, events


def spans(text: str, words: list[str]) -> list[list[int] | None]:
    """Where each token of `text` is in it, [start, end), so that the page can match the tokens
    of models that cut the text differently; None for one not found as it is (lowercased)."""
    folded = text.lower() if len(text.lower()) == len(text) else text
    spans, at = [], 0
    for word in words:
        start = text.find(word, at)
        if start < 0:
            start = folded.find(word.lower(), at)
        if start < 0:
            spans.append(None)
            continue
        at = start + len(word)
        spans.append([start, at])
    return spans


class ModelHandlers:
    """The requests about the language models this studio serves, by name."""

    def __init__(self, models: dict[str, LM], jobs: Jobs) -> None:
        self.models, self.jobs = models, jobs

    def _model(self, request: Request) -> LM:
        return params.named(self.models, request, "model", "model")

    async def model_list(self, request: Request) -> JSONResponse:
        return JSONResponse([
            {"name": name, "level": lm.pipeline.level, "mode": lm.pipeline.mode,
             "cell": lm.model.config["cell"], "layers": lm.model.config["num_layers"],
             "hidden_size": lm.model.config["hidden_size"], "vocab_size": len(lm.vocab)}
            for name, lm in self.models.items()])

    async def generate(self, request: Request):
        lm = self._model(request)
        options = Options(
            params.text(request, "prime", required=False),
            params.number(request, "length", int, 100, 0, params.MAX_LENGTH),
            params.number(request, "temperature", float, 1.0, 1e-3, 100.0),
            params.number(request, "top_k", int, 0, 0, len(lm.vocab)),
            params.number(request, "top_p", float, 1.0, 1e-6, 1.0),
            params.number(request, "seed", int, None, 0, 2**63 - 1),
            # Form and lines only need to be small numbers here: make_form names the right ones.
            params.number(request, "form", int, None, 0, 99),
            params.number(request, "lines", int, None, 0, 99),
            params.text(request, "acrostic", required=False) or None,
            params.flag(request, "rhyme"),
            request.query_params.get("script") or None,
            # A branch: the tokens written after the prime so far, read exactly as ids (written
            # out and tokenised again they could differ: a line end, a token with spaces).
            tuple(params.ids(request, lm)))
        options.check()
        # Reading the prime against the form, and the first rhyme table or OpenCC, take a moment.
        prepared = await anyio.to_thread.run_sync(options.prepare, lm)
        try:
            self.jobs.reserve()
        except BusyError:
            return params.error(503, "the studio is generating as much as it can; try again soon")
        return StreamingResponse(events(lm, prepared, options, self.jobs, request),
                                 media_type="text/event-stream",
                                 headers={"cache-control": "no-store"})

    async def score(self, request: Request) -> JSONResponse:
        lm, text = self._model(request), params.text(request, "text")
        result = await anyio.to_thread.run_sync(lm.score, text)
        return JSONResponse({
            "rows": [{"token": r.token, "mapped": r.mapped, "prob": r.prob,
                      "logprob": r.logprob, "unknown": r.unknown} for r in result.rows],
            "logprob": result.logprob, "perplexity": result.perplexity, "oov": result.oov})

    async def activations(self, request: Request) -> JSONResponse:
        lm, text = self._model(request), params.text(request, "text")
        layer = params.number(request, "layer", int, 0, 0, lm.model.config["num_layers"] - 1)
        kind = request.query_params.get("kind")
        acts = await anyio.to_thread.run_sync(lm.activations, text)
        arrays = acts.layers[layer]
        if kind is not None and kind not in arrays:
            raise RnnlabError(f"'kind' must be one of {', '.join(arrays)}, got {kind!r}")
        chosen = {kind: arrays[kind]} if kind else arrays
        return JSONResponse({"tokens": acts.tokens, "layer": layer, "kinds": list(arrays),
                             "arrays": {name: params.half(a) for name, a in chosen.items()}})

    async def units(self, request: Request) -> JSONResponse:
        """The units of one layer and kind ranked by how well they follow the marked tokens."""
        lm, text = self._model(request), params.text(request, "text")
        layer = params.number(request, "layer", int, 0, 0, lm.model.config["num_layers"] - 1)
        acts = await anyio.to_thread.run_sync(lm.activations, text)
        arrays = acts.layers[layer]
        kind = params.choice(request, "kind", tuple(arrays))
        marked = params.positions(request, "marked", len(acts.tokens))
        topn = params.number(request, "topn", int, 10, 1, arrays[kind].shape[1])
        order, r = units_like(arrays[kind], marked)
        return JSONResponse({"layer": layer, "kind": kind,
                             "units": order[:topn].tolist(), "r": r[:topn].tolist()})

    async def saturation(self, request: Request) -> JSONResponse:
        """Per gate and unit of one layer: the shares of steps below 0.1 and above 0.9."""
        lm, text = self._model(request), params.text(request, "text")
        layer = params.number(request, "layer", int, 0, 0, lm.model.config["num_layers"] - 1)
        acts = await anyio.to_thread.run_sync(lm.activations, text)
        shares = saturation(acts.layers[layer])
        return JSONResponse({"layer": layer, "steps": len(acts.tokens),
                             "gates": {g: {"closed": s[:, 0].tolist(), "open": s[:, 1].tolist()}
                                       for g, s in shares.items()}})

    async def tokens(self, request: Request) -> JSONResponse:
        lm, text = self._model(request), params.text(request, "text")
        words = lm.pipeline.tokenize(text)
        ids, _ = lm.pipeline.encode_prompt(text, lm.vocab)
        tokens = [lm.vocab.itos[i] for i in lm.pipeline.start_ids(lm.vocab) + ids]
        return JSONResponse({"tokens": tokens, "spans": [None, *spans(text, words)]})

    async def memory(self, request: Request) -> JSONResponse:
        lm, text = self._model(request), params.text(request, "text")
        position = params.number(request, "position", int, 1, 1, params.MAX_TEXT_CHARS)
        tokens, norms = await anyio.to_thread.run_sync(lm.memory, text, position)
        return JSONResponse({"tokens": tokens, "position": position, "norms": norms})

    async def export_activations(self, request: Request) -> Response:
        """Every layer's activations over a text as .npz, or LSTMVis's project (zip of HDF5)."""
        name = request.query_params.get("model", "")
        lm, text = self._model(request), params.text(request, "text")
        form = params.choice(request, "format", ("npz", "hdf5"))
        if form == "hdf5":
            require_h5py()  # before the work, not after it
        acts = await anyio.to_thread.run_sync(lm.activations, text)
        ids = [lm.vocab.stoi[t] for t in acts.tokens]
        if form == "npz":
            body = await anyio.to_thread.run_sync(activations_npz, acts, ids)
            headers = params.download(f"{name}-activations.npz", "application/octet-stream")
            return Response(body, headers=headers)
        body = await anyio.to_thread.run_sync(lstmvis_zip, acts, ids, list(lm.vocab.itos), name)
        return Response(body, headers=params.download(f"{name}-lstmvis.zip", "application/zip"))
