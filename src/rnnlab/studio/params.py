"""The studio's request parameters: read, checked and bounded, each failure one line.

A bad value raises RnnlabError, which the app answers as a 400 whose JSON `error` is the line
the command line would print; a name that is not served is a 404.
"""

from __future__ import annotations

import base64
import math
from urllib.parse import quote

import numpy as np
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse

from rnnlab.errors import RnnlabError
from rnnlab.lm import LM

MAX_TEXT_CHARS = 5000  # a page of text: every view answers it within seconds on a CPU
MAX_LENGTH = 2000  # tokens one generation may ask for
MAX_TOPN = 100


def error(status: int, message: str) -> JSONResponse:
    """A JSON answer {"error": message} with this status."""
    return JSONResponse({"error": message}, status_code=status)


def text(request: Request, name: str, required: bool = True) -> str:
    """A text parameter, at most MAX_TEXT_CHARS long ("" when absent and not `required`)."""
    value = request.query_params.get(name)
    if value is None:
        if required:
            raise RnnlabError(f"'{name}' is missing")
        return ""
    if len(value) > MAX_TEXT_CHARS:
        raise RnnlabError(f"'{name}' is longer than {MAX_TEXT_CHARS} characters")
    return value


def number(request: Request, name: str, kind: type, default, low, high):
    """A number parameter of `kind` within [low, high], or `default` when absent."""
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = kind(raw)
    except ValueError:
        raise RnnlabError(f"'{name}' must be a number, got {raw!r}") from None
    if not (math.isfinite(value) and low <= value <= high):
        raise RnnlabError(f"'{name}' must be between {low} and {high}, got {raw}")
    return value


def flag(request: Request, name: str) -> bool:
    """A true/false parameter (absent: false)."""
    raw = request.query_params.get(name, "").lower()
    if raw in ("", "0", "false", "off", "no"):
        return False
    if raw in ("1", "true", "on", "yes"):
        return True
    raise RnnlabError(f"'{name}' must be true or false, got {raw!r}")


def named(table: dict, request: Request, name: str, what: str):
    """What `table` serves under the name the parameter gives, else a 404."""
    key = request.query_params.get(name, "")
    if key not in table:
        raise HTTPException(404, f"no {what} named {key!r} in this studio")
    return table[key]


def ids(request: Request, lm: LM) -> list[int]:
    """The `ids` parameter: vocabulary ids separated by dots (a branch's tokens so far)."""
    raw = request.query_params.get("ids", "")
    parts = raw.split(".") if raw else []
    if len(parts) > MAX_LENGTH:
        raise RnnlabError(f"'ids' holds at most {MAX_LENGTH} tokens, got {len(parts)}")
    if not all(p.isascii() and p.isdigit() and len(p) < 10 and int(p) < len(lm.vocab) for p in parts):
        raise RnnlabError(f"'ids' must be vocabulary ids (0 to {len(lm.vocab) - 1}) separated "
                          f"by dots, got {raw[:40]!r}")
    return [int(p) for p in parts]


def choice(request: Request, name: str, choices: tuple[str, ...]) -> str:
    """One of `choices` (absent: the first)."""
    value = request.query_params.get(name) or choices[0]
    if value not in choices:
        raise RnnlabError(f"'{name}' must be one of {', '.join(choices)}, got {value!r}")
    return value


def words(request: Request, name: str) -> list[str]:
    """A comma-separated list of words (blanks around each dropped, empty entries skipped)."""
    return [w.strip() for w in text(request, name, required=False).split(",") if w.strip()]


def download(filename: str, media_type: str) -> dict[str, str]:
    """Headers that make the browser save the body as `filename` (any characters, RFC 6266)."""
    ascii_name = filename.encode("ascii", "replace").decode().replace("?", "_").replace('"', "_")
    return {"content-disposition": f"attachment; filename=\"{ascii_name}\"; "
                                   f"filename*=UTF-8''{quote(filename, safe='')}",
            "content-type": media_type, "cache-control": "no-store"}


def half(array: np.ndarray) -> dict:
    """A (T, H) array as float16 bytes in base64: a fifth of its size as JSON numbers."""
    data = np.ascontiguousarray(array, dtype="<f2").tobytes()
    return {"shape": list(array.shape), "float16": base64.b64encode(data).decode("ascii")}


def positions(request: Request, name: str, count: int) -> np.ndarray:
    """A set of token positions written as "3-7,12" (ranges inclusive) as a (count,) mask."""
    raw = request.query_params.get(name, "")
    mask = np.zeros(count, dtype=bool)
    for part in filter(None, raw.split(",")):
        low, _, high = part.partition("-")
        if not (low.isdigit() and (high.isdigit() or not high)):
            raise RnnlabError(f"'{name}' must be positions like 3-7,12, got {part!r}")
        a, b = int(low), int(high or low)
        if not a <= b < count:
            raise RnnlabError(f"'{name}': {part} is outside the {count} tokens read")
        mask[a : b + 1] = True
    return mask
