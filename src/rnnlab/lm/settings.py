"""Every setting of a language-model training run, checked, with Zaremba et al.'s defaults.

The defaults are Zaremba et al.'s (2014) "small" PTB setup: 2 × 200 LSTM, uniform ±0.1 init,
SGD at learning rate 1 halved every epoch after the 4th, gradients clipped to norm 5, 20 × 20
blocks. Its loss is the cross-entropy summed over the steps of a block and averaged over the
batch (docs/conventions.md); with the per-token mean the same lr and clip learn ~bptt times
slower, so `loss="auto"` sums for SGD and averages for Adam. Reported losses are per token.

RECIPES name presets of settings: "awd" is AWD-LSTM's (Merity et al. 2018) regularisation and
optimisation schedule for PTB, not its architecture; `with_recipe` fills them in under the
settings given explicitly.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

from rnnlab.device import PRECISIONS
from rnnlab.dropout import check_rate
from rnnlab.errors import RnnlabError
from rnnlab.lm.adaptive import DECODERS, check_cutoffs, check_shrink
from rnnlab.text.pipeline import check_level_mode

OPTIMIZERS = ("sgd", "adam")
SCHEDULES = ("auto", "zaremba", "plateau", "constant")
LOSSES = ("auto", "sum", "mean")
# Settings that may change when resuming; the rest define the model and the data. How the
# files decode may change too: e.g. to read on past a bad byte that stopped the first run.
RUNTIME_KEYS = ("epochs", "finetune", "max_steps", "max_minutes", "checkpoint_every",
                "checkpoint_minutes", "patience", "threads", "encoding", "errors", "device",
                "precision")
# Settings of earlier versions that now belong to the command line (how much it prints).
RETIRED_KEYS = ("progress", "quiet")
DEFAULT_HIDDEN = 200
# AWD-LSTM's PTB settings (salesforce/awd-lstm-lm): the regularisers and the optimiser schedule.
# Its loss is the per-token mean (lr 30 is per token) at a constant rate until NT-ASGD averages.
# Names another part of rnnlab does not define (yet) are left out by with_recipe.
RECIPES = {"awd": {
    "optimizer": "sgd", "lr": 30.0, "loss": "mean", "schedule": "constant", "clip": 0.25,
    "bptt": 70, "batch_size": 80, "variable_bptt": True, "asgd": True, "nonmono": 5,
    "weight_decay": 1.2e-6, "weight_drop": 0.5, "dropout_input": 0.4, "dropout_hidden": 0.25,
    "dropout_output": 0.4, "dropout_words": 0.1, "ar": 2.0, "tar": 1.0,
}}


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
    hidden_size: int | None = None  # None: the vectors' dimension, else DEFAULT_HIDDEN
    embed_size: int | None = None  # None: the vectors' dimension, else hidden_size
    dropout: float = 0.0  # Zaremba's: fresh at every step; where the AWD-LSTM's are None
    # The AWD-LSTM's regularisers (Merity et al. 2018; its PTB values in the comments).
    dropout_input: float | None = None  # locked dropout on the embedding's output (0.4)
    dropout_hidden: float | None = None  # locked dropout between recurrent layers (0.25)
    dropout_output: float | None = None  # locked dropout on the last layer's output (0.4)
    dropout_words: float = 0.0  # embedding dropout: whole words per batch (0.1)
    weight_drop: float = 0.0  # DropConnect on the hidden-to-hidden weights (0.5)
    tie_weights: bool = True
    decoder: str = "full"  # full | adaptive (the adaptive softmax, rnnlab.lm.adaptive)
    cutoffs: list[int] | None = None  # adaptive: head and cluster bounds (None: from the counts)
    tail_shrink: float | None = None  # adaptive, untied: cluster i projects to size / shrink^i (4)
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
    ar: float = 0.0  # activation regularisation α (AWD-LSTM: 2)
    tar: float = 0.0  # temporal activation regularisation β (AWD-LSTM: 1)
    bptt: int = 20
    variable_bptt: bool = False  # AWD-LSTM: block lengths drawn around bptt, lr scaled by them
    asgd: bool = False  # NT-ASGD: average the weights once validation stalls (AWD-LSTM: on)
    nonmono: int = 5  # NT-ASGD: checks a loss must be worse than the best before them
    finetune: int = 0  # epochs that restart averaging from the best weights after training
    recipe: str | None = None  # the preset (RECIPES) the run started from, for the record
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

    def __post_init__(self) -> None:
        check_level_mode(self.level, self.mode)
        if self.lower not in (True, False):
            raise RnnlabError(f"lower must be true or false, got {self.lower!r}")
        for name, allowed in (("optimizer", OPTIMIZERS), ("schedule", SCHEDULES),
                              ("loss", LOSSES), ("precision", PRECISIONS), ("decoder", DECODERS)):
            if getattr(self, name) not in allowed:
                raise RnnlabError(f"{name} must be one of {', '.join(allowed)}, "
                                  f"got {getattr(self, name)!r}")
        for name in ("layers", "bptt", "batch_size", "eval_batch_size", "max_bad_steps",
                     "min_count", "nonmono"):
            if getattr(self, name) < 1:
                raise RnnlabError(f"{name} must be at least 1, got {getattr(self, name)}")
        if min(self.epochs, self.checkpoint_every, self.checkpoint_minutes, self.clip) < 0:
            raise RnnlabError("epochs, checkpoint_every, checkpoint_minutes and clip must not be "
                              "negative")
        self.check_schedule()
        self.check_decoder()
        for name in ("hidden_size", "embed_size", "max_steps", "threads"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                label = {"embed_size": "embedding size (embed_size)",
                         "hidden_size": "hidden size (hidden_size)"}.get(name, name)
                raise RnnlabError(f"{label} must be at least 1, got {getattr(self, name)}")
        for name in ("dropout", "dropout_input", "dropout_hidden", "dropout_output",
                     "dropout_words", "weight_drop"):
            if getattr(self, name) is not None:
                check_rate(name, getattr(self, name))
        for name in ("ar", "tar"):
            if not 0 <= getattr(self, name) < float("inf"):
                raise RnnlabError(f"{name} must be a non-negative number, got {getattr(self, name)}")
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

    def check_schedule(self) -> None:
        """Refuse AWD-LSTM schedule settings that cannot work together."""
        for name in ("variable_bptt", "asgd"):
            if getattr(self, name) not in (True, False):
                raise RnnlabError(f"{name} must be true or false, got {getattr(self, name)!r}")
        if self.finetune < 0:
            raise RnnlabError(f"finetune must not be negative, got {self.finetune}")
        if self.recipe is not None and self.recipe not in RECIPES:
            raise RnnlabError(f"recipe must be one of {', '.join(RECIPES)}, got {self.recipe!r}")
        if self.variable_bptt and self.mode != "stream":
            raise RnnlabError("variable_bptt needs stream mode (sentences have their own lengths)")
        if self.asgd and not (self.valid or (self.split and self.split[0] > 0)):
            raise RnnlabError("asgd switches when validation stalls: it needs validation text "
                              "(valid or split)")

    def check_decoder(self) -> None:
        """Refuse adaptive-softmax settings that are malformed or have nothing to act on."""
        if self.decoder != "adaptive" and (self.cutoffs is not None or self.tail_shrink is not None):
            raise RnnlabError("cutoffs and tail_shrink need the adaptive decoder "
                              "(--decoder adaptive)")
        if self.cutoffs is not None:
            self.cutoffs = check_cutoffs(self.cutoffs)
        if self.tail_shrink is not None:
            check_shrink(self.tail_shrink)
            # Tied tails are the embedding's rows: they keep its size (frozen vectors untie).
            if self.tie_weights and not self.freeze_vectors:
                raise RnnlabError("tail_shrink applies to untied weights only (--no-tie): tied "
                                  "tails keep the embedding's size")

    def text_files(self, train: str | Path) -> dict[str, str]:
        """The text files a run reads, by role: train, and valid and test when given."""
        files = {"train": str(Path(train).resolve())}
        files.update({k: getattr(self, k) for k in ("valid", "test") if getattr(self, k)})
        return files

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


def with_recipe(settings: dict) -> dict:
    """`settings` with the values of its recipe (if any) filled in where not given; only the
    names TrainSettings knows."""
    name = settings.get("recipe")
    if name is None:
        return settings
    if name not in RECIPES:
        raise RnnlabError(f"recipe must be one of {', '.join(RECIPES)}, got {name!r}")
    known = {f.name for f in fields(TrainSettings)}
    return {**{k: v for k, v in RECIPES[name].items() if k in known}, **settings}


def recipe_record(s: TrainSettings) -> dict:
    """config.json's record of the recipe: its name and the values its settings ended with."""
    if s.recipe is None:
        return {}
    names = [k for k in RECIPES[s.recipe] if hasattr(s, k)]
    return {"recipe": {"name": s.recipe, "settings": {k: getattr(s, k) for k in names}}}


def resumed_settings(state: dict, train, overrides: dict) -> tuple[str, TrainSettings]:
    """(training file, settings) of a run resumed from its saved state, with the `overrides`
    that may change (RUNTIME_KEYS); any other change is refused."""
    saved = {k: v for k, v in state["settings"].items() if k not in RETIRED_KEYS}
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
