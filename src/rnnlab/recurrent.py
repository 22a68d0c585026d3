"""A recurrent layer: any cell of `rnnlab.cells`, run over time, stacked and bidirectional.

Two paths compute the same function. The readable one loops a cell over the steps and lets
autograd do backpropagation through time. The fast one hands the same parameters to a fused
kernel: PyTorch's own for `lstm`, `rnn` and `rnn-relu` (identical math), and the hand-written
BPTT of `rnnlab.fused` for the others. Tests hold the two paths to each other and to
`torch.nn.LSTM` / `torch.nn.RNN`.

Shapes follow torch.nn.LSTM: input (T, B, I), or (B, T, I) with `batch_first`; the state is
`h` (or the pair `(h, C)` for the LSTM family), each (num_layers * num_directions, B, H).

Regularisers of the AWD-LSTM (rnnlab.dropout): `weight_drop` masks the hidden-to-hidden
weights (DropConnect) once per forward call in training, before any path runs, so the fused
kernels run on the dropped matrices; `locked=True` makes the dropout between layers one mask
per sequence for all steps instead of a fresh one per step.

Truncated BPTT (the lecture's "range over which gradients are computed"): carry the final
state into the next batch through `detach_state`, which keeps its values and cuts the graph,
so gradients flow back at most one batch of steps. Clip gradients with
`torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)` between backward and step.
"""

from __future__ import annotations

from functools import partial
from operator import itemgetter

import torch
import torch.nn.functional as F
from torch import _VF, Tensor, nn

from rnnlab import fused
from rnnlab.cells import Cell, State, check_cell_type, make_cell, map_state
from rnnlab.dropout import check_rate, drop_connect, locked_dropout
from rnnlab.errors import RnnlabError

TORCH_KERNELS = {"lstm": "lstm", "rnn": "rnn_tanh", "rnn-relu": "rnn_relu"}


def detach_state(state: State | None) -> State | None:
    """The same state values with the autograd graph cut (truncated BPTT)."""
    return None if state is None else map_state(Tensor.detach, state)


def reverse_padded(x: Tensor, lengths: Tensor | None) -> Tensor:
    """Reverse each sequence of (T, B, ...) within its own length; padding stays in place."""
    if lengths is None:
        return x.flip(0)
    T = x.shape[0]
    t = torch.arange(T, device=x.device).unsqueeze(1)
    L = lengths.to(x.device).unsqueeze(0)
    idx = torch.where(t < L, L - 1 - t, t)
    return x.gather(0, idx.view(T, -1, *([1] * (x.dim() - 2))).expand_as(x))


def run_cell(cell: Cell, x: Tensor, state: State, lengths: Tensor | None = None) -> tuple[Tensor, State]:
    """Loop `cell` over the steps of x (T, B, I); steps past a sequence's length keep its state."""
    outputs = []
    for t in range(x.shape[0]):
        h, new_state = cell(x[t], state)
        if lengths is not None:
            real = (t < lengths.to(x.device)).unsqueeze(1)
            new_state = map_state(partial(torch.where, real), new_state, state)
            h = h * real
        state = new_state
        outputs.append(h)
    return torch.stack(outputs), state


def check_settings(cell_type: str, num_layers: int = 1, dropout: float = 0.0, output: str = "all",
                   weight_drop: float = 0.0) -> None:
    """RnnlabError for settings no `Recurrent` takes (cell sizes are checked by the cell)."""
    check_cell_type(cell_type)
    if output not in ("all", "last"):
        raise RnnlabError(f"output must be 'all' or 'last', got {output!r}")
    if num_layers < 1:
        raise RnnlabError(f"num_layers must be at least 1, got {num_layers}")
    check_rate("dropout", dropout)
    check_rate("weight_drop", weight_drop)


class Recurrent(nn.Module):
    """Layers of one cell type over time; returns every step's output or only the last."""

    def __init__(
        self,
        cell_type: str,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bidirectional: bool = False,
        dropout: float = 0.0,
        batch_first: bool = False,
        output: str = "all",
        fast: bool = True,
        weight_drop: float = 0.0,
        locked: bool = False,
        **cell_options,
    ) -> None:
        super().__init__()
        check_settings(cell_type, num_layers, dropout, output, weight_drop)
        self.weight_drop, self.locked = weight_drop, locked
        self.cell_type = cell_type
        self.input_size, self.hidden_size = input_size, hidden_size
        self.num_layers, self.bidirectional = num_layers, bidirectional
        self.num_directions = 2 if bidirectional else 1
        self.dropout, self.batch_first, self.output, self.fast = dropout, batch_first, output, fast
        self.cells = nn.ModuleList(
            make_cell(cell_type, input_size if layer == 0 else hidden_size * self.num_directions,
                      hidden_size, **cell_options)
            for layer in range(num_layers)
            for _ in range(self.num_directions)
        )
        self.has_cell_state = self.cells[0].has_cell_state

    def zero_state(self, batch: int, like: Tensor) -> State:
        """All-zero initial state, shaped (num_layers * num_directions, batch, hidden)."""
        h = like.new_zeros(len(self.cells), batch, self.hidden_size)
        return (h, h.clone()) if self.has_cell_state else h

    def forward(
        self, x: Tensor, state: State | None = None, lengths: Tensor | None = None,
        weight_drop: bool = True,
    ) -> tuple[Tensor, State]:
        """Run over x; `lengths` (B,) marks the real steps of a padded batch.

        Returns (output, final_state). Output "all" is (T, B, D*H), zero at padded steps;
        "last" is (B, D*H), each sequence's last real step (the backward direction's step 0).
        In training, `weight_drop=False` skips this call's DropConnect masks.
        """
        if weight_drop and self.weight_drop and self.training:
            # One DropConnect mask per matrix for the whole call: the pass runs with the dropped
            # matrices standing in for the parameters, whose gradients are the masked ones.
            return torch.func.functional_call(self, self.dropped_weights(), (x, state, lengths),
                                              {"weight_drop": False})
        if self.batch_first:
            x = x.transpose(0, 1)
        T, B, _ = x.shape
        if lengths is not None:
            lengths = torch.as_tensor(lengths, dtype=torch.long).cpu()
            if lengths.shape != (B,) or lengths.min() < 1 or lengths.max() > T:
                raise RnnlabError(f"lengths must be (batch,) in [1, {T}], got {lengths.tolist()}")
        if state is None:
            state = self.zero_state(B, x)
        if self.fast and self._kernel() is not None:
            out, state = self._forward_torch(x, state, lengths)
        else:
            out, state = self._forward_cells(x, state, lengths)
        if self.output == "last":
            H = self.hidden_size
            if lengths is None:
                last = out[-1]
            else:
                idx = (lengths.to(x.device) - 1).view(1, B, 1).expand(1, B, out.shape[2])
                last = out.gather(0, idx)[0]
            out = last if not self.bidirectional else torch.cat([last[:, :H], out[0, :, H:]], 1)
        elif self.batch_first:
            out = out.transpose(0, 1)
        return out, state

    def dropped_weights(self) -> dict[str, Tensor]:
        """Each cell's hidden-to-hidden columns with a fresh DropConnect mask, by parameter name."""
        H = self.hidden_size
        return {f"cells.{k}.{name}": drop_connect(getattr(cell, name), self.weight_drop, slice(0, H))
                for k, cell in enumerate(self.cells) for name in cell.hidden_weights}

    def _between_layers(self, x: Tensor) -> Tensor:
        """Dropout on a layer's output before the next layer: locked, or fresh at every step."""
        if self.locked:
            return locked_dropout(x, self.dropout, True)
        return F.dropout(x, self.dropout, True)

    def _kernel(self) -> str | None:
        """The name of torch's fused kernel computing exactly this cell, if there is one."""
        nonlinearity = getattr(self.cells[0], "nonlinearity", "tanh")
        return {"tanh": TORCH_KERNELS.get(self.cell_type), "relu": "rnn_relu"}.get(nonlinearity)

    def _forward_cells(self, x: Tensor, state: State, lengths: Tensor | None) -> tuple[Tensor, State]:
        finals = []
        layer_input = x
        use_fused = self.fast and self.cell_type in fused.LAYERS
        for layer in range(self.num_layers):
            outs = []
            for d in range(self.num_directions):
                k = layer * self.num_directions + d
                cell, s0 = self.cells[k], map_state(itemgetter(k), state)
                inp = layer_input if d == 0 else reverse_padded(layer_input, lengths)
                run = fused.LAYERS[self.cell_type] if use_fused else run_cell
                out, s = run(cell, inp, s0, lengths)
                outs.append(out if d == 0 else reverse_padded(out, lengths))
                finals.append(s)
            layer_input = torch.cat(outs, 2) if self.bidirectional else outs[0]
            if self.dropout and self.training and layer < self.num_layers - 1:
                layer_input = self._between_layers(layer_input)
        if self.has_cell_state:
            final = (torch.stack([s[0] for s in finals]), torch.stack([s[1] for s in finals]))
        else:
            final = torch.stack(finals)
        return layer_input, final

    def _flat_weights(self, cells: list[Cell]) -> list[Tensor]:
        weights = []
        for cell in cells:
            if self.cell_type == "lstm":
                # Contiguous copies made once here: given strided column slices of W, torch's
                # kernel copies them itself in forward and backward, and the slices' backward
                # fills two zero matrices of W's size (5-7 % slower at 2x650).
                w_hh, w_ih = (w.contiguous() for w in cell.W.split([self.hidden_size, cell.input_size], 1))
            else:
                w_ih, w_hh = cell.W, cell.U
            # torch's kernels add two biases; the lecture has one, so the second is zero.
            weights += [w_ih, w_hh, cell.b, torch.zeros_like(cell.b)]
        return weights

    def _forward_torch(self, x: Tensor, state: State, lengths: Tensor | None) -> tuple[Tensor, State]:
        if not (self.locked and self.dropout and self.training):
            return self._torch_layers(x, state, lengths, 0, self.num_layers)
        # The kernel's own dropout between layers is fresh at every step: for locked dropout
        # it runs one layer at a time.
        finals = []
        for layer in range(self.num_layers):
            if layer:
                x = self._between_layers(x)
            x, final = self._torch_layers(x, state, lengths, layer, 1)
            finals.append(final)
        return x, map_state(lambda *parts: torch.cat(parts), *finals)

    def _torch_layers(self, x: Tensor, state: State, lengths: Tensor | None, first: int,
                      count: int) -> tuple[Tensor, State]:
        """Layers first .. first+count-1 in one call of torch's kernel, from their part of state."""
        kernel = self._kernel()
        fn = getattr(_VF, kernel)
        D = self.num_directions
        state = map_state(lambda h: h[first * D : (first + count) * D], state)
        hx = list(state) if kernel == "lstm" else state
        args = (self._flat_weights(self.cells[first * D : (first + count) * D]), True, count,
                float(self.dropout), self.training, self.bidirectional)
        if lengths is None:
            out, *final = fn(x, hx, *args, False)
            return out, (tuple(final) if kernel == "lstm" else final[0])
        packed = nn.utils.rnn.pack_padded_sequence(x, lengths, enforce_sorted=False)
        order, unorder = packed.sorted_indices, packed.unsorted_indices
        state = map_state(lambda h: h.index_select(1, order), state)
        hx = list(state) if kernel == "lstm" else state
        data, *final = fn(packed.data, packed.batch_sizes, hx, *args)
        out, _ = nn.utils.rnn.pad_packed_sequence(
            nn.utils.rnn.PackedSequence(data, packed.batch_sizes, order, unorder),
            total_length=x.shape[0])
        final = [f.index_select(1, unorder) for f in final]
        return out, (tuple(final) if kernel == "lstm" else final[0])
