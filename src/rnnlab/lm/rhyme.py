"""Which Han characters rhyme: each character's final (韵母) from pypinyin, grouped into rhymes.

This approximates rhyme by modern Mandarin pronunciation, not by the Tang rhyme tables
(平水韵, which follow Middle Chinese: many characters that rhymed then no longer do, and the
other way round). The finals are grouped as the 14 rhymes of 中华新韵, the modern scheme poets
use: the medial is dropped (ang, iang and uang rhyme; so do an, ian, uan and üan), and close
finals share a rhyme (e, o and uo; eng, ing, ong and iong; i, ü and er). The "empty" -i of
zhi, chi, shi, ri, zi, ci, si is its own rhyme (支), apart from the i of ji or li (齐). Tone is
ignored. A character with several readings gets pypinyin's usual one; a character pypinyin
does not know (it knows most traditional ones; a few rare ones are looked up again in their
simplified form when OpenCC is installed) has no rhyme and never ends a rhyming line.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import torch
from torch import Tensor

from rnnlab.errors import RnnlabError

NO_PYPINYIN = "rhyme needs pypinyin: pip install 'rnnlab[chinese]' (or pip install pypinyin)"

# pypinyin's strict finals (ü written v), each with its rhyme of 中华新韵, named by its character.
RHYMES = {
    "a": "麻", "ia": "麻", "ua": "麻",
    "o": "波", "uo": "波", "e": "波", "io": "波",
    "ie": "皆", "ve": "皆", "ê": "皆",
    "ai": "开", "uai": "开",
    "ei": "微", "uei": "微",
    "ao": "豪", "iao": "豪",
    "ou": "尤", "iou": "尤",
    "an": "寒", "ian": "寒", "uan": "寒", "van": "寒",
    "en": "文", "in": "文", "uen": "文", "vn": "文",
    "ang": "唐", "iang": "唐", "uang": "唐",
    "eng": "庚", "ing": "庚", "ueng": "庚", "ong": "庚", "iong": "庚",
    "i": "齐", "v": "齐", "er": "齐",
    "u": "姑",
}
# Syllables whose final i is the "empty" vowel after a sibilant: the rhyme 支, not 齐.
EMPTY_I = {"zhi", "chi", "shi", "ri", "zi", "ci", "si"}


def require_pypinyin() -> None:
    """Raise RnnlabError (one line) unless pypinyin can be imported; imports nothing."""
    if importlib.util.find_spec("pypinyin") is None:
        raise RnnlabError(NO_PYPINYIN)


def _rhymes_of(chars: Sequence[str]) -> list[str | None]:
    """The rhyme of each character (None when pypinyin does not know it)."""
    try:
        from pypinyin import Style, lazy_pinyin
    except ImportError as e:
        raise RnnlabError(NO_PYPINYIN) from e

    def rhyme(char: str) -> str | None:
        syllable = lazy_pinyin(char, style=Style.NORMAL, errors=lambda _: [""])[0]
        if not syllable:
            return None
        if syllable in EMPTY_I:
            return "支"
        final = lazy_pinyin(char, style=Style.FINALS, strict=True, errors=lambda _: [""])[0]
        return RHYMES.get(final)

    found = [rhyme(c) for c in chars]
    missing = [k for k, r in enumerate(found) if r is None]
    if missing and importlib.util.find_spec("opencc") is not None:
        # Looked up directly, pypinyin knows more traditional characters than after a
        # conversion (measured on the tang model); the simplified form rescues a few of the rest.
        import opencc

        simple = opencc.OpenCC("t2s").convert("\n".join(chars[k] for k in missing)).split("\n")
        if len(simple) == len(missing):
            for k, s in zip(missing, simple):
                found[k] = rhyme(s) if len(s) == 1 and s != chars[k] else None
    return found


@dataclass(frozen=True)
class RhymeTable:
    """The rhyme of each token id that has one, and the ids of each rhyme."""

    of: dict[int, str]
    ids: dict[str, Tensor]

    def share(self, tokens: int) -> float:
        """The fraction of `tokens` (say, the Han characters) that have a rhyme."""
        return len(self.of) / tokens if tokens else 0.0


@lru_cache(maxsize=8)
def _table(tokens: tuple[str, ...]) -> RhymeTable:
    from rnnlab.lm.forms import is_han

    han = [(i, t) for i, t in enumerate(tokens) if is_han(t)]
    of = {i: r for (i, _), r in zip(han, _rhymes_of([t for _, t in han])) if r is not None}
    groups: dict[str, list[int]] = {}
    for i, r in of.items():
        groups.setdefault(r, []).append(i)
    return RhymeTable(of, {r: torch.tensor(ids, dtype=torch.long) for r, ids in groups.items()})


def rhyme_table(itos: Sequence[str]) -> RhymeTable:
    """The rhymes of a vocabulary's Han characters, worked out once per vocabulary (cached)."""
    return _table(tuple(itos))


def rhyme_of(char: str) -> str | None:
    """The rhyme (one of RHYMES' values, or 支) of one Han character, or None if unknown."""
    return _rhymes_of([char])[0]
