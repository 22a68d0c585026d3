"""The compiled word2vec steps against torch autograd, the sigmoid table, and the RNG."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from rnnlab.word2vec import engine
from rnnlab.word2vec.train import alias_table, noise_distribution


def sgns_loss(v: torch.Tensor, u: torch.Tensor, signs: torch.Tensor) -> torch.Tensor:
    """sum_ij -log sigma(sign_j v_i . u_j): one window's negative-sampling loss."""
    return F.softplus(-(v @ u.T) * signs).sum()


def test_block_step_is_one_autograd_sgd_step():
    rng = np.random.default_rng(0)
    w_in = rng.normal(0, 0.7, (7, 5)).astype(np.float32)
    w_out = rng.normal(0, 0.7, (6, 5)).astype(np.float32)
    ctx = np.array([1, 4, 1, 6], np.int32)  # a repeated context word: its gradients add up
    outs = np.array([2, 0, 5, 0], np.int32)  # the true word, then noise words (one twice)
    signs = np.array([1, -1, -1, -1], np.float32)
    alpha = np.float32(0.1)

    v = torch.tensor(w_in, dtype=torch.float64, requires_grad=True)
    u = torch.tensor(w_out, dtype=torch.float64, requires_grad=True)
    loss = sgns_loss(v[ctx], u[outs], torch.tensor(signs, dtype=torch.float64))
    loss.backward()

    g = np.zeros((8, 8), np.float32)
    neu1e = np.zeros((8, 5), np.float32)
    got = engine.block_step(w_in, ctx, len(ctx), w_out, outs, signs, len(outs), alpha, g, neu1e)
    assert got == pytest.approx(loss.item(), rel=1e-5)
    np.testing.assert_allclose(w_in, (v - 0.1 * v.grad).detach().numpy(), atol=2e-6)
    np.testing.assert_allclose(w_out, (u - 0.1 * u.grad).detach().numpy(), atol=2e-6)


def test_cbow_step_matches_autograd_on_the_mean_vector():
    rng = np.random.default_rng(1)
    h = rng.normal(0, 0.5, 4).astype(np.float32)
    w_out = rng.normal(0, 0.5, (5, 4)).astype(np.float32)
    outs = np.array([3, 0, 4], np.int32)
    signs = np.array([1, -1, -1], np.float32)

    ht = torch.tensor(h, dtype=torch.float64, requires_grad=True)
    u = torch.tensor(w_out, dtype=torch.float64, requires_grad=True)
    loss = sgns_loss(ht[None], u[outs], torch.tensor(signs, dtype=torch.float64))
    loss.backward()

    neu1e = np.zeros(4, np.float32)
    got = engine.cbow_step(h, w_out, outs, signs, 3, np.float32(0.05), neu1e)
    assert got == pytest.approx(loss.item(), rel=1e-5)
    np.testing.assert_allclose(neu1e, -0.05 * ht.grad.numpy(), atol=2e-7)
    np.testing.assert_allclose(w_out, (u - 0.05 * u.grad).detach().numpy(), atol=2e-6)


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_sigmoid_table_is_exact_to_float32(sign):
    f = np.linspace(-40, 40, 20001).astype(np.float32)
    got = np.array([engine._grad_and_loss(x, np.float32(sign)) for x in f])
    z = sign * f.astype(np.float64)
    y = (sign + 1) / 2
    np.testing.assert_allclose(got[:, 0], y - 1 / (1 + np.exp(-f.astype(np.float64))), atol=2e-6)
    np.testing.assert_allclose(got[:, 1], np.logaddexp(0, -z), rtol=1e-5, atol=2e-6)


def test_noise_words_follow_the_alias_table():
    counts = np.array([500, 120, 60, 30, 7, 1])
    prob, alias = alias_table(noise_distribution(counts))
    state = np.array([12345], np.uint64)
    draws = np.array([engine._noise_word(state, prob, alias) for _ in range(60000)])
    freq = np.bincount(draws, minlength=len(counts)) / len(draws)
    np.testing.assert_allclose(freq, counts**0.75 / np.sum(counts**0.75), atol=0.006)


def test_uniform_and_below_are_uniform():
    state = np.array([7], np.uint64)
    u = np.array([engine._uniform(state) for _ in range(20000)])
    assert u.min() >= 0 and u.max() < 1
    assert abs(u.mean() - 0.5) < 0.01
    b = np.array([engine._below(state, 5) for _ in range(20000)])
    np.testing.assert_allclose(np.bincount(b, minlength=5) / len(b), 0.2, atol=0.012)


def _chunk_args(seed):
    rng = np.random.default_rng(0)
    V, d = 6, 8
    w_in = ((rng.random((V, d)) - 0.5) / d).astype(np.float32)
    w_out = np.zeros((V, d), np.float32)
    ids = rng.integers(0, V, 300).astype(np.int32)
    starts = np.array([0, 100, 220, 300], np.int64)
    keep = np.full(V, 0.8, np.float32)
    prob, alias = alias_table(noise_distribution(np.arange(1, V + 1)))
    codes, points, lengths = np.zeros((1, 1), np.uint8), np.zeros((1, 1), np.int32), np.zeros(1, np.int32)
    return (w_in, w_out, np.zeros((0, d), np.float32), ids, starts, 0, 3, keep, prob, alias,
            codes, points, lengths, True, 3, False, 2, 0.025, 0.001, seed)


def test_train_chunk_is_deterministic_given_its_seed():
    a, b, c = _chunk_args(5), _chunk_args(5), _chunk_args(6)
    la, na = engine.train_chunk(*a)
    lb, nb = engine.train_chunk(*b)
    engine.train_chunk(*c)
    assert (la, na) == (lb, nb) and na > 0 and np.isfinite(la)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])
