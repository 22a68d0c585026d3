"""The studio's web application: the page, and a JSON API over models, vectors and runs.

Everything is reached by the name it was given at start, never by a path: a request naming
anything else is a 404. Inputs are bounded (text length, generation length, concurrent
generations) so one request cannot take the machine; bad input is a 400 whose JSON `error`
is the same one line the command line would print.
"""

from __future__ import annotations

import base64
import json
import math
from collections import OrderedDict
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import quote

import anyio
import numpy as np
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from rnnlab.errors import RnnlabError
from rnnlab.lm import LM
from rnnlab.studio.exports import activations_npz, lstmvis_zip, require_h5py
from rnnlab.studio.generation import BusyError, Jobs, Options, events
from rnnlab.studio.security import LOOPBACK_NAMES, Guard
from rnnlab.word2vec.projector import metadata_tsv, vectors_tsv
from rnnlab.word2vec.vectors import WordVectors

STATIC = Path(__file__).parent / "static"
MAX_TEXT_CHARS = 5000  # a page of text: every view answers it within seconds on a CPU
MAX_LENGTH = 2000  # tokens one generation may ask for
MAX_TOPN = 100
MAX_MAP_WORDS = 200
MAX_SAMPLE = 500  # tokens of a training run's sample: seconds on a CPU at most
CHECKPOINTS = ("last", "best")  # a run's model folders, in the order training writes them
MAX_MAP_WORDS = 1000  # exact t-SNE of 1,000 words takes seconds; more would be unreadable anyway
DEFAULT_MAP_WORDS = 300
MAX_MATCH_WORDS = 100
MAP_CACHE = 32  # maps kept, so that the page can come back to one without waiting again


def create_app(models: dict[str, LM], vectors: dict[str, WordVectors] | None = None,
               runs: dict[str, Path] | None = None, token: str | None = None,
               allowed_hosts: Iterable[str] = LOOPBACK_NAMES, jobs: Jobs | None = None):
    """The studio as an ASGI app serving these models, vectors and training runs by name.

    `token`, when set, must come with every request (see rnnlab.studio.security);
    `allowed_hosts` are the names the server answers to in the Host header.
    """
    studio = _Studio(models, vectors or {}, runs or {}, jobs or Jobs())
    routes = [
        Route("/", studio.page),
        Route("/api/models", studio.model_list),
        Route("/api/generate", studio.generate),
        Route("/api/score", studio.score),
        Route("/api/activations", studio.activations),
        Route("/api/tokens", studio.tokens),
        Route("/api/memory", studio.memory),
        Route("/api/vectors/neighbours", studio.neighbours),
        Route("/api/vectors/analogy", studio.analogy),
        Route("/api/vectors", studio.vectors_list),
        Route("/api/vectors/doesnt_match", studio.doesnt_match),
        Route("/api/vectors/map", studio.word_map),
        Route("/api/runs", studio.run_list),
        Route("/api/export/projector", studio.export_projector),
        Route("/api/export/activations", studio.export_activations),
        Route("/api/training", studio.training),
        Route("/api/training/sample", studio.training_sample),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    app = Starlette(routes=routes, exception_handlers={
        RnnlabError: lambda request, e: _error(400, str(e)),
        HTTPException: lambda request, e: _error(e.status_code, e.detail),
    })
    return Guard(app, allowed_hosts, token)


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _text(request: Request, name: str, required: bool = True) -> str:
    value = request.query_params.get(name)
    if value is None:
        if required:
            raise RnnlabError(f"'{name}' is missing")
        return ""
    if len(value) > MAX_TEXT_CHARS:
        raise RnnlabError(f"'{name}' is longer than {MAX_TEXT_CHARS} characters")
    return value


def _number(request: Request, name: str, kind: type, default, low, high):
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = kind(raw)
    except ValueError:
        raise RnnlabError(f"'{name}' must be a number, got {raw!r}") from None
    if not (math.isfinite(value) and low <= value <= high):
        raise RnnlabError(f"'{name}' must be between {low} and {high}, got {raw}")
    return value


def _flag(request: Request, name: str) -> bool:
    raw = request.query_params.get(name, "").lower()
    if raw in ("", "0", "false", "off", "no"):
        return False
    if raw in ("1", "true", "on", "yes"):
        return True
    raise RnnlabError(f"'{name}' must be true or false, got {raw!r}")


def _named(table: dict, request: Request, name: str, what: str):
    key = request.query_params.get(name, "")
    if key not in table:
        raise HTTPException(404, f"no {what} named {key!r} in this studio")
    return table[key]


def _ids(request: Request, lm: LM) -> list[int]:
    """The `ids` parameter: vocabulary ids separated by dots (a branch's tokens so far)."""
    raw = request.query_params.get("ids", "")
    parts = raw.split(".") if raw else []
    if len(parts) > MAX_LENGTH:
        raise RnnlabError(f"'ids' holds at most {MAX_LENGTH} tokens, got {len(parts)}")
    if not all(p.isascii() and p.isdigit() and len(p) < 10 and int(p) < len(lm.vocab) for p in parts):
        raise RnnlabError(f"'ids' must be vocabulary ids (0 to {len(lm.vocab) - 1}) separated "
                          f"by dots, got {raw[:40]!r}")
    return [int(p) for p in parts]


def _spans(text: str, words: list[str]) -> list[list[int] | None]:
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
def _choice(request: Request, name: str, choices: tuple[str, ...]) -> str:
    value = request.query_params.get(name) or choices[0]
    if value not in choices:
        raise RnnlabError(f"'{name}' must be one of {', '.join(choices)}, got {value!r}")
    return value


def _words(request: Request, name: str) -> list[str]:
    """A comma-separated list of words (blanks around each dropped, empty entries skipped)."""
    return [w.strip() for w in _text(request, name, required=False).split(",") if w.strip()]


def _download(filename: str, media_type: str) -> dict[str, str]:
    """Headers that make the browser save the body as `filename` (any characters, RFC 6266)."""
    ascii_name = filename.encode("ascii", "replace").decode().replace("?", "_").replace('"', "_")
    return {"content-disposition": f"attachment; filename=\"{ascii_name}\"; "
                                   f"filename*=UTF-8''{quote(filename, safe='')}",
            "content-type": media_type, "cache-control": "no-store"}


def _half(array: np.ndarray) -> dict:
    """A (T, H) array as float16 bytes in base64: a fifth of its size as JSON numbers."""
    data = np.ascontiguousarray(array, dtype="<f2").tobytes()
    return {"shape": list(array.shape), "float16": base64.b64encode(data).decode("ascii")}


class _Studio:
    """The request handlers, over the tables of what this studio serves."""

    def __init__(self, models, vectors, runs, jobs: Jobs) -> None:
        self.models, self.vectors, self.runs, self.jobs = models, vectors, runs, jobs
        self.checkpoints: dict[str, tuple[tuple, LM]] = {}  # run name -> (file stamp, model)
        self.maps: OrderedDict[tuple, dict] = OrderedDict()

    def _model(self, request: Request) -> LM:
        return _named(self.models, request, "model", "model")

    async def page(self, request: Request) -> FileResponse:
        return FileResponse(STATIC / "index.html")

    async def model_list(self, request: Request) -> JSONResponse:
        return JSONResponse([
            {"name": name, "level": lm.pipeline.level, "mode": lm.pipeline.mode,
             "cell": lm.model.config["cell"], "layers": lm.model.config["num_layers"],
             "hidden_size": lm.model.config["hidden_size"], "vocab_size": len(lm.vocab)}
            for name, lm in self.models.items()])

    async def generate(self, request: Request):
        lm = self._model(request)
        options = Options(
            _text(request, "prime", required=False),
            _number(request, "length", int, 100, 0, MAX_LENGTH),
            _number(request, "temperature", float, 1.0, 1e-3, 100.0),
            _number(request, "top_k", int, 0, 0, len(lm.vocab)),
            _number(request, "top_p", float, 1.0, 1e-6, 1.0),
            _number(request, "seed", int, None, 0, 2**63 - 1),
            # Form and lines only need to be small numbers here: make_form names the right ones.
            _number(request, "form", int, None, 0, 99),
            _number(request, "lines", int, None, 0, 99),
            _text(request, "acrostic", required=False) or None,
            _flag(request, "rhyme"),
            request.query_params.get("script") or None,
            # A branch: the tokens written after the prime so far, read exactly as ids (written
            # out and tokenised again they could differ: a line end, a token with spaces).
            tuple(_ids(request, lm)))
        options.check()
        # Reading the prime against the form, and the first rhyme table or OpenCC, take a moment.
        prepared = await anyio.to_thread.run_sync(options.prepare, lm)
        try:
            self.jobs.reserve()
        except BusyError:
            return _error(503, "the studio is generating as much as it can; try again soon")
        return StreamingResponse(events(lm, prepared, options, self.jobs, request),
                                 media_type="text/event-stream",
                                 headers={"cache-control": "no-store"})

    async def score(self, request: Request) -> JSONResponse:
        lm, text = self._model(request), _text(request, "text")
        result = await anyio.to_thread.run_sync(lm.score, text)
        return JSONResponse({
            "rows": [{"token": r.token, "mapped": r.mapped, "prob": r.prob,
                      "logprob": r.logprob, "unknown": r.unknown} for r in result.rows],
            "logprob": result.logprob, "perplexity": result.perplexity, "oov": result.oov})

    async def activations(self, request: Request) -> JSONResponse:
        lm, text = self._model(request), _text(request, "text")
        layer = _number(request, "layer", int, 0, 0, lm.model.config["num_layers"] - 1)
        kind = request.query_params.get("kind")
        acts = await anyio.to_thread.run_sync(lm.activations, text)
        arrays = acts.layers[layer]
        if kind is not None and kind not in arrays:
            raise RnnlabError(f"'kind' must be one of {', '.join(arrays)}, got {kind!r}")
        chosen = {kind: arrays[kind]} if kind else arrays
        return JSONResponse({"tokens": acts.tokens, "layer": layer, "kinds": list(arrays),
                             "arrays": {name: _half(a) for name, a in chosen.items()}})

    async def tokens(self, request: Request) -> JSONResponse:
        lm, text = self._model(request), _text(request, "text")
        words = lm.pipeline.tokenize(text)
        ids, _ = lm.pipeline.encode_prompt(text, lm.vocab)
        tokens = [lm.vocab.itos[i] for i in lm.pipeline.start_ids(lm.vocab) + ids]
        return JSONResponse({"tokens": tokens, "spans": [None, *_spans(text, words)]})

    async def memory(self, request: Request) -> JSONResponse:
        lm, text = self._model(request), _text(request, "text")
        position = _number(request, "position", int, 1, 1, MAX_TEXT_CHARS)
        tokens, norms = await anyio.to_thread.run_sync(lm.memory, text, position)
        return JSONResponse({"tokens": tokens, "position": position, "norms": norms})

    def _vectors(self, request: Request) -> WordVectors:
        return _named(self.vectors, request, "vectors", "word vectors")

    async def neighbours(self, request: Request) -> JSONResponse:
        wv, word = self._vectors(request), _text(request, "word")
        topn = _number(request, "topn", int, 10, 1, MAX_TOPN)
        return JSONResponse(wv.most_similar(word, topn=topn))

    async def analogy(self, request: Request) -> JSONResponse:
        wv = self._vectors(request)
        a, b, c = (_text(request, name) for name in "abc")
        topn = _number(request, "topn", int, 10, 1, MAX_TOPN)
        return JSONResponse(wv.analogy(a, b, c, topn=topn))

    async def vectors_list(self, request: Request) -> JSONResponse:
        return JSONResponse([{"name": name, "words": len(wv), "dim": wv.vector_size,
                              "counts": wv.counts is not None}
                             for name, wv in self.vectors.items()])

    async def doesnt_match(self, request: Request) -> JSONResponse:
        wv, words = self._vectors(request), _words(request, "words")
        if len(words) > MAX_MATCH_WORDS:
            raise RnnlabError(f"doesnt_match takes at most {MAX_MATCH_WORDS} words, got {len(words)}")
        odd = wv.doesnt_match(words)
        # Each word's cosine with the mean direction: the odd one is the lowest.
        unit = wv.get_normed_vectors()[[wv.get_index(w) for w in words]]
        mean = unit.mean(axis=0)
        scores = unit @ (mean / max(float(np.linalg.norm(mean)), 1e-30))
        return JSONResponse({"word": odd, "scores": [[w, float(s)] for w, s in zip(words, scores)]})

    async def word_map(self, request: Request) -> JSONResponse:
        """A 2-D map of the given words, or else of the `top` most frequent, by PCA or t-SNE."""
        wv, words = self._vectors(request), _words(request, "words")
        method = _choice(request, "method", ("pca", "tsne"))
        if not words:
            top = _number(request, "top", int, DEFAULT_MAP_WORDS, 2, MAX_MAP_WORDS)
            words = wv.index_to_key[:top]
        if len(words) > MAX_MAP_WORDS:
            raise RnnlabError(f"a map shows at most {MAX_MAP_WORDS} words, got {len(words)}")
        words = list(dict.fromkeys(words))  # a word given twice is one point
        key = (request.query_params.get("vectors"), method, tuple(words))
        if key not in self.maps:
            if method == "pca":
                coords, share = wv.pca(words)
                result = {"points": coords.tolist(), "share": share.tolist()}
            else:
                coords = await anyio.to_thread.run_sync(wv.tsne, words)
                result = {"points": coords.tolist(), "share": None}
            self.maps[key] = {"words": words, "method": method, **result}
            while len(self.maps) > MAP_CACHE:
                self.maps.popitem(last=False)
        self.maps.move_to_end(key)
        return JSONResponse(self.maps[key])

    async def export_projector(self, request: Request) -> StreamingResponse:
        """The vectors as the Embedding Projector's vectors.tsv or metadata.tsv (a download)."""
        name = request.query_params.get("vectors", "")
        wv = self._vectors(request)
        part = _choice(request, "part", ("vectors", "metadata"))
        top = _number(request, "top", int, None, 1, len(wv))
        chunks = (vectors_tsv if part == "vectors" else metadata_tsv)(wv, top)
        return StreamingResponse((c.encode("utf-8") for c in chunks),
                                 headers=_download(f"{name}-{part}.tsv",
                                                   "text/tab-separated-values; charset=utf-8"))

    async def export_activations(self, request: Request) -> Response:
        """Every layer's activations over a text as .npz, or LSTMVis's project (zip of HDF5)."""
        name = request.query_params.get("model", "")
        lm, text = self._model(request), _text(request, "text")
        form = _choice(request, "format", ("npz", "hdf5"))
        if form == "hdf5":
            require_h5py()  # before the work, not after it
        acts = await anyio.to_thread.run_sync(lm.activations, text)
        ids = [lm.vocab.stoi[t] for t in acts.tokens]
        if form == "npz":
            body = await anyio.to_thread.run_sync(activations_npz, acts, ids)
            return Response(body, headers=_download(f"{name}-activations.npz", "application/octet-stream"))
        body = await anyio.to_thread.run_sync(lstmvis_zip, acts, ids, list(lm.vocab.itos), name)
        return Response(body, headers=_download(f"{name}-lstmvis.zip", "application/zip"))

    async def run_list(self, request: Request) -> JSONResponse:
        return JSONResponse([{"name": name} for name in self.runs])

    async def training(self, request: Request) -> JSONResponse:
        run = _named(self.runs, request, "run", "training run")
        metrics = run / "metrics.jsonl"
        if not metrics.is_file():
            return JSONResponse([])  # a run whose first epoch has not ended yet
        lines = metrics.read_text(encoding="utf-8").splitlines()
        try:
            records = [json.loads(line) for line in lines if line.strip()]
        except ValueError:
            raise RnnlabError(f"{run.name}/metrics.jsonl is not JSON lines") from None
        # A diverged epoch records NaN or Infinity, which JSON (and the browser) cannot read.
        return JSONResponse([{k: None if isinstance(v, float) and not math.isfinite(v) else v
                              for k, v in record.items()} for record in records])

    async def training_sample(self, request: Request) -> JSONResponse:
        name = request.query_params.get("run", "")
        run = _named(self.runs, request, "run", "training run")
        length = _number(request, "length", int, 200, 1, MAX_SAMPLE)
        seed = _number(request, "seed", int, 0, 0, 2**63 - 1)
        temperature = _number(request, "temperature", float, 1.0, 1e-3, 100.0)
        found = _latest_checkpoint(run)
        if found is None:
            return _error(404, f"run {name!r} has no checkpoint yet: it appears when the first "
                               f"epoch ends")
        folder, stamp = found
        cached = self.checkpoints.get(name)
        if cached is None or cached[0] != stamp:
            # Loaded again only when training has written a new checkpoint since.
            lm = await anyio.to_thread.run_sync(LM.load, folder)
            self.checkpoints[name] = cached = (stamp, lm)
        lm = cached[1]
        pieces = await anyio.to_thread.run_sync(
            lambda: list(lm.write("", length=length, temperature=temperature, seed=seed)))
        return JSONResponse({"run": name, "checkpoint": folder.name, "epoch": lm.config.get("epoch"),
                             "level": lm.pipeline.level, "seed": seed, "text": "".join(pieces)})


def _latest_checkpoint(run: Path) -> tuple[Path, tuple] | None:
    """The run's most recently written model folder with a stamp that changes when it is
    rewritten, or None while there is none."""
    found = []
    for name in CHECKPOINTS:
        try:
            stat = (run / name / "model.safetensors").stat()
            config = (run / name / "config.json").stat()
        except OSError:
            continue  # not written yet, or being swapped in by atomic_dir right now
        found.append((stat.st_mtime_ns, run / name, (name, stat.st_mtime_ns, stat.st_size,
                                                     config.st_mtime_ns)))
    if not found:
        return None
    _, folder, stamp = max(found, key=lambda f: f[0])
    return folder, stamp
