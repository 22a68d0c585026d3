import math

import numpy as np
import pytest

from rnnlab.errors import RnnlabError
from rnnlab.lm.kneser_ney import KneserNeyBigram


def markov_stream(n: int, V: int, seed: int) -> np.ndarray:
    """Tokens from a sparse random bigram chain: each word has a few likely successors."""
    rng = np.random.default_rng(seed)
    table = rng.dirichlet(np.full(V, 0.05), size=V)
    ids = [0]
    for _ in range(n - 1):
        ids.append(rng.choice(V, p=table[ids[-1]]))
    return np.array(ids)


def test_hand_computed_probability():
    # bigrams (0,1)×2, (1,0), (1,2): n1 = 2, n2 = 1 → D = 2 / (2 + 2) = 0.5.
    # Every word follows exactly one context → continuation counts 1, 1, 1; D₁ = 1 clipped to
    # 0.95, P_cont = 0.05/3 + 0.95·3/3/3 = 1/3. P(1|0) = (2 − 0.5)/2 + 0.5·1/2·1/3.
    kn = KneserNeyBigram(3).fit([0, 1, 0, 1, 2])
    assert kn.D == 0.5
    assert kn.prob([0], [1])[0] == pytest.approx(0.75 + 1 / 12)
    assert kn.prob([0], [2])[0] == pytest.approx(1 / 12)
    # Context 2 was never followed by anything: its distribution is P_cont.
    assert kn.prob([2], [0])[0] == pytest.approx(1 / 3)


def test_sums_to_one_for_every_context():
    V = 30
    ids = markov_stream(500, V - 5, seed=0)  # the last 5 words never occur
    kn = KneserNeyBigram(V).fit(ids)
    for v in range(V):
        p = kn.distribution(v)
        assert p.min() > 0
        assert p.sum() == pytest.approx(1.0, abs=1e-12)


def test_beats_add_one_on_held_out_text():
    V = 40
    stream = markov_stream(2400, V, seed=1)
    train, held_out = stream[:2000], stream[2000:]
    kn = KneserNeyBigram(V).fit(train)
    counts = np.zeros((V, V))
    np.add.at(counts, (train[:-1], train[1:]), 1)
    add_one = (counts + 1) / (counts.sum(1, keepdims=True) + V)
    add_one_ppl = math.exp(-np.log(add_one[held_out[:-1], held_out[1:]]).mean())
    assert kn.perplexity(held_out) < 0.9 * add_one_ppl


def test_perplexity_is_exp_of_mean_loss():
    kn = KneserNeyBigram(5).fit([0, 1, 2, 3, 4, 0, 1, 2, 0])
    ids = [0, 1, 2, 4, 3]
    logp = [math.log(kn.prob([a], [b])[0]) for a, b in zip(ids, ids[1:])]
    assert kn.perplexity(ids) == pytest.approx(math.exp(-sum(logp) / len(logp)))


def test_bad_input():
    with pytest.raises(RnnlabError):
        KneserNeyBigram(3).fit([0, 5])
    with pytest.raises(RnnlabError):
        KneserNeyBigram(3).perplexity([0, 1])
