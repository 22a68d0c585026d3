"""`rnnlab models`: the ready-made models shipped with rnnlab, their sizes and figures."""

from __future__ import annotations

import argparse
import json

from rnnlab.errors import RnnlabError
from rnnlab.ready import ready_models


def register(subparsers) -> None:
    """Add `models`."""
    p = subparsers.add_parser(
        "models", help="list the ready-made models (names usable wherever a model goes)",
        description="List the models shipped inside rnnlab, with size and measured figures. "
                    "Their names work wherever a model or vectors path goes (rnnlab generate "
                    "NAME, rnnlab similar NAME WORD, rnnlab evaluate NAME FILE); a local path of "
                    "the same name wins.")
    p.add_argument("name", nargs="?", help="print this model's whole card (JSON)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print one line per model, or one model's card."""
    models = ready_models()
    if args.name is not None:
        chosen = [m for m in models if m.name == args.name]
        if not chosen:
            names = ", ".join(m.name for m in models) or "none in this installation"
            raise RnnlabError(f"no ready-made model {args.name!r} (there are: {names})")
        print(json.dumps(chosen[0].card, indent=2, ensure_ascii=False))
        return 0
    if not models:
        print("no ready-made models in this installation")
    for m in models:
        figures = ", ".join(f"{k} {v}" for k, v in m.card.get("figures", {}).items())
        print(f"{m.name:<20} {m.size / 2**20:6.1f} MB  {m.card.get('summary', '')}"
              + (f"; {figures}" if figures else ""))
    return 0
