"""Numbers and text a model cannot take at face value: overflowing or non-float weights, a
vocabulary with no words, tokens longer than a piece, unknown tokens, invisible characters.

Each case runs the real command line and checks the exit code, the one-line message and that
the files it was given are byte for byte what they were.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from test_bad_input import user_error  # the one helper for "exit 2 and one line"

from rnnlab.cli import main
from rnnlab.errors import RnnlabError

GOOD_TEXT = "the cat sat on the mat\nthe dog sat on the log\n" * 20


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` with its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@contextlib.contextmanager
def kept(folder: Path):
    """Assert that `folder` holds the same files, byte for byte, after the block."""
    before = snapshot(folder)
    yield
    assert snapshot(folder) == before, "a failed command created or changed a file"


def run_cli(*argv) -> subprocess.CompletedProcess:
    """`python -m rnnlab ARGV` for real, its output as text."""
    return subprocess.run([sys.executable, "-m", "rnnlab", *map(str, argv)], capture_output=True,
                          text=True, timeout=120)


# -- encoding errors name the flag -----------------------------------------------------------


def test_encoding_errors_name_the_errors_flag(capsys, tmp_path):
    (tmp_path / "latin1.txt").write_bytes(b"the cat\nsat \xff on\n")
    with kept(tmp_path):
        user_error(capsys, ["embed", tmp_path / "latin1.txt", "-o", tmp_path / "v.bin", "--quiet"],
                   "byte offset 12", "use --errors replace to read it anyway")
    # The command line offers only the known handlers; the library names the flag too.
    from rnnlab.errors import RnnlabError
    from rnnlab.text.corpus import Corpus

    with pytest.raises(RnnlabError, match=r"'whatever' \(try --errors replace\)"):
        Corpus(tmp_path / "latin1.txt", errors="whatever")


# -- weights that overflow, or are not floating point ----------------------------------------


@pytest.fixture(scope="module")
def lm(tmp_path_factory) -> Path:
    """A small word-level stream model (tied weights) and a text to evaluate."""
    from rnnlab.lm.checkpoint import save_model
    from rnnlab.lm.model import LanguageModel
    from rnnlab.text.vocab import Vocabulary

    d = tmp_path_factory.mktemp("lm")
    vocab = Vocabulary(["<unk>", "</s>", "the", "cat", "sat", "on", "mat"], specials=("<unk>", "</s>"))
    torch.manual_seed(0)
    save_model(d / "lm", LanguageModel(len(vocab), 8, 8, 1), vocab,
               {"level": "word", "mode": "stream", "lower": False})
    (d / "text.txt").write_text(GOOD_TEXT)
    return d


def with_tensors(lm: Path, tmp_path: Path, change) -> Path:
    """A copy of the model whose weights are `change(tensors)`, a dict of name to tensor."""
    copy = tmp_path / "model"
    shutil.copytree(lm / "lm", copy)
    save_file(change(load_file(copy / "model.safetensors")), copy / "model.safetensors")
    return copy


def with_tensor(lm: Path, tmp_path: Path, name: str, change) -> Path:
    """A copy of the model whose tensor `name` is `change(tensor)`."""
    return with_tensors(lm, tmp_path, lambda tensors: {**tensors, name: change(tensors[name])})


def use_model(model: Path, text: Path) -> list[list]:
    """Every command that reads a language model: score, evaluate, generate by sampling and beam."""
    return [["score", model, "the cat"], ["evaluate", model, text],
            ["generate", model, "--length", "3", "--seed", "1"],
            ["generate", model, "--length", "3", "--beam", "2"]]


@pytest.mark.parametrize("name, value, needle", [
    ("rnn.cells.0.W", float("nan"), "NaN or infinite"),
    ("decoder.bias", float("inf"), "NaN or infinite"),
    ("decoder.weight", 1e30, "up to 1e+30"),
])
def test_overflowing_weights_refused_at_load(capsys, lm, tmp_path, name, value, needle):
    model = with_tensor(lm, tmp_path, name, lambda t: torch.full_like(t, value))
    with kept(tmp_path):
        for argv in use_model(model, lm / "text.txt"):
            user_error(capsys, argv, f"tensor {name!r}", needle, "weights overflow")


def test_all_weights_1e30_as_a_diverged_training_leaves_them(capsys, lm, tmp_path):
    model = with_tensors(lm, tmp_path, lambda ts: {k: torch.full_like(v, 1e30) for k, v in ts.items()})
    with kept(tmp_path):
        for argv in use_model(model, lm / "text.txt"):
            user_error(capsys, argv, "model.safetensors", "weights overflow")
    run = run_cli("generate", model, "--length", "3")
    assert run.returncode == 2 and run.stdout == "", run
    assert run.stderr.count("\n") == 1 and "Traceback" not in run.stderr, run.stderr


def test_outputs_that_overflow_are_refused_in_the_forward_pass(capsys, lm, tmp_path):
    # Weights below the load-time bound, but logits 2e19 apart: P(cat) = e^-2e19.
    model = with_tensor(lm, tmp_path, "decoder.bias",
                        lambda t: torch.tensor([0, 0, 1e19, -1e19, 0, 0, 0]).float())
    with kept(tmp_path):
        user_error(capsys, ["score", model, "the cat"], "outputs overflow", "nats per token")
        user_error(capsys, ["evaluate", model, lm / "text.txt"], "outputs overflow")


def test_non_finite_outputs_never_index_out_of_range(lm):
    from rnnlab.lm import LM
    from rnnlab.lm.generate import sample_token

    loaded = LM.load(lm / "lm")
    with torch.no_grad():
        loaded.model.decoder.bias[3] = float("nan")
    for call in (lambda: loaded.score("the cat"),
                 lambda: loaded.evaluate(lm / "text.txt"),
                 lambda: loaded.generate("the", 3, seed=1),
                 lambda: loaded.generate("the", 3, beam=2)):
        with pytest.raises(RnnlabError, match="not finite"):
            call()
    # Finite after the prime, NaN one step later: sampling and beam search stop cleanly.
    loaded = LM.load(lm / "lm")
    model = loaded.model
    step = model.step
    model.step = lambda token, state: (torch.full_like(step(token, state)[0], float("nan")), state)
    for beam in (0, 2):
        with pytest.raises(RnnlabError, match="not finite"):
            list(loaded.generate("the", 5, seed=1, beam=beam, top_p=0.9))
    generator = torch.Generator().manual_seed(0)
    with pytest.raises(RnnlabError, match="not finite"):
        sample_token(torch.tensor([0.0, float("inf"), 1.0]), generator, top_k=2)
    # A tiny temperature is the most probable token, not an overflow.
    assert sample_token(torch.tensor([1.0, 2.0, 0.5]), generator, temperature=1e-40) == 1


@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.float64, torch.bool])
def test_non_float_tensor_refused_at_load(capsys, lm, tmp_path, dtype):
    model = with_tensor(lm, tmp_path, "decoder.bias", lambda t: t.round().to(dtype))
    stored = {torch.int64: "I64", torch.int32: "I32", torch.float64: "F64", torch.bool: "BOOL"}[dtype]
    with kept(tmp_path):
        user_error(capsys, ["score", model, "the cat"], "'decoder.bias'", f"stored as {stored}")
        user_error(capsys, ["evaluate", model, lm / "text.txt"], "'decoder.bias'", stored)


def test_half_precision_weights_still_load(capsys, lm, tmp_path):
    model = with_tensor(lm, tmp_path, "decoder.weight", lambda t: t.to(torch.bfloat16))
    assert main(["score", str(model), "the cat"]) == 0
    assert "perplexity" in capsys.readouterr().out


# -- a vocabulary of nothing but specials ----------------------------------------------------


TINY_TRAIN = ["--no-progress", "--quiet", "--epochs", "1", "--layers", "1", "--hidden-size", "4",
              "--batch-size", "1", "--bptt", "3", "--threads", "1"]


def test_min_count_above_every_word_is_refused_before_training(capsys, tmp_path):
    (tmp_path / "t.txt").write_text(GOOD_TEXT)  # 7 words; "the" 80 times, "cat" 20 times
    needles = ("min_count=1000", "7 distinct tokens", "at most 80 times", "--min-count 20")
    with kept(tmp_path):
        user_error(capsys, ["train", tmp_path / "t.txt", "-o", tmp_path / "run", "--min-count",
                            "1000", *TINY_TRAIN], *needles)
        user_error(capsys, ["embed", tmp_path / "t.txt", "-o", tmp_path / "v.bin", "--quiet",
                            "--min-count", "1000"], *needles)
        user_error(capsys, ["train", tmp_path / "t.txt", "-o", tmp_path / "run", "--level", "char",
                            "--min-count", "1000", *TINY_TRAIN], "14 distinct tokens", "at most 200")
    # The suggestion works.
    assert main(["train", str(tmp_path / "t.txt"), "-o", str(tmp_path / "run"), "--min-count",
                 "20", "--max-steps", "1", *TINY_TRAIN]) == 0


# -- a token longer than a reading piece -----------------------------------------------------


def test_a_token_longer_than_a_piece_stays_one_token(capsys, tmp_path):
    token = "q" * 200_000  # three pieces' worth of reading, without a space
    (tmp_path / "t.txt").write_text(f"the cat sat\n{token}\nthe {token} sat\n" + GOOD_TEXT)
    assert main(["train", str(tmp_path / "t.txt"), "-o", str(tmp_path / "run"), "--max-steps",
                 "1", *TINY_TRAIN]) == 0
    tokens = json.loads((tmp_path / "run" / "best" / "vocab.json").read_text())["tokens"]
    assert [len(t) for t in tokens if "q" in t] == [len(token)]
    assert main(["embed", str(tmp_path / "t.txt"), "-o", str(tmp_path / "v.txt"), "--quiet",
                 "--min-count", "1", "--size", "4", "--epochs", "1", "--threads", "1"]) == 0
    words = [line.split(" ", 1)[0] for line in (tmp_path / "v.txt").read_text().splitlines()[1:]]
    assert [len(w) for w in words if "q" in w] == [len(token)]
    # Characters may still be cut anywhere: the long line is all there, once.
    assert main(["train", str(tmp_path / "t.txt"), "-o", str(tmp_path / "chars"), "--level",
                 "char", "--max-steps", "1", *TINY_TRAIN]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(tmp_path / "chars"), str(tmp_path / "t.txt")]) == 0
    assert f"{len((tmp_path / 't.txt').read_text()):,} tokens" in capsys.readouterr().out


# -- tokens the model has never seen ---------------------------------------------------------


def test_score_marks_and_counts_unknown_tokens(capsys, lm):
    # A lowercase model and capitalised words: perplexity looks fine, every word is <unk>.
    with kept(lm):
        assert main(["score", str(lm / "lm"), "The Cat"]) == 0
        out, err = capsys.readouterr()
        assert err == "warning: 2 of 3 tokens are not in the vocabulary and were scored as <unk>\n"
        rows = out.splitlines()[2:5]
        assert [row.split()[1:3] for row in rows[:2]] == [["The", "<unk>*"], ["Cat", "<unk>*"]]
        assert "<unk>" not in rows[2] and "2 not in the vocabulary" in out.splitlines()[-1]
        # A literal <unk> is a token of the vocabulary: not counted, no warning.
        assert main(["score", str(lm / "lm"), "the <unk> cat"]) == 0
        out, err = capsys.readouterr()
        assert err == "" and "*" not in out and "not in the vocabulary" not in out


def test_evaluate_reports_the_share_of_unknown_tokens(capsys, lm, tmp_path):
    from rnnlab.lm import LM

    (tmp_path / "caps.txt").write_text("The Cat sat\nthe <unk> mat\n")
    with kept(tmp_path), kept(lm):
        assert main(["evaluate", str(lm / "lm"), str(tmp_path / "caps.txt")]) == 0
        assert "out of vocabulary: 2 of 8 tokens (25.00 %), scored as <unk>" in capsys.readouterr().out
    result = LM.load(lm / "lm").evaluate(tmp_path / "caps.txt", batch_size=1)
    assert (result["tokens"], result["oov"], result["oov_rate"]) == (8, 2, 0.25)


# -- characters that reorder or hide a terminal line -----------------------------------------


def test_score_table_escapes_hidden_characters_and_detached_marks():
    from rnnlab.lm.score import SentenceScore, TokenScore, format_table, show_token

    assert show_token("abc\u202edef") == "abcU+202Edef"  # right-to-left override
    assert show_token("\u200d") == "U+200D" and show_token("👨\u200d👩") == "👨U+200D👩"
    assert show_token("\u0301ab") == "U+0301ab"  # a mark starting a token joins the cell before
    assert show_token("e\u0301\u0302") == "e\u0301\u0302"  # marks on their base stay
    assert show_token("\U000e0001\u2028\ue000\x1b") == "U+E0001U+2028U+E000U+001B"
    assert [show_token(t) for t in (" ", "\n", "\t", "北京")] == ["␣", "\\n", "\\t", "北京"]
    # A character-level table: one row per character, none of them raw.
    rows = [TokenScore(c, c, i, 0.5, -0.693) for i, c in enumerate("a\u202e\u0301 \u200d\n")]
    table = format_table(SentenceScore("", rows))
    assert not {"\u202e", "\u0301", "\u200d"} & set(table)
    assert [line.split()[1] for line in table.splitlines()[2:-1]] == [
        "a", "U+202E", "U+0301", "␣", "U+200D", "\\n"]


def test_score_cli_prints_no_hidden_characters(capsys, lm, tmp_path):
    (tmp_path / "s.txt").write_text("the \u202ecat\nsat \u0301on e\u0301\n")
    with kept(tmp_path), kept(lm):
        assert main(["score", str(lm / "lm"), "the \u202ecat \u0301on"]) == 0
        out = capsys.readouterr().out
        assert "U+202Ecat" in out and "U+0301on" in out
        assert "\u202e" not in out and "\u0301" not in out
        assert main(["score", str(lm / "lm"), "--file", str(tmp_path / "s.txt")]) == 0
        out = capsys.readouterr().out
        assert "line 1: the U+202Ecat" in out and "line 2: sat U+0301on e\u0301" in out
        assert "\u202e" not in out and out.count("\u0301") == 2  # e\u0301 in the header and table
