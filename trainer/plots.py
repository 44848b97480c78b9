"""Pictures of a training run, saved next to its metrics.

`training_curves.png`: loss and validation NDCG@10 / HR@50 per epoch, best epoch marked.
`concept_usage.png` (SINE): distinct prototypes activated and the normalised entropy of
their use per epoch (collapse shows as both falling), and the activation counts of the
best epoch's prototypes, most used first.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only; no display needed
import matplotlib.pyplot as plt


def training_curves(history: list[dict[str, Any]], best_epoch: int, title: str, path: Path) -> None:
    epochs = [h["epoch"] for h in history]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    trained = [h for h in history if h["loss"] is not None]  # not a warm start's epoch 0
    left.plot([h["epoch"] for h in trained], [h["loss"] for h in trained], marker="o", ms=3)
    left.set_xlabel("epoch")
    left.set_ylabel("training loss")
    left.grid(alpha=0.3)
    for key in ("ndcg@10", "hr@10", "hr@50"):
        right.plot(epochs, [h["valid"][key] for h in history], marker="o", ms=3, label=key)
    right.axvline(best_epoch, color="grey", ls="--", lw=1, label=f"best epoch {best_epoch}")
    right.set_xlabel("epoch")
    right.set_ylabel("validation (history removed)")
    right.grid(alpha=0.3)
    right.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def concept_usage(history: list[dict[str, Any]], best_epoch: int, prototypes: int, path: Path) -> None:
    records = [h for h in history if "concepts" in h]
    if not records:
        return
    epochs = [h["epoch"] for h in records]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    left.plot(epochs, [h["concepts"]["distinct_concepts"] for h in records], marker="o", ms=3,
              color="tab:blue")
    left.set_xlabel("epoch")
    left.set_ylabel(f"distinct prototypes activated (of {prototypes})", color="tab:blue")
    left.set_ylim(bottom=0)
    twin = left.twinx()
    twin.plot(epochs, [h["concepts"]["concept_entropy_normalized"] for h in records], marker="s",
              ms=3, color="tab:orange")
    twin.set_ylabel("entropy of use / log L", color="tab:orange")
    twin.set_ylim(0, 1)
    left.grid(alpha=0.3)
    best = next((h for h in records if h["epoch"] == best_epoch), records[-1])
    counts = sorted(best["concepts"]["concept_counts"], reverse=True)
    right.bar(range(len(counts)), counts, width=1.0)
    right.set_yscale("symlog")
    right.set_xlabel("prototype (most used first)")
    right.set_ylabel("activations over validation users")
    right.set_title(f"epoch {best['epoch']}", fontsize=9)
    fig.suptitle("SINE concept usage (collapse: few prototypes, low entropy)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
