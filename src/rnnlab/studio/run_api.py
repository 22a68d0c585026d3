"""The studio's training-run endpoints: list, the metrics so far, and a sample written by the
run's latest checkpoint (loaded again only when training has rewritten it)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import anyio
from starlette.requests import Request
from starlette.responses import JSONResponse

from rnnlab.errors import RnnlabError
from rnnlab.lm import LM
from rnnlab.studio import params

MAX_SAMPLE = 500  # tokens of a training run's sample: seconds on a CPU at most
CHECKPOINTS = ("last", "best")  # a run's model folders, in the order training writes them


class RunHandlers:
    """The requests about the training runs this studio follows, by name."""

    def __init__(self, runs: dict[str, Path]) -> None:
        self.runs = runs
        self.checkpoints: dict[str, tuple[tuple, LM]] = {}  # run name -> (file stamp, model)

    async def run_list(self, request: Request) -> JSONResponse:
        return JSONResponse([{"name": name} for name in self.runs])

    async def training(self, request: Request) -> JSONResponse:
        run = params.named(self.runs, request, "run", "training run")
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
        run = params.named(self.runs, request, "run", "training run")
        length = params.number(request, "length", int, 200, 1, MAX_SAMPLE)
        seed = params.number(request, "seed", int, 0, 0, 2**63 - 1)
        temperature = params.number(request, "temperature", float, 1.0, 1e-3, 100.0)
        found = _latest_checkpoint(run)
        if found is None:
            return params.error(404, f"run {name!r} has no checkpoint yet: it appears when the first "
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
