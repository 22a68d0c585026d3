"""Bad input: one clear line, exit 2, no traceback, nothing half-written.

Most cases call `rnnlab.cli.main` in-process and check the return code, that stderr is one
line "rnnlab COMMAND: error: ...", and that the output folder is byte for byte what it was
(a good output file is there beforehand). A handful run `python -m rnnlab` for real, to prove
that no traceback reaches the user; those that could allocate run under an address-space
limit. Valid but awkward input (a 20 MB line, a prime of unknown words) must succeed.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from rnnlab.cli import main

resource = pytest.importorskip("resource")  # POSIX: address-space limits and child rusage

GOOD_TEXT = "the cat sat on the mat\nthe dog sat on the log\n" * 20
PRECIOUS = b"a good output file, which a failed command must leave alone\n"


# -- helpers ---------------------------------------------------------------------------------


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` (hidden temporaries included) with its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def user_error(capsys, argv: list, *needles: str) -> str:
    """Run the CLI in-process; assert exit 2 and one error line holding every needle."""
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    # As a terminal shows it: a progress bar that cleared itself with "\r" leaves nothing.
    lines = [line.split("\r")[-1] for line in err.strip().split("\n")]
    assert rc == 2, (rc, err)
    assert len(lines) == 1, err
    assert lines[0].startswith(f"rnnlab {argv[0]}: error: "), lines[0]
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def overwriting(path: Path) -> list:
    """`-o PATH --overwrite`: the good file there may be replaced, but only by a success."""
    return ["-o", path, "--overwrite"]


@pytest.fixture
def out(tmp_path: Path):
    """An output folder holding a good `out.bin` and `plot.png`; must be unchanged after the test."""
    (tmp_path / "out.bin").write_bytes(PRECIOUS)
    (tmp_path / "plot.png").write_bytes(PRECIOUS)
    before = snapshot(tmp_path)
    yield tmp_path
    assert snapshot(tmp_path) == before, "a failed command created or changed an output file"


@contextlib.contextmanager
def address_space_limit(extra: int = 4 << 30):
    """Cap this process's address space at what it maps now plus `extra`: a huge allocation
    then fails at once instead of paging the machine to death."""
    status = Path("/proc/self/status")
    if not status.exists():
        pytest.skip("needs Linux's /proc/self/status")
    mapped = int(re.search(r"VmSize:\s+(\d+) kB", status.read_text()).group(1)) * 1024
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (mapped + extra, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def run_cli(*argv, timeout: float = 120) -> tuple[int, str, str, int]:
    """`python -m rnnlab ARGV` for real: (exit code, stdout, stderr, peak RSS in KiB)."""
    with tempfile.TemporaryFile() as fout, tempfile.TemporaryFile() as ferr:
        proc = subprocess.Popen([sys.executable, "-m", "rnnlab", *map(str, argv)], stdout=fout,
                                stderr=ferr)
        timer = threading.Timer(timeout, proc.kill)
        timer.start()
        # wait4, not wait: the rusage of this one child, not the maximum over all children.
        _, status, usage = os.wait4(proc.pid, 0)
        timer.cancel()
        proc.returncode = os.waitstatus_to_exitcode(status)
        fout.seek(0)
        ferr.seek(0)
        return proc.returncode, fout.read().decode(), ferr.read().decode(), usage.ru_maxrss


def assert_clean_failure(rc: int, err: str, command: str, *needles: str) -> None:
    """Exit 2 and exactly one line on stderr: the error, no traceback."""
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert rc == 2, (rc, err)
    assert len(lines) == 1 and lines[0].startswith(f"rnnlab {command}: error: "), err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


# -- inputs, made once -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """Good and bad corpora, word-vector files, a language model and a word2vec model."""
    d = tmp_path_factory.mktemp("inputs")
    (d / "good.txt").write_text(GOOD_TEXT)
    (d / "empty.txt").write_bytes(b"")
    (d / "blank.txt").write_text("  \n\t\n\n")
    (d / "nul.txt").write_bytes(b"the cat\0 sat\n")
    (d / "latin1.txt").write_bytes(b"the cat\nsat \xff on\n")
    whole = gzip.compress(GOOD_TEXT.encode() * 100)
    (d / "cut.txt.gz").write_bytes(whole[: len(whole) // 2])
    (d / "folder").mkdir()

    (d / "v.txt").write_text("3 2\nthe 1 2\ncat 2 1\nsat 0 1\n")
    (d / "header.txt").write_text("3 x\nthe 1 2\n")
    (d / "short.txt").write_text("3 2\nthe 1 2\ncat 2 1\n")
    (d / "dims.txt").write_text("2 3\nthe 1 2 3\ncat 1 2\n")
    (d / "dims.glove").write_text("the 1 2 3\ncat 1 2\n")
    (d / "dup.txt").write_text("2 2\nthe 1 2\nthe 3 4\n")
    row = np.ones(3, "<f4").tobytes()
    (d / "cut.bin").write_bytes(b"2 3\nthe " + row + b"\ncat " + row[:5])
    (d / "dup.bin").write_bytes(b"2 3\nthe " + row + b"\nthe " + row + b"\n")
    (d / "header.bin").write_bytes(b"vectors\n" + row)

    from rnnlab.lm.checkpoint import save_model
    from rnnlab.lm.model import LanguageModel
    from rnnlab.text.vocab import Vocabulary
    from rnnlab.word2vec.train import Word2Vec

    vocab = Vocabulary(["<unk>", "</s>", "the", "cat", "sat", "on", "mat"], specials=("<unk>", "</s>"))
    save_model(d / "lm", LanguageModel(len(vocab), 8, 8, 1), vocab,
               {"level": "word", "mode": "stream", "lower": False})
    sentences = [line.split() for line in GOOD_TEXT.splitlines()]
    Word2Vec(sentences, vector_size=4, min_count=1, epochs=1, workers=1).save(d / "w2v")
    return d


CORPUS_CASES = {
    "missing.txt": "no such file",
    "folder": "is a directory",
    "empty.txt": "empty file",
    "blank.txt": "only whitespace",
    "nul.txt": "NUL byte at offset 7",
    "latin1.txt": "byte offset 12",
    "cut.txt.gz": "truncated gzip",
}


# -- corpora ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", CORPUS_CASES)
def test_bad_corpus_for_embed(capsys, data, out, name):
    user_error(capsys, ["embed", data / name, *overwriting(out / "out.bin"), "--quiet", "--min-count", "1"],
               name, CORPUS_CASES[name])


@pytest.mark.parametrize("name", CORPUS_CASES)
def test_bad_corpus_for_train(capsys, data, out, name):
    user_error(capsys, ["train", data / name, "-o", out / "run", "--no-progress", "--epochs", "1"],
               name, CORPUS_CASES[name])


@pytest.mark.parametrize("name", CORPUS_CASES)
def test_bad_text_for_evaluate_and_score(capsys, data, out, name):
    user_error(capsys, ["evaluate", data / "lm", data / name], name, CORPUS_CASES[name])
    user_error(capsys, ["score", data / "lm", "--file", data / name], name, CORPUS_CASES[name])


@pytest.mark.parametrize("name", CORPUS_CASES)
def test_bad_training_text_for_dynamic_evaluation(capsys, data, name):
    user_error(capsys, ["evaluate", data / "lm", data / "good.txt", "--dynamic", "--dynamic-stats",
                        data / name], name, CORPUS_CASES[name])


@pytest.mark.parametrize("argv, needle", [
    (["--dynamic", "--dynamic-lr", "-1"], "--dynamic-lr must be a number ≥ 0, got -1"),
    (["--dynamic", "--dynamic-lr", "nan"], "--dynamic-lr must be a number ≥ 0, got nan"),
    (["--dynamic", "--dynamic-decay", "2"], "--dynamic-decay must be between 0 and 1, got 2"),
    (["--dynamic", "--dynamic-bptt", "0"], "--dynamic-bptt must be at least 1, got 0"),
    (["--dynamic-lr", "0.1"], "--dynamic-lr needs --dynamic"),
    (["--dynamic", "--batch-size", "4"], "--batch-size does not apply to --dynamic"),
    (["--cache", "0"], "--cache must be at least 1, got 0"),
    (["--cache", "9", "--cache-theta", "-1"], "--cache-theta must be a number ≥ 0, got -1"),
    (["--cache", "9", "--cache-lambda", "1"], "--cache-lambda must be in [0, 1), got 1"),
    (["--cache-lambda", "0.1"], "--cache-lambda needs --cache"),
    (["--cache", "9", "--dynamic"], "--cache and --dynamic are evaluated separately"),
    (["--cache", "9", "--batch-size", "2"], "--batch-size does not apply to --cache"),
])
def test_bad_dynamic_and_cache_settings(capsys, data, argv, needle):
    """Refused before the model is loaded: the model named here does not exist."""
    user_error(capsys, ["evaluate", data / "no-such-model", data / "good.txt", *argv], needle)


@pytest.mark.parametrize("name", CORPUS_CASES)
def test_bad_evaluation_sets(capsys, data, name):
    for flag in ("--analogies", "--similarity"):
        user_error(capsys, ["vectors-eval", data / "v.txt", flag, data / name], name, CORPUS_CASES[name])


def test_malformed_evaluation_sets(capsys, data):
    user_error(capsys, ["vectors-eval", data / "v.txt", "--analogies", data / "v.txt"], "line 1", "4 words")
    user_error(capsys, ["vectors-eval", data / "v.txt", "--similarity", data / "v.txt"], "line 1",
               "word1<TAB>word2<TAB>score")


def test_invalid_utf8_names_file_line_and_offset(capsys, data, out):
    line = user_error(capsys, ["embed", data / "latin1.txt", *overwriting(out / "out.bin"), "--quiet"])
    assert str(data / "latin1.txt") in line and "byte offset 12, line 2" in line and "replace" in line


def test_errors_replace_reads_invalid_utf8(capsys, data, tmp_path):
    target = tmp_path / "v.txt"
    argv = ["embed", data / "latin1.txt", "-o", target, "--quiet", "--min-count", "1",
            "--size", "4", "--epochs", "1", "--threads", "1", "--errors", "replace"]
    assert main([str(a) for a in argv]) == 0
    assert "\ufffd" in target.read_text()


def test_unknown_encoding(capsys, data, out):
    user_error(capsys, ["embed", data / "good.txt", *overwriting(out / "out.bin"), "--encoding", "klingon"],
               "klingon")
    user_error(capsys, ["train", data / "good.txt", "-o", out / "run", "--encoding", "klingon"],
               "klingon")
    user_error(capsys, ["evaluate", data / "lm", data / "good.txt", "--encoding", "klingon"], "klingon")
    user_error(capsys, ["score", data / "lm", "--file", data / "good.txt", "--encoding", "klingon"],
               "klingon")


TINY_TRAIN = ["--no-progress", "--quiet", "--epochs", "1", "--layers", "1", "--hidden-size", "4",
              "--batch-size", "1", "--bptt", "3", "--threads", "1"]


def test_errors_replace_reads_invalid_utf8_for_the_language_model(capsys, data, tmp_path):
    """latin1.txt's 0xff: U+FFFD with replace, gone with ignore, in train, evaluate and score."""
    run = tmp_path / "run"
    assert main(["train", str(data / "latin1.txt"), "-o", str(run), "--errors", "replace", *TINY_TRAIN]) == 0
    assert "\ufffd" in json.loads((run / "best" / "vocab.json").read_text(encoding="utf-8"))["tokens"]
    capsys.readouterr()
    assert main(["evaluate", str(data / "lm"), str(data / "latin1.txt"), "--errors", "replace"]) == 0
    assert "7 tokens" in capsys.readouterr().out  # the cat </s> sat \ufffd on </s>
    assert main(["evaluate", str(data / "lm"), str(data / "latin1.txt"), "--errors", "ignore"]) == 0
    assert "6 tokens" in capsys.readouterr().out
    assert main(["score", str(data / "lm"), "--file", str(data / "latin1.txt"), "--errors", "replace"]) == 0
    assert "line 2: sat \ufffd on" in capsys.readouterr().out


def test_latin1_text_trains_with_its_encoding_and_resumes(capsys, tmp_path):
    text = tmp_path / "cafe.txt"
    text.write_bytes("le café est là\n".encode("latin-1") * 4)
    run = tmp_path / "run"
    argv = ["train", str(text), "-o", str(run), "--encoding", "latin-1", *TINY_TRAIN]
    assert main([*argv, "--max-steps", "2"]) == 0
    # unchanged on resume: accepted; left out: the run keeps reading latin-1
    assert main(["train", "-o", str(run), "--resume", "--encoding", "latin-1", "--max-steps", "4"]) == 0
    assert main(["train", "-o", str(run), "--resume"]) == 0
    state = json.loads((run / "last" / "training.json").read_text())
    assert state["settings"]["encoding"] == "latin-1" and state["global_step"] > 4
    tokens = json.loads((run / "best" / "vocab.json").read_text(encoding="utf-8"))["tokens"]
    assert {"café", "là"} <= set(tokens)
    capsys.readouterr()
    assert main(["evaluate", str(run), str(text), "--encoding", "latin-1"]) == 0
    assert "20 tokens" in capsys.readouterr().out


def test_empty_vocabulary_suggests_lower_min_count(capsys, data, out):
    user_error(capsys, ["embed", data / "good.txt", *overwriting(out / "out.bin"), "--quiet",
                        "--min-count", "1000"], "min_count=1000", "lower")


# -- sizes and settings ----------------------------------------------------------------------


@pytest.mark.parametrize("flag, value, needle", [
    ("--window", "0", "window"), ("--window", "-2", "window"),
    ("--size", "0", "vector_size"), ("--size", "-3", "vector_size"),
    ("--negative", "-1", "negative"), ("--epochs", "0", "epochs"),
    ("--min-count", "0", "min_count"), ("--threads", "0", "--threads must be at least 1, got 0"),
    ("--max-vocab", "0", "max_vocab_size"), ("--seed", "-1", "seed"),
])
def test_embed_settings_out_of_range(capsys, data, out, flag, value, needle):
    user_error(capsys, ["embed", data / "good.txt", *overwriting(out / "out.bin"), "--quiet", flag, value],
               needle)


@pytest.mark.parametrize("flag, value, needle", [
    ("--hidden-size", "0", "hidden_size"), ("--hidden-size", "-5", "hidden_size"),
    ("--layers", "0", "layers"), ("--bptt", "-1", "bptt"), ("--batch-size", "0", "batch_size"),
    ("--dropout", "1.5", "dropout"), ("--lr", "0", "lr"), ("--min-count", "0", "min_count"),
    ("--max-vocab", "0", "max_size"), ("--epochs", "-1", "epochs"), ("--clip", "-1", "clip"),
    ("--embed-size", "0", "embed"),
    ("--embed-size", "-4", "embedding"),
    ("--weight-drop", "1", "weight_drop must be in [0, 1), got 1.0"),
    ("--weight-drop", "-0.1", "weight_drop"),
    ("--dropout-input", "1.5", "dropout_input"), ("--dropout-hidden", "-0.2", "dropout_hidden"),
    ("--dropout-output", "1", "dropout_output"), ("--dropout-words", "-1", "dropout_words"),
    ("--dropout-words", "nan", "dropout_words"), ("--ar", "-2", "ar must be a non-negative number"),
    ("--tar", "-1", "tar must be"), ("--tar", "inf", "tar must be"),
])
def test_train_settings_out_of_range(capsys, data, out, flag, value, needle):
    user_error(capsys, ["train", data / "good.txt", "-o", out / "run", "--no-progress",
                        "--max-steps", "1", flag, value], needle)


@pytest.mark.parametrize("argv, needle", [
    (["--nonmono", "0"], "--nonmono must be at least 1, got 0"),
    (["--finetune", "-1"], "--finetune must be at least 0, got -1"),
    (["--asgd"], "needs validation text"),
    (["--recipe", "awd"], "needs validation text"),  # the recipe's NT-ASGD validates
    (["--split", "0", "0.1", "--asgd"], "needs validation text"),
    (["--variable-bptt", "--mode", "sentence"], "stream mode"),
    (["--recipe", "awd", "--split", "0.1", "0.1", "--mode", "sentence"], "stream mode"),
])
def test_train_schedule_settings_that_cannot_work(capsys, data, out, argv, needle):
    user_error(capsys, ["train", data / "good.txt", "-o", out / "run", "--no-progress",
                        "--max-steps", "1", *argv], needle)


@pytest.mark.parametrize("argv, needle", [
    (["--cutoffs", "5"], "cutoffs and tail_shrink need the adaptive decoder"),
    (["--tail-shrink", "2", "--no-tie"], "need the adaptive decoder"),
    (["--decoder", "adaptive", "--cutoffs", "0", "3"], "cutoffs must be increasing whole numbers"),
    (["--decoder", "adaptive", "--cutoffs", "4", "4"], "cutoffs must be increasing"),
    (["--decoder", "adaptive", "--cutoffs", "5", "2"], "cutoffs must be increasing"),
    # good.txt has 9 tokens: the 7 words, <unk> and </s>
    (["--decoder", "adaptive", "--cutoffs", "3", "9"], "cutoffs must be below the vocabulary size 9"),
    (["--decoder", "adaptive", "--tail-shrink", "2"], "tail_shrink applies to untied weights only"),
    (["--decoder", "adaptive", "--no-tie", "--tail-shrink", "0.5"], "tail_shrink must be a number "
                                                                   "of at least 1, got 0.5"),
])
def test_adaptive_decoder_settings_that_cannot_work(capsys, data, out, argv, needle):
    user_error(capsys, ["train", data / "good.txt", "-o", out / "run", "--no-progress",
                        "--max-steps", "1", *argv], needle)


def test_absurd_vector_size_refused_before_allocating(capsys, data, out):
    # A thousand words x 10^9 dimensions is terabytes: refused from arithmetic, not by malloc.
    corpus = out.parent / f"{out.name}-words.txt"
    corpus.write_text(" ".join(f"w{i}" for i in range(1000)) + "\n")
    with address_space_limit():
        user_error(capsys, ["embed", corpus, *overwriting(out / "out.bin"), "--quiet", "--min-count", "1",
                            "--size", 10**9], "GiB")


@pytest.mark.parametrize("argv, needle", [
    (["--hidden-size", "0"], "--hidden-size"), (["--hidden-size", "-3"], "--hidden-size"),
    (["--hidden", "-3"], "--hidden-size"),  # the old spelling still works; errors say the new one
    (["--length", "0"], "--length"), (["--batch-size", "-1"], "--batch-size"),
    (["--batch", "-1"], "--batch-size"), (["--input-size", "0"], "--input-size"),
    (["--cells", "bogus"], "bogus"), (["--hidden-size", "3000"], "GiB"),
])
def test_gradflow_sizes_out_of_range(capsys, out, argv, needle):
    with address_space_limit():
        user_error(capsys, ["gradflow", *overwriting(out / "plot.png"), "--cells", "rnn", "--length", "20",
                            *argv], needle)


def test_gradflow_hidden_of_a_billion(capsys, out):
    with address_space_limit():
        user_error(capsys, ["gradflow", *overwriting(out / "plot.png"), "--hidden-size", 10**9], "GiB")


def test_absurd_hidden_size_refused_before_allocating(capsys, data, out):
    with address_space_limit():
        user_error(capsys, ["train", data / "good.txt", "-o", out / "run", "--no-progress",
                            "--max-steps", "1", "--hidden-size", 10**9], "hidden")


# -- word-vector files -----------------------------------------------------------------------


VECTOR_CASES = {
    "header.txt": "COUNT DIM",
    "short.txt": "header declares 3 words",
    "dims.txt": "inconsistent dimension",
    "dims.glove": "expected 3",
    "dup.txt": "duplicate word 'the'",
    "cut.bin": "truncated",
    "dup.bin": "duplicate word 'the'",
    "header.bin": "COUNT DIM",
    "empty.txt": "",
    "missing.bin": "no such file",
    "folder": "not a vectors folder",
}


@pytest.mark.parametrize("name", VECTOR_CASES)
def test_bad_vectors_file(capsys, data, out, name):
    user_error(capsys, ["similar", data / name, "the"], name, VECTOR_CASES[name])


@pytest.mark.parametrize("name", ["dup.txt", "cut.bin"])
def test_bad_vectors_leave_plot_alone(capsys, data, out, name):
    user_error(capsys, ["vectors-plot", data / name, "the", "cat", *overwriting(out / "plot.png")], name)


@pytest.mark.parametrize("argv, needle", [
    (["--limit", "-1"], "--limit"), (["--limit", "0"], "--limit"), (["--topn", "0"], "--topn"),
    (["--topn", "-3"], "--topn"), (["--restrict-vocab", "0"], "--restrict-vocab"),
])
def test_vector_query_options_out_of_range(capsys, data, argv, needle):
    user_error(capsys, ["similar", data / "v.txt", "the", *argv], needle)


def test_unknown_word_is_one_line(capsys, data, out):
    user_error(capsys, ["similar", data / "v.txt", "zebra"], "'zebra'", "not in the vocabulary")
    user_error(capsys, ["vectors-plot", data / "v.txt", "the", "zebra", *overwriting(out / "plot.png")],
               "'zebra'")
    user_error(capsys, ["vectors-plot", data / "v.txt", "the", *overwriting(out / "plot.png")], "two words")


def test_nothing_to_work_on(capsys, data, out):
    user_error(capsys, ["score", data / "lm"], "SENTENCE")
    user_error(capsys, ["train", "-o", out / "run", "--resume"], "no training state")
    user_error(capsys, ["data", "path", "no-such-corpus"], "unknown corpus")


# -- language-model folders ------------------------------------------------------------------


def damaged(data: Path, tmp_path: Path, folder: str, damage) -> Path:
    """A copy of a model folder with `damage(path)` applied."""
    copy = tmp_path / f"{folder}-copy"
    shutil.copytree(data / folder, copy)
    damage(copy)
    return copy


def edit_json(name: str, change):
    def damage(path: Path) -> None:
        doc = json.loads((path / name).read_text())
        change(doc)
        (path / name).write_text(json.dumps(doc))
    return damage


def model_setting(key: str, value):
    return edit_json("config.json", lambda c: c["model"].__setitem__(key, value))


def drop_tensor(file: str, name: str):
    def damage(path: Path) -> None:
        tensors = load_file(path / file)
        del tensors[name]
        save_file(tensors, path / file)
    return damage


def replace_tensor(file: str, name: str, shape: tuple):
    def damage(path: Path) -> None:
        tensors = load_file(path / file)
        tensors[name] = np.zeros(shape, np.float32)
        save_file(tensors, path / file)
    return damage


def add_word(path: Path) -> None:
    edit_json("vocab.json", lambda v: (v["tokens"].append("extra"), v["counts"].append(1)))(path)


LM_CASES = {
    "wrong shape": (replace_tensor("model.safetensors", "embedding.weight", (7, 9)), "model.safetensors"),
    "vocabulary does not match": (add_word, "8 tokens"),
    "no weights": (lambda p: (p / "model.safetensors").unlink(), "model.safetensors missing"),
    "garbage weights": (lambda p: (p / "model.safetensors").write_bytes(b"\xff" * 64), "model.safetensors"),
    "no vocabulary": (lambda p: (p / "vocab.json").unlink(), "vocab.json"),
    "no config": (lambda p: (p / "config.json").unlink(), "config.json"),
    "config not JSON": (lambda p: (p / "config.json").write_text("{"), "config.json"),
    "hidden size a string": (model_setting("hidden_size", "8"), "config.json"),
    "hidden size a float": (model_setting("hidden_size", 8.5), "config.json"),
    "layers a list": (model_setting("num_layers", [1]), "config.json"),
    "model not an object": (edit_json("config.json", lambda c: c.__setitem__("model", [1])), "config.json"),
    "unknown setting": (model_setting("bogus", 1), "bogus"),
    "vocab size a bool": (model_setting("vocab_size", True), "config.json"),
    "negative hidden size": (model_setting("hidden_size", -1), "hidden"),
    "dropout out of range": (model_setting("dropout", 2), "dropout"),
    "weight drop out of range": (model_setting("weight_drop", 1.0), "'weight_drop'"),
    "locked dropout a string": (model_setting("dropout_input", "0.4"), "'dropout_input'"),
    "unknown cell": (model_setting("cell", "xx"), "'xx'"),
    "unknown level": (edit_json("config.json", lambda c: c.__setitem__("level", "byte")), "'byte'"),
    "wrong version": (edit_json("config.json", lambda c: c.__setitem__("version", 99)), "version"),
    "missing tensor": (drop_tensor("model.safetensors", "decoder.bias"), "decoder.bias"),
    "mode a number": (edit_json("config.json", lambda c: c.__setitem__("mode", 3)), "mode"),
    "lower a string": (edit_json("config.json", lambda c: c.__setitem__("lower", "yes")), "lower"),
    "tie_weights a string": (model_setting("tie_weights", "no"), "tie_weights"),
    "unknown decoder": (model_setting("decoder", "tree"), "'decoder' must be one of full, adaptive"),
    "adaptive without cutoffs": (model_setting("decoder", "adaptive"), "'cutoffs'"),
    "cutoffs of a full decoder": (model_setting("cutoffs", [3]), "'cutoffs'"),
    "cutoffs past the vocabulary": (edit_json("config.json", lambda c: c["model"].update(
        decoder="adaptive", cutoffs=[3, 7])), "cutoffs must be below the vocabulary size 7"),
    "cutoffs a string": (edit_json("config.json", lambda c: c["model"].update(
        decoder="adaptive", cutoffs="3")), "cutoffs must be increasing whole numbers"),
    "tail shrink below 1": (edit_json("config.json", lambda c: c["model"].update(
        decoder="adaptive", cutoffs=[3], tail_shrink=0)), "tail_shrink"),
    "adaptive config, full weights": (edit_json("config.json", lambda c: c["model"].update(
        decoder="adaptive", cutoffs=[3])), "does not match config.json"),
}


@pytest.mark.parametrize("case", LM_CASES)
def test_damaged_language_model(capsys, data, tmp_path, case):
    damage, needle = LM_CASES[case]
    model = damaged(data, tmp_path, "lm", damage)
    user_error(capsys, ["generate", model, "--length", "2", "--seed", "1"], needle)


def test_huge_model_config_refused_before_allocating(capsys, data, tmp_path):
    model = damaged(data, tmp_path, "lm", model_setting("hidden_size", 10**9))
    with address_space_limit():
        user_error(capsys, ["generate", model, "--length", "2"], "hidden")


def test_vectors_of_the_wrong_dimension_for_the_model(capsys, data, out):
    user_error(capsys, ["train", data / "good.txt", "-o", out / "run", "--no-progress", "--max-steps", "1",
                        "--vectors", data / "v.txt", "--embed-size", "16"], "dimension 2", "16")


def test_damaged_vectors_for_the_model(capsys, data, out):
    user_error(capsys, ["train", data / "good.txt", "-o", out / "run", "--no-progress", "--max-steps", "1",
                        "--vectors", data / "dup.txt"], "duplicate word")


# -- word2vec model folders ------------------------------------------------------------------


def w2v_setting(key: str, value):
    return edit_json("config.json", lambda c: c["settings"].__setitem__(key, value))


W2V_CASES = {
    "missing tensor": (drop_tensor("vectors.safetensors", "output"), "'output'"),
    "wrong shape": (replace_tensor("vectors.safetensors", "input", (3, 4)), "'input'"),
    "vocabulary does not match": (add_word, "'input'"),
    "size a string": (w2v_setting("vector_size", "4"), "vector_size must be an integer"),
    "window a string": (w2v_setting("window", "5"), "window"),
    "hs a string": (w2v_setting("hs", "no"), "hs must be true or false"),
    "sample a list": (w2v_setting("sample", [1]), "sample"),
    "seed a float": (w2v_setting("seed", 1.5), "seed"),
    "min_alpha a string": (w2v_setting("min_alpha", "a"), "min_alpha"),
    "max vocab a string": (w2v_setting("max_vocab_size", "a"), "max_vocab_size"),
    "settings a list": (edit_json("config.json", lambda c: c.__setitem__("settings", [1])), "settings"),
    "epochs_trained a string": (edit_json("config.json", lambda c: c.__setitem__("epochs_trained", "x")),
                                "epochs_trained"),
    "loss_history a number": (edit_json("config.json", lambda c: c.__setitem__("loss_history", 5)),
                              "loss_history"),
    "window 0": (w2v_setting("window", 0), "window"),
    "negative size": (w2v_setting("vector_size", -4), "vector_size"),
    "no workers": (w2v_setting("workers", 0), "workers"),
    "not a model": (lambda p: (p / "config.json").unlink(), "not a word2vec model"),
}


@pytest.mark.parametrize("case", W2V_CASES)
def test_damaged_word2vec_model(capsys, data, out, tmp_path_factory, case):
    damage, needle = W2V_CASES[case]
    model = damaged(data, tmp_path_factory.mktemp("w2v"), "w2v", damage)
    user_error(capsys, ["embed", data / "good.txt", *overwriting(out / "out.bin"), "--init", model,
                        "--quiet"], needle)


# -- generation ------------------------------------------------------------------------------


@pytest.mark.parametrize("argv, needle", [
    (["--temperature", "0"], "temperature"), (["--temperature", "-1"], "temperature"),
    (["--top-p", "0"], "top-p"), (["--top-p", "-0.5"], "top-p"), (["--top-p", "1.5"], "top-p"),
    (["--length", "-1"], "length"), (["--top-k", "-1"], "top-k"), (["--beam", "-2"], "beam"),
])
def test_generation_options_out_of_range(capsys, data, argv, needle):
    user_error(capsys, ["generate", data / "lm", *argv], needle)
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize("argv, needle", [
    (["lm", "--rhyme"], "rhyme needs a form"),
    (["lm", "--rhyme", "--acrostic", "春夏"], "rhyme needs a form"),
    (["lm", "--rhyme", "--form", "5", "--beam", "2"], "beam search does not take a poem form"),
    (["lm", "--rhyme", "--form", "6"], "form must be 5 or 7"),
    (["lm", "--rhyme", "--form", "5"], "character-level model; this one is word-level"),
    (["tang", "--rhyme", "--form", "5", "--prime", "白日依山盡，黃河入海流。欲窮千里目，更上一層山"],
     "at line 4, which must end in a rhyme"),
])
def test_bad_rhyme_settings(capsys, data, argv, needle):
    pytest.importorskip("pypinyin", reason="pypinyin (the chinese extra) is not installed")
    model = data / "lm" if argv[0] == "lm" else argv[0]
    user_error(capsys, ["generate", model, *argv[1:]], needle)
    assert capsys.readouterr().out == ""


# -- valid but awkward -----------------------------------------------------------------------


def test_prime_of_unknown_words_maps_to_unk(capsys, data):
    assert main(["generate", str(data / "lm"), "--prime", "zebra quagga", "--length", "3",
                 "--seed", "1"]) == 0
    out, err = capsys.readouterr()
    assert "<unk>" in err and "zebra quagga" in err
    assert out.startswith("zebra quagga") and out.strip() != "zebra quagga"


def test_one_long_line_streams_in_bounded_memory(tmp_path):
    # 20 MB without a line break; holding it, or its 5.4 M words, at once costs 100s of MB.
    words = "the cat sat on the mat "
    settings = ["--no-progress", "--min-count", "1", "--size", "4", "--epochs", "1", "--window", "2",
                "--negative", "1", "--threads", "1", "--sample", "1e-5"]
    (tmp_path / "short.txt").write_text(words * 1000)
    (tmp_path / "long.txt").write_text(words * 900_000)
    rc, _, err, base_kib = run_cli("embed", tmp_path / "short.txt", "-o", tmp_path / "s.bin", *settings)
    assert rc == 0, err
    rc, stdout, err, long_kib = run_cli("embed", tmp_path / "long.txt", "-o", tmp_path / "l.bin", *settings)
    assert rc == 0, err
    assert json.loads(stdout.splitlines()[0])["words"] == 5_400_000
    # The corpus ids (4 bytes a word, 21 MB) are all the long line may add.
    assert long_kib - base_kib < 80 * 1024, (base_kib, long_kib)


# -- no traceback reaches the user -----------------------------------------------------------


def test_real_processes_print_one_line_and_no_traceback(data, tmp_path):
    (tmp_path / "out.bin").write_bytes(PRECIOUS)
    garbage = damaged(data, tmp_path, "lm", lambda p: (p / "model.safetensors").write_bytes(b"\0" * 9))
    cases = [
        (["train", data / "latin1.txt", "-o", tmp_path / "run", "--no-progress"], "byte offset 12"),
        (["embed", data / "nul.txt", *overwriting(tmp_path / "out.bin")], "NUL byte"),
        (["similar", data / "cut.bin", "the"], "truncated"),
        (["generate", garbage], "model.safetensors"),
        (["generate", data / "lm", "--rhyme"], "rhyme needs a form"),
    ]
    for argv, needle in cases:
        rc, stdout, err, _ = run_cli(*argv)
        assert_clean_failure(rc, err, argv[0], needle)
        assert stdout == ""
    assert (tmp_path / "out.bin").read_bytes() == PRECIOUS
    assert not (tmp_path / "run").exists()


# -- non-finite word vectors -----------------------------------------------------------------


def test_non_finite_vectors_are_left_out_with_one_warning(capsys, tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_text("4 2\nthe 1 2\ncat nan 1\nsat 2 1\non 1 inf\n")
    assert main(["similar", str(bad), "the", "--topn", "5"]) == 0
    out, err = capsys.readouterr()
    assert out.split()[::2] == ["sat"]
    assert err == f"warning: {bad}: 2 of 4 words have NaN or infinite values and are left out: 'cat', 'on'\n"
    assert main(["similar", str(bad), "cat"]) == 2
    warning, error = capsys.readouterr().err.splitlines()  # the warning says why 'cat' is unknown
    assert warning.startswith("warning:") and "'cat'" in warning
    assert error == "rnnlab similar: error: word 'cat' is not in the vocabulary (2 words)"
    (tmp_path / "nan.bin").write_bytes(b"1 2\nthe " + np.array([np.nan, 1], "<f4").tobytes() + b"\n")
    user_error(capsys, ["similar", tmp_path / "nan.bin", "the"], "nan.bin", "every vector")


def test_non_finite_vectors_never_reach_the_model(data, tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_text("3 2\nthe 1 2\ncat nan 1\nsat 2 1\n")
    rc, _, err, _ = run_cli("train", data / "good.txt", "-o", tmp_path / "run", "--no-progress",
                            "--max-steps", "2", "--vectors", bad, "--layers", "1", "--hidden-size", "8")
    assert rc == 0 and "Traceback" not in err and "RuntimeWarning" not in err, err
    assert "1 of 3 words" in err and "'cat'" in err and "2/9 tokens matched" in err
    weights = load_file(tmp_path / "run" / "best" / "model.safetensors")
    assert all(np.isfinite(w).all() for w in weights.values())

    from rnnlab.errors import RnnlabError
    from rnnlab.lm.model import LanguageModel
    from rnnlab.text.vocab import Vocabulary
    from rnnlab.word2vec import WordVectors

    vectors = WordVectors(["the", "cat"], np.array([[1, 2], [np.nan, 1]], np.float32))
    vocab = Vocabulary(["<unk>", "the", "cat", "sat"], specials=("<unk>",))
    with pytest.raises(RnnlabError, match="NaN or infinite"):  # built in Python, not loaded
        LanguageModel(4, 2, 2, 1).load_vectors(vectors, vocab)


# -- token stores (rnnlab prepare) -----------------------------------------------------------


@pytest.mark.parametrize("name", CORPUS_CASES)
def test_bad_corpus_for_prepare(capsys, data, out, name):
    # The bad file comes second: the good one's pass has begun, and nothing may be left of it.
    user_error(capsys, ["prepare", data / "good.txt", data / name, "-o", out / "store", "--quiet"],
               name, CORPUS_CASES[name])


@pytest.mark.parametrize("argv, needle", [
    (["--threads", "0"], "--threads must be at least 1, got 0"),
    (["--encoding", "klingon"], "unknown text encoding 'klingon'"),
])
def test_prepare_settings_out_of_range(capsys, data, out, argv, needle):
    user_error(capsys, ["prepare", data / "good.txt", "-o", out / "store", *argv], needle)


def test_prepare_keeps_to_the_output_rules(capsys, data, out):
    user_error(capsys, ["prepare", data / "good.txt", "-o", out / "out.bin"], "is a file")
    user_error(capsys, ["prepare", data / "good.txt", "-o", out, "--overwrite"],
               "files rnnlab did not write")
    user_error(capsys, ["prepare", data / "good.txt", "-o", data / "good.txt"], "would overwrite the input")


def test_a_store_is_replaced_only_with_overwrite_and_only_by_a_success(capsys, data, tmp_path):
    assert main(["prepare", str(data / "good.txt"), "-o", str(tmp_path / "store"), "--quiet"]) == 0
    before = snapshot(tmp_path)
    user_error(capsys, ["prepare", data / "good.txt", "-o", tmp_path / "store"], "pass --overwrite")
    user_error(capsys, ["prepare", data / "good.txt", data / "nul.txt", "-o", tmp_path / "store",
                        "--overwrite", "--quiet"], "NUL byte")
    assert snapshot(tmp_path) == before


def test_prepare_in_a_real_process_prints_one_line(data, tmp_path):
    rc, stdout, err, _ = run_cli("prepare", data / "good.txt", data / "latin1.txt", "-o",
                                 tmp_path / "store", "--threads", "2")
    assert_clean_failure(rc, err.split("\r")[-1], "prepare", "latin1.txt", "byte offset 12")
    assert stdout == ""
    assert not (tmp_path / "store").exists() and os.listdir(tmp_path) == []


# -- word vectors from a token store, and stores cached for large text (--store) ----------------


@pytest.fixture(scope="module")
def stores(data, tmp_path_factory) -> Path:
    """Stores of good.txt: words (as embed reads them), lowercased words, characters."""
    d = tmp_path_factory.mktemp("stores")
    for name, flags in [("words", []), ("lower", ["--lower"]), ("chars", ["--level", "char"])]:
        assert main(["prepare", str(data / "good.txt"), "-o", str(d / name), "--quiet", *flags]) == 0
    return d


def test_embed_refuses_a_store_of_other_words_naming_the_store_that_fits(capsys, data, stores, out):
    good = str(data / "good.txt")
    user_error(capsys, ["embed", stores / "chars", "-o", out / "v.bin"],
               "chars: a store prepared with --level char, not --level word as asked; prepare one "
               f"that fits: rnnlab prepare {good} --level word -o STORE")
    user_error(capsys, ["embed", stores / "words", "-o", out / "v.bin", "--lower"],
               "a store prepared with --level word, not --level word --lower as asked",
               f"rnnlab prepare {good} --level word --lower -o STORE")
    user_error(capsys, ["embed", stores / "lower", "-o", out / "v.bin", "--level", "segmented"],
               "a store prepared with --level word --lower, not --level segmented as asked")
    user_error(capsys, ["embed", stores / "words", data / "good.txt", "-o", out / "v.bin"],
               "a token store is read alone: give it without other corpora")


def test_embed_refuses_a_character_store_in_a_real_process(stores, tmp_path):
    rc, stdout, err, _ = run_cli("embed", stores / "chars", "-o", tmp_path / "v.bin")
    assert_clean_failure(rc, err, "embed", "--level char, not --level word", "rnnlab prepare")
    assert stdout == "" and os.listdir(tmp_path) == []


def test_embed_from_a_store_refuses_what_the_text_path_refuses(capsys, stores, out):
    user_error(capsys, ["embed", stores / "words", "-o", out / "v.bin", "--min-count", "100"],
               "no token occurs min_count=100 times", "--min-count 20 keeps")
    user_error(capsys, ["embed", stores / "words", "-o", out / "v.bin", "--window", "0"],
               "window must be at least 1, got 0")


def test_train_refuses_a_store_it_cannot_read_with_store_always(data, tmp_path, monkeypatch):
    monkeypatch.setenv("RNNLAB_CACHE", str(tmp_path / "cache"))
    rc, stdout, err, _ = run_cli("train", data / "good.txt", "-o", tmp_path / "run", "--store",
                                 "always", "--split", "0.1", "0.1")
    assert_clean_failure(rc, err, "train", "--store always: a token store cannot be split; give "
                                           "--valid")
    assert sorted(os.listdir(tmp_path)) == []  # no run folder, no cache


def test_store_settings_are_checked_before_a_store_is_built(capsys, data, out, tmp_path,
                                                            monkeypatch):
    monkeypatch.setenv("RNNLAB_CACHE", str(tmp_path / "cache"))
    user_error(capsys, ["embed", data / "good.txt", "-o", out / "v.bin", "--store", "always",
                        "--negative", "0"], "choose negative > 0 or hs=True")
    user_error(capsys, ["train", data / "good.txt", "-o", out / "run", "--store", "always",
                        "--bptt", "0"], "bptt must be at least 1, got 0")
    assert not (tmp_path / "cache").exists()
