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
