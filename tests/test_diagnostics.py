"""Gradient-flow diagnostics against exact answers, bounds, and the NumPy reference's Jacobians."""

import math

import numpy as np
import pytest
import torch

from rnnlab import diagnostics as dg
from rnnlab import reference as ref
from rnnlab.cells import make_cell
from rnnlab.cli import main
from rnnlab.errors import RnnlabError
from rnnlab.recurrent import Recurrent

CELLS = [("rnn", {}), ("rnn-relu", {}), ("rnn", {"nonlinearity": "linear"}), ("lstm", {}),
         ("peephole", {}), ("peephole", {"diagonal": True}), ("coupled", {}), ("gru", {}),
         ("mogrifier", {})]


@pytest.fixture(autouse=True)
def one_thread():
    """Small matrices: one thread is fastest, and the machine is shared."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def linear_rnn(a: float, H: int = 6, I: int = 3, seed: int = 0):
    """Identity-activation RNN with U = a·Q, Q a random orthogonal matrix."""
    torch.manual_seed(seed)
    cell = make_cell("rnn", I, H, nonlinearity="linear").double()  # Q orthogonal to 1e-16
    Q, _ = torch.linalg.qr(torch.randn(H, H, dtype=torch.float64))
    with torch.no_grad():
        cell.U.copy_(a * Q)
    return cell


@pytest.mark.parametrize("a", [0.8, 1.0, 1.25])
def test_linear_rnn_norm_is_a_to_the_distance(a):
    T = 40
    cell = linear_rnn(a)
    flow = dg.gradient_flow(cell, torch.randn(T, 2, 3))
    expected = a ** np.arange(T + 1)
    # ∂s_T/∂s_k = (aQ)^(T-k): every singular value is a^(T-k), so any unit u sees exactly that
    np.testing.assert_allclose(flow.jac, expected, rtol=1e-10)
    np.testing.assert_allclose(flow.grad, expected, rtol=1e-10)
    assert flow.decay() == pytest.approx(a, rel=1e-10)
    assert flow.rho == pytest.approx(a, rel=1e-10)
    assert flow.exploded is False


@pytest.mark.parametrize("scale", [0.9, 1.6])
def test_tanh_rnn_never_exceeds_the_norm_bound(scale):
    torch.manual_seed(1)
    T, H = 50, 8
    cell = make_cell("rnn", 4, H)
    with torch.no_grad():
        cell.U.mul_(scale / torch.linalg.matrix_norm(cell.U, ord=2))
    flow = dg.gradient_flow(cell, torch.randn(T, 3, 4) * 0.3)
    bound = scale ** np.arange(T + 1)
    assert np.all(flow.jac <= bound * (1 + 1e-12))
    assert np.all(flow.grad <= bound * (1 + 1e-12))
    # tanh' < 1 on non-zero inputs, so the bound is not met with equality far back
    assert flow.jac[T] < 0.5 * bound[T]


def reference_problem(cell_type, options, seed=0, T=7, B=2, I=3, H=4):
    torch.manual_seed(seed)
    cell = make_cell(cell_type, I, H, **options).double()
    with torch.no_grad():
        for p in cell.parameters():
            p.mul_(2.0)  # saturate some gates, so every term of the derivative matters
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(T, B, I))
    h0 = rng.normal(size=(B, H)) * 0.5
    state0 = (h0, rng.normal(size=(B, H)) * 0.5) if cell.has_cell_state else h0
    return cell, x, state0


@pytest.mark.parametrize("cell_type,options", CELLS)
def test_autograd_jacobians_match_the_reference(cell_type, options):
    cell, x, state0 = reference_problem(cell_type, options)
    torch_state0 = tuple(map(torch.tensor, state0)) if isinstance(state0, tuple) \
        else torch.tensor(state0)
    ours = dg.step_jacobians(cell, torch.tensor(x), torch_state0).numpy()
    theirs = np.stack(ref.jacobians(cell.cell_type, ref.params_from_cell(cell), x, state0))
    assert np.abs(ours - theirs).max() < 1e-9

    # the gradient norms (one backward pass) and the product norms against the reference's
    # Jacobians multiplied out: ∂E_T/∂s_k = u_full · Π J, with u on the h part of s_T
    flow = dg.gradient_flow(cell, torch.tensor(x), torch_state0)
    T, B, S, _ = theirs.shape
    H = cell.hidden_size
    u = np.zeros(S)
    u[:H] = 1 / math.sqrt(H)
    P = np.broadcast_to(np.eye(S), (B, S, S))
    for d in range(T + 1):
        grads = np.einsum("s,bst->bt", u, P)
        assert flow.grad[d] == pytest.approx(np.linalg.norm(grads, axis=1).mean(), abs=1e-9)
        assert flow.jac[d] == pytest.approx(np.linalg.norm(P, 2, axis=(1, 2)).mean(), abs=1e-9)
        if cell.has_cell_state:
            C_path = np.linalg.norm(P[:, H:, H:], 2, axis=(1, 2)).mean()
            assert flow.jac_c[d] == pytest.approx(C_path, abs=1e-9)
        if d < T:
            P = P @ theirs[T - 1 - d]


def test_lstm_with_open_forget_gate_and_closed_input_gate_keeps_the_cell_path():
    T, H = 100, 8
    torch.manual_seed(0)
    cell = make_cell("lstm", 4, H, forget_bias=20.0)
    with torch.no_grad():
        cell.b[:H].fill_(-20.0)  # input gate i ≈ 0
    x = torch.randn(T, 2, 4)
    flow = dg.gradient_flow(cell, x)
    assert abs(flow.jac_c[T] - 1) < 1e-4
    assert flow.gates["f"].min() > 0.9999 and flow.gates["i"].max() < 1e-4
    # the default cell (forget bias 1, f ≈ 0.73) forgets: the same path dies out
    torch.manual_seed(0)
    assert dg.gradient_flow(make_cell("lstm", 4, H), x).jac_c[T] < 1e-6


@pytest.mark.parametrize("cell_type,options", [c for c in CELLS if not c[0].startswith("rnn")])
def test_recomputed_gates_match_the_reference_forward(cell_type, options):
    cell, x, state0 = reference_problem(cell_type, options, T=1)
    name = cell.cell_type
    cache = ref.forward(name, ref.params_from_cell(cell), x, state0)[2][0]
    torch_state = tuple(map(torch.tensor, state0)) if isinstance(state0, tuple) \
        else torch.tensor(state0)
    gates = dg.gate_activations(cell, torch.tensor(x[0]), torch_state)
    c = cache[1] if name == "mogrifier" else cache  # the Mogrifier's: its LSTM step's
    expected = {"lstm": {"i": c[2], "f": c[3], "o": c[5]},
                "mogrifier": {"i": c[2], "f": c[3], "o": c[5]},
                "peephole": {"i": c[2], "f": c[3], "o": c[5]},
                "coupled": {"f": c[2], "i": 1 - c[2], "o": c[4]},
                "gru": {"z": c[3], "r": c[4]}}[name]
    assert set(gates) == set(expected)
    for g, value in expected.items():
        np.testing.assert_allclose(gates[g].numpy(), value, atol=1e-12)


@pytest.mark.parametrize("cell_type,options", CELLS)
def test_rescaling_sets_every_recurrent_radius(cell_type, options):
    cell = make_cell(cell_type, 3, 5, **options)
    before = {n: p.clone() for n, p in cell.named_parameters()}
    dg.set_recurrent_radius(cell, 1.7)
    blocks = dg.recurrent_matrices(cell)
    assert len(blocks) == {"rnn": 1, "rnn-relu": 1, "lstm": 4, "peephole": 7, "coupled": 3,
                           "gru": 3, "mogrifier": 4}[cell_type]
    assert all(dg.spectral_radius(m) == pytest.approx(1.7, rel=1e-5) for m in blocks)
    assert dg.recurrent_radius(cell) == pytest.approx(1.7, rel=1e-5)
    # the input columns are untouched
    if hasattr(cell, "W_zr"):
        assert torch.equal(cell.W_zr[:, 5:], before["W_zr"][:, 5:])
    elif cell_type.startswith("rnn"):
        assert torch.equal(cell.W, before["W"])
    else:
        assert torch.equal(cell.W[:, 5:], before["W"][:, 5:])


def test_overflow_is_reported_not_raised():
    flow = dg.gradient_flow(linear_rnn(10.0), torch.randn(400, 1, 3))  # 10^400 > float64 max
    assert flow.exploded
    assert not np.isfinite(flow.jac[-1]) and not np.isfinite(flow.grad).all()
    assert np.isinf(flow.decay())
    assert flow.to_dict()["jac"][-1] is None
    big = dg.gradient_flow(linear_rnn(1.5), torch.randn(60, 1, 3))  # 1.5^60 ≈ 3.7e10, finite
    assert big.exploded and np.isfinite(big.grad).all()
    assert not dg.gradient_flow(linear_rnn(1.5), torch.randn(60, 1, 3), threshold=1e12).exploded


def test_a_recurrent_layer_and_its_cell_agree_and_the_model_is_left_alone():
    torch.manual_seed(0)
    model = Recurrent("gru", 3, 5)
    params = [p.clone() for p in model.parameters()]
    x = torch.randn(12, 2, 3)
    a, b = dg.gradient_flow(model, x), dg.gradient_flow(model.cells[0], x)
    np.testing.assert_array_equal(a.grad, b.grad)
    np.testing.assert_array_equal(a.jac, b.jac)
    assert all(torch.equal(p, q) and p.dtype == torch.float32
               for p, q in zip(model.parameters(), params))

    stacked = Recurrent("lstm", 3, 5, num_layers=2)
    state0 = stacked.zero_state(2, x)
    flow = dg.gradient_flow(stacked, x, state0)
    assert flow.jac.shape == (13,) and flow.jac_c is not None and flow.grad[0] == pytest.approx(1)
    assert dg.step_jacobians(stacked, x).shape == (12, 2, 20, 20)  # s = [h_1, h_2, C_1, C_2]
    with pytest.raises(RnnlabError):
        dg.gradient_flow(Recurrent("lstm", 3, 5, bidirectional=True), x)
    with pytest.raises(RnnlabError):
        dg.gradient_flow(model, torch.randn(12, 2, 4))


def test_cli_writes_a_plot_and_reports_explosion(tmp_path, capsys):
    png, js = tmp_path / "g.png", tmp_path / "g.json"
    code = main(["gradflow", "--cells", "rnn-relu,lstm", "--length", "30", "--radius", "0.5,4",
                 "--hidden-size", "6", "--batch-size", "2", "-o", str(png), "--json", str(js)])
    out = capsys.readouterr().out
    assert code == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    lines = {}  # the first table's row for each label
    for line in out.splitlines():
        lines.setdefault(line.split("  ")[0].strip(), line)
    assert "EXPLODED" in lines["rnn-relu ρ=4"] and "EXPLODED" not in lines["rnn-relu ρ=0.5"]
    assert "f=" in lines["lstm ρ=0.5"]
    assert js.exists() and '"rnn-relu \\u03c1=4"' in js.read_text()


def test_cli_user_errors_are_one_line(tmp_path, capsys):
    assert main(["gradflow", "--cells", "nope", "-o", str(tmp_path / "g.png")]) == 2
    assert "unknown cell type" in capsys.readouterr().err
    assert main(["gradflow", "--length", "0", "-o", str(tmp_path / "g.png")]) == 2
    capsys.readouterr()
    assert main(["gradflow", "--text", "the cat", "-o", str(tmp_path / "g.png")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--model" in err  # --text needs a model to read it
    assert not (tmp_path / "g.png").exists()


def test_cli_measures_a_trained_language_model(tmp_path, capsys):
    """--model reads the text through the model's own embedding, from the sentence start."""
    import json

    from rnnlab.lm import LM, train_language_model

    (tmp_path / "t.txt").write_text("the cat sat on the mat\nthe dog sat on the rug\n" * 40)
    train_language_model(tmp_path / "t.txt", tmp_path / "m", split=(0.1, 0), layers=2,
                         hidden_size=8, optimizer="adam", lr=0.01, bptt=5, batch_size=4,
                         epochs=1)
    png, js = tmp_path / "g.png", tmp_path / "g.json"
    assert main(["gradflow", "--model", str(tmp_path / "m"), "--text", "the cat sat",
                 "-o", str(png), "--json", str(js)]) == 0
    assert "4 tokens" in capsys.readouterr().out and png.exists()
    (measured,) = json.loads(js.read_text()).values()

    lm = LM.load(tmp_path / "m" / "best")
    model, vocab = lm.model, lm.vocab
    ids = [vocab.stoi["</s>"]] + vocab.encode(["the", "cat", "sat"])
    x = model.embedding(torch.tensor(ids)).detach().unsqueeze(1)
    expected = dg.gradient_flow(model.rnn, x)
    assert np.allclose(measured["grad"], expected.grad, rtol=1e-9)
    assert len(measured["grad"]) == 5 and "grad_c" in measured
