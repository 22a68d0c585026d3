"""Nothing lost: what every writing command may replace, refuses, locks and leaves behind.

Each case runs the real command line (`python -m rnnlab` in a subprocess unless a fault has to
be injected into the process itself) and compares a checksum of every file that was there
before with the same after.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from rnnlab.cli import main
from rnnlab.outputs import LOCK, output_lock

WORDS = "the cat sat on a mat and dog ran to house".split()
SMALL = ["--hidden-size", "8", "--layers", "1", "--batch-size", "4", "--bptt", "5", "--threads", "1",
         "--no-progress", "--quiet"]


def cli(*argv, cwd: Path | None = None, umask: int | None = None) -> tuple[int, str, str]:
    """`python -m rnnlab ARGV` for real: (exit code, stdout, stderr)."""
    preexec = (lambda: os.umask(umask)) if umask is not None else None
    p = subprocess.run([sys.executable, "-m", "rnnlab", *map(str, argv)], capture_output=True,
                       text=True, cwd=cwd, timeout=300, preexec_fn=preexec)
    return p.returncode, p.stdout, p.stderr


def refused(result: tuple[int, str, str], command: str, *needles: str) -> str:
    """Exit 2 and one error line holding every needle, no traceback."""
    rc, _, err = result
    lines = err.strip().splitlines()
    assert rc == 2 and len(lines) == 1, (rc, err)
    assert lines[0].startswith(f"rnnlab {command}: error: "), err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def checksums(folder: Path) -> dict[str, str]:
    """SHA-256 of every file under `folder`, hidden ones included (not a run's lock file, which
    holds the id of the last process that trained there)."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != LOCK}


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> Path:
    """A corpus, a trained run, word vectors (file and folder), a plot and a user's folder."""
    d = tmp_path_factory.mktemp("made")
    rng = np.random.default_rng(0)
    lines = [" ".join(rng.choice(WORDS, size=rng.integers(3, 9))) for _ in range(200)]
    (d / "text.txt").write_text("\n".join(lines) + "\n")
    assert main(["train", str(d / "text.txt"), "-o", str(d / "run"), "--epochs", "1", *SMALL]) == 0
    assert main(["embed", str(d / "text.txt"), "-o", str(d / "vectors.bin"), "--size", "8",
                 "--min-count", "1", "--quiet"]) == 0
    assert main(["embed", str(d / "text.txt"), "-o", str(d / "w2v"), "--size", "8",
                 "--min-count", "1", "--quiet"]) == 0
    (d / "thesis").mkdir()
    (d / "thesis" / "notes.txt").write_text("ideas\n")
    (d / "thesis" / "thesis.tex").write_text("\\chapter{Years of work}\n")
    (d / "map.png").write_bytes(b"a picture the user keeps\n")
    return d


@pytest.fixture
def work(made, tmp_path) -> Path:
    """A fresh copy of `made` for one test, checked unchanged unless the test says otherwise."""
    subprocess.run(["cp", "-a", f"{made}/.", str(tmp_path)], check=True)
    return tmp_path


# -- folders rnnlab did not write, or of another kind -----------------------------------------


@pytest.mark.parametrize("argv", [
    ["embed", "text.txt", "-o", "thesis", "--min-count", "1"],
    ["embed", "text.txt", "-o", "thesis", "--min-count", "1", "--overwrite"],
    ["train", "text.txt", "-o", "thesis", "--overwrite"],
    ["demo", "--quick", "-o", "thesis", "--overwrite"],
], ids=["embed", "embed-overwrite", "train-overwrite", "demo-overwrite"])
def test_a_folder_rnnlab_did_not_write_is_never_replaced(work, argv):
    before = checksums(work)
    refused(cli(*argv, cwd=work), argv[0], "thesis", "did not write", "notes.txt")
    assert checksums(work) == before


@pytest.mark.parametrize("argv,needle", [
    (["embed", "text.txt", "-o", "run/best", "--min-count", "1", "--overwrite"], "a language model"),
    (["embed", "text.txt", "-o", "run", "--min-count", "1", "--overwrite"], "a training run"),
    (["train", "text.txt", "-o", "w2v", "--overwrite"], "word vectors"),
    (["demo", "--quick", "-o", "run", "--overwrite"], "a training run"),
], ids=["vectors-over-model", "vectors-over-run", "run-over-vectors", "demo-over-run"])
def test_an_output_of_another_kind_is_never_replaced(work, argv, needle):
    before = checksums(work)
    refused(cli(*argv, cwd=work), argv[0], needle, "never replaces")
    assert checksums(work) == before


def test_a_folder_output_where_a_file_is_is_refused(work):
    before = checksums(work)
    refused(cli("embed", "text.txt", "-o", "vectors.bin/", "--overwrite", cwd=work), "embed",
            "is a file, not a folder")
    refused(cli("train", "text.txt", "-o", "vectors.bin", "--overwrite", cwd=work), "train",
            "is a file, not a folder")
    assert checksums(work) == before
    assert not list(work.glob(".*old"))


# -- replacing an earlier output of the same kind ---------------------------------------------


@pytest.mark.parametrize("argv,output", [
    (["embed", "text.txt", "--size", "8", "--min-count", "1", "--quiet"], "vectors.bin"),
    (["embed", "text.txt", "--size", "8", "--min-count", "1", "--quiet"], "w2v"),
    (["vectors-plot", "vectors.bin", "the", "cat", "dog"], "map.png"),
    (["gradflow", "--cells", "rnn", "--length", "5", "--hidden-size", "4"], "map.png"),
], ids=["vectors-file", "vectors-folder", "plot", "gradflow"])
def test_an_output_is_replaced_only_with_overwrite(work, argv, output):
    before = checksums(work)
    refused(cli(*argv, "-o", output, cwd=work), argv[0], output, "--overwrite")
    assert checksums(work) == before
    again = ["--seed", "7"] if argv[0] == "embed" else []  # the same seed writes the same bytes
    rc, _, err = cli(*argv, *again, "-o", output, "--overwrite", cwd=work)
    assert rc == 0, err
    after = checksums(work)
    changed = {k for k in before if before[k] != after.get(k)}
    assert changed and all(k == output or k.startswith(output + "/") for k in changed), changed


def test_train_into_a_run_needs_resume_or_overwrite(work):
    before = checksums(work)
    refused(cli("train", "text.txt", "-o", "run", *SMALL, cwd=work), "train", "--resume",
            "--overwrite")
    assert checksums(work) == before
    rc, _, err = cli("train", "text.txt", "-o", "run", "--epochs", "1", "--seed", "2", *SMALL,
                     "--overwrite", cwd=work)
    assert rc == 0, err
    assert checksums(work / "run" / "best") != {k[5:]: v for k, v in before.items()
                                                if k.startswith("run/best/")}


# -- refused before the work ------------------------------------------------------------------


@pytest.mark.parametrize("output,needle", [
    (".", "is the current folder"),
    ("text.txt", "is a file"),
    ("text.txt/run", "is a file"),
    ("/proc/rnnlab-run", "cannot write"),
], ids=["cwd", "file", "under-a-file", "unwritable"])
def test_train_output_checked_before_anything_is_read(work, output, needle):
    """The training file does not exist: the error names the output, so it came first."""
    before = checksums(work)
    refused(cli("train", "missing.txt", "-o", output, cwd=work), "train", needle)
    assert checksums(work) == before


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_folder_is_refused_at_once(work):
    (work / "ro").mkdir(mode=0o555)
    refused(cli("train", "missing.txt", "-o", "ro/run", cwd=work), "train", "cannot write")
    refused(cli("embed", "missing.txt", "-o", "ro/v.bin", cwd=work), "embed", "cannot write")


@pytest.mark.parametrize("argv", [
    ["embed", "missing.txt", "-o", "."],
    ["gradflow", "-o", "."],
    ["vectors-plot", "vectors.bin", "the", "cat", "-o", "thesis"],
    ["embed", "text.txt", "-o", "text.txt", "--overwrite"],
    ["gradflow", "-o", "map.txt", "--overwrite"],
], ids=["embed-cwd", "gradflow-cwd", "plot-folder", "embed-over-input", "plot-unknown-format"])
def test_other_outputs_checked_before_the_work(work, argv):
    before = checksums(work)
    refused(cli(*argv, cwd=work), argv[0])
    assert checksums(work) == before


def test_plots_are_written_in_the_format_their_name_asks_for(work):
    assert cli("vectors-plot", "vectors.bin", "the", "cat", "dog", "-o", "map.svg", cwd=work)[0] == 0
    assert cli("gradflow", "--cells", "rnn", "--length", "5", "--hidden-size", "4", "-o", "g.pdf",
               cwd=work)[0] == 0
    assert b"<svg" in (work / "map.svg").read_bytes()[:400]
    assert (work / "g.pdf").read_bytes()[:5] == b"%PDF-"


# -- locks ------------------------------------------------------------------------------------


@pytest.mark.parametrize("argv,output,kind", [
    (["train", "text.txt", "-o", "run", "--overwrite"], "run", "training-run"),
    (["embed", "text.txt", "-o", "vectors.bin", "--overwrite"], "vectors.bin", "file"),
], ids=["train", "embed"])
def test_a_second_writer_is_refused_naming_the_first(work, argv, output, kind):
    before = checksums(work)
    with output_lock(work / output, kind):
        refused(cli(*argv, cwd=work), argv[0], f"pid {os.getpid()}")
    assert checksums(work) == before
    assert not (work / f".{output}.lock").exists()


def wait_for(predicate, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_two_trainings_into_one_folder_and_a_killed_holder(work):
    """The second run is refused while the first trains; once the first is killed outright,
    the lock is free again by itself and the run resumes."""
    first = subprocess.Popen([sys.executable, "-m", "rnnlab", "train", "text.txt", "-o", "new",
                              "--epochs", "1000", "--checkpoint-every", "1", *SMALL], cwd=work,
                             stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: (work / "new" / "last").is_dir())
        refused(cli("train", "text.txt", "-o", "new", "--overwrite", *SMALL, cwd=work), "train",
                f"pid {first.pid}")
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    rc, _, err = cli("train", "-o", "new", "--resume", "--epochs", "1", *SMALL, cwd=work)
    assert rc == 0, err
    assert (work / "new" / LOCK).is_file()


# -- a write that fails later -----------------------------------------------------------------


def full_disk_after(monkeypatch, calls: int) -> None:
    """Every fsync after the first `calls` fails as on a full disk."""
    real, count = os.fsync, [0]

    def fsync(fd):
        count[0] += 1
        if count[0] > calls:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(fd)

    monkeypatch.setattr(os, "fsync", fsync)


def test_a_full_disk_mid_training_keeps_the_last_checkpoint(work, monkeypatch, capsys):
    before = checksums(work)
    full_disk_after(monkeypatch, 0)
    rc = main(["train", "-o", str(work / "run"), "--resume", "--epochs", "2", *SMALL])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "No space left on device" in err[0], err
    after = checksums(work)
    assert {k: v for k, v in after.items() if k.startswith("run/last/")} == \
           {k: v for k, v in before.items() if k.startswith("run/last/")}
    assert not [k for k in after if k.endswith(".tmp") or ".tmp/" in k]


def test_a_full_disk_while_saving_vectors_keeps_the_old_file(work, monkeypatch, capsys):
    before = checksums(work)
    full_disk_after(monkeypatch, 0)
    rc = main(["embed", str(work / "text.txt"), "-o", str(work / "vectors.bin"), "--overwrite",
               "--size", "8", "--min-count", "1", "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1, err
    assert err[0] == f"rnnlab embed: error: {work / 'vectors.bin'}: No space left on device"
    assert checksums(work) == before


# -- flags that mean what they say ------------------------------------------------------------


def test_resume_refuses_a_changed_training_file(work):
    assert cli("train", "text.txt", "-o", "r", "--max-steps", "2", *SMALL, cwd=work)[0] == 0
    with open(work / "text.txt", "a") as f:
        f.write("a new line of other text\n")
    before = checksums(work)
    refused(cli("train", "-o", "r", "--resume", *SMALL, cwd=work), "train", "changed",
            "--allow-changed-data")
    assert checksums(work) == before
    rc, _, err = cli("train", "-o", "r", "--resume", "--max-steps", "4", "--allow-changed-data",
                     *SMALL, cwd=work)
    assert rc == 0, err


def global_step(run: Path) -> int:
    return json.loads((run / "last" / "training.json").read_text())["global_step"]


def test_max_steps_is_the_total_and_must_be_positive(work):
    for value in ("0", "-3"):
        refused(cli("train", "text.txt", "-o", "r", "--max-steps", value, cwd=work), "train",
                f"--max-steps must be at least 1, got {value}")
    talkative = [a for a in SMALL if a != "--quiet"]  # a resumed run keeps it
    assert cli("train", "text.txt", "-o", "r", "--max-steps", "9", *talkative, cwd=work)[0] == 0
    assert global_step(work / "r") == 9
    rc, _, err = cli("train", "-o", "r", "--resume", "--max-steps", "5", "--no-progress", cwd=work)
    assert rc == 0 and "already at step 9" in err, err
    assert global_step(work / "r") == 9
    assert cli("train", "-o", "r", "--resume", "--max-steps", "12", *SMALL, cwd=work)[0] == 0
    assert global_step(work / "r") == 12


@pytest.mark.parametrize("argv", [["train", "text.txt", "-o", "r"],
                                  ["embed", "text.txt", "-o", "v.bin"]], ids=["train", "embed"])
def test_threads_below_one_are_refused_alike(work, argv):
    refused(cli(*argv, "--threads", "0", cwd=work), argv[0], "--threads must be at least 1, got 0")


def test_beam_zero_is_documented_as_sampling():
    rc, out, _ = cli("generate", "--help")
    assert rc == 0 and "0: sample" in " ".join(out.split())


# -- files and terminals ----------------------------------------------------------------------


def test_every_output_follows_the_umask(work):
    for argv in (["train", "text.txt", "-o", "u-run", "--epochs", "1", *SMALL],
                 ["embed", "text.txt", "-o", "u-w2v", "--size", "8", "--min-count", "1", "--quiet"],
                 ["embed", "text.txt", "-o", "u.bin", "--size", "8", "--min-count", "1", "--quiet"],
                 ["gradflow", "--cells", "rnn", "--length", "5", "-o", "u.png"]):
        rc, _, err = cli(*argv, cwd=work, umask=0o022)
        assert rc == 0, err
    made = [work / "u.bin", work / "u.png", work / "u-w2v", work / "u-run"]
    paths = made + [p for m in made if m.is_dir() for p in m.rglob("*")]
    modes = {str(p.relative_to(work)): oct(p.stat().st_mode & 0o777) for p in paths}
    wrong = {k: m for k, m in modes.items()
             if m != ("0o755" if (work / k).is_dir() else "0o644")}
    assert not wrong and len(modes) > 15, wrong


def test_an_error_under_a_progress_bar_starts_its_own_line(work):
    rc, _, err = cli("train", "text.txt", "-o", "nan", "--lr", "1e38", "--clip", "0", "--init-range",
                     "1e10", "--max-bad-steps", "1", "--hidden-size", "8", "--layers", "1", cwd=work)
    assert rc == 2 and "epoch 1/" in err, err  # the bar was showing
    at = err.index("rnnlab train: error: ")
    assert at > 0 and err[at - 1] in "\r\n", repr(err[max(0, at - 80):at + 40])
