"""The NumPy reference against finite differences and against torch autograd on rnnlab.cells."""

import numpy as np
import pytest
import torch

from rnnlab import reference as ref
from rnnlab.cells import make_cell
from rnnlab.errors import RnnlabError
from rnnlab.recurrent import detach_state, run_cell

CONFIGS = {  # reference name: make_cell arguments
    "rnn": ("rnn", {}),
    "rnn-relu": ("rnn-relu", {}),
    "rnn-linear": ("rnn", {"nonlinearity": "linear"}),
    "lstm": ("lstm", {}),
    "peephole-full": ("peephole", {}),
    "peephole-diagonal": ("peephole", {"diagonal": True}),
    "coupled": ("coupled", {}),
    "gru": ("gru", {}),
    "mogrifier": ("mogrifier", {"rounds": 5}),
    "mogrifier-4": ("mogrifier", {"rounds": 4}),
}
T, B, I, H = 8, 3, 3, 4


def rel_error(a: np.ndarray, b: np.ndarray) -> float:
    """||a - b|| / (||a|| + ||b||), zero when both vanish."""
    denominator = np.linalg.norm(a) + np.linalg.norm(b)
    return 0.0 if denominator == 0 else float(np.linalg.norm(a - b) / denominator)


def make_problem(name: str, seed: int = 0, steps: int = T):
    """A float64 torch cell with weights scaled up (so gates saturate unevenly), and data."""
    cell_type, options = CONFIGS[name]
    torch.manual_seed(seed)
    cell = make_cell(cell_type, I, H, **options).double()
    with torch.no_grad():
        for p in cell.parameters():
            p.mul_(2.0)
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(steps, B, I))
    pair = cell.has_cell_state
    state0 = (rng.normal(size=(B, H)), rng.normal(size=(B, H))) if pair else rng.normal(size=(B, H))
    dh = rng.normal(size=(steps, B, H))
    dstate = (rng.normal(size=(B, H)), rng.normal(size=(B, H))) if pair else rng.normal(size=(B, H))
    return cell, x, state0, dh, dstate


def as_list(state) -> list:
    return list(state) if isinstance(state, tuple) else [state]


def autograd_grads(cell, x, state0, dh, dstate, k=None):
    """Gradients of L = Σ_t dh_t · h_t + dstate · s_T by autograd; state detached every k steps."""
    xt = torch.tensor(x, requires_grad=True)
    s0 = [torch.tensor(s, requires_grad=True) for s in as_list(state0)]
    state = tuple(s0) if len(s0) == 2 else s0[0]
    k = k or x.shape[0]
    outs = []
    for start in range(0, x.shape[0], k):
        if start > 0:
            state = detach_state(state)
        out, state = run_cell(cell, xt[start : start + k], state)
        outs.append(out)
    out = torch.cat(outs)
    L = (out * torch.tensor(dh)).sum()
    for s, d in zip(as_list(state), as_list(dstate), strict=True):
        L = L + (s * torch.tensor(d)).sum()
    cell.zero_grad()
    L.backward()
    grads = {n: p.grad.numpy() for n, p in cell.named_parameters()}
    return grads, xt.grad.numpy(), [s.grad.numpy() for s in s0]


def reference_loss(cell_type, params, x, state0, dh, dstate) -> float:
    hs, states, _ = ref.forward(cell_type, params, x, state0)
    final = zip(as_list(states[-1]), as_list(dstate), strict=True)
    return float((hs * dh).sum() + sum((s * d).sum() for s, d in final))


def numerical_gradient(f, array: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Central differences of f() with respect to every entry of `array`, changed in place."""
    grad = np.zeros_like(array)
    for idx in np.ndindex(array.shape):
        old = array[idx]
        array[idx] = old + eps
        plus = f()
        array[idx] = old - eps
        minus = f()
        array[idx] = old
        grad[idx] = (plus - minus) / (2 * eps)
    return grad


@pytest.mark.parametrize("name", CONFIGS)
def test_params_from_cell_are_float64_copies(name):
    cell, *_ = make_problem(name)
    params = ref.params_from_cell(cell)
    assert sorted(params) == sorted(n for n, _ in cell.named_parameters())
    for n, p in cell.named_parameters():
        assert params[n].dtype == np.float64 and params[n].shape == tuple(p.shape)
        np.testing.assert_array_equal(params[n], p.detach().numpy())
    expected = {"peephole-full": "peephole", "peephole-diagonal": "peephole",
                "mogrifier-4": "mogrifier"}.get(name, name)
    assert cell.cell_type == expected


@pytest.mark.parametrize("name", CONFIGS)
def test_forward_matches_cells(name):
    cell, x, state0, _, _ = make_problem(name)
    hs, states, _ = ref.forward(cell.cell_type, ref.params_from_cell(cell), x, state0)
    s0 = [torch.tensor(s) for s in as_list(state0)]
    out, final = run_cell(cell, torch.tensor(x), tuple(s0) if len(s0) == 2 else s0[0])
    np.testing.assert_allclose(hs, out.detach().numpy(), rtol=0, atol=1e-13)
    for a, b in zip(as_list(states[-1]), as_list(final), strict=True):
        np.testing.assert_allclose(a, b.detach().numpy(), rtol=0, atol=1e-13)


@pytest.mark.parametrize("name", CONFIGS)
def test_bptt_matches_autograd(name):
    cell, x, state0, dh, dstate = make_problem(name)
    cell_type, params = cell.cell_type, ref.params_from_cell(cell)
    _, _, caches = ref.forward(cell_type, params, x, state0)
    grads, dx, ds0 = ref.backward(cell_type, params, caches, dh, dstate)
    want, want_dx, want_ds0 = autograd_grads(cell, x, state0, dh, dstate)
    assert sorted(grads) == sorted(want)
    for n in want:
        assert rel_error(grads[n], want[n]) < 1e-9, n
    assert rel_error(dx, want_dx) < 1e-9
    for a, b in zip(as_list(ds0), want_ds0, strict=True):
        assert rel_error(a, b) < 1e-9


@pytest.mark.parametrize("name", CONFIGS)
def test_bptt_matches_finite_differences(name):
    cell, x, state0, dh, dstate = make_problem(name, seed=1)
    cell_type, params = cell.cell_type, ref.params_from_cell(cell)
    state0 = tuple(s.copy() for s in state0) if isinstance(state0, tuple) else state0.copy()
    _, _, caches = ref.forward(cell_type, params, x, state0)
    grads, dx, ds0 = ref.backward(cell_type, params, caches, dh, dstate)

    def loss() -> float:
        return reference_loss(cell_type, params, x, state0, dh, dstate)

    for n, p in params.items():
        assert rel_error(grads[n], numerical_gradient(loss, p)) < 1e-6, n
    assert rel_error(dx, numerical_gradient(loss, x)) < 1e-6
    for d, s in zip(as_list(ds0), as_list(state0), strict=True):
        assert rel_error(d, numerical_gradient(loss, s)) < 1e-6


def test_gradient_without_final_state_term():
    cell, x, state0, dh, _ = make_problem("lstm")
    params = ref.params_from_cell(cell)
    _, _, caches = ref.forward("lstm", params, x, state0)
    grads, dx, _ = ref.backward("lstm", params, caches, dh)
    zero = (np.zeros((B, H)), np.zeros((B, H)))
    want, want_dx, _ = autograd_grads(cell, x, state0, dh, zero)
    assert rel_error(grads["W"], want["W"]) < 1e-9 and rel_error(dx, want_dx) < 1e-9


@pytest.mark.parametrize("name", ["rnn", "lstm", "peephole-full", "coupled", "gru", "mogrifier"])
@pytest.mark.parametrize("k", [1, 3, 4])
def test_truncated_bptt_matches_autograd_with_detached_state(name, k):
    cell, x, state0, dh, dstate = make_problem(name, steps=10)
    cell_type, params = cell.cell_type, ref.params_from_cell(cell)
    _, _, caches = ref.forward(cell_type, params, x, state0)
    grads, dx, ds0 = ref.backward(cell_type, params, caches, dh, dstate, k=k)
    want, want_dx, want_ds0 = autograd_grads(cell, x, state0, dh, dstate, k=k)
    for n in want:
        assert rel_error(grads[n], want[n]) < 1e-9, n
    assert rel_error(dx, want_dx) < 1e-9
    for a, b in zip(as_list(ds0), want_ds0, strict=True):
        assert rel_error(a, b) < 1e-9
    full, _, _ = ref.backward(cell_type, params, caches, dh, dstate)
    assert rel_error(grads["W"], full["W"]) > 1e-6  # the truncation did change something


def test_truncation_longer_than_sequence_is_full_bptt():
    cell, x, state0, dh, dstate = make_problem("gru")
    params = ref.params_from_cell(cell)
    _, _, caches = ref.forward("gru", params, x, state0)
    full, _, _ = ref.backward("gru", params, caches, dh, dstate)
    cut, _, _ = ref.backward("gru", params, caches, dh, dstate, k=T)
    for n in full:
        np.testing.assert_array_equal(full[n], cut[n])


@pytest.mark.parametrize("name", CONFIGS)
def test_jacobians_match_torch(name):
    cell, x, state0, _, _ = make_problem(name)
    cell_type, params = cell.cell_type, ref.params_from_cell(cell)
    Js = ref.jacobians(cell_type, params, x, state0)
    _, states, _ = ref.forward(cell_type, params, x, state0)
    prev_states = [state0] + states[:-1]
    assert len(Js) == T
    for t, J in enumerate(Js):
        s_prev = torch.tensor(np.concatenate(as_list(prev_states[t]), 1))

        def step(s, t=t):
            state = (s[:, :H], s[:, H:]) if cell.has_cell_state else s
            _, new = cell(torch.tensor(x[t]), state)
            return torch.cat(as_list(new), 1)

        full = torch.autograd.functional.jacobian(step, s_prev).numpy()  # (B, S, B, S)
        want = np.stack([full[b, :, b, :] for b in range(B)])
        assert J.shape == want.shape == (B, s_prev.shape[1], s_prev.shape[1])
        np.testing.assert_allclose(J, want, rtol=0, atol=1e-12)


def test_rnn_jacobian_is_the_lectures_formula():
    cell, x, state0, _, _ = make_problem("rnn")
    params = ref.params_from_cell(cell)
    _, states, _ = ref.forward("rnn", params, x, state0)
    Js = ref.jacobians("rnn", params, x, state0)
    for t in range(T):  # ∂s_t/∂s_{t-1} = diag(1 - s_t²) U
        want = (1 - states[t] ** 2)[:, :, None] * params["U"][None]
        np.testing.assert_allclose(Js[t], want, rtol=0, atol=1e-14)


def lecture_problem(seed: int = 0, K: int = 5):
    rng = np.random.default_rng(seed)
    params = {"W": rng.normal(size=(H, I)), "U": rng.normal(size=(H, H)) * 0.8,
              "b": rng.normal(size=H), "V": rng.normal(size=(K, H)), "c": rng.normal(size=K)}
    x = rng.normal(size=(T, B, I))
    y = np.eye(K)[rng.integers(0, K, size=(T, B))]
    s0 = rng.normal(size=(B, H))
    return params, x, y, s0


def test_lecture_rnn_matches_finite_differences():
    params, x, y, s0 = lecture_problem()
    _, grads = ref.lecture_rnn(params, x, y, s0)

    def loss() -> float:
        return ref.lecture_rnn_forward(params, x, y, s0)[0]

    for n in ("W", "U", "b", "V", "c"):
        assert rel_error(grads[n], numerical_gradient(loss, params[n])) < 1e-6, n
    assert rel_error(grads["s0"], numerical_gradient(loss, s0)) < 1e-6


def test_lecture_rnn_matches_autograd():
    params, x, y, s0 = lecture_problem(seed=1)
    E, grads = ref.lecture_rnn(params, x, y, s0)
    p = {n: torch.tensor(a, requires_grad=True) for n, a in params.items()}
    s = s0_t = torch.tensor(s0, requires_grad=True)
    loss = torch.zeros((), dtype=torch.float64)
    for t in range(T):
        s = torch.tanh(torch.tensor(x[t]) @ p["W"].T + s @ p["U"].T + p["b"])
        log_y_hat = torch.log_softmax(s @ p["V"].T + p["c"], 1)
        loss = loss - (torch.tensor(y[t]) * log_y_hat).sum()
    loss.backward()
    assert abs(E - loss.item()) < 1e-12 * abs(E)
    for n in p:
        assert rel_error(grads[n], p[n].grad.numpy()) < 1e-9, n
    assert rel_error(grads["s0"], s0_t.grad.numpy()) < 1e-9


def test_lecture_sum_over_steps_equals_bptt():
    params, x, y, s0 = lecture_problem(seed=2)
    E, cache = ref.lecture_rnn_forward(params, x, y, s0)
    grads = ref.lecture_rnn_backward(params, cache)
    per_step = [ref.lecture_step_loss_grads(params, cache, t) for t in range(T)]
    for n in ("W", "U"):  # ∂E/∂W = Σ_t ∂E_t/∂W
        np.testing.assert_allclose(sum(g[n] for g in per_step), grads[n], rtol=1e-12, atol=1e-12)
    # E_0 depends on W only through s_0, so its sum over k has a single term
    assert rel_error(per_step[0]["W"], per_step[-1]["W"]) > 1e-3


def test_user_errors():
    params, x, y, s0 = lecture_problem()
    with pytest.raises(RnnlabError):
        ref.lecture_rnn(params, x, 2 * y, s0)
    with pytest.raises(RnnlabError):
        ref.forward("transformer", params, x, s0)
