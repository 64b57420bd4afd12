"""The grid report: one row per cell, baseline gaps with intervals, seed aggregates, figures.

Intervals are 95%. The clean-accuracy gap to the baseline uses the unpaired Wald interval for a
difference of two proportions on the test set (conservative: both models see the same images, so
the paired interval would be narrower). Seed aggregates use Student's t over seeds.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from .errors import ConfigError
from .files import read_json
from .naming import AXES, FT_AXES

METRICS = (
    "clean_acc",
    "asr",
    "robust_acc",
    "ft_clean_acc",
    "ft_asr",
    "ft_robust_acc",
    "relearn_asr",
    "clean_model_relearn_asr",
)
BASELINE_KEYS = tuple(axis for axis in AXES if axis not in ("trigger", "strategy", "poison_rate"))
ASR_REMOVED = 0.2  # "the backdoor no longer works": ASR below this after fine-tuning
RA_RECOVERED = 0.10  # removed, not redirected: robust accuracy within this of the clean model's on the same trigger
VERDICTS = ("removed", "redirected", "kept")
RELEARN_COLUMNS = (
    "relearn_clean_acc",
    "relearn_asr",
    "relearn_robust_acc",
    "clean_model_relearn_clean_acc",
    "clean_model_relearn_asr",
    "clean_model_relearn_robust_acc",
)
Z95 = 1.959964
FLOAT_FORMAT = "%.6g"  # the tables' floats in CSV: six significant digits
T95 = {
    1: 12.706,
    2: 4.303,
    3: 3.182,
    4: 2.776,
    5: 2.571,
    6: 2.447,
    7: 2.365,
    8: 2.306,
    9: 2.262,
    10: 2.228,
    12: 2.179,
    15: 2.131,
    20: 2.086,
    25: 2.060,
    30: 2.042,
}


def t_critical(df: int) -> float:
    """Two-sided 95% Student t quantile (table; the nearest smaller tabulated df, normal beyond 30)."""
    if df > 30:
        return Z95
    return T95[max(k for k in T95 if k <= df)]


def cell_results(plan: dict, cells_dir: str | Path) -> dict[str, dict]:
    """Each planned cell's metrics, from its family's file (stages/finetune.py --report): cells removed
    from the grid are ignored even if their files are still on disk."""
    files: dict[Path, dict] = {}
    results = {}
    for cell in plan["cells"]:
        path = Path(cells_dir) / f"{cell['family_key']}.json"
        if path not in files:
            if not path.is_file():
                raise ConfigError(f"missing fine-tuning results {path}: run its fine-tune stage (dvc repro)")
            files[path] = read_json(path)
        if cell["name"] not in files[path]:
            raise ConfigError(f"{path} has no result for cell {cell['name']}: re-run its fine-tune stage (dvc repro)")
        results[cell["name"]] = files[path][cell["name"]]
    return results


def epoch_stays_below(curve: list[dict], key: str = "asr", threshold: float = ASR_REMOVED) -> int | None:
    """The first evaluated fine-tune epoch (0 = before) from which ``key`` stays below ``threshold`` to the end;
    None if it is not below at the end (a backdoor that dips and comes back was not removed; a diverged model's
    null metrics never are)."""
    epoch = None
    for point in curve:
        below = point[key] is not None and point[key] < threshold
        epoch = (point["epoch"] if epoch is None else epoch) if below else None
    return epoch


def relearn_results(plan: dict, cells_dir: str | Path) -> dict[str, dict]:
    """Each poisoned cell's re-learning metrics (stages/relearn.py), when the grid re-learns (``grid.relearn``)."""
    if not plan.get("relearn"):
        return {}
    results: dict[str, dict] = {}
    for family in dict.fromkeys(cell["family_key"] for cell in plan["cells"] if cell["poison_rate"] > 0):
        path = Path(cells_dir) / "relearn" / f"{family}.json"
        if not path.is_file():
            raise ConfigError(f"missing re-learning results {path}: run its relearn stage (dvc repro)")
        results |= read_json(path)
    return results


def verdict(ft_asr: float, ft_robust_acc: float, clean_robust_acc: float) -> str | None:
    """What a defence did to a backdoor, from ASR and robust accuracy together: ``removed`` (ASR below 0.2 and RA
    within 10 points of the clean model's on the same trigger), ``redirected`` (ASR below 0.2, RA not recovered:
    triggered images still go to wrong classes), ``kept``; None when a number is missing (a diverged model, a grid
    without the clean model)."""
    if any(v is None or pd.isna(v) for v in (ft_asr, ft_robust_acc)):
        return None
    if ft_asr >= ASR_REMOVED:
        return "kept"
    if clean_robust_acc is None or pd.isna(clean_robust_acc):
        return None
    recovered = round(clean_robust_acc - ft_robust_acc, 9) <= RA_RECOVERED  # 10 points exactly counts as recovered
    return "removed" if recovered else "redirected"


def add_verdicts(table: pd.DataFrame) -> pd.DataFrame:
    """``clean_model_ft_robust_acc``: the robust accuracy of the clean model (the family's rate-0 cell: same
    dataset, arch, seed, training length and defence) on the same trigger after the same defence, and each poisoned
    cell's ``verdict`` against it. The clean model after the same defence, so that what a defence costs every model
    (a pruned or re-initialised head) is not counted against the backdoored one."""
    keys = [*BASELINE_KEYS, "trigger", "strategy"]
    clean = table[table["poison_rate"] == 0].groupby(keys)["ft_robust_acc"].first().rename("clean_model_ft_robust_acc")
    table = table.join(clean, on=keys)
    table["verdict"] = [
        verdict(row.ft_asr, row.ft_robust_acc, row.clean_model_ft_robust_acc) if row.poison_rate > 0 else None
        for row in table.itertuples()
    ]
    return table


def collect(plan: dict, results: dict[str, dict], relearned: dict[str, dict] | None = None) -> pd.DataFrame:
    """One row per planned cell, from ``cell_results`` (and ``relearn_results``)."""
    rows = []
    relearned = relearned or {}
    for cell in plan["cells"]:
        metrics = results[cell["name"]]
        rows.append(
            {
                "cell": cell["name"],
                **{axis: cell[axis] for axis in AXES},
                "clean_acc": metrics["clean_acc"],
                "asr": metrics["asr"],
                "robust_acc": metrics["robust_acc"],
                **{f"ft_{k}": metrics["finetuned"][k] for k in ("clean_acc", "asr", "robust_acc")},
                "ft_epochs": metrics["curve"][-1]["epoch"],
                "ft_steps": metrics["curve"][-1].get("steps"),
                "ft_epoch_asr_stays_below_0.2": epoch_stays_below(metrics["curve"]),
                "ft_pruned_channels": metrics["curve"][-1].get("pruned_channels"),
                "num_poisoned": metrics["num_poisoned"],
                "num_train": metrics["num_train"],
                "num_test": metrics["num_test"],
                **{k: relearned.get(cell["name"], {}).get(k) for k in RELEARN_COLUMNS if relearned},
            }
        )
    table = pd.DataFrame(rows)
    for column in ("ft_epoch_asr_stays_below_0.2", "ft_steps", "ft_pruned_channels"):
        table[column] = table[column].astype("Int64")  # empty when never (or not recorded, or not pruned)
    return table


def add_baseline_gap(table: pd.DataFrame) -> pd.DataFrame:
    """Clean-accuracy gap of each cell to its rate-0 baseline (same dataset, arch, regularizer, seed); empty
    (not zero, not "no gap") for cells whose grid has no baseline."""
    table = table.copy()
    baselines = (
        table[table["poison_rate"] == 0].groupby(list(BASELINE_KEYS))["clean_acc"].first().rename("baseline_clean_acc")
    )
    table = table.join(baselines, on=list(BASELINE_KEYS))
    p1, p0, n = table["clean_acc"], table["baseline_clean_acc"], table["num_test"]
    half = Z95 * ((p1 * (1 - p1) + p0 * (1 - p0)) / n) ** 0.5
    table["clean_acc_gap"] = p1 - p0
    table["clean_acc_gap_low"] = table["clean_acc_gap"] - half
    table["clean_acc_gap_high"] = table["clean_acc_gap"] + half
    # "Is the backdoor visible from clean accuracy?": the whole interval lies below zero; unknown without baseline.
    table["gap_significant"] = (table["clean_acc_gap_high"] < 0).astype("boolean").mask(p0.isna())
    return table


# the columns ``with_cross_cell_columns`` adds: each computed from other cells of the table (the clean model's)
CROSS_CELL_COLUMNS = (
    "baseline_clean_acc",
    "clean_acc_gap",
    "clean_acc_gap_low",
    "clean_acc_gap_high",
    "gap_significant",
    "clean_model_ft_robust_acc",
    "verdict",
)


def with_cross_cell_columns(table: pd.DataFrame) -> pd.DataFrame:
    """``collect``'s table with the columns that compare a cell with its clean model: the clean-accuracy gap and the
    defence verdict (``CROSS_CELL_COLUMNS``)."""
    return add_verdicts(add_baseline_gap(table))


def seed_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Mean and 95% interval over seeds for every cell that differs only in its seed, and how many seeds got each
    verdict (``verdict_removed`` ...)."""
    keys = [axis for axis in AXES if axis != "seed"]
    metrics = [m for m in (*METRICS, "clean_acc_gap", "clean_model_ft_robust_acc") if m in table]
    rows = []
    for values, group in table.groupby(keys, sort=False):
        row = dict(zip(keys, values)) | {"n_seeds": len(group)}
        if "verdict" in group:
            row |= {f"verdict_{v}": int((group["verdict"] == v).sum()) for v in VERDICTS}
        for metric in metrics:
            series = group[metric].dropna()
            mean = series.mean() if len(series) else math.nan
            half = (
                t_critical(len(series) - 1) * series.std(ddof=1) / len(series) ** 0.5 if len(series) > 1 else math.nan
            )
            row |= {
                f"{metric}_mean": mean,
                f"{metric}_low": mean - half,
                f"{metric}_high": mean + half,
                f"{metric}_min": series.min() if len(series) else math.nan,
                f"{metric}_max": series.max() if len(series) else math.nan,
            }
        rows.append(row)
    return pd.DataFrame(rows)


def recovery_curves(plan: dict, results: dict[str, dict]) -> pd.DataFrame:
    """Long table: cell axes, fine-tune epoch, clean_acc, asr (for the recovery figure)."""
    frames = []
    for cell in plan["cells"]:
        curve = pd.DataFrame(results[cell["name"]]["curve"])
        for axis in AXES:
            curve[axis] = cell[axis]
        curve["cell"] = cell["name"]
        if "steps" not in curve:
            curve["steps"] = None
        frames.append(curve[["cell", *AXES, "epoch", "steps", "clean_acc", "asr"]])
    return pd.concat(frames, ignore_index=True)


DETECTION_AXES = tuple(axis for axis in AXES if axis not in FT_AXES)  # the trained model a detector judges
DETECTION_COLUMNS = (
    "detector",
    "variant",
    "features",
    "tp",
    "fp",
    "tn",
    "fn",
    "tpr",
    "fpr",
    "precision",
    "f1",
    "auroc",
    "auroc_target",
    "balanced_accuracy",
    "balanced_accuracy_target",
    "oracle_tpr",
    "oracle_fpr",
    "oracle_precision",
    "target_poisoned_share",
    "firing_inputs",
    "tpr_firing",
    "auroc_firing",
    "model_flagged",
    "anomaly_index",
    "smallest_norm_class",
    "flagged_classes",
    "target_flagged",
    "updates_per_class",
    "threshold",
    "threshold_rule",
    "target_known",
    "clean_data",
)


def detection_table(plan: dict, cells_dir: str | Path, results: dict[str, dict]) -> pd.DataFrame:
    """One row per (model, detector, variant): the cell's axes (a detector judges the trained model, before any
    fine-tuning), its clean accuracy and ASR, and the detector's numbers (stages/detect.py)."""
    rows, seen = [], set()
    for cell in plan["cells"]:
        for detector, key in cell.get("detection", {}).items():
            axes = {axis: cell.get(axis, "scratch") for axis in DETECTION_AXES}
            if (tuple(axes.values()), detector) in seen:
                continue
            seen.add((tuple(axes.values()), detector))
            path = Path(cells_dir) / "detection" / detector / f"{key}.json"
            if not path.is_file():
                raise ConfigError(f"missing detection result {path}: run its detect stage (dvc repro)")
            record = read_json(path)
            for variant in record["rows"]:
                flagged = variant.get("flagged_classes")
                row = {
                    **axes,
                    "clean_acc": results[cell["name"]]["clean_acc"],
                    "asr": results[cell["name"]]["asr"],
                    **{k: variant.get(k, record.get(k)) for k in DETECTION_COLUMNS},
                    "flagged_classes": None if flagged is None else " ".join(map(str, flagged)),
                }
                if record["kind"] == "model":
                    row["model_flagged"] = bool(flagged)
                rows.append(row)
    return pd.DataFrame(rows, columns=[*DETECTION_AXES, "clean_acc", "asr", *DETECTION_COLUMNS])


def _mean(series: pd.Series) -> float | None:
    series = series.dropna()
    return float(series.mean()) if len(series) else None


def aggregate_metrics(table: pd.DataFrame) -> dict:
    """The few numbers declared as DVC metrics (no per-cell columns in `dvc exp show`). Without any rate-0
    baseline the gap is unknown: null, and ``baselines`` says 0."""
    poisoned = table[table["poison_rate"] > 0]
    known_gap = poisoned["gap_significant"].dropna()
    return {
        "cells": int(len(table)),
        "poisoned_cells": int(len(poisoned)),
        "baselines": int((table["poison_rate"] == 0).sum()),
        "diverged_cells": int(table["clean_acc"].isna().sum()),  # a non-finite model: metrics null
        "mean_asr": _mean(poisoned["asr"]),
        "mean_ft_asr": _mean(poisoned["ft_asr"]),
        "mean_clean_acc_gap": _mean(poisoned["clean_acc_gap"]),
        "cells_with_visible_gap": int(known_gap.sum()) if len(known_gap) else None,
    }
