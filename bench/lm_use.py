"""Using language models: training and generation speed, and a character-level Shakespeare model.

    python bench/lm_use.py throughput       # benchmark 5 (a few minutes)
    python bench/lm_use.py throughput --threads 1 --clock cpu   # the same on a busy machine
    python bench/lm_use.py throughput --device cuda --shape char-512   # on a GPU, vs cuDNN
    python bench/lm_use.py char             # benchmark 4 (30-minute budget per model)
    python bench/lm_use.py char --course    # also the course's 3 × 512 model, epoch by epoch
    python bench/lm_use.py char --only course --threads 1   # one model (two side by side)

Throughput: training tokens/s of the PTB-small model (2 × 200 LSTM, 10k softmax, bptt 20,
batch 20, SGD, loss summed over time, clip 5) against the same model built on torch.nn.LSTM,
timed in alternation in the same process (median of the per-repeat ratios); then generation
tokens/s at batch 1 through `rnnlab.lm.generate` (the model's `step()` and a cumsum +
searchsorted draw) against nn.LSTM + torch.multinomial.

Character level: Tiny Shakespeare, the first 90 % of its lines for training and the last 10 %
for validation; one epoch at a time until the next would overrun the budget; validation
nats per character after each epoch, then 600 sampled characters at temperatures 1.0 and 0.5.
Results are merged into bench/results/lm_use.json.
"""

from __future__ import annotations

import argparse
import gzip
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from rnnlab.device import resolve_device
from rnnlab.fileio import atomic_write
from rnnlab.lm import LM, LanguageModel, train_language_model
from rnnlab.lm.data import StreamBatches
from rnnlab.text.pipeline import TextPipeline
from rnnlab.text.vocab import Vocabulary

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data"
RESULTS = ROOT / "bench" / "results" / "lm_use.json"


class TorchLSTMLM(nn.Module):
    """The reference: embedding -> torch.nn.LSTM -> decoder, as the PyTorch examples build it."""

    def __init__(self, vocab_size: int, size: int, layers: int) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, size)
        self.rnn = nn.LSTM(size, size, layers)
        self.decoder = nn.Linear(size, vocab_size)
        for p in self.parameters():
            nn.init.uniform_(p, -0.1, 0.1)

    def forward(self, tokens, state=None):
        out, state = self.rnn(self.embedding(tokens), state)
        return self.decoder(out), state


def ptb_stream(limit: int) -> tuple[list[int], object]:
    """The first `limit` token ids of PTB train, and the 10k vocabulary."""
    with gzip.open(DATA / "ptb" / "ptb.train.txt.gz", "rt", encoding="utf-8") as f:
        lines = f.read().splitlines()
    pipeline = TextPipeline()
    vocab = pipeline.build_vocab(lines)
    ids = pipeline.encode(lines, vocab)
    return ids[:limit], vocab


CLOCK = time.perf_counter  # --clock cpu: time.process_time, steadier on a shared machine


def sync(device: torch.device) -> None:
    """Wait for queued GPU work, so that the clock measures it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_training(model: nn.Module, batches: StreamBatches, steps: int, warmup: int = 3) -> float:
    """Training tokens per second over `steps` blocks (after `warmup` untimed ones)."""
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    device = next(model.parameters()).device
    model.train()
    state, tokens, start = None, 0, None
    for k, block in enumerate(batches.epoch(0)[: warmup + steps]):
        if k == warmup:
            sync(device)
            start, tokens = CLOCK(), 0
        x, y, _ = batches.get(block)
        x, y = x.to(device), y.to(device)
        if state is not None:
            state = tuple(s.detach() for s in state)
        logits, state = model(x, state)
        # Zaremba's loss: summed over the steps, averaged over the batch.
        loss = F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="sum") / x.shape[1]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        optimizer.step()
        tokens += y.numel()
    sync(device)
    return tokens / (CLOCK() - start)


def torch_generate(model: TorchLSTMLM, first: int, length: int, seed: int) -> list[int]:
    """nn.LSTM stepped one token at a time, drawing with torch.multinomial."""
    device = next(model.parameters()).device
    generator = torch.Generator(device).manual_seed(seed)
    out, token, state = [], torch.tensor([[first]], device=device), None
    with torch.inference_mode():
        for _ in range(length):
            logits, state = model(token, state)
            probs = torch.softmax(logits[0, 0], -1)
            token = torch.multinomial(probs, 1, generator=generator).view(1, 1)
            out.append(int(token))
    return out


def throughput(args) -> dict:
    global CLOCK
    CLOCK = time.process_time if args.clock == "cpu" else time.perf_counter
    torch.set_num_threads(args.threads)
    torch.manual_seed(1)
    device = resolve_device(args.device)
    ids, vocab = ptb_stream(20 * 20 * (args.steps + 5) + 1)
    size, bptt, batch = 200, 20, 20
    if args.shape == "char-512":  # Tiny Shakespeare's shape: 65 characters, 2 x 512
        size, bptt, batch = 512, 100, 64
        vocab = Vocabulary(["\n"] + [chr(32 + k) for k in range(64)], specials=())
        ids = torch.randint(0, 65, (batch * bptt * (args.steps + 5) + 1,)).tolist()
    batches = StreamBatches(ids, batch, bptt)
    V = len(vocab)
    ours = LanguageModel(V, size, size, 2, "lstm", tie_weights=False, init_range=0.1).to(device)
    ref = TorchLSTMLM(V, size, 2).to(device)
    print(f"{args.shape} training step: 2 x {size} LSTM, vocab {V}, bptt {bptt}, batch {batch}, "
          f"{args.steps} timed steps per run, {args.repeats} interleaved repeats, on {device}, "
          f"{torch.get_num_threads()} threads, {args.clock} clock")
    rates = {"rnnlab": [], "nn.LSTM": []}
    ratios = []
    for r in range(args.repeats):
        order = [("rnnlab", ours), ("nn.LSTM", ref)]
        if r % 2:
            order.reverse()  # neither model always runs first
        got = {name: time_training(model, batches, args.steps) for name, model in order}
        for name, rate in got.items():
            rates[name].append(rate)
        ratios.append(got["rnnlab"] / got["nn.LSTM"])
        print(f"  repeat {r + 1}: rnnlab {got['rnnlab']:,.0f} tok/s, nn.LSTM "
              f"{got['nn.LSTM']:,.0f} tok/s, ratio {ratios[-1]:.3f}")
    train = {"rnnlab_tokens_per_s": statistics.median(rates["rnnlab"]),
             "nn_lstm_tokens_per_s": statistics.median(rates["nn.LSTM"]),
             "ratio_median": statistics.median(ratios), "ratios": ratios,
             "required_ratio": 0.95, "steps": args.steps, "repeats": args.repeats}
    print(f"training: median ratio {train['ratio_median']:.3f} (required >= 0.95)")

    char = args.shape == "char-512"
    lm = LM(ours, vocab, TextPipeline("char" if char else "word"))
    gen_rates = {"rnnlab": [], "nn.LSTM+multinomial": []}
    first = ids[0]
    for r in range(args.repeats):
        start = CLOCK()
        n = len(list(lm.generate("A" if char else "the", length=args.gen_tokens, seed=r)))
        gen_rates["rnnlab"].append(n / (CLOCK() - start))
        ref.eval()
        start = CLOCK()
        n = len(torch_generate(ref, first, args.gen_tokens, r))
        gen_rates["nn.LSTM+multinomial"].append(n / (CLOCK() - start))
        print(f"  generation repeat {r + 1}: rnnlab {gen_rates['rnnlab'][-1]:,.0f} tok/s, "
              f"nn.LSTM + multinomial {gen_rates['nn.LSTM+multinomial'][-1]:,.0f} tok/s")
    gen = {"rnnlab_tokens_per_s": statistics.median(gen_rates["rnnlab"]),
           "nn_lstm_multinomial_tokens_per_s": statistics.median(gen_rates["nn.LSTM+multinomial"]),
           "required_tokens_per_s": 2000, "tokens": args.gen_tokens, "batch": 1}
    print(f"generation at batch 1: rnnlab {gen['rnnlab_tokens_per_s']:,.0f} tokens/s "
          f"(required >= 2,000), nn.LSTM + multinomial {gen['nn_lstm_multinomial_tokens_per_s']:,.0f}")
    return {"training": train, "generation": gen, "threads": torch.get_num_threads(),
            "clock": args.clock, "device": str(device), "shape": args.shape}


COURSE = dict(layers=3, hidden_size=512, embed_size=512, dropout=0.5, optimizer="adam",
              lr=1e-3, clip=5.0, bptt=25, batch_size=64)
FAST = dict(layers=2, hidden_size=512, embed_size=128, dropout=0.2, optimizer="adam", lr=2e-3,
            clip=5.0, bptt=100, batch_size=64)


def train_char(name: str, settings: dict, budget_s: float, work: Path, threads: int,
               data: Path) -> dict:
    """Epochs of a character model until the budget would be overrun; per-epoch validation."""
    out = work / name
    start, epoch, resume = time.perf_counter(), 0, False
    history = []
    while True:
        epoch += 1
        result = train_language_model(
            data if not resume else None, out, resume=resume,
            **({} if resume else dict(settings, level="char", mode="stream", split=(0.1, 0.0),
                                      tie_weights=False, init_range=None, seed=1)),
            epochs=epoch, threads=threads)
        resume = True
        history = result.history
        h = history[-1]
        elapsed = time.perf_counter() - start
        print(f"  {name} epoch {epoch}: valid {h['valid_loss']:.4f} nats/char "
              f"({h['valid_bpc']:.3f} bits), train {h['train_loss']:.4f}, {h['seconds']:.0f} s")
        if elapsed + h["seconds"] > budget_s:
            break
    lm = LM.load(out / "best")
    samples = {}
    for temperature in (1.0, 0.5):
        text = "".join(lm.write("", length=600, temperature=temperature, seed=1))
        samples[str(temperature)] = text
        print(f"--- {name}, temperature {temperature}:\n{text}\n")
    best = min(history, key=lambda h: h["valid_loss"])
    return {"settings": settings, "epochs": [
        {k: h[k] for k in ("epoch", "valid_loss", "valid_bpc", "train_loss", "seconds")}
        for h in history], "best_valid_nats_per_char": best["valid_loss"],
        "minutes": (time.perf_counter() - start) / 60, "target_nats_per_char": 1.55,
        "samples": samples}


def char(args) -> dict:
    work = Path(args.work or tempfile.mkdtemp(prefix="rnnlab-char-"))
    print(f"{args.data}, character level, 90/10 split by line; budget {args.minutes} min "
          f"per model; work folder {work}")
    data = Path(args.data)
    results = {}
    if args.only in (None, "fast"):
        results["fast"] = train_char("fast", FAST, args.minutes * 60, work, args.threads, data)
    if args.course or args.only == "course":
        results["course_3x512"] = train_char("course", COURSE, args.minutes * 60, work,
                                             args.threads, data)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("which", choices=["throughput", "char"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                        help="throughput: wall time, or process CPU time (use with --threads 1 "
                             "on a busy machine)")
    parser.add_argument("--steps", type=int, default=40, help="timed training steps per run")
    parser.add_argument("--device", default="cpu", help="throughput: cpu, cuda, ... (default cpu)")
    parser.add_argument("--shape", choices=["ptb-small", "char-512"], default="ptb-small",
                        help="throughput: the PTB-small model, or Tiny Shakespeare's 2 x 512")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--gen-tokens", type=int, default=2000)
    parser.add_argument("--minutes", type=float, default=30.0, help="char: budget per model")
    parser.add_argument("--course", action="store_true", help="char: also the 3 x 512 model")
    parser.add_argument("--only", choices=["fast", "course"],
                        help="char: this model alone (to run the two side by side, one thread each)")
    parser.add_argument("--work", help="char: folder for the model folders (default: a temp dir)")
    parser.add_argument("--data", default=str(DATA / "tinyshakespeare" / "input.txt"),
                        help="char: the text (default: Tiny Shakespeare)")
    args = parser.parse_args()
    result = throughput(args) if args.which == "throughput" else char(args)
    merged = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    key = args.which
    if args.which == "throughput":
        key = f"throughput ({args.clock} clock, {args.threads} threads)"
        if args.device != "cpu" or args.shape != "ptb-small":
            key = f"throughput ({args.shape}, {result['device']}, {args.clock} clock)"
    stamp = {"machine": platform.machine(), "torch": torch.__version__,
             "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    if key == "char":  # one model per key, so that side-by-side runs both land
        result = {**merged.get("char", {}), **{k: {**v, **stamp} for k, v in result.items()}}
        stamp = {}
    merged[key] = {**result, **stamp}
    with atomic_write(RESULTS) as f:
        f.write(json.dumps(merged, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
