"""Recurrent layers against torch.nn.LSTM / nn.RNN, on both the fused and the looped path."""

import pytest
import torch
from torch import nn

from rnnlab.cells import CELL_TYPES
from rnnlab.errors import RnnlabError
from rnnlab.recurrent import Recurrent, detach_state, reverse_padded

T, B, I, H = 7, 4, 5, 6
LENGTHS = torch.tensor([7, 3, 5, 1])


def copy_from_torch(ours: Recurrent, ref: nn.RNNBase) -> None:
    """Put the reference layer's weights into ours: the lecture's one bias is b_ih + b_hh."""
    with torch.no_grad():
        for layer in range(ref.num_layers):
            for d in range(2 if ref.bidirectional else 1):
                sfx = f"_l{layer}" + ("_reverse" if d else "")
                cell = ours.cells[layer * (2 if ref.bidirectional else 1) + d]
                w_ih, w_hh = getattr(ref, "weight_ih" + sfx), getattr(ref, "weight_hh" + sfx)
                bias = getattr(ref, "bias_ih" + sfx) + getattr(ref, "bias_hh" + sfx)
                if isinstance(ref, nn.LSTM):
                    cell.W.copy_(torch.cat([w_hh, w_ih], 1))
                else:
                    cell.W.copy_(w_ih)
                    cell.U.copy_(w_hh)
                cell.b.copy_(bias)


def grads_from_torch(ours: Recurrent, ref: nn.RNNBase) -> list[torch.Tensor]:
    """The reference's parameter gradients, arranged as our parameters."""
    grads = []
    for layer in range(ref.num_layers):
        for d in range(2 if ref.bidirectional else 1):
            sfx = f"_l{layer}" + ("_reverse" if d else "")
            g_ih = getattr(ref, "weight_ih" + sfx).grad
            g_hh = getattr(ref, "weight_hh" + sfx).grad
            g_b = getattr(ref, "bias_ih" + sfx).grad
            grads += [torch.cat([g_hh, g_ih], 1), g_b] if isinstance(ref, nn.LSTM) else [g_ih, g_hh, g_b]
    return grads


def run_torch(ref: nn.RNNBase, x, state, lengths):
    if lengths is None:
        return ref(x, state)
    packed = nn.utils.rnn.pack_padded_sequence(x, lengths, enforce_sorted=False)
    out, final = ref(packed, state)
    return nn.utils.rnn.pad_packed_sequence(out, total_length=x.shape[0])[0], final


def flat(state):
    return torch.cat([s.flatten() for s in state]) if isinstance(state, tuple) else state.flatten()


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.float64, 1e-10)])
@pytest.mark.parametrize("fast", [True, False])
@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("use_lengths", [False, True])
@pytest.mark.parametrize("cell_type", ["lstm", "rnn", "rnn-relu"])
def test_equals_torch(cell_type, use_lengths, bidirectional, num_layers, fast, dtype, tol):
    torch.manual_seed(0)
    if cell_type == "lstm":
        ref = nn.LSTM(I, H, num_layers, bidirectional=bidirectional)
    else:
        ref = nn.RNN(I, H, num_layers, nonlinearity="relu" if cell_type == "rnn-relu" else "tanh",
                     bidirectional=bidirectional)
    ref = ref.to(dtype)
    ours = Recurrent(cell_type, I, H, num_layers, bidirectional=bidirectional, fast=fast).to(dtype)
    copy_from_torch(ours, ref)
    x = torch.randn(T, B, I, dtype=dtype)
    lengths = LENGTHS if use_lengths else None
    D = 2 if bidirectional else 1
    h0 = torch.randn(num_layers * D, B, H, dtype=dtype)
    state = (h0, torch.randn_like(h0)) if cell_type == "lstm" else h0
    weights = torch.randn(T, B, D * H, dtype=dtype)

    out_ref, final_ref = run_torch(ref, x, state, lengths)
    out, final = ours(x, state, lengths)
    assert (out - out_ref).abs().max() < tol
    assert (flat(final) - flat(final_ref)).abs().max() < tol

    ((out_ref * weights).sum() + flat(final_ref).sum()).backward()
    ((out * weights).sum() + flat(final).sum()).backward()
    for g, g_ref in zip([p.grad for p in ours.parameters()], grads_from_torch(ours, ref)):
        assert (g - g_ref).abs().max() < tol * 10


@pytest.mark.parametrize("cell_type", CELL_TYPES)
def test_padding_never_leaks(cell_type):
    """A padded sequence gives the same outputs and final state as the sequence alone."""
    torch.manual_seed(1)
    layer = Recurrent(cell_type, I, H, num_layers=2, bidirectional=True).double()
    x = torch.randn(T, B, I, dtype=torch.double)
    out, final = layer(x, lengths=LENGTHS)
    for b, n in enumerate(LENGTHS.tolist()):
        alone, final_alone = layer(x[:n, b : b + 1])
        assert torch.allclose(out[:n, b], alone[:, 0], atol=1e-12)
        assert (out[n:, b] == 0).all()
        for s, s_alone in zip(final if isinstance(final, tuple) else (final,),
                              final_alone if isinstance(final_alone, tuple) else (final_alone,)):
            assert torch.allclose(s[:, b], s_alone[:, 0], atol=1e-12)


@pytest.mark.parametrize("cell_type", CELL_TYPES)
@pytest.mark.parametrize("bidirectional", [False, True])
def test_output_last_is_each_sequences_last_real_step(cell_type, bidirectional):
    torch.manual_seed(2)
    D = 2 if bidirectional else 1
    every = Recurrent(cell_type, I, H, bidirectional=bidirectional, batch_first=True).double()
    last = Recurrent(cell_type, I, H, bidirectional=bidirectional, batch_first=True,
                     output="last").double()
    last.load_state_dict(every.state_dict())
    x = torch.randn(B, T, I, dtype=torch.double)
    out, _ = every(x, lengths=LENGTHS)
    got, _ = last(x, lengths=LENGTHS)
    assert got.shape == (B, D * H)
    for b, n in enumerate(LENGTHS.tolist()):
        assert torch.equal(got[b, :H], out[b, n - 1, :H])
        if bidirectional:
            assert torch.equal(got[b, H:], out[b, 0, H:])


def test_reverse_padded_reverses_within_length():
    x = torch.arange(T * B).view(T, B).float()
    r = reverse_padded(x, LENGTHS)
    for b, n in enumerate(LENGTHS.tolist()):
        assert torch.equal(r[:n, b], x[:n, b].flip(0))
        assert torch.equal(r[n:, b], x[n:, b])
    assert torch.equal(reverse_padded(r, LENGTHS), x)


@pytest.mark.parametrize("cell_type", ["lstm", "gru"])
def test_truncated_bptt_carries_values_but_cuts_gradient(cell_type):
    """Two halves with a detached state: same values as one pass, no gradient into the first half."""
    torch.manual_seed(3)
    layer = Recurrent(cell_type, I, H).double()
    x = torch.randn(2 * T, B, I, dtype=torch.double, requires_grad=True)
    whole, _ = layer(x)
    first, state = layer(x[:T])
    second, _ = layer(x[T:], detach_state(state))
    assert torch.allclose(torch.cat([first, second]), whole, atol=1e-12)
    second.sum().backward()
    assert (x.grad[:T] == 0).all() and (x.grad[T:] != 0).any()


def test_dropout_between_layers_only_in_training():
    torch.manual_seed(4)
    layer = Recurrent("lstm", I, H, num_layers=2, dropout=0.5)
    x = torch.randn(T, B, I)
    layer.eval()
    a, _ = layer(x)
    b, _ = layer(x)
    assert torch.equal(a, b)
    layer.train()
    c, _ = layer(x)
    assert not torch.allclose(a, c)


@pytest.mark.parametrize("bad", [{"output": "first"}, {"num_layers": 0}, {"dropout": 1.0},
                                 {"weight_drop": 1.0}, {"weight_drop": -0.5}])
def test_bad_settings_are_refused(bad):
    with pytest.raises(RnnlabError):
        Recurrent("lstm", I, H, **bad)


def test_bad_lengths_are_refused():
    layer = Recurrent("gru", I, H)
    with pytest.raises(RnnlabError):
        layer(torch.randn(T, B, I), lengths=torch.tensor([T + 1, 1, 1, 1]))
