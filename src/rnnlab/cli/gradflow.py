"""`rnnlab gradflow`: how far back the loss at the last step still reaches, cell by cell."""

from __future__ import annotations

import argparse
import json

import torch
from tqdm import tqdm

from rnnlab import diagnostics
from rnnlab.cells import CELL_TYPES
from rnnlab.cli._options import add_compute_options, add_overwrite, apply_threads
from rnnlab.device import resolve_device
from rnnlab.errors import RnnlabError
from rnnlab.fileio import atomic_write
from rnnlab.memory import check_fits
from rnnlab.outputs import check_output, plot_format

DEFAULT_TEXT = "the meaning of a word depends on the words before it"


def _radii(text: str) -> list[float | None]:
    try:
        return [None if r == "init" else float(r) for r in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"radius must be numbers or 'init', got {text!r}") from None


def register(subparsers) -> None:
    """Add `gradflow`."""
    p = subparsers.add_parser(
        "gradflow", help="gradient norms through time, spectral radius and gates of each cell",
        description="For fresh cells on a random input sequence: the gradient norm ‖∂E_T/∂s_k‖ of "
                    "the last step's loss E_T = u·h_T (u = ones/sqrt(H)) at every distance T-k, "
                    "the Jacobian product norms (for LSTM-type cells the h and C paths), ρ(U) "
                    "and the mean gates. Prints tables and writes a PNG of log gradient norm "
                    "against distance. Exploding gradients are reported, not fatal.")
    p.add_argument("-o", "--output", required=True,
                   help="image file for the plot: .png, .svg or .pdf")
    add_overwrite(p)
    p.add_argument("--cells", default=",".join(CELL_TYPES),
                   help=f"comma-separated cell types (default: all, {','.join(CELL_TYPES)})")
    p.add_argument("--length", type=int, default=100, help="sequence length T (default 100)")
    p.add_argument("--radius", type=_radii, default=[None],
                   help="comma-separated spectral radii; every recurrent matrix of the cell (U; "
                        "for gated cells each gate's h-columns, and the peephole matrices) is "
                        "rescaled to each one; 'init' keeps the initialisation (default init)")
    p.add_argument("--hidden-size", "--hidden", dest="hidden", type=int, default=32,
                   help="hidden size (default 32)")
    p.add_argument("--input-size", type=int, default=8, help="input size (default 8)")
    p.add_argument("--batch-size", "--batch", dest="batch", type=int, default=4,
                   help="sequences averaged over (default 4)")
    p.add_argument("--seed", type=int, default=0, help="seed for cells and input (default 0)")
    p.add_argument("--threshold", type=float, default=1e6,
                   help="a norm above this counts as exploded (default 1e6)")
    p.add_argument("--json", help="also write every measured array to this JSON file")
    p.add_argument("--model", help="a trained language model (folder, or the output folder of "
                                   "`rnnlab train`): measure its recurrent layers on --text "
                                   "instead of fresh cells")
    p.add_argument("--text", default=None,
                   help=f"with --model: the input it reads, from the sentence start (default "
                        f"{DEFAULT_TEXT!r})")
    # Matrices of a few dozen rows: extra threads only add synchronisation.
    add_compute_options(p, threads_default="1")
    p.set_defaults(func=run)


def model_flow(args: argparse.Namespace) -> tuple[str, diagnostics.GradientFlow]:
    """The gradient flow of a trained model's recurrent layers on its embedding of --text."""
    from rnnlab.cli.lm import load

    lm = load(args)
    text = args.text if args.text is not None else DEFAULT_TEXT
    ids, _ = lm.pipeline.encode_prompt(text, lm.vocab)
    if not ids:
        raise RnnlabError("--text has no tokens")
    tokens = torch.tensor(lm.pipeline.start_ids(lm.vocab) + ids, device=lm.device)
    x = lm.model.embedding(tokens).detach().unsqueeze(1)
    shown = text if len(text) <= 40 else text[:37] + "..."
    label = f"{args.model} ({lm.model.rnn.cell_type}, {len(tokens)} tokens of {shown!r})"
    return label, diagnostics.gradient_flow(lm.model.rnn, x, threshold=args.threshold)


def cell_flows(args: argparse.Namespace) -> list[tuple[str, diagnostics.GradientFlow]]:
    """The gradient flow of fresh cells of each chosen type and radius."""
    device = resolve_device(args.device)
    cells = [c.strip() for c in args.cells.split(",") if c.strip()]
    if not cells:
        raise RnnlabError("--cells is empty")
    unknown = [c for c in cells if c not in CELL_TYPES]
    if unknown:
        raise RnnlabError(f"unknown cell type {unknown[0]!r}; choose from {', '.join(CELL_TYPES)}")
    for name, value in (("length", args.length), ("hidden-size", args.hidden),
                        ("input-size", args.input_size), ("batch-size", args.batch)):
        if value < 1:
            raise RnnlabError(f"--{name} must be at least 1, got {value}")
    # The Jacobians of every step, (length, batch, S, S) float64 with S up to 2 x hidden (h and
    # C), are kept at once; refuse sizes the machine cannot hold before building anything.
    need = 8 * args.length * args.batch * (2 * args.hidden) ** 2
    check_fits(4 * need, f"--hidden-size {args.hidden} with --length {args.length} and "
                         f"--batch-size {args.batch} (its Jacobians, with room to work)",
               "lower them")
    with tqdm(total=len(cells) * len(args.radius), desc="gradflow", leave=False) as bar:
        return diagnostics.sweep(cells, args.radius, args.length, args.hidden, args.input_size,
                                 args.batch, args.seed, args.threshold, bar.update, device)


def run(args: argparse.Namespace) -> int:
    """Measure, print the tables, write the plot (and JSON)."""
    # Before measuring: a wrong output costs seconds, not the sweep.
    plot_format(args.output)
    outputs = [args.output, *([args.json] if args.json else [])]
    inputs = (args.model,) if args.model else ()
    for path in outputs:
        check_output(path, overwrite=args.overwrite, inputs=inputs)
    if args.text is not None and not args.model:
        raise RnnlabError("--text is read by a trained model: give --model too")
    # Matrices of a few dozen rows: extra threads only add synchronisation.
    args.threads = 1 if args.threads is None else args.threads
    apply_threads(args)
    flows = [model_flow(args)] if args.model else cell_flows(args)
    print(diagnostics.format_table(flows, args.threshold))
    diagnostics.plot_gradient_flow(flows, args.output)
    print(f"wrote {args.output}")
    if args.json:
        with atomic_write(args.json) as f:
            json.dump({label: flow.to_dict() for label, flow in flows}, f, indent=1)
        print(f"wrote {args.json}")
    return 0
