"""Simplified and traditional Chinese: converting text between them, and telling which a model uses.

Conversion is OpenCC's character and phrase tables (the optional `chinese` extra installs
opencc-python-reimplemented). A model's script is the "script" key of its config.json when
set, else read from its vocabulary: the script whose own characters (those OpenCC would change
into the other script) are more numerous in it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from rnnlab.errors import RnnlabError

SCRIPTS = ("simplified", "traditional")
_OPENCC = {("traditional", "simplified"): "t2s", ("simplified", "traditional"): "s2t"}
_HAN = re.compile("[\u3400-\u9fff\uf900-\ufaff\U00020000-\U0003134f]")


def check_script(script: str) -> None:
    """Raise RnnlabError unless `script` is simplified or traditional."""
    if script not in SCRIPTS:
        raise RnnlabError(f"script must be simplified or traditional, got {script!r}")


def converter(source: str, target: str) -> Callable[[str], str]:
    """A function turning text in `source` script into `target` script (the identity if equal)."""
    check_script(source)
    check_script(target)
    if source == target:
        return str
    try:
        import opencc
    except ImportError as e:
        raise RnnlabError("script conversion needs OpenCC: pip install 'rnnlab[chinese]' "
                          "(opencc-python-reimplemented)") from e
    return opencc.OpenCC(_OPENCC[source, target]).convert


def detect_script(tokens: Iterable[str]) -> str | None:
    """The script of a vocabulary's tokens, or None when it holds no character of either's own."""
    han = [t for t in tokens if "\n" not in t and _HAN.search(t)]
    # One conversion of all tokens joined: OpenCC's Python port is slow per call.
    joined = "\n".join(han)
    as_simplified = converter("traditional", "simplified")(joined).split("\n")
    as_traditional = converter("simplified", "traditional")(joined).split("\n")
    traditional = sum(a != b for a, b in zip(han, as_simplified))
    simplified = sum(a != b for a, b in zip(han, as_traditional))
    if traditional == simplified == 0:
        return None
    return "traditional" if traditional > simplified else "simplified"


def model_script(config: dict, tokens: Iterable[str]) -> str:
    """The script a model writes: config.json's "script", else detected from its vocabulary."""
    if config.get("script") is not None:
        check_script(config["script"])
        return config["script"]
    script = detect_script(tokens)
    if script is None:
        raise RnnlabError('cannot tell whether the model writes simplified or traditional '
                          'characters; set "script" in its config.json')
    return script
