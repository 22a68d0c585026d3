import json
import math
import subprocess
import sys

import pytest
import torch

from rnnlab.errors import RnnlabError
from rnnlab.lm import LM
from rnnlab.lm.model import LanguageModel
from rnnlab.lm.score import SentenceScore, TokenScore, format_table
from rnnlab.text.pipeline import TextPipeline
from rnnlab.text.width import display_width, pad

LINES = ["the cat sat on the mat", "the dog sat on the log", "a cat and a dog",
         "the mat is on the floor"]


def tiny(mode: str = "stream", level: str = "word", cell: str = "lstm"):
    torch.manual_seed(0)
    pipeline = TextPipeline(level, mode, False)
    vocab = pipeline.build_vocab(LINES)
    model = LanguageModel(len(vocab), 8, 12, num_layers=2, cell=cell).eval()
    return LM(model, vocab, pipeline)


def brute_force(model, context: list[int], ids: list[int]) -> list[float]:
    """log P(ids[k] | context, ids[:k]), feeding every prefix through the model on its own."""
    out = []
    with torch.no_grad():
        for k, target in enumerate(ids):
            logits, _ = model(torch.tensor(context + ids[:k]).view(-1, 1))
            out.append(float(torch.log_softmax(logits[-1, 0].double(), -1)[target]))
    return out


@pytest.mark.parametrize("mode,start", [("stream", "</s>"), ("sentence", "<s>")])
def test_sentence_score_equals_prefix_by_prefix(mode, start):
    lm = tiny(mode)
    model, vocab = lm.model, lm.vocab
    result = lm.score("the cat sat on the mat")
    assert [r.token for r in result.rows] == "the cat sat on the mat </s>".split()
    expected = brute_force(model, [vocab[start]], [r.id for r in result.rows])
    assert [r.logprob for r in result.rows] == pytest.approx(expected, abs=1e-6)
    assert [r.prob for r in result.rows] == pytest.approx([math.exp(e) for e in expected])
    assert result.logprob == pytest.approx(sum(expected))
    assert result.perplexity == pytest.approx(math.exp(-sum(expected) / len(expected)))


def test_unknown_words_are_scored_as_unk_and_eos_is_optional():
    lm = tiny()
    vocab = lm.vocab
    result = lm.score("the zebra sat", eos=False)
    assert [(r.token, r.mapped) for r in result.rows] == [
        ("the", "the"), ("zebra", "<unk>"), ("sat", "sat")]
    assert result.rows[1].id == vocab.unk_id
    table = format_table(result)
    assert "zebra" in table and "<unk>" in table and f"{result.perplexity:.2f}" in table


def test_empty_sentence_is_an_error():
    lm = tiny()
    with pytest.raises(RnnlabError):
        lm.score("   ")


def test_stream_evaluation_is_exp_of_mean_token_loss(tmp_path, monkeypatch):
    lm = tiny()
    model, vocab = lm.model, lm.vocab
    path = tmp_path / "valid.txt"
    path.write_text("\n".join(LINES[:3]) + "\n")
    ids = lm.pipeline.encode(LINES[:3], vocab)
    losses = [-lp for lp in brute_force(model, [vocab["</s>"]], ids)]
    exact = lm.evaluate(path, batch_size=1)
    assert exact["tokens"] == len(ids)
    assert exact["loss"] == pytest.approx(sum(losses) / len(ids))
    assert exact["perplexity"] == pytest.approx(math.exp(sum(losses) / len(ids)))
    # Side by side in 3 pieces: every token still predicted once, each piece from a zero state.
    # Read in blocks of 4 steps, the state carried from block to block.
    monkeypatch.setattr("rnnlab.lm.evaluation.EVAL_BPTT", 4)
    pieces = lm.evaluate(path, batch_size=3)
    stream = [vocab["</s>"]] + ids
    bounds = [round(b * len(ids) / 3) for b in range(4)]
    total = sum(-sum(brute_force(model, stream[a:a + 1], stream[a + 1:e + 1]))
                for a, e in zip(bounds, bounds[1:]))
    assert pieces["tokens"] == len(ids)
    assert pieces["loss"] == pytest.approx(total / len(ids))


def test_sentence_evaluation_adds_up_sentence_scores(tmp_path):
    lm = tiny("sentence", cell="gru")
    path = tmp_path / "valid.txt"
    path.write_text("\n".join(LINES) + "\n")
    result = lm.evaluate(path, batch_size=3)
    scores = [lm.score(line) for line in LINES]
    assert result["tokens"] == sum(len(s.rows) for s in scores)
    assert result["loss"] * result["tokens"] == pytest.approx(-sum(s.logprob for s in scores))


def test_char_level_reports_bits_per_character(tmp_path):
    lm = tiny(level="char")
    path = tmp_path / "valid.txt"
    path.write_text("the cat\n")
    result = lm.evaluate(path, batch_size=1)
    assert result["tokens"] == len("the cat\n")
    assert result["bits_per_char"] == pytest.approx(result["loss"] / math.log(2))
    row = lm.score("at").rows
    assert [r.token for r in row] == ["a", "t", "\n"]


def test_cli_score_and_evaluate(tmp_path, capsys):
    from rnnlab.cli import main
    lm = tiny()
    lm.save(tmp_path / "m")
    text = tmp_path / "valid.txt"
    text.write_text("the cat sat\nthe zebra sat on the mat\n")
    assert main(["score", str(tmp_path / "m"), "the zebra sat"]) == 0
    out = capsys.readouterr().out
    assert "zebra" in out and "<unk>" in out and "perplexity" in out
    assert main(["score", str(tmp_path / "m"), "--file", str(text)]) == 0
    assert "all 2 sentences" in capsys.readouterr().out
    gappy = tmp_path / "gappy.txt"
    gappy.write_text("the cat\n\nthe mat\n")  # sentences are labelled by their file line
    assert main(["score", str(tmp_path / "m"), "--file", str(gappy)]) == 0
    out = capsys.readouterr().out
    assert "line 1: the cat" in out and "line 3: the mat" in out and "line 2" not in out
    assert main(["evaluate", str(tmp_path / "m"), str(text)]) == 0
    expected = lm.evaluate(text)
    assert f"perplexity {expected['perplexity']:.2f}" in capsys.readouterr().out
    for flag in ("--batch-size", "--batch"):  # the old spelling still works
        assert main(["evaluate", str(tmp_path / "m"), str(text), "--json", flag, "1"]) == 0
        assert json.loads(capsys.readouterr().out) == pytest.approx(lm.evaluate(text, batch_size=1))
    lm.save(tmp_path / "run" / "best")  # a training run's folder
    assert main(["score", str(tmp_path / "run"), "the cat"]) == 0
    assert "perplexity" in capsys.readouterr().out
    assert main(["score", str(tmp_path / "m")]) == 2
    assert main(["evaluate", str(tmp_path / "missing"), str(text)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(line.startswith("rnnlab ") for line in err)


def test_table_columns_line_up_for_chinese_tokens():
    rows = [TokenScore("我", "我", 4, 0.5, math.log(0.5)),
            TokenScore("天安门广场很大", "<unk>", 0, 0.25, math.log(0.25)),
            TokenScore("😀", "😀", 5, 0.125, math.log(0.125)),
            TokenScore("</s>", "</s>", 2, 0.5, math.log(0.5))]
    lines = format_table(SentenceScore("我 天安门广场很大 😀", rows)).splitlines()
    table = lines[:-1]  # the last line is the totals sentence
    assert len(table) == 2 + len(rows)
    assert len({display_width(line) for line in table}) == 1
    assert any(display_width(line) != len(line) for line in table)
    # the probability column starts in the same terminal column on every row
    starts = {display_width(line[: line.index(f"{r.prob:.6f}")]) for line, r in zip(table[2:], rows)}
    assert len(starts) == 1


def test_display_width_and_pad():
    assert [display_width(w) for w in ["abc", "北京", "😀", "e\u0301", "，"]] == [3, 4, 2, 1, 2]
    assert pad("北京", 6) == "北京  " and pad("ab", 2) == "ab"


@pytest.mark.parametrize("first", ["rnnlab.lm", "rnnlab.lm.score", "rnnlab.lm.generate"])
def test_notebook_api_imports_from_rnnlab_lm_in_a_fresh_interpreter(first):
    code = (f"import {first}\n"
            "import rnnlab.lm\n"
            "from rnnlab.lm import (LM, Activations, Cache, Dynamic, KneserNeyBigram, LanguageModel, "
            "SentenceScore, TextPipeline, TokenScore, TrainResult, TrainSettings, format_table, "
            "train_language_model)\n"
            "import sys\n"
            "assert sorted(rnnlab.lm.__all__) == sorted(['LM', 'Activations', 'Cache', 'Dynamic', "
            "'KneserNeyBigram', "
            "'LanguageModel', 'SentenceScore', 'TextPipeline', 'TokenScore', 'TrainResult', "
            "'TrainSettings', 'format_table', 'train_language_model'])\n"
            "lm = {name: sys.modules[f'rnnlab.lm.{name}']\n"
            "      for name in ('bundle', 'checkpoint', 'generate', 'score', 'settings', 'train')}\n"
            "assert LM is lm['bundle'].LM and format_table is lm['score'].format_table\n"
            "assert TrainSettings is lm['settings'].TrainSettings\n"
            "assert TextPipeline is sys.modules['rnnlab.text.pipeline'].TextPipeline\n"
            "assert train_language_model is lm['train'].train_language_model\n")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
