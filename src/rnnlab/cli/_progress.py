"""How the command line shows long work: progress bars on stderr, records on stdout."""

from __future__ import annotations

import json
import sys

from tqdm import tqdm


def bar(total: int | None, desc: str, enabled: bool = True, **options) -> tqdm:
    """A progress bar on stderr that clears itself when done."""
    return tqdm(total=total, desc=desc, disable=not enabled, leave=False, dynamic_ncols=True,
                file=sys.stderr, **options)


class TrainingReport:
    """Shows what the trainer reports: a bar per epoch, one JSON line per record, notes."""

    def __init__(self, progress: bool = True, notes: bool = True, records: bool = True) -> None:
        self.progress, self.notes, self.records = progress, notes, records
        self.bar: tqdm | None = None

    def __call__(self, kind: str, data: dict) -> None:
        """Handle one report (see rnnlab.lm.trainer for the kinds)."""
        if kind == "epoch_start" and self.progress:
            self.bar = bar(data["steps"], f"epoch {data['epoch']}/{data['epochs']}",
                           initial=data["done"], unit="batch")
        elif kind == "step" and self.bar is not None:
            if data:
                self.bar.set_postfix(loss=f"{data['loss']:.3f}", ppl=f"{data['ppl']:.1f}",
                                     tok_s=f"{data['tokens_per_s']:.0f}", lr=f"{data['lr']:.3g}",
                                     refresh=False)
            self.bar.update(1)
        elif kind == "epoch_end" and self.bar is not None:
            self.bar.close()
            self.bar = None
        elif kind == "metrics" and self.records:
            tqdm.write(json.dumps(data), file=sys.stdout)
        elif kind == "note" and self.notes:
            tqdm.write(data["message"], file=sys.stderr)


class DownloadBars:
    """A bar per file for `rnnlab.datasets`' progress reports, each closed when complete."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled, self.bars = enabled, {}

    def __call__(self, name: str, done: int, total: int | None) -> None:
        """Show `done` of `total` bytes of the file `name`."""
        if not self.enabled:
            return
        shown = self.bars.get(name)
        if shown is None:
            shown = self.bars[name] = bar(total, name, unit="B", unit_scale=True,
                                          unit_divisor=1024)
        shown.update(done - shown.n)
        if total is not None and done >= total:
            shown.close()


class PrepareBars:
    """A bar per pass for prepare_store's progress reports, in bytes of text."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled, self.shown, self.phase = enabled, None, None

    def __call__(self, phase: str, done: int, total: int | None) -> None:
        """Show `done` of `total` (None: unknown) for `phase` ("count" or "write")."""
        if not self.enabled:
            return
        if phase != self.phase:
            self.close()
            desc = "counting" if phase == "count" else "writing"
            self.shown, self.phase = bar(total, desc, unit="B", unit_scale=True, unit_divisor=1024), phase
        self.shown.update((done if total is None else min(done, total)) - self.shown.n)

    def close(self) -> None:
        """Clear the bar shown last."""
        if self.shown is not None:
            self.shown.close()
            self.shown = None


def word2vec_bar(enabled: bool = True):
    """A progress callback for Word2Vec.train that draws a bar (words/s, lr, loss, ETA)."""
    shown = None

    def progress(done: int, total: int, info: dict) -> None:
        nonlocal shown
        if not enabled:
            return
        shown = shown or bar(total, "word2vec", unit="word", unit_scale=True)
        shown.update(done - shown.n)
        shown.set_postfix(lr=f"{info['lr']:.5f}", loss=f"{info['loss']:.4f}", refresh=False)
        if done >= total:
            shown.close()

    return progress
