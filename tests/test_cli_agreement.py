"""Commands that agree with each other: one flag per idea, the same checks and wording."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rnnlab.cli import build_parser, main
from rnnlab.word2vec import Word2Vec

WORDS = "the cat sat on a mat and dog ran to house".split()


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    d = tmp_path_factory.mktemp("agree")
    rng = np.random.default_rng(0)
    lines = [" ".join(rng.choice(WORDS, size=rng.integers(3, 9))) for _ in range(120)]
    (d / "t.txt").write_text("\n".join(lines) + "\n")
    assert main(["train", str(d / "t.txt"), "-o", str(d / "run"), "--epochs", "1", "--hidden-size",
                 "8", "--layers", "1", "--batch-size", "4", "--bptt", "5", "--quiet"]) == 0
    assert main(["embed", str(d / "t.txt"), "-o", str(d / "v.bin"), "--embed-size", "6",
                 "--min-count", "1", "--quiet"]) == 0
    return d


def options(command: str) -> set[str]:
    """Every option string a subcommand accepts."""
    sub = build_parser()._subparsers._group_actions[0].choices[command]
    return {s for action in sub._actions for s in action.option_strings}


def test_every_torch_command_takes_threads_and_device():
    for command in ("train", "evaluate", "score", "generate", "gradflow"):
        assert {"--threads", "--device"} <= options(command), command
    for command in ("embed", "similar", "analogy", "vectors-eval", "vectors-plot", "vectors-projector",
                    "prepare"):
        assert "--threads" in options(command) and "--device" not in options(command), command


def test_one_name_per_idea_old_spellings_kept():
    assert {"--embed-size", "--size"} <= options("embed")
    assert {"--embed-size", "--hidden-size"} <= options("train")
    assert {"--hidden-size", "--hidden", "--batch-size", "--batch"} <= options("gradflow")
    assert {"--batch-size", "--batch"} <= options("evaluate")
    for command in ("train", "embed", "evaluate", "prepare"):
        assert {"--no-progress", "--quiet"} <= options(command), command
    for command in ("train", "prepare"):  # the text pipeline's settings, spelled alike
        assert {"--level", "--mode", "--lower", "--encoding", "--errors"} <= options(command), command
    for command in ("train", "embed", "evaluate"):
        assert "--data-dir" in options(command), command
    for command in ("train", "embed", "demo", "gradflow", "vectors-plot", "vectors-projector", "prepare"):
        assert "--overwrite" in options(command), command


def test_store_reads_the_same_in_train_and_embed():
    def store_option(command):
        sub = build_parser()._subparsers._group_actions[0].choices[command]
        action = next(a for a in sub._actions if "--store" in a.option_strings)
        return action.choices, action.default, action.help

    assert store_option("train") == store_option("embed")
    assert store_option("train")[:2] == (("auto", "always", "never"), "auto")
    assert "more than 256 MB" in store_option("train")[2]


@pytest.mark.parametrize("argv", [["evaluate", "{run}", "{t}"], ["score", "{run}", "the cat"],
                                  ["generate", "{run}"], ["gradflow", "-o", "{d}/g.png"],
                                  ["similar", "{d}/v.bin", "cat"]])
def test_threads_below_one_read_the_same_everywhere(made, capsys, argv):
    args = [a.format(run=made / "run", t=made / "t.txt", d=made) for a in argv]
    assert main([*args, "--threads", "0"]) == 2
    assert capsys.readouterr().err.strip().endswith("--threads must be at least 1, got 0")


def test_embed_quiet_hides_the_epoch_lines_no_progress_keeps_them(made, tmp_path, capsys):
    base = ["embed", str(made / "t.txt"), "--embed-size", "6", "--min-count", "1", "--epochs", "2"]
    assert main([*base, "-o", str(tmp_path / "a.bin"), "--no-progress"]) == 0
    out, err = capsys.readouterr()
    assert [json.loads(x)["epoch"] for x in out.splitlines()[:2]] == [1, 2] and err == ""
    assert main([*base, "-o", str(tmp_path / "b.bin"), "--quiet", "--size", "6"]) == 0
    out, err = capsys.readouterr()
    assert out.splitlines() == [f"wrote {tmp_path / 'b.bin'}: 11 words x 6"] and err == ""


def test_word2vec_reports_progress_through_a_callback(capsys):
    heard = []
    sentences = [WORDS] * 50
    model = Word2Vec(vector_size=4, min_count=1, epochs=2, workers=1)
    model.build_vocab(sentences)
    model.train(sentences, progress=lambda done, total, info: heard.append((done, total, info)))
    assert capsys.readouterr() == ("", "")
    assert heard[-1][0] == heard[-1][1] == 2 * 50 * len(WORDS)
    assert [d for d, _, _ in heard] == sorted(d for d, _, _ in heard)
    assert set(heard[-1][2]) == {"lr", "loss"}


def test_gradflow_names_the_text_a_model_reads(made, tmp_path, capsys):
    assert main(["gradflow", "--model", str(made / "run"), "-o", str(tmp_path / "g.png")]) == 0
    assert "tokens of 'the meaning of a word" in capsys.readouterr().out
    assert main(["gradflow", "--text", "the cat", "-o", str(tmp_path / "h.png")]) == 2
    assert "give --model too" in capsys.readouterr().err


def test_vector_queries_run_on_the_threads_asked_for(made, capsys):
    from threadpoolctl import threadpool_info, threadpool_limits

    with threadpool_limits(limits=None):  # puts the pools back as they were afterwards
        assert main(["similar", str(made / "v.bin"), "cat", "--threads", "1"]) == 0
        assert all(pool["num_threads"] == 1 for pool in threadpool_info())
    assert capsys.readouterr().out.split()[0] != "cat"  # its neighbours, not itself
