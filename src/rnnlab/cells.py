"""The lecture's recurrent cells, one step each, written as the lecture writes them (docs/lecture.md §2).

Every cell has one interface: `cell(x_t, state) -> (h_t, new_state)`, with `x_t` of shape
(batch, input_size). The state is `h` for `rnn` and `gru`, and the pair `(h, C)` for the
LSTM family. `[a, b]` is concatenation along the feature axis, `*` the element-wise product.

Weights: one matrix per cell acting on the concatenation `[h_{t-1}, x_t]`, its rows stacked
gate by gate (the order is given per cell; the LSTM uses torch.nn.LSTM's order i, f, c̃, o so
the fused kernel takes the same tensor). Initialisation: every weight and bias uniform in
±1/sqrt(hidden_size), as torch.nn does, then the LSTM forget-gate bias set to 1.0 (Jozefowicz
et al. 2015) so that a fresh cell remembers by default; `forget_bias=0.0` turns that off.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn

from rnnlab.errors import RnnlabError

State = Tensor | tuple[Tensor, Tensor]

CELL_TYPES = ("rnn", "rnn-relu", "lstm", "peephole", "coupled", "gru", "mogrifier")


def map_state(fn: Callable[..., Tensor], state: State, *others: State) -> State:
    """fn on each tensor of a state (h, or the pair (h, C)), zipped with `others` of the same
    structure; the result has that structure too."""
    if isinstance(state, tuple):
        return tuple(fn(*parts) for parts in zip(state, *others))
    return fn(state, *others)


def state_parts(state: State) -> tuple[Tensor, ...]:
    """The tensors of a state as a tuple: (h,) or (h, C)."""
    return state if isinstance(state, tuple) else (state,)


class Cell(nn.Module):
    """Shared bookkeeping: sizes, initialisation and the zero state."""

    cell_type = ""  # the name make_cell builds it by
    has_cell_state = False
    forget_gate: int | None = None  # which block of H rows of b is the forget gate's
    # The matrices acting on h_{t-1}, in their first H columns: what DropConnect masks.
    hidden_weights: tuple[str, ...] = ("W",)

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        if input_size <= 0 or hidden_size <= 0:
            raise RnnlabError(f"sizes must be positive, got input {input_size}, hidden {hidden_size}")
        self.input_size = input_size
        self.hidden_size = hidden_size

    def reset_parameters(self) -> None:
        """Uniform ±1/sqrt(hidden_size) for every tensor, as torch.nn's recurrent layers do,
        then the forget gate's bias set to `forget_bias` (LSTM family)."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)
        if self.forget_gate is not None:
            H, k = self.hidden_size, self.forget_gate
            with torch.no_grad():
                self.b[k * H : (k + 1) * H].fill_(self.forget_bias)

    def zero_state(self, batch: int, like: Tensor) -> State:
        """The all-zero initial state for `batch` sequences, on `like`'s device and dtype."""
        h = like.new_zeros(batch, self.hidden_size)
        return (h, h.clone()) if self.has_cell_state else h


class RNNCell(Cell):
    """Vanilla RNN: s_t = tanh(W x_t + U s_{t-1} + b); "relu" and "linear" swap the tanh."""

    hidden_weights = ("U",)

    def __init__(self, input_size: int, hidden_size: int, nonlinearity: str = "tanh") -> None:
        super().__init__(input_size, hidden_size)
        activations = {"tanh": torch.tanh, "relu": torch.relu, "linear": lambda a: a}
        if nonlinearity not in activations:
            raise RnnlabError(f"nonlinearity must be one of {sorted(activations)}, got {nonlinearity!r}")
        self.nonlinearity = nonlinearity
        self.act = activations[nonlinearity]
        self.W = nn.Parameter(torch.empty(hidden_size, input_size))
        self.U = nn.Parameter(torch.empty(hidden_size, hidden_size))
        self.b = nn.Parameter(torch.empty(hidden_size))
        self.reset_parameters()

    @property
    def cell_type(self) -> str:
        """rnn, rnn-relu or rnn-linear, after the nonlinearity."""
        return "rnn" if self.nonlinearity == "tanh" else f"rnn-{self.nonlinearity}"

    def forward(self, x: Tensor, s: Tensor) -> tuple[Tensor, Tensor]:
        s = self.act(x @ self.W.T + s @ self.U.T + self.b)
        return s, s


class LSTMCell(Cell):
    """Standard LSTM; rows of W are the gates [i, f, c̃, o] over [h_{t-1}, x_t]."""

    cell_type = "lstm"
    has_cell_state = True
    forget_gate = 1

    def __init__(self, input_size: int, hidden_size: int, forget_bias: float = 1.0) -> None:
        super().__init__(input_size, hidden_size)
        self.forget_bias = forget_bias
        self.W = nn.Parameter(torch.empty(4 * hidden_size, hidden_size + input_size))
        self.b = nn.Parameter(torch.empty(4 * hidden_size))
        self.reset_parameters()

    def forward(self, x: Tensor, state: tuple[Tensor, Tensor]) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        h, C = state
        i, f, c_tilde, o = (torch.cat([h, x], 1) @ self.W.T + self.b).chunk(4, 1)
        f = torch.sigmoid(f)  # f_t = σ(W_f · [h_{t-1}, x_t] + b_f)
        i = torch.sigmoid(i)  # i_t = σ(W_i · [h_{t-1}, x_t] + b_i)
        c_tilde = torch.tanh(c_tilde)  # C̃_t = tanh(W_C · [h_{t-1}, x_t] + b_C)
        C = f * C + i * c_tilde  # C_t = f_t * C_{t-1} + i_t * C̃_t
        o = torch.sigmoid(o)  # o_t = σ(W_o · [h_{t-1}, x_t] + b_o)
        h = o * torch.tanh(C)  # h_t = o_t * tanh(C_t)
        return h, (h, C)


class PeepholeLSTMCell(Cell):
    """LSTM whose gates also see the cell: f, i see C_{t-1}, o sees C_t.

    The lecture writes `W_f · [C_{t-1}, h_{t-1}, x_t]`; here that product is split into
    `P_f C_{t-1} + W_f · [h_{t-1}, x_t]` with P = [P_i; P_f; P_o] full H×H matrices, or,
    with `diagonal=True`, vectors p multiplied element-wise (Gers & Schmidhuber's form).
    """

    cell_type = "peephole"
    has_cell_state = True
    forget_gate = 1

    def __init__(
        self, input_size: int, hidden_size: int, diagonal: bool = False, forget_bias: float = 1.0
    ) -> None:
        super().__init__(input_size, hidden_size)
        self.diagonal = diagonal
        self.forget_bias = forget_bias
        self.W = nn.Parameter(torch.empty(4 * hidden_size, hidden_size + input_size))
        self.b = nn.Parameter(torch.empty(4 * hidden_size))
        shape = (3 * hidden_size,) if diagonal else (3 * hidden_size, hidden_size)
        self.P = nn.Parameter(torch.empty(shape))
        self.reset_parameters()

    def peep(self, C: Tensor, gate: int) -> Tensor:
        """P_gate C for gate 0 (i), 1 (f) or 2 (o)."""
        H = self.hidden_size
        P = self.P[gate * H : (gate + 1) * H]
        return C * P if self.diagonal else C @ P.T

    def forward(self, x: Tensor, state: tuple[Tensor, Tensor]) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        h, C_prev = state
        i, f, c_tilde, o = (torch.cat([h, x], 1) @ self.W.T + self.b).chunk(4, 1)
        f = torch.sigmoid(f + self.peep(C_prev, 1))  # f_t = σ(W_f · [C_{t-1}, h_{t-1}, x_t] + b_f)
        i = torch.sigmoid(i + self.peep(C_prev, 0))  # i_t = σ(W_i · [C_{t-1}, h_{t-1}, x_t] + b_i)
        c_tilde = torch.tanh(c_tilde)  # C̃_t = tanh(W_C · [h_{t-1}, x_t] + b_C)
        C = f * C_prev + i * c_tilde  # C_t = f_t * C_{t-1} + i_t * C̃_t
        o = torch.sigmoid(o + self.peep(C, 2))  # o_t = σ(W_o · [C_t, h_{t-1}, x_t] + b_o)
        h = o * torch.tanh(C)  # h_t = o_t * tanh(C_t)
        return h, (h, C)


class CoupledLSTMCell(Cell):
    """LSTM with coupled forget and input gates; rows of W are [f, c̃, o] over [h_{t-1}, x_t]."""

    cell_type = "coupled"
    has_cell_state = True
    forget_gate = 0

    def __init__(self, input_size: int, hidden_size: int, forget_bias: float = 1.0) -> None:
        super().__init__(input_size, hidden_size)
        self.forget_bias = forget_bias
        self.W = nn.Parameter(torch.empty(3 * hidden_size, hidden_size + input_size))
        self.b = nn.Parameter(torch.empty(3 * hidden_size))
        self.reset_parameters()

    def forward(self, x: Tensor, state: tuple[Tensor, Tensor]) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        h, C = state
        f, c_tilde, o = (torch.cat([h, x], 1) @ self.W.T + self.b).chunk(3, 1)
        f = torch.sigmoid(f)  # f_t = σ(W_f · [h_{t-1}, x_t] + b_f)
        c_tilde = torch.tanh(c_tilde)  # C̃_t = tanh(W_C · [h_{t-1}, x_t] + b_C)
        C = f * C + (1 - f) * c_tilde  # C_t = f_t * C_{t-1} + (1 - f_t) * C̃_t
        o = torch.sigmoid(o)  # o_t = σ(W_o · [h_{t-1}, x_t] + b_o)
        h = o * torch.tanh(C)  # h_t = o_t * tanh(C_t)
        return h, (h, C)


class MogrifierLSTMCell(LSTMCell):
    """Mogrifier LSTM (Melis, Kočiský and Blunsom 2020): before the LSTM step, x_t and h_{t-1}
    gate each other in turn for `rounds` rounds, then the standard LSTM takes the results.

    Round j = 1, 2, …, r (x^0 = x_t, h^0 = h_{t-1}; each round changes one of the two):
        odd j:   x^j = 2σ(Q^j h^{j-1}) * x^{j-2}
        even j:  h^j = 2σ(R^j x^{j-1}) * h^{j-2}
    Q (its (r+1)//2 matrices, I×H, stacked) and R (r//2 matrices, H×I) have no bias; the factor
    2 makes a gate of 0.5 leave its input as it is. rounds=0 is the plain LSTM.
    """

    cell_type = "mogrifier"

    def __init__(self, input_size: int, hidden_size: int, rounds: int = 5,
                 forget_bias: float = 1.0) -> None:
        if rounds < 0:
            raise RnnlabError(f"rounds must be 0 or more, got {rounds}")
        super().__init__(input_size, hidden_size, forget_bias)
        self.rounds = rounds
        self.Q = nn.Parameter(torch.empty((rounds + 1) // 2, input_size, hidden_size))
        self.R = nn.Parameter(torch.empty(rounds // 2, hidden_size, input_size))
        self.reset_parameters()

    def mogrify(self, x: Tensor, h: Tensor) -> tuple[Tensor, Tensor]:
        """x_t and h_{t-1} after the rounds of mutual gating."""
        for j in range(1, self.rounds + 1):
            if j % 2:
                x = 2 * torch.sigmoid(h @ self.Q[j // 2].T) * x  # x^j = 2σ(Q^j h^{j-1}) * x^{j-2}
            else:
                h = 2 * torch.sigmoid(x @ self.R[j // 2 - 1].T) * h  # h^j = 2σ(R^j x^{j-1}) * h^{j-2}
        return x, h

    def forward(self, x: Tensor, state: tuple[Tensor, Tensor]) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        h, C = state
        x, h = self.mogrify(x, h)
        return super().forward(x, (h, C))


class GRUCell(Cell):
    """GRU as the lecture writes it: the reset gate acts on h_{t-1} before the product.

    Rows of W_zr are [z, r] over [h_{t-1}, x_t]; W maps [r_t * h_{t-1}, x_t] to h̃_t.
    (torch.nn.GRU applies r after the product, a different function.)
    """

    cell_type = "gru"
    hidden_weights = ("W_zr", "W")  # W's first H columns meet r * h_{t-1}, still h's

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__(input_size, hidden_size)
        self.W_zr = nn.Parameter(torch.empty(2 * hidden_size, hidden_size + input_size))
        self.b_zr = nn.Parameter(torch.empty(2 * hidden_size))
        self.W = nn.Parameter(torch.empty(hidden_size, hidden_size + input_size))
        self.b = nn.Parameter(torch.empty(hidden_size))
        self.reset_parameters()

    def forward(self, x: Tensor, h: Tensor) -> tuple[Tensor, Tensor]:
        z, r = torch.sigmoid(torch.cat([h, x], 1) @ self.W_zr.T + self.b_zr).chunk(2, 1)
        # z_t = σ(W_z · [h_{t-1}, x_t]),  r_t = σ(W_r · [h_{t-1}, x_t])
        h_tilde = torch.tanh(torch.cat([r * h, x], 1) @ self.W.T + self.b)
        # h̃_t = tanh(W · [r_t * h_{t-1}, x_t])
        h = (1 - z) * h + z * h_tilde  # h_t = (1 - z_t) * h_{t-1} + z_t * h̃_t
        return h, h


def check_cell_type(cell_type: str) -> None:
    """RnnlabError unless `cell_type` is one of CELL_TYPES."""
    if cell_type not in CELL_TYPES:
        raise RnnlabError(f"unknown cell type {cell_type!r}; choose from {', '.join(CELL_TYPES)}")


def make_cell(cell_type: str, input_size: int, hidden_size: int, **options) -> Cell:
    """Build a cell by its name: rnn, rnn-relu, lstm, peephole, coupled, gru or mogrifier."""
    check_cell_type(cell_type)
    if cell_type == "rnn":
        return RNNCell(input_size, hidden_size, options.pop("nonlinearity", "tanh"), **options)
    if cell_type == "rnn-relu":
        return RNNCell(input_size, hidden_size, "relu", **options)
    classes = {"lstm": LSTMCell, "peephole": PeepholeLSTMCell, "coupled": CoupledLSTMCell,
               "gru": GRUCell, "mogrifier": MogrifierLSTMCell}
    return classes[cell_type](input_size, hidden_size, **options)
