"""The check every rnnlab file or folder makes first: is it ours, and in a version we read."""

from __future__ import annotations

import os

from rnnlab.errors import RnnlabError


def check_format(doc: object, path: str | os.PathLike, fmt: str, version: int, what: str) -> None:
    """RnnlabError unless `doc` (parsed JSON) says {"format": fmt, "version": version}.

    `what` names the kind of file in the message, e.g. "vocabulary" or "word2vec model".
    """
    if not isinstance(doc, dict) or doc.get("format") != fmt:
        raise RnnlabError(f"{path}: not an rnnlab {what} (format is not {fmt!r})")
    if doc.get("version") != version:
        raise RnnlabError(f"{path}: {what} version {doc.get('version')!r} is not supported "
                          f"(this rnnlab reads version {version})")
