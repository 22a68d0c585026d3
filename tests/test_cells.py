"""Each cell computes the lecture's equations, written out independently here."""

import pytest
import torch

from rnnlab.cells import (
    CELL_TYPES,
    CoupledLSTMCell,
    GRUCell,
    LSTMCell,
    MogrifierLSTMCell,
    PeepholeLSTMCell,
    RNNCell,
    make_cell,
    map_state,
)
from rnnlab.errors import RnnlabError

B, X, H = 3, 4, 5
σ = torch.sigmoid


def inputs(has_cell_state):
    torch.manual_seed(0)
    x, h, C = (torch.randn(B, n, dtype=torch.double) for n in (X, H, H))
    return x, ((h, C) if has_cell_state else h)


def gate_rows(W, b, k, H):
    """The k-th block of H rows of W and b: one gate's W_gate and b_gate."""
    return W[k * H : (k + 1) * H], b[k * H : (k + 1) * H]


@pytest.mark.parametrize("nonlinearity,act", [("tanh", torch.tanh), ("relu", torch.relu),
                                              ("linear", lambda a: a)])
def test_rnn(nonlinearity, act):
    cell = RNNCell(X, H, nonlinearity).double()
    x, s = inputs(False)
    h, state = cell(x, s)
    expected = act(x @ cell.W.T + s @ cell.U.T + cell.b)
    assert torch.allclose(h, expected) and torch.equal(h, state)


def test_lstm():
    cell = LSTMCell(X, H).double()
    x, (h, C) = inputs(True)
    hx = torch.cat([h, x], 1)
    gate = {name: hx @ W.T + b for k, name in enumerate("ifco")
            for W, b in [gate_rows(cell.W, cell.b, k, H)]}
    f, i, c_tilde, o = σ(gate["f"]), σ(gate["i"]), torch.tanh(gate["c"]), σ(gate["o"])
    C_new = f * C + i * c_tilde
    h_new, (h_state, C_state) = cell(x, (h, C))
    assert torch.allclose(C_state, C_new)
    assert torch.allclose(h_new, o * torch.tanh(C_new)) and torch.equal(h_new, h_state)


@pytest.mark.parametrize("diagonal", [False, True])
def test_peephole(diagonal):
    cell = PeepholeLSTMCell(X, H, diagonal=diagonal).double()
    x, (h, C) = inputs(True)

    def gate(k, C_seen):
        """σ-input of gate k: W_gate · [C, h, x] + b_gate, the lecture's form."""
        W, b = gate_rows(cell.W, cell.b, k, H)
        P = cell.P[[0, 1, None, 2][k] * H : ([0, 1, None, 2][k] + 1) * H]
        P = torch.diag(P) if diagonal else P
        return torch.cat([C_seen, h, x], 1) @ torch.cat([P, W], 1).T + b

    f, i = σ(gate(1, C)), σ(gate(0, C))
    W_c, b_c = gate_rows(cell.W, cell.b, 2, H)
    C_new = f * C + i * torch.tanh(torch.cat([h, x], 1) @ W_c.T + b_c)
    o = σ(gate(3, C_new))
    h_new, (_, C_state) = cell(x, (h, C))
    assert torch.allclose(C_state, C_new) and torch.allclose(h_new, o * torch.tanh(C_new))


def test_peephole_full_differs_from_plain_lstm():
    """The peephole terms matter: zero them and the cell is the plain LSTM."""
    cell = PeepholeLSTMCell(X, H).double()
    plain = LSTMCell(X, H).double()
    plain.load_state_dict({"W": cell.W, "b": cell.b})
    x, state = inputs(True)
    assert not torch.allclose(cell(x, state)[0], plain(x, state)[0])
    with torch.no_grad():
        cell.P.zero_()
    assert torch.allclose(cell(x, state)[0], plain(x, state)[0])


def test_coupled():
    cell = CoupledLSTMCell(X, H).double()
    x, (h, C) = inputs(True)
    hx = torch.cat([h, x], 1)
    f, c_tilde, o = ((hx @ W.T + b) for k in range(3) for W, b in [gate_rows(cell.W, cell.b, k, H)])
    f, c_tilde, o = σ(f), torch.tanh(c_tilde), σ(o)
    C_new = f * C + (1 - f) * c_tilde
    h_new, (_, C_state) = cell(x, (h, C))
    assert torch.allclose(C_state, C_new) and torch.allclose(h_new, o * torch.tanh(C_new))


def test_gru_resets_before_the_product():
    cell = GRUCell(X, H).double()
    x, h = inputs(False)
    W_z, b_z = gate_rows(cell.W_zr, cell.b_zr, 0, H)
    W_r, b_r = gate_rows(cell.W_zr, cell.b_zr, 1, H)
    z = σ(torch.cat([h, x], 1) @ W_z.T + b_z)
    r = σ(torch.cat([h, x], 1) @ W_r.T + b_r)
    h_tilde = torch.tanh(torch.cat([r * h, x], 1) @ cell.W.T + cell.b)
    h_new, state = cell(x, h)
    assert torch.allclose(h_new, (1 - z) * h + z * h_tilde) and torch.equal(h_new, state)


def test_mogrifier_gates_x_and_h_in_turn_then_steps_the_lstm():
    cell = MogrifierLSTMCell(X, H, rounds=5).double()
    assert cell.Q.shape == (3, X, H) and cell.R.shape == (2, H, X)
    x, (h, C) = inputs(True)
    Q1, Q3, Q5 = cell.Q
    R2, R4 = cell.R
    x1 = 2 * σ(h @ Q1.T) * x
    h2 = 2 * σ(x1 @ R2.T) * h
    x3 = 2 * σ(h2 @ Q3.T) * x1
    h4 = 2 * σ(x3 @ R4.T) * h2
    x5 = 2 * σ(h4 @ Q5.T) * x3
    lstm = LSTMCell(X, H).double()
    with torch.no_grad():
        lstm.W.copy_(cell.W)
        lstm.b.copy_(cell.b)
    h_new, (h_state, C_state) = cell(x, (h, C))
    h_lstm, (_, C_lstm) = lstm(x5, (h4, C))
    assert torch.allclose(h_new, h_lstm) and torch.allclose(C_state, C_lstm)
    assert torch.equal(h_new, h_state) and not torch.allclose(h_new, lstm(x, (h, C))[0])


def test_mogrifier_without_rounds_is_the_lstm():
    cell = MogrifierLSTMCell(X, H, rounds=0).double()
    lstm = LSTMCell(X, H).double()
    with torch.no_grad():
        lstm.W.copy_(cell.W)
        lstm.b.copy_(cell.b)
    x, state = inputs(True)
    assert torch.equal(cell(x, state)[0], lstm(x, state)[0])
    with pytest.raises(RnnlabError, match="rounds"):
        MogrifierLSTMCell(X, H, rounds=-1)


@pytest.mark.parametrize("cls", [LSTMCell, PeepholeLSTMCell, MogrifierLSTMCell])
def test_forget_bias_default_is_one(cls):
    cell = cls(X, H)
    assert torch.equal(cell.b[H : 2 * H], torch.ones(H))
    assert cls(X, H, forget_bias=0.0).b[H : 2 * H].abs().max() <= 1 / H**0.5


def test_coupled_forget_bias():
    assert torch.equal(CoupledLSTMCell(X, H).b[:H], torch.ones(H))


@pytest.mark.parametrize("cell_type", CELL_TYPES)
def test_make_cell_and_zero_state(cell_type):
    cell = make_cell(cell_type, X, H)
    x = torch.randn(B, X)
    state = cell.zero_state(B, x)
    h, new_state = cell(x, state)
    assert h.shape == (B, H)
    assert type(new_state) is type(state)


def test_make_cell_rejects_unknown():
    with pytest.raises(RnnlabError, match="unknown cell type"):
        make_cell("transformer", X, H)
    with pytest.raises(RnnlabError):
        RNNCell(X, H, "sigmoid")
    with pytest.raises(RnnlabError):
        LSTMCell(0, H)


@pytest.mark.parametrize("cell_type", [*CELL_TYPES, "rnn-linear"])
def test_cell_type_names_what_make_cell_built(cell_type):
    options = {"nonlinearity": "linear"} if cell_type == "rnn-linear" else {}
    assert make_cell("rnn" if options else cell_type, X, H, **options).cell_type == cell_type


def test_map_state_keeps_the_structure():
    h, C = torch.ones(B, H), torch.zeros(B, H)
    assert torch.equal(map_state(torch.neg, h), -h)
    pair = map_state(torch.add, (h, C), (C, h))
    assert type(pair) is tuple and torch.equal(pair[0], h) and torch.equal(pair[1], h)
