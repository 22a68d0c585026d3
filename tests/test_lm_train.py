import json
import math
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from rnnlab import device as device_module
from rnnlab.cli import main
from rnnlab.device import bf16_on_cpu
from rnnlab.errors import RnnlabError
from rnnlab.lm import LM
from rnnlab.lm import model as model_module
from rnnlab.lm import train as train_module
from rnnlab.lm import trainer as trainer_module
from rnnlab.lm.train import train_language_model
from rnnlab.word2vec.vectors import WordVectors

WORDS = "the cat sat on a mat and dog ran to house".split()
TINY = dict(hidden_size=12, embed_size=12, layers=1, batch_size=4, bptt=5, eval_batch_size=2,
            threads=1)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    rng = np.random.default_rng(0)
    path = tmp_path_factory.mktemp("corpus") / "text.txt"
    lines = [" ".join(rng.choice(WORDS, size=rng.integers(3, 9))) for _ in range(120)]
    path.write_text("\n".join(lines) + "\n")
    return path


def weights(folder):
    return load_file(str(folder / "model.safetensors"))


def assert_same_weights(a, b):
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k


def test_learns_a_deterministic_sequence(tmp_path):
    path = tmp_path / "abc.txt"
    path.write_text("a b c d e f g h\n" * 60)
    result = train_language_model(path, None, split=(0.1, 0), optimizer="adam", lr=0.03,
                                  epochs=8, **TINY)
    # the only uncertainty left is which column-start the stream cut lands on: near zero
    assert result.history[-1]["valid_loss"] < 0.05
    assert result.history[-1]["valid_loss"] < result.history[0]["valid_loss"] / 10


@pytest.mark.parametrize("mode,options", [
    ("stream", dict(optimizer="adam", dropout=0.3, layers=2)),  # dropout: the RNG must resume
    ("sentence", dict(optimizer="sgd", schedule="plateau", cell="gru")),
    ("stream", dict(optimizer="adam", dropout=0.3, decoder="adaptive")),
    ("sentence", dict(optimizer="sgd", decoder="adaptive", cutoffs=[4, 9], tie_weights=False,
                      tail_shrink=2.0)),
])
def test_resume_gives_the_same_weights_as_an_uninterrupted_run(tmp_path, corpus, mode, options):
    settings = dict(TINY, mode=mode, split=(0.1, 0.1), epochs=3, **options)
    straight = train_language_model(corpus, tmp_path / "a", **settings)
    steps_per_epoch = straight.history[0]["step"]
    stopped = train_language_model(corpus, tmp_path / "b", max_steps=steps_per_epoch + 3,
                                   **settings)
    assert stopped.stopped == "max-steps"
    state = json.loads((tmp_path / "b" / "last" / "training.json").read_text())
    assert (state["epoch"], state["step_in_epoch"]) == (2, 3)
    resumed = train_language_model(corpus, tmp_path / "b", resume=True, max_steps=None)
    assert resumed.stopped == "done"
    assert_same_weights(tmp_path / "a" / "last", tmp_path / "b" / "last")
    assert_same_weights(tmp_path / "a" / "best", tmp_path / "b" / "best")
    def timeless(history):
        return [{k: v for k, v in r.items() if k not in ("seconds", "tokens_per_s")}
                for r in history]

    assert timeless(resumed.history) == timeless(straight.history)
    assert resumed.test == straight.test


def test_the_adaptive_decoder_trains_then_evaluates_scores_and_generates(tmp_path, corpus,
                                                                       capsys):
    lines = corpus.read_text().splitlines()
    (tmp_path / "valid.txt").write_text("\n".join(lines[-12:]) + "\n")
    run = tmp_path / "m"
    assert main(["train", str(corpus), "--valid", str(tmp_path / "valid.txt"), "-o", str(run),
                 "--decoder", "adaptive", "--hidden-size", "12", "--embed-size", "8",
                 "--layers", "1", "--batch-size", "4", "--bptt", "5", "--epochs", "2",
                 "--optimizer", "adam", "--lr", "0.02", "--threads", "1", "--quiet"]) == 0
    lm = LM.load(run)
    config = json.loads((run / "best" / "config.json").read_text())["model"]
    # 13 tokens, nearly uniform: the 11 most frequent cover 86 % of the text ("sat", "cat" out)
    assert (config["decoder"], config["cutoffs"], len(lm.vocab)) == ("adaptive", [11], 13)
    records = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert records[-1]["valid_loss"] < records[0]["valid_loss"] < math.log(13)
    capsys.readouterr()
    assert main(["evaluate", str(run), str(tmp_path / "valid.txt"), "--json", "--quiet"]) == 0
    measured = json.loads(capsys.readouterr().out)
    best = min(r["valid_loss"] for r in records)
    assert measured["loss"] == pytest.approx(best, rel=1e-9)
    assert main(["score", str(run), "the cat sat on a mat"]) == 0
    expected = lm.score("the cat sat on a mat")
    assert f"total log P = {expected.logprob:.3f} nats" in capsys.readouterr().out
    # the probabilities of every next token add up to 1
    logits, _ = lm.step(lm.vocab.stoi["the"])
    assert float(torch.softmax(logits, -1).sum()) == pytest.approx(1.0, abs=1e-6)
    assert float(torch.logsumexp(logits, -1)) == pytest.approx(0.0, abs=1e-6)
    for extra in ([], ["--beam", "3"]):
        assert main(["generate", str(run), "--prime", "the", "--length", "6", "--seed", "1",
                     *extra]) == 0
        words = capsys.readouterr().out.split()
        assert words[0] == "the" and set(words) <= set(lm.vocab.itos)


def test_resume_refuses_changed_model_settings(tmp_path, corpus):
    train_language_model(corpus, tmp_path / "m", epochs=1, **TINY)
    with pytest.raises(RnnlabError, match="cannot change 'hidden_size'"):
        train_language_model(corpus, tmp_path / "m", resume=True, hidden_size=13)
    with pytest.raises(RnnlabError, match="no training state"):
        train_language_model(corpus, tmp_path / "other", resume=True)


def test_non_finite_steps_are_skipped(tmp_path, corpus, monkeypatch):
    real = model_module.sequence_loss
    calls = {"n": 0}

    def flaky(logits, targets):
        calls["n"] += 1
        loss = real(logits, targets)
        if calls["n"] == 3:
            return loss * float("nan")  # non-finite loss
        if calls["n"] == 5:
            return loss + torch.sqrt(logits.sum() * 0)  # finite loss, NaN gradient
        return loss

    monkeypatch.setattr(model_module, "sequence_loss", flaky)
    result = train_language_model(corpus, tmp_path / "m", epochs=1, **TINY)
    assert result.skipped_steps == 2 and result.history[0]["skipped"] == 2
    assert all(torch.isfinite(w).all() for w in weights(tmp_path / "m" / "last").values())
    assert math.isfinite(result.history[0]["train_loss"])


def test_too_many_non_finite_steps_stop_training(tmp_path, corpus, monkeypatch):
    real = model_module.sequence_loss
    monkeypatch.setattr(model_module, "sequence_loss",
                        lambda logits, targets: real(logits, targets) * math.inf)
    with pytest.raises(RnnlabError, match="4 non-finite steps in a row"):
        train_language_model(corpus, tmp_path / "m", max_bad_steps=4, **TINY)
    assert not (tmp_path / "m" / "last").exists()  # nothing from the failed steps was saved
    assert main(["train", str(corpus), "--max-bad-steps", "2", "--quiet", "--no-progress",
                 "-o", str(tmp_path / "cli")]) == 2  # the CLI: one line, non-zero exit


def test_summed_loss_scales_the_gradient_by_the_block_length(corpus):
    def first_layer(**kw):
        result = train_language_model(corpus, None, optimizer="sgd", lr=1.0, clip=0, **TINY, **kw)
        return result.lm.model.rnn.cells[0].W.detach()

    start = first_layer(epochs=0)
    summed, mean = first_layer(loss="sum", max_steps=1), first_layer(loss="mean", max_steps=1)
    # The first block is full (5 steps x 4 columns): summing over time, averaging over the
    # batch makes the SGD step bptt = 5 times the per-token mean's (Zaremba et al.; docs/conventions.md).
    assert not torch.equal(summed, start)
    torch.testing.assert_close(summed - start, 5 * (mean - start), rtol=1e-4, atol=1e-6)


def write_vectors(tmp_path, dim=12):
    rng = np.random.default_rng(1)
    words = ["The", "cat", "dog", "mouse"]
    wv = WordVectors(words, rng.normal(size=(4, dim)).astype(np.float32))
    path = tmp_path / "vectors.txt"
    wv.save(path, precision=9)
    return path, wv


def test_vectors_file_initialises_and_freezes_the_embedding(tmp_path, corpus):
    path, wv = write_vectors(tmp_path)
    settings = {k: v for k, v in TINY.items() if k != "embed_size"}
    result = train_language_model(corpus, None, vectors=str(path), epochs=0, **settings)
    vocab, E = result.lm.vocab, result.lm.model.embedding.weight.detach().numpy()
    np.testing.assert_array_equal(E[vocab["the"]], wv["The"])  # matched through lowercase
    np.testing.assert_array_equal(E[vocab["cat"]], wv["cat"])
    assert result.coverage["matched"] == 3 and result.coverage["lowercase"] == 1
    frozen = train_language_model(corpus, None, vectors=str(path), freeze_vectors=True,
                                  epochs=1, **settings)
    assert frozen.lm.model.decoder.weight.data_ptr() != frozen.lm.model.embedding.weight.data_ptr()
    np.testing.assert_array_equal(frozen.lm.model.embedding.weight.detach().numpy(), E)
    with pytest.raises(RnnlabError, match="dimension 12 but the embedding has 8"):
        train_language_model(corpus, None, vectors=str(path), **dict(settings, embed_size=8))


@pytest.mark.parametrize("freeze", [False, True])
def test_resume_with_vectors_keeps_their_embedding_size(tmp_path, corpus, freeze):
    # hidden 8, vectors 12: a resume that forgot the vectors' size would rebuild at 8.
    path, _ = write_vectors(tmp_path)
    settings = dict(TINY, hidden_size=8, embed_size=None, split=(0.1, 0), vectors=str(path),
                    freeze_vectors=freeze)
    train_language_model(corpus, tmp_path / "a", epochs=2, **settings)
    train_language_model(corpus, tmp_path / "b", epochs=1, **settings)
    resumed = train_language_model(corpus, tmp_path / "b", resume=True, epochs=2)
    assert resumed.lm.model.embedding.weight.shape[1] == 12
    assert resumed.lm.model.embedding.weight.requires_grad is not freeze
    assert_same_weights(tmp_path / "a" / "last", tmp_path / "b" / "last")


def test_stopping_inside_the_first_epoch_still_writes_best(tmp_path, corpus):
    result = train_language_model(corpus, tmp_path / "run", split=(0.1, 0), max_steps=2, **TINY)
    assert result.stopped == "max-steps" and result.best_epoch is None
    config = json.loads((tmp_path / "run" / "best" / "config.json").read_text())
    assert (config["epoch"], config["step"], config["partial"]) == (1, 2, True)
    assert math.isfinite(config["valid_loss"])
    assert_same_weights(tmp_path / "run" / "best", tmp_path / "run" / "last")
    # The stop is evaluated and recorded: a partial line in metrics.jsonl, and on the curve.
    records = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert records[-1]["partial"] is True and records[-1]["step"] == 2
    assert records[-1] == result.partial
    assert (tmp_path / "run" / "curve.png").read_bytes()[:4] == b"\x89PNG"


def test_recorded_validation_is_what_evaluate_gives(tmp_path, corpus):
    valid = tmp_path / "valid.txt"
    valid.write_text("".join(corpus.read_text().splitlines(keepends=True)[:15]))
    result = train_language_model(corpus, tmp_path / "run", valid=str(valid), epochs=1, **TINY)
    lm = LM.load(tmp_path / "run")
    assert lm.eval_batch_size == TINY["eval_batch_size"]
    figures = lm.evaluate(valid)  # every token once, read as validation reads it
    assert figures["tokens"] == len(lm.pipeline.encode(valid.read_text().splitlines(), lm.vocab))
    assert figures["loss"] == pytest.approx(result.history[0]["valid_loss"], rel=1e-9)
    assert figures["perplexity"] == pytest.approx(result.history[0]["valid_ppl"], rel=1e-9)


def test_cli_trains_a_tiny_model_end_to_end(tmp_path, corpus, capsys):
    out = tmp_path / "model"
    code = main(["train", str(corpus), "--split", "0.1", "0.1", "--level", "char",
                 "--hidden-size", "16", "--layers", "1", "--optimizer", "adam", "--epochs", "2",
                 "--batch-size", "8", "--bptt", "10", "--no-progress", "--threads", "1",
                 "-o", str(out)])
    assert code == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines() if x.startswith("{")]
    assert [r["epoch"] for r in lines[:2]] == [1, 2] and "test_bpc" in lines[2]
    assert (out / "metrics.jsonl").read_text().count("\n") == 3
    assert (out / "curve.png").read_bytes()[:4] == b"\x89PNG"
    lm = LM.load(out / "best")
    assert lm.pipeline.level == "char" and lm.pipeline.mode == "stream" and "\n" in lm.vocab
    with pytest.raises(SystemExit):
        main(["train", str(corpus), "--cell", "nope", "-o", str(out)])
    assert main(["train", str(tmp_path / "missing.txt"), "-o", str(out / "x")]) == 2


KILL_ARGS = ["--split", "0.1", "0", "--hidden-size", "12", "--layers", "1", "--batch-size", "4",
             "--bptt", "5", "--epochs", "2", "--optimizer", "adam", "--dropout", "0.2",
             "--threads", "1", "--no-progress", "--quiet"]


@pytest.fixture(scope="module")
def uninterrupted(corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("straight") / "a"
    assert main(["train", str(corpus), *KILL_ARGS, "-o", str(out)]) == 0
    return out


def signal_at_step(monkeypatch, step: int, *signals: int):
    """Send this process `signals` during training step `step` (from its loss computation)."""
    real = model_module.sequence_loss
    calls = {"n": 0}

    def loss(logits, targets):
        calls["n"] += 1
        if calls["n"] == step:
            for sig in signals:
                os.kill(os.getpid(), sig)
        return real(logits, targets)

    monkeypatch.setattr(model_module, "sequence_loss", loss)
    return real


def test_ctrl_c_saves_exits_130_and_resumes_to_the_same_weights(tmp_path, corpus, uninterrupted,
                                                                monkeypatch, capsys):
    real = signal_at_step(monkeypatch, 8, signal.SIGINT)
    out = tmp_path / "b"
    assert main(["train", str(corpus), *KILL_ARGS[:-1], "-o", str(out)]) == 130
    err = capsys.readouterr().err
    assert f"interrupted: checkpoint saved in {out / 'last'}; continue with: rnnlab train -o" in err
    assert err.rstrip().endswith("--resume")
    state = json.loads((out / "last" / "training.json").read_text())
    assert state["global_step"] == 8  # the step under way finished, then training stopped
    monkeypatch.setattr(model_module, "sequence_loss", real)
    assert main(["train", "-o", str(out), "--resume", "--quiet", "--no-progress"]) == 0
    assert_same_weights(uninterrupted / "last", out / "last")


def test_a_report_that_returns_true_stops_the_run_as_ctrl_c_does(tmp_path, corpus):
    settings = dict(split=(0.1, 0), optimizer="adam", dropout=0.3, epochs=2, seed=3, **TINY)
    straight = train_language_model(corpus, tmp_path / "a", **settings)
    steps = []

    def report(kind, data):
        steps.extend([1] if kind == "step" else [])
        return len(steps) >= 8

    stopped = train_language_model(corpus, tmp_path / "b", report=report, **settings)
    assert stopped.stopped == "interrupted" and stopped.history == []
    state = json.loads((tmp_path / "b" / "last" / "training.json").read_text())
    assert state["global_step"] == 8  # the step under way finished, then training stopped
    resumed = train_language_model(None, tmp_path / "b", resume=True)
    assert resumed.stopped == straight.stopped == "done"
    assert_same_weights(tmp_path / "a" / "last", tmp_path / "b" / "last")


def test_kill_9_then_resume_gives_the_same_weights(tmp_path, corpus, uninterrupted):
    proc = subprocess.Popen([sys.executable, "-m", "rnnlab", "train", str(corpus), *KILL_ARGS,
                             "--checkpoint-every", "1", "-o", str(tmp_path / "b")])
    state_file = tmp_path / "b" / "last" / "training.json"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        try:
            if json.loads(state_file.read_text())["global_step"] >= 8:
                break
        except (FileNotFoundError, json.JSONDecodeError):
            pass
        time.sleep(0.02)
    if proc.poll() is not None:
        pytest.skip("the subprocess finished before it could be stopped")
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL
    assert main(["train", "-o", str(tmp_path / "b"), "--resume", "--quiet", "--no-progress"]) == 0
    assert_same_weights(uninterrupted / "last", tmp_path / "b" / "last")


def test_sigterm_saves_like_ctrl_c(tmp_path, corpus, uninterrupted, monkeypatch, capsys):
    real = signal_at_step(monkeypatch, 5, signal.SIGTERM)
    out = tmp_path / "b"
    assert main(["train", str(corpus), *KILL_ARGS, "-o", str(out)]) == 130
    assert json.loads((out / "last" / "training.json").read_text())["global_step"] == 5
    monkeypatch.setattr(model_module, "sequence_loss", real)
    assert main(["train", "-o", str(out), "--resume", "--quiet", "--no-progress"]) == 0
    assert_same_weights(uninterrupted / "last", out / "last")


def test_checkpoint_every_minutes_saves_when_due(tmp_path, corpus, monkeypatch):
    saves = []
    real = trainer_module.Trainer.save_last

    def counting(self):
        saves.append(self.p.global_step)
        real(self)

    monkeypatch.setattr(trainer_module.Trainer, "save_last", counting)
    train_language_model(corpus, tmp_path / "m", epochs=1, max_steps=6,
                         checkpoint_minutes=1e-9, **TINY)
    assert saves == [1, 2, 3, 4, 5, 6]  # every step is past due; the last is the stop's save
    saves.clear()
    train_language_model(corpus, tmp_path / "n", epochs=1, max_steps=6, checkpoint_minutes=60,
                         **TINY)
    assert saves == [6]


def test_checkpoint_every_takes_steps_or_minutes(tmp_path, corpus, monkeypatch, capsys):
    got = {}
    monkeypatch.setattr(train_module, "train_language_model",
                        lambda train, out, resume, **settings: got.update(settings) or 1 / 0)
    for value, expected in (("7", ("checkpoint_every", 7)), ("2.5m", ("checkpoint_minutes", 2.5)),
                            ("10min", ("checkpoint_minutes", 10.0))):
        got.clear()
        with pytest.raises(ZeroDivisionError):
            main(["train", str(corpus), "--checkpoint-every", value, "-o", str(tmp_path / "x")])
        assert got[expected[0]] == expected[1]
    for bad in ("0", "-3m", "soon"):
        with pytest.raises(SystemExit):
            main(["train", str(corpus), "--checkpoint-every", bad, "-o", str(tmp_path / "x")])
    assert "give steps (500) or minutes (10m)" in capsys.readouterr().err


@pytest.mark.skipif(not bf16_on_cpu(), reason="this CPU has no bfloat16 kernels")
def test_bf16_autocast_trains_on_cpu_with_a_float32_loss(tmp_path, corpus, monkeypatch):
    seen = []
    real = model_module.sequence_loss
    monkeypatch.setattr(model_module, "sequence_loss",
                        lambda logits, targets: seen.append(logits.dtype) or real(logits, targets))
    for cell in ("lstm", "gru", "peephole"):
        result = train_language_model(corpus, None, split=(0.1, 0), epochs=2, optimizer="adam",
                                      lr=0.02, precision="bf16", cell=cell, **TINY)
        assert math.isfinite(result.history[-1]["valid_loss"])
        assert result.history[-1]["train_loss"] < math.log(len(result.lm.vocab))
        assert all(p.dtype == torch.float32 for p in result.lm.model.parameters())
    assert seen and set(seen) == {torch.float32}
    with pytest.raises(RnnlabError, match="precision must be one of"):
        train_language_model(corpus, None, precision="fp8", **TINY)


def test_bf16_on_a_cpu_without_it_is_one_line(tmp_path, corpus, capsys, monkeypatch):
    monkeypatch.setattr(device_module, "bf16_on_cpu", lambda: False)
    assert main(["train", str(corpus), "--precision", "bf16", "-o", str(tmp_path / "m")]) == 2
    err = capsys.readouterr().err
    assert "no bfloat16 instructions" in err and err.count("\n") == 1
    assert not (tmp_path / "m" / "metrics.jsonl").exists()


@pytest.mark.skipif(not bf16_on_cpu(), reason="this CPU has no bfloat16 kernels")
def test_bf16_autocast_trains_the_adaptive_decoder(corpus):
    result = train_language_model(corpus, None, split=(0.1, 0), epochs=2, optimizer="adam",
                                  lr=0.02, precision="bf16", cell="gru", decoder="adaptive",
                                  **TINY)
    losses = [r["valid_loss"] for r in result.history]
    assert losses[1] < losses[0] < math.log(len(result.lm.vocab))
    assert all(p.dtype == torch.float32 for p in result.lm.model.parameters())


def test_a_device_that_is_not_there_is_one_line(tmp_path, corpus, capsys):
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    assert main(["train", str(corpus), "--device", "cuda", "-o", str(tmp_path / "m")]) == 2
    err = capsys.readouterr().err
    assert "CUDA" in err and "Traceback" not in err and err.count("\n") == 1
    assert not (tmp_path / "m").exists()


def test_sigterm_after_ctrl_c_does_not_abort_the_save(tmp_path, corpus, monkeypatch):
    # torchrun's workers see the terminal's Ctrl-C, then the launcher's SIGTERM
    signal_at_step(monkeypatch, 5, signal.SIGINT, signal.SIGTERM)
    out = tmp_path / "b"
    assert main(["train", str(corpus), *KILL_ARGS, "-o", str(out)]) == 130
    assert json.loads((out / "last" / "training.json").read_text())["global_step"] == 5


# -- AWD-LSTM's schedule: variable BPTT, NT-ASGD, fine-tuning --------------------------------


def spy_on_sgd(monkeypatch):
    """Record every SGD step's learning rate and the weights after it."""
    seen = {"lr": [], "weights": []}
    real = torch.optim.SGD.step

    def step(self, *args, **kwargs):
        seen["lr"].append(self.param_groups[0]["lr"])
        out = real(self, *args, **kwargs)
        seen["weights"].append([p.detach().clone() for g in self.param_groups for p in g["params"]])
        return out

    monkeypatch.setattr(torch.optim.SGD, "step", step)
    return seen


def block_lengths(monkeypatch):
    """Record the length of every training block (from the loss computation)."""
    lengths, real = [], model_module.sequence_loss

    def loss(logits, targets):
        lengths.append(targets.shape[0])
        return real(logits, targets)

    monkeypatch.setattr(model_module, "sequence_loss", loss)
    return lengths


@pytest.mark.parametrize("loss", ["mean", "sum"])
def test_variable_bptt_scales_each_steps_lr_by_its_length(tmp_path, corpus, monkeypatch, loss):
    seen, lengths = spy_on_sgd(monkeypatch), block_lengths(monkeypatch)
    settings = dict(TINY, bptt=8, epochs=2, lr=0.5, loss=loss, schedule="constant")
    result = train_language_model(corpus, None, variable_bptt=True, **settings)
    assert len(set(lengths)) > 3 and len(seen["lr"]) == len(lengths) == result.history[-1]["step"]
    # A summed loss already weighs a block by its length: the lr stays as it is.
    expected = [0.5 * n / 8 if loss == "mean" else 0.5 for n in lengths]
    assert seen["lr"] == pytest.approx(expected, rel=1e-12)
    assert result.history[0]["step"] != result.history[1]["step"] - result.history[0]["step"]


def scripted_validation(monkeypatch, losses: dict[int, float]):
    """Validation losses by epoch (the test text keeps its real loss); the weights each
    validation saw, by epoch."""
    seen, real = {}, trainer_module.Trainer.evaluate

    def evaluate(self, encoded):
        if encoded is not self.data.valid:
            return real(self, encoded)
        seen[self.p.epoch] = [p.detach().clone() for p in self.model.parameters()]
        return trainer_module.metrics(losses[self.p.epoch], self.s.level)

    monkeypatch.setattr(trainer_module.Trainer, "evaluate", evaluate)
    return seen


def test_nt_asgd_switches_at_the_stalled_check_and_evaluates_the_average(tmp_path, corpus,
                                                                         monkeypatch):
    # Epoch 3's 2.5 is worse than epoch 1's 2.0 (more than nonmono=1 checks before): switch.
    evaluated = scripted_validation(monkeypatch, {1: 2.0, 2: 1.9, 3: 2.5, 4: 1.0, 5: 1.5})
    seen = spy_on_sgd(monkeypatch)
    result = train_language_model(corpus, tmp_path / "m", split=(0.1, 0.1), asgd=True, nonmono=1,
                                  epochs=5, **dict(TINY, lr=0.5))
    h = result.history
    assert [("asgd_from_step" in r, r.get("averaged", False)) for r in h] == [
        (False, False), (False, False), (True, False), (False, True), (False, True)]
    switch, end4, end5 = h[2]["step"], h[3]["step"], h[4]["step"]
    assert h[2]["asgd_from_step"] == switch
    mean4 = [torch.stack(ws).mean(0) for ws in zip(*seen["weights"][switch:end4])]
    mean5 = [torch.stack(ws).mean(0) for ws in zip(*seen["weights"][switch:end5])]
    for got, want in zip(evaluated[4], mean4):
        assert torch.allclose(got, want, atol=1e-6)
    # best/ is epoch 4's average, and the test scores it; last/ keeps raw weights and average.
    assert result.best_epoch == 4
    best = LM.load(tmp_path / "m" / "best").model
    for got, want in zip(best.parameters(), mean4):
        assert torch.allclose(got, want, atol=1e-6)
    state = json.loads((tmp_path / "m" / "last" / "training.json").read_text())
    assert state["average"] == {"since": switch, "count": end5 - switch}
    saved = load_file(str(tmp_path / "m" / "last" / "training.safetensors"))
    last = LM.load(tmp_path / "m" / "last").model.named_parameters()
    for (name, got), want, raw in zip(last, mean5, seen["weights"][-1]):
        assert torch.allclose(saved["average." + name], want, atol=1e-6)
        assert torch.equal(got, raw)


def test_variable_bptt_asgd_and_finetune_resume_exactly(tmp_path, corpus, monkeypatch):
    # Switch at epoch 3 (as above), average in epoch 4, fine-tune in epoch 5 from epoch 4's best.
    scripted_validation(monkeypatch, {1: 2.0, 2: 1.9, 3: 2.5, 4: 1.0, 5: 0.9})
    argv = ["train", str(corpus), *KILL_ARGS[:-2], "--optimizer", "sgd", "--lr", "0.5", "--epochs", "4",
            "--variable-bptt", "--asgd", "--nonmono", "1", "--finetune", "1", "--quiet",
            "--no-progress"]
    assert main([*argv, "-o", str(tmp_path / "a")]) == 0
    history = [json.loads(x) for x in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    assert [r.get("phase") for r in history[:5]] == [None] * 4 + ["finetune"]
    assert "asgd_from_step" in history[2] and history[4]["averaged"]
    ends = [r["step"] for r in history[:5]]
    # Stopped inside the averaged epoch 4, then inside the fine-tuning epoch 5, then to the end.
    resume = ["train", "-o", str(tmp_path / "b"), "--resume", "--quiet", "--no-progress"]
    for command, stop, since, phase in (
            ([*argv, "-o", str(tmp_path / "b")], ends[2] + 3, ends[2], "train"),
            (resume, ends[3] + 2, ends[3], "finetune")):
        assert main([*command, "--max-steps", str(stop)]) == 0
        state = json.loads((tmp_path / "b" / "last" / "training.json").read_text())
        assert (state["global_step"], state["average"]["since"], state["phase"]) == (
            stop, since, phase)
    assert main(resume) == 0
    for folder in ("last", "best"):
        assert_same_weights(tmp_path / "a" / folder, tmp_path / "b" / folder)
    average = {k: v for k, v in load_file(str(tmp_path / "b" / "last" / "training.safetensors")).items()
               if k.startswith("average.")}
    straight = load_file(str(tmp_path / "a" / "last" / "training.safetensors"))
    assert average and all(torch.equal(v, straight[k]) for k, v in average.items())

    def timeless(records):
        return [{k: v for k, v in r.items() if k not in ("seconds", "tokens_per_s")}
                for r in records if not r.get("partial")]

    resumed = [json.loads(x) for x in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()]
    assert timeless(resumed) == timeless(history)


def test_recipe_awd_on_the_command_line_with_explicit_overrides(tmp_path, corpus, capsys):
    out = tmp_path / "awd"
    assert main(["train", str(corpus), "--split", "0.1", "0.1", "--recipe", "awd", "--hidden-size",
                 "12", "--layers", "1", "--batch-size", "4", "--bptt", "6", "--lr", "3",
                 "--no-variable-bptt", "--epochs", "1", "--threads", "1", "--quiet",
                 "--no-progress", "-o", str(out)]) == 0
    settings = json.loads((out / "last" / "training.json").read_text())["settings"]
    assert {k: settings[k] for k in ("batch_size", "bptt", "lr", "variable_bptt", "hidden_size")} == {
        "batch_size": 4, "bptt": 6, "lr": 3.0, "variable_bptt": False, "hidden_size": 12}
    assert {k: settings[k] for k in ("clip", "loss", "schedule", "asgd", "nonmono", "weight_decay",
                                     "recipe")} == {
        "clip": 0.25, "loss": "mean", "schedule": "constant", "asgd": True, "nonmono": 5,
        "weight_decay": 1.2e-6, "recipe": "awd"}
    for folder in ("best", "last"):
        recorded = json.loads((out / folder / "config.json").read_text())["recipe"]
        assert recorded["name"] == "awd" and recorded["settings"]["batch_size"] == 4
        assert recorded["settings"]["variable_bptt"] is False and recorded["settings"]["lr"] == 3.0
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    help_text = "".join(capsys.readouterr().out.split())  # however the terminal wraps it
    assert "awd:optimizer=sgd,lr=30.0,loss=mean" in help_text
    assert "(off;AWD-LSTM:on)" in help_text and "(5;AWD-LSTM:5)" in help_text


def test_a_finished_run_is_fine_tuned_on_resume_from_its_best_weights(tmp_path, corpus,
                                                                      monkeypatch):
    scripted_validation(monkeypatch, {1: 2.0, 2: 2.2, 3: 1.0})
    first = train_language_model(corpus, tmp_path / "m", split=(0.1, 0), epochs=2, **TINY)
    assert first.stopped == "done" and first.best_epoch == 1
    best = LM.load(tmp_path / "m" / "best").model.state_dict()
    last = LM.load(tmp_path / "m" / "last").model.state_dict()
    started, real = {}, trainer_module.Trainer.start_finetune

    def start_finetune(self):
        real(self)
        started.update({k: v.clone() for k, v in self.model.state_dict().items()})

    monkeypatch.setattr(trainer_module.Trainer, "start_finetune", start_finetune)
    tuned = train_language_model(corpus, tmp_path / "m", resume=True, finetune=1)
    assert [r.get("phase") for r in tuned.history] == [None, None, "finetune"]
    assert tuned.best_epoch == 3 and tuned.history[2]["averaged"]
    # Fine-tuning began from epoch 1's weights (the best), not from epoch 2's (the last).
    assert all(torch.equal(started[k], best[k]) for k in best)
    assert not torch.equal(started["embedding.weight"], last["embedding.weight"])
