"""`rnnlab evaluate`, `rnnlab score`, `rnnlab generate`: using a trained language model.

Each goes through `rnnlab.lm.LM`. The library loads inside each command, so that
`rnnlab --help` stays quick.
"""

from __future__ import annotations

import argparse
import json
import math
import sys

from rnnlab.cli._options import (
    add_compute_options,
    add_data_dir,
    add_encoding_options,
    add_progress_options,
    apply_threads,
    check_at_least,
)
from rnnlab.errors import RnnlabError

MODEL_HELP = ("model folder, the output folder of `rnnlab train` (its best/ model, else its "
              "last/), or the name of a ready-made model (`rnnlab models`)")


def load(args: argparse.Namespace):
    """The LM named on the command line, on its --device, with --threads applied."""
    from rnnlab.device import resolve_device
    from rnnlab.lm import LM
    from rnnlab.ready import resolve

    apply_threads(args)
    where = resolve_device(args.device)  # a device that is not there fails before any file is read
    return LM.load(resolve(args.model, lambda note: print(note, file=sys.stderr)), where)


def register(subparsers) -> None:
    """Add the evaluate, score and generate subcommands."""
    p = subparsers.add_parser(
        "evaluate", help="perplexity (words) or bits per character of a text file",
        description="Score every token of FILE and report the mean loss: perplexity for a "
                    "word-level model, nats and bits per character for a character-level one. "
                    "Every token is predicted once, each line's end marker included, exactly "
                    "as training's validation counts them: a run's recorded valid_ppl is what "
                    "this prints for its validation file.")
    p.add_argument("model", metavar="MODEL", help=MODEL_HELP)
    p.add_argument("file", metavar="FILE",
                   help="text file (plain or .gz), one line per sentence, or the name of a "
                        "known corpus (its test split)")
    p.add_argument("--batch-size", "--batch", dest="batch_size", type=int, default=None,
                   help="pieces of the text read side by side (1 = exact, slower; default: "
                        "the model's eval batch size from training, so the figures agree)")
    p.add_argument("--json", action="store_true",
                   help="print one JSON object: loss, perplexity, tokens, oov, oov_rate "
                        "(and bits_per_char for a character model)")
    add_dynamic_options(p)
    add_cache_options(p)
    add_data_dir(p)
    add_encoding_options(p)
    add_compute_options(p)
    add_progress_options(p, "notes")
    p.set_defaults(func=run_evaluate)

    p = subparsers.add_parser(
        "score", help="P(w_t | <S>, w_1 … w_{t-1}) for every token of a sentence",
        description="Print a table with each token's probability given everything before it, "
                    "its log-probability, and the sentence's total and perplexity. Tokens not "
                    "in the vocabulary are scored as <unk> and marked <unk>*.")
    p.add_argument("model", metavar="MODEL", help=MODEL_HELP)
    p.add_argument("sentence", metavar="SENTENCE", nargs="?", help="the sentence to score")
    p.add_argument("--file", metavar="F",
                   help="score every non-blank line of F instead (numbered by file line)")
    p.add_argument("--no-eos", action="store_true",
                   help="leave out the end-of-sentence token's probability")
    add_encoding_options(p)
    add_compute_options(p)
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
                   help="draw only among the most probable tokens holding mass P, in (0, 1] "
                        "(default 1.0: off)")
    p.add_argument("--seed", type=int, default=None,
                   help="random seed: same seed, same text (default: a fresh one each run)")
    p.add_argument("--beam", type=int, default=0,
                   help="beam search with B hypotheses: the most probable continuation "
                        "(temperature, top-k and top-p do not apply); default 0: sample")
    p.add_argument("--stop-at-eos", action="store_true", help="stop at the end-of-sentence token")
    p.add_argument("--no-unk", action="store_true", help="never generate the <unk> token")
    poem = p.add_argument_group(
        "poems (character-level Chinese models)",
        "Write one poem whose every line has the same number of Han characters, ending in "
        "'，' (odd lines) or '。' (even and last lines); tokens that would break the form are "
        "never drawn. The prime is the poem's start and must fit; --length does not apply.")
    poem.add_argument("--form", type=int, default=None,
                      help="Han characters a line: 5 (五言) or 7 (七言)")
    poem.add_argument("--lines", type=int, default=None,
                      help="lines: 4 (绝句, the default) or 8 (律诗)")
    poem.add_argument("--acrostic", default=None,
                      help="line i starts with the i-th of these characters; their number "
                           "sets the lines (without --form a line has 1 to 9 characters)")
    poem.add_argument("--rhyme", action="store_true",
                      help="with --form: lines 2, 4 (6, 8) end in characters of one rhyme, "
                           "avoiding the same character twice. Rhyme here is by modern Mandarin "
                           "finals (pypinyin, grouped as the 14 rhymes of 中华新韵: ang, iang "
                           "and uang rhyme), not the Tang rhyme tables (平水韵); needs pypinyin "
                           "(the 'chinese' extra)")
    p.add_argument("--script", choices=("simplified", "traditional"), default=None,
                   help="Chinese script you write the prime and acrostic in and read the output "
                        "in, converted from and to the model's own (needs OpenCC: the "
                        "'chinese' extra); the model's script is its config.json's \"script\", "
                        "else read from its vocabulary")
    add_compute_options(p)
    p.set_defaults(func=run_generate)


def add_dynamic_options(p: argparse.ArgumentParser) -> None:
    """Add --dynamic and its settings to `rnnlab evaluate`."""
    g = p.add_argument_group(
        "dynamic evaluation (Krause et al. 2018)",
        "Read FILE in order as one column, in segments; score each segment with the weights "
        "as they are (that score counts), then take one gradient step on its loss, so that "
        "later segments are predicted by weights adapted to the text already read. Prints "
        "the static figure of the same reading and the dynamic one. Works on a copy: the "
        "model is never changed. Update per weight θ (θ0: the trained one): SGD θ ← θ − η∇L + "
        "λ(θ0 − θ); with --dynamic-stats the paper's RMS rule θ ← θ − η∇L/(√MS + ε) + "
        "λ·min(√MS/mean √MS, 1/λ)(θ0 − θ), MS the mean squared gradient over the training "
        "text, ε = 2e-5 (rnnlab.lm.dynamic). Each segment costs a backward pass and an update "
        "of every weight: far slower than the static evaluation.")
    g.add_argument("--dynamic", action="store_true", help="evaluate dynamically")
    g.add_argument("--dynamic-lr", metavar="η", type=float, default=None,
                   help="learning rate η ≥ 0 (default 0.1 for SGD; 5e-5 for the RMS rule, the "
                        "authors' code's value; 0 gives the static figure exactly)")
    g.add_argument("--dynamic-decay", metavar="λ", type=float, default=None,
                   help="decay λ in [0, 1] back to the trained weights, the paper's global "
                        "prior (default 0 for SGD; 0.002 for the RMS rule, the authors' code's "
                        "value)")
    g.add_argument("--dynamic-bptt", metavar="N", type=int, default=None,
                   help="tokens a segment (default 5 for words, the paper's value; 20 for "
                        "characters); in sentence mode each sentence is one segment")
    g.add_argument("--dynamic-stats", metavar="TEXT", default=None,
                   help="training text (a file, or a known corpus: its train split) for the "
                        "gradient statistics MS of the RMS rule; without it, SGD")


def add_cache_options(p: argparse.ArgumentParser) -> None:
    """Add --cache and its settings to `rnnlab evaluate`."""
    g = p.add_argument_group(
        "neural cache (Grave et al. 2017)",
        "Read FILE in order as one column, keeping the top layer's last N outputs h_i with "
        "the token that followed each; predict p = (1 − λ) p_model + λ p_cache, where p_cache "
        "puts softmax(θ h_t·h_i) on the token after h_i (rnnlab.lm.cache). Stream-mode models "
        "only; prints the static figure of the same reading and the cached one. The AWD-LSTM "
        "code's values: PTB N 500, θ 1.0, λ 0.1; WikiText-2 N 3785, θ 0.662, λ 0.1279.")
    g.add_argument("--cache", metavar="N", type=int, default=None,
                   help="evaluate with a cache of the last N steps (default: no cache)")
    g.add_argument("--cache-theta", metavar="θ", type=float, default=None,
                   help="θ ≥ 0, how sharply the cache matches hidden states (default 1.0)")
    g.add_argument("--cache-lambda", metavar="λ", type=float, default=None,
                   help="λ in [0, 1), the cache's share of the prediction (default 0.1)")


def cache_settings(args: argparse.Namespace):
    """The Cache settings asked for (None without --cache); RnnlabError for bad values."""
    from rnnlab.lm.cache import Cache, check

    if args.cache is None:
        for flag, value in (("--cache-theta", args.cache_theta), ("--cache-lambda", args.cache_lambda)):
            if value is not None:
                raise RnnlabError(f"{flag} needs --cache")
        return None
    if args.dynamic:
        raise RnnlabError("--cache and --dynamic are evaluated separately: give one")
    if args.batch_size is not None:
        raise RnnlabError("--batch-size does not apply to --cache, which reads one column")
    check(args.cache, args.cache_theta, args.cache_lambda)
    default = Cache()
    return Cache(args.cache, default.theta if args.cache_theta is None else args.cache_theta,
                 default.lam if args.cache_lambda is None else args.cache_lambda)


def dynamic_settings(args: argparse.Namespace):
    """The Dynamic settings asked for (None without --dynamic); RnnlabError for bad values."""
    from rnnlab.lm.dynamic import Dynamic, check

    given = [f"--dynamic-{k}" for k in ("lr", "decay", "bptt", "stats")
             if getattr(args, f"dynamic_{k}") is not None]
    if not args.dynamic:
        if given:
            raise RnnlabError(f"{given[0]} needs --dynamic")
        return None
    if args.batch_size is not None:
        raise RnnlabError("--batch-size does not apply to --dynamic, which reads one column")
    check(args.dynamic_lr, args.dynamic_decay, args.dynamic_bptt)
    return Dynamic(args.dynamic_lr, args.dynamic_decay, args.dynamic_bptt, stats=args.dynamic_stats)


def figures(r: dict, level: str) -> str:
    """A result's loss and perplexity (and bits per character) as one line prints them."""
    if level == "char":
        return (f"{r['loss']:.4f} nats/char, {r['bits_per_char']:.4f} bits/char "
                f"(perplexity {r['perplexity']:.3f})")
    return f"loss {r['loss']:.4f} nats/token, perplexity {r['perplexity']:.2f}"


def run_evaluate(args: argparse.Namespace) -> int:
    """Evaluate a model on a file; print the figures (or one JSON object)."""
    from rnnlab.cli._progress import DownloadBars, bar
    from rnnlab.datasets import file_or_corpus

    check_at_least("--batch-size", args.batch_size)
    cache, dynamic = cache_settings(args), dynamic_settings(args)
    lm = load(args)
    downloads = DownloadBars(args.progress and not args.quiet)
    args.file = file_or_corpus(args.file, "test", args.data_dir, downloads)
    if dynamic is not None and dynamic.stats is not None:
        dynamic.stats = file_or_corpus(dynamic.stats, "train", args.data_dir, downloads)
    shown = None

    def progress(done: int, total: int) -> None:
        nonlocal shown  # opened with the first tokens: errors before them print no bar
        shown = shown or bar(total, "evaluate", args.progress and not args.quiet, unit="tok")
        shown.update(done - shown.n)

    try:
        r = lm.evaluate(args.file, args.batch_size, args.encoding, args.errors, progress, dynamic,
                        cache)
    finally:
        if shown is not None:
            shown.close()
    if args.json:
        print(json.dumps(r))
        return 0
    print(f"{args.file}: {r['tokens']:,} tokens")
    print(f"out of vocabulary: {r['oov']:,} of {r['tokens']:,} tokens "
          f"({100 * r['oov_rate']:.2f} %), scored as <unk>")
    level = lm.pipeline.level
    if cache is not None:
        print(f"static (one column): {figures(r, level)}")
        print(f"cache ({cache.size} states, θ {cache.theta:g}, λ {cache.lam:g}): "
              f"{figures(r['cache'], level)}")
        return 0
    if dynamic is None:
        print(figures(r, level))
        return 0
    d = r["dynamic"]
    segments = "each sentence" if lm.pipeline.mode == "sentence" else f"segments of {d['bptt']}"
    print(f"static (one column, {segments}): {figures(r, level)}")
    print(f"dynamic ({d['rule'].upper()}, η {d['lr']:g}, λ {d['decay']:g}): {figures(d, level)}")
    return 0


def run_score(args: argparse.Namespace) -> int:
    """Print the score table of a sentence, or of every line of a file."""
    from rnnlab.lm.score import format_table, show_text
    from rnnlab.text.corpus import read_lines

    if (args.sentence is None) == (args.file is None):
        raise RnnlabError("give either a SENTENCE or --file F")
    lm = load(args)
    if args.file is None:
        lines = [(None, args.sentence)]
    else:
        lines = [(n, s) for n, s in enumerate(read_lines(args.file, args.encoding, args.errors), 1)
                 if s.strip()]
    total, count, oov = 0.0, 0, 0
    for k, (number, line) in enumerate(lines):
        result = lm.score(line, eos=not args.no_eos)
        if number is not None:
            print(f"{'' if k == 0 else chr(10)}line {number}: {show_text(line)}")
        print(format_table(result))
        total, count, oov = total + result.logprob, count + len(result.rows), oov + result.oov
    if len(lines) > 1:
        print(f"\nall {len(lines)} sentences: total log P = {total:.3f} nats over {count} tokens; "
              f"perplexity {math.exp(-total / count):.2f}")
    if oov:
        # A text of unknown words can look well predicted: its perplexity is <unk>'s.
        print(f"warning: {oov} of {count} tokens are not in the vocabulary and were scored "
              f"as <unk>", file=sys.stderr)
    return 0


def run_generate(args: argparse.Namespace) -> int:
    """Print the prime, then each generated piece of text as it is drawn."""
    from rnnlab.lm.forms import make_form
    from rnnlab.lm.generate import check_options
    from rnnlab.lm.score import show_text

    check_options(args.length, args.temperature, args.top_k, args.top_p, args.beam)
    make_form(args.form, args.lines, args.acrostic, args.beam, args.rhyme)  # fails before loading
    lm = load(args)
    prime = args.prime
    if args.script is not None:
        from rnnlab.text.script import converter

        prime = converter(args.script, lm.script)(prime)  # as the model reads it
    ids, unknown = lm.pipeline.encode_prompt(prime, lm.vocab)
    if unknown:
        only = " (the whole prime)" if len(unknown) == len(ids) else ""
        print(f"note: not in the vocabulary, read as <unk>{only}: "
              f"{show_text(' '.join(unknown))}", file=sys.stderr)
    # Reads the prime at once: a model that cannot continue it fails before any output.
    pieces = lm.write(args.prime, length=args.length, temperature=args.temperature,
                      top_k=args.top_k, top_p=args.top_p, seed=args.seed, beam=args.beam,
                      stop_at_eos=args.stop_at_eos, avoid_unk=args.no_unk, form=args.form,
                      lines=args.lines, acrostic=args.acrostic, rhyme=args.rhyme,
                      script=args.script)
    last = args.prime
    sys.stdout.write(args.prime)
    for piece in pieces:
        sys.stdout.write(piece)
        sys.stdout.flush()
        last = piece or last
    if last and not last.endswith("\n"):
        sys.stdout.write("\n")
    return 0
