"""Simplified and traditional Chinese: converting text between them, and telling which a model uses.

Conversion is OpenCC's character and phrase tables (the optional `chinese` extra installs
opencc-python-reimplemented). A model's script is the "script" key of its config.json, which
training records from a sample of the training text ("simplified", "traditional", or null for
text that is neither); a model from before that key (or trained without OpenCC) has its script
read from its vocabulary instead: the script whose own characters (those OpenCC would change
into the other script) are more numerous in it.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Callable, Iterable, Sequence

from rnnlab.errors import RnnlabError

SCRIPTS = ("simplified", "traditional")
_OPENCC = {("traditional", "simplified"): "t2s", ("simplified", "traditional"): "s2t"}
_HAN = re.compile("[\u3400-\u9fff\uf900-\ufaff\U00020000-\U0003134f]")
# A text's script is told from this many lines spread over it, each cut to this many characters:
# a few thousand distinct characters, enough to tell, read in milliseconds.
SAMPLE_LINES, SAMPLE_LINE_CHARS = 1000, 200
NEITHER = ('the model was trained on text that is neither simplified nor traditional Chinese '
           '(its config.json has "script": null), so there is no script to convert from')


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


def text_script(lines: Sequence[str]) -> dict:
    """What config.json records of a training text's script, told from a sample of its lines:
    {"script": "simplified" or "traditional"}, {"script": None} for text that is neither, or {}
    when the text has Han characters but OpenCC is not installed to tell."""
    step = max(1, len(lines) // SAMPLE_LINES)
    chars: set[str] = set()
    for line in lines[::step]:
        chars.update(line[:SAMPLE_LINE_CHARS])
    han = [c for c in chars if _HAN.match(c)]
    if not han:
        return {"script": None}
    if importlib.util.find_spec("opencc") is None:
        return {}  # left to be read from the vocabulary when the model is used
    return {"script": detect_script(sorted(han))}


def model_script(config: dict, tokens: Iterable[str]) -> str:
    """The script a model writes: config.json's "script", else detected from its vocabulary."""
    if "script" in config:
        if config["script"] is None:
            raise RnnlabError(NEITHER)
        check_script(config["script"])
        return config["script"]
    script = detect_script(tokens)
    if script is None:
        raise RnnlabError('cannot tell whether the model writes simplified or traditional '
                          'characters; set "script" in its config.json')
    return script
