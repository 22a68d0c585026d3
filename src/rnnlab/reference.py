"""Reference recurrent nets in NumPy float64, with backpropagation through time written by hand.

No autograd anywhere: every derivative below is the chain rule applied to the forward line it
follows. The cells compute exactly the functions of `rnnlab.cells`, with the same parameter
names and layouts (`params_from_cell` copies them out of a torch cell), so tests can hold
autograd to this reference. Each cell is one pair of functions, `<cell>_step` (one forward
step, returning what the backward step needs) and `<cell>_step_back` (one backward step).

Backward convention: `d<name>` is ∂L/∂<name> for the loss L being differentiated, and `da_g`
is the gradient at gate g's pre-activation. Useful facts: σ' = σ(1 - σ), tanh' = 1 - tanh².

`lecture_rnn` is the lecture's complete network, s_t = tanh(W x_t + U s_{t-1}),
ŷ_t = softmax(V s_t), E = -Σ_t y_t · log ŷ_t, with BPTT as the lecture writes it.
"""

from __future__ import annotations

from functools import partial

import numpy as np

from rnnlab.errors import RnnlabError

Array = np.ndarray
State = Array | tuple[Array, Array]
Params = dict[str, Array]

LSTM_FAMILY = ("lstm", "peephole", "coupled", "mogrifier")


def sigmoid(a: Array) -> Array:
    """The logistic function σ(a) = 1 / (1 + e^-a)."""
    return 1.0 / (1.0 + np.exp(-a))


def params_from_cell(cell) -> Params:
    """A torch cell's parameters as float64 NumPy arrays, under the cell's own names."""
    return {name: p.detach().cpu().double().numpy().copy() for name, p in cell.named_parameters()}


# ---- vanilla RNN: s_t = act(W x_t + U s_{t-1} + b) ------------------------------------------

ACTIVATIONS = {  # name: (act(a), act'(a) written with a and s = act(a))
    "tanh": (np.tanh, lambda a, s: 1.0 - s**2),
    "relu": (lambda a: np.maximum(a, 0.0), lambda a, s: (a > 0).astype(a.dtype)),
    "linear": (lambda a: a, lambda a, s: np.ones_like(a)),
}


def rnn_step(p: Params, x: Array, s_prev: Array, act: str = "tanh") -> tuple[Array, Array, tuple]:
    """One step s_t = act(W x_t + U s_{t-1} + b); returns (s_t, s_t, cache)."""
    a = x @ p["W"].T + s_prev @ p["U"].T + p["b"]
    s = ACTIVATIONS[act][0](a)
    return s, s, (x, s_prev, a, s)


def rnn_step_back(
    p: Params, cache: tuple, ds: Array, act: str = "tanh"
) -> tuple[Params, Array, Array]:
    """Backward of `rnn_step`: ∂L/∂s_t -> (parameter gradients, ∂L/∂x_t, ∂L/∂s_{t-1})."""
    x, s_prev, a, s = cache
    da = ds * ACTIVATIONS[act][1](a, s)
    grads = {"W": da.T @ x, "U": da.T @ s_prev, "b": da.sum(0)}
    return grads, da @ p["W"], da @ p["U"]


# ---- standard LSTM; rows of W are the gates [i, f, c̃, o] over [h_{t-1}, x_t] -----------------

def lstm_step(p: Params, x: Array, state: tuple[Array, Array]) -> tuple[Array, tuple, tuple]:
    """One LSTM step; returns (h_t, (h_t, C_t), cache)."""
    h_prev, C_prev = state
    hx = np.concatenate([h_prev, x], 1)  # [h_{t-1}, x_t]
    a_i, a_f, a_c, a_o = np.split(hx @ p["W"].T + p["b"], 4, axis=1)
    f = sigmoid(a_f)  # f_t = σ(W_f · [h_{t-1}, x_t] + b_f)
    i = sigmoid(a_i)  # i_t = σ(W_i · [h_{t-1}, x_t] + b_i)
    c_tilde = np.tanh(a_c)  # C̃_t = tanh(W_C · [h_{t-1}, x_t] + b_C)
    C = f * C_prev + i * c_tilde  # C_t = f_t * C_{t-1} + i_t * C̃_t
    o = sigmoid(a_o)  # o_t = σ(W_o · [h_{t-1}, x_t] + b_o)
    h = o * np.tanh(C)  # h_t = o_t * tanh(C_t)
    return h, (h, C), (hx, C_prev, i, f, c_tilde, o, C)


def lstm_step_back(
    p: Params, cache: tuple, dstate: tuple[Array, Array]
) -> tuple[Params, Array, tuple]:
    """Backward of `lstm_step`: (dh_t, dC_t) -> (grads, dx_t, (dh_{t-1}, dC_{t-1}))."""
    dh, dC = dstate
    hx, C_prev, i, f, c_tilde, o, C = cache
    H = dh.shape[1]
    tanh_C = np.tanh(C)
    do = dh * tanh_C  # h_t = o_t * tanh(C_t)
    dC = dC + dh * o * (1 - tanh_C**2)  # C_t reaches L directly and through h_t
    df, di, dc_tilde = dC * C_prev, dC * c_tilde, dC * i  # C_t = f_t * C_{t-1} + i_t * C̃_t
    dC_prev = dC * f
    da = np.concatenate([di * i * (1 - i), df * f * (1 - f), dc_tilde * (1 - c_tilde**2),
                         do * o * (1 - o)], 1)
    dhx = da @ p["W"]
    return {"W": da.T @ hx, "b": da.sum(0)}, dhx[:, H:], (dhx[:, :H], dC_prev)


# ---- peephole LSTM: f, i also see C_{t-1}, o sees C_t, through P = [P_i; P_f; P_o] -------------

def _peep(P: Array, C: Array, gate: int) -> Array:
    """P_gate C: a matrix product for full peepholes, element-wise for diagonal ones."""
    H = C.shape[1]
    Pg = P[gate * H : (gate + 1) * H]
    return C * Pg if P.ndim == 1 else C @ Pg.T


def _peep_back(P: Array, C: Array, da: Array, gate: int) -> tuple[Array, Array]:
    """Backward of `_peep` given ∂L/∂(P_gate C): returns (∂L/∂P_gate, ∂L/∂C)."""
    H = C.shape[1]
    Pg = P[gate * H : (gate + 1) * H]
    if P.ndim == 1:
        return (da * C).sum(0), da * Pg
    return da.T @ C, da @ Pg


def peephole_step(p: Params, x: Array, state: tuple[Array, Array]) -> tuple[Array, tuple, tuple]:
    """One peephole-LSTM step; returns (h_t, (h_t, C_t), cache)."""
    h_prev, C_prev = state
    P = p["P"]
    hx = np.concatenate([h_prev, x], 1)
    a_i, a_f, a_c, a_o = np.split(hx @ p["W"].T + p["b"], 4, axis=1)
    f = sigmoid(a_f + _peep(P, C_prev, 1))  # f_t = σ(W_f · [C_{t-1}, h_{t-1}, x_t] + b_f)
    i = sigmoid(a_i + _peep(P, C_prev, 0))  # i_t = σ(W_i · [C_{t-1}, h_{t-1}, x_t] + b_i)
    c_tilde = np.tanh(a_c)  # C̃_t = tanh(W_C · [h_{t-1}, x_t] + b_C)
    C = f * C_prev + i * c_tilde  # C_t = f_t * C_{t-1} + i_t * C̃_t
    o = sigmoid(a_o + _peep(P, C, 2))  # o_t = σ(W_o · [C_t, h_{t-1}, x_t] + b_o)
    h = o * np.tanh(C)  # h_t = o_t * tanh(C_t)
    return h, (h, C), (hx, C_prev, i, f, c_tilde, o, C)


def peephole_step_back(
    p: Params, cache: tuple, dstate: tuple[Array, Array]
) -> tuple[Params, Array, tuple]:
    """Backward of `peephole_step`, as `lstm_step_back` plus the three peephole paths."""
    dh, dC = dstate
    hx, C_prev, i, f, c_tilde, o, C = cache
    P, H = p["P"], dh.shape[1]
    tanh_C = np.tanh(C)
    da_o = dh * tanh_C * o * (1 - o)
    dP_o, dC_from_o = _peep_back(P, C, da_o, 2)  # o_t sees C_t, so C_t also reaches L through o_t
    dC = dC + dh * o * (1 - tanh_C**2) + dC_from_o
    da_f = dC * C_prev * f * (1 - f)
    da_i = dC * c_tilde * i * (1 - i)
    da_c = dC * i * (1 - c_tilde**2)
    dP_i, dC_prev_from_i = _peep_back(P, C_prev, da_i, 0)
    dP_f, dC_prev_from_f = _peep_back(P, C_prev, da_f, 1)
    dC_prev = dC * f + dC_prev_from_i + dC_prev_from_f
    da = np.concatenate([da_i, da_f, da_c, da_o], 1)
    dhx = da @ p["W"]
    grads = {"W": da.T @ hx, "b": da.sum(0), "P": np.concatenate([dP_i, dP_f, dP_o], 0)}
    return grads, dhx[:, H:], (dhx[:, :H], dC_prev)


# ---- coupled LSTM: C_t = f_t * C_{t-1} + (1 - f_t) * C̃_t; rows of W are [f, c̃, o] ------------

def coupled_step(p: Params, x: Array, state: tuple[Array, Array]) -> tuple[Array, tuple, tuple]:
    """One coupled-gate LSTM step; returns (h_t, (h_t, C_t), cache)."""
    h_prev, C_prev = state
    hx = np.concatenate([h_prev, x], 1)
    a_f, a_c, a_o = np.split(hx @ p["W"].T + p["b"], 3, axis=1)
    f = sigmoid(a_f)  # f_t = σ(W_f · [h_{t-1}, x_t] + b_f)
    c_tilde = np.tanh(a_c)  # C̃_t = tanh(W_C · [h_{t-1}, x_t] + b_C)
    C = f * C_prev + (1 - f) * c_tilde  # C_t = f_t * C_{t-1} + (1 - f_t) * C̃_t
    o = sigmoid(a_o)  # o_t = σ(W_o · [h_{t-1}, x_t] + b_o)
    h = o * np.tanh(C)  # h_t = o_t * tanh(C_t)
    return h, (h, C), (hx, C_prev, f, c_tilde, o, C)


def coupled_step_back(
    p: Params, cache: tuple, dstate: tuple[Array, Array]
) -> tuple[Params, Array, tuple]:
    """Backward of `coupled_step`: (dh_t, dC_t) -> (grads, dx_t, (dh_{t-1}, dC_{t-1}))."""
    dh, dC = dstate
    hx, C_prev, f, c_tilde, o, C = cache
    H = dh.shape[1]
    tanh_C = np.tanh(C)
    do = dh * tanh_C
    dC = dC + dh * o * (1 - tanh_C**2)
    df = dC * (C_prev - c_tilde)  # f_t weighs C_{t-1} against C̃_t
    dc_tilde = dC * (1 - f)
    dC_prev = dC * f
    da = np.concatenate([df * f * (1 - f), dc_tilde * (1 - c_tilde**2), do * o * (1 - o)], 1)
    dhx = da @ p["W"]
    return {"W": da.T @ hx, "b": da.sum(0)}, dhx[:, H:], (dhx[:, :H], dC_prev)


# ---- Mogrifier LSTM: x_t and h_{t-1} gate each other in turn (Q^j, R^j), then the LSTM step ---

def mogrifier_step(p: Params, x: Array, state: tuple[Array, Array]) -> tuple[Array, tuple, tuple]:
    """One Mogrifier LSTM step; returns (h_t, (h_t, C_t), cache)."""
    h, C_prev = state
    rounds = []  # per round j: (the vector it gates, its gate, the vector the gate reads)
    for j in range(1, len(p["Q"]) + len(p["R"]) + 1):
        if j % 2:
            g = sigmoid(h @ p["Q"][j // 2].T)
            rounds.append((x, g, h))
            x = 2 * g * x  # x^j = 2σ(Q^j h^{j-1}) * x^{j-2}
        else:
            g = sigmoid(x @ p["R"][j // 2 - 1].T)
            rounds.append((h, g, x))
            h = 2 * g * h  # h^j = 2σ(R^j x^{j-1}) * h^{j-2}
    out, new_state, cache = lstm_step(p, x, (h, C_prev))
    return out, new_state, (rounds, cache)


def mogrifier_step_back(
    p: Params, cache: tuple, dstate: tuple[Array, Array]
) -> tuple[Params, Array, tuple]:
    """Backward of `mogrifier_step`: (dh_t, dC_t) -> (grads, dx_t, (dh_{t-1}, dC_{t-1}))."""
    rounds, lstm_cache = cache
    grads, dx, (dh, dC_prev) = lstm_step_back(p, lstm_cache, dstate)  # dx, dh: at x^r, h^r
    dQ, dR = np.zeros_like(p["Q"]), np.zeros_like(p["R"])
    for j in reversed(range(1, len(rounds) + 1)):
        gated, g, read = rounds[j - 1]
        if j % 2:  # x^j = 2 g * x^{j-2}, g = σ(Q^j h^{j-1})
            da = dx * 2 * gated * g * (1 - g)
            dQ[j // 2] += da.T @ read
            dx, dh = dx * 2 * g, dh + da @ p["Q"][j // 2]
        else:  # h^j = 2 g * h^{j-2}, g = σ(R^j x^{j-1})
            da = dh * 2 * gated * g * (1 - g)
            dR[j // 2 - 1] += da.T @ read
            dh, dx = dh * 2 * g, dx + da @ p["R"][j // 2 - 1]
    return {**grads, "Q": dQ, "R": dR}, dx, (dh, dC_prev)


# ---- GRU in the lecture's form: r_t acts on h_{t-1} before the product with W -----------------

def gru_step(p: Params, x: Array, h_prev: Array) -> tuple[Array, Array, tuple]:
    """One GRU step; returns (h_t, h_t, cache)."""
    hx = np.concatenate([h_prev, x], 1)
    z, r = np.split(sigmoid(hx @ p["W_zr"].T + p["b_zr"]), 2, axis=1)
    # z_t = σ(W_z · [h_{t-1}, x_t]),  r_t = σ(W_r · [h_{t-1}, x_t])
    rhx = np.concatenate([r * h_prev, x], 1)
    h_tilde = np.tanh(rhx @ p["W"].T + p["b"])  # h̃_t = tanh(W · [r_t * h_{t-1}, x_t])
    h = (1 - z) * h_prev + z * h_tilde  # h_t = (1 - z_t) * h_{t-1} + z_t * h̃_t
    return h, h, (hx, rhx, h_prev, z, r, h_tilde)


def gru_step_back(p: Params, cache: tuple, dh: Array) -> tuple[Params, Array, Array]:
    """Backward of `gru_step`: ∂L/∂h_t -> (grads, ∂L/∂x_t, ∂L/∂h_{t-1})."""
    hx, rhx, h_prev, z, r, h_tilde = cache
    H = dh.shape[1]
    dz = dh * (h_tilde - h_prev)  # h_t = (1 - z_t) * h_{t-1} + z_t * h̃_t
    dh_prev = dh * (1 - z)
    da_h = dh * z * (1 - h_tilde**2)
    drhx = da_h @ p["W"]  # h̃_t = tanh(W · [r_t * h_{t-1}, x_t] + b)
    dr = drhx[:, :H] * h_prev
    dh_prev = dh_prev + drhx[:, :H] * r
    da_zr = np.concatenate([dz * z * (1 - z), dr * r * (1 - r)], 1)
    dhx = da_zr @ p["W_zr"]  # z_t, r_t = σ(W_zr · [h_{t-1}, x_t] + b_zr)
    grads = {"W_zr": da_zr.T @ hx, "b_zr": da_zr.sum(0), "W": da_h.T @ rhx, "b": da_h.sum(0)}
    return grads, drhx[:, H:] + dhx[:, H:], dh_prev + dhx[:, :H]


STEPS = {
    "rnn": (partial(rnn_step, act="tanh"), partial(rnn_step_back, act="tanh")),
    "rnn-relu": (partial(rnn_step, act="relu"), partial(rnn_step_back, act="relu")),
    "rnn-linear": (partial(rnn_step, act="linear"), partial(rnn_step_back, act="linear")),
    "lstm": (lstm_step, lstm_step_back),
    "peephole": (peephole_step, peephole_step_back),
    "coupled": (coupled_step, coupled_step_back),
    "gru": (gru_step, gru_step_back),
    "mogrifier": (mogrifier_step, mogrifier_step_back),
}


def _steps(cell_type: str):
    if cell_type not in STEPS:
        raise RnnlabError(f"unknown cell type {cell_type!r}; choose from {', '.join(STEPS)}")
    return STEPS[cell_type]


# ---- whole sequences: forward, BPTT, truncated BPTT, Jacobians -------------------------------

def forward(cell_type: str, params: Params, x: Array, state0: State) -> tuple[Array, list, list]:
    """Run a cell over x (T, B, I) from state0; returns (h of every step (T, B, H), states, caches).

    `states[t]` is the state after step t, so `states[-1]` is the final state.
    """
    step = _steps(cell_type)[0]
    state, hs, states, caches = state0, [], [], []
    for t in range(x.shape[0]):
        h, state, cache = step(params, x[t], state)
        hs.append(h)
        states.append(state)
        caches.append(cache)
    return np.stack(hs), states, caches


def backward(
    cell_type: str,
    params: Params,
    caches: list,
    dh: Array,
    dstate: State | None = None,
    k: int | None = None,
) -> tuple[Params, Array, State]:
    """BPTT: ∂L/∂h_t for every t (T, B, H), optionally ∂L/∂(final state) -> (grads, dx, dstate0).

    Every step shares the parameters, so each parameter's gradient is the sum over steps.
    With `k`, the state is detached after every k steps (truncated BPTT): the gradient
    reaching the state between steps t-1 and t is dropped whenever t is a positive multiple
    of k, so gradients flow back at most k steps, and dstate0 comes from the first k steps only.
    """
    step_back = _steps(cell_type)[1]
    if dstate is None:
        zero = np.zeros_like(dh[0])
        dstate = (zero, zero) if cell_type in LSTM_FAMILY else zero
    grads = {name: np.zeros_like(p) for name, p in params.items()}
    dxs = []
    for t in reversed(range(len(caches))):
        # h_t reaches L directly (dh[t]) and through the next state (dstate)
        dstate = (dstate[0] + dh[t], dstate[1]) if isinstance(dstate, tuple) else dstate + dh[t]
        step_grads, dx, dstate = step_back(params, caches[t], dstate)
        for name, g in step_grads.items():
            grads[name] += g
        dxs.append(dx)
        if k is not None and t > 0 and t % k == 0:
            dstate = tuple(np.zeros_like(d) for d in dstate) if isinstance(dstate, tuple) \
                else np.zeros_like(dstate)
    return grads, np.stack(dxs[::-1]), dstate


def jacobians(cell_type: str, params: Params, x: Array, state0: State) -> list[Array]:
    """Per-step Jacobians ∂s_t/∂s_{t-1}, each (B, S, S), over the state vector s = h or [h, C].

    Row j of ∂s_t/∂s_{t-1} is the backward step applied to the unit vector e_j (∂L/∂s_t = e_j
    for L = s_t[j]), so these are the hand-written derivatives, not a separate derivation.
    Their product over steps is the lecture's ∂s_t/∂s_k.
    """
    step_back = _steps(cell_type)[1]
    _, _, caches = forward(cell_type, params, x, state0)
    B, H = x.shape[1], np.shape(state0[0] if isinstance(state0, tuple) else state0)[1]
    pair = cell_type in LSTM_FAMILY
    S = 2 * H if pair else H
    result = []
    for cache in caches:
        J = np.zeros((B, S, S))
        for j in range(S):
            e = np.zeros((B, S))
            e[:, j] = 1.0
            _, _, ds_prev = step_back(params, cache, (e[:, :H], e[:, H:]) if pair else e)
            J[:, j, :] = np.concatenate(ds_prev, 1) if pair else ds_prev
        result.append(J)
    return result


# ---- the lecture's complete RNN: s_t = tanh(W x_t + U s_{t-1} + b), ŷ_t = softmax(V s_t + c) --

def softmax(z: Array) -> Array:
    """Softmax over the last axis, shifted by the maximum so exp cannot overflow."""
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def lecture_rnn_forward(params: Params, x: Array, y: Array, s0: Array) -> tuple[float, dict]:
    """Forward pass and loss E = -Σ_t y_t · log ŷ_t (summed over the batch); returns (E, cache).

    params: W (H, I), U (H, H), b (H,), V (K, H), c (K,); x (T, B, I); y one-hot (T, B, K).
    In the cache, s[0] is s0 and s[t + 1] the state after step t (code indices start at 0).
    """
    if not np.allclose(y.sum(-1), 1.0):
        raise RnnlabError("targets y must be one-hot (each row summing to 1)")
    W, U, b, V, c = (params[n] for n in ("W", "U", "b", "V", "c"))
    s, ss, y_hats = s0, [s0], []
    for t in range(x.shape[0]):
        s = np.tanh(x[t] @ W.T + s @ U.T + b)  # s_t = tanh(W x_t + U s_{t-1})
        y_hats.append(softmax(s @ V.T + c))  # ŷ_t = softmax(V s_t)
        ss.append(s)
    y_hat = np.stack(y_hats)
    E = float(-(y * np.log(y_hat)).sum())  # E = Σ_t E_t,  E_t = -y_t · log ŷ_t
    return E, {"x": x, "y": y, "s": ss, "y_hat": y_hat}


def lecture_rnn_backward(params: Params, cache: dict) -> Params:
    """BPTT for the lecture's RNN: ∂E/∂W, ∂E/∂U, ∂E/∂b, ∂E/∂V, ∂E/∂c, and ∂E/∂s_0 as "s0".

    Δs_t = ∂E/∂s_t collects every E_{t'} with t' ≥ t: E_t directly through V, later ones
    through s_{t+1}. Each gradient is a sum over time, ∂E/∂W = Σ_t ∂E_t/∂W.
    """
    U, V = params["U"], params["V"]
    x, y, s, y_hat = cache["x"], cache["y"], cache["s"], cache["y_hat"]
    grads = {name: np.zeros_like(params[name]) for name in ("W", "U", "b", "V", "c")}
    da_next = np.zeros_like(s[0])  # ∂E/∂(pre-activation of s_{t+1}); none after the last step
    for t in reversed(range(x.shape[0])):
        dz = y_hat[t] - y[t]  # ∂E_t/∂(V s_t + c): softmax with cross-entropy, y one-hot
        grads["V"] += dz.T @ s[t + 1]
        grads["c"] += dz.sum(0)
        delta_s = dz @ V + da_next @ U  # Δs_t = ∂E/∂s_t
        da = delta_s * (1 - s[t + 1] ** 2)  # through tanh
        grads["W"] += da.T @ x[t]
        grads["U"] += da.T @ s[t]
        grads["b"] += da.sum(0)
        da_next = da
    grads["s0"] = da_next @ U
    return grads


def lecture_rnn(params: Params, x: Array, y: Array, s0: Array) -> tuple[float, Params]:
    """The lecture's RNN: loss E and its gradients (see `lecture_rnn_backward`)."""
    E, cache = lecture_rnn_forward(params, x, y, s0)
    return E, lecture_rnn_backward(params, cache)


def lecture_step_loss_grads(params: Params, cache: dict, t: int) -> Params:
    """∂E_t/∂W and ∂E_t/∂U for one step's loss, by the lecture's sum over k = t, ..., 0.

    ∂E_t/∂W = Σ_k (∂s_t/∂s_k)(∂s_k/∂W) Δs_t with Δs_t = ∂E_t/∂s_t: walking k down from t,
    the running Δ is ∂E_t/∂s_k, one Jacobian ∂s_k/∂s_{k-1} = diag(1 - s_k²) U per step.
    Summing over t gives `lecture_rnn_backward`'s W and U, at quadratic cost.
    """
    U, V = params["U"], params["V"]
    x, y, s, y_hat = cache["x"], cache["y"], cache["s"], cache["y_hat"]
    dW, dU = np.zeros_like(params["W"]), np.zeros_like(U)
    delta = (y_hat[t] - y[t]) @ V  # Δs_t = ∂E_t/∂s_t
    for k in range(t, -1, -1):
        da = delta * (1 - s[k + 1] ** 2)  # ∂E_t/∂(pre-activation of s_k)
        dW += da.T @ x[k]  # the k-th term of the sum
        dU += da.T @ s[k]
        delta = da @ U  # ∂E_t/∂s_{k-1}
    return {"W": dW, "U": dU}
