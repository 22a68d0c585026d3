"""Simplified/traditional conversion for generation (rnnlab.text.script, `generate --script`)."""

import builtins
import importlib.util
import json

import pytest
import torch

from rnnlab.cli import main
from rnnlab.errors import RnnlabError
from rnnlab.lm import LM
from rnnlab.lm.model import LanguageModel
from rnnlab.text import script
from rnnlab.text.pipeline import TextPipeline

needs_opencc = pytest.mark.skipif(importlib.util.find_spec("opencc") is None,
                                  reason="opencc-python-reimplemented not installed")

TRADITIONAL = ["春眠不覺曉，處處聞啼鳥。", "夜來風雨聲，花落知多少。", "白日依山盡，黃河入海流。"]
SIMPLIFIED = ["春眠不觉晓，处处闻啼鸟。", "夜来风雨声，花落知多少。", "白日依山尽，黄河入海流。"]


def char_lm(lines, config=None) -> LM:
    torch.manual_seed(0)
    pipeline = TextPipeline("char", "stream", False)
    vocab = pipeline.build_vocab(lines)
    return LM(LanguageModel(len(vocab), 8, 16).eval(), vocab, pipeline, config)


@needs_opencc
def test_conversion_and_detection():
    assert script.converter("traditional", "simplified")("".join(TRADITIONAL)) == "".join(SIMPLIFIED)
    assert script.converter("simplified", "traditional")("".join(SIMPLIFIED)) == "".join(TRADITIONAL)
    assert script.converter("simplified", "simplified")("覺觉") == "覺觉"
    assert script.detect_script("".join(TRADITIONAL)) == "traditional"
    assert script.detect_script("".join(SIMPLIFIED)) == "simplified"
    assert script.detect_script("春日山水abc\n") is None
    assert char_lm(TRADITIONAL).script == "traditional"
    assert char_lm(TRADITIONAL, {"script": "simplified"}).script == "simplified"  # config wins
    with pytest.raises(RnnlabError, match="cannot tell"):
        _ = char_lm(["春日山水，花月。"]).script
    with pytest.raises(RnnlabError, match="script must be"):
        script.converter("pinyin", "simplified")


@needs_opencc
def test_generate_converts_prime_acrostic_and_output():
    lm = char_lm(TRADITIONAL)
    for seed in range(10):
        text = "".join(lm.write("春眠", form=5, acrostic="春处", script="simplified", seed=seed))
        poem = "春眠" + text
        # 处 became 處 for the model; what comes back is simplified again.
        assert poem[6] == "处" and len(poem) == 12 and poem.endswith("。")
        assert script.converter("traditional", "simplified")(poem) == poem
    assert "".join(lm.write("春眠", form=5, lines=4, seed=1)) != ""
    with pytest.raises(RnnlabError, match="acrostic characters not in the model's vocabulary: 秋"):
        lm.generate("", acrostic="秋", script="simplified")


def test_missing_opencc_is_one_clear_line(monkeypatch):
    real_import = builtins.__import__

    def no_opencc(name, *args, **kwargs):
        if name == "opencc":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_opencc)
    with pytest.raises(RnnlabError, match=r"needs OpenCC: pip install 'rnnlab\[chinese\]'"):
        char_lm(TRADITIONAL).generate("", form=5, script="simplified")


@needs_opencc
def test_cli_script(tmp_path, capsys):
    char_lm(TRADITIONAL).save(tmp_path / "m")
    assert main(["generate", str(tmp_path / "m"), "--form", "5", "--acrostic", "白处", "--script",
                 "simplified", "--seed", "3"]) == 0
    out = capsys.readouterr().out.rstrip("\n")
    assert out[0] == "白" and out[6] == "处" and len(out) == 12
    assert main(["generate", str(tmp_path / "m"), "--acrostic", "秋", "--script", "simplified"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "秋" in err


@needs_opencc
def test_training_records_the_texts_script(tmp_path, capsys):
    texts = {"traditional": TRADITIONAL, "simplified": SIMPLIFIED, None: ["the cat sat", "a dog"]}
    for expected, lines in texts.items():
        corpus = tmp_path / f"{expected}.txt"
        corpus.write_text("\n".join(lines * 30) + "\n", encoding="utf-8")
        out = tmp_path / f"run-{expected}"
        assert main(["train", str(corpus), "--level", "char", "--split", "0.1", "0", "--epochs", "1",
                     "--hidden-size", "8", "--batch-size", "2", "--bptt", "5", "--quiet",
                     "--no-progress", "-o", str(out)]) == 0
        for folder in ("best", "last"):
            assert json.loads((out / folder / "config.json").read_text())["script"] == expected
    capsys.readouterr()
    # The recorded script is what --script converts from, without reading the vocabulary.
    assert LM.load(tmp_path / "run-traditional").script == "traditional"
    assert main(["generate", str(tmp_path / "run-traditional"), "--form", "5", "--acrostic", "白处",
                 "--script", "simplified", "--seed", "1"]) == 0
    assert capsys.readouterr().out[6] == "处"
    with pytest.raises(RnnlabError, match="neither simplified nor traditional"):
        _ = LM.load(tmp_path / "run-None").script


def test_text_script_samples_the_text(monkeypatch):
    assert script.text_script(["the cat", "sat"]) == {"script": None}  # no Han: OpenCC not needed
    lines = ["abc"] * 5000 + SIMPLIFIED * 10  # spread-out lines, not just the first ones
    if importlib.util.find_spec("opencc") is not None:
        assert script.text_script(lines) == {"script": "simplified"}
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "opencc" else real(name, *a))
    assert script.text_script(lines) == {}  # left to the vocabulary when the model is used


@needs_opencc
def test_models_without_the_key_still_read_their_vocabulary(tmp_path):
    char_lm(TRADITIONAL).save(tmp_path / "old")
    assert "script" not in json.loads((tmp_path / "old" / "config.json").read_text())
    assert LM.load(tmp_path / "old").script == "traditional"
    char_lm(TRADITIONAL, {"script": "simplified"}).save(tmp_path / "set")
    assert LM.load(tmp_path / "set").script == "simplified"  # the recorded script is saved again
