"""Exact t-SNE (van der Maaten & Hinton 2008) in NumPy, for maps of up to a few thousand words.

Every pair of points is considered (O(N^2) memory and time per step), which is exact and fast
enough for the studio's maps of a few hundred words; Barnes-Hut is not worth its code there.
The steps are the reference implementation's: a binary search per point for the Gaussian
width that gives the wanted perplexity, symmetrised affinities, early exaggeration of 12 for
the first 250 iterations, gradient descent with momentum 0.5 then 0.8 and per-coordinate gains.
"""

from __future__ import annotations

import numpy as np

from rnnlab.errors import RnnlabError

MAX_POINTS = 5000  # N^2 float64 matrices: 5000 points already take 200 MB each


def _conditional_p(distances: np.ndarray, perplexity: float, tol: float = 1e-5) -> np.ndarray:
    """Row-stochastic P(j|i) whose rows each have the given perplexity (binary search on beta)."""
    n = distances.shape[0]
    target = np.log(perplexity)
    p = np.zeros((n, n))
    for i in range(n):
        d = np.delete(distances[i], i)
        d = d - d.min()  # shifting a row leaves its normalised P unchanged and avoids underflow
        beta, low, high = 1.0, 0.0, np.inf
        for _ in range(100):
            w = np.exp(-d * beta)
            total = max(w.sum(), 1e-300)
            entropy = np.log(total) + beta * float(d @ w) / total
            if abs(entropy - target) < tol:
                break
            if entropy > target:  # too flat: a narrower Gaussian
                low = beta
                beta = beta * 2 if high == np.inf else (beta + high) / 2
            else:
                high = beta
                beta = (beta + low) / 2
        p[i, np.arange(n) != i] = w / total
    return p


def _squared_distances(x: np.ndarray) -> np.ndarray:
    """‖x_i − x_j‖² for every pair of rows (clipped at 0 against rounding)."""
    squared = np.sum(x * x, axis=1)
    return np.maximum(squared[:, None] + squared[None, :] - 2 * x @ x.T, 0)


def _joint_p(x: np.ndarray, perplexity: float) -> np.ndarray:
    """The symmetrised input affinities p_ij = (p_j|i + p_i|j) / 2N."""
    n = len(x)
    # The perplexity is an effective number of neighbours: it cannot exceed the others there are.
    perplexity = min(perplexity, (n - 1) / 3) if n > 4 else max(1.0, (n - 1) / 2)
    p = _conditional_p(_squared_distances(x), perplexity)
    return np.maximum((p + p.T) / (2 * n), 1e-12)


def _student_q(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The map's affinities q_ij under a Student t with one degree of freedom, and their
    unnormalised kernel (1 + ‖y_i − y_j‖²)⁻¹."""
    kernel = 1.0 / (1.0 + _squared_distances(y))
    np.fill_diagonal(kernel, 0.0)
    return np.maximum(kernel / kernel.sum(), 1e-12), kernel


def tsne(x: np.ndarray, perplexity: float = 30.0, iterations: int = 750, seed: int = 0,
         learning_rate: float | None = None) -> np.ndarray:
    """2-D t-SNE coordinates (N, 2) of the rows of `x`, the same for the same seed."""
    x = np.asarray(x, dtype=np.float64)
    n = len(x)
    if x.ndim != 2 or n < 2:
        raise RnnlabError(f"t-SNE needs at least two points as rows of a matrix, got shape {x.shape}")
    if n > MAX_POINTS:
        raise RnnlabError(f"exact t-SNE is limited to {MAX_POINTS} points, got {n}")
    if not np.isfinite(x).all():
        raise RnnlabError("t-SNE input holds NaN or infinite values")
    p = _joint_p(x, perplexity)
    rng = np.random.default_rng(seed)
    y = rng.normal(scale=1e-4, size=(n, 2))
    velocity = np.zeros_like(y)
    gains = np.ones_like(y)
    # The "auto" rate of later implementations: N / 12 (the exaggeration), at least 50.
    rate = learning_rate if learning_rate is not None else max(n / 12, 50.0)
    exaggeration_steps = min(250, iterations // 3)
    for step in range(iterations):
        exaggeration = 12.0 if step < exaggeration_steps else 1.0
        momentum = 0.5 if step < exaggeration_steps else 0.8
        q, kernel = _student_q(y)
        # dC/dy_i = 4 Σ_j (p_ij − q_ij)(y_i − y_j)(1 + ‖y_i − y_j‖²)⁻¹, as one matrix product.
        pq = (exaggeration * p - q) * kernel
        gradient = 4 * (np.diag(pq.sum(axis=1)) - pq) @ y
        same_sign = np.sign(gradient) == np.sign(velocity)
        gains = np.maximum(np.where(same_sign, gains * 0.8, gains + 0.2), 0.01)
        velocity = momentum * velocity - rate * gains * gradient
        y = y + velocity
        y -= y.mean(axis=0)
    return y


def kl_divergence(x: np.ndarray, y: np.ndarray, perplexity: float = 30.0) -> float:
    """KL(P || Q) of a t-SNE map `y` of `x`: the cost t-SNE minimises (lower is better)."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    p, (q, _) = _joint_p(x, perplexity), _student_q(y)
    off = ~np.eye(len(x), dtype=bool)
    return float(np.sum(p[off] * np.log(p[off] / q[off])))
