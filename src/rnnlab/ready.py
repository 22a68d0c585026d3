"""Ready-made models shipped inside rnnlab: names that work wherever a model or vectors path goes.

Each lives in `rnnlab/ready_models/NAME/`: a model folder (or a word-vectors folder) with its
weights in half precision, `card.json` (the data and its licence, the settings, the training
time, the figures measured on the shipped weights, a sample) and `README.md`, the same card for
people. `scripts/build_ready_models.py` builds them from the corpora; anyone can rerun it.

A local file or folder of the same name wins over a ready-made model, and `resolve` says so.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rnnlab.errors import RnnlabError

READY_DIR = Path(__file__).parent / "ready_models"
CARD = "card.json"


@dataclass(frozen=True)
class ReadyModel:
    """One shipped model: its name, its folder and its card."""

    name: str
    path: Path
    card: dict

    @property
    def size(self) -> int:
        """Bytes on disk, every file of the folder."""
        return sum(p.stat().st_size for p in self.path.rglob("*") if p.is_file())


def _card(folder: Path) -> dict:
    try:
        card = json.loads((folder / CARD).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise RnnlabError(f"{folder / CARD}: unreadable model card ({e})") from None
    if not isinstance(card, dict):
        raise RnnlabError(f"{folder / CARD}: a model card is a JSON object")
    return card


def ready_models() -> list[ReadyModel]:
    """Every ready-made model shipped with this installation, by name."""
    if not READY_DIR.is_dir():
        return []
    folders = sorted(p for p in READY_DIR.iterdir() if (p / CARD).is_file())
    return [ReadyModel(p.name, p, _card(p)) for p in folders]


def resolve(name_or_path: str | Path, note: Callable[[str], None] | None = None) -> Path:
    """The path a command line argument names: a local path when there is one, else the
    ready-made model of that name, else the argument as given (for the caller's own error)."""
    path = Path(name_or_path)
    name = str(name_or_path)
    shipped = READY_DIR / name if "/" not in name and name not in (".", "..") else None
    if shipped is not None and not (shipped / CARD).is_file():
        shipped = None
    if path.exists():
        if shipped is not None and note is not None:
            note(f"note: {name} is the local {'folder' if path.is_dir() else 'file'} {name!r}, "
                 f"not the ready-made model of that name (give ./{name} to silence this)")
        return path
    return shipped if shipped is not None else path
