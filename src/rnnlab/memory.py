"""Refuse, before allocating, what this machine's memory cannot hold: one clear line, not a crash."""

from __future__ import annotations

import os

from rnnlab.errors import RnnlabError


def physical_memory() -> int | None:
    """Bytes of RAM, or None where the system does not say."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def check_fits(need_bytes: int, what: str, advice: str = "") -> None:
    """RnnlabError "WHAT would need N GiB, more than this machine's M GiB[; ADVICE]" when
    `need_bytes` exceed physical memory; silent where the system does not say."""
    have = physical_memory()
    if have is not None and need_bytes > have:
        raise RnnlabError(f"{what} would need {need_bytes / 2**30:.1f} GiB, more than this "
                          f"machine's {have / 2**30:.1f} GiB" + (f"; {advice}" if advice else ""))
