"""Where tensors live: `--device auto|cpu|cuda|cuda:N|mps` resolved to a torch.device.

`auto` takes CUDA when torch sees a GPU and the CPU otherwise (MPS is never picked on its own:
some recurrent kernels are missing there, so it has to be asked for). Under torchrun a plain
`cuda` (or `auto` on a GPU machine) means this process's own GPU, cuda:LOCAL_RANK.
"""

from __future__ import annotations

import os

import torch

from rnnlab.errors import RnnlabError

DEVICE_HELP = ("auto (CUDA when present, else CPU) | cpu | cuda | cuda:N | mps; under torchrun "
               "cuda means each process's own GPU (default auto)")
PRECISIONS = ("fp32", "bf16")


def resolve_device(name: str = "auto") -> torch.device:
    """The torch.device for a --device value; a clear RnnlabError when it is not available."""
    name = (name or "auto").strip().lower()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cpu":
        return torch.device("cpu")
    if name == "mps":
        if not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
            raise RnnlabError("device mps is not available (Apple GPUs with an MPS build of torch)")
        return torch.device("mps")
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            build = "a CPU-only build" if torch.version.cuda is None else f"CUDA {torch.version.cuda}"
            raise RnnlabError(f"device {name}: no CUDA GPU is available (torch {torch.__version__}, "
                              f"{build}); use --device cpu")
        index = local_rank if name == "cuda" else _index(name)
        if index >= torch.cuda.device_count():
            raise RnnlabError(f"device cuda:{index}: only {torch.cuda.device_count()} CUDA "
                              f"device(s) present")
        return torch.device("cuda", index)
    raise RnnlabError(f"unknown device {name!r}: use auto, cpu, cuda, cuda:N or mps")


def _index(name: str) -> int:
    try:
        index = int(name.split(":", 1)[1])
    except ValueError:
        raise RnnlabError(f"unknown device {name!r}: the CUDA index must be a number") from None
    if index < 0:
        raise RnnlabError(f"unknown device {name!r}: the CUDA index must not be negative")
    return index


def bf16_on_cpu() -> bool:
    """Whether this CPU runs bfloat16 kernels (oneDNN's LSTM has none without AVX-512)."""
    return torch.ops.mkldnn._is_mkldnn_bf16_supported()


def check_precision(device: torch.device, precision: str) -> None:
    """Refuse, before any work, a precision the device cannot run."""
    if precision == "bf16" and device.type == "cpu" and not bf16_on_cpu():
        raise RnnlabError("--precision bf16: this CPU has no bfloat16 instructions (AVX-512); "
                          "use --precision fp32")


def autocast(device: torch.device, precision: str):
    """The autocast context for a precision: bf16 runs the matrix products in bfloat16."""
    if precision not in PRECISIONS:
        raise RnnlabError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")
