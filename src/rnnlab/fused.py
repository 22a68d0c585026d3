"""Fast layers for the cells torch has no kernel for: BPTT written out by hand.

`LAYERS[cell_type](cell, x, state, lengths) -> (outputs, final_state)` computes exactly what
`rnnlab.recurrent.run_cell` computes, faster. Each layer is one `torch.autograd.Function`
taking the cell's own parameters, so they receive the gradients:

- forward: the input projections `W_x · x_t + b` of all steps in one matrix product; per step
  only the recurrent product `U · h_{t-1}` (added in place into the gate buffer) and in-place
  element-wise math, every result written into a preallocated buffer.
- backward: BPTT by hand. The local derivatives of all steps are formed at once before the
  loop; the loop only chains them, one product with U per step. Each weight gradient is then
  one matrix product over all T·B rows, the lecture's ∂E/∂W = Σ_t ∂E_t/∂W.

Notation: the state after s steps is h_s, C_s (s = 0..T), so step t maps h_t to h_{t+1}; the
weight matrix W of a cell splits into the columns W_h acting on h and W_x acting on x.

Variable lengths: every step is computed for every sequence, then outputs past a sequence's
length are masked to zero and its final state is read at its own length. Those extra steps
thus receive exactly zero gradient, which is what run_cell's masking gives.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch
from torch import Tensor
from torch.autograd import Function

from rnnlab.cells import CoupledLSTMCell, GRUCell, MogrifierLSTMCell, PeepholeLSTMCell, State, map_state


def _mask(lengths: Tensor, T: int, like: Tensor) -> Tensor:
    """(T, B, 1): 1 at the real steps of each sequence, 0 past its length."""
    steps = torch.arange(T, device=like.device).unsqueeze(1)
    return (steps < lengths.to(like.device)).unsqueeze(2).to(like.dtype)


def _outputs(hs: Tensor, lengths: Tensor | None) -> Tensor:
    """Outputs h_1..h_T as a fresh tensor (the buffer stays private to backward)."""
    out = hs[1:]
    return out.clone() if lengths is None else out * _mask(lengths, out.shape[0], out)


def _final(states: Tensor, lengths: Tensor | None) -> Tensor:
    """Each sequence's state at its own length, from the (T+1, B, H) history."""
    if lengths is None:
        return states[-1].clone()
    return states[lengths.to(states.device), torch.arange(states.shape[1], device=states.device)]


def _state_grads(d_final: Tensor, lengths: Tensor | None, T: int, d_out: Tensor | None = None) -> Tensor:
    """(T+1, B, H): the gradient reaching each state h_s directly, from outputs and final state."""
    grads = d_final.new_zeros(T + 1, *d_final.shape)
    if d_out is not None:
        grads[1:] = d_out if lengths is None else d_out * _mask(lengths, T, d_out)
    if lengths is None:
        grads[T] += d_final
    else:
        grads[lengths.to(d_final.device), torch.arange(d_final.shape[0], device=d_final.device)] += d_final
    return grads


def _project(x: Tensor, W_x: Tensor, b: Tensor) -> Tensor:
    """W_x · x_t + b for all T steps in one product: (T, B, rows of W_x)."""
    T, B, I = x.shape
    return torch.addmm(b, x.reshape(T * B, I), W_x.T).view(T, B, -1)


def _weight_grads(
    d_gates: Tensor, h_side: Tensor, x: Tensor, W_x: Tensor, need_dx: bool
) -> tuple[Tensor | None, Tensor, Tensor]:
    """dx, dW = Σ_t d_gates_t^T [h_side_t, x_t] and db = Σ_t d_gates_t, each over all T·B rows."""
    T, B, I = x.shape
    rows = d_gates.reshape(T * B, -1)
    H = h_side.shape[2]
    dW = rows.new_empty(rows.shape[1], H + I)
    # Written into its column blocks of dW, so no concatenation copy.
    torch.mm(rows.T, h_side.reshape(T * B, H), out=dW[:, :H])
    torch.mm(rows.T, x.reshape(T * B, I), out=dW[:, H:])
    dx = (rows @ W_x).view(T, B, I) if need_dx else None
    return dx, dW, rows.sum(0)


# oneDNN packs a weight matrix once into its blocked layout, so that the small per-step products
# skip repacking it each time: 35-40 % faster products at 650 units; at 200 units no faster, and
# the packing itself then costs, hence the size threshold.
_CAN_PACK = torch.backends.mkldnn.is_available() and all(
    hasattr(torch.ops.mkldnn, op) for op in ("_reorder_linear_weight", "_linear_pointwise"))
PACK_MIN_SIZE = 2**18  # entries of a weight matrix: 4·650·650 packs, 4·200·200 does not


def _adder(W: Tensor, batch: int) -> Callable[[Tensor, Tensor], Tensor]:
    """(out, x) -> out += x W^T in place, for the per-step products of one pass over time."""
    if _CAN_PACK and W.dtype == torch.float32 and W.device.type == "cpu" and W.numel() >= PACK_MIN_SIZE:
        packed = torch.ops.mkldnn._reorder_linear_weight(W, batch)
        return lambda out, x: out.add_(torch.ops.mkldnn._linear_pointwise(x, packed, None, "none", [], ""))
    W_T = W.T
    return lambda out, x: out.addmm_(x, W_T)


def _lengths(lengths: Tensor | None) -> Tensor | None:
    return None if lengths is None else torch.as_tensor(lengths, dtype=torch.long)


class _CoupledLayer(Function):
    """Coupled-gate LSTM over T steps; W's rows are the gates [f, c̃, o]."""

    @staticmethod
    def forward(ctx, x, h0, C0, W, b, lengths):
        T, B, _ = x.shape
        H = h0.shape[1]
        add_W_h = _adder(W[:, :H], B)
        gates = _project(x, W[:, H:], b)
        hs, Cs, tanh_C = x.new_empty(T + 1, B, H), x.new_empty(T + 1, B, H), x.new_empty(T, B, H)
        hs[0], Cs[0] = h0, C0
        f, c_tilde, o = (g.unbind(0) for g in gates.split(H, 2))
        g, h, C, tC = gates.unbind(0), hs.unbind(0), Cs.unbind(0), tanh_C.unbind(0)
        for t in range(T):
            add_W_h(g[t], h[t])
            f[t].sigmoid_()  # f_t = σ(W_f · [h_{t-1}, x_t] + b_f)
            c_tilde[t].tanh_()  # C̃_t = tanh(W_C · [h_{t-1}, x_t] + b_C)
            o[t].sigmoid_()  # o_t = σ(W_o · [h_{t-1}, x_t] + b_o)
            torch.lerp(c_tilde[t], C[t], f[t], out=C[t + 1])  # C_t = f_t * C_{t-1} + (1 - f_t) * C̃_t
            torch.tanh(C[t + 1], out=tC[t])
            torch.mul(o[t], tC[t], out=h[t + 1])  # h_t = o_t * tanh(C_t)
        ctx.lengths = lengths
        ctx.save_for_backward(x, W, gates, hs, Cs, tanh_C)
        return _outputs(hs, lengths), _final(hs, lengths), _final(Cs, lengths)

    @staticmethod
    def backward(ctx, d_out, d_hT, d_CT):
        x, W, gates, hs, Cs, tanh_C = ctx.saved_tensors
        T, B, H = tanh_C.shape
        add_W_h_T = _adder(W[:, :H].T, B)
        f, c_tilde, o = gates.split(H, 2)
        # Derivatives of h_{t+1} and C_{t+1} by each pre-activation, all steps at once.
        dh_do = tanh_C * o * (1 - o)
        dh_dC = o * (1 - tanh_C**2)
        dC_dfc = torch.stack([(Cs[:-1] - c_tilde) * f * (1 - f), (1 - f) * (1 - c_tilde**2)], 2)
        dH = _state_grads(d_hT, ctx.lengths, T, d_out)
        dC_direct = _state_grads(d_CT, ctx.lengths, T)
        d_gates = torch.empty_like(gates)
        dg_fc = d_gates[..., : 2 * H].view(T, B, 2, H).unbind(0)
        dg_o, dg, f = d_gates[..., 2 * H :].unbind(0), d_gates.unbind(0), f.unbind(0)
        dh, dC_next = dH[T], dC_direct[T]
        for t in reversed(range(T)):
            torch.mul(dh, dh_do[t], out=dg_o[t])
            dC = torch.addcmul(dC_next, dh, dh_dC[t])
            torch.mul(dC.unsqueeze(1), dC_dfc[t], out=dg_fc[t])
            dC_next = torch.addcmul(dC_direct[t], dC, f[t])
            dh = add_W_h_T(dH[t], dg[t])
        dx, dW, db = _weight_grads(d_gates, hs[:-1], x, W[:, H:], ctx.needs_input_grad[0])
        return dx, dh, dC_next, dW, db, None


def _peephole_adder(P: Tensor, batch: int, H: int) -> Callable[[Tensor, Tensor], Tensor]:
    """(gates, C) -> gates += P C for the gates stacked in P: H×H matrices or vectors (diagonal)."""
    if P.dim() == 2:
        return _adder(P, batch)
    p = P.view(-1, H)
    return lambda gates, C: gates.view(batch, -1, H).addcmul_(C.unsqueeze(1), p)


def _peephole_grad_adder(P: Tensor, batch: int, H: int) -> Callable[[Tensor, Tensor], Tensor]:
    """(dC, d_gates) -> dC += P^T d_gates, the gradient reaching C through those gates' peepholes."""
    if P.dim() == 2:
        return _adder(P.T, batch)
    p = P.view(-1, H)
    return lambda dC, d_gates: dC.add_((d_gates.view(batch, -1, H) * p).sum(1))


def _peephole_weight_grad(d_gates: Tensor, C: Tensor, P: Tensor) -> Tensor:
    """dP = Σ_t d_gates_t C_t^T over all T·B rows (full P), or its diagonal Σ_t d_gates_t * C_t."""
    H = C.shape[-1]
    rows, C = d_gates.reshape(-1, d_gates.shape[-1]), C.reshape(-1, H)
    if P.dim() == 1:
        return (rows.view(len(C), -1, H) * C.unsqueeze(1)).sum(0).flatten()
    return rows.T @ C


def _lstm_derivatives(gates: Tensor, Cs: Tensor, tanh_C: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """The LSTM step's local derivatives, all steps at once: of h_{t+1} by o's pre-activation,
    of h_{t+1} by C_{t+1}, and of C_{t+1} by the pre-activations of [i, f, c̃] (stacked)."""
    i, f, c_tilde, o = gates.split(tanh_C.shape[-1], 2)
    dh_do = tanh_C * o * (1 - o)
    dh_dC = o * (1 - tanh_C**2)
    dC_difc = torch.stack([c_tilde * i * (1 - i), Cs[:-1] * f * (1 - f), i * (1 - c_tilde**2)], 2)
    return dh_do, dh_dC, dC_difc


class _PeepholeLayer(Function):
    """Peephole LSTM over T steps; W's rows are [i, f, c̃, o], P's rows [P_i; P_f; P_o]."""

    @staticmethod
    def forward(ctx, x, h0, C0, W, b, P, lengths):
        T, B, _ = x.shape
        H = h0.shape[1]
        add_W_h = _adder(W[:, :H], B)
        add_P_if, add_P_o = _peephole_adder(P[: 2 * H], B, H), _peephole_adder(P[2 * H :], B, H)
        gates = _project(x, W[:, H:], b)
        hs, Cs, tanh_C = x.new_empty(T + 1, B, H), x.new_empty(T + 1, B, H), x.new_empty(T, B, H)
        hs[0], Cs[0] = h0, C0
        i, f, c_tilde, o = (g.unbind(0) for g in gates.split(H, 2))
        g, h, C, tC = gates.unbind(0), hs.unbind(0), Cs.unbind(0), tanh_C.unbind(0)
        g_if, g_o = gates[..., : 2 * H].unbind(0), gates[..., 3 * H :].unbind(0)
        for t in range(T):
            add_W_h(g[t], h[t])
            add_P_if(g_if[t], C[t])  # the peepholes P_i C_{t-1}, P_f C_{t-1}
            g_if[t].sigmoid_()  # i_t, f_t = σ(W · [C_{t-1}, h_{t-1}, x_t] + b)
            c_tilde[t].tanh_()  # C̃_t = tanh(W_C · [h_{t-1}, x_t] + b_C)
            torch.mul(f[t], C[t], out=C[t + 1])
            C[t + 1].addcmul_(i[t], c_tilde[t])  # C_t = f_t * C_{t-1} + i_t * C̃_t
            add_P_o(g_o[t], C[t + 1])  # the peephole P_o C_t
            g_o[t].sigmoid_()  # o_t = σ(W_o · [C_t, h_{t-1}, x_t] + b_o)
            torch.tanh(C[t + 1], out=tC[t])
            torch.mul(o[t], tC[t], out=h[t + 1])  # h_t = o_t * tanh(C_t)
        ctx.lengths = lengths
        ctx.save_for_backward(x, W, P, gates, hs, Cs, tanh_C)
        return _outputs(hs, lengths), _final(hs, lengths), _final(Cs, lengths)

    @staticmethod
    def backward(ctx, d_out, d_hT, d_CT):
        x, W, P, gates, hs, Cs, tanh_C = ctx.saved_tensors
        T, B, H = tanh_C.shape
        P_if, P_o = P[: 2 * H], P[2 * H :]
        add_W_h_T = _adder(W[:, :H].T, B)
        add_P_if_T, add_P_o_T = _peephole_grad_adder(P_if, B, H), _peephole_grad_adder(P_o, B, H)
        dh_do, dh_dC, dC_difc = _lstm_derivatives(gates, Cs, tanh_C)
        f = gates[..., H : 2 * H]
        dH = _state_grads(d_hT, ctx.lengths, T, d_out)
        dC_direct = _state_grads(d_CT, ctx.lengths, T)
        d_gates = torch.empty_like(gates)
        dg_ifc = d_gates[..., : 3 * H].view(T, B, 3, H).unbind(0)
        dg_if, dg_o = d_gates[..., : 2 * H].unbind(0), d_gates[..., 3 * H :].unbind(0)
        dg, f = d_gates.unbind(0), f.unbind(0)
        dh, dC_next = dH[T], dC_direct[T]
        for t in reversed(range(T)):
            torch.mul(dh, dh_do[t], out=dg_o[t])
            dC = torch.addcmul(dC_next, dh, dh_dC[t])
            add_P_o_T(dC, dg_o[t])  # C_{t+1} also reaches o through P_o
            torch.mul(dC.unsqueeze(1), dC_difc[t], out=dg_ifc[t])
            dC_next = torch.addcmul(dC_direct[t], dC, f[t])
            add_P_if_T(dC_next, dg_if[t])  # C_t also reaches i and f
            dh = add_W_h_T(dH[t], dg[t])
        dx, dW, db = _weight_grads(d_gates, hs[:-1], x, W[:, H:], ctx.needs_input_grad[0])
        dP = torch.cat([_peephole_weight_grad(d_gates[..., : 2 * H], Cs[:-1], P_if),
                        _peephole_weight_grad(d_gates[..., 3 * H :], Cs[1:], P_o)])
        return dx, dh, dC_next, dW, db, dP, None


class _GRULayer(Function):
    """The lecture's GRU over T steps; W_zr's rows are [z, r], W makes h̃ from [r * h, x]."""

    @staticmethod
    def forward(ctx, x, h0, W_zr, b_zr, W, b, lengths):
        T, B, _ = x.shape
        H = h0.shape[1]
        zr_all, h_tilde_all = _project(x, W_zr[:, H:], b_zr), _project(x, W[:, H:], b)
        add_U_zr, add_U_h = _adder(W_zr[:, :H], B), _adder(W[:, :H], B)
        hs, rh_all = x.new_empty(T + 1, B, H), x.new_empty(T, B, H)
        hs[0] = h0
        zr, h_tilde, h, rh = zr_all.unbind(0), h_tilde_all.unbind(0), hs.unbind(0), rh_all.unbind(0)
        z, r = (g.unbind(0) for g in zr_all.split(H, 2))
        for t in range(T):
            add_U_zr(zr[t], h[t]).sigmoid_()  # z_t, r_t = σ(W_zr · [h_{t-1}, x_t])
            torch.mul(r[t], h[t], out=rh[t])
            add_U_h(h_tilde[t], rh[t]).tanh_()  # h̃_t = tanh(W · [r_t * h_{t-1}, x_t])
            torch.lerp(h[t], h_tilde[t], z[t], out=h[t + 1])  # h_t = (1 - z_t) * h_{t-1} + z_t * h̃_t
        ctx.lengths = lengths
        ctx.save_for_backward(x, W_zr, W, zr_all, h_tilde_all, hs, rh_all)
        return _outputs(hs, lengths), _final(hs, lengths)

    @staticmethod
    def backward(ctx, d_out, d_hT):
        x, W_zr, W, zr_all, h_tilde_all, hs, rh_all = ctx.saved_tensors
        T, B, H = rh_all.shape
        add_U_zr_T, add_U_h_T = _adder(W_zr[:, :H].T, B), _adder(W[:, :H].T, B)
        z, r = zr_all.split(H, 2)
        h_prev = hs[:-1]
        # Derivatives by each pre-activation, all steps at once. d_gates' columns are
        # [h̃, z, r]: h̃ and z, both driven by dh alone, then take one multiplication per step.
        dh_dhz = torch.stack([z * (1 - h_tilde_all**2), (h_tilde_all - h_prev) * z * (1 - z)], 2)
        drh_dr = h_prev * r * (1 - r)
        one_minus_z = 1 - z
        dH = _state_grads(d_hT, ctx.lengths, T, d_out)
        d_gates = x.new_empty(T, B, 3 * H)
        dg_hz = d_gates[..., : 2 * H].view(T, B, 2, H).unbind(0)
        dg_h, dg_zr = d_gates[..., :H].unbind(0), d_gates[..., H:].unbind(0)
        dg_r, r = d_gates[..., 2 * H :].unbind(0), r.unbind(0)
        dh = dH[T]
        for t in reversed(range(T)):
            torch.mul(dh.unsqueeze(1), dh_dhz[t], out=dg_hz[t])
            drh = add_U_h_T(torch.zeros_like(dh), dg_h[t])  # the gradient of r_t * h_{t-1}
            torch.mul(drh, drh_dr[t], out=dg_r[t])
            dh = add_U_zr_T(dH[t], dg_zr[t]).addcmul_(dh, one_minus_z[t]).addcmul_(drh, r[t])
        need_dx = ctx.needs_input_grad[0]
        dx, dW_zr, db_zr = _weight_grads(d_gates[..., H:], h_prev, x, W_zr[:, H:], need_dx)
        dx_h, dW, db = _weight_grads(d_gates[..., :H], rh_all, x, W[:, H:], need_dx)
        return (dx + dx_h if need_dx else None), dh, dW_zr, db_zr, dW, db, None


class _MogrifierLayer(Function):
    """Mogrifier LSTM over T steps. X[k] is x_t after k of its rounds (X[0] = x_t), Hm[k] is
    h_{t-1} after k of its rounds (Hm[0] = h_{t-1}); GQ[k], GR[k] are the rounds' gates.
    Round 2k+1 gates X[k] by σ(Q^k Hm[k]), round 2k+2 gates Hm[k] by σ(R^k X[k+1]) (Q^k, R^k:
    the cell's Q[k], R[k]). No input projection can be made ahead of the loop: x_t is changed by
    h_{t-1} before it meets W."""

    @staticmethod
    def forward(ctx, x, h0, C0, W, b, Q, R, lengths):
        T, B, I = x.shape
        H, nQ, nR = h0.shape[1], Q.shape[0], R.shape[0]
        add_W_h, add_W_x = _adder(W[:, :H], B), _adder(W[:, H:], B)
        X, Hm = x.new_empty(nQ + 1, T, B, I), x.new_empty(nR + 1, T, B, H)
        GQ, GR = x.new_empty(nQ, T, B, I), x.new_empty(nR, T, B, H)
        gates = b.expand(T, B, 4 * H).clone()
        hs, Cs, tanh_C = x.new_empty(T + 1, B, H), x.new_empty(T + 1, B, H), x.new_empty(T, B, H)
        hs[0], Cs[0], X[0] = h0, C0, x
        i, f, c_tilde, o = (g.unbind(0) for g in gates.split(H, 2))
        g_ifo = (gates[..., : 2 * H].unbind(0), gates[..., 3 * H :].unbind(0))
        for t in range(T):
            Hm[0, t] = hs[t]
            for n in range(nQ + nR):  # round n + 1
                k = n // 2
                if n % 2 == 0:  # X[k+1] = 2σ(Q^k Hm[k]) * X[k]
                    torch.mm(Hm[k, t], Q[k].T, out=GQ[k, t]).sigmoid_()
                    torch.mul(GQ[k, t], X[k, t], out=X[k + 1, t]).mul_(2)
                else:  # Hm[k+1] = 2σ(R^k X[k+1]) * Hm[k]
                    torch.mm(X[k + 1, t], R[k].T, out=GR[k, t]).sigmoid_()
                    torch.mul(GR[k, t], Hm[k, t], out=Hm[k + 1, t]).mul_(2)
            add_W_x(gates[t], X[nQ, t])
            add_W_h(gates[t], Hm[nR, t])
            g_ifo[0][t].sigmoid_()  # i_t, f_t = σ(W · [Hm[nR], X[nQ]] + b)
            c_tilde[t].tanh_()  # C̃_t = tanh(W_C · [Hm[nR], X[nQ]] + b_C)
            g_ifo[1][t].sigmoid_()  # o_t = σ(W_o · [Hm[nR], X[nQ]] + b_o)
            torch.mul(f[t], Cs[t], out=Cs[t + 1])
            Cs[t + 1].addcmul_(i[t], c_tilde[t])  # C_t = f_t * C_{t-1} + i_t * C̃_t
            torch.tanh(Cs[t + 1], out=tanh_C[t])
            torch.mul(o[t], tanh_C[t], out=hs[t + 1])  # h_t = o_t * tanh(C_t)
        ctx.lengths = lengths
        ctx.save_for_backward(W, Q, R, X, Hm, GQ, GR, gates, Cs, tanh_C)
        return _outputs(hs, lengths), _final(hs, lengths), _final(Cs, lengths)

    @staticmethod
    def backward(ctx, d_out, d_hT, d_CT):
        W, Q, R, X, Hm, GQ, GR, gates, Cs, tanh_C = ctx.saved_tensors
        T, B, H = tanh_C.shape
        nQ, nR = Q.shape[0], R.shape[0]
        W_h, W_x = W[:, :H], W[:, H:]
        dh_do, dh_dC, dC_difc = _lstm_derivatives(gates, Cs, tanh_C)
        f = gates[..., H : 2 * H]
        # Derivatives of each round's output by its gate's pre-activation: 2 · gated · σ'(a).
        dQ_da = 2 * X[:nQ] * GQ * (1 - GQ)
        dR_da = 2 * Hm[:nR] * GR * (1 - GR)
        dH = _state_grads(d_hT, ctx.lengths, T, d_out)
        dC_direct = _state_grads(d_CT, ctx.lengths, T)
        d_gates, dAQ, dAR = torch.empty_like(gates), torch.empty_like(GQ), torch.empty_like(GR)
        dg_ifc = d_gates[..., : 3 * H].view(T, B, 3, H).unbind(0)
        dg_o, dg, f = d_gates[..., 3 * H :].unbind(0), d_gates.unbind(0), f.unbind(0)
        dx = X.new_empty(T, B, X.shape[3])
        dh, dC_next = dH[T], dC_direct[T]
        for t in reversed(range(T)):
            torch.mul(dh, dh_do[t], out=dg_o[t])
            dC = torch.addcmul(dC_next, dh, dh_dC[t])
            torch.mul(dC.unsqueeze(1), dC_difc[t], out=dg_ifc[t])
            dC_next = torch.addcmul(dC_direct[t], dC, f[t])
            dx_t, dh = dg[t] @ W_x, dg[t] @ W_h  # at X[nQ] and Hm[nR], what the LSTM step read
            for n in reversed(range(nQ + nR)):
                k = n // 2
                if n % 2 == 0:  # X[k+1] = 2 g * X[k], g = σ(Q^k Hm[k])
                    torch.mul(dx_t, dQ_da[k, t], out=dAQ[k, t])
                    dx_t = dx_t * (2 * GQ[k, t])
                    dh = dh.addmm(dAQ[k, t], Q[k])
                else:  # Hm[k+1] = 2 g * Hm[k], g = σ(R^k X[k+1])
                    torch.mul(dh, dR_da[k, t], out=dAR[k, t])
                    dh = dh * (2 * GR[k, t])
                    dx_t = dx_t.addmm(dAR[k, t], R[k])
            dx[t] = dx_t
            dh = dh + dH[t]
        _, dW, db = _weight_grads(d_gates, Hm[nR], X[nQ], W_x, False)
        # dQ^k = Σ_t dA_t^T Hm[k]_t, dR^k = Σ_t dA_t^T X[k+1]_t, each over all T·B rows.
        dQ = torch.stack([dAQ[k].flatten(0, 1).T @ Hm[k].flatten(0, 1) for k in range(nQ)]) \
            if nQ else torch.zeros_like(Q)
        dR = torch.stack([dAR[k].flatten(0, 1).T @ X[k + 1].flatten(0, 1) for k in range(nR)]) \
            if nR else torch.zeros_like(R)
        return dx, dh, dC_next, dW, db, dQ, dR, None


def coupled_layer(
    cell: CoupledLSTMCell, x: Tensor, state: State, lengths: Tensor | None = None
) -> tuple[Tensor, State]:
    """The coupled-gate LSTM cell run over x (T, B, I), hand-written BPTT."""
    out, h, C = _CoupledLayer.apply(x, *state, cell.W, cell.b, _lengths(lengths))
    return out, (h, C)


def peephole_layer(
    cell: PeepholeLSTMCell, x: Tensor, state: State, lengths: Tensor | None = None
) -> tuple[Tensor, State]:
    """The peephole LSTM cell (diagonal or full P) run over x (T, B, I), hand-written BPTT."""
    out, h, C = _PeepholeLayer.apply(x, *state, cell.W, cell.b, cell.P, _lengths(lengths))
    return out, (h, C)


def mogrifier_layer(
    cell: MogrifierLSTMCell, x: Tensor, state: State, lengths: Tensor | None = None
) -> tuple[Tensor, State]:
    """The Mogrifier LSTM cell run over x (T, B, I), hand-written BPTT."""
    out, h, C = _MogrifierLayer.apply(x, *state, cell.W, cell.b, cell.Q, cell.R, _lengths(lengths))
    return out, (h, C)


def gru_layer(cell: GRUCell, x: Tensor, state: State, lengths: Tensor | None = None) -> tuple[Tensor, State]:
    """The lecture's GRU cell run over x (T, B, I), hand-written BPTT."""
    return _GRULayer.apply(x, state, cell.W_zr, cell.b_zr, cell.W, cell.b, _lengths(lengths))


def _float32_under_autocast(layer: Callable) -> Callable:
    """The hand-written BPTT keeps one dtype throughout, so under autocast it runs in float32
    (the embedding and decoder around it still get autocast's bfloat16)."""
    @functools.wraps(layer)
    def run(cell, x: Tensor, state: State, lengths: Tensor | None = None) -> tuple[Tensor, State]:
        if not torch.is_autocast_enabled(x.device.type):
            return layer(cell, x, state, lengths)
        state = map_state(Tensor.float, state)
        with torch.autocast(x.device.type, enabled=False):
            return layer(cell, x.float(), state, lengths)
    return run


LAYERS: dict[str, Callable] = {name: _float32_under_autocast(layer) for name, layer in
                               (("coupled", coupled_layer), ("peephole", peephole_layer),
                                ("gru", gru_layer), ("mogrifier", mogrifier_layer))}
