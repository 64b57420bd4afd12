"""Figures and the long-format tables behind them (one row per epoch and metric)."""

from __future__ import annotations

import itertools
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

from .files import atomic_path  # noqa: E402
from .naming import slug  # noqa: E402
from .references import BACKDOORBENCH_CIFAR10_ASR, is_cifar10  # noqa: E402


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
        ["metric", "epoch"], ignore_index=True
    )


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


# ---------------------------------------------------------------- grid figures


def asr_by_rate(table: pd.DataFrame) -> pd.DataFrame:
    """Poisoned cells' ASR per arch, trigger and rate: the mean over seeds (each seed first averaged over the
    grid's other axes) and the seeds' min and max, the band the figures draw."""
    poisoned = table[table["poison_rate"] > 0]
    per_seed = poisoned.groupby(["arch", "trigger", "poison_rate", "seed"])["asr"].mean()
    return per_seed.groupby(level=["arch", "trigger", "poison_rate"]).agg(["mean", "min", "max"]).reset_index()


def _percent(value: float, _position: int | None = None) -> str:
    return f"{100 * value:g} %"


def plot_asr_vs_rate(
    table: pd.DataFrame, path: str | Path, reference: dict[str, tuple[str, dict[float, float]]] | None = None
) -> None:
    """ASR against poison rate on a log axis (0.1, 0.5 and 1 % apart), a panel per arch: a line per trigger, the
    mean over seeds with their range as a band; the clean model's ASR (the non-target inputs it puts in the target
    class anyway) as a dotted level; ``reference`` (trigger -> (its name there, {rate: ASR})) dashed beside the
    trigger it stands for."""
    curves = asr_by_rate(table)
    archs = list(dict.fromkeys(table["arch"]))
    fig, axes = plt.subplots(1, len(archs), figsize=(4.8 * len(archs), 3.6), squeeze=False, sharey=True)
    colours = {trigger: f"C{i % 10}" for i, trigger in enumerate(dict.fromkeys(table["trigger"]))}
    for ax, arch in zip(axes[0], archs):
        for trigger, rows in curves[curves["arch"] == arch].groupby("trigger", sort=False):
            colour = colours[trigger]
            ax.plot(rows["poison_rate"], rows["mean"], marker="o", color=colour, label=str(trigger))
            ax.fill_between(rows["poison_rate"], rows["min"], rows["max"], color=colour, alpha=0.2, linewidth=0)
            if reference and trigger in reference:
                name, points = reference[trigger]
                rates = sorted(points)
                ax.plot(
                    rates, [points[r] for r in rates], linestyle="--", marker="x", color=colour, alpha=0.7, label=name
                )
        clean = table[(table["arch"] == arch) & (table["poison_rate"] == 0)]
        if len(clean):
            ax.axhline(clean["asr"].mean(), color="grey", linestyle=":", label="clean model")
        if len(curves):
            ax.set_xscale("log")
            ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(_percent))
        ax.set(title=str(arch), xlabel="poison rate (log)", ylim=(-0.02, 1.02))
        ax.grid(alpha=0.3, which="both")
    axes[0, 0].set_ylabel("attack success rate")
    axes[0, -1].legend(fontsize=7, title="trigger (band: seeds' range)", title_fontsize=7)
    save_figure(fig, path)


def plot_asr_by_arch(table: pd.DataFrame, path: str | Path) -> None:
    """ASR of each architecture, a group of bars per trigger and rate: the mean over seeds, the seeds' range as
    an error bar (the paper's first finding: does ASR depend on the architecture?)."""
    curves = asr_by_rate(table)
    groups = list(dict.fromkeys(zip(curves["trigger"], curves["poison_rate"])))
    archs = list(dict.fromkeys(curves["arch"]))
    width = 0.8 / max(1, len(archs))
    fig, ax = plt.subplots(figsize=(max(5.0, 1.1 * len(groups) * max(1, len(archs)) / 2 + 2), 3.6))
    for k, arch in enumerate(archs):
        rows = curves[curves["arch"] == arch].set_index(["trigger", "poison_rate"]).reindex(groups)
        x = [i + (k - (len(archs) - 1) / 2) * width for i in range(len(groups))]
        error = [rows["mean"] - rows["min"], rows["max"] - rows["mean"]]
        ax.bar(x, rows["mean"], width, yerr=error, capsize=2, label=str(arch), color=f"C{k % 10}")
    ax.set_xticks(
        range(len(groups)), [f"{trigger} {_percent(rate)}" for trigger, rate in groups], rotation=30, ha="right"
    )
    ax.set(ylabel="attack success rate", ylim=(0, 1.05), title="ASR by architecture (bars: seeds' range)")
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=8, title="arch")
    save_figure(fig, path)


def plot_heatmap(table: pd.DataFrame, path: str | Path, value: str = "asr") -> None:
    """Mean ASR of poisoned cells, trigger x regularizer."""
    grid = table[table["poison_rate"] > 0].pivot_table(
        index="regularizer", columns="trigger", values=value, aggfunc="mean"
    )
    fig, ax = plt.subplots(figsize=(1.2 * max(2, grid.shape[1]) + 2, 0.6 * max(2, grid.shape[0]) + 1.5))
    image = ax.imshow(grid.values, vmin=0, vmax=1, cmap="viridis", aspect="auto")
    ax.set_xticks(range(grid.shape[1]), grid.columns, rotation=30, ha="right")
    ax.set_yticks(range(grid.shape[0]), grid.index)
    for (i, j), v in pd.DataFrame(grid.values).stack().items():
        ax.text(j, i, f"{v:.2f}", ha="center", va="center", color="white" if v < 0.6 else "black", fontsize=8)
    fig.colorbar(image, ax=ax, label=f"mean {value}")
    ax.set_title("ASR (poisoned cells): trigger x regularizer")
    save_figure(fig, path)


def plot_clean_vs_asr(table: pd.DataFrame, path: str | Path) -> None:
    fig, ax = plt.subplots(figsize=(5, 3.6))
    for trigger, rows in table.groupby("trigger"):
        ax.scatter(rows["asr"], rows["clean_acc"], label=str(trigger), alpha=0.8)
    ax.set(xlabel="attack success rate", ylabel="clean accuracy", title="clean accuracy vs ASR")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, title="trigger")
    save_figure(fig, path)


def convergence_curve(table: pd.DataFrame) -> pd.DataFrame:
    """CA and ASR against training length, per arch, trigger and rate (the clean model: trigger ``clean``): the mean
    over seeds (each seed first averaged over the grid's other axes: fine-tuning does not change the model before
    it) and the seeds' min and max."""
    rows = table.assign(trigger=table["trigger"].where(table["poison_rate"] > 0, "clean"))
    keys = ["arch", "trigger", "poison_rate", "train_epochs"]
    per_seed = rows.groupby([*keys, "seed"])[["clean_acc", "asr"]].mean()
    curve = per_seed.groupby(level=keys).agg(["mean", "min", "max"])
    curve.columns = [f"{metric}_{stat}" for metric, stat in curve.columns]
    return curve.reset_index().sort_values(keys, kind="stable")


def plot_convergence(table: pd.DataFrame, path: str | Path) -> None:
    """Clean accuracy (dashed) and ASR (solid) against the epochs a model trained (its lr schedule scaled to them), a
    panel per arch, a line per trigger and rate, the clean model's CA in grey: how converged a model is changes what
    a backdoor does. Means over seeds, the seeds' range as a band."""
    curve = convergence_curve(table)
    archs = list(dict.fromkeys(curve["arch"]))
    fig, axes = plt.subplots(1, len(archs), figsize=(4.8 * len(archs), 3.6), squeeze=False, sharey=True)
    for ax, arch in zip(axes[0], archs):
        lines = curve[curve["arch"] == arch].groupby(["trigger", "poison_rate"], sort=False)
        for k, ((trigger, rate), rows) in enumerate(lines):
            colour = "grey" if trigger == "clean" else f"C{k % 10}"
            label = "clean model" if trigger == "clean" else f"{trigger} {_percent(rate)}"
            metrics = [("clean_acc", "--")] if trigger == "clean" else [("asr", "-"), ("clean_acc", "--")]
            for metric, style in metrics:
                x = rows["train_epochs"]
                ax.plot(x, rows[f"{metric}_mean"], marker="o", linestyle=style, color=colour, label=label)
                band = (rows[f"{metric}_min"], rows[f"{metric}_max"])
                ax.fill_between(x, *band, color=colour, alpha=0.15, linewidth=0)
                label = None
        ax.set(title=str(arch), xlabel="training epochs", ylim=(-0.02, 1.02))
        ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel("ASR (-), clean accuracy (--)")
    axes[0, -1].legend(fontsize=7, title="band: seeds' range", title_fontsize=7)
    save_figure(fig, path)


def plot_defence_vs_convergence(table: pd.DataFrame, path: str | Path) -> None:
    """ASR (solid) and robust accuracy (dashed) after each defence against the backdoored model's clean accuracy
    before it, one line per defence and fine-tuning lr, a panel per trigger and rate: does how converged a model is
    change what a defence does? Points are means over seeds, one per model recipe (training length, arch)."""
    poisoned = table[table["poison_rate"] > 0]
    panels = list(poisoned.groupby(["trigger", "poison_rate"], sort=False))
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.6), squeeze=False, layout="constrained")
    for ax, ((trigger, rate), rows) in zip(axes[0], panels):
        for (method, lr), line in rows.groupby(["ft_method", "ft_lr"], sort=False):
            means = line.groupby(["arch", "train_epochs"])[["clean_acc", "ft_asr", "ft_robust_acc"]].mean()
            means = means.sort_values("clean_acc")
            drawn = ax.plot(means["clean_acc"], means["ft_asr"], marker="o", label=f"{method} lr {lr}")
            ax.plot(means["clean_acc"], means["ft_robust_acc"], marker="x", linestyle="--", color=drawn[0].get_color())
        ax.set(
            xlabel="clean accuracy before the defence",
            ylabel="after the defence",
            ylim=(-0.02, 1.02),
            title=f"{trigger} at {100 * rate:g} %: ASR (-), RA (--)",
        )
        ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=7)
    save_figure(fig, path)


def plot_recovery(curves: pd.DataFrame, path: str | Path) -> None:
    """ASR (solid) and clean accuracy (dashed) against the optimizer steps of fine-tuning (0 = before), mean per
    trigger (and poison rate and init, where several: a backdoor removed at 10 % and kept at 1 % must not average
    to half) over seeds and the other axes; a panel per fine-tuning method and lr (rows) and clean-set size
    (columns)."""
    poisoned = curves[curves["poison_rate"] > 0]
    if "ft_method" not in poisoned:
        poisoned = poisoned.assign(ft_method="ft")
    x = "steps" if "steps" in poisoned and poisoned["steps"].notna().all() else "epoch"
    settings = list(dict.fromkeys(zip(poisoned["ft_method"], poisoned["ft_lr"]))) or [(None, None)]
    sizes = sorted(set(poisoned["ft_clean_size"])) or [None]
    lines = [
        "trigger",
        *(axis for axis in ("poison_rate", "init") if axis in poisoned and poisoned[axis].nunique() > 1),
    ]
    fig, axes = plt.subplots(
        len(settings),
        len(sizes),
        figsize=(4.6 * len(sizes), 3.4 * len(settings)),
        squeeze=False,
        sharey=True,
        layout="constrained",
    )  # else the title floats above tall grids
    for (i, (method, lr)), (j, size) in itertools.product(enumerate(settings), enumerate(sizes)):
        ax = axes[i, j]
        panel = poisoned[
            (poisoned["ft_method"] == method) & (poisoned["ft_lr"] == lr) & (poisoned["ft_clean_size"] == size)
        ]
        for index, (key, rows) in enumerate(panel.groupby(lines)):
            label = " ".join(
                f"{v:.0%}" if axis == "poison_rate" else str(v)
                for axis, v in zip(lines, key if isinstance(key, tuple) else (key,))
            )
            mean = rows.groupby(x)[["asr", "clean_acc"]].mean()
            colour = f"C{index % 10}"
            ax.plot(mean.index, mean["asr"], marker="o", markersize=3, color=colour, label=f"{label} ASR")
            ax.plot(mean.index, mean["clean_acc"], linestyle="--", color=colour, label=f"{label} CA")
        title = f"{method}, lr {slug(lr)}, clean {slug(size)}" if method is not None else "no poisoned cells"
        ax.set(title=title, ylim=(-0.02, 1.02))
        ax.grid(alpha=0.3)
    for ax in axes[-1]:
        ax.set_xlabel("fine-tuning steps (0 = before)" if x == "steps" else "fine-tune epoch (0 = before)")
    for ax in axes[:, 0]:
        ax.set_ylabel("rate")
    axes[0, -1].legend(fontsize=7, ncol=2)
    fig.suptitle("clean fine-tuning: backdoor recovery")
    save_figure(fig, path)


def plot_reversed_trigger(mask: torch.Tensor, pattern: torch.Tensor, path: str | Path, title: str) -> None:
    """Neural Cleanse's reversed trigger: the mask (H, W), the pattern (C, H, W) and mask x pattern, in [0, 1]."""
    fig, axes = plt.subplots(1, 3, figsize=(6.3, 2.4))
    stamp = (mask * pattern).clamp(0, 1)
    for ax, (name, image) in zip(axes, (("mask", mask[None]), ("pattern", pattern), ("mask x pattern", stamp))):
        _show(ax, (image * 255).round().to(torch.uint8))
        ax.set_title(name, fontsize=8)
    fig.suptitle(title, fontsize=9)
    save_figure(fig, path)


def detection_grids(table: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """What the detection figure shows, a row per detector (the same rows in both, sorted): the mean TPR over
    seeds on each trigger's poisoned models, a column per trigger and rate when the grid has several rates
    (Neural Cleanse: the share of models whose target class it flags); and the false-alarm rate on clean
    baselines (FPR; Neural Cleanse: the share of clean models it flags), one column. Each detector as configured
    (its other variants are in detection.csv)."""
    if "variant" in table:
        table = table[table["variant"] == "configured"]
    detectors = sorted(table["detector"].unique())
    poisoned, clean = table[table["poison_rate"] > 0], table[table["poison_rate"] == 0]
    rate = (100 * poisoned["poison_rate"]).map("{:g} %".format)
    cell = poisoned["trigger"] + " " + rate if poisoned["poison_rate"].nunique() > 1 else poisoned["trigger"]
    poisoned = poisoned.assign(rate=poisoned["tp"] / (poisoned["tp"] + poisoned["fn"]), cell=cell)
    clean = clean.assign(rate=clean["fp"] / (clean["fp"] + clean["tn"]), cell="clean")
    grids = []
    for rows in (poisoned, clean):
        grid = rows.pivot_table(index="detector", columns="cell", values="rate", aggfunc="mean")
        grids.append(grid.reindex(index=detectors, columns=list(dict.fromkeys(rows["cell"]))))
    return grids[0], grids[1]


def plot_detection(table: pd.DataFrame, path: str | Path) -> None:
    """``detection_grids`` as two heatmaps: TPR on poisoned models, false alarms on clean ones."""
    tpr, false_alarms = detection_grids(table)
    fig, axes = plt.subplots(
        1,
        2,
        figsize=(max(9.0, 0.6 * tpr.shape[1] + 4), 0.6 * max(2, len(tpr)) + 2),
        gridspec_kw={"width_ratios": [max(2, tpr.shape[1]), 1]},
        squeeze=False,
    )
    for k, (ax, grid, title) in enumerate(
        zip(axes[0], (tpr, false_alarms), ("TPR on poisoned models", "false alarms on clean models"))
    ):
        if grid.shape[1] == 0:
            ax.set_axis_off()
            continue
        ax.imshow(grid.values.astype(float), vmin=0, vmax=1, cmap="viridis", aspect="auto")
        ax.set_xticks(range(grid.shape[1]), grid.columns, rotation=40, ha="right")
        labelled = k == 0 or tpr.shape[1] == 0  # the right panel shares the left one's rows
        ax.set_yticks(range(grid.shape[0]), grid.index if labelled else [""] * grid.shape[0])
        for (i, j), v in pd.DataFrame(grid.values).stack().items():
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", color="white" if v < 0.6 else "black", fontsize=8)
        ax.set_title(title, fontsize=9)
    save_figure(fig, path)


def grid_figures(table: pd.DataFrame, curves: pd.DataFrame, detection: pd.DataFrame, folder: str | Path) -> None:
    """The grid report's figures from its tables (summary, recovery, detection): the report stage draws them, and
    tools/redraw.py from a committed preset's CSVs."""
    folder = Path(folder)
    # BackdoorBench's curves are CIFAR-10's: drawn only when every cell is
    reference = BACKDOORBENCH_CIFAR10_ASR if all(is_cifar10(str(d)) for d in table["dataset"]) else None
    plot_asr_vs_rate(table, folder / "asr_vs_rate.png", reference)
    if table["arch"].nunique() > 1:
        plot_asr_by_arch(table, folder / "asr_by_arch.png")
    plot_heatmap(table, folder / "asr_heatmap.png")
    plot_clean_vs_asr(table, folder / "clean_vs_asr.png")
    plot_recovery(curves, folder / "recovery.png")
    if "train_epochs" in table and table.groupby("arch")["train_epochs"].nunique().max() > 1:
        plot_convergence(table, folder / "convergence.png")
    if "train_epochs" in table and table.groupby(["arch", "train_epochs"]).ngroups > 1:
        plot_defence_vs_convergence(table, folder / "defence_vs_convergence.png")
    if len(detection):
        plot_detection(detection, folder / "detection.png")
