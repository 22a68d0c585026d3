"""Options that several commands share, so that one idea has one flag and one wording."""

from __future__ import annotations

import argparse

from rnnlab.errors import RnnlabError

OVERWRITE_HELP = ("replace an existing output of the same kind (never a folder rnnlab did not "
                  "write, nor one of another kind)")
THREADS_HELP = "CPU threads (at least 1)"


def add_overwrite(parser: argparse.ArgumentParser) -> None:
    """Add --overwrite: permission to replace an earlier output of the same kind."""
    parser.add_argument("--overwrite", action="store_true", default=False, help=OVERWRITE_HELP)


def check_at_least(flag: str, value: int | None, minimum: int = 1) -> None:
    """One wording for every count flag: `--FLAG must be at least MINIMUM, got VALUE`."""
    if value is not None and value < minimum:
        raise RnnlabError(f"{flag} must be at least {minimum}, got {value}")
