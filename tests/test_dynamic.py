"""Dynamic evaluation: scores before steps, no leak, η = 0 is static, the model untouched."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rnnlab.cli import main
from rnnlab.errors import RnnlabError
from rnnlab.lm import LM, LanguageModel, TextPipeline
from rnnlab.lm.dynamic import Adapter, Dynamic, gradient_rms
from rnnlab.lm.evaluation import loss_sums
from rnnlab.text.vocab import Vocabulary

WORDS = "the cat sat on a mat and dog ran to house".split()


def tiny_lm(mode: str = "stream", cell: str = "lstm", seed: int = 0) -> LM:
    """An untrained two-layer model over WORDS (random weights: every token has a score)."""
    torch.manual_seed(seed)
    pipeline = TextPipeline("word", mode)
    vocab = Vocabulary(["<unk>", *pipeline.specials[1:], *WORDS], specials=pipeline.specials)
    return LM(LanguageModel(len(vocab), 8, 10, 2, cell=cell).eval(), vocab, pipeline)


def random_lines(seed: int, n: int = 12) -> list[str]:
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, size=rng.integers(2, 8))) for _ in range(n)]


def token_losses(lm: LM, lines: list[str], settings: Dynamic) -> torch.Tensor:
    """Each token's −log P under dynamic evaluation, in text order."""
    s = settings.resolved("word")
    encoded = lm.pipeline.encode(lines, lm.vocab)
    adapter, got = Adapter(lm.model, s), []
    loss_sums(adapter.model, encoded, lm.pipeline.mode, lm.pipeline.start_ids(lm.vocab), 1,
              block=s.bptt, learn=adapter, record=got.append)
    return torch.cat(got)


@pytest.mark.parametrize("mode", ["stream", "sentence"])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_changing_token_j_never_changes_an_earlier_score(mode, seed):
    lm = tiny_lm(mode, seed=seed)
    lines = random_lines(seed)
    before = token_losses(lm, lines, Dynamic(lr=0.5, bptt=3))
    # change one random word j (a different word) and rescore
    words = [line.split() for line in lines]
    rng = np.random.default_rng(seed)
    flat = [(k, i) for k, w in enumerate(words) for i in range(len(w))]
    k, i = flat[rng.integers(len(flat))]
    words[k][i] = next(w for w in WORDS if w != words[k][i])
    after = token_losses(lm, [" ".join(w) for w in words], Dynamic(lr=0.5, bptt=3))
    # position of token j among the targets: words before it, plus one end marker per line
    j = sum(len(w) + 1 for w in words[:k]) + i
    assert len(before) == len(after)
    assert torch.equal(before[:j], after[:j])
    assert not torch.equal(before[j:], after[j:])  # and the test can fail


@pytest.mark.parametrize("mode", ["stream", "sentence"])
def test_rate_zero_is_the_static_figure_exactly(mode):
    lm = tiny_lm(mode)
    lines = random_lines(4)
    r = lm.evaluate(lines, dynamic=Dynamic(lr=0.0, decay=0.5, bptt=4))
    assert r["dynamic"]["loss"] == r["loss"] and r["dynamic"]["tokens"] == r["tokens"]
    if mode == "stream":
        static = lm.evaluate(lines, batch_size=1)  # one column: the exact probability of the text
        assert r["tokens"] == static["tokens"] == 12 + sum(len(s.split()) for s in lines)
        assert r["loss"] == pytest.approx(static["loss"], rel=1e-12)


def test_adapting_lowers_the_loss_of_a_repetitive_text_and_leaves_the_model_alone(tmp_path):
    lm = tiny_lm()
    lm.save(tmp_path / "m")
    on_disk = (tmp_path / "m" / "model.safetensors").read_bytes()
    weights = {k: v.clone() for k, v in lm.model.state_dict().items()}
    lines = ["the cat sat on a mat"] * 30
    r = lm.evaluate(lines, dynamic=Dynamic(lr=0.5))
    assert r["dynamic"]["rule"] == "sgd" and r["dynamic"]["bptt"] == 5
    assert r["dynamic"]["perplexity"] < 0.8 * r["perplexity"]  # 9.5 against 13.0
    assert all(torch.equal(v, lm.model.state_dict()[k]) for k, v in weights.items())
    assert lm.model.decoder.weight is lm.model.embedding.weight  # the tie is kept too
    assert (tmp_path / "m" / "model.safetensors").read_bytes() == on_disk
    # The static loss is plain evaluation's, to float32 sums in another order.
    assert lm.evaluate(lines, batch_size=1)["loss"] == pytest.approx(r["loss"], rel=1e-6)


def segment_grads(model, x, y) -> list[torch.Tensor]:
    logits, _ = model(x)
    loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), y.flatten())
    return list(torch.autograd.grad(loss, list(model.parameters())))


def test_sgd_steps_are_the_formula():
    """θ ← θ − η∇L + λ(θ0 − θ): the first step from θ0 is θ0 − η∇L; the second pulls back."""
    lm = tiny_lm(cell="gru")
    x, y = torch.tensor([[2], [3], [4]]), torch.tensor([[3], [4], [5]])
    adapter = Adapter(lm.model, Dynamic(lr=0.3, decay=0.1).resolved("word"))
    start = [p.detach().clone() for p in lm.model.parameters()]
    grads = segment_grads(lm.model, x, y)
    adapter(x, y, None, None)
    one = [p.detach().clone() for p in adapter.model.parameters()]
    for p0, p, g in zip(start, one, grads):
        assert torch.allclose(p, p0 - 0.3 * g, atol=1e-7)
    grads = segment_grads(adapter.model, x, y)
    adapter(x, y, None, None)
    for p0, p1, p, g in zip(start, one, adapter.model.parameters(), grads):
        assert torch.allclose(p, p1 - 0.3 * g + 0.1 * (p0 - p1), atol=1e-6)
    assert max(float((0.1 * (p0 - p1)).abs().max()) for p0, p1 in zip(start, one)) > 1e-3


def test_rms_rule_uses_the_gradient_statistics():
    lm = tiny_lm()
    encoded = lm.pipeline.encode(random_lines(5, 40), lm.vocab)
    rms = gradient_rms(lm.model, encoded, "stream", lm.pipeline.start_ids(lm.vocab), 5)
    assert [r.shape for r in rms] == [p.shape for p in lm.model.parameters()]
    assert all((r >= 0).all() for r in rms) and sum(float(r.sum()) for r in rms) > 0
    s = Dynamic(lr=1e-3, decay=0.25, epsilon=1e-3, stats=[]).resolved("word")
    adapter = Adapter(lm.model, s, rms)
    mean = float(torch.cat([r.flatten() for r in rms]).mean())
    for pull, r in zip(adapter.pull, rms):  # λ times the decay rate clipped at 1/λ
        assert torch.allclose(pull, 0.25 * (r / mean).clamp(max=4.0))
    x, y = torch.tensor([[2], [3]]), torch.tensor([[3], [4]])
    grads = segment_grads(lm.model, x, y)
    adapter(x, y, None, None)
    for p0, p, g, r in zip(lm.model.parameters(), adapter.model.parameters(), grads, rms):
        assert torch.allclose(p, p0 - 1e-3 * g / (r + 1e-3), atol=1e-6)


def test_rms_evaluation_with_a_training_text(tmp_path):
    lm = tiny_lm()
    (tmp_path / "train.txt").write_text("\n".join(random_lines(6, 50)) + "\n")
    seen = []
    r = lm.evaluate(random_lines(7), dynamic=Dynamic(stats=tmp_path / "train.txt"),
                    progress=lambda done, total: seen.append((done, total)))
    assert (r["dynamic"]["rule"], r["dynamic"]["lr"], r["dynamic"]["decay"]) == ("rms", 5e-5, 0.002)
    assert seen[-1][0] == seen[-1][1]  # statistics and both passes, all counted
    assert r["dynamic"]["loss"] != r["loss"]


def test_statistics_computed_once_give_the_same_figures(tmp_path):
    lm = tiny_lm()
    (tmp_path / "train.txt").write_text("\n".join(random_lines(6, 50)) + "\n")
    seen = []
    rms = lm.gradient_rms(tmp_path / "train.txt", progress=lambda d, t: seen.append((d, t)))
    encoded = lm.pipeline.encode(random_lines(6, 50), lm.vocab)
    direct = gradient_rms(lm.model, encoded, "stream", lm.pipeline.start_ids(lm.vocab), 5)
    assert all(torch.equal(a, b) for a, b in zip(rms, direct)) and seen[-1][0] == seen[-1][1]
    text = random_lines(7)
    reread = lm.evaluate(text, dynamic=Dynamic(lr=3e-4, stats=tmp_path / "train.txt"))
    reused = lm.evaluate(text, dynamic=Dynamic(lr=3e-4, stats=rms))
    assert reused["dynamic"]["rule"] == "rms"
    assert reused["dynamic"]["loss"] == pytest.approx(reread["dynamic"]["loss"], abs=1e-12)
    with pytest.raises(RnnlabError, match="not this model's"):
        tiny_lm().evaluate(text, dynamic=Dynamic(stats=rms[:-1]))


@pytest.mark.parametrize("settings, needle", [
    (Dynamic(lr=-1), "--dynamic-lr"), (Dynamic(lr=float("nan")), "--dynamic-lr"),
    (Dynamic(decay=1.5), "--dynamic-decay"), (Dynamic(bptt=-2), "--dynamic-bptt"),
    (Dynamic(bptt=0), "--dynamic-bptt"),
])
def test_bad_settings(settings, needle):
    with pytest.raises(RnnlabError, match=needle):
        tiny_lm().evaluate(["the cat"], dynamic=settings)


def test_cli_prints_both_figures(tmp_path, capsys):
    lm = tiny_lm()
    lm.save(tmp_path / "m")
    (tmp_path / "t.txt").write_text("the cat sat on a mat\n" * 20)
    assert main(["evaluate", str(tmp_path / "m"), str(tmp_path / "t.txt"), "--dynamic",
                 "--dynamic-lr", "0.5", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "static (one column, segments of 5)" in out and "dynamic (SGD, η 0.5, λ 0" in out
    assert main(["evaluate", str(tmp_path / "m"), str(tmp_path / "t.txt"), "--dynamic",
                 "--dynamic-lr", "0.5", "--quiet", "--json"]) == 0
    import json

    r = json.loads(capsys.readouterr().out)
    assert r["dynamic"]["perplexity"] < r["perplexity"] and r["tokens"] == 140


def test_a_step_too_large_is_refused_with_a_hint_and_leaves_the_model_alone():
    lm = tiny_lm()
    before = [p.detach().clone() for p in lm.model.parameters()]
    with pytest.raises(RnnlabError, match=r"diverged at η 1e\+30 .*--dynamic-lr"):
        lm.evaluate(random_lines(7), dynamic=Dynamic(lr=1e30))
    assert all(torch.equal(a, b) for a, b in zip(before, lm.model.parameters()))
    assert lm.evaluate(random_lines(7), dynamic=Dynamic(lr=1e-3))["dynamic"]["loss"] < 10
