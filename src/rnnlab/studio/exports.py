"""A text's activations as files other tools read: NumPy's .npz, and LSTMVis's HDF5 project.

The .npz holds every layer's arrays as float32 (T, H) named `layer{k}_{kind}` (k from 0, kind
h, C, and the gates i, f, o or z, r), `tokens` (a unicode array, so that it loads without
pickles) and `token_ids` (the model's vocabulary ids).

LSTMVis (Strobelt et al. 2018) reads a project folder: an HDF5 file of states, one (T, H)
dataset per layer and kind; an HDF5 file with the word id of each time step; a dictionary
file of "word id" lines; and `lstm.yml`, which names the three and the datasets. Its layers
count from 1, its "state" is the cell state C and its "output" is h; the gates are stored as
well, under `gate_{kind}{layer}`, for a user who adds them to lstm.yml. The project comes as a
zip of that folder, since a download is one file. h5py is needed only for this format.
"""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np

from rnnlab.errors import RnnlabError
from rnnlab.lm.bundle import Activations

# Visible stand-ins for white space: LSTMVis splits dictionary lines at any white space.
_SPACE_SIGNS = {" ": "␣", "\n": "⏎", "\t": "⇥", "\r": "␍"}


def activations_npz(acts: Activations, ids: list[int]) -> bytes:
    """The .npz file (bytes) of `acts`: `layer{k}_{kind}` float32 arrays, tokens, token_ids."""
    arrays = {f"layer{k}_{kind}": np.asarray(a, dtype=np.float32)
              for k, layer in enumerate(acts.layers) for kind, a in layer.items()}
    buffer = io.BytesIO()
    np.savez_compressed(buffer, tokens=np.array(acts.tokens, dtype=str),
                        token_ids=np.array(ids, dtype=np.int64), **arrays)
    return buffer.getvalue()


def lstmvis_word(token: str) -> str:
    """`token` as one word of an LSTMVis dictionary: no white space inside."""
    if not token:
        return "∅"
    return "".join(_SPACE_SIGNS.get(c, f"\\u{ord(c):04x}") if c.isspace() else c for c in token)


def require_h5py():
    """The h5py module, or a one-line RnnlabError saying how to install it."""
    try:
        import h5py
    except ImportError:
        raise RnnlabError("the LSTMVis (HDF5) export needs h5py: pip install h5py") from None
    return h5py


def lstmvis_zip(acts: Activations, ids: list[int], itos: list[str], name: str) -> bytes:
    """LSTMVis's project folder `name/` for these activations as a zip (bytes); needs h5py."""
    h5py = require_h5py()
    states, types = io.BytesIO(), []
    with h5py.File(states, "w") as f:
        for k, layer in enumerate(acts.layers, start=1):
            for kind, array in layer.items():
                path = {"C": f"states{k}", "h": f"output{k}"}.get(kind, f"gate_{kind}{k}")
                f.create_dataset(path, data=np.asarray(array, dtype=np.float32))
                if kind in ("C", "h"):
                    types.append({"type": "state" if kind == "C" else "output", "layer": k, "path": path})
    words = io.BytesIO()
    with h5py.File(words, "w") as f:
        f.create_dataset("word_ids", data=np.asarray(ids, dtype=np.int64))
    dictionary = "".join(f"{lstmvis_word(t)} {i}\n" for i, t in enumerate(itos))
    # JSON strings are YAML strings, so any model name is quoted safely.
    config = "\n".join([
        f"name: {json.dumps(name)}",
        f"description: {json.dumps(f'rnnlab activations of {name} over {len(acts.tokens)} tokens')}",
        "files:",
        "  states: states.h5",
        "  word_ids: train.h5",
        "  words: words.dict",
        "word_sequence:",
        "  file: word_ids",
        "  path: word_ids",
        "  dict_file: words",
        "states:",
        "  file: states",
        "  types: [",
        ",\n".join(f"    {{type: {t['type']}, layer: {t['layer']}, path: {t['path']}}}" for t in types),
        "  ]",
        "",
    ])
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(f"{name}/states.h5", states.getvalue())
        z.writestr(f"{name}/train.h5", words.getvalue())
        z.writestr(f"{name}/words.dict", dictionary.encode("utf-8"))
        z.writestr(f"{name}/lstm.yml", config.encode("utf-8"))
    return buffer.getvalue()
