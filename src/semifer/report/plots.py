"""Plots of a run's history: losses, learning rate and test accuracy; per-class thresholds over epochs; several
runs side by side."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402


def plot_curves(history: list[dict[str, Any]], path: Path) -> Path:
    """Train losses, test accuracy and learning rate against epochs, side by side."""
    epochs = [r["epoch"] for r in history]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    loss_keys = sorted({k for r in history for k in r if k.startswith("train/")})
    for key in loss_keys:
        axes[0].plot(epochs, [r.get(key, float("nan")) for r in history], label=key[6:])
    axes[0].set_title("training losses")
    axes[0].legend(fontsize=7)
    tested = [r for r in history if "test" in r]
    axes[1].plot([r["epoch"] for r in tested], [100 * r["test"]["accuracy"] for r in tested], marker="o", label="acc")
    axes[1].plot(
        [r["epoch"] for r in tested],
        [100 * r["test"]["mean_class_accuracy"] for r in tested],
        marker=".",
        label="mean-class acc",
    )
    axes[1].set_title("test (EMA model)")
    axes[1].set_ylabel("%")
    axes[1].legend(fontsize=7)
    axes[2].plot(epochs, [r["lr"] for r in history])
    axes[2].set_title("learning rate")
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_thresholds(history: list[dict[str, Any]], path: Path) -> Path:
    """Per-class thresholds (margins) over epochs, like Ada-CM's margin curves."""
    rows = [r for r in history if "thresholds" in r]
    fig, ax = plt.subplots(figsize=(6, 4))
    for name in rows[0]["thresholds"]:
        ax.plot([r["epoch"] for r in rows], [r["thresholds"][name] for r in rows], marker=".", label=name)
    ax.set_xlabel("epoch")
    ax.set_ylabel("confidence threshold")
    ax.set_title("per-class thresholds")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_comparison(histories: dict[str, list[dict[str, Any]]], path: Path, title: str = "") -> Path:
    """Test accuracy and the share of unlabeled images trained on a pseudo-label (subset I, or the mask rate),
    per epoch, for several runs: a table gives where methods end, this shows when they part and why."""
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.2))
    for name, history in histories.items():
        tested = [r for r in history if "test" in r]
        (line,) = axes[0].plot(
            [r["epoch"] for r in tested],
            [100 * r["test"]["accuracy"] for r in tested],
            label=name,
            linestyle="--" if "(" in name else "-",
        )
        used = [r for r in history if r.get("unlabeled/subset1_fraction") is not None]
        if used:
            axes[1].plot(
                [r["epoch"] for r in used],
                [100 * r["unlabeled/subset1_fraction"] for r in used],
                color=line.get_color(),
                linestyle=line.get_linestyle(),
            )
    axes[0].set_title("test accuracy (EMA model)")
    axes[1].set_title("unlabeled images trained on a pseudo-label")
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.set_ylabel("%")
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[1].legend(*axes[0].get_legend_handles_labels(), fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1))
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_run(history: list[dict[str, Any]], out_dir: Path) -> list[Path]:
    if not history:
        return []
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [plot_curves(history, out_dir / "curves.png")]
    if any("thresholds" in r for r in history):
        paths.append(plot_thresholds(history, out_dir / "thresholds.png"))
    return paths
