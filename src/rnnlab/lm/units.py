"""Looking at single units: which follow a pattern a person marks, and how saturated the gates are.

Two analyses over one layer's activations (`LM.activations`, arrays of shape (T, H): one row
per token read, one column per unit):

- `units_like`: the person marks the tokens where something holds (inside a quote, a line's
  end coming); each unit is scored by the correlation between its activation and that 0/1
  mark, r_u = cov(a_u, m) / (σ(a_u) σ(m)) (the point-biserial correlation), and the units are
  ranked by |r|: a unit that is low exactly inside the marks follows them as well as one that
  is high there. This is LSTMVis's "select" view with a scale-free score.
- `saturation`: for each gate and unit, the share of steps at which it is below 0.1 (closed,
  "left-saturated") and above 0.9 (open, "right-saturated"), as in Karpathy, Johnson and
  Fei-Fei (2015), Fig. 3: a forget gate that is open for most steps is a unit that remembers.
"""

from __future__ import annotations

import numpy as np

from rnnlab.errors import RnnlabError

GATE_NAMES = ("i", "f", "o", "z", "r")  # the gates' arrays in a layer's activations
CLOSED, OPEN = 0.1, 0.9


def units_like(values: np.ndarray, marked: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Units ranked by how well their activation follows `marked`: (unit indices, correlations),
    strongest |r| first. `values` is (T, H), `marked` a boolean (T,) with both kinds of step."""
    values = np.asarray(values, dtype=np.float64)
    m = np.asarray(marked, dtype=np.float64)
    if values.ndim != 2 or m.shape != (values.shape[0],):
        raise RnnlabError(f"marks must cover the {values.shape[0]} tokens read, got {m.shape[0]}")
    if m.min() == m.max():
        raise RnnlabError("mark some tokens, and leave some unmarked: a unit is compared on both")
    a = values - values.mean(axis=0)
    m = m - m.mean()
    spread = np.sqrt((a * a).sum(axis=0) * (m * m).sum())
    # A unit that never changes follows nothing: its correlation is 0, not 0/0 (or rounding).
    varying = values.max(axis=0) > values.min(axis=0)
    r = np.divide(a.T @ m, spread, out=np.zeros(values.shape[1]), where=varying)
    order = np.argsort(-np.abs(r), kind="stable")
    return order, r[order]


def saturation(layer: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """For each gate in a layer's activations: (H, 2) shares of steps below CLOSED and above OPEN."""
    gates = {name: np.asarray(layer[name]) for name in GATE_NAMES if name in layer}
    if not gates:
        raise RnnlabError("this layer has no gates (a plain RNN): nothing saturates")
    return {name: np.stack([(g < CLOSED).mean(axis=0), (g > OPEN).mean(axis=0)], axis=1)
            for name, g in gates.items()}
