"""Fast layers for the cells torch has no kernel for: BPTT written out by hand.

`LAYERS[cell_type](cell, x, state, lengths) -> (outputs, final_state)` computes exactly what
`rnnlab.recurrent.run_cell` computes, faster.
"""

from collections.abc import Callable

LAYERS: dict[str, Callable] = {}
