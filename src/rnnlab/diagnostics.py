"""Gradient flow through time: how much of the loss at the last step still reaches step k.

The lecture (docs/lecture.md §1): `∂s_T/∂s_k = Π_{i=k+1..T} ∂s_i/∂s_{i-1}`; when the largest
eigenvalue of U is above 1 gradients explode, below 1 they vanish. For a cell or a
`Recurrent` (one direction, any number of layers) and an input sequence, `gradient_flow`
measures with autograd, in float64 on a copy of the model:

- `‖∂E_T/∂s_k‖` for every k, with E_T = u · h_T for a fixed unit vector u (or a loss you
  pass), so the norm at distance 0 is 1 and the norm at distance d is what survives d steps;
- the spectral norm `‖∂s_T/∂s_k‖₂` of the Jacobian product over the full state, and for the
  LSTM family its two diagonal blocks, the paths `∂h_T/∂h_k` and `∂C_T/∂C_k`;
- ρ(U), the largest spectral radius among the recurrent matrices;
- for gated cells, each gate's mean activation per step, recomputed from the parameters.

The state vector is s = [h_1, ..., h_L, C_1, ..., C_L] over the L layers (no C for rnn, gru).
Every array is indexed by distance d = T - k, from 0 to T.

The autograd work runs on the model's device; the Jacobian products and the eigenvalues of
these small matrices are computed on the CPU.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from rnnlab.cells import (
    Cell,
    CoupledLSTMCell,
    GRUCell,
    LSTMCell,
    MogrifierLSTMCell,
    PeepholeLSTMCell,
    RNNCell,
    make_cell,
    state_parts,
)
from rnnlab.errors import RnnlabError
from rnnlab.fileio import atomic_write
from rnnlab.outputs import plot_format
from rnnlab.recurrent import Recurrent

Model = Cell | Recurrent


def layers_of(model: Model) -> list[Cell]:
    """The cells a state passes through in one time step, bottom layer first."""
    if isinstance(model, Cell):
        return [model]
    if isinstance(model, Recurrent):
        if model.bidirectional:
            raise RnnlabError("gradient flow needs one direction; pass a unidirectional model "
                              "or one of its cells")
        return list(model.cells)
    raise RnnlabError(f"expected a cell or a Recurrent, got {type(model).__name__}")


def recurrent_matrices(cell: Cell) -> list[Tensor]:
    """Every state-to-state matrix of `cell`, as views: scaling one in place changes the cell.

    rnn: U. LSTM family: the h_{t-1} columns of W, one H×H block per gate, and for the peephole
    cell its P blocks (vectors when diagonal). GRU: the h_{t-1} columns of W_z, W_r and W.
    """
    H = cell.hidden_size
    if isinstance(cell, RNNCell):
        return [cell.U.detach()]
    if isinstance(cell, GRUCell):
        return list(cell.W_zr.detach()[:, :H].split(H)) + [cell.W.detach()[:, :H]]
    blocks = list(cell.W.detach()[:, :H].split(H))
    if isinstance(cell, PeepholeLSTMCell):
        blocks += list(cell.P.detach().split(H))
    return blocks


def spectral_radius(matrix: Tensor) -> float:
    """ρ(M), the largest |eigenvalue|; for a vector (a diagonal matrix) its largest |entry|."""
    if matrix.dim() == 1:
        return matrix.abs().max().item()
    return torch.linalg.eigvals(matrix.detach().cpu().double()).abs().max().item()


def recurrent_radius(model: Model) -> float:
    """ρ(U) of a model: the largest spectral radius among all its recurrent matrices."""
    return max(spectral_radius(m) for cell in layers_of(model) for m in recurrent_matrices(cell))


@torch.no_grad()
def set_recurrent_radius(model: Model, radius: float) -> None:
    """Rescale every recurrent matrix of the model, in place, to spectral radius `radius`."""
    if not (radius >= 0 and math.isfinite(radius)):
        raise RnnlabError(f"radius must be a finite number >= 0, got {radius}")
    for cell in layers_of(model):
        for m in recurrent_matrices(cell):
            rho = spectral_radius(m)
            if rho > 0:
                m.mul_(radius / rho)


@torch.no_grad()
def gate_activations(cell: Cell, x: Tensor, state) -> dict[str, Tensor]:
    """The gates of one step of `cell`, recomputed from its parameters; {} for rnn."""
    if isinstance(cell, RNNCell):
        return {}
    if isinstance(cell, GRUCell):
        z, r = torch.sigmoid(torch.cat([state, x], 1) @ cell.W_zr.T + cell.b_zr).chunk(2, 1)
        return {"z": z, "r": r}
    h, C_prev = state
    if isinstance(cell, MogrifierLSTMCell):  # its gates see x_t and h_{t-1} after the rounds
        x, h = cell.mogrify(x, h)
    pre = torch.cat([h, x], 1) @ cell.W.T + cell.b
    if isinstance(cell, CoupledLSTMCell):
        f, _, o = pre.chunk(3, 1)
        f = torch.sigmoid(f)
        return {"f": f, "i": 1 - f, "o": torch.sigmoid(o)}
    i, f, c_tilde, o = pre.chunk(4, 1)
    if isinstance(cell, LSTMCell):
        return {"f": torch.sigmoid(f), "i": torch.sigmoid(i), "o": torch.sigmoid(o)}
    f = torch.sigmoid(f + cell.peep(C_prev, 1))
    i = torch.sigmoid(i + cell.peep(C_prev, 0))
    C = f * C_prev + i * torch.tanh(c_tilde)
    return {"f": f, "i": i, "o": torch.sigmoid(o + cell.peep(C, 2))}


def _step(cells: list[Cell], x: Tensor, s: Tensor, gates: dict | None = None) -> Tensor:
    """One time step of the stack on the flat state s = [h_1..h_L, C_1..C_L] (B, S)."""
    L, H = len(cells), cells[0].hidden_size
    paired = cells[0].has_cell_state
    hs = s[:, : L * H].split(H, 1)
    Cs = s[:, L * H :].split(H, 1) if paired else [None] * L
    new_h, new_C, inp = [], [], x
    for cell, h, C in zip(cells, hs, Cs):
        state = (h, C) if paired else h
        if gates is not None:
            for name, g in gate_activations(cell, inp, state).items():
                gates.setdefault(name, []).append(g.mean().item() / L)
        inp, state = cell(inp, state)
        new_h.append(state[0] if paired else state)
        new_C.extend([state[1]] if paired else [])
    return torch.cat(new_h + new_C, 1)


def _initial_state(model: Model, cells: list[Cell], state0, B: int, like: Tensor) -> Tensor:
    """The flat state s_0 from a cell-shaped or Recurrent-shaped state (zeros when None)."""
    L, H = len(cells), cells[0].hidden_size
    S = L * H * (2 if cells[0].has_cell_state else 1)
    if state0 is None:
        return like.new_zeros(B, S)
    parts = state_parts(state0)
    if isinstance(model, Recurrent):
        parts = [layer for p in parts for layer in p]  # (L, B, H) -> L tensors of (B, H)
    s0 = torch.cat([p.to(like) for p in parts], 1)
    if s0.shape != (B, S):
        raise RnnlabError(f"state0 has {tuple(s0.shape)} values after flattening, need {(B, S)}")
    return s0


def _prepare(model: Model, x: Tensor, state0, dtype: torch.dtype):
    """A float64 copy of the model's cells, x as (T, B, I) on their device and the flat s_0."""
    cells = [copy.deepcopy(c).to(dtype) for c in layers_of(model)]
    x = torch.as_tensor(x).to(next(cells[0].parameters()).device, dtype)
    if x.dim() == 2:
        x = x.unsqueeze(1)
    if x.dim() != 3 or x.shape[2] != cells[0].input_size or x.shape[0] < 1:
        raise RnnlabError(f"x must be (T, B, {cells[0].input_size}) with T >= 1, "
                          f"got {tuple(x.shape)}")
    return cells, x, _initial_state(model, cells, state0, x.shape[1], x)


def step_jacobians(
    model: Model, x: Tensor, state0=None, dtype: torch.dtype = torch.float64
) -> Tensor:
    """Per-step Jacobians ∂s_t/∂s_{t-1} by autograd, (T, B, S, S), for every sequence of x.

    Each step runs once on S copies of every state; backpropagating the unit vector e_i from
    copy i gives row i of the Jacobian, so one backward pass per step yields all of it.
    """
    return _jacobians(*_prepare(model, x, state0, dtype))


def _jacobians(cells: list[Cell], x: Tensor, s: Tensor) -> Tensor:
    B, S = s.shape
    # (B*S, S): e_0 .. e_{S-1} for each sequence
    eye = torch.eye(S, dtype=s.dtype, device=s.device).repeat(B, 1)
    Js = []
    for t in range(x.shape[0]):
        s_prev = s.detach().repeat_interleave(S, 0).requires_grad_()
        s_new = _step(cells, x[t].repeat_interleave(S, 0), s_prev)
        (rows,) = torch.autograd.grad(s_new, s_prev, eye)
        Js.append(rows.view(B, S, S))
        s = s_new.detach()[::S]
    return torch.stack(Js)


def product_norms(Js: Tensor | np.ndarray, block: slice = slice(None)) -> np.ndarray:
    """‖Π_{i=k+1..T} J_i‖₂ for every distance d = T - k (T+1,), averaged over the batch.

    `block` picks the rows and columns of one path, e.g. the C part for ∂C_T/∂C_k.
    A product that overflows counts as infinite. NumPy: small matrices, no thread overhead.
    """
    Js = np.asarray(Js.cpu() if torch.is_tensor(Js) else Js, dtype=np.float64)
    T, B, S, _ = Js.shape
    P = np.broadcast_to(np.eye(S), (B, S, S))
    norms = []
    with np.errstate(over="ignore", invalid="ignore"):
        for d in range(T + 1):
            Pb = P[:, block, block]
            finite = np.isfinite(Pb).all(axis=(1, 2))
            n = np.linalg.norm(np.where(finite[:, None, None], Pb, 0.0), 2, axis=(1, 2))
            norms.append(np.where(finite, n, np.inf).mean())
            if d < T:
                P = P @ Js[T - 1 - d]  # ∂s_T/∂s_{k-1} = ∂s_T/∂s_k · ∂s_k/∂s_{k-1}
    return np.array(norms)


@dataclass
class GradientFlow:
    """What `gradient_flow` measured; arrays run over distance d = T - k, d = 0..T."""

    cell_type: str
    rho: float  # ρ(U), largest over the recurrent matrices
    grad: np.ndarray  # ‖∂E_T/∂s_k‖ over the full state, mean over the batch
    grad_h: np.ndarray  # ‖∂E_T/∂h_k‖
    grad_c: np.ndarray | None  # ‖∂E_T/∂C_k‖ (LSTM family)
    jac: np.ndarray  # ‖∂s_T/∂s_k‖₂
    jac_h: np.ndarray  # ‖∂h_T/∂h_k‖₂
    jac_c: np.ndarray | None  # ‖∂C_T/∂C_k‖₂ (LSTM family)
    gates: dict[str, np.ndarray] = field(default_factory=dict)  # gate -> mean per step t=1..T
    exploded: bool = False  # a norm was non-finite or above the threshold

    @property
    def length(self) -> int:
        """T, the number of steps."""
        return len(self.grad) - 1

    def decay(self) -> float:
        """The mean factor per step, (‖∂E_T/∂s_0‖ / ‖∂E_T/∂s_T‖)^(1/T); a for U = a·Q, linear."""
        first, last = self.grad[0], self.grad[-1]
        if not (np.isfinite(last) and first > 0):
            return math.inf if not np.isfinite(last) else math.nan
        return float((last / first) ** (1 / self.length))

    def to_dict(self) -> dict:
        """Plain lists and numbers, for JSON (infinities become None)."""
        def clean(a):
            return None if a is None else [float(v) if np.isfinite(v) else None for v in a]
        return {"cell_type": self.cell_type, "rho": self.rho, "exploded": self.exploded,
                "decay": self.decay() if np.isfinite(self.decay()) else None,
                "grad": clean(self.grad), "grad_h": clean(self.grad_h),
                "grad_c": clean(self.grad_c), "jac": clean(self.jac), "jac_h": clean(self.jac_h),
                "jac_c": clean(self.jac_c), "gates": {k: clean(v) for k, v in self.gates.items()}}


def gradient_flow(
    model: Model,
    x: Tensor,
    state0=None,
    loss: Callable[[Tensor], Tensor] | None = None,
    threshold: float = 1e6,
    dtype: torch.dtype = torch.float64,
) -> GradientFlow:
    """Measure gradient flow for a cell or `Recurrent` on x (T, B, I) or (T, I); see the module.

    `loss(h_T) -> scalar` is E_T, given the top layer's last output (B, H); by default
    E_T = Σ_batch u · h_T with u = (1, ..., 1)/sqrt(H). The model itself is not changed.
    """
    cells, x, s = _prepare(model, x, state0, dtype)
    T, L, H = x.shape[0], len(cells), cells[0].hidden_size
    u = x.new_full((H,), 1 / math.sqrt(H))
    loss = loss or (lambda h: (h @ u).sum())

    Js = _jacobians(cells, x, s)
    states, gates = [s.requires_grad_()], {}
    for t in range(T):
        states.append(_step(cells, x[t], states[-1], gates))
        states[-1].retain_grad()
    loss(states[-1][:, (L - 1) * H : L * H]).backward()

    def norms(cols: slice) -> np.ndarray:
        # per sequence, then the batch mean; states[T - d] is s_k at distance d
        return np.array([states[T - d].grad[:, cols].norm(dim=1).mean().item()
                         for d in range(T + 1)])

    paired = cells[0].has_cell_state
    h_cols, C_cols = slice(0, L * H), slice(L * H, None)
    flow = GradientFlow(
        cell_type=cells[0].cell_type,
        rho=recurrent_radius(model),
        grad=norms(slice(None)), grad_h=norms(h_cols), grad_c=norms(C_cols) if paired else None,
        jac=product_norms(Js), jac_h=product_norms(Js, h_cols),
        jac_c=product_norms(Js, C_cols) if paired else None,
        gates={name: np.array(v).reshape(T, L).sum(1) for name, v in gates.items()},
    )
    worst = max(np.max(flow.grad), np.max(flow.jac))
    flow.exploded = bool(not np.isfinite(worst) or worst > threshold
                         or not torch.isfinite(states[-1]).all())
    return flow


def sweep(
    cell_types: list[str],
    radii: list[float | None],
    length: int = 100,
    hidden_size: int = 32,
    input_size: int = 8,
    batch: int = 4,
    seed: int = 0,
    threshold: float = 1e6,
    progress: Callable[[], None] | None = None,
    device: torch.device | str = "cpu",
) -> list[tuple[str, GradientFlow]]:
    """Fresh cells of each type, rescaled to each radius (None: as initialised), on one input.

    Every cell is built from the same seed and sees the same x ~ N(0, 1) of (length, batch,
    input_size), both made on the CPU and then moved to `device`, so every device starts from
    the same numbers. Returns (label, flow) pairs, e.g. ("lstm ρ=1.5", ...).
    """
    if length < 1:
        raise RnnlabError(f"length must be at least 1, got {length}")
    x = torch.randn(length, batch, input_size, generator=torch.Generator().manual_seed(seed),
                    dtype=torch.float64).to(device)
    results = []
    for cell_type in cell_types:
        for radius in radii:
            torch.manual_seed(seed)
            cell = make_cell(cell_type, input_size, hidden_size)
            if radius is not None:
                set_recurrent_radius(cell, radius)
            cell = cell.to(device)
            label = cell_type if radius is None else f"{cell_type} ρ={radius:g}"
            results.append((label, gradient_flow(cell, x, threshold=threshold)))
            if progress:
                progress()
    return results


def _fmt(v: float) -> str:
    return f"{v:.2e}" if np.isfinite(v) else str(v)


def table_distances(length: int) -> list[int]:
    """The distances a table shows: 1, 10, 50, 100 where they fit, and T itself."""
    ds = [d for d in (1, 10, 50, 100) if d <= length]
    return ds if length in ds else ds + [length]


def format_table(flows: list[tuple[str, GradientFlow]], threshold: float = 1e6) -> str:
    """Two text tables: ‖∂E_T/∂s_k‖ by distance with decay and gates; Jacobian path norms."""
    T = flows[0][1].length
    ds = table_distances(T)
    width = max(len(label) for label, _ in flows) + 2
    head = f"{'cell':{width}s}{'ρ(U)':>7s}" + "".join(f"{'d=' + str(d):>10s}" for d in ds)
    lines = [f"gradient norm ‖∂E_T/∂s_k‖ at distance d = T - k (T = {T}, E_T = u·h_T, ‖u‖ = 1)",
             head + f"{'decay/step':>12s}  mean gates"]
    for label, f in flows:
        gates = " ".join(f"{k}={np.mean(v):.2f}" for k, v in f.gates.items())
        note = ""
        if f.exploded:
            finite = np.isfinite(f.grad).all() and np.isfinite(f.jac).all()
            note = f"  EXPLODED ({'> ' + format(threshold, 'g') if finite else 'non-finite'})"
        lines.append(f"{label:{width}s}{f.rho:7.3f}" + "".join(f"{_fmt(f.grad[d]):>10s}" for d in ds)
                     + f"{f.decay():>12.3f}  {gates}{note}")
    lines += ["", "Jacobian product ‖∂s_T/∂s_k‖₂; LSTM family also ‖∂h_T/∂h_k‖₂ and ‖∂C_T/∂C_k‖₂",
              f"{'cell':{width}s}{'path':>7s}" + "".join(f"{'d=' + str(d):>10s}" for d in ds)]
    for label, f in flows:
        paths = [("s", f.jac)] + ([("h", f.jac_h), ("C", f.jac_c)] if f.jac_c is not None else [])
        for name, norms in paths:
            lines.append(f"{label:{width}s}{name:>7s}" + "".join(f"{_fmt(norms[d]):>10s}" for d in ds))
    return "\n".join(line.rstrip() for line in lines)


def plot_gradient_flow(flows: list[tuple[str, GradientFlow]], path) -> None:
    """PNG: log gradient norm against distance, one line per cell/radius; gaps where exploded."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    types = list(dict.fromkeys(f.cell_type for _, f in flows))
    colours = {t: plt.get_cmap("tab10")(i % 10) for i, t in enumerate(types)}
    styles = ["-", "--", ":", "-."]
    seen: dict[str, int] = {}
    for label, f in flows:
        style = styles[seen.setdefault(f.cell_type, 0) % len(styles)]
        seen[f.cell_type] += 1
        # log scale cannot show 0 or inf; those points are left out
        g = np.where(np.isfinite(f.grad) & (f.grad > 0), f.grad, np.nan)
        ax.plot(np.arange(len(g)), g, style, color=colours[f.cell_type],
                label=label + (" (exploded)" if f.exploded else ""))
    ax.set_yscale("log")
    ax.set_xlabel("distance d = T - k (steps back from the loss)")
    ax.set_ylabel(r"$\|\partial E_T / \partial s_k\|$")
    ax.set_title("Gradient flow through time")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    with atomic_write(path, "wb") as fh:
        fig.savefig(fh, format=plot_format(path), dpi=110)
    plt.close(fig)
