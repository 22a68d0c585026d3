"""The neural cache: the formula by a slow loop, no leak, λ = 0 is static, the CLI."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from rnnlab.cli import main
from rnnlab.errors import RnnlabError
from rnnlab.lm import LM, LanguageModel, TextPipeline
from rnnlab.lm.cache import Cache, Cached
from rnnlab.lm.dynamic import Dynamic
from rnnlab.lm.evaluation import loss_sums
from rnnlab.text.vocab import Vocabulary

WORDS = "the cat sat on a mat and dog ran to house".split()


def tiny_lm(mode: str = "stream", seed: int = 0) -> LM:
    """An untrained model over WORDS whose hidden size (10) differs from its embedding's (8)."""
    torch.manual_seed(seed)
    pipeline = TextPipeline("word", mode)
    vocab = Vocabulary(["<unk>", *pipeline.specials[1:], *WORDS], specials=pipeline.specials)
    return LM(LanguageModel(len(vocab), 8, 10, 2).eval(), vocab, pipeline)


def random_lines(seed: int, n: int = 12) -> list[str]:
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, size=rng.integers(2, 8))) for _ in range(n)]


def cached_losses(lm: LM, lines: list[str], cache: Cache, block: int) -> torch.Tensor:
    """Each token's −log P with the cache, in text order, read in blocks of `block`."""
    got = []
    loss_sums(Cached(lm.model, cache), lm.pipeline.encode(lines, lm.vocab), "stream",
              lm.pipeline.start_ids(lm.vocab), 1, block=block, record=got.append)
    return torch.cat(got)


def test_the_formula_by_a_slow_loop():
    """p = (1 − λ) p_model + λ Σ_{i in the last `size` steps before t} softmax(θ h_t·h_i) [x_{i+1} = w]."""
    lm = tiny_lm()
    ids = lm.pipeline.start_ids(lm.vocab) + lm.pipeline.encode(random_lines(1), lm.vocab)
    x = torch.tensor(ids[:-1]).view(-1, 1)
    with torch.no_grad():
        h, _ = lm.model.rnn(lm.model.embedding(x))
        logits, _ = lm.model(x)
    h, p_model = h[:, 0].double(), torch.softmax(logits[:, 0].double(), -1)
    size, theta, lam = 4, 0.7, 0.3
    expected = []
    for t in range(len(ids) - 1):
        p = p_model[t].clone()
        window = range(max(0, t - size), t)
        if t > 0:
            attn = torch.softmax(theta * torch.stack([h[t] @ h[i] for i in window]), 0)
            p_cache = torch.zeros_like(p)
            for a, i in zip(attn, window):
                p_cache[ids[i + 1]] += a
            p = (1 - lam) * p + lam * p_cache
        expected.append(-math.log(p[ids[t + 1]]))
    for block in (3, 256):  # the history carried across blocks, or one block
        got = cached_losses(lm, random_lines(1), Cache(size, theta, lam), block)
        assert got.double().numpy() == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_changing_token_j_never_changes_an_earlier_score(seed):
    lm = tiny_lm(seed=seed)
    lines = random_lines(seed)
    before = cached_losses(lm, lines, Cache(5, 2.0, 0.5), 4)
    words = [line.split() for line in lines]
    flat = [(k, i) for k, w in enumerate(words) for i in range(len(w))]
    k, i = flat[np.random.default_rng(seed).integers(len(flat))]
    words[k][i] = next(w for w in WORDS if w != words[k][i])
    after = cached_losses(lm, [" ".join(w) for w in words], Cache(5, 2.0, 0.5), 4)
    j = sum(len(w) + 1 for w in words[:k]) + i  # targets before j: words and end markers
    assert torch.equal(before[:j], after[:j])
    assert not torch.equal(before[j:], after[j:])


def test_lambda_zero_is_static_and_a_cache_helps_a_repetitive_text(tmp_path):
    lm = tiny_lm()
    lines = random_lines(4)
    r = lm.evaluate(lines, cache=Cache(100, 1.0, 0.0))
    assert r["cache"]["loss"] == pytest.approx(r["loss"], rel=1e-6)
    assert r["loss"] == pytest.approx(lm.evaluate(lines, batch_size=1)["loss"], rel=1e-12)
    weights = {k: v.clone() for k, v in lm.model.state_dict().items()}
    r = lm.evaluate(["the cat sat on a mat"] * 30, cache=Cache(50, 5.0, 0.5))
    assert r["cache"]["perplexity"] < 0.8 * r["perplexity"]  # 9.7 against 13.0, untrained
    assert (r["cache"]["size"], r["cache"]["theta"], r["cache"]["lambda"]) == (50, 5.0, 0.5)
    assert all(torch.equal(v, lm.model.state_dict()[k]) for k, v in weights.items())
    assert not lm.model.rnn._forward_hooks  # the hook that read h is gone
    assert not lm.model.training  # left in evaluation mode, as it was


def test_refused_settings():
    with pytest.raises(RnnlabError, match="reads a stream"):
        tiny_lm("sentence").evaluate(["the cat"], cache=Cache())
    with pytest.raises(RnnlabError, match="separately"):
        tiny_lm().evaluate(["the cat"], cache=Cache(), dynamic=Dynamic())
    with pytest.raises(RnnlabError, match="--cache-lambda"):
        tiny_lm().evaluate(["the cat"], cache=Cache(lam=1.0))


def test_cli_prints_both_figures(tmp_path, capsys):
    tiny_lm().save(tmp_path / "m")
    (tmp_path / "t.txt").write_text("the cat sat on a mat\n" * 20)
    argv = ["evaluate", str(tmp_path / "m"), str(tmp_path / "t.txt"), "--cache", "50",
            "--cache-theta", "5", "--cache-lambda", "0.5", "--quiet"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "static (one column)" in out and "cache (50 states, θ 5, λ 0.5)" in out
    assert main(argv + ["--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["cache"]["perplexity"] < r["perplexity"] and r["tokens"] == 140
