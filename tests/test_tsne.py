"""Exact t-SNE: separates what is apart, is reproducible by seed, and lowers its cost."""

from __future__ import annotations

import numpy as np
import pytest

from rnnlab.errors import RnnlabError
from rnnlab.word2vec.tsne import kl_divergence, tsne
from rnnlab.word2vec.vectors import WordVectors


def two_clusters(n: int = 40, dim: int = 10, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.vstack([rng.normal(size=(n, dim)), rng.normal(size=(n, dim)) + 10])


def test_two_well_separated_clusters_stay_apart():
    x = two_clusters()
    y = tsne(x, perplexity=30, seed=0)
    assert y.shape == (80, 2) and np.isfinite(y).all()
    a, b = y[:40], y[40:]
    gap = np.linalg.norm(a.mean(axis=0) - b.mean(axis=0))
    assert gap > 3 * max(a.std(axis=0).max(), b.std(axis=0).max())
    # Every point's nearest neighbour on the map is in its own cluster.
    d = np.linalg.norm(y[:, None] - y[None], axis=-1)
    np.fill_diagonal(d, np.inf)
    assert (d.argmin(axis=1) < 40).tolist() == [True] * 40 + [False] * 40


def test_the_same_seed_gives_the_same_map_and_the_map_beats_noise():
    x = two_clusters(20)
    y = tsne(x, seed=3)
    np.testing.assert_array_equal(y, tsne(x, seed=3))
    assert not np.allclose(y, tsne(x, seed=4))
    noise = np.random.default_rng(0).normal(size=y.shape)
    assert kl_divergence(x, y) < 0.5 * kl_divergence(x, noise)


def test_small_inputs_and_bad_inputs():
    assert tsne(np.eye(3)).shape == (3, 2)  # a perplexity of 30 shrinks to what 3 points allow
    with pytest.raises(RnnlabError, match="at least two points"):
        tsne(np.ones((1, 4)))
    with pytest.raises(RnnlabError, match="NaN"):
        tsne(np.array([[0.0, 1.0], [np.nan, 0.0], [1.0, 1.0]]))


def test_word_vectors_tsne_maps_words():
    x = two_clusters(10, 6).astype(np.float32)
    wv = WordVectors([f"w{i}" for i in range(20)], x)
    y = wv.tsne(wv.index_to_key)
    assert y.shape == (20, 2)
    with pytest.raises(RnnlabError, match="two words"):
        wv.tsne(["w1"])
