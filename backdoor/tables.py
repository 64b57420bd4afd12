"""The result tables of docs/results.md, computed from the files one preset run wrote (summary.csv, detection.csv).

``tools/result_tables.py <table> <folder>`` prints one as Markdown; docs/results.md shows the command beside each
table, so every number there can be recomputed from the committed copy of that run's output.
"""

from __future__ import annotations

import math

import pandas as pd


def _num(value: float, digits: int = 4) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def percent(fraction: float) -> str:
    """A rate or share as the tables write it: 0.005 -> "0.5 %"."""
    return f"{100 * fraction:g} %"


def spread(values: pd.Series, digits: int = 4) -> str:
    """Mean [min, max] over seeds, or the value alone for one seed."""
    values = values.dropna()
    if values.empty:
        return "-"
    if len(values) == 1:
        return _num(values.iloc[0], digits)
    return f"{_num(values.mean(), digits)} [{_num(values.min(), digits)}, {_num(values.max(), digits)}]"


def markdown(rows: list[list[str]], header: list[str]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def _gap(row: pd.Series) -> str:
    if pd.isna(row["clean_acc_gap"]):
        return "-"
    return f"{row['clean_acc_gap']:+.4f} [{row['clean_acc_gap_low']:+.4f}, {row['clean_acc_gap_high']:+.4f}]"


def trigger_table(summary: pd.DataFrame) -> str:
    """One row per trigger of the poisoned cells: CA, gap to the clean baseline, ASR, RA, after fine-tuning.
    One seed: the gap with its 95 % interval; several: every column as mean [min, max] over seeds."""
    poisoned = summary[summary["poison_rate"] > 0]
    groups = list(poisoned.groupby("trigger", sort=False))
    if all(len(group) == 1 for _, group in groups):
        rows = [[trigger, _num(row["clean_acc"]), _gap(row), _num(row["asr"]), _num(row["robust_acc"]),
                 _num(row["ft_clean_acc"]), _num(row["ft_asr"])]
                for trigger, group in groups for _, row in group.iterrows()]
        return markdown(rows, ["trigger", "clean acc", "gap to clean (95% interval)", "ASR", "RA",
                               "after fine-tuning: clean acc", "ASR"])
    columns = ["clean_acc", "clean_acc_gap", "asr", "robust_acc", "ft_clean_acc", "ft_asr"]
    rows = [[trigger, str(len(group)), *(spread(group[column], 3) for column in columns)] for trigger, group in groups]
    return markdown(rows, ["trigger", "seeds", "clean acc", "gap to clean", "ASR", "RA",
                           "after fine-tuning: clean acc", "ASR"])


def by_axis_table(summary: pd.DataFrame, axis: str, metrics: dict[str, str]) -> str:
    """Mean [min, max] over seeds of ``metrics`` (column -> header) for each value of ``axis``, poisoned cells;
    seeds whose training diverged are counted, not averaged."""
    rows = []
    for value, group in summary[summary["poison_rate"] > 0].groupby(axis, sort=False):
        failed = int(group["clean_acc"].isna().sum())  # diverged: no metrics, left out of the means
        seeds = f"{len(group)} ({failed} diverged)" if failed else str(len(group))
        rows.append([str(value), seeds, *(spread(group[column]) for column in metrics)])
    return markdown(rows, [axis, "seeds", *metrics.values()])


def regularizer_table(summary: pd.DataFrame) -> str:
    return by_axis_table(summary, "regularizer", {"clean_acc": "clean acc", "asr": "ASR", "ft_clean_acc":
                                                  "after fine-tuning: clean acc", "ft_asr": "ASR"})


PERSISTENCE_KEYS = {"poison_rate": "poison rate", "init": "init", "ft_method": "method", "ft_lr": "ft lr"}


def _key_label(key: str, value) -> str:
    return percent(value) if key == "poison_rate" else f"{value:g}" if isinstance(value, float) else str(value)


def persistence_table(summary: pd.DataFrame) -> str:
    """A row per trigger (and per poison rate, init, fine-tuning method and lr where the run has several), a column
    per clean-set size: ASR after fine-tuning (mean [min, max] over seeds) · CA after (mean) · the optimizer steps
    taken · the epoch from which ASR stays below 0.2 to the end, per seed ("-": it does not). ASR and CA before
    fine-tuning are the trained model's, shared by the row."""
    poisoned = summary[summary["poison_rate"] > 0]
    keys = ["trigger", *(k for k in PERSISTENCE_KEYS if k in poisoned and poisoned[k].nunique() > 1)]
    sizes = sorted(poisoned["ft_clean_size"].unique())
    pool = int(poisoned["num_train"].iloc[0])
    header = [*(PERSISTENCE_KEYS.get(k, k) for k in keys), "ASR, CA before"] + [
        f"{percent(size)} ({int(round(pool * size)):,} images)" if size < 1 else f"{int(size):,} images"
        for size in sizes]
    rows = []
    for values, group in poisoned.groupby(keys, sort=False):
        values = values if isinstance(values, tuple) else (values,)
        before = group[group["ft_clean_size"] == sizes[0]]
        row = [*(_key_label(k, v) for k, v in zip(keys, values)),
               f"{spread(before['asr'], 3)}, {_num(before['clean_acc'].mean(), 3)}"]
        for size in sizes:
            cell = group[group["ft_clean_size"] == size].sort_values("seed")
            if cell.empty:
                row.append("-")
                continue
            stays = ", ".join("-" if pd.isna(e) else str(int(e)) for e in cell["ft_epoch_asr_stays_below_0.2"])
            steps = "/".join(f"{int(s):,}" for s in cell["ft_steps"].dropna().unique()) or "-"
            row.append(f"{spread(cell['ft_asr'], 3)} · {_num(cell['ft_clean_acc'].mean(), 3)} · {steps} steps · {stays}")
        rows.append(row)
    return markdown(rows, header)


def rate_table(summary: pd.DataFrame) -> str:
    """ASR and clean accuracy against the poison rate, then ASR after fine-tuning, per trigger (mean [min, max]
    over seeds); rate 0 is the clean baseline, whose ASR is the share of triggered images that land on the
    target anyway."""
    rows = []
    for (trigger, rate), group in summary.groupby(["trigger", "poison_rate"], sort=False):
        rows.append([trigger, percent(rate), f"{int(group['num_poisoned'].iloc[0]):,}", spread(group["asr"], 3),
                     spread(group["clean_acc"], 3), spread(group["ft_asr"], 3)])
    return markdown(rows, ["trigger", "poison rate", "poisoned images", "ASR", "clean acc", "ASR after fine-tuning"])


def span(values: pd.Series, digits: int = 2) -> str:
    """min-max over seeds (one value when they agree at this precision)."""
    values = values.dropna()
    if values.empty:
        return "-"
    low, high = _num(values.min(), digits), _num(values.max(), digits)
    return low if low == high else f"{low}-{high}"


def _detector_cell(detector: str, group: pd.DataFrame, poisoned: bool) -> str:
    """TPR · FPR of the flags; for Neural Cleanse the anomaly index · how many models it flagged on any class
    (and, for poisoned models, in how many a flagged class was the attack's target)."""
    if group.empty:
        return "-"
    if detector == "neural-cleanse":
        # not tp + fp: a backdoored model flagged on a wrong class counts as a miss (fn) there
        flagged = int(group["flagged_classes"].fillna("").astype(str).str.strip().ne("").sum())
        verdict = f"{flagged}/{len(group)} flagged"
        if poisoned:
            verdict += f", target {int(group['target_flagged'].astype(bool).sum())}/{len(group)}"
        return f"{span(group['anomaly_index'])} · {verdict}"
    tpr = span(group["tpr"]) if poisoned else "-"
    return f"{tpr} · {span(group['fpr'])}"


def detection_table(detection: pd.DataFrame) -> str:
    """A row per trigger and poison rate (the clean baselines first, once: their models do not depend on the
    trigger), a column per detector: TPR · FPR min-max over seeds, or Neural Cleanse's anomaly index and
    verdicts; the last row is each detector's mean seconds per model."""
    detectors = list(dict.fromkeys(detection["detector"]))
    clean = detection[detection["poison_rate"] == 0]
    # a clean model is reported under every trigger of the grid; only STRIP's inputs depend on the trigger
    model = ["detector", "dataset", "arch", "regularizer", "seed"]
    clean = clean[(clean["detector"] == "strip") | ~clean.duplicated(subset=model)]
    poisoned = detection[detection["poison_rate"] > 0]
    rows = []
    if not clean.empty:
        rows.append(["clean baseline", "0 %",
                     *(_detector_cell(d, clean[clean["detector"] == d], poisoned=False) for d in detectors)])
    for (trigger, rate), group in poisoned.groupby(["trigger", "poison_rate"], sort=False):
        rows.append([trigger, percent(rate),
                     *(_detector_cell(d, group[group["detector"] == d], poisoned=True) for d in detectors)])
    if "seconds" in detection:  # runs before detection records stopped holding wall-clock time
        seconds = pd.concat([clean, poisoned]).groupby("detector")["seconds"].mean()
        rows.append(["seconds per model", "", *(f"{seconds[d]:.1f}" for d in detectors)])
    header = ["trigger", "poison rate", *(f"{d}: index · verdict" if d == "neural-cleanse" else f"{d}: TPR · FPR"
                                          for d in detectors)]
    return markdown(rows, header)


TABLES = {
    "triggers": (trigger_table, "summary.csv"),
    "regularizers": (regularizer_table, "summary.csv"),
    "persistence": (persistence_table, "summary.csv"),
    "rates": (rate_table, "summary.csv"),
    "detection": (detection_table, "detection.csv"),
}
