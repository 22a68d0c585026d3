"""The `rnnlab` command: a thin shell over the Python API.

Each module in this package adds one or more subcommands through `register(subparsers)`;
each subcommand sets `func(args) -> int | None`.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from rnnlab import __version__
from rnnlab.errors import RnnlabError


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser, with every subcommand module of this package registered."""
    parser = argparse.ArgumentParser(
        prog="rnnlab",
        description="Recurrent networks and word vectors: train, score, generate, diagnose.",
    )
    parser.add_argument("--version", action="version", version=f"rnnlab {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if not info.name.startswith("_"):
            importlib.import_module(f"{__name__}.{info.name}").register(sub)
    return parser


def fail(command: str, message: str) -> int:
    """Print the one error line (on a line of its own, below any progress bar) and return 2."""
    tqdm = sys.modules.get("tqdm")
    if tqdm is not None:
        for bar in list(getattr(tqdm.tqdm, "_instances", ())):
            bar.close()
    print(f"rnnlab {command}: error: {message}", file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    """Entry point: run one subcommand; user errors become one line on stderr and exit 2."""
    for stream in (sys.stdout, sys.stderr):
        # A terminal that cannot show a word (LANG=C and Chinese text) gets an escape, not a crash.
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except RnnlabError as e:
        return fail(args.command, str(e))
    except OSError as e:
        # The disk filled up or a folder vanished mid-run: the atomic writes left the last good
        # files as they were, so one line says what failed.
        where = f"{e.filename}: " if e.filename else ""
        return fail(args.command, f"{where}{e.strerror or e}")
    except KeyboardInterrupt:
        print(f"rnnlab {args.command}: interrupted", file=sys.stderr)
        return 130
