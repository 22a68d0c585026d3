"""The training loop: truncated BPTT with SGD or Adam, schedules, checkpoints, resume.

AWD-LSTM's schedule (Merity et al. 2018) is optional: block lengths that vary around bptt
(rnnlab.lm.data), NT-ASGD (rnnlab.lm.averaging: once validation stalls, validation, `best/`
and the test use the running average of the weights) and a fine-tuning phase after the last
epoch that restarts the average from the best weights with a fresh optimizer.

A step whose loss or gradient is not finite changes nothing: it is skipped and reported, and
`max_bad_steps` of them in a row stop training with an RnnlabError. Every epoch, and every
stop before the end of one, is evaluated (rnnlab.lm.evaluation) and recorded.

Launched by torchrun, the same code trains data-parallel (see distributed.py): each process
takes its share of every batch, DistributedDataParallel averages the gradients, every decision
(skipping a step, the schedule, early stopping, stopping early) is taken on numbers summed over
all processes, and only rank 0 writes files or reports.

The trainer never prints: it calls `report(kind, data)` with kind "note" ({"message"}),
"epoch_start" ({"epoch", "epochs", "steps", "done"}), "step" ({"loss", "ppl", "tokens_per_s",
"lr"}), "epoch_end" ({}) and "metrics" (a record as metrics.jsonl keeps it). A report that
returns True stops the run after the step under way, as Ctrl-C does (`last/` saved, resumable).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import signal
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_model as st_load_model
from torch import Tensor

from rnnlab.cells import map_state, state_parts
from rnnlab.device import autocast, check_precision, resolve_device
from rnnlab.errors import RnnlabError
from rnnlab.lm import checkpoint, distributed, evaluation
from rnnlab.lm.adaptive import default_cutoffs
from rnnlab.lm.averaging import WeightAverage, nt_asgd_trigger
from rnnlab.lm.bundle import LM
from rnnlab.lm.data import IGNORE, SentenceBatches, StreamBatches, read_text, split_lines
from rnnlab.lm.model import LanguageModel
from rnnlab.lm.regularisers import activation_penalty
from rnnlab.lm.settings import DEFAULT_HIDDEN, TrainSettings, recipe_record
from rnnlab.lm.state import (
    Progress,
    RunFolder,
    hidden_columns,
    rank_tensors,
    restore_generators,
)
from rnnlab.lm.store_batches import StoreSentenceBatches, StoreStreamBatches
from rnnlab.recurrent import detach_state
from rnnlab.text.pipeline import TextPipeline
from rnnlab.text.script import text_script
from rnnlab.text.store import TokenStore, data_fingerprint, is_store
from rnnlab.text.vocab import Vocabulary

Report = Callable[[str, dict], bool | None]


def metrics(loss: float, level: str) -> dict:
    """Loss per token with its perplexity (and bits per character at character level)."""
    out = {"loss": loss, "ppl": math.exp(min(loss, 700.0))}
    if level == "char":
        out["bpc"] = loss / math.log(2)
    return out


@dataclass
class RunData:
    """A run's texts, read and encoded: training batches, validation and test ids (or None)."""

    pipeline: TextPipeline
    vocab: Vocabulary
    train: StreamBatches | SentenceBatches | StoreStreamBatches | StoreSentenceBatches
    valid: list | None
    test: list | None
    script: dict  # config.json's record of the training text's script (rnnlab.text.script)


def read_run_data(s: TrainSettings, train: Path, vocab: Vocabulary | None = None) -> RunData:
    """Read the texts of a run and encode them; the vocabulary is built from the training text
    unless a resumed run brings its own."""
    pipeline = TextPipeline(s.level, s.mode, s.lower)
    if is_store(train):
        return read_store_data(s, train, pipeline, vocab)
    lines = read_text(train, s.encoding, s.errors)
    if s.split:
        train_lines, valid_lines, test_lines = split_lines(lines, *s.split)
    else:
        train_lines = lines
        valid_lines = read_text(s.valid, s.encoding, s.errors) if s.valid else []
        test_lines = read_text(s.test, s.encoding, s.errors) if s.test else []
    vocab = vocab or pipeline.build_vocab(train_lines, s.min_count, s.max_vocab)
    ids = pipeline.encode(train_lines, vocab)
    if not ids:
        raise RnnlabError(f"{train}: no training text")
    batches = (SentenceBatches(ids, s.batch_size, s.seed) if s.mode == "sentence"
               else StreamBatches(ids, s.batch_size, s.bptt, s.seed if s.variable_bptt else None))
    return RunData(pipeline, vocab, batches,
                   pipeline.encode(valid_lines, vocab) if valid_lines else None,
                   pipeline.encode(test_lines, vocab) if test_lines else None,
                   text_script(train_lines))


def read_store_data(s: TrainSettings, train: Path, pipeline: TextPipeline,
                    vocab: Vocabulary | None) -> RunData:
    """A run whose training ids come from a token store, read batch by batch from disk."""
    store = TokenStore(train)
    store.check_pipeline(pipeline)  # a store of the other mode is refused here
    if s.split:
        raise RnnlabError(f"{train}: a token store cannot be split; give --valid and --test files")
    whole = store.whole_vocab
    if vocab is not None and vocab.itos != whole.itos[:len(vocab)]:
        raise RnnlabError(f"{train}: the run's vocabulary is not this store's; prepare the store "
                          f"from the run's text again")
    vocab = vocab or store.vocab(s.min_count, s.max_vocab)
    valid = read_text(s.valid, s.encoding, s.errors) if s.valid else []
    test = read_text(s.test, s.encoding, s.errors) if s.test else []
    batches = (StoreSentenceBatches(store, len(vocab), s.batch_size, s.seed)
               if s.mode == "sentence" else
               StoreStreamBatches(store, len(vocab), s.batch_size, s.bptt,
                                  s.seed if s.variable_bptt else None))
    return RunData(pipeline, vocab, batches,
                   pipeline.encode(valid, vocab) if valid else None,
                   pipeline.encode(test, vocab) if test else None,
                   text_script(whole.itos))  # a sample of the tokens tells the script as well


def build_model(s: TrainSettings, vocab: Vocabulary, built: dict | None,
                note: Callable[[str], None]) -> tuple[LanguageModel, dict | None]:
    """The model of a run (seeded), with its word vectors loaded when given: (model, coverage).

    `built`: the model settings of a resumed run's checkpoint, which fix the sizes (and the
    adaptive decoder's cut-offs, by default chosen from the vocabulary's counts).
    """
    wv, tie = None, s.tie_weights
    decoder = {}
    if s.decoder == "adaptive":
        cutoffs = (built or {}).get("cutoffs") or s.cutoffs or default_cutoffs(vocab.counts)
        decoder = dict(decoder="adaptive", cutoffs=cutoffs,
                       **({"tail_shrink": s.tail_shrink} if s.tail_shrink else {}))
    embed, hidden = s.embed_size, s.hidden_size
    if built is not None:
        embed, hidden = built["embed_size"], built["hidden_size"]
    elif s.vectors:
        from rnnlab.word2vec.vectors import WordVectors

        wv = WordVectors.load(s.vectors, on_warning=lambda m: note(f"warning: {m}"))
        # Sizes from the vectors: an embedding of their dimension, and as many hidden units,
        # so that the tied decoder needs no projection that starts out random.
        embed = embed or int(wv.vectors.shape[1])
        hidden = hidden or embed
    hidden = hidden or DEFAULT_HIDDEN
    if s.freeze_vectors and tie:
        note("note: frozen vectors are not tied to the decoder (weight tying off)")
        tie = False
    torch.manual_seed(s.seed)
    model = LanguageModel(len(vocab), embed or hidden, hidden, s.layers, s.cell, s.dropout, tie,
                          s.init_range, s.dropout_input, s.dropout_hidden, s.dropout_output,
                          s.dropout_words, s.weight_drop, **decoder)
    if s.freeze_vectors:  # load_vectors froze them on the first run; a resume must too
        model.embedding.weight.requires_grad_(False)
    if wv is None:
        return model, None
    c = model.load_vectors(wv, vocab, s.freeze_vectors)
    note(f"word vectors: {c['matched']}/{c['total']} tokens matched ({100 * c['coverage']:.1f} %; "
         f"{c['lowercase']} via lowercase), {'frozen' if c['frozen'] else 'fine-tuned'}")
    return model, c


class Trainer:
    """One training run; `run()` does it all, reporting through `report`."""

    def __init__(self, train: Path, s: TrainSettings, out: Path | None, saved,
                 report: Report | None = None) -> None:
        self.s = s
        self.train_path = train.resolve()
        self.out = out
        self.saved = saved
        self.report = report or (lambda kind, data: None)
        self.group = distributed.Group()
        self.files = RunFolder(None, False)
        self.device = torch.device("cpu")
        self.interrupted = False

    def say(self, kind: str, data: dict) -> None:
        """Report to the caller (rank 0 only), who may ask to stop (as Ctrl-C does)."""
        if self.group.main and self.report(kind, data):
            self.interrupted = True

    def note(self, message: str) -> None:
        """A remark for the user."""
        self.say("note", {"message": message})

    def setup(self) -> None:
        """Read the data, build the model (and its LM) and the optimizer."""
        s = self.s
        if s.mode == "stream":
            self.group.columns(s.batch_size)  # fails early when the batch does not split
        vocab, built = None, None
        if self.saved is not None:
            last = checkpoint.resume_folder(self.out / "last")
            vocab = Vocabulary.load(last / "vocab.json")
            built = checkpoint.read_config(last)["model"]
        self.data = read_run_data(s, self.train_path, vocab)
        # Recorded in `last`, so that a resume can tell whether the text changed under it.
        self.fingerprints = {role: data_fingerprint(path)
                             for role, path in s.text_files(self.train_path).items()}
        self.model, self.coverage = build_model(s, self.data.vocab, built, self.note)
        self.model.to(self.device)
        self.lm = LM(self.model, self.data.vocab, self.data.pipeline,
                     {"eval_batch_size": s.eval_batch_size, **self.data.script})
        self.net = distributed.wrap(self.model, self.group, self.device)
        if self.group.rank:  # the same weights everywhere, but each rank its own dropout masks
            torch.manual_seed(s.seed + 7919 * self.group.rank)
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = self.make_optimizer()

    def make_optimizer(self) -> torch.optim.Optimizer:
        """A fresh optimizer of the run's kind over the trained parameters."""
        optimizer = torch.optim.SGD if self.s.optimizer == "sgd" else torch.optim.Adam
        return optimizer(self.params, lr=self.s.learning_rate, weight_decay=self.s.weight_decay)

    def set_lr(self, lr: float) -> None:
        """The learning rate of the next steps."""
        for param_group in self.optimizer.param_groups:
            param_group["lr"] = lr

    def restore(self) -> None:
        """Counters and tensors of a fresh run, or those saved in `last`."""
        self.p = Progress(lr=self.s.learning_rate)
        self.hidden = None
        self.best_state = None
        self.average = WeightAverage(self.model)
        if self.saved is None:
            return
        state, tensors = self.saved
        self.p = Progress.from_json(state)
        if state.get("world", 1) != self.group.world:
            raise RnnlabError(f"this run was trained by {state.get('world', 1)} process(es); "
                              f"resume it with as many (now {self.group.world})")
        self.coverage = state.get("coverage")
        last = checkpoint.resume_folder(self.out / "last")
        st_load_model(self.model, last / "model.safetensors", strict=True)
        checkpoint.restore_optimizer(self.optimizer, state, tensors)
        self.average.restore(state.get("average"), tensors)
        if "hidden.0" in tensors:  # the whole batch's state: this rank takes its columns
            cols = self.group.columns(tensors["hidden.0"].shape[1])
            self.hidden = hidden_columns(tensors, state["hidden_parts"], cols, self.device)
        if (self.out / "best").is_dir() and self.p.best_valid is not None:
            best = LM.load(self.out / "best")
            self.best_state = {k: v.to(self.device) for k, v in best.model.state_dict().items()}
        # Last: building models above draws from the generators.
        restore_generators(tensors, self.group.rank, self.device)

    def save_last(self) -> None:
        """Write `last/` (collective: every rank hands rank 0 its generators and state)."""
        self.saved_at = time.perf_counter()
        if self.out is None:
            return
        mine = {"rng.torch": torch.get_rng_state(), "hidden": self.hidden_on_cpu()}
        if self.device.type == "cuda":
            mine["rng.cuda"] = torch.cuda.get_rng_state(self.device)
        ranks = self.group.gather(mine)
        if not self.group.main:
            return
        tensors, parts = rank_tensors(ranks)
        tensors.update(self.average.tensors())  # beside the raw weights of model.safetensors
        state = {"train": str(self.train_path), "settings": dataclasses.asdict(self.s),
                 **self.p.to_json(), "coverage": self.coverage, "world": self.group.world,
                 "data": self.fingerprints, "average": self.average.to_json(),
                 **({"hidden_parts": parts} if parts else {})}
        self.files.save_last(self.lm, self.p.epoch - (self.p.step_in_epoch == 0), state, tensors,
                             self.optimizer)

    def hidden_on_cpu(self):
        """The carried state, on the CPU (None at the start of an epoch)."""
        if self.hidden is None:
            return None
        return map_state(lambda h: h.detach().cpu(), self.hidden)

    def evaluate(self, encoded) -> dict:
        """Metrics of the model on encoded text: the one evaluation, shared out over ranks."""
        total, count = evaluation.loss_sums(
            self.model, encoded, self.s.mode, self.data.pipeline.start_ids(self.data.vocab),
            self.s.eval_batch_size, self.group)
        total, count = self.group.sum([total, count], self.device)
        return metrics(total / max(count, 1), self.s.level)

    def lr_for_epoch(self, epoch: int) -> float:
        """The learning rate of an epoch under the schedule (plateau: as it stands)."""
        s = self.s
        if s.lr_schedule == "zaremba":
            return s.learning_rate * s.lr_decay ** max(0, epoch - s.decay_after)
        return self.p.lr

    def local_batch(self, item) -> tuple[Tensor, Tensor, Tensor | None, bool]:
        """This rank's share of a batch on the device, and whether it is real: a rank left
        without sentences (a short last batch) runs one with zero weight, for the collectives."""
        # Only this rank's part is read (from a store: from disk): its columns, its sentences.
        if self.data.train.carries_state:
            x, y, lengths = self.data.train.get(item, self.group.columns(self.s.batch_size))
            real = True
        else:
            mine = self.group.share(item)
            real = bool(mine)
            x, y, lengths = self.data.train.get(mine if real else item[:1])
        return x.to(self.device), y.to(self.device), lengths, real

    def train_step(self, item) -> None:
        """One optimizer step on one batch (skipped when not finite)."""
        s, p = self.s, self.p
        x, y, lengths, real = self.local_batch(item)
        state = detach_state(self.hidden) if self.data.train.carries_state else None
        penalised = bool(s.ar or s.tar)
        with autocast(self.device, s.precision):  # the model computes the loss in float32
            loss, new_state, *outputs = self.net(x, state, lengths, activations=penalised,
                                                 targets=y)
        count = int((y != IGNORE).sum())
        # Sums over the whole batch (all ranks) decide alike everywhere. DDP averages the ranks'
        # gradients, so each scales its summed loss by world / (batch or tokens of the batch).
        total, tokens, columns = self.group.sum(
            [loss.item(), count, x.shape[1]] if real else [0.0, 0, 0], self.device)
        scale = self.group.world / (columns if s.summed_loss else max(tokens, 1))
        if penalised:
            # AR and TAR are per token, like a mean loss: times the tokens they join the sum.
            raw, dropped = (o.float() for o in outputs[0])
            loss_and_penalty = loss + count * activation_penalty(raw, dropped, s.ar, s.tar, lengths)
        else:
            loss_and_penalty = loss
        objective = loss_and_penalty * (scale if real else 0.0)
        ok = math.isfinite(total)
        if s.variable_bptt and not s.summed_loss:
            # A per-token mean weighs every block alike; a step scaled by the block's length
            # weighs every token alike. A summed loss's gradient already grows with the length.
            self.set_lr(p.lr * x.shape[0] / s.bptt)
        if ok:
            self.optimizer.zero_grad(set_to_none=True)
            objective.backward()
            norm = torch.nn.utils.clip_grad_norm_(self.params, s.clip or math.inf)
            ok = bool(torch.isfinite(norm))
        if ok:
            self.optimizer.step()
            if self.average.active:
                self.average.update()
            self.bad_in_row = 0
            p.epoch_loss += total
            p.epoch_tokens += int(tokens)
        else:
            self.skip_step()
        if self.data.train.carries_state:
            finite = all(bool(torch.isfinite(t).all()) for t in state_parts(new_state))
            self.hidden = detach_state(new_state) if finite else None
        p.step_in_epoch += 1
        p.global_step += 1

    def skip_step(self) -> None:
        """Count a non-finite step; too many in a row stop the run."""
        self.p.skipped += 1
        self.bad_in_row += 1
        self.note(f"step {self.p.global_step + 1}: non-finite loss or gradient; step skipped")
        if self.bad_in_row >= self.s.max_bad_steps:
            raise RnnlabError(
                f"{self.bad_in_row} non-finite steps in a row at step {self.p.global_step + 1}"
                f" (epoch {self.p.epoch}); training stopped. Try a lower learning rate or "
                f"stronger clipping")

    def end_epoch(self) -> None:
        """Evaluate, record, keep the best model, follow the schedule, save `last/`."""
        s, p = self.s, self.p
        record = {"epoch": p.epoch, "step": p.global_step, "lr": p.lr,
                  **{f"train_{k}": v for k, v in
                     metrics(p.epoch_loss / max(p.epoch_tokens, 1), s.level).items()}}
        record.update(self.phase_marks())
        with self.average.swapped_in():  # under NT-ASGD the averaged weights are the model
            if self.data.valid is not None:
                record.update({f"valid_{k}": v for k, v in self.evaluate(self.data.valid).items()})
            record.update({"skipped": p.skipped, "seconds": round(p.epoch_seconds, 1),
                           "tokens_per_s": round(p.epoch_tokens / max(p.epoch_seconds, 1e-9))})
            improved = self.keep_if_best(record)
        self.check_nt_asgd(record)
        if not improved:
            p.bad_epochs += 1
            if s.lr_schedule == "plateau":
                p.lr /= s.plateau_factor
        p.history.append(record)
        self.say("metrics", record)
        self.files.write_metrics(p.history)
        p.epoch += 1
        p.step_in_epoch, p.epoch_loss, p.epoch_tokens, p.epoch_seconds = 0, 0.0, 0, 0.0
        self.hidden = None
        self.save_last()

    def keep_if_best(self, record: dict) -> bool:
        """Keep the model as `best/` if its validation loss is the best so far (always without
        validation text); whether it was."""
        p = self.p
        if p.best_valid is not None and not record.get("valid_loss", -math.inf) < p.best_valid:
            return False
        p.best_valid, p.best_epoch, p.bad_epochs = record.get("valid_loss"), p.epoch, 0
        self.best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        self.files.save_best(self.lm, {"epoch": p.epoch, **record})
        return True

    def phase_marks(self) -> dict:
        """Marks of a metrics record: the fine-tuning phase, and evaluation of averaged weights."""
        return ({"phase": "finetune"} if self.p.phase == "finetune" else {}) | (
            {"averaged": True} if self.average.active else {})

    def check_nt_asgd(self, record: dict) -> None:
        """Start averaging when validation has stalled (NT-ASGD), at the end of an epoch."""
        s, p = self.s, self.p
        if not s.asgd or self.average.active or "valid_loss" not in record:
            return
        losses = [r["valid_loss"] for r in p.history] + [record["valid_loss"]]
        if nt_asgd_trigger(losses, s.nonmono):
            self.average.start(p.global_step)
            record["asgd_from_step"] = p.global_step
            self.note(f"NT-ASGD: validation loss {losses[-1]:.4f} is no better than "
                      f"{min(losses[:-1 - s.nonmono]):.4f} of more than {s.nonmono} checks ago; "
                      f"averaging the weights from step {p.global_step}")

    def start_finetune(self) -> None:
        """AWD-LSTM's fine-tuning: from the best weights, a fresh optimizer and a new average."""
        p = self.p
        if self.best_state is not None:
            self.model.load_state_dict(self.best_state)
        self.optimizer = self.make_optimizer()
        self.average.start(p.global_step)
        p.phase = "finetune"
        self.note(f"fine-tuning for {self.s.finetune} epoch(s) from the best weights "
                  f"(epoch {p.best_epoch}), averaging them anew")

    def record_stop(self, steps: int) -> None:
        """Stopped inside an epoch: evaluate and record where it stands (a "partial" line in
        metrics.jsonl and on the curve), and write `best/` if no epoch has ended yet.

        best_valid stays unset, so a resumed run replaces that `best/` as an uninterrupted one.
        """
        p = self.p
        record = {"epoch": p.epoch - 1 + p.step_in_epoch / max(steps, 1), "step": p.global_step,
                  "partial": True,
                  **{f"train_{k}": v for k, v in
                     metrics(p.epoch_loss / max(p.epoch_tokens, 1), self.s.level).items()},
                  **self.phase_marks()}
        with self.average.swapped_in():
            if self.data.valid is not None:
                record.update({f"valid_{k}": v for k, v in self.evaluate(self.data.valid).items()})
            if self.best_state is None:
                self.files.save_best(self.lm, {**record, "epoch": p.epoch})
        self.say("metrics", record)
        self.partial = record
        self.files.write_metrics([*p.history, record])

    def train_epochs(self) -> str:
        """Epochs until done, stopped or interrupted; returns how it ended."""
        s, p = self.s, self.p
        if s.max_steps is not None and p.global_step >= s.max_steps:
            self.note(f"already at step {p.global_step}, max_steps is {s.max_steps}: "
                      f"nothing to train")
            return "max-steps"
        while p.epoch <= s.epochs + s.finetune:
            if p.epoch > s.epochs and p.phase == "train":
                self.start_finetune()
            p.lr = self.lr_for_epoch(p.epoch)
            self.set_lr(p.lr)
            self.model.train()
            items = self.data.train.epoch(p.epoch)
            stopped = self.run_epoch(items)
            if stopped:
                return stopped
            self.end_epoch()
            if s.patience and p.bad_epochs >= s.patience:
                self.note(f"early stopping: no improvement for {p.bad_epochs} epochs")
                return "early-stopping"
        return "done"

    def run_epoch(self, items: Sequence) -> str | None:
        """The steps of one epoch from where it stands; how the run stopped, if it did."""
        s, p = self.s, self.p
        self.say("epoch_start", {"epoch": p.epoch, "epochs": s.epochs + s.finetune,
                                 "steps": len(items), "done": p.step_in_epoch})
        try:
            start, seconds_before, tokens = time.perf_counter(), p.epoch_seconds, 0
            for i in range(p.step_in_epoch, len(items)):  # items are made as they are read
                before = p.epoch_tokens
                self.train_step(items[i])
                tokens += p.epoch_tokens - before
                now = time.perf_counter()
                p.epoch_seconds = seconds_before + now - start
                if p.global_step % 10 == 0 or p.step_in_epoch == len(items):
                    loss = p.epoch_loss / max(p.epoch_tokens, 1)
                    self.say("step", {"loss": loss, "ppl": math.exp(min(loss, 700)), "lr": p.lr,
                                      "tokens_per_s": tokens / max(now - start, 1e-9)})
                else:
                    self.say("step", {})
                stopped = self.check_stop(now)
                if stopped:
                    self.save_last()
                    if stopped != "interrupted":
                        self.record_stop(len(items))
                    return stopped
        finally:
            self.say("epoch_end", {})
        return None

    def check_stop(self, now: float) -> str | None:
        """Whether to stop after this step (Ctrl-C, max_steps, the clock); saves `last/` when
        a checkpoint is due. Decided alike on every rank: one rank's Ctrl-C stops them all."""
        s = self.s
        flags = self.group.sum([
            self.interrupted,
            s.max_minutes is not None and now - self.started > 60 * s.max_minutes,
            s.checkpoint_minutes > 0 and now - self.saved_at > 60 * s.checkpoint_minutes,
        ], self.device)
        self.interrupted, out_of_time, due = (v > 0 for v in flags)
        if self.interrupted:
            return "interrupted"
        if s.max_steps is not None and self.p.global_step >= s.max_steps:
            return "max-steps"
        if out_of_time:
            return "time-limit"
        if due or (s.checkpoint_every and self.p.global_step % s.checkpoint_every == 0):
            self.save_last()
        return None

    def run(self) -> tuple[str, dict | None]:
        """Train and test: (how it stopped, the test metrics or None)."""
        self.device = resolve_device(self.s.device)
        check_precision(self.device, self.s.precision)
        self.group = distributed.join(self.device)
        self.files = RunFolder(self.out, self.group.main, recipe_record(self.s))
        try:
            return self.train_and_test()
        finally:
            self.group.close()

    def train_and_test(self) -> tuple[str, dict | None]:
        """Prepare, train, then score the best model on the test text."""
        s = self.s
        if s.threads:
            torch.set_num_threads(s.threads)
        self.started = self.saved_at = time.perf_counter()
        self.bad_in_row, self.partial = 0, None
        self.setup()
        self.restore()
        with signals_stop(self):
            stopped = self.train_epochs()
        if self.best_state is not None:
            self.model.load_state_dict(self.best_state)
        self.model.eval()
        test = None
        if stopped != "interrupted" and self.data.test is not None:
            test = self.evaluate(self.data.test)
            record = {f"test_{k}": v for k, v in test.items()} | {"best_epoch": self.p.best_epoch}
            self.say("metrics", record)
            self.files.write_metrics([*self.p.history, *([self.partial] if self.partial else []),
                                      record])
        self.files.plot([*self.p.history, *([self.partial] if self.partial else [])], s.level)
        return stopped, test


@contextlib.contextmanager
def signals_stop(trainer: Trainer) -> Iterator[None]:
    """While training, Ctrl-C or SIGTERM lets the current step finish, then the trainer saves
    `last` and stops.

    SIGTERM is how job schedulers and torchrun stop processes (torchrun after Ctrl-C, which
    its workers see too), so it never aborts the save; a second Ctrl-C stops at once.
    """
    def handler(signum, frame):
        if trainer.interrupted and signum == signal.SIGINT:
            raise KeyboardInterrupt
        if not trainer.interrupted:
            trainer.note(f"{signal.Signals(signum).name}: saving a checkpoint after this step "
                         f"(Ctrl-C again to abort)")
        trainer.interrupted = True

    try:
        previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
