"""Training a language model: SGD or Adam, truncated BPTT, schedules, checkpoints, resume.

The defaults are Zaremba et al.'s (2014) "small" PTB setup: 2 × 200 LSTM, uniform ±0.1 init,
SGD at learning rate 1 halved every epoch after the 4th, gradients clipped to norm 5, 20 × 20
blocks. Its loss is the cross-entropy summed over the steps of a block and averaged over the
batch (ANCHORS.md); with the per-token mean the same lr and clip learn ~bptt times slower, so
`loss="auto"` sums for SGD and averages for Adam. Reported losses are always per token.

A step whose loss or gradient is not finite changes nothing: it is skipped and reported, and
`max_bad_steps` of them in a row stop training with an RnnlabError. `MODEL_DIR/last` holds
everything needed to continue (optimizer, schedule, RNG, position in the data, the carried
state), so a resumed run ends with the same weights as an uninterrupted one.

Launched by torchrun, the same code trains data-parallel (see distributed.py): each process
takes its share of every batch, DistributedDataParallel averages the gradients, every decision
(skipping a step, the schedule, early stopping, stopping early) is taken on numbers summed over
all processes, and only rank 0 writes files or prints.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import shutil
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_model as st_load_model
from torch import Tensor
from tqdm import tqdm

from rnnlab.device import PRECISIONS, autocast, resolve_device
from rnnlab.errors import RnnlabError
from rnnlab.fileio import atomic_write, file_fingerprint
from rnnlab.lm import checkpoint, distributed
from rnnlab.lm.data import (
    IGNORE,
    SentenceBatches,
    StreamBatches,
    build_vocab,
    check_level_mode,
    encode_text,
    read_text,
    split_lines,
    tokenize_lines,
)
from rnnlab.lm.model import LanguageModel
from rnnlab.outputs import check_output, is_main_process, output_lock
from rnnlab.recurrent import detach_state
from rnnlab.text.vocab import Vocabulary

OPTIMIZERS = ("sgd", "adam")
SCHEDULES = ("auto", "zaremba", "plateau", "constant")
LOSSES = ("auto", "sum", "mean")
# Settings that may change when resuming; the rest define the model and the data. How the
# files decode may change too: e.g. to read on past a bad byte that stopped the first run.
RUNTIME_KEYS = ("epochs", "max_steps", "max_minutes", "checkpoint_every", "checkpoint_minutes",
                "patience", "progress", "quiet", "threads", "encoding", "errors", "device",
                "precision")


@dataclass
class TrainSettings:
    """Every setting of a training run, with the defaults of Zaremba et al.'s small PTB model."""

    # data
    valid: str | None = None  # validation file
    test: str | None = None  # test file
    split: tuple[float, float] | None = None  # (valid, test) fractions cut from the train file
    level: str = "word"  # word | char
    mode: str = "stream"  # stream | sentence
    lower: bool = False
    min_count: int = 1
    max_vocab: int | None = None
    encoding: str = "utf-8"  # text encoding of the train, valid and test files
    errors: str = "strict"  # undecodable bytes: strict | replace | ignore (see read_lines)
    # model
    cell: str = "lstm"
    layers: int = 2
    hidden_size: int = 200
    embed_size: int | None = None  # None: the vectors' dimension, else hidden_size
    dropout: float = 0.0
    tie_weights: bool = True
    init_range: float | None = 0.1  # None: the cells' own initialisation
    vectors: str | None = None  # word-vector file for the input embedding
    freeze_vectors: bool = False
    # optimisation
    optimizer: str = "sgd"
    lr: float | None = None  # None: 1.0 for SGD, 1e-3 for Adam
    schedule: str = "auto"  # auto (SGD: zaremba, Adam: plateau) | zaremba | plateau | constant
    lr_decay: float = 0.5  # zaremba: lr × lr_decay per epoch after decay_after epochs
    decay_after: int = 4
    plateau_factor: float = 4.0  # plateau: lr ÷ plateau_factor when validation loss stalls
    loss: str = "auto"  # auto (SGD: sum, Adam: mean) | sum | mean
    clip: float = 5.0  # max gradient norm; 0 turns clipping off
    weight_decay: float = 0.0
    bptt: int = 20
    batch_size: int = 20
    eval_batch_size: int = 10
    epochs: int = 13
    patience: int | None = None  # early stopping after this many epochs without improvement
    max_bad_steps: int = 10  # non-finite steps in a row before training stops
    max_steps: int | None = None  # stop (with a checkpoint) after this many steps in all
    max_minutes: float | None = None  # stop (with a checkpoint) after this much training time
    seed: int = 1
    checkpoint_every: int = 0  # also checkpoint every N steps (0: only every epoch)
    checkpoint_minutes: float = 0.0  # also checkpoint every M minutes (0: only every epoch)
    device: str = "auto"  # auto | cpu | cuda | cuda:N | mps (see rnnlab.device)
    precision: str = "fp32"  # fp32 | bf16 (autocast for the forward pass; the loss in float32)
    threads: int | None = None
    progress: bool = True
    quiet: bool = False  # no JSON lines on stdout, no notes on stderr

    def __post_init__(self) -> None:
        check_level_mode(self.level, self.mode)
        for name, allowed in (("optimizer", OPTIMIZERS), ("schedule", SCHEDULES),
                              ("loss", LOSSES), ("precision", PRECISIONS)):
            if getattr(self, name) not in allowed:
                raise RnnlabError(f"{name} must be one of {', '.join(allowed)}, "
                                  f"got {getattr(self, name)!r}")
        for name in ("layers", "hidden_size", "bptt", "batch_size", "eval_batch_size",
                     "max_bad_steps", "min_count"):
            if getattr(self, name) < 1:
                raise RnnlabError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.embed_size is not None and self.embed_size < 1:
            raise RnnlabError(f"embedding size (embed_size) must be at least 1, "
                              f"got {self.embed_size}")
        if min(self.epochs, self.checkpoint_every, self.checkpoint_minutes, self.clip) < 0:
            raise RnnlabError("epochs, checkpoint_every, checkpoint_minutes and clip must not be "
                              "negative")
        for name in ("max_steps", "threads"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise RnnlabError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.lr is not None and not self.lr > 0:
            raise RnnlabError(f"lr must be positive, got {self.lr}")
        if self.split is not None:
            if self.valid or self.test:
                raise RnnlabError("give either split fractions or valid/test files, not both")
            self.split = tuple(float(f) for f in self.split)
            if len(self.split) != 2:
                raise RnnlabError("split takes two fractions: valid and test")
        if self.freeze_vectors and not self.vectors:
            raise RnnlabError("freeze_vectors needs a vectors file")
        # Absolute paths, so that a run resumes from any working directory.
        for name in ("valid", "test", "vectors"):
            if getattr(self, name):
                setattr(self, name, str(Path(getattr(self, name)).resolve()))

    @property
    def learning_rate(self) -> float:
        """The starting learning rate."""
        return self.lr if self.lr is not None else (1.0 if self.optimizer == "sgd" else 1e-3)

    @property
    def lr_schedule(self) -> str:
        """The schedule in force (auto resolved)."""
        if self.schedule != "auto":
            return self.schedule
        return "zaremba" if self.optimizer == "sgd" else "plateau"

    @property
    def summed_loss(self) -> bool:
        """Whether the training loss is summed over time (True) or averaged per token."""
        return self.loss == "sum" or (self.loss == "auto" and self.optimizer == "sgd")


@dataclass
class TrainResult:
    """What a run produced: the best model (by validation loss), its vocabulary and metrics."""

    model: LanguageModel
    vocab: Vocabulary
    config: dict  # the model folder's config (level, mode, lower, model settings)
    history: list[dict]  # one metrics record per epoch
    test: dict | None  # {"loss", "ppl"[, "bpc"]} of the best model on the test text
    best_valid_loss: float | None
    best_epoch: int | None
    stopped: str  # "done" | "early-stopping" | "max-steps" | "time-limit" | "interrupted"
    skipped_steps: int
    output_dir: Path | None
    coverage: dict | None = None  # word-vector coverage when vectors were loaded
    settings: TrainSettings = field(default_factory=TrainSettings)


def sequence_loss(logits: Tensor, targets: Tensor) -> tuple[Tensor, int]:
    """Cross-entropy summed over all real target tokens, and their number (padding ignored)."""
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1),
                           ignore_index=IGNORE, reduction="sum")
    return loss, int((targets != IGNORE).sum())


def metrics(loss: float, level: str) -> dict:
    """Loss per token with its perplexity (and bits per character at character level)."""
    out = {"loss": loss, "ppl": math.exp(min(loss, 700.0))}
    if level == "char":
        out["bpc"] = loss / math.log(2)
    return out


@torch.no_grad()
def evaluate_batches(model: LanguageModel, batches: StreamBatches | SentenceBatches,
                     group: distributed.Group | None = None) -> float:
    """Mean loss per token over all batches (stream: state carried through the text).

    In a process group each rank scores its share (stream columns or whole sentence batches)
    and the sums are added up, so every rank returns the same number.
    """
    group = group or distributed.Group()
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    total, count, state = 0.0, 0, None
    items = batches.epoch(0)
    if not batches.carries_state:
        items = group.share(items)
    for item in items:
        x, y, lengths = batches.get(item)
        if batches.carries_state:
            cols = group.span(x.shape[1])
            x, y = x[:, cols], y[:, cols]
            if x.shape[1] == 0:
                break
        logits, state = model(x.to(device), state if batches.carries_state else None, lengths)
        loss, n = sequence_loss(logits, y.to(device))
        total, count = total + float(loss), count + n
    model.train(was_training)
    total, count = group.sum([total, count], device)
    return total / max(count, 1)


def train_language_model(
    train: str | Path | None = None,
    output_dir: str | Path | None = None,
    resume: bool = False,
    overwrite: bool = False,
    allow_changed_data: bool = False,
    **settings,
) -> TrainResult:
    """Train a language model on the text file `train`; see TrainSettings for every setting.

    With `output_dir`, writes `best/` and `last/` model folders, `metrics.jsonl` and
    `curve.png`; `resume=True` continues from `output_dir/last` (train may then be omitted) and
    refuses training files that changed since unless `allow_changed_data`; `overwrite=True`
    starts an earlier run in `output_dir` again. The folder is locked while training.
    Example: `train_language_model("ptb.train.txt", "ptb-small", valid="ptb.valid.txt")`.
    """
    unknown = set(settings) - {f.name for f in dataclasses.fields(TrainSettings)}
    if unknown:
        raise RnnlabError(f"unknown training settings: {', '.join(sorted(unknown))}")
    if output_dir is None:
        if resume:
            raise RnnlabError("resume needs the output folder of the earlier run")
        return _train(train, None, None, settings, allow_changed_data)
    out = Path(output_dir).resolve()
    if not is_main_process():  # under torchrun rank 0 alone checks, locks and writes
        saved = checkpoint.load_training(out / "last") if resume else None
        return _train(train, out, saved, settings, allow_changed_data)
    inputs = [p for p in (train, *(settings.get(k) for k in ("valid", "test", "vectors"))) if p]
    check_output(output_dir, "training-run", overwrite=overwrite, resume=resume,
                 inputs=tuple(inputs))
    with output_lock(out, "training-run"):
        if overwrite and not resume:
            clear_run(out)
        saved = checkpoint.load_training(out / "last") if resume else None
        return _train(train, out, saved, settings, allow_changed_data)


def clear_run(out: Path) -> None:
    """Remove what an earlier run wrote in `out` (only rnnlab's own entries), to start again."""
    for name in ("best", "last", "metrics.jsonl", "curve.png"):
        path = out / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def _train(train, out: Path | None, saved, settings: dict, allow_changed_data: bool) -> TrainResult:
    if saved is not None:
        train, s = _resumed_settings(saved[0], train, settings)
        check_same_data(saved[0], s, train, allow_changed_data)
    else:
        if train is None:
            raise RnnlabError("no training file given")
        s = TrainSettings(**settings)
    return Trainer(Path(train), s, out, saved).run()


def data_files(s: TrainSettings, train: str | Path) -> dict[str, str]:
    """The text files a run reads, by role."""
    files = {"train": str(Path(train).resolve())}
    files.update({k: getattr(s, k) for k in ("valid", "test") if getattr(s, k)})
    return files


def check_same_data(state: dict, s: TrainSettings, train, allow_changed: bool) -> None:
    """Refuse to resume on text files that changed since the run started (size or SHA-256)."""
    recorded = state.get("data") or {}
    for role, path in data_files(s, train).items():
        if role not in recorded or not Path(path).is_file():
            continue
        if file_fingerprint(path) != recorded[role] and not allow_changed:
            raise RnnlabError(f"{path}: the {role} text changed since this run started "
                              f"(size or SHA-256 differ); pass --allow-changed-data to go on "
                              f"with the new text")


def _resumed_settings(state: dict, train, overrides: dict) -> tuple[str, TrainSettings]:
    saved = dict(state["settings"])
    if train is not None and Path(train).resolve() != Path(state["train"]):
        raise RnnlabError(f"resuming a run that trained on {state['train']}, not {train}")
    for key, value in overrides.items():
        if key not in RUNTIME_KEYS and value != saved.get(key) and not (
                key == "split" and value is not None and list(value) == saved.get(key)):
            raise RnnlabError(f"cannot change {key!r} when resuming (was {saved.get(key)!r})")
    # The stopping limits belong to the command that set them: a resumed run that stopped at
    # max_steps goes on unless it is given a (higher) limit again.
    saved.update(max_steps=None, max_minutes=None)
    saved.update({k: v for k, v in overrides.items() if k in RUNTIME_KEYS})
    return state["train"], TrainSettings(**saved)


class Trainer:
    """One training run; `run()` does it all. Kept as a class only to share its state."""

    def __init__(self, train: Path, s: TrainSettings, output_dir, saved) -> None:
        self.s = s
        self.train_path = train.resolve()
        self.out = Path(output_dir) if output_dir is not None else None
        self.saved = saved
        self.group = distributed.Group()
        self.device = torch.device("cpu")
        self.interrupted = False

    def log(self, msg: str) -> None:
        """A note on stderr (rank 0 only; none with quiet)."""
        if not self.s.quiet and self.group.main:
            tqdm.write(msg, file=sys.stderr)

    # ----- setup -----

    def prepare_data(self) -> None:
        s = self.s
        lines = read_text(self.train_path, s.encoding, s.errors)
        if s.split:
            train_lines, valid_lines, test_lines = split_lines(lines, *s.split)
        else:
            train_lines = lines
            valid_lines = read_text(s.valid, s.encoding, s.errors) if s.valid else []
            test_lines = read_text(s.test, s.encoding, s.errors) if s.test else []
        if self.saved is not None:
            self.vocab = Vocabulary.load(checkpoint.resume_folder(self.out / "last") / "vocab.json")
        else:
            self.vocab = build_vocab(tokenize_lines(train_lines, s.level, s.mode, s.lower),
                                     s.level, s.mode, s.min_count, s.max_vocab)

        def batches(text_lines, batch, seed=None):
            if not text_lines:
                return None
            ids = encode_text(text_lines, self.vocab, s.level, s.mode, s.lower)
            if s.mode == "sentence":
                return SentenceBatches(ids, batch, seed)
            return StreamBatches(ids, batch, s.bptt)

        if s.mode == "stream":
            self.group.columns(s.batch_size)  # fails early when the batch does not split
        self.train_data = batches(train_lines, s.batch_size, s.seed)
        if self.train_data is None:
            raise RnnlabError(f"{self.train_path}: no training text")
        self.valid_data = batches(valid_lines, s.eval_batch_size)
        self.test_data = batches(test_lines, s.eval_batch_size)
        # Recorded in `last`, so that a resume can tell whether the text changed under it.
        self.fingerprints = {role: file_fingerprint(path)
                             for role, path in data_files(s, self.train_path).items()}

    def build_model(self) -> None:
        s = self.s
        wv, tie = None, s.tie_weights
        embed = s.embed_size
        if self.saved is not None:
            # The vectors' dimension may have set it; the checkpoint knows what was built.
            last = checkpoint.resume_folder(self.out / "last")
            embed = checkpoint.read_config(last)["model"]["embed_size"]
        elif s.vectors:
            from rnnlab.word2vec.vectors import WordVectors

            wv = WordVectors.load(s.vectors)
            if embed is None:
                embed = int(wv.vectors.shape[1])
        if s.freeze_vectors and tie:
            self.log("note: frozen vectors are not tied to the decoder (weight tying off)")
            tie = False
        torch.manual_seed(s.seed)
        self.model = LanguageModel(len(self.vocab), embed or s.hidden_size, s.hidden_size,
                                   s.layers, s.cell, s.dropout, tie, s.init_range)
        if s.freeze_vectors:  # load_vectors froze them on the first run; a resume must too
            self.model.embedding.weight.requires_grad_(False)
        self.coverage = None
        if wv is not None:
            self.coverage = self.model.load_vectors(wv, self.vocab, s.freeze_vectors)
            c = self.coverage
            self.log(f"word vectors: {c['matched']}/{c['total']} tokens matched "
                     f"({100 * c['coverage']:.1f} %; {c['lowercase']} via lowercase), "
                     f"{'frozen' if c['frozen'] else 'fine-tuned'}")
        self.model.to(self.device)
        self.net = distributed.wrap(self.model, self.group, self.device)
        if self.group.rank:  # the same weights everywhere, but each rank its own dropout masks
            torch.manual_seed(s.seed + 7919 * self.group.rank)
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        if s.optimizer == "sgd":
            self.optimizer = torch.optim.SGD(self.params, lr=s.learning_rate,
                                             weight_decay=s.weight_decay)
        else:
            self.optimizer = torch.optim.Adam(self.params, lr=s.learning_rate,
                                              weight_decay=s.weight_decay)
        self.config = {"level": s.level, "mode": s.mode, "lower": s.lower}

    def restore(self) -> None:
        """Counters and tensors of a fresh run, or those saved in `last`."""
        self.epoch, self.step_in_epoch, self.global_step = 1, 0, 0
        self.lr = self.s.learning_rate
        self.best_valid, self.best_epoch, self.bad_epochs = None, None, 0
        self.history: list[dict] = []
        self.skipped, self.bad_in_row = 0, 0
        self.epoch_loss, self.epoch_tokens = 0.0, 0
        self.hidden = None
        self.best_state = None
        if self.saved is None:
            return
        state, tensors = self.saved
        for key in ("epoch", "step_in_epoch", "global_step", "lr", "best_valid", "best_epoch",
                    "bad_epochs", "history", "skipped", "epoch_loss", "epoch_tokens"):
            setattr(self, key, state[key])
        if state.get("world", 1) != self.group.world:
            raise RnnlabError(f"this run was trained by {state.get('world', 1)} process(es); "
                              f"resume it with as many (now {self.group.world})")
        self.coverage = state.get("coverage")
        last = checkpoint.resume_folder(self.out / "last")
        st_load_model(self.model, last / "model.safetensors", strict=True)
        checkpoint.restore_optimizer(self.optimizer, state, tensors)
        if "hidden.0" in tensors:  # the whole batch's state: this rank takes its columns
            cols = self.group.columns(tensors["hidden.0"].shape[1])
            h = [tensors[f"hidden.{k}"][:, cols].to(self.device)
                 for k in range(state["hidden_parts"])]
            self.hidden = tuple(h) if len(h) == 2 else h[0]
        if (self.out / "best").is_dir() and self.best_valid is not None:
            best, _, _ = checkpoint.load_model(self.out / "best")
            self.best_state = {k: v.to(self.device) for k, v in best.state_dict().items()}
        # Last: building models above draws from the generators.
        suffix = f".{self.group.rank}" if self.group.rank else ""
        torch.set_rng_state(tensors["rng.torch" + suffix])
        if self.device.type == "cuda" and "rng.cuda" + suffix in tensors:
            torch.cuda.set_rng_state(tensors["rng.cuda" + suffix], self.device)

    # ----- saving -----

    def save_last(self) -> None:
        self.saved_at = time.perf_counter()
        if self.out is None:
            return
        # Collective: every rank hands rank 0 its generator states and its columns' state.
        mine = {"rng.torch": torch.get_rng_state(), "hidden": self.hidden_on_cpu()}
        if self.device.type == "cuda":
            mine["rng.cuda"] = torch.cuda.get_rng_state(self.device)
        ranks = self.group.gather(mine)
        if not self.group.main:
            return
        state = {"train": str(self.train_path), "settings": dataclasses.asdict(self.s),
                 "epoch": self.epoch, "step_in_epoch": self.step_in_epoch,
                 "global_step": self.global_step, "lr": self.lr,
                 "best_valid": self.best_valid, "best_epoch": self.best_epoch,
                 "bad_epochs": self.bad_epochs, "history": self.history,
                 "skipped": self.skipped, "epoch_loss": self.epoch_loss,
                 "epoch_tokens": self.epoch_tokens, "coverage": self.coverage,
                 "world": self.group.world, "data": self.fingerprints}
        tensors = {}
        for rank, got in enumerate(ranks):
            suffix = f".{rank}" if rank else ""
            tensors.update({k + suffix: v for k, v in got.items() if k.startswith("rng.")})
        hidden = [got["hidden"] for got in ranks]
        if any(h is not None for h in hidden):
            like = next(h for h in hidden if h is not None)
            zeros = tuple(map(torch.zeros_like, like)) if isinstance(like, tuple) else torch.zeros_like(like)
            parts = distributed.cat_columns([zeros if h is None else h for h in hidden])
            parts = parts if isinstance(parts, tuple) else (parts,)
            tensors.update({f"hidden.{k}": p for k, p in enumerate(parts)})
            state["hidden_parts"] = len(parts)
        checkpoint.save_model(self.out / "last", self.model, self.vocab, self.config,
                              extra={"epoch": self.epoch - (self.step_in_epoch == 0)},
                              training={"state": state, "tensors": tensors,
                                        "optimizer": self.optimizer})

    def hidden_on_cpu(self):
        """The carried state, on the CPU (None at the start of an epoch)."""
        if self.hidden is None:
            return None
        if isinstance(self.hidden, tuple):
            return tuple(h.detach().cpu() for h in self.hidden)
        return self.hidden.detach().cpu()

    def write_metrics(self, extra_lines: list[dict] = ()) -> None:
        if self.out is None or not self.group.main:
            return
        with atomic_write(self.out / "metrics.jsonl") as f:
            for record in [*self.history, *extra_lines]:
                f.write(json.dumps(record) + "\n")

    # ----- training -----

    def lr_for_epoch(self, epoch: int) -> float:
        s = self.s
        if s.lr_schedule == "zaremba":
            return s.learning_rate * s.lr_decay ** max(0, epoch - s.decay_after)
        return self.lr

    def local_batch(self, item) -> tuple[Tensor, Tensor, Tensor | None, bool]:
        """This rank's share of a batch on the device, and whether it is real: a rank left
        without sentences (a short last batch) runs one with zero weight, for the collectives."""
        if self.train_data.carries_state:
            x, y, lengths = self.train_data.get(item)
            cols = self.group.columns(x.shape[1])
            x, y, real = x[:, cols], y[:, cols], True
        else:
            mine = self.group.share(item)
            real = bool(mine)
            x, y, lengths = self.train_data.get(mine if real else item[:1])
        return x.to(self.device), y.to(self.device), lengths, real

    def train_step(self, item) -> None:
        s = self.s
        x, y, lengths, real = self.local_batch(item)
        state = detach_state(self.hidden) if self.train_data.carries_state else None
        with autocast(self.device, s.precision):
            logits, new_state = self.net(x, state, lengths)
        loss, count = sequence_loss(logits.float(), y)
        # Sums over the whole batch (all ranks) decide alike everywhere. DDP averages the ranks'
        # gradients, so each scales its summed loss by world / (batch or tokens of the batch).
        total, tokens, columns = self.group.sum(
            [loss.item(), count, x.shape[1]] if real else [0.0, 0, 0], self.device)
        scale = self.group.world / (columns if s.summed_loss else max(tokens, 1))
        objective = loss * (scale if real else 0.0)
        ok = math.isfinite(total)
        if ok:
            self.optimizer.zero_grad(set_to_none=True)
            objective.backward()
            norm = torch.nn.utils.clip_grad_norm_(self.params, s.clip or math.inf)
            ok = bool(torch.isfinite(norm))
        if ok:
            self.optimizer.step()
            self.bad_in_row = 0
            self.epoch_loss += total
            self.epoch_tokens += int(tokens)
        else:
            self.skipped += 1
            self.bad_in_row += 1
            self.log(f"step {self.global_step + 1}: non-finite loss or gradient; step skipped")
            if self.bad_in_row >= s.max_bad_steps:
                raise RnnlabError(
                    f"{self.bad_in_row} non-finite steps in a row at step {self.global_step + 1}"
                    f" (epoch {self.epoch}); training stopped. Try a lower learning rate or "
                    f"stronger clipping")
        if self.train_data.carries_state:
            finite = all(bool(torch.isfinite(p).all()) for p in
                         (new_state if isinstance(new_state, tuple) else (new_state,)))
            self.hidden = detach_state(new_state) if finite else None
        self.step_in_epoch += 1
        self.global_step += 1

    def end_epoch(self, seconds: float, tokens: int) -> None:
        s = self.s
        train_loss = self.epoch_loss / max(self.epoch_tokens, 1)
        record = {"epoch": self.epoch, "step": self.global_step, "lr": self.lr,
                  **{f"train_{k}": v for k, v in metrics(train_loss, s.level).items()}}
        improved = True
        if self.valid_data is not None:
            valid_loss = evaluate_batches(self.model, self.valid_data, self.group)
            record.update({f"valid_{k}": v for k, v in metrics(valid_loss, s.level).items()})
            improved = self.best_valid is None or valid_loss < self.best_valid
        record.update({"skipped": self.skipped, "seconds": round(seconds, 1),
                       "tokens_per_s": round(tokens / max(seconds, 1e-9))})
        if improved:
            self.best_valid = record.get("valid_loss")
            self.best_epoch = self.epoch
            self.bad_epochs = 0
            self.best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
            if self.out is not None and self.group.main:
                checkpoint.save_model(self.out / "best", self.model, self.vocab, self.config,
                                      extra={"epoch": self.epoch, **record})
        else:
            self.bad_epochs += 1
            if s.lr_schedule == "plateau":
                self.lr /= s.plateau_factor
        self.history.append(record)
        if not s.quiet and self.group.main:
            tqdm.write(json.dumps(record), file=sys.stdout)
        self.write_metrics()
        self.epoch += 1
        self.step_in_epoch, self.epoch_loss, self.epoch_tokens = 0, 0.0, 0
        self.hidden = None
        self.save_last()

    def save_partial_best(self) -> None:
        """Stopped before any epoch ended: write `best/` from the current weights.

        best_valid stays unset, so a resumed run replaces it exactly as an uninterrupted one.
        """
        if self.out is None or self.best_state is not None:
            return
        record = {"epoch": self.epoch, "step": self.global_step, "partial": True}
        if self.valid_data is not None:
            valid = metrics(evaluate_batches(self.model, self.valid_data, self.group), self.s.level)
            record.update({f"valid_{k}": v for k, v in valid.items()})
        if self.group.main:
            checkpoint.save_model(self.out / "best", self.model, self.vocab, self.config, extra=record)

    def train_epochs(self) -> str:
        s = self.s
        if s.max_steps is not None and self.global_step >= s.max_steps:
            self.log(f"already at step {self.global_step}, max_steps is {s.max_steps}: "
                     f"nothing to train")
            return "max-steps"
        while self.epoch <= s.epochs:
            self.lr = self.lr_for_epoch(self.epoch)
            for param_group in self.optimizer.param_groups:
                param_group["lr"] = self.lr
            self.model.train()
            items = self.train_data.epoch(self.epoch)
            bar = tqdm(total=len(items), initial=self.step_in_epoch, unit="batch",
                       desc=f"epoch {self.epoch}/{s.epochs}",
                       disable=not (s.progress and self.group.main),
                       leave=False, dynamic_ncols=True, file=sys.stderr)
            start, tokens = time.perf_counter(), 0
            with bar:
                for item in items[self.step_in_epoch:]:
                    before = self.epoch_tokens
                    self.train_step(item)
                    tokens += self.epoch_tokens - before
                    if self.global_step % 10 == 0 or self.step_in_epoch == len(items):
                        loss = self.epoch_loss / max(self.epoch_tokens, 1)
                        rate = tokens / max(time.perf_counter() - start, 1e-9)
                        bar.set_postfix(loss=f"{loss:.3f}", ppl=f"{math.exp(min(loss, 700)):.1f}",
                                        tok_s=f"{rate:.0f}", lr=f"{self.lr:.3g}", refresh=False)
                    bar.update(1)
                    now = time.perf_counter()
                    # Decided alike on every rank: one rank's Ctrl-C or clock stops them all.
                    flags = self.group.sum([
                        self.interrupted,
                        s.max_minutes is not None and now - self.started > 60 * s.max_minutes,
                        s.checkpoint_minutes > 0 and now - self.saved_at > 60 * s.checkpoint_minutes,
                    ], self.device)
                    self.interrupted, out_of_time, due = (v > 0 for v in flags)
                    at_max = s.max_steps is not None and self.global_step >= s.max_steps
                    if self.interrupted or at_max or out_of_time:
                        self.save_last()
                        if self.interrupted:
                            return "interrupted"
                        self.save_partial_best()
                        return "max-steps" if at_max else "time-limit"
                    if due or (s.checkpoint_every and self.global_step % s.checkpoint_every == 0):
                        self.save_last()
            self.end_epoch(time.perf_counter() - start, tokens)
            if s.patience and self.bad_epochs >= s.patience:
                self.log(f"early stopping: no improvement for {self.bad_epochs} epochs")
                return "early-stopping"
        return "done"

    def run(self) -> TrainResult:
        self.device = resolve_device(self.s.device)
        self.group = distributed.join(self.device)
        try:
            return self.train_and_test()
        finally:
            self.group.close()

    def train_and_test(self) -> TrainResult:
        s = self.s
        if s.threads:
            torch.set_num_threads(s.threads)
        self.started = self.saved_at = time.perf_counter()
        self.prepare_data()
        self.build_model()
        self.restore()
        with self.signals_save():
            stopped = self.train_epochs()
        if self.best_state is not None:
            self.model.load_state_dict(self.best_state)
        self.model.eval()
        test = None
        if stopped != "interrupted" and self.test_data is not None:
            test = metrics(evaluate_batches(self.model, self.test_data, self.group), s.level)
            if not s.quiet and self.group.main:
                tqdm.write(json.dumps({f"test_{k}": v for k, v in test.items()}
                                      | {"best_epoch": self.best_epoch}), file=sys.stdout)
            self.write_metrics([{f"test_{k}": v for k, v in test.items()}
                                | {"best_epoch": self.best_epoch}])
        if self.out is not None and self.history and self.group.main:
            from rnnlab.lm.plot import plot_curve

            plot_curve(self.history, self.out / "curve.png", s.level)
        if stopped == "interrupted":
            self.log(f"interrupted: checkpoint saved in {self.out / 'last' if self.out else '-'}"
                     f"; continue with resume")
        return TrainResult(self.model, self.vocab, self.config, self.history, test,
                           self.best_valid, self.best_epoch, stopped, self.skipped, self.out,
                           self.coverage, s)

    @contextlib.contextmanager
    def signals_save(self):
        """While training, Ctrl-C or SIGTERM finishes the current step, saves `last` and stops.

        SIGTERM is how job schedulers and torchrun stop processes (torchrun after Ctrl-C, which
        its workers see too), so it never aborts the save; a second Ctrl-C stops at once.
        """
        def handler(signum, frame):
            if self.interrupted and signum == signal.SIGINT:
                raise KeyboardInterrupt
            if not self.interrupted:
                self.log(f"{signal.Signals(signum).name}: saving a checkpoint after this step "
                         f"(Ctrl-C again to abort)")
            self.interrupted = True

        try:
            previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
        except ValueError:  # not the main thread: leave signals alone
            yield
            return
        try:
            yield
        finally:
            for sig, old in previous.items():
                signal.signal(sig, old)
