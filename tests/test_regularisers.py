"""The AWD-LSTM's regularisers: locked, embedding and weight dropout (rnnlab.dropout, in
Recurrent and LanguageModel), AR and TAR (rnnlab.lm.regularisers, in the trainer's loss), and
`rnnlab train` with all of them, resumed exactly."""

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from rnnlab.cells import CELL_TYPES
from rnnlab.cli import main
from rnnlab.dropout import drop_connect, embedding_dropout, locked_dropout
from rnnlab.lm.model import LanguageModel
from rnnlab.lm.regularisers import activation_penalty
from rnnlab.lm.settings import TrainSettings
from rnnlab.lm.trainer import Trainer
from rnnlab.recurrent import Recurrent

T, B, I, H = 6, 3, 5, 40
P = 0.5
LENGTHS = torch.tensor([6, 2, 4])


# -- the dropouts on their own ---------------------------------------------------------------


def test_locked_dropout_has_one_mask_for_every_step():
    torch.manual_seed(0)
    x = torch.ones(T, 50, 80)
    y = locked_dropout(x, 0.3, True)
    assert all(torch.equal(y[t], y[0]) for t in range(T))
    assert y.unique().tolist() == [0.0, pytest.approx(1 / 0.7)]
    assert (y[0] == 0).float().mean().item() == pytest.approx(0.3, abs=0.02)  # 4000 draws
    assert locked_dropout(x, 0.3, False) is x


def test_embedding_dropout_drops_whole_words():
    torch.manual_seed(1)
    weight = torch.randn(2000, 4)
    tokens = torch.arange(2000).repeat(3, 1)  # every word three times
    y = embedding_dropout(weight, tokens, 0.25, True)
    dropped = (y == 0).all(-1)
    assert torch.equal(dropped, dropped[0].expand_as(dropped))  # a word is dropped everywhere
    assert dropped[0].float().mean().item() == pytest.approx(0.25, abs=0.03)
    kept = ~dropped[0]
    assert torch.allclose(y[1, kept], weight[kept] / 0.75)
    assert torch.equal(embedding_dropout(weight, tokens, 0.25, False), weight[tokens])


def test_drop_connect_masks_only_the_given_columns():
    torch.manual_seed(2)
    W = torch.randn(400, 60)
    dropped = drop_connect(W, 0.4, slice(0, 50))
    assert torch.equal(dropped[:, 50:], W[:, 50:])
    zero = dropped[:, :50] == 0
    assert zero.float().mean().item() == pytest.approx(0.4, abs=0.01)  # 20,000 draws
    assert torch.allclose(dropped[:, :50][~zero], W[:, :50][~zero] / 0.6)


# -- weight drop in Recurrent ----------------------------------------------------------------


def hidden_blocks(layer: Recurrent) -> list[torch.Tensor]:
    """The hidden-to-hidden columns of every cell's recurrent matrices, as the cells read them."""
    return [getattr(cell, name)[:, :H].detach().clone()
            for cell in layer.cells for name in cell.hidden_weights]


@pytest.mark.parametrize("cell_type", CELL_TYPES)
def test_weight_drop_uses_one_mask_at_every_step(cell_type):
    torch.manual_seed(3)
    layer = Recurrent(cell_type, I, H, num_layers=2, weight_drop=P, fast=False)
    originals = hidden_blocks(layer)
    seen = []
    layer.cells[0].register_forward_pre_hook(lambda cell, args: seen.append(hidden_blocks(layer)))
    layer(torch.randn(T, B, I))
    assert len(seen) == T
    for blocks in seen[1:]:
        assert all(torch.equal(a, b) for a, b in zip(blocks, seen[0]))
    for used, original in zip(seen[0], originals):
        zero = used == 0
        assert zero.float().mean().item() == pytest.approx(P, abs=0.06)  # ≥ 1,600 draws
        assert torch.allclose(used[~zero], original[~zero] / (1 - P))
    # The parameters themselves are untouched: the dropped matrices only stand in for a call.
    assert all(torch.equal(a, b) for a, b in zip(hidden_blocks(layer), originals))


@pytest.mark.parametrize("cell_type", CELL_TYPES)
def test_weight_drop_fast_and_readable_paths_agree(cell_type):
    torch.manual_seed(4)
    fast = Recurrent(cell_type, I, H, num_layers=2, weight_drop=P, dropout=0.3).double()
    slow = Recurrent(cell_type, I, H, num_layers=2, weight_drop=P, dropout=0.3, fast=False).double()
    slow.load_state_dict(fast.state_dict())
    slow.locked = fast.locked = True  # the kernels' own dropout would draw other masks
    x = torch.randn(T, B, I, dtype=torch.double)
    results = []
    for layer in (fast, slow):
        torch.manual_seed(5)
        out, _ = layer(x, lengths=LENGTHS)
        out.pow(2).sum().backward()
        results.append((out, [p.grad for p in layer.parameters()]))
    (a, grads_a), (b, grads_b) = results
    assert torch.allclose(a, b, atol=1e-10)
    assert all(torch.allclose(g, h, atol=1e-10) for g, h in zip(grads_a, grads_b))


@pytest.mark.parametrize("cell_type", ["lstm", "gru", "rnn"])
def test_weight_drop_is_dropconnect_on_the_weights(cell_type):
    # The dropped matrices, drawn alike, put in as the weights of a plain layer: same outputs,
    # and the gradient of a dropped entry is zero.
    torch.manual_seed(6)
    layer = Recurrent(cell_type, I, H, weight_drop=P)
    plain = Recurrent(cell_type, I, H)
    plain.load_state_dict(layer.state_dict())
    x = torch.randn(T, B, I)
    torch.manual_seed(7)
    dropped = layer.dropped_weights()
    with torch.no_grad():
        for name, tensor in dropped.items():
            plain.get_parameter(name).copy_(tensor)
    torch.manual_seed(7)
    out, _ = layer(x)
    assert torch.allclose(out, plain(x)[0], atol=1e-6)
    out.sum().backward()
    name = next(iter(dropped))
    assert (layer.get_parameter(name).grad[dropped[name] == 0] == 0).all()
    layer.eval()
    plain.load_state_dict(layer.state_dict())
    assert torch.equal(layer(x)[0], plain(x)[0])  # off in evaluation


def test_locked_dropout_between_layers_is_one_mask_per_sequence():
    torch.manual_seed(8)
    layer = Recurrent("gru", I, H, num_layers=2, dropout=P, locked=True, fast=False)
    inputs = []
    layer.cells[1].register_forward_pre_hook(lambda cell, args: inputs.append(args[0]))
    layer(torch.randn(T, B, I))
    zero = [x == 0 for x in inputs]
    assert len(zero) == T and all(torch.equal(z, zero[0]) for z in zero)
    assert zero[0].float().mean().item() == pytest.approx(P, abs=0.1)


# -- the model -------------------------------------------------------------------------------

AWD = dict(dropout_input=0.4, dropout_hidden=0.25, dropout_output=0.4, dropout_words=0.1,
           weight_drop=0.5)


def test_model_locked_dropout_on_input_and_output():
    torch.manual_seed(9)
    model = LanguageModel(30, 20, H, num_layers=2, dropout=0.9, dropout_input=0.4,
                          dropout_output=0.3)
    got = {}
    model.rnn.register_forward_pre_hook(lambda m, args: got.update(x=args[0]))
    tokens = torch.randint(30, (T, B))
    _, _, (raw, dropped) = model(tokens, activations=True)
    ratio = dropped / raw
    assert all(torch.allclose(ratio[t], ratio[0]) for t in range(T))
    values = ratio.unique()
    assert values[0] == 0 and torch.allclose(values[1:], torch.tensor(1 / 0.7))
    zero = got["x"] == 0
    assert all(torch.equal(zero[t], zero[0]) for t in range(T))
    assert zero.float().mean().item() == pytest.approx(0.4, abs=0.1)  # not --dropout's 0.9


def test_model_embedding_dropout_zeroes_whole_words():
    torch.manual_seed(10)
    model = LanguageModel(8, 16, 16, num_layers=1, dropout_words=0.5)
    got = {}
    model.rnn.register_forward_pre_hook(lambda m, args: got.update(x=args[0]))
    tokens = torch.arange(8).repeat(T, 1)
    model(tokens)
    dropped = (got["x"] == 0).all(-1)
    assert torch.equal(dropped, dropped[0].expand_as(dropped)) and 0 < dropped[0].sum() < 8


@pytest.mark.parametrize("cell", ["lstm", "peephole"])
def test_every_regulariser_is_off_in_evaluation(cell):
    torch.manual_seed(11)
    model = LanguageModel(30, 12, 12, num_layers=2, cell=cell, dropout=0.3, **AWD).eval()
    plain = LanguageModel(30, 12, 12, num_layers=2, cell=cell).eval()
    plain.load_state_dict(model.state_dict())
    tokens = torch.randint(30, (T, B))
    assert torch.equal(model(tokens)[0], plain(tokens)[0])
    model.train()
    assert not torch.allclose(model(tokens)[0], plain(tokens)[0])


def test_config_names_the_regularisers_only_when_set():
    assert set(LanguageModel(10).config).isdisjoint(AWD)
    model = LanguageModel(10, **AWD)
    assert {k: model.config[k] for k in AWD} == AWD
    assert LanguageModel(**model.config).config == model.config


# -- AR and TAR ------------------------------------------------------------------------------


def test_activation_penalty_is_the_formula():
    raw = torch.tensor([[[1.0, 2.0]], [[3.0, 0.0]], [[3.0, 1.0]]])  # (T=3, B=1, H=2)
    dropped = torch.tensor([[[2.0, 0.0]], [[0.0, 0.0]], [[6.0, 2.0]]])
    ar = (4 + 36 + 4) / 6  # mean of dropped²
    tar = (4 + 4 + 0 + 1) / 4  # mean of (h_t - h_{t-1})²: (2, -2), (0, 1)
    assert activation_penalty(raw, dropped, 2.0, 0.0).item() == pytest.approx(2 * ar)
    assert activation_penalty(raw, dropped, 0.0, 1.0).item() == pytest.approx(tar)
    assert activation_penalty(raw, dropped, 2.0, 1.0).item() == pytest.approx(2 * ar + tar)


def test_activation_penalty_ignores_padding():
    # Sequence 2 has one real step: its padded steps (zeros) and the jump to them count nothing.
    raw = torch.tensor([[[1.0], [5.0]], [[2.0], [0.0]], [[4.0], [0.0]]])  # (T=3, B=2, H=1)
    lengths = torch.tensor([3, 1])
    assert activation_penalty(raw, raw, 1.0, 0.0, lengths).item() == pytest.approx((1 + 4 + 16 + 25) / 4)
    assert activation_penalty(raw, raw, 0.0, 1.0, lengths).item() == pytest.approx((1 + 4) / 2)
    assert activation_penalty(raw[:1], raw[:1], 0.0, 1.0).item() == 0.0  # one step: no change


@pytest.mark.parametrize("loss", ["sum", "mean"])
def test_trainer_adds_exactly_ar_and_tar_to_the_loss(tmp_path, loss):
    path = tmp_path / "text.txt"
    path.write_text("a b c d e f g h\n" * 30)
    s = TrainSettings(hidden_size=8, embed_size=8, layers=1, batch_size=4, bptt=5, clip=0,
                      lr=0.5, loss=loss, ar=2.0, tar=1.0, threads=1)
    trainer = Trainer(path, s, None, None)
    trainer.setup()
    trainer.restore()
    trainer.bad_in_row = 0
    item = trainer.data.train.epoch(1)[0]
    x, y, _, _ = trainer.local_batch(item)
    model = LanguageModel(**trainer.model.config)
    model.load_state_dict(trainer.model.state_dict())
    trainer.model.train()
    trainer.train_step(item)
    logits, _, (raw, dropped) = model(x, activations=True)
    ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), reduction="sum")
    penalty = 2.0 * dropped.pow(2).mean() + 1.0 * (raw[1:] - raw[:-1]).pow(2).mean()
    per = x.shape[1] if loss == "sum" else y.numel()
    ((ce + y.numel() * penalty) / per).backward()
    with torch.no_grad():
        for p in model.parameters():
            p -= 0.5 * p.grad
    for name, p in model.state_dict().items():
        assert torch.allclose(p, trainer.model.state_dict()[name], atol=1e-6), name
    # Reported: the cross-entropy alone.
    assert trainer.p.epoch_loss == pytest.approx(ce.item(), rel=1e-6)


# -- rnnlab train ----------------------------------------------------------------------------

WORDS = "the cat sat on a mat and dog ran to house".split()
FLAGS = ["--hidden-size", "12", "--embed-size", "12", "--layers", "2", "--batch-size", "4",
         "--bptt", "5", "--eval-batch-size", "2", "--threads", "1", "--split", "0.1", "0.1",
         "--epochs", "2", "--optimizer", "adam", "--quiet", "--no-progress", "--weight-drop", "0.5",
         "--dropout-input", "0.4", "--dropout-hidden", "0.25", "--dropout-output", "0.4",
         "--dropout-words", "0.1", "--ar", "2", "--tar", "1"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    rng = np.random.default_rng(0)
    path = tmp_path_factory.mktemp("corpus") / "text.txt"
    lines = [" ".join(rng.choice(WORDS, size=rng.integers(3, 9))) for _ in range(120)]
    path.write_text("\n".join(lines) + "\n")
    return path


def same_weights(a, b) -> bool:
    wa, wb = load_file(str(a / "model.safetensors")), load_file(str(b / "model.safetensors"))
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


@pytest.mark.parametrize("extra", [["--cell", "lstm"], ["--cell", "gru", "--mode", "sentence"]],
                         ids=["lstm-stream", "gru-sentence"])
def test_train_with_every_regulariser_resumes_exactly(tmp_path, corpus, extra):
    a, b = tmp_path / "a", tmp_path / "b"
    assert main(["train", str(corpus), *FLAGS, *extra, "-o", str(a)]) == 0
    steps = json.loads((a / "last" / "training.json").read_text())["global_step"]
    assert main(["train", str(corpus), *FLAGS, *extra, "-o", str(b), "--max-steps",
                 str(steps // 2 + 1)]) == 0
    assert main(["train", "-o", str(b), "--resume", "--quiet", "--no-progress"]) == 0
    assert same_weights(a / "last", b / "last") and same_weights(a / "best", b / "best")
    config = json.loads((b / "best" / "config.json").read_text())["model"]
    assert {k: config[k] for k in AWD} == AWD
    settings = json.loads((b / "last" / "training.json").read_text())["settings"]
    assert (settings["ar"], settings["tar"], settings["weight_drop"]) == (2.0, 1.0, 0.5)
    metrics = [json.loads(line) for line in (a / "metrics.jsonl").read_text().splitlines()]
    assert all(math.isfinite(r["valid_loss"]) for r in metrics if "valid_loss" in r)
