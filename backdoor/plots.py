"""Figures and the long-format tables behind them (one row per epoch and metric)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

from .io import atomic_path  # noqa: E402


def read_dvclive(live_dir: str | Path) -> pd.DataFrame:
    """DVCLive's per-metric TSVs -> long table (epoch, metric, value)."""
    frames = []
    for tsv in sorted(Path(live_dir, "plots", "metrics").glob("*.tsv")):
        table = pd.read_csv(tsv, sep="\t")
        frames.append(pd.DataFrame({"epoch": table["step"], "metric": tsv.stem, "value": table[tsv.stem]}))
    if not frames:
        return pd.DataFrame(columns=["epoch", "metric", "value"])
    return pd.concat(frames, ignore_index=True).sort_values(["metric", "epoch"], ignore_index=True)


def long_curve(curve: pd.DataFrame, metrics: tuple[str, ...] = ("clean_acc", "asr", "robust_acc")) -> pd.DataFrame:
    """A wide per-epoch table -> long table (epoch, metric, value)."""
    return curve.melt(id_vars="epoch", value_vars=list(metrics), var_name="metric").sort_values(
        ["metric", "epoch"], ignore_index=True)


def save_figure(fig: plt.Figure, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)


def plot_curves(table: pd.DataFrame, title: str, path: str | Path, xlabel: str = "epoch") -> None:
    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    for metric, rows in table.groupby("metric"):
        ax.plot(rows["epoch"], rows["value"], marker="o", label=metric)
    ax.set(title=title, xlabel=xlabel, ylabel="value")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    save_figure(fig, path)


def _show(ax: plt.Axes, image: torch.Tensor) -> None:
    if image.shape[0] == 1:
        ax.imshow(image[0].numpy(), cmap="gray", vmin=0, vmax=255)
    else:
        ax.imshow(image.permute(1, 2, 0).numpy())
    ax.set_xticks([])
    ax.set_yticks([])


def plot_samples(clean: torch.Tensor, triggered: torch.Tensor, labels: list[str], path: str | Path) -> None:
    """Top row clean test images, bottom row the same images with the trigger (uint8 N,C,H,W)."""
    count = len(clean)
    fig, axes = plt.subplots(2, count, figsize=(1.3 * count, 2.9), squeeze=False)
    for i in range(count):
        _show(axes[0, i], clean[i])
        _show(axes[1, i], triggered[i])
        axes[0, i].set_title(labels[i], fontsize=7)
    axes[0, 0].set_ylabel("clean")
    axes[1, 0].set_ylabel("triggered")
    save_figure(fig, path)
