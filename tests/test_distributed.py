"""Data-parallel training with torchrun on CPU (gloo): W processes train the same model as one.

Each run is a real `torchrun … -m rnnlab train` on loopback. The proof that the averaging is
right: the weights after training equal those of one process on the same global batches.
"""

import json
import os
import shutil
import socket
import subprocess
import sys

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from rnnlab.cli import main
from rnnlab.lm.distributed import Group
from rnnlab.text.pipeline import TextPipeline
from rnnlab.text.store import prepare_store

WORDS = "the cat sat on a mat and dog ran to house".split()
BASE = ["--hidden-size", "10", "--embed-size", "10", "--layers", "1", "--bptt", "5",
        "--eval-batch-size", "3", "--epochs", "2", "--threads", "1", "--no-progress", "--quiet"]
STREAM = [*BASE, "--batch-size", "4"]  # SGD, loss summed over time (Zaremba)
SENTENCE = [*BASE, "--mode", "sentence", "--batch-size", "5", "--optimizer", "adam",
            "--lr", "0.01"]  # per-token loss; 5 sentences split 2 + 3, and a short last batch
# AWD-LSTM's schedule: drawn block lengths and their lr, then a fine-tuning epoch that averages
VARIABLE = [*STREAM, "--loss", "mean", "--lr", "0.5", "--variable-bptt"]
AWD = [*VARIABLE, "--asgd", "--finetune", "1"]
# The adaptive softmax: its last cluster (the 2 rarest words) is often empty in a rank's share.
ADAPTIVE = [*STREAM, "--decoder", "adaptive", "--cutoffs", "4", "11"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    rng = np.random.default_rng(0)
    folder = tmp_path_factory.mktemp("corpus")
    for name, n in (("train", 60), ("valid", 12)):
        lines = [" ".join(rng.choice(WORDS, size=rng.integers(3, 9))) for _ in range(n)]
        (folder / f"{name}.txt").write_text("\n".join(lines) + "\n")
    return folder


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(*args: str) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", *args, "-m", "rnnlab", "train"]


def launch(commands: tuple[list[str], ...]) -> list[tuple[int | None, str]]:
    """Start the launchers together (two nodes need each other); (exit code, output) of each."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    procs = [subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
             for c in commands]
    try:
        outputs = [p.communicate(timeout=150)[0] for p in procs]
    except subprocess.TimeoutExpired:
        for p in procs:
            p.kill()
        outputs = [p.communicate()[0] for p in procs]
    return [(p.returncode, out) for p, out in zip(procs, outputs)]


def run_all(*commands: list[str]) -> None:
    """Run the launchers and check they succeeded; a failed rendezvous on this shared machine
    (seen about once in a dozen runs) gets one fresh start, with the output folder cleared."""
    results = launch(commands)
    if any(code != 0 for code, _ in results):
        for c in commands:
            if "--resume" not in c:
                shutil.rmtree(c[c.index("-o") + 1], ignore_errors=True)
        results = launch(commands)
    for code, out in results:
        assert code == 0, out[-3000:]


def assert_close_weights(a, b, tol=1e-6):
    wa, wb = load_file(str(a / "model.safetensors")), load_file(str(b / "model.safetensors"))
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.allclose(wa[k], wb[k], atol=tol, rtol=0), (k, (wa[k] - wb[k]).abs().max())


def valid_losses(folder):
    lines = [json.loads(x) for x in (folder / "metrics.jsonl").read_text().splitlines()]
    return [r["valid_loss"] for r in lines if "epoch" in r]


def single(corpus, tmp_path, args):
    out = tmp_path / "one"
    assert main(["train", str(corpus / "train.txt"), "--valid", str(corpus / "valid.txt"),
                 *args, "-o", str(out)]) == 0
    return out


# AR and TAR are per-token means of each rank's share, weighted by its tokens: the sum over ranks
# is one process's penalty. (In sentence mode TAR's pairs per token differ between shares.)
@pytest.mark.parametrize("args", [STREAM, SENTENCE, [*STREAM, "--ar", "2", "--tar", "1"], AWD,
                                  ADAPTIVE],
                         ids=["stream-sgd-sum", "sentence-adam-mean", "stream-ar-tar",
                              "stream-awd-schedule", "stream-adaptive"])
def test_two_processes_train_the_same_model_as_one(corpus, tmp_path, args):
    one = single(corpus, tmp_path, args)
    two = tmp_path / "two"
    run_all([*torchrun("--standalone", "--nproc_per_node=2"), str(corpus / "train.txt"),
             "--valid", str(corpus / "valid.txt"), *args, "-o", str(two)])
    assert_close_weights(one / "last", two / "last")
    assert_close_weights(one / "best", two / "best")
    assert valid_losses(two) == pytest.approx(valid_losses(one), abs=1e-6)
    # rank 0 alone wrote: one metrics line per epoch, no stray files
    assert len(valid_losses(two)) == 2 + ("--finetune" in args)
    assert sorted(p.name for p in two.iterdir()) == sorted(p.name for p in one.iterdir())


@pytest.mark.parametrize("args", [VARIABLE, SENTENCE], ids=["stream-variable-bptt", "sentence"])
def test_two_processes_reading_a_store_stopped_and_resumed_equal_one_reading_the_text(
        corpus, tmp_path, args):
    store = tmp_path / "store"
    mode = "sentence" if "sentence" in args else "stream"
    prepare_store(corpus / "train.txt", store, TextPipeline(mode=mode), workers=1)
    one = single(corpus, tmp_path, args)
    two = tmp_path / "two"
    run_all([*torchrun("--standalone", "--nproc_per_node=2"), str(store),
             "--valid", str(corpus / "valid.txt"), *args, "--max-steps", "7", "-o", str(two)])
    if mode == "stream":  # the whole batch's state: each rank carried its own 2 columns
        assert load_file(str(two / "last" / "training.safetensors"))["hidden.0"].shape[1] == 4
    run_all([*torchrun("--standalone", "--nproc_per_node=2"), "-o", str(two), "--resume",
             "--quiet", "--no-progress"])
    assert_close_weights(one / "last", two / "last")
    assert valid_losses(two) == pytest.approx(valid_losses(one), abs=1e-6)
    assert len(valid_losses(two)) == 2


def test_two_processes_stopped_and_resumed_equal_one_uninterrupted(corpus, tmp_path):
    one = single(corpus, tmp_path, STREAM)
    two = tmp_path / "two"
    run_all([*torchrun("--standalone", "--nproc_per_node=2"), str(corpus / "train.txt"),
             "--valid", str(corpus / "valid.txt"), *STREAM, "--max-steps", "7", "-o", str(two)])
    assert json.loads((two / "last" / "training.json").read_text())["global_step"] == 7
    # the carried state is saved whole (the batch's 4 columns), not rank 0's share
    hidden = load_file(str(two / "last" / "training.safetensors"))["hidden.0"]
    assert hidden.shape[1] == 4
    assert main(["train", "-o", str(two), "--resume"]) == 2  # one process: refused, one line
    run_all([*torchrun("--standalone", "--nproc_per_node=2"), "-o", str(two), "--resume",
             "--quiet", "--no-progress"])
    assert_close_weights(one / "last", two / "last")


def test_two_nodes_on_loopback_train_the_same_model_as_one(corpus, tmp_path):
    one = single(corpus, tmp_path, STREAM)
    two = tmp_path / "two"
    port = str(free_port())
    common = ["--nnodes=2", "--nproc_per_node=1", "--master_addr=127.0.0.1", f"--master_port={port}"]
    rest = [str(corpus / "train.txt"), "--valid", str(corpus / "valid.txt"), *STREAM, "-o", str(two)]
    run_all([*torchrun(*common, "--node_rank=0"), *rest], [*torchrun(*common, "--node_rank=1"), *rest])
    assert_close_weights(one / "last", two / "last")


def test_a_batch_that_does_not_split_is_refused(corpus, tmp_path, monkeypatch):
    with pytest.raises(Exception, match="does not split evenly over 3 processes"):
        Group(rank=0, world=3).columns(4)


@pytest.mark.parametrize("world", [1, 2, 3, 5])
def test_shares_cover_every_item_once_in_order(world):
    items = list(range(7))
    shares = [Group(rank=r, world=world).share(items) for r in range(world)]
    assert sum(shares, []) == items
    assert max(map(len, shares)) - min(map(len, shares)) <= 1
