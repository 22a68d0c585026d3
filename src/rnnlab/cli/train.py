"""`rnnlab train`: train a word- or character-level recurrent language model."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from rnnlab.cells import CELL_TYPES
from rnnlab.cli._options import ERROR_HANDLERS, ERRORS_HELP, THREADS_HELP, add_overwrite, check_at_least
from rnnlab.cli._progress import DownloadBars, TrainingReport
from rnnlab.cli._store import add_store_option, text_store
from rnnlab.device import DEVICE_HELP, PRECISIONS
from rnnlab.errors import RnnlabError
from rnnlab.lm.adaptive import DECODERS, GROWTH, HEAD_SHARE, TAIL_SHRINK
from rnnlab.lm.settings import (
    DEFAULT_HIDDEN,
    LOSSES,
    OPTIMIZERS,
    RECIPES,
    SCHEDULES,
    TrainSettings,
    with_recipe,
)
from rnnlab.text.pipeline import MODES, TextPipeline
from rnnlab.text.tokenize import LEVELS

D = TrainSettings()

EPILOG = """\
defaults follow Zaremba et al.'s small PTB model (2 x 200 LSTM, U(-0.1, 0.1) init, SGD lr 1
halved every epoch after the 4th, clip 5, bptt 20, batch 20, 13 epochs, loss summed over time),
except that the decoder is tied to the embedding: add --no-tie for the paper's exact model.

MODEL_DIR gets best/ and last/ (model folders: model.safetensors, config.json, vocab.json;
last/ also the training state), metrics.jsonl (one JSON line per epoch, also printed) and
curve.png. Ctrl-C saves last/ and stops; --resume continues exactly where it stopped. An
existing MODEL_DIR needs --resume (continue) or --overwrite (start again); while a run
trains, its folder is locked against a second run.

examples:
  rnnlab train ptb.train.txt --valid ptb.valid.txt --test ptb.test.txt -o ptb-small
  rnnlab train input.txt --split 0.05 0.05 --level char --optimizer adam --hidden-size 512 \\
      --layers 3 --dropout 0.5 --bptt 25 --batch-size 32 -o shakespeare
  rnnlab train ptb.train.txt --valid ptb.valid.txt --vectors vectors.txt -o ptb-w2v
  rnnlab train -o ptb-small --resume --epochs 20
  rnnlab train --corpus ptb -o ptb-small
  rnnlab train --corpus ptb -o ptb-small --device cuda --precision bf16
  torchrun --nproc_per_node=4 -m rnnlab train --corpus ptb -o ptb-small   # 4 processes, 4 GPUs
  rnnlab train --corpus ptb --recipe awd --hidden-size 400 --epochs 40 --finetune 10 -o ptb-awd
  rnnlab train --corpus ptb --recipe awd --batch-size 20 --no-asgd -o ptb-awd-sgd

Text files over 256 MB are read through a token store (as `rnnlab prepare` makes) that is
built once in the cache and reused while the file is unchanged; --store always / never
decide otherwise. A store trains in either mode, but not with --split; --resume goes on from
what the run started with.

Under torchrun each process takes an equal share of every batch (--batch-size is the whole
batch, so it must divide by the number of processes), gradients are averaged, and only rank 0
writes files or prints; the result equals one process training on the whole batch.
"""


def checkpoint_every(value: str) -> tuple[str, float]:
    """N (steps) or Nm / Nmin (minutes), as given to --checkpoint-every."""
    text = value.strip().lower()
    for suffix in ("min", "m"):
        if text.endswith(suffix):
            number, unit = text[: -len(suffix)], "minutes"
            break
    else:
        number, unit = text, "steps"
    try:
        amount = float(number) if unit == "minutes" else int(number)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r}: give steps (500) or minutes (10m)") from None
    if amount <= 0:
        raise argparse.ArgumentTypeError(f"{value!r}: must be positive")
    return unit, amount


def recipe_help() -> str:
    """--recipe's help: each recipe with the values it sets."""
    return "; ".join(f"{name}: " + ", ".join(f"{k}={v}" for k, v in values.items())
                     for name, values in RECIPES.items())


def register(subparsers) -> None:
    """Add the `train` subcommand."""
    p = subparsers.add_parser(
        "train", help="train a recurrent language model (word or character level)",
        description="Train a recurrent language model on a text file: one sentence or line "
                    "per line, plain or .gz.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
        argument_default=argparse.SUPPRESS)
    p.add_argument("train", nargs="?", default=None, metavar="TRAIN",
                   help="training text, or a token store (`rnnlab prepare`) to train from, read "
                        "from disk batch by batch (may be left out with --resume)")
    p.add_argument("-o", "--output", required=True, metavar="MODEL_DIR",
                   help="folder for checkpoints, metrics and the curve")
    p.add_argument("--resume", action="store_true", default=False,
                   help="continue the run in MODEL_DIR from MODEL_DIR/last")
    add_overwrite(p)
    p.add_argument("--allow-changed-data", action="store_true", default=False,
                   help="with --resume: go on although a text file changed since the run began "
                        "(refused by default: the run would silently continue on other text)")

    g = p.add_argument_group("data")
    g.add_argument("--valid", metavar="FILE", help="validation text (model selection, schedule)")
    g.add_argument("--test", metavar="FILE", help="test text, scored with the best model")
    g.add_argument("--corpus", metavar="NAME",
                   help="a known corpus (`rnnlab data list`: ptb, wikitext-2, ...) instead of "
                        "TRAIN: its train, valid and test files, from the mirror, cache or web")
    g.add_argument("--data-dir", metavar="DIR",
                   help="with --corpus: a local mirror laid out as `rnnlab data` expects "
                        "(default $RNNLAB_DATA)")
    g.add_argument("--split", nargs=2, type=float, metavar=("VALID", "TEST"),
                   help="cut validation and test fractions off the end of TRAIN instead")
    g.add_argument("--level", choices=LEVELS,
                   help="tokens: words (whitespace), characters, segmented (pre-segmented text, "
                        f"e.g. Chinese split by spaces) or jieba (raw Chinese, needs jieba) ({D.level})")
    g.add_argument("--mode", choices=MODES,
                   help="stream: one continuous text in bptt blocks, state carried; sentence: "
                        f"each line '<s> ... </s>' from a zero state ({D.mode})")
    g.add_argument("--lower", action="store_true", help="lowercase the text")
    g.add_argument("--min-count", type=int, help=f"rarer tokens become <unk> ({D.min_count})")
    g.add_argument("--max-vocab", type=int, help="keep at most this many tokens (all)")
    # No defaults here: a resumed run keeps the encoding it was started with.
    g.add_argument("--encoding", help=f"text encoding of the files ({D.encoding})")
    g.add_argument("--errors", choices=ERROR_HANDLERS, help=ERRORS_HELP)
    add_store_option(g)

    g = p.add_argument_group("model")
    g.add_argument("--cell", choices=CELL_TYPES, help=f"recurrent cell ({D.cell})")
    g.add_argument("--layers", type=int, help=f"recurrent layers ({D.layers})")
    g.add_argument("--hidden-size", type=int,
                   help=f"units per layer (the vectors' dimension with --vectors, else "
                        f"{DEFAULT_HIDDEN})")
    g.add_argument("--embed-size", type=int,
                   help="embedding size (the vectors' dimension, else the hidden size)")
    g.add_argument("--dropout", type=float,
                   help=f"dropout on the embedding, between layers and before the decoder, fresh "
                        f"at every step (Zaremba); where a --dropout-input/-hidden/-output is "
                        f"given, that one acts there instead ({D.dropout})")
    g.add_argument("--dropout-input", type=float, metavar="P",
                   help="locked (variational) dropout on the embedding's output: one mask per "
                        "sequence for all steps (off: --dropout; AWD-LSTM: 0.4 PTB, 0.65 WT2)")
    g.add_argument("--dropout-hidden", type=float, metavar="P",
                   help="locked dropout between recurrent layers (off: --dropout; AWD-LSTM: 0.25 "
                        "PTB, 0.2 WT2)")
    g.add_argument("--dropout-output", type=float, metavar="P",
                   help="locked dropout on the last layer's output (off: --dropout; AWD-LSTM: 0.4)")
    g.add_argument("--dropout-words", type=float, metavar="P",
                   help=f"embedding dropout: whole words dropped per batch ({D.dropout_words}; "
                        f"AWD-LSTM: 0.1)")
    g.add_argument("--weight-drop", type=float, metavar="P",
                   help=f"DropConnect on the hidden-to-hidden weights, one mask per batch "
                        f"({D.weight_drop}; AWD-LSTM: 0.5)")
    g.add_argument("--no-tie", dest="tie_weights", action="store_false",
                   help="separate decoder weights (default: tied to the embedding)")
    g.add_argument("--decoder", choices=DECODERS,
                   help="full: one softmax over the vocabulary; adaptive: Grave et al.'s adaptive "
                        "softmax, a head of frequent words plus one entry per cluster of rarer "
                        "words, each cluster's softmax computed only for its own targets in "
                        "training: exact probabilities, far faster for large vocabularies "
                        f"({D.decoder})")
    g.add_argument("--cutoffs", nargs="+", type=int, metavar="N",
                   help="adaptive: the head's size and each cluster's first id, increasing and "
                        "below the vocabulary size (default: the fewest most frequent words that "
                        f"cover {100 * HEAD_SHARE:.0f} %% of the training tokens, then boundaries "
                        f"{GROWTH} times the one before while the cluster after one is no smaller "
                        "than the cluster before it)")
    g.add_argument("--tail-shrink", type=float, metavar="F",
                   help=f"adaptive with --no-tie: cluster i projects the hidden output to "
                        f"size / F^i ({TAIL_SHRINK:g}, Grave et al.'s); tied clusters keep the "
                        f"embedding's size, their rows being the embedding's")
    g.add_argument("--init-range", type=float,
                   help=f"uniform initialisation range for all weights ({D.init_range}); "
                        "0 keeps the cells' own initialisation")
    g.add_argument("--vectors", metavar="FILE",
                   help="initialise the embedding from word vectors (rnnlab folder, word2vec "
                        ".bin/.txt or GloVe)")
    g.add_argument("--freeze-vectors", action="store_true",
                   help="keep the loaded vectors fixed (turns weight tying off)")

    g = p.add_argument_group("training")
    g.add_argument("--optimizer", choices=OPTIMIZERS, help=f"({D.optimizer})")
    g.add_argument("--lr", type=float, help="learning rate (SGD 1.0, Adam 0.001)")
    g.add_argument("--schedule", choices=SCHEDULES,
                   help="zaremba: constant, then x lr-decay per epoch; plateau: / plateau-factor "
                        "when validation loss stalls; auto: zaremba for SGD, plateau for Adam")
    g.add_argument("--lr-decay", type=float, help=f"zaremba decay per epoch ({D.lr_decay})")
    g.add_argument("--decay-after", type=int,
                   help=f"zaremba: epochs at the full rate ({D.decay_after})")
    g.add_argument("--plateau-factor", type=float, help=f"({D.plateau_factor})")
    g.add_argument("--loss", choices=LOSSES,
                   help="sum: cross-entropy summed over the steps of a block, averaged over the "
                        "batch (Zaremba); mean: per token; auto: sum for SGD, mean for Adam")
    g.add_argument("--clip", type=float, help=f"max gradient norm, 0 = off ({D.clip})")
    g.add_argument("--weight-decay", type=float, help=f"({D.weight_decay})")
    g.add_argument("--ar", type=float, metavar="ALPHA",
                   help=f"activation regularisation: ALPHA x mean square of the last layer's "
                        f"dropped-out output, added to the training loss ({D.ar}; AWD-LSTM: 2)")
    g.add_argument("--tar", type=float, metavar="BETA",
                   help=f"temporal activation regularisation: BETA x mean square of the change "
                        f"of the last layer's output from step to step ({D.tar}; AWD-LSTM: 1)")
    g.add_argument("--bptt", type=int, help=f"truncated BPTT length, stream mode ({D.bptt})")
    g.add_argument("--variable-bptt", action=argparse.BooleanOptionalAction,
                   help="each block's length drawn around --bptt (bptt, or bptt/2 one time in 20, "
                        "plus N(0, 5^2), within [5, bptt+20]), the step's lr scaled by length/bptt "
                        "when the loss is a per-token mean; stream mode (off; AWD-LSTM: on)")
    g.add_argument("--asgd", action=argparse.BooleanOptionalAction,
                   help="NT-ASGD: once validation stalls, average the weights after every step "
                        "and validate, keep and test the average; needs validation text "
                        "(off; AWD-LSTM: on)")
    g.add_argument("--nonmono", type=int, metavar="N",
                   help="NT-ASGD's trigger: a validation loss worse than the best of the checks "
                        f"more than N checks before it ({D.nonmono}; AWD-LSTM: 5)")
    g.add_argument("--finetune", type=int, metavar="EPOCHS",
                   help="after --epochs, fine-tune this many epochs from the best weights with a "
                        f"new average, as AWD-LSTM's finetune.py ({D.finetune}; AWD-LSTM on PTB: "
                        "500); may be raised with --resume")
    g.add_argument("--recipe", choices=tuple(RECIPES),
                   help="preset of regularisers and optimiser schedule (not the sizes or layers); "
                        "flags given explicitly override it. " + recipe_help() + " (AWD-LSTM's "
                        "PTB values; its code's default batch is 80, its PTB command uses 20)")
    g.add_argument("--batch-size", type=int, help=f"({D.batch_size})")
    g.add_argument("--eval-batch-size", type=int, help=f"({D.eval_batch_size})")
    g.add_argument("--epochs", type=int, help=f"({D.epochs})")
    g.add_argument("--patience", type=int,
                   help="stop after this many epochs without a better validation loss (off)")
    g.add_argument("--max-bad-steps", type=int,
                   help=f"non-finite steps in a row before giving up ({D.max_bad_steps})")
    g.add_argument("--max-steps", type=int,
                   help="stop when the run has taken this many steps in all, resumed parts "
                        "included (checkpointed)")
    g.add_argument("--max-minutes", type=float, help="stop after this much time (checkpointed)")
    g.add_argument("--seed", type=int, help=f"({D.seed})")
    g.add_argument("--checkpoint-every", type=checkpoint_every, metavar="N|Mm",
                   help="also save MODEL_DIR/last every N steps (500) or M minutes (10m); "
                        "default: every epoch only")
    g.add_argument("--device", help=DEVICE_HELP)
    g.add_argument("--precision", choices=PRECISIONS,
                   help="bf16: autocast the forward pass to bfloat16 (CUDA; works but is slow on "
                        "CPU); the loss and the weights stay float32 (fp32)")
    g.add_argument("--threads", type=int, help=f"{THREADS_HELP} (torch's default)")
    g.add_argument("--no-progress", dest="progress", action="store_false", default=True,
                   help="no progress bar")
    g.add_argument("--quiet", action="store_true", default=False,
                   help="no progress bar, metrics lines or notes: only the closing line")
    p.set_defaults(func=run)


def auto_store(args: argparse.Namespace, s: TrainSettings) -> str:
    """The training text, or the cached token store to read it through (see --store)."""
    unfit = ("a token store cannot be split; give --valid and --test files instead of --split"
             if s.split else None)
    store = text_store([args.train], TextPipeline(s.level, s.mode, s.lower), s.encoding,
                       s.errors, args, unfit)
    return args.train if store is None else str(store.path)


def run(args: argparse.Namespace) -> int:
    """Train, print a summary line; exit 130 after Ctrl-C (checkpoint saved)."""
    from rnnlab.lm.train import train_language_model
    from rnnlab.outputs import check_output, is_main_process
    from rnnlab.text.store import is_store, store_pipeline

    for name in ("threads", "max_steps", "nonmono"):
        check_at_least("--" + name.replace("_", "-"), getattr(args, name, None))
    check_at_least("--finetune", getattr(args, "finetune", None), 0)
    # Before any download or reading: a wrong output costs seconds, not a training run.
    if is_main_process():
        check_output(args.output, "training-run", overwrite=args.overwrite, resume=args.resume)
    corpus = getattr(args, "corpus", None)
    if corpus:
        from rnnlab.datasets import corpus_files

        if args.train:
            raise RnnlabError("give either TRAIN or --corpus, not both")
        files = corpus_files(corpus, getattr(args, "data_dir", None),
                             progress=DownloadBars(args.progress and not args.quiet))
        args.train = files["train"]
        for split in ("valid", "test"):
            if split in files and getattr(args, split, None) is None:
                setattr(args, split, str(files[split]))
    if args.train and is_store(args.train):  # a store brings its level, mode and case
        for key, value in store_pipeline(args.train).to_config().items():
            setattr(args, key, getattr(args, key, value))
    settings = {k: v for k, v in vars(args).items()
                if k not in ("command", "func", "train", "output", "resume", "corpus", "data_dir",
                             "overwrite", "allow_changed_data", "progress", "quiet", "store")}
    if settings.get("init_range") == 0:
        settings["init_range"] = None
    if "checkpoint_every" in settings:
        unit, amount = settings.pop("checkpoint_every")
        settings["checkpoint_minutes" if unit == "minutes" else "checkpoint_every"] = amount
    if args.train and not args.resume and not is_store(args.train):
        # The settings checked first: a wrong one costs seconds, not a store built for nothing.
        args.train = auto_store(args, TrainSettings(**with_recipe(settings)))
    result = train_language_model(args.train, args.output, resume=args.resume,
                                  overwrite=args.overwrite,
                                  allow_changed_data=args.allow_changed_data,
                                  report=TrainingReport(args.progress and not args.quiet,
                                                        not args.quiet, not args.quiet),
                                  **settings)
    if not is_main_process():
        return 130 if result.stopped == "interrupted" else 0
    if result.stopped == "interrupted":
        print(f"interrupted: checkpoint saved in {Path(args.output) / 'last'}; continue with: "
              f"rnnlab train -o {shlex.quote(args.output)} --resume", file=sys.stderr)
        return 130
    best = ("" if result.best_valid_loss is None else
            f", best valid loss {result.best_valid_loss:.4f} (epoch {result.best_epoch})")
    test = "" if result.test is None else f", test ppl {result.test['ppl']:.2f}"
    folder = "best" if (Path(args.output) / "best").is_dir() else "last"
    print(f"{result.stopped}{best}{test}; model in {Path(args.output) / folder}")
    return 0
