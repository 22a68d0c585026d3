"""`rnnlab evaluate`, `rnnlab score`, `rnnlab generate`: using a trained language model.

The library loads inside each command, so that `rnnlab --help` stays quick.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from rnnlab.device import DEVICE_HELP
from rnnlab.errors import RnnlabError

MODEL_HELP = "model folder, or the output folder of `rnnlab train` (its best/ model is used)"
ERROR_HANDLERS = ("strict", "replace", "ignore")
ERRORS_HELP = ("undecodable bytes: strict (stop with the byte offset, the default), "
               "replace (read them as U+FFFD) or ignore (drop them)")


def add_encoding_options(parser: argparse.ArgumentParser) -> None:
    """Add --encoding and --errors: how the text file decodes."""
    parser.add_argument("--encoding", default="utf-8",
                        help="text encoding of the file (default utf-8)")
    parser.add_argument("--errors", choices=ERROR_HANDLERS, default="strict", help=ERRORS_HELP)


def add_device_option(parser: argparse.ArgumentParser) -> None:
    """Add --device: where the model runs."""
    parser.add_argument("--device", default="auto", help=DEVICE_HELP)


def load(path: str, device: str = "auto"):
    """(model on `device`, vocab, config) from a model folder or a training run's output folder."""
    from rnnlab.device import resolve_device
    from rnnlab.lm.checkpoint import load_model

    where = resolve_device(device)  # a device that is not there fails before any file is read
    run = Path(path)
    if not (run / "config.json").exists() and (run / "best" / "config.json").exists():
        run = run / "best"
    return load_model(run, where)


def register(subparsers) -> None:
    """Add the evaluate, score and generate subcommands."""
    p = subparsers.add_parser(
        "evaluate", help="perplexity (words) or bits per character of a text file",
        description="Score every token of FILE and report the mean loss: perplexity for a "
                    "word-level model, nats and bits per character for a character-level one.")
    p.add_argument("model", metavar="MODEL", help=MODEL_HELP)
    p.add_argument("file", metavar="FILE",
                   help="text file (plain or .gz), one line per sentence, or the name of a "
                        "known corpus (its test split)")
    p.add_argument("--batch", type=int, default=16,
                   help="pieces of the text read side by side (1 = exact, slower; default 16)")
    add_encoding_options(p)
    add_device_option(p)
    p.set_defaults(func=run_evaluate)

    p = subparsers.add_parser(
        "score", help="P(w_t | <S>, w_1 … w_{t-1}) for every token of a sentence",
        description="Print a table with each token's probability given everything before it, "
                    "its log-probability, and the sentence's total and perplexity.")
    p.add_argument("model", metavar="MODEL", help=MODEL_HELP)
    p.add_argument("sentence", metavar="SENTENCE", nargs="?", help="the sentence to score")
    p.add_argument("--file", metavar="F", help="score every line of F instead (one sentence per line)")
    p.add_argument("--no-eos", action="store_true",
                   help="leave out the end-of-sentence token's probability")
    add_encoding_options(p)
    add_device_option(p)
    p.set_defaults(func=run_score)

    p = subparsers.add_parser(
        "generate", help="sample text from a language model",
        description="Continue PRIME one token at a time, printing each as it is drawn. The "
                    "draws are made on the CPU, so a seed gives the same text on every device.")
    p.add_argument("model", metavar="MODEL", help=MODEL_HELP)
    p.add_argument("--prime", default="", help="text to start from (default: a sentence start)")
    p.add_argument("--length", type=int, default=100, help="tokens to generate (default 100)")
    p.add_argument("--temperature", type=float, default=1.0,
                   help="> 0; below 1 is more conservative, above 1 more random (default 1.0)")
    p.add_argument("--top-k", type=int, default=0,
                   help="draw only among the K most probable tokens (default 0: off)")
    p.add_argument("--top-p", type=float, default=1.0,
                   help="draw only among the most probable tokens holding mass P, in (0, 1]")
    p.add_argument("--seed", type=int, default=None, help="random seed: same seed, same text")
    p.add_argument("--beam", type=int, default=0,
                   help="beam search with B hypotheses: the most probable continuation "
                        "(temperature, top-k and top-p do not apply); default 0: sample")
    p.add_argument("--stop-at-eos", action="store_true", help="stop at the end-of-sentence token")
    p.add_argument("--no-unk", action="store_true", help="never generate the <unk> token")
    add_device_option(p)
    p.set_defaults(func=run_generate)


def run_evaluate(args: argparse.Namespace) -> int:
    from rnnlab.lm.score import evaluate

    if args.batch < 1:
        raise RnnlabError(f"--batch must be at least 1, got {args.batch}")
    from rnnlab.datasets import file_or_corpus

    model, vocab, config = load(args.model, args.device)
    args.file = file_or_corpus(args.file, "test")
    r = evaluate(model, vocab, config, args.file, batch=args.batch, encoding=args.encoding,
                 errors=args.errors)
    print(f"{args.file}: {r['tokens']:,} tokens")
    print(f"out of vocabulary: {r['oov']:,} of {r['tokens']:,} tokens "
          f"({100 * r['oov_rate']:.2f} %), scored as <unk>")
    if config["level"] == "char":
        print(f"{r['loss']:.4f} nats/char, {r['bits']:.4f} bits/char (perplexity {r['ppl']:.3f})")
    else:
        print(f"loss {r['loss']:.4f} nats/token, perplexity {r['ppl']:.2f}")
    return 0


def run_score(args: argparse.Namespace) -> int:
    from rnnlab.lm.score import format_table, score_sentence, show_text
    from rnnlab.text.corpus import read_lines

    if (args.sentence is None) == (args.file is None):
        raise RnnlabError("give either a SENTENCE or --file F")
    model, vocab, config = load(args.model, args.device)
    lines = [args.sentence] if args.file is None else [
        s for s in read_lines(args.file, args.encoding, args.errors) if s.strip()]
    total, count, oov = 0.0, 0, 0
    for k, line in enumerate(lines):
        result = score_sentence(model, vocab, config, line, eos=not args.no_eos)
        if len(lines) > 1:
            print(f"{'' if k == 0 else chr(10)}sentence {k + 1}: {show_text(line)}")
        print(format_table(result))
        total += result.logprob
        count += len(result.rows)
        oov += result.oov
    if len(lines) > 1:
        print(f"\nall {len(lines)} sentences: total log P = {total:.3f} nats over {count} tokens; "
              f"perplexity {math.exp(-total / count):.2f}")
    if oov:
        # A text of unknown words can look well predicted: its perplexity is <unk>'s.
        print(f"warning: {oov} of {count} tokens are not in the vocabulary and were scored "
              f"as <unk>", file=sys.stderr)
    return 0


def run_generate(args: argparse.Namespace) -> int:
    from rnnlab.lm.generate import check_options, generate
    from rnnlab.lm.score import encode_prompt

    check_options(args.length, args.temperature, args.top_k, args.top_p, args.beam)
    model, vocab, config = load(args.model, args.device)
    ids, unknown = encode_prompt(vocab, config, args.prime)
    if unknown:
        only = " (the whole prime)" if len(unknown) == len(ids) else ""
        print(f"note: not in the vocabulary, read as <unk>{only}: {' '.join(unknown)}",
              file=sys.stderr)
    words = config["level"] != "char"
    # jieba's words were cut out of unspaced text, so they join without spaces again
    space = "" if config["level"] == "jieba" else " "
    # Reads the prime at once: a model that cannot continue it fails before any output.
    tokens = generate(model, vocab, config, args.prime, args.length, args.temperature,
                      args.top_k, args.top_p, args.seed, args.beam, args.stop_at_eos, args.no_unk)
    out = sys.stdout
    out.write(args.prime)
    at_line_start = not args.prime or args.prime.endswith("\n")
    for token in tokens:
        if words and token == "</s>":
            token, at_line_start = "\n", True
        elif words:
            token = token if at_line_start else space + token
            at_line_start = False
        else:
            at_line_start = token == "\n"
        out.write(token)
        out.flush()
    if not at_line_start:
        out.write("\n")
    return 0
