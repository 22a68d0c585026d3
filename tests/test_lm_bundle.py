"""One way through the code: the text pipeline, the LM bundle and the one evaluation."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from rnnlab.cli import main
from rnnlab.lm import LM, LanguageModel, TextPipeline, train_language_model
from rnnlab.lm.evaluation import loss_sums, stream_columns
from rnnlab.text.vocab import Vocabulary

WORDS = "the cat sat on a mat and dog ran to house".split()
TINY = dict(hidden_size=12, layers=1, batch_size=4, bptt=5, eval_batch_size=3, threads=1)


@pytest.fixture(scope="module")
def texts(tmp_path_factory):
    rng = np.random.default_rng(0)
    folder = tmp_path_factory.mktemp("texts")
    for name, n in (("train", 150), ("valid", 23)):
        lines = [" ".join(rng.choice(WORDS, size=rng.integers(2, 9))) for _ in range(n)]
        (folder / f"{name}.txt").write_text("\n".join(lines) + "\n")
    return folder


# -- the text pipeline ------------------------------------------------------------------------


def test_pipeline_encodes_and_decodes_each_level():
    vocab = Vocabulary(["<unk>", "</s>", "the", "cat"], specials=("<unk>", "</s>"))
    words = TextPipeline("word", "stream")
    assert words.encode(["the cat", "", "cat"], vocab) == [2, 3, 1, 3, 1]
    assert words.decode(["the", "cat", "</s>", "cat"]) == "the cat\ncat"
    assert "".join(words.pieces(["cat", "</s>"], after="the")) == " cat\n"
    assert words.encode_prompt("the zebra", vocab) == ([2, 0], ["zebra"])
    assert words.start_ids(vocab) == [1]
    assert TextPipeline("char", "stream").decode(list("ab\nc")) == "ab\nc"
    assert TextPipeline("segmented", "stream").decode(["我", "爱", "</s>"]) == "我 爱\n"
    assert TextPipeline("jieba", "stream").decode(["我", "爱", "北京"]) == "我爱北京"
    sentence = TextPipeline("word", "sentence", lower=True)
    assert list(sentence.token_lines(["The Cat"])) == [["<s>", "the", "cat", "</s>"]]
    assert sentence.start_token == "<s>" and sentence.specials == ("<unk>", "<s>", "</s>")


def test_pipeline_round_trips_through_config():
    pipeline = TextPipeline("char", "sentence", True)
    assert TextPipeline.from_config(json.loads(json.dumps(pipeline.to_config()))) == pipeline


# -- the one evaluation -----------------------------------------------------------------------


def test_stream_columns_predict_every_token_once():
    ids = list(range(100, 123))
    for columns in (1, 2, 5, 22, 40):
        x, y = stream_columns(ids, columns)
        targets = sorted(int(t) for t in y.flatten() if t >= 0)
        assert targets == ids[1:]
        # each target's input is the token just before it
        pairs = {(int(a), int(b)) for a, b in zip(x.flatten(), y.flatten()) if b >= 0}
        assert pairs == set(zip(ids[:-1], ids[1:]))


def test_one_column_is_the_exact_probability_of_the_text():
    torch.manual_seed(0)
    model = LanguageModel(7, 6, 6, 1).eval()
    ids = [1, 2, 3, 4, 5, 6, 2, 3]
    total, count = loss_sums(model, ids[1:], "stream", ids[:1], columns=1)
    with torch.no_grad():
        logits, _ = model(torch.tensor(ids[:-1]).view(-1, 1))
    exact = -torch.log_softmax(logits[:, 0].double(), -1)[torch.arange(7), torch.tensor(ids[1:])]
    assert count == 7 and total == pytest.approx(float(exact.sum()), rel=1e-6)


@pytest.mark.parametrize("mode", ["stream", "sentence"])
def test_recorded_validation_is_what_evaluate_prints(texts, tmp_path, capsys, mode):
    """The validation perplexity a run records is exactly what `rnnlab evaluate` gives."""
    run = tmp_path / "run"
    args = ["train", texts / "train.txt", "--valid", texts / "valid.txt", "-o", run, "--mode", mode,
            "--epochs", "2", "--hidden-size", "12", "--layers", "1", "--batch-size", "4",
            "--bptt", "5", "--eval-batch-size", "3", "--threads", "1", "--quiet"]
    assert main([str(a) for a in args]) == 0
    records = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    best = min(records, key=lambda r: r["valid_loss"])
    capsys.readouterr()
    assert main(["evaluate", str(run), str(texts / "valid.txt"), "--json", "--quiet"]) == 0
    measured = json.loads(capsys.readouterr().out)
    assert measured["perplexity"] == pytest.approx(best["valid_ppl"], rel=1e-9)
    assert measured["loss"] == pytest.approx(best["valid_loss"], rel=1e-9)
    lines = (texts / "valid.txt").read_text().splitlines()
    assert measured["tokens"] == sum(len(line.split()) + 1 for line in lines)  # words and </s>
    assert main(["evaluate", str(run), str(texts / "valid.txt"), "--quiet"]) == 0
    assert f"perplexity {best['valid_ppl']:.2f}" in capsys.readouterr().out


# -- the bundle -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained(texts, tmp_path_factory):
    run = tmp_path_factory.mktemp("bundle") / "run"
    train_language_model(texts / "train.txt", run, valid=str(texts / "valid.txt"), epochs=1,
                         **TINY)
    return run


def test_load_takes_a_model_folder_or_a_run_folder(trained):
    from_run, from_best = LM.load(trained), LM.load(trained / "best")
    assert from_run.vocab.itos == from_best.vocab.itos
    assert from_run.pipeline == from_best.pipeline == TextPipeline("word", "stream")
    assert from_run.eval_batch_size == 3
    for name, tensor in from_run.model.state_dict().items():
        assert torch.equal(tensor, from_best.model.state_dict()[name]), name


def test_score_evaluate_and_generate_agree(trained, texts):
    lm = LM.load(trained)
    sentence = "the cat sat on a mat"
    scored = lm.score(sentence)
    assert [r.token for r in scored.rows] == [*sentence.split(), "</s>"]
    one_line = lm.evaluate([sentence], batch_size=1)
    assert one_line["tokens"] == 7
    assert one_line["loss"] == pytest.approx(-scored.logprob / 7, rel=1e-6)
    tokens = list(lm.generate("the cat", length=12, seed=3))
    assert tokens == list(lm.generate("the cat", length=12, seed=3)) and len(tokens) == 12
    text = "".join(lm.write("the cat", length=12, seed=3))
    assert text == lm.pipeline.decode(["cat", *tokens])[len("cat"):]


def test_step_continues_the_sequence(trained):
    lm = LM.load(trained)
    ids = lm.pipeline.start_ids(lm.vocab) + lm.pipeline.encode_prompt("the cat sat", lm.vocab)[0]
    state, logits = None, None
    for token in ids:
        logits, state = lm.step(token, state)
    with torch.no_grad():
        full, _ = lm.model(torch.tensor(ids).view(-1, 1))
    assert torch.allclose(logits, full[-1, 0], atol=1e-5)


@pytest.mark.parametrize("cell,names", [("lstm", {"h", "C", "i", "f", "o"}), ("gru", {"h", "z", "r"}),
                                        ("rnn", {"h"})])
def test_activations_hold_every_layer_state_and_gate(cell, names):
    torch.manual_seed(0)
    vocab = Vocabulary(["<unk>", "</s>", "the", "cat"], specials=("<unk>", "</s>"))
    lm = LM(LanguageModel(4, 5, 6, 2, cell=cell), vocab, TextPipeline())
    acts = lm.activations("the cat the")
    assert acts.tokens == ["</s>", "the", "cat", "the"]
    assert len(acts.layers) == 2
    for layer in acts.layers:
        assert set(layer) == names
        assert all(a.shape == (4, 6) for a in layer.values())
    # the last h of the top layer is what the model's own forward pass gives
    with torch.no_grad():
        out, state = lm.model.rnn(lm.model.embedding(torch.tensor([1, 2, 3, 2]).view(-1, 1)))
    assert np.allclose(acts.layers[1]["h"], out[:, 0].numpy(), atol=1e-5)
    gates = [v for k, v in acts.layers[0].items() if k not in ("h", "C")]
    assert all(((g > 0) & (g < 1)).all() for g in gates)


# -- the trainer reports, the library never prints --------------------------------------------


def test_training_reports_through_the_callback_and_prints_nothing(texts, tmp_path, capsys):
    heard = []
    result = train_language_model(texts / "train.txt", tmp_path / "run", valid=str(texts / "valid.txt"),
                                  epochs=1, max_steps=5, report=lambda k, d: heard.append((k, d)),
                                  **TINY)
    out, err = capsys.readouterr()
    assert out == "" and err == ""
    kinds = [k for k, _ in heard]
    assert kinds[0] == "epoch_start" and kinds.count("step") == 5 and "epoch_end" in kinds
    (stop,) = [d for k, d in heard if k == "metrics"]
    assert stop["partial"] and stop["step"] == 5 and math.isfinite(stop["valid_ppl"])
    assert result.stopped == "max-steps" and result.partial == stop
    # a stop inside an epoch is evaluated and recorded, with a curve
    assert json.loads((tmp_path / "run" / "metrics.jsonl").read_text()) == stop
    assert (tmp_path / "run" / "curve.png").is_file()


def test_vectors_choose_the_sizes(texts, tmp_path):
    rng = np.random.default_rng(1)
    lines = [f"{w} " + " ".join(f"{v:.4f}" for v in rng.normal(size=16)) for w in WORDS]
    (tmp_path / "v.txt").write_text(f"{len(WORDS)} 16\n" + "\n".join(lines) + "\n")
    result = train_language_model(texts / "train.txt", None, vectors=str(tmp_path / "v.txt"),
                                  epochs=1, max_steps=2, layers=1, batch_size=4, bptt=5)
    config = result.lm.model.config
    assert config["embed_size"] == config["hidden_size"] == 16
    assert result.lm.model.projection is None  # the tied decoder needs none


def test_a_resumed_epoch_counts_all_its_seconds(texts, tmp_path):
    """Stopped after most of an epoch, resumed for its last steps: the epoch's time is both."""
    run = tmp_path / "run"
    train_language_model(texts / "train.txt", run, epochs=1, max_steps=40, **TINY)
    state = json.loads((run / "last" / "training.json").read_text())
    first = state["epoch_seconds"]
    assert state["step_in_epoch"] == 40 and first > 0
    result = train_language_model(None, run, resume=True)
    steps = result.history[-1]["step"]
    assert steps == 46  # the resumed part is 6 steps, far less time than the first 40
    assert result.history[-1]["seconds"] >= round(first, 1)
