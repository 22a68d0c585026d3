"""The training curve: train and validation perplexity (or bits per character) by epoch."""

from __future__ import annotations

from pathlib import Path

from rnnlab.fileio import atomic_write


def plot_curve(history: list[dict], path: str | Path, level: str = "word") -> Path:
    """Write a PNG of train/valid perplexity (bpc at character level) per epoch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    key, label = ("bpc", "bits per character") if level == "char" else ("ppl", "perplexity")
    epochs = [r["epoch"] for r in history]
    fig, ax = plt.subplots(figsize=(6, 4))
    for split in ("train", "valid"):
        values = [r.get(f"{split}_{key}") for r in history]
        if any(v is not None for v in values):
            ax.plot(epochs, values, marker="o", label=split)
    ax.set_xlabel("epoch")
    ax.set_ylabel(label)
    if level != "char":
        ax.set_yscale("log")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    with atomic_write(path, "wb") as f:
        fig.savefig(f, format="png", dpi=100)
    plt.close(fig)
    return Path(path)
