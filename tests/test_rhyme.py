"""Rhymed poems (`rhyme=True`, `generate --rhyme`): the rhyme table and the constrained decoding."""

import importlib.util

import pytest
import torch
from test_forms import HANZI, char_lm, form_regex

from rnnlab.cli import main
from rnnlab.errors import RnnlabError
from rnnlab.lm import LM
from rnnlab.lm.forms import FormDecoder, PoemForm, is_han
from rnnlab.lm.rhyme import rhyme_of, rhyme_table
from rnnlab.ready import resolve

pytest.importorskip("pypinyin", reason="pypinyin (the chinese extra) is not installed")


@pytest.fixture(scope="module")
def tang() -> LM:
    return LM.load(resolve("tang"))


def rhyme_ends(poem: str, chars: int) -> list[str]:
    """The last character of each even line (2, 4, ...) of a well-formed poem."""
    width = chars + 1
    return [poem[k * width + chars - 1] for k in range(1, len(poem) // width, 2)]


def test_finals_are_grouped_without_medials_or_tone():
    assert rhyme_of("江") == rhyme_of("鄉") == rhyme_of("光") == rhyme_of("長")  # ang iang uang
    assert rhyme_of("山") == rhyme_of("天") == rhyme_of("關") == rhyme_of("圓")  # an ian uan üan
    assert rhyme_of("鄉") == rhyme_of("乡")  # traditional and simplified alike
    assert rhyme_of("明") == rhyme_of("東")  # eng ing ong
    assert rhyme_of("日") == rhyme_of("詩") != rhyme_of("地")  # zhi's -i is not ji's i
    assert rhyme_of("歌") != rhyme_of("家")
    assert rhyme_of("x") is None


def test_most_of_the_tang_vocabulary_has_a_rhyme(tang):
    han = sum(is_han(t) for t in tang.vocab.itos)
    table = rhyme_table(tang.vocab.itos)
    assert table.share(han) > 0.97  # 9146 of 9320: the rest are rare supplementary-plane characters
    assert rhyme_table(tang.vocab.itos) is table  # worked out once per vocabulary
    assert all(rhyme_of(tang.vocab.itos[i]) == r for i, r in list(table.of.items())[::500])


@pytest.mark.parametrize("chars,lines", [(5, 4), (7, 4), (5, 8)])
def test_tang_poems_rhyme(tang, chars, lines):
    pattern = form_regex(chars, lines)
    for seed in range(8):
        poem = "".join(tang.write("", form=chars, lines=lines, rhyme=True, seed=seed))
        assert pattern.fullmatch(poem), poem
        ends = rhyme_ends(poem, chars)
        assert len(ends) == lines // 2 and len({rhyme_of(c) for c in ends}) == 1, poem
        assert len(set(ends)) == len(ends), poem  # no rhyme character twice


def test_rhyme_goes_with_acrostic_script_and_prime(tang):
    poem = "".join(tang.write("", form=5, acrostic="春江花月", rhyme=True, seed=2))
    assert form_regex(5, 4, "春江花月").fullmatch(poem)
    assert rhyme_of(poem[10]) == rhyme_of(poem[22])
    # A prime whose second line ends in 陽 sets the rhyme: line 4 ends in 唐 too.
    prime = "白日依山盡，夕陽照古陽"
    for seed in range(4):
        rest = "".join(tang.write(prime, form=5, rhyme=True, seed=seed))
        assert rhyme_of(rest[-2]) == rhyme_of("陽") and rest[-2] != "陽", prime + rest
    if importlib.util.find_spec("opencc") is not None:
        poem = "".join(tang.write("", form=5, rhyme=True, script="simplified", seed=4))
        assert rhyme_of(poem[10]) == rhyme_of(poem[22])


def test_mask_at_the_rhyme_positions():
    lm = char_lm()
    decoder = FormDecoder(PoemForm(5, 4, rhyme=True), lm.vocab, lm.pipeline)
    for t in "春夏秋冬山，江河日夜":
        assert decoder.feed(t)

    def allowed() -> set[str]:
        masked = decoder.mask(torch.zeros(len(lm.vocab)))
        return {lm.vocab.itos[i] for i in torch.isfinite(masked).nonzero().flatten().tolist()}

    # Of the toy vocabulary only 庚 (冬風明青紅) and 文 (春雲心人) have the four characters a
    # rhyme needs to open.
    assert allowed() == set("冬風明青紅春雲心人") and rhyme_of("冬") == "庚" and rhyme_of("雲") == "文"
    assert not decoder.feed("天") and decoder.feed("風") and decoder.feed("。")
    for t in "春夏秋冬山，江河日夜":
        assert decoder.feed(t)
    assert allowed() == set("冬明青紅")  # 庚 without 風, which line 2 took
    assert set(HANZI) >= allowed()


def test_a_prime_that_breaks_the_rhyme_is_one_line(tang):
    with pytest.raises(RnnlabError, match=r"'山' \(character 23\) at line 4, which must end in a rhyme"):
        tang.generate("白日依山盡，黃河入海流。欲窮千里目，更上一層山", form=5, rhyme=True)
    with pytest.raises(RnnlabError, match="known, common rhyme"):
        tang.generate("白日依山盡，黃河入海㭊", form=5, rhyme=True)


@pytest.mark.parametrize("options,message", [
    ({"rhyme": True}, "rhyme needs a form"),
    ({"rhyme": True, "acrostic": "春夏"}, "rhyme needs a form"),
    ({"rhyme": True, "form": 5, "beam": 2}, "beam search"),
])
def test_bad_rhyme_settings(options, message):
    with pytest.raises(RnnlabError, match=message):
        char_lm().generate("", **options)


def test_a_vocabulary_without_a_common_rhyme():
    lm = char_lm(["春夏秋山，江河日天。"] * 20)
    with pytest.raises(RnnlabError, match="no rhyme has 4 characters"):
        lm.generate("", form=5, rhyme=True)


def test_missing_pypinyin_is_one_clear_line(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "pypinyin" else real(name, *a))
    with pytest.raises(RnnlabError, match=r"rhyme needs pypinyin: pip install 'rnnlab\[chinese\]'"):
        char_lm().generate("", form=5, rhyme=True)


def test_cli_rhyme(capsys):
    args = ["generate", "tang", "--form", "5", "--lines", "4", "--rhyme", "--seed", "7"]
    assert main(args) == 0
    poem = capsys.readouterr().out.rstrip("\n")
    assert form_regex(5, 4).fullmatch(poem), poem
    assert rhyme_of(poem[10]) == rhyme_of(poem[22]) and poem[10] != poem[22]
    assert main(args) == 0 and capsys.readouterr().out.rstrip("\n") == poem
