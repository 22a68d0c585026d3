"""Poems of a fixed form from a character-level model, by constrained decoding.

A form is `chars` Han characters per line (5 or 7: 五言, 七言) and a number of lines (4 or 8:
绝句, 律诗); each line ends with "，" if it is odd-numbered (1st, 3rd, ...) and "。" if it is
even-numbered or the last one. An acrostic forces the first character of line i to be its i-th
character, and its length sets the number of lines. Without `chars` a line holds 1 to
`FREE_LINE_MAX` Han characters, the model choosing where it ends.

Nothing is sampled and thrown away: before each draw every token that would break the form gets
probability zero (its logit set to -inf), so a draw is always well formed. The form holds from
the start of the text: a prime is the start of the first line and must fit the form. A poem ends
after the last line's "。"; the line separator of the training text (a newline, which ends a
poem in tang-poems) is never drawn inside one, and is not drawn after it either.

With `rhyme` (and a form), the even lines (2, 4, 6, 8) end in characters of one rhyme
(rnnlab.lm.rhyme: modern Mandarin finals, not the Tang rhyme tables). Line 2's last character
may be any character of a rhyme that enough others share for the later lines to use; the last
character of lines 4, 6 and 8 must be of line 2's rhyme, and not one an earlier line ended
with while another is left.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch
from torch import Tensor

from rnnlab.errors import RnnlabError
from rnnlab.lm.rhyme import RhymeTable, require_pypinyin, rhyme_table
from rnnlab.text.pipeline import TextPipeline
from rnnlab.text.vocab import Vocabulary

FORM_CHARS = (5, 7)
FORM_LINES = (4, 8)
FREE_LINE_MAX = 9  # longer than any regular line, so that a free line still reads as verse
# The fewest characters a rhyme needs for line 2 to open it: a few, so that the later lines
# have a choice (at least one character each).
RHYME_MIN_CHARS = 4
COMMA, STOP = "，", "。"
# CJK Unified Ideographs, extension A, compatibility ideographs and the supplementary planes'
# extensions: every Han character a poem's vocabulary can hold.
HAN = re.compile("[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f]")


def is_han(token: str) -> bool:
    """Whether `token` is one Han character."""
    return len(token) == 1 and HAN.match(token) is not None


@dataclass(frozen=True)
class PoemForm:
    """Characters per line (None: free, 1 to FREE_LINE_MAX), number of lines, acrostic, and
    whether the even lines rhyme."""

    chars: int | None
    lines: int
    acrostic: str = ""
    rhyme: bool = False

    def rhymes(self, line: int) -> bool:
        """Whether line `line` (from 0) ends in the poem's rhyme: the 2nd, 4th... when rhyming."""
        return self.rhyme and line % 2 == 1

    def punctuation(self, line: int) -> str:
        """The mark that ends line `line` (from 0)."""
        return STOP if line % 2 == 1 or line == self.lines - 1 else COMMA

    def line_max(self) -> int:
        """The most Han characters a line may hold."""
        return self.chars or FREE_LINE_MAX


NO_BEAM = "beam search does not take a poem form; sample instead (beam 0)"
NO_RHYME_FORM = "rhyme needs a form: 5 or 7 characters a line (--form)"


def make_form(form: int | None = None, lines: int | None = None, acrostic: str | None = None,
              beam: int = 0, rhyme: bool = False) -> PoemForm | None:
    """The PoemForm these settings ask for (None when none is set); RnnlabError if they clash."""
    if rhyme and form is None:
        raise RnnlabError(NO_RHYME_FORM)
    if form is None and lines is None and not acrostic:
        return None
    if beam:
        raise RnnlabError(NO_BEAM)
    if form is not None and form not in FORM_CHARS:
        raise RnnlabError(f"form must be 5 or 7 characters a line, got {form}")
    if lines is not None and lines not in FORM_LINES:
        raise RnnlabError(f"lines must be 4 or 8, got {lines}")
    if acrostic is not None and acrostic != "":
        bad = [c for c in acrostic if not is_han(c)]
        if bad:
            raise RnnlabError(f"the acrostic must be Han characters only, not {''.join(bad)!r}")
        if lines is not None and lines != len(acrostic):
            raise RnnlabError(f"the acrostic {acrostic!r} has {len(acrostic)} characters, so "
                              f"{len(acrostic)} lines, not {lines}")
        poem = PoemForm(form, len(acrostic), acrostic, rhyme)
    else:
        poem = PoemForm(form, lines or 4, "", rhyme)
    if rhyme:
        require_pypinyin()
    return poem


class FormDecoder:
    """Which tokens may come next under a PoemForm, and the place in the poem so far."""

    def __init__(self, form: PoemForm, vocab: Vocabulary, pipeline: TextPipeline) -> None:
        if pipeline.level != "char":
            raise RnnlabError(f"a poem form needs a character-level model; this one is "
                              f"{pipeline.level}-level")
        self.form, self.vocab = form, vocab
        marks = sorted({form.punctuation(i) for i in range(form.lines)} - set(vocab.stoi))
        if marks:
            raise RnnlabError(f"the model's vocabulary has no {' '.join(marks)}, which this poem "
                              f"needs")
        unknown = [c for c in dict.fromkeys(form.acrostic) if c not in vocab.stoi]
        if unknown:
            raise RnnlabError(f"acrostic characters not in the model's vocabulary: {' '.join(unknown)}")
        self.han = torch.tensor([i for i, t in enumerate(vocab.itos) if is_han(t)], dtype=torch.long)
        if len(self.han) == 0:
            raise RnnlabError("the model's vocabulary has no Han characters to write a poem with")
        self.line, self.pos = 0, 0  # the line being written (from 0) and its characters so far
        self.rhyme: str | None = None  # the poem's rhyme, once line 2 has ended in it
        self.rhymed: list[int] = []  # the ids that ended rhyming lines so far
        if form.rhyme:
            if form.chars is None:
                raise RnnlabError(NO_RHYME_FORM)
            self.table: RhymeTable = rhyme_table(vocab.itos)
            need = max(RHYME_MIN_CHARS, sum(form.rhymes(i) for i in range(form.lines)))
            opening = [ids for ids in self.table.ids.values() if len(ids) >= need]
            if not opening:
                raise RnnlabError(f"no rhyme has {need} characters in the model's vocabulary, "
                                  f"so its poems cannot rhyme")
            self.opening = torch.cat(opening).sort().values

    @property
    def done(self) -> bool:
        """Whether the last line has ended."""
        return self.line == self.form.lines

    def allowed(self) -> list[str] | None:
        """The tokens allowed next when they are few (a forced character or mark), else None
        for "any Han character" (with the line's mark too when `may_end`)."""
        if self.pos == 0 and self.form.acrostic:
            return [self.form.acrostic[self.line]]
        if self.pos == self.form.line_max():
            return [self.form.punctuation(self.line)]
        return None

    def may_end(self) -> bool:
        """Whether the line may end here (a free line after its first character)."""
        return self.form.chars is None and self.pos > 0

    def at_rhyme(self) -> bool:
        """Whether the next character ends a line that must rhyme."""
        return self.form.rhymes(self.line) and self.pos == self.form.line_max() - 1

    def rhyme_ids(self) -> Tensor:
        """Ids of the characters that may end the rhyming line being written."""
        if self.rhyme is None:
            return self.opening
        ids = self.table.ids[self.rhyme]
        fresh = ids[~torch.isin(ids, torch.tensor(self.rhymed, dtype=torch.long))]
        return fresh if len(fresh) else ids  # a rhyme with no character left repeats one

    def allowed_ids(self) -> Tensor:
        """Ids of every token that keeps the form."""
        few = self.allowed()
        if few is not None:
            return torch.tensor([self.vocab.stoi[t] for t in few], dtype=torch.long)
        if self.at_rhyme():
            return self.rhyme_ids()
        if self.may_end():
            mark = self.vocab.stoi[self.form.punctuation(self.line)]
            return torch.cat([self.han, torch.tensor([mark])])
        return self.han

    def mask(self, logits: Tensor) -> Tensor:
        """`logits` (V,) with every token that would break the form at -inf."""
        masked = torch.full_like(logits, -torch.inf)
        ids = self.allowed_ids().to(logits.device)
        masked[ids] = logits[ids]
        return masked

    def feed(self, token: str) -> bool:
        """Move past `token`; False (and no move) if it does not fit the form here."""
        if self.done:
            return False
        few = self.allowed()
        mark = self.form.punctuation(self.line)
        if not (token in few if few is not None else is_han(token) or (token == mark and self.may_end())):
            return False
        if few is None and self.at_rhyme():
            token_id = self.vocab.stoi.get(token)
            if token_id is None or not bool((self.rhyme_ids() == token_id).any()):
                return False
            self.rhyme = self.table.of[token_id]
            self.rhymed.append(token_id)
        if token == mark:
            self.line, self.pos = self.line + 1, 0
        else:
            self.pos += 1
        return True

    def advance(self, token_id: int) -> bool:
        """Move past a drawn token id (one `allowed_ids` gave); whether the poem is now done."""
        self.feed(self.vocab.itos[token_id])
        return self.done

    def read_prime(self, prime_tokens: list[str]) -> None:
        """Move past the prime's tokens, or raise RnnlabError at the first that breaks the form."""
        for k, token in enumerate(prime_tokens):
            if not self.feed(token):
                where = "after the poem's end" if self.done else f"at line {self.line + 1}"
                if not self.done and self.at_rhyme() and is_han(token):
                    where += (f", which must end in a rhyme ({self.rhyme})" if self.rhyme
                              else ", which must end in a character of a known, common rhyme")
                raise RnnlabError(f"the prime does not fit the form: {token!r} (character "
                                  f"{k + 1}) {where}")

    def max_tokens(self) -> int:
        """The most tokens the rest of the poem can take."""
        return (self.form.lines - self.line) * (self.form.line_max() + 1) - self.pos
