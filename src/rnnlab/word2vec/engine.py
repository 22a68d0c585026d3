"""Word2vec's inner loop, compiled: Hogwild SGD over an int32-encoded corpus (numba, no GIL).

One call trains on a run of sentences. Each thread calls it on its own runs and writes into
the shared weight matrices without locks, as word2vec.c does ("Hogwild"): collisions are
rare and harmless.

Notation, with input vectors v (the rows of `w_in`, the word vectors we keep) and output
vectors u (rows of `w_out`): a pair (input word a, output word o) with label y in {1, 0} has
score f = v_a . u_o, probability sigma(f), loss -log sigma(+f) when y = 1 and -log sigma(-f)
when y = 0. Both gradients carry the factor g = y - sigma(f); the SGD step is

    v_a += alpha * g * u_o        u_o += alpha * g * v_a

Skip-gram, following word2vec.c, trains each context word's input vector to predict the
centre word. With negative sampling the context words of one window share one draw of
negatives (Ji et al. 2016, pWord2Vec): the window becomes a small dense block, inputs
(c x d) against outputs (centre + k negatives, (k + 1) x d), whose rows stay in L1 cache
while all c (k + 1) products are formed. Hierarchical softmax uses the same block with the
inner nodes on the centre word's Huffman path as outputs (label 1 - code).

CBOW averages the context's input vectors into h, trains h to predict the centre word and
adds h's gradient to every context vector, as word2vec.c does.
"""

from __future__ import annotations

import numpy as np
from numba import njit

_U32 = np.uint64(32)
_INV_2_24 = np.float32(1.0 / (1 << 24))


@njit(inline="always")
def _next_u64(state):
    """xorshift64*: a tiny RNG with its state in a 1-element array, one per call (per thread)."""
    x = state[0]
    x ^= x >> np.uint64(12)
    x ^= x << np.uint64(25)
    x ^= x >> np.uint64(27)
    state[0] = x
    return x * np.uint64(0x2545F4914F6CDD1D)


@njit(inline="always")
def _below(state, n):
    """A uniform integer in [0, n), by a multiply-shift instead of a modulo."""
    return np.int64(((_next_u64(state) >> _U32) * np.uint64(n)) >> _U32)


@njit(inline="always")
def _uniform(state):
    """A uniform float32 in [0, 1)."""
    return np.float32(_next_u64(state) >> np.uint64(40)) * _INV_2_24


@njit(inline="always")
def _noise_word(state, prob, alias):
    """A draw from the noise distribution by the alias method: one random number, O(1)."""
    r = _next_u64(state)
    i = np.int64(((r >> _U32) * np.uint64(prob.shape[0])) >> _U32)
    if np.float32(r & np.uint64(0xFFFFFF)) * _INV_2_24 >= prob[i]:
        i = alias[i]
    return i


# sigma(-z) and -log sigma(z) tabulated on [-16, 16] and interpolated linearly: exp and log1p
# per score cost more than the 100-long dot product itself; the table is exact to ~1e-6.
_Z_MAX = 16.0
_Z_STEPS = 128.0
_Z = np.linspace(-_Z_MAX, _Z_MAX, int(2 * _Z_MAX * _Z_STEPS) + 1)
_SIGMA_NEG = (1.0 / (1.0 + np.exp(_Z))).astype(np.float32)
_NEG_LOG_SIGMA = np.logaddexp(0.0, -_Z).astype(np.float32)


@njit(inline="always", fastmath=True)
def _grad_and_loss(f, sign):
    """For score f and sign = 2y - 1: (g = y - sigma(f), -log sigma(sign * f))."""
    z = sign * f
    if z <= -_Z_MAX:
        return sign, -z
    if z >= _Z_MAX:
        return np.float32(0.0), np.float32(0.0)
    x = (z + _Z_MAX) * _Z_STEPS
    i = int(x)
    t = np.float32(x - i)
    s = _SIGMA_NEG[i] + t * (_SIGMA_NEG[i + 1] - _SIGMA_NEG[i])
    return sign * s, _NEG_LOG_SIGMA[i] + t * (_NEG_LOG_SIGMA[i + 1] - _NEG_LOG_SIGMA[i])


@njit(fastmath=True, nogil=True, cache=True)
def block_step(w_in, ctx, n_ctx, w_out, outs, signs, n_out, alpha, g, neu1e):
    """One SGD step on every (ctx[i], outs[j]) pair of a block; returns the summed loss.

    The gradient of all pairs is formed from the weights before the step, so the block is
    exactly one gradient step on sum_ij -log sigma(sign_j v_ctx[i] . u_outs[j]).
    `g` (>= n_ctx x n_out) and `neu1e` (>= n_ctx x d) are scratch buffers.
    """
    # Rows are taken as 1-d views: numba vectorizes row[k] but not w[idx, k].
    d = w_in.shape[1]
    loss = 0.0
    for i in range(n_ctx):
        v = w_in[ctx[i]]
        for j in range(n_out):
            u = w_out[outs[j]]
            f = np.float32(0.0)
            for k in range(d):
                f += v[k] * u[k]
            gij, lij = _grad_and_loss(f, signs[j])
            g[i, j] = alpha * gij
            loss += lij
    for i in range(n_ctx):
        e = neu1e[i]
        for k in range(d):
            e[k] = 0.0
        for j in range(n_out):
            gij = g[i, j]
            u = w_out[outs[j]]
            for k in range(d):
                e[k] += gij * u[k]
    for j in range(n_out):
        u = w_out[outs[j]]
        for i in range(n_ctx):
            gij = g[i, j]
            v = w_in[ctx[i]]
            for k in range(d):
                u[k] += gij * v[k]
    for i in range(n_ctx):
        v = w_in[ctx[i]]
        e = neu1e[i]
        for k in range(d):
            v[k] += e[k]
    return loss


@njit(fastmath=True, nogil=True, cache=True)
def cbow_step(h, w_out, outs, signs, n_out, alpha, neu1e):
    """One SGD step of the hidden vector h against outputs; h's gradient accumulates in neu1e."""
    d = h.shape[0]
    loss = 0.0
    for j in range(n_out):
        u = w_out[outs[j]]
        f = np.float32(0.0)
        for k in range(d):
            f += h[k] * u[k]
        gj, lj = _grad_and_loss(f, signs[j])
        gj *= alpha
        loss += lj
        for k in range(d):
            neu1e[k] += gj * u[k]
        for k in range(d):
            u[k] += gj * h[k]
    return loss


@njit(fastmath=True, nogil=True, cache=True)
def train_chunk(w_in, w_out, w_hs, ids, starts, s0, s1, keep, noise_prob, noise_alias,
                codes, points, code_lens, sg, negative, hs, window, alpha0, alpha1, seed):
    """Train on sentences s0..s1-1 (ids[starts[s]:starts[s+1]]); returns (loss sum, examples).

    alpha falls linearly from alpha0 to alpha1 over the run. Examples are (centre, context)
    pairs for skip-gram and centre words for CBOW.
    """
    d = w_in.shape[1]
    state = np.empty(1, np.uint64)
    state[0] = np.uint64(seed) | np.uint64(1)
    max_len = 1
    for s in range(s0, s1):
        max_len = max(max_len, starts[s + 1] - starts[s])
    sent = np.empty(max_len, np.int32)
    span = 2 * window
    n_buf = max(negative + 1, codes.shape[1])
    ctx = np.empty(span, np.int32)
    outs = np.empty(n_buf, np.int32)
    signs = np.empty(n_buf, np.float32)
    g = np.empty((span, n_buf), np.float32)
    neu1e = np.empty((span, d), np.float32)
    h = np.empty(d, np.float32)
    e0 = neu1e[0]
    total = max(1, starts[s1] - starts[s0])
    done = 0
    loss = 0.0
    examples = 0
    for s in range(s0, s1):
        n = 0
        for p in range(starts[s], starts[s + 1]):
            w = ids[p]
            kp = keep[w]
            if kp >= 1.0 or kp >= _uniform(state):
                sent[n] = w
                n += 1
        alpha = np.float32(alpha0 + (alpha1 - alpha0) * done / total)
        done += starts[s + 1] - starts[s]
        for pos in range(n):
            word = sent[pos]
            b = _below(state, window)
            c = 0
            for p in range(max(0, pos - window + b), min(n, pos + window - b + 1)):
                if p != pos:
                    ctx[c] = sent[p]
                    c += 1
            if c == 0:
                continue
            if not sg:
                for k in range(d):
                    h[k] = 0.0
                for i in range(c):
                    v = w_in[ctx[i]]
                    for k in range(d):
                        h[k] += v[k]
                inv_c = np.float32(1.0 / c)
                for k in range(d):
                    h[k] *= inv_c
                    e0[k] = 0.0
            if negative > 0:
                outs[0] = word
                signs[0] = 1.0
                for j in range(1, negative + 1):
                    t = _noise_word(state, noise_prob, noise_alias)
                    while t == word:
                        t = _noise_word(state, noise_prob, noise_alias)
                    outs[j] = t
                    signs[j] = -1.0
                if sg:
                    loss += block_step(w_in, ctx, c, w_out, outs, signs, negative + 1,
                                       alpha, g, neu1e)
                else:
                    loss += cbow_step(h, w_out, outs, signs, negative + 1, alpha, e0)
            if hs:
                n_code = code_lens[word]
                for j in range(n_code):
                    outs[j] = points[word, j]
                    signs[j] = 1.0 - 2.0 * codes[word, j]
                if sg:
                    loss += block_step(w_in, ctx, c, w_hs, outs, signs, n_code, alpha, g, neu1e)
                else:
                    loss += cbow_step(h, w_hs, outs, signs, n_code, alpha, e0)
            if sg:
                examples += c
            else:
                for i in range(c):
                    v = w_in[ctx[i]]
                    for k in range(d):
                        v[k] += e0[k]
                examples += 1
    return loss, examples
