"""Training a language model: `train_language_model`, the one entry point.

It checks the output folder before anything is read (rnnlab.outputs), locks it while training,
resumes from `last/` (refusing text files that changed since, and settings that define the
model), and runs the Trainer. Settings: rnnlab.lm.settings; the loop: rnnlab.lm.trainer; what
a checkpoint keeps: rnnlab.lm.state.
"""

from __future__ import annotations

import dataclasses
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from rnnlab.errors import RnnlabError
from rnnlab.lm import checkpoint
from rnnlab.lm.bundle import LM
from rnnlab.lm.settings import TrainSettings, resumed_settings, with_recipe
from rnnlab.lm.trainer import Report, Trainer
from rnnlab.outputs import check_output, is_main_process, output_lock
from rnnlab.text.store import data_fingerprint


@dataclass
class TrainResult:
    """What a run produced: the best model (by validation loss) as an LM, and its metrics."""

    lm: LM
    history: list[dict]  # one metrics record per epoch
    test: dict | None  # {"loss", "ppl"[, "bpc"]} of the best model on the test text
    best_valid_loss: float | None
    best_epoch: int | None
    stopped: str  # "done" | "early-stopping" | "max-steps" | "time-limit" | "interrupted"
    skipped_steps: int
    output_dir: Path | None
    partial: dict | None = None  # the record of a stop inside an epoch
    coverage: dict | None = None  # word-vector coverage when vectors were loaded
    settings: TrainSettings = field(default_factory=TrainSettings)


def train_language_model(
    train: str | Path | None = None,
    output_dir: str | Path | None = None,
    resume: bool = False,
    overwrite: bool = False,
    allow_changed_data: bool = False,
    report: Report | None = None,
    **settings,
) -> TrainResult:
    """Train a language model on the text file `train`; see TrainSettings for every setting
    (`recipe="awd"` fills in AWD-LSTM's, under those given).

    With `output_dir`, writes `best/` and `last/` model folders, `metrics.jsonl` and
    `curve.png`; `resume=True` continues from `output_dir/last` (train may then be omitted) and
    refuses training files that changed since unless `allow_changed_data`; `overwrite=True`
    starts an earlier run in `output_dir` again. The folder is locked while training.
    `report(kind, data)` hears the progress (see rnnlab.lm.trainer); returning True stops the
    run after the step under way, as Ctrl-C does (`stopped` is "interrupted"; resumable).
    Example: `train_language_model("ptb.train.txt", "ptb-small", valid="ptb.valid.txt")`.
    """
    unknown = set(settings) - {f.name for f in dataclasses.fields(TrainSettings)}
    if unknown:
        raise RnnlabError(f"unknown training settings: {', '.join(sorted(unknown))}")
    if output_dir is None:
        if resume:
            raise RnnlabError("resume needs the output folder of the earlier run")
        return _train(train, None, None, settings, allow_changed_data, report)
    out = Path(output_dir).resolve()
    if not is_main_process():  # under torchrun rank 0 alone checks, locks and writes
        saved = checkpoint.load_training(out / "last") if resume else None
        return _train(train, out, saved, settings, allow_changed_data, report)
    inputs = [p for p in (train, *(settings.get(k) for k in ("valid", "test", "vectors"))) if p]
    check_output(output_dir, "training-run", overwrite=overwrite, resume=resume,
                 inputs=tuple(inputs))
    with output_lock(out, "training-run"):
        if overwrite and not resume:
            clear_run(out)
        saved = checkpoint.load_training(out / "last") if resume else None
        return _train(train, out, saved, settings, allow_changed_data, report)


def clear_run(out: Path) -> None:
    """Remove what an earlier run wrote in `out` (only rnnlab's own entries), to start again."""
    for name in ("best", "last", "metrics.jsonl", "curve.png"):
        path = out / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def check_same_data(state: dict, s: TrainSettings, train, allow_changed: bool) -> None:
    """Refuse to resume on text files that changed since the run started (size or SHA-256)."""
    recorded = state.get("data") or {}
    for role, path in s.text_files(train).items():
        if role not in recorded or not Path(path).exists():
            continue
        if data_fingerprint(path) != recorded[role] and not allow_changed:
            raise RnnlabError(f"{path}: the {role} text changed since this run started "
                              f"(size or SHA-256 differ); pass --allow-changed-data to go on "
                              f"with the new text")


def _train(train, out: Path | None, saved, settings: dict, allow_changed_data: bool,
           report: Report | None) -> TrainResult:
    if saved is not None:
        train, s = resumed_settings(saved[0], train, settings)
        check_same_data(saved[0], s, train, allow_changed_data)
    else:
        if train is None:
            raise RnnlabError("no training file given")
        s = TrainSettings(**with_recipe(settings))
    trainer = Trainer(Path(train), s, out, saved, report)
    stopped, test = trainer.run()
    p = trainer.p
    return TrainResult(trainer.lm, p.history, test, p.best_valid, p.best_epoch, stopped,
                       p.skipped, out, trainer.partial, trainer.coverage, s)
