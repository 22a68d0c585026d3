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


ERROR_HANDLERS = ("strict", "replace", "ignore")
ERRORS_HELP = ("undecodable bytes: strict (stop with the byte offset, the default), "
               "replace (read them as U+FFFD) or ignore (drop them)")


def add_encoding_options(parser: argparse.ArgumentParser) -> None:
    """Add --encoding and --errors: how text files decode."""
    parser.add_argument("--encoding", default="utf-8",
                        help="text encoding of the file (default utf-8)")
    parser.add_argument("--errors", choices=ERROR_HANDLERS, default="strict", help=ERRORS_HELP)


def add_compute_options(parser: argparse.ArgumentParser, device: bool = True,
                        threads_default: str = "torch's choice") -> None:
    """Add --threads (and --device): where and with how many threads a torch model runs."""
    from rnnlab.device import DEVICE_HELP

    parser.add_argument("--threads", type=int, default=None,
                        help=f"{THREADS_HELP} (default: {threads_default})")
    if device:
        parser.add_argument("--device", default="auto", help=DEVICE_HELP)


def apply_threads(args: argparse.Namespace) -> None:
    """Check --threads and hand it to torch."""
    check_at_least("--threads", args.threads)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)


def add_progress_options(parser: argparse.ArgumentParser, what: str = "notes") -> None:
    """Add --no-progress (no bar) and --quiet (no bar and no {what}): the same in every command."""
    parser.add_argument("--no-progress", dest="progress", action="store_false", default=True,
                        help="no progress bar")
    parser.add_argument("--quiet", action="store_true", default=False,
                        help=f"no progress bar and no {what}")


def add_data_dir(parser: argparse.ArgumentParser) -> None:
    """Add --data-dir: where known corpora are mirrored."""
    parser.add_argument("--data-dir", metavar="DIR", default=None,
                        help="a local mirror of the known corpora, laid out as `rnnlab data` "
                             "expects (default $RNNLAB_DATA)")
