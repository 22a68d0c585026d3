"""The hand-written BPTT layers equal the readable looped cells, in value and in every gradient."""

import pytest
import torch

from rnnlab import fused
from rnnlab.cells import make_cell
from rnnlab.recurrent import Recurrent, run_cell

CASES = [("coupled", {}), ("gru", {}), ("peephole", {"diagonal": True}), ("peephole", {"diagonal": False}),
         ("mogrifier", {}), ("mogrifier", {"rounds": 2})]
IDS = ["coupled", "gru", "peephole-diagonal", "peephole-full", "mogrifier", "mogrifier-2"]


def _flat(state):
    return list(state) if isinstance(state, tuple) else [state]


def _run(model, x, state, lengths, fast, weights):
    """Output, final state and the gradients of a random linear loss, by one path."""
    model.fast = fast
    model.zero_grad()
    for t in (x, *state):
        t.grad = None
    out, final = model(x, tuple(state) if len(state) > 1 else state[0], lengths)
    results = [out, *_flat(final)]
    loss = sum((r * w).sum() for r, w in zip(results, weights))
    loss.backward()
    grads = [p.grad for p in model.parameters()] + [x.grad] + [s.grad for s in state]
    return [r.detach() for r in results], grads


@pytest.mark.parametrize(("cell_type", "options"), CASES, ids=IDS)
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("with_lengths", [False, True], ids=["full", "lengths"])
def test_fast_equals_looped_cells(cell_type, options, bidirectional, with_lengths):
    torch.manual_seed(0)
    T, B, I, H = 6, 4, 5, 3
    model = Recurrent(cell_type, I, H, num_layers=2, bidirectional=bidirectional, **options).double()
    assert cell_type in fused.LAYERS
    x = torch.randn(T, B, I, dtype=torch.float64, requires_grad=True)
    n = 2 * model.num_directions
    state = [torch.randn(n, B, H, dtype=torch.float64, requires_grad=True)
             for _ in range(2 if model.has_cell_state else 1)]
    lengths = torch.tensor([6, 2, 5, 1]) if with_lengths else None
    shapes = [(T, B, H * model.num_directions)] + [(n, B, H)] * len(state)
    weights = [torch.randn(s, dtype=torch.float64) for s in shapes]
    fast_results, fast_grads = _run(model, x, state, lengths, True, weights)
    slow_results, slow_grads = _run(model, x, state, lengths, False, weights)
    for a, b in zip(fast_results + fast_grads, slow_results + slow_grads):
        assert a.shape == b.shape
        torch.testing.assert_close(a, b, rtol=0, atol=1e-10)
    if with_lengths:
        assert (fast_results[0][2:, 1] == 0).all()


@pytest.mark.parametrize(("cell_type", "options"), CASES, ids=IDS)
def test_layer_equals_run_cell_with_empty_sequence(cell_type, options):
    """Called directly, a layer keeps the state of a length-0 sequence, as run_cell does; x needs no grad."""
    torch.manual_seed(1)
    cell = make_cell(cell_type, 3, 4, **options).double()
    x = torch.randn(5, 3, 3, dtype=torch.float64)
    state = cell.zero_state(3, x)
    state = tuple(s + 0.5 for s in state) if isinstance(state, tuple) else state + 0.5
    lengths = torch.tensor([0, 5, 3])
    results = []
    for run in (fused.LAYERS[cell_type], run_cell):
        cell.zero_grad()
        out, final = run(cell, x, state, lengths)
        (out.sum() + sum(s.square().sum() for s in _flat(final))).backward()
        results.append([out, *_flat(final), *(p.grad for p in cell.parameters())])
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)


@pytest.mark.parametrize(("cell_type", "options"), CASES, ids=IDS)
@pytest.mark.parametrize("packed", [False, True], ids=["plain", "packed"])
def test_float32_batch_first_last_output(cell_type, options, packed, monkeypatch):
    """In float32 (the benchmark's type), batch-first (non-contiguous) input and the last output,
    with the per-step products plain or through oneDNN's packed weights."""
    if packed and not fused._CAN_PACK:
        pytest.skip("this torch build has no oneDNN")
    monkeypatch.setattr(fused, "PACK_MIN_SIZE", 0 if packed else 2**62)
    torch.manual_seed(3)
    model = Recurrent(cell_type, 8, 16, num_layers=2, batch_first=True, output="last", **options)
    x = torch.randn(5, 7, 8, requires_grad=True)
    lengths = torch.tensor([7, 3, 1, 6, 7])
    results = []
    for fast in (True, False):
        model.fast = fast
        model.zero_grad()
        x.grad = None
        out, _ = model(x, lengths=lengths)
        out.square().sum().backward()
        results.append([out, x.grad, *(p.grad for p in model.parameters())])
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(("cell_type", "options"), CASES, ids=IDS)
@pytest.mark.parametrize("with_lengths", [False, True], ids=["full", "lengths"])
def test_gradcheck(cell_type, options, with_lengths):
    torch.manual_seed(2)
    cell = make_cell(cell_type, 3, 2, **options).double()
    x = torch.randn(4, 3, 3, dtype=torch.float64, requires_grad=True)
    state = [torch.randn(3, 2, dtype=torch.float64, requires_grad=True)
             for _ in range(2 if cell.has_cell_state else 1)]
    lengths = torch.tensor([4, 1, 3]) if with_lengths else None
    params = [p.detach().requires_grad_() for p in cell.parameters()]
    layer = {"coupled": fused._CoupledLayer, "gru": fused._GRULayer, "peephole": fused._PeepholeLayer,
             "mogrifier": fused._MogrifierLayer}

    def run(x, *tensors):  # the cell's parameters enter as explicit inputs, as in the layers
        return layer[cell_type].apply(x, *tensors, lengths)

    assert torch.autograd.gradcheck(run, (x, *state, *params))
