"""Model folders: weights as safetensors, settings as JSON, the vocabulary; never pickle.

A folder holds `model.safetensors`, `config.json` (format and version, level, mode, the
model's constructor arguments) and `vocab.json`. A training checkpoint (`MODEL_DIR/last`)
adds `training.json` (counters, schedule, history, optimizer settings) and
`training.safetensors` (optimizer state, RNG state, carried hidden state). Every folder is
built under a temporary name and swapped in whole, so a crash never leaves half a checkpoint.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from safetensors.torch import load_model as st_load_model
from safetensors.torch import save_model as st_save_model
from torch import Tensor

from rnnlab.cells import CELL_TYPES
from rnnlab.errors import RnnlabError
from rnnlab.fileio import atomic_dir
from rnnlab.formats import check_format
from rnnlab.lm.adaptive import DECODERS, TAIL_SHRINK, check_cutoffs, check_shrink
from rnnlab.lm.model import REGULARISERS, LanguageModel
from rnnlab.text.pipeline import TextPipeline
from rnnlab.text.vocab import Vocabulary

FORMAT = "rnnlab-lm"
VERSION = 1
# Weights are computed in float32; other float types widen exactly, integers would be cast.
FLOAT_DTYPES = ("F32", "F16", "BF16")
# A product of two weights beyond this overflows float32: no trained model comes near it.
MAX_WEIGHT = torch.finfo(torch.float32).max ** 0.5


def save_model(
    path: str | Path, model: LanguageModel, vocab: Vocabulary, config: dict,
    training: dict | None = None,
) -> Path:
    """Write a model folder atomically; `config` is what config.json holds besides the format
    and the model's settings; `training` = {"state", "tensors", "optimizer"} adds resume data."""
    meta = {"format": FORMAT, "version": VERSION, **config, "model": model.config}
    with atomic_dir(path, "language-model") as tmp:
        # save_model (not save_file) stores tied weights once.
        st_save_model(model, str(tmp / "model.safetensors"))
        (tmp / "config.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        vocab.save(tmp / "vocab.json")
        if training is not None:
            tensors = dict(training.get("tensors", {}))
            state = dict(training["state"])
            if training.get("optimizer") is not None:
                opt_json, opt_tensors = _optimizer_to_files(training["optimizer"])
                state["optimizer"] = opt_json
                tensors.update({f"optimizer.{k}": v for k, v in opt_tensors.items()})
            save_file({k: v.detach().contiguous() for k, v in tensors.items()},
                      str(tmp / "training.safetensors"))
            (tmp / "training.json").write_text(json.dumps(state, indent=2) + "\n",
                                               encoding="utf-8")
    return Path(path)


def model_folder(path: str | Path) -> Path:
    """The model folder `path` names: itself, or a training run's best/ (else its last/)."""
    path = Path(path)
    if (path / "config.json").exists() or not path.is_dir():
        return path
    for name in ("best", "last"):
        if (path / name / "config.json").exists():
            return path / name
    return path


def read_config(path: str | Path) -> dict:
    """The validated config.json of a model folder."""
    path = Path(path)
    if not path.is_dir():
        raise RnnlabError(f"{path}: no such model folder")
    try:
        config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RnnlabError(f"{path}: not a model folder (config.json missing)") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise RnnlabError(f"{path / 'config.json'}: not valid JSON ({e})") from None
    check_format(config, path, FORMAT, VERSION, "language model")
    for key in ("level", "mode", "model"):
        if key not in config:
            raise RnnlabError(f"{path / 'config.json'}: missing {key!r}")
    try:
        TextPipeline.from_config(config)
    except RnnlabError as e:
        raise RnnlabError(f"{path / 'config.json'}: {e}") from None
    _check_model_settings(config["model"], path / "config.json")
    return config


def _check_model_settings(model: dict, where: Path) -> None:
    # JSON allows any type anywhere: a string or bool must not slip into a size or a switch.
    if not isinstance(model, dict):
        raise RnnlabError(f"{where}: 'model' must be an object")
    if "vocab_size" not in model:
        raise RnnlabError(f"{where}: model setting 'vocab_size' missing")
    for key in ("vocab_size", "embed_size", "hidden_size", "num_layers"):
        value = model.get(key, 1)
        if type(value) is not int or value < 1:
            raise RnnlabError(f"{where}: model setting {key!r} must be a positive integer, "
                              f"got {value!r}")
    if model.get("cell", "lstm") not in CELL_TYPES:
        raise RnnlabError(f"{where}: unknown cell {model['cell']!r}; "
                          f"choose from {', '.join(CELL_TYPES)}")
    for key, off in {"dropout": 0.0, **REGULARISERS}.items():
        rate = model.get(key, off)
        if rate is None and off is None:
            continue
        if type(rate) not in (int, float) or not 0.0 <= rate < 1.0:
            raise RnnlabError(f"{where}: model setting {key!r} must be a number in [0, 1), "
                              f"got {rate!r}")
    if not isinstance(model.get("tie_weights", True), bool):
        raise RnnlabError(f"{where}: model setting 'tie_weights' must be true or false, "
                          f"got {model['tie_weights']!r}")
    init_range = model.get("init_range")
    if init_range is not None and type(init_range) not in (int, float):
        raise RnnlabError(f"{where}: model setting 'init_range' must be a number or null, "
                          f"got {init_range!r}")
    _check_decoder(model, where)


def _check_decoder(model: dict, where: Path) -> None:
    # Models saved before the adaptive decoder name none: they are full.
    decoder = model.get("decoder", "full")
    if decoder not in DECODERS:
        raise RnnlabError(f"{where}: model setting 'decoder' must be one of "
                          f"{', '.join(DECODERS)}, got {decoder!r}")
    if (decoder == "adaptive") != ("cutoffs" in model):
        raise RnnlabError(f"{where}: model setting 'cutoffs' goes with the adaptive decoder, "
                          f"and only with it")
    try:
        if "cutoffs" in model:
            check_cutoffs(model["cutoffs"], model["vocab_size"])
        check_shrink(model.get("tail_shrink", TAIL_SHRINK))
    except RnnlabError as e:
        raise RnnlabError(f"{where}: model setting {e}") from None


def load_weights(path: Path, config: dict, vocab: Vocabulary) -> LanguageModel:
    """The model a folder's config.json describes, its weights checked and loaded (on the CPU)."""
    try:
        model = LanguageModel(**config["model"])
    except (TypeError, ValueError) as e:
        raise RnnlabError(f"{path / 'config.json'}: bad model settings ({e})") from None
    if len(vocab) != model.config["vocab_size"]:
        raise RnnlabError(f"{path}: vocabulary has {len(vocab)} tokens but the model "
                          f"expects {model.config['vocab_size']}")
    weights = path / "model.safetensors"
    try:
        names = _check_header(model, weights)
        # Into the CPU model first, then moved whole: safetensors takes device names, not
        # torch.device, and loading to a GPU here would only be copied back.
        missing, unexpected = st_load_model(model, weights, strict=False)
    except FileNotFoundError:
        raise RnnlabError(f"{path}: model.safetensors missing") from None
    except (SafetensorError, RuntimeError, OSError) as e:
        raise RnnlabError(f"{weights}: unreadable ({str(e).splitlines()[0]})") from None
    if missing or unexpected:
        raise RnnlabError(f"{weights}: does not match config.json (missing tensors: "
                          f"{', '.join(sorted(missing)) or '-'}; unexpected tensors: "
                          f"{', '.join(sorted(unexpected)) or '-'})")
    _check_values(model, weights, names)
    return model


def _check_header(model: LanguageModel, weights: Path) -> list[str]:
    # Only the header is read: names, dtypes and shapes, no tensor data.
    expected = model.state_dict()
    with safe_open(str(weights), framework="pt") as f:
        names = list(f.keys())
        for name in names:
            tensor = f.get_slice(name)
            dtype = tensor.get_dtype()
            if dtype not in FLOAT_DTYPES:
                raise RnnlabError(f"{weights}: tensor {name!r} is stored as {dtype}; model "
                                  f"weights must be floating point ({', '.join(FLOAT_DTYPES)})")
            shape = tuple(tensor.get_shape())
            if name in expected and shape != tuple(expected[name].shape):
                raise RnnlabError(f"{weights}: wrong shapes: tensor {name!r} is {shape}, "
                                  f"config.json implies {tuple(expected[name].shape)}")
    return names


def _check_values(model: LanguageModel, weights: Path, names: list[str]) -> None:
    # NaN, infinite or overflowing weights would give NaN scores or crash sampling later on.
    # By the file's names: a tied weight is stored once, under one of its two names.
    tensors = model.state_dict()
    for name in names:
        tensor = tensors[name]
        if not torch.isfinite(tensor).all():
            raise RnnlabError(f"{weights}: tensor {name!r} holds NaN or infinite values: "
                              f"the model's weights overflow")
        if tensor.numel() and (big := float(tensor.abs().max())) > MAX_WEIGHT:
            raise RnnlabError(f"{weights}: tensor {name!r} holds values up to {big:.3g}, past "
                              f"float32's range when multiplied: the model's weights overflow")


def resume_folder(path: str | Path) -> Path:
    """The checkpoint folder to resume from: `path`, or the whole previous checkpoint that
    atomic_dir set aside when a kill fell between its two renames."""
    path = Path(path)
    old = path.parent / f".{path.name}.old"
    return old if not path.exists() and old.exists() else path


def load_training(path: str | Path) -> tuple[dict, dict[str, Tensor]]:
    """The training state of a checkpoint: (training.json, training.safetensors)."""
    path = resume_folder(path)
    try:
        state = json.loads((path / "training.json").read_text(encoding="utf-8"))
        tensors = load_file(str(path / "training.safetensors"))
    except FileNotFoundError:
        raise RnnlabError(f"{path}: no training state to resume from") from None
    except (json.JSONDecodeError, SafetensorError, UnicodeDecodeError) as e:
        raise RnnlabError(f"{path}: damaged training state ({e})") from None
    return state, tensors


def restore_optimizer(optimizer: torch.optim.Optimizer, state: dict, tensors: dict) -> None:
    """Load the optimizer state saved by save_model(training=...)."""
    opt_tensors = {k[len("optimizer."):]: v for k, v in tensors.items()
                   if k.startswith("optimizer.")}
    optimizer.load_state_dict(_optimizer_from_files(state["optimizer"], opt_tensors))


def _optimizer_to_files(optimizer: torch.optim.Optimizer) -> tuple[dict, dict[str, Tensor]]:
    sd = optimizer.state_dict()
    tensors, values = {}, {}
    for pid, param_state in sd["state"].items():
        for name, value in param_state.items():
            if torch.is_tensor(value):
                tensors[f"{pid}.{name}"] = value
            else:
                values[f"{pid}.{name}"] = value
    return {"type": type(optimizer).__name__, "param_groups": sd["param_groups"],
            "values": values}, tensors


def _optimizer_from_files(meta: dict, tensors: dict[str, Tensor]) -> dict:
    state: dict[int, dict] = {}
    for key, value in [*tensors.items(), *meta["values"].items()]:
        pid, name = key.split(".", 1)
        state.setdefault(int(pid), {})[name] = value
    return {"state": state, "param_groups": meta["param_groups"]}
