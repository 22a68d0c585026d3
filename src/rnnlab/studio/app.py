"""The studio's web application: the page, and a JSON API over models, vectors and runs.

Everything is reached by the name it was given at start, never by a path: a request naming
anything else is a 404. Inputs are bounded (text length, generation length, concurrent
generations; rnnlab.studio.params) so one request cannot take the machine; bad input is a 400
whose JSON `error` is the same one line the command line would print.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from rnnlab.errors import RnnlabError
from rnnlab.lm import LM
from rnnlab.studio.generation import Jobs
from rnnlab.studio.model_api import ModelHandlers
from rnnlab.studio.params import error
from rnnlab.studio.run_api import RunHandlers
from rnnlab.studio.security import LOOPBACK_NAMES, Guard
from rnnlab.studio.vector_api import VectorHandlers
from rnnlab.word2vec.vectors import WordVectors

STATIC = Path(__file__).parent / "static"


async def page(request: Request) -> FileResponse:
    """The page itself: one HTML file whose scripts and styles come from /static."""
    return FileResponse(STATIC / "index.html")


def create_app(models: dict[str, LM], vectors: dict[str, WordVectors] | None = None,
               runs: dict[str, Path] | None = None, token: str | None = None,
               allowed_hosts: Iterable[str] = LOOPBACK_NAMES, jobs: Jobs | None = None):
    """The studio as an ASGI app serving these models, vectors and training runs by name.

    `token`, when set, must come with every request (see rnnlab.studio.security);
    `allowed_hosts` are the names the server answers to in the Host header.
    """
    lms = ModelHandlers(models, jobs or Jobs())
    vecs = VectorHandlers(vectors or {})
    trains = RunHandlers(runs or {})
    routes = [
        Route("/", page),
        Route("/api/models", lms.model_list),
        Route("/api/generate", lms.generate),
        Route("/api/score", lms.score),
        Route("/api/activations", lms.activations),
        Route("/api/units", lms.units),
        Route("/api/saturation", lms.saturation),
        Route("/api/tokens", lms.tokens),
        Route("/api/memory", lms.memory),
        Route("/api/export/activations", lms.export_activations),
        Route("/api/vectors", vecs.vectors_list),
        Route("/api/vectors/neighbours", vecs.neighbours),
        Route("/api/vectors/analogy", vecs.analogy),
        Route("/api/vectors/doesnt_match", vecs.doesnt_match),
        Route("/api/vectors/map", vecs.word_map),
        Route("/api/export/projector", vecs.export_projector),
        Route("/api/runs", trains.run_list),
        Route("/api/training", trains.training),
        Route("/api/training/sample", trains.training_sample),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    app = Starlette(routes=routes, exception_handlers={
        RnnlabError: lambda request, e: error(400, str(e)),
        HTTPException: lambda request, e: error(e.status_code, e.detail),
    })
    return Guard(app, allowed_hosts, token)
