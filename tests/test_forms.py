"""Poems of a fixed form by constrained decoding (rnnlab.lm.forms), through the API and the CLI."""

import random
import re

import pytest
import torch

from rnnlab.cli import main
from rnnlab.errors import RnnlabError
from rnnlab.lm import LM
from rnnlab.lm.forms import FormDecoder, PoemForm
from rnnlab.lm.model import LanguageModel
from rnnlab.text.pipeline import TextPipeline

HANZI = "春夏秋冬山水風月花鳥雲雨江河日夜天地人心明白青紅"
HAN = "[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f]"


def poem_lines(n: int = 300) -> list[str]:
    """Poem-like lines with some Latin letters and spaces, so the vocabulary has non-Han tokens."""
    rng = random.Random(0)
    lines = []
    for _ in range(n):
        chars = rng.choice((5, 7))
        verse = "".join("".join(rng.choice(HANZI) for _ in range(chars)) + "，。"[i % 2] for i in range(4))
        lines.append(verse + rng.choice(("", " ab", "x")))
    return lines


def char_lm(lines=None, skew: str | None = None) -> LM:
    """An untrained character model over `lines`; `skew` makes that token by far the likeliest."""
    torch.manual_seed(0)
    pipeline = TextPipeline("char", "stream", False)
    vocab = pipeline.build_vocab(lines or poem_lines())
    model = LanguageModel(len(vocab), 8, 16).eval()
    if skew is not None:
        with torch.no_grad():
            model.decoder.bias[vocab.stoi[skew]] = 50.0
    return LM(model, vocab, pipeline)


def form_regex(chars: int, lines: int, acrostic: str = "") -> re.Pattern:
    line = f"{HAN}{{{chars}}}"
    parts = [(re.escape(acrostic[i]) + f"{HAN}{{{chars - 1}}}" if acrostic else line)
             + "，。"[i % 2 or i == lines - 1] for i in range(lines)]
    return re.compile("".join(parts))


@pytest.mark.parametrize("chars,lines", [(5, 4), (7, 4), (5, 8), (7, 8)])
def test_every_sample_is_well_formed(chars, lines):
    lm = char_lm()
    pattern = form_regex(chars, lines)
    for seed in range(50):  # 200 samples over the four forms
        text = "".join(lm.write("", form=chars, lines=lines, seed=seed, temperature=1.5))
        assert pattern.fullmatch(text), text


def test_forms_mask_tokens_the_model_prefers():
    # The model all but always says "x" (or the newline that ends a poem); masking, not
    # rejection, still gives a poem at once, and the same one for the same seed.
    for token in ("x", "\n", "，"):
        lm = char_lm(skew=token)
        text = "".join(lm.write("", form=5, lines=4, seed=3))
        assert form_regex(5, 4).fullmatch(text), text
        assert "".join(lm.write("", form=5, lines=4, seed=3)) == text


def test_mask_keeps_exactly_the_allowed_tokens():
    lm = char_lm()
    decoder = FormDecoder(PoemForm(5, 4), lm.vocab, lm.pipeline)
    for t in "春夏秋冬山":
        assert decoder.feed(t)
    masked = decoder.mask(torch.zeros(len(lm.vocab)))
    assert [lm.vocab.itos[i] for i in torch.isfinite(masked).nonzero().flatten().tolist()] == ["，"]
    assert not decoder.feed("。") and decoder.feed("，")
    masked = decoder.mask(torch.zeros(len(lm.vocab)))
    allowed = {lm.vocab.itos[i] for i in torch.isfinite(masked).nonzero().flatten().tolist()}
    assert allowed == set(HANZI)


def test_acrostic_lines_start_right():
    lm = char_lm()
    for seed in range(20):
        text = "".join(lm.write("", form=7, acrostic="春夏秋冬", seed=seed))
        assert form_regex(7, 4, "春夏秋冬").fullmatch(text), text
    # Without a form a line has 1 to 9 characters, the acrostic's length giving the lines.
    free = re.compile(f"春{HAN}{{0,8}}，夏{HAN}{{0,8}}。月{HAN}{{0,8}}。")
    for seed in range(20):
        text = "".join(lm.write("", acrostic="春夏月", seed=seed))
        assert free.fullmatch(text), text


def test_prime_is_the_poems_start():
    lm = char_lm()
    for seed in range(10):
        text = "".join(lm.write("春眠", form=5, lines=4, seed=seed, avoid_unk=True))
        assert form_regex(5, 4).fullmatch("春眠" + text), text  # 眠 is unknown: read as <unk>
    assert list(lm.write("春夏秋冬山，", form=5, acrostic="春江", seed=1))[:1] == ["江"]
    whole = "春夏秋冬山，江河日夜天。"
    assert list(lm.write(whole, form=5, lines=None, acrostic="春江")) == []
    for prime, where in (("春夏，", "line 1"), ("春夏秋冬山水", "line 1"), ("a", "line 1"),
                         (whole + "春", "after the poem's end")):
        with pytest.raises(RnnlabError, match=f"does not fit the form: .* {where}"):
            lm.generate(prime, form=5, acrostic="春江")
    with pytest.raises(RnnlabError, match="'夏' .*line 1"):
        lm.generate("夏", acrostic="春江")


@pytest.mark.parametrize("options,message", [
    ({"form": 6}, "form must be 5 or 7"),
    ({"form": 5, "lines": 5}, "lines must be 4 or 8"),
    ({"acrostic": "春夏秋冬", "lines": 8}, "4 lines, not 8"),
    ({"acrostic": "春a"}, "Han characters only"),
    ({"acrostic": "春龘鱻"}, "not in the model's vocabulary: 龘 鱻"),
    ({"form": 7, "beam": 2}, "beam search does not take a poem form"),
])
def test_bad_forms_are_one_line_errors(options, message):
    with pytest.raises(RnnlabError, match=message) as e:
        char_lm().generate("", **options)
    assert "\n" not in str(e.value)


def test_models_that_cannot_write_poems():
    no_comma = [line.replace("，", "。") for line in poem_lines()]
    with pytest.raises(RnnlabError, match="vocabulary has no ，"):
        char_lm(no_comma).generate("", form=5)
    assert form_regex(5, 1).fullmatch("".join(char_lm(no_comma).write("", acrostic="春", form=5)))
    pipeline = TextPipeline("word", "stream", False)
    vocab = pipeline.build_vocab(["春 夏 ， 。"])
    word = LM(LanguageModel(len(vocab), 4, 4), vocab, pipeline)
    with pytest.raises(RnnlabError, match="character-level model; this one is word-level"):
        word.generate("", form=5)


def test_cli_poems(tmp_path, capsys):
    char_lm().save(tmp_path / "m")
    args = ["generate", str(tmp_path / "m"), "--form", "7", "--acrostic", "春夏秋冬", "--seed", "1"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert form_regex(7, 4, "春夏秋冬").fullmatch(out.rstrip("\n")) and out.endswith("。\n")
    assert main(args) == 0 and capsys.readouterr().out == out
    assert main(["generate", str(tmp_path / "m"), "--form", "5", "--lines", "8", "--prime", "山水",
                 "--seed", "2"]) == 0
    assert form_regex(5, 8).fullmatch(capsys.readouterr().out.rstrip("\n"))
    for bad, message in ((["--form", "6"], "form must be 5 or 7"),
                         (["--acrostic", "龘"], "not in the model's vocabulary: 龘"),
                         (["--form", "5", "--beam", "2"], "beam search"),
                         (["--form", "5", "--lines", "4", "--acrostic", "春夏"], "2 lines, not 4"),
                         (["--form", "5", "--prime", "春，"], "does not fit the form")):
        assert main(["generate", str(tmp_path / "m"), *bad]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err, (bad, err)
