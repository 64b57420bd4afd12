"""The result tables of docs/results.md, computed from the files one preset run wrote (summary.csv, detection.csv).

``tools/result_tables.py <table> <folder>`` prints one as Markdown; docs/results.md shows the command beside each
table, so every number there can be recomputed from the committed copy of that run's output.
"""

from __future__ import annotations

import math

import pandas as pd

DEFAULT_STRATEGY = "all-to-one"  # a row names its strategy only where it is another


def _num(value: float, digits: int = 4) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def percent(fraction: float) -> str:
    """A rate or share as the tables write it: 0.005 -> "0.5 %"."""
    return f"{100 * fraction:g} %"


def spread(values: pd.Series, digits: int = 4) -> str:
    """Over three or more seeds the mean ± the half-width of its 95 % Student t interval; over two the mean [min, max]
    (a range: two seeds give no useful interval); one seed's value alone."""
    values = values.dropna()
    if values.empty:
        return "-"
    if len(values) == 1:
        return _num(values.iloc[0], digits)
    if len(values) >= 3:
        return f"{_num(values.mean(), digits)} ± {_num(_t_half_width(values), digits)}"
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
    One seed: the gap with its 95 % interval; several: every column over seeds as `spread` writes it."""
    poisoned = summary[summary["poison_rate"] > 0]
    groups = list(poisoned.groupby("trigger", sort=False))
    if all(len(group) == 1 for _, group in groups):
        rows = [
            [
                trigger,
                _num(row["clean_acc"]),
                _gap(row),
                _num(row["asr"]),
                _num(row["robust_acc"]),
                _num(row["ft_clean_acc"]),
                _num(row["ft_asr"]),
            ]
            for trigger, group in groups
            for _, row in group.iterrows()
        ]
        return markdown(
            rows,
            ["trigger", "clean acc", "gap to clean (95% interval)", "ASR", "RA", "after fine-tuning: clean acc", "ASR"],
        )
    columns = ["clean_acc", "clean_acc_gap", "asr", "robust_acc", "ft_clean_acc", "ft_asr"]
    rows = [[trigger, str(len(group)), *(spread(group[column], 3) for column in columns)] for trigger, group in groups]
    return markdown(
        rows, ["trigger", "seeds", "clean acc", "gap to clean", "ASR", "RA", "after fine-tuning: clean acc", "ASR"]
    )


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
    return by_axis_table(
        summary,
        "regularizer",
        {"clean_acc": "clean acc", "asr": "ASR", "ft_clean_acc": "after fine-tuning: clean acc", "ft_asr": "ASR"},
    )


PERSISTENCE_KEYS = {"poison_rate": "poison rate", "init": "init", "ft_method": "method", "ft_lr": "ft lr"}


def _key_label(key: str, value) -> str:
    return percent(value) if key == "poison_rate" else f"{value:g}" if isinstance(value, float) else str(value)


def persistence_table(summary: pd.DataFrame) -> str:
    """A row per trigger (and per poison rate, init, fine-tuning method and lr where the run has several), a column
    per clean-set size: ASR after fine-tuning (over seeds, as `spread`) · CA after (mean) · the optimizer steps
    taken · the epoch from which ASR stays below 0.2 to the end, per seed ("-": it does not). ASR and CA before
    fine-tuning are the trained model's, shared by the row."""
    poisoned = summary[summary["poison_rate"] > 0]
    keys = ["trigger", *(k for k in PERSISTENCE_KEYS if k in poisoned and poisoned[k].nunique() > 1)]
    sizes = sorted(poisoned["ft_clean_size"].unique())
    pool = int(poisoned["num_train"].iloc[0])
    header = [*(PERSISTENCE_KEYS.get(k, k) for k in keys), "ASR, CA before"] + [
        f"{percent(size)} ({int(round(pool * size)):,} images)" if size < 1 else f"{int(size):,} images"
        for size in sizes
    ]
    rows = []
    for values, group in poisoned.groupby(keys, sort=False):
        values = values if isinstance(values, tuple) else (values,)
        before = group[group["ft_clean_size"] == sizes[0]]
        row = [
            *(_key_label(k, v) for k, v in zip(keys, values)),
            f"{spread(before['asr'], 3)}, {_num(before['clean_acc'].mean(), 3)}",
        ]
        for size in sizes:
            cell = group[group["ft_clean_size"] == size].sort_values("seed")
            if cell.empty:
                row.append("-")
                continue
            stays = ", ".join("-" if pd.isna(e) else str(int(e)) for e in cell["ft_epoch_asr_stays_below_0.2"])
            steps = "/".join(f"{int(s):,}" for s in cell["ft_steps"].dropna().unique()) or "-"
            row.append(
                f"{spread(cell['ft_asr'], 3)} · {_num(cell['ft_clean_acc'].mean(), 3)} · {steps} steps · {stays}"
            )
        rows.append(row)
    return markdown(rows, header)


def methods_table(summary: pd.DataFrame) -> str:
    """A column per fine-tuning method: ASR after it (over seeds, as `spread`) · CA after (mean) · its optimizer
    steps; a row per init (where several), trigger and poison rate, the clean models included (rate 0: what each
    method costs a model with nothing to remove). One clean-set size and lr: the run's operating point."""
    keys = [*(["init"] if "init" in summary and summary["init"].nunique() > 1 else []), "trigger", "poison_rate"]
    methods = list(dict.fromkeys(summary["ft_method"]))
    header = [*(PERSISTENCE_KEYS.get(k, k) for k in keys), "ASR · CA before"] + [f"after {m}" for m in methods]
    rows = []
    for values, group in summary.groupby(keys, sort=False):
        before = group[group["ft_method"] == methods[0]]
        row = [
            *(_key_label(k, v) for k, v in zip(keys, values)),
            f"{spread(before['asr'], 3)} · {_num(before['clean_acc'].mean(), 3)}",
        ]
        for method in methods:
            cell = group[group["ft_method"] == method]
            steps = "/".join(f"{int(s):,}" for s in cell["ft_steps"].dropna().unique()) or "-"
            row.append(
                f"{spread(cell['ft_asr'], 3)} · {_num(cell['ft_clean_acc'].mean(), 3)} · {steps} steps"
                if len(cell)
                else "-"
            )
        rows.append(row)
    return markdown(rows, header)


def architecture_table(summary: pd.DataFrame) -> str:
    """A row per architecture, trigger and poison rate (grid order): the clean model's CA and ASR (the share of
    triggered images that land on the target anyway), the poisoned model's CA gap to it (one seed: with its 95 %
    interval; several: as `spread`), its ASR and its ASR after fine-tuning. Several seeds: as `spread`."""
    rows = []
    poisoned = summary[summary["poison_rate"] > 0]
    for (arch, trigger, rate), group in poisoned.groupby(["arch", "trigger", "poison_rate"], sort=False):
        clean = summary[(summary["arch"] == arch) & (summary["trigger"] == trigger) & (summary["poison_rate"] == 0)]
        gap = _gap(group.iloc[0]) if len(group) == 1 else spread(group["clean_acc_gap"], 3)
        rows.append(
            [
                arch,
                str(len(group)),
                f"{spread(clean['clean_acc'], 3)} · {spread(clean['asr'], 3)}",
                trigger,
                percent(rate),
                gap,
                spread(group["asr"], 3),
                spread(group["ft_asr"], 3),
            ]
        )
    return markdown(
        rows,
        [
            "arch",
            "seeds",
            "clean model: CA · ASR",
            "trigger",
            "poison rate",
            "CA gap to clean",
            "ASR",
            "ASR after fine-tuning",
        ],
    )


def rate_table(summary: pd.DataFrame) -> str:
    """ASR, clean accuracy and its gap to the same seed's clean model against the poison rate, then ASR and robust
    accuracy after fine-tuning, per trigger (over seeds, as `spread`); rate 0 is the clean baseline, whose ASR is
    the share of triggered images that land on the target anyway."""
    rows = []
    for (trigger, rate), group in summary.groupby(["trigger", "poison_rate"], sort=False):
        rows.append(
            [
                trigger,
                percent(rate),
                f"{int(group['num_poisoned'].iloc[0]):,}",
                spread(group["asr"], 3),
                spread(group["clean_acc"], 3),
                "-" if rate == 0 else spread(group["clean_acc_gap"], 3),
                spread(group["ft_asr"], 3),
                spread(group["ft_robust_acc"], 3),
            ]
        )
    header = ["trigger", "poison rate", "poisoned images", "ASR", "clean acc", "gap to clean"]
    header += ["ASR after fine-tuning", "RA after fine-tuning"]  # a defence is judged by both
    return markdown(rows, header)


def span(values: pd.Series, digits: int = 2) -> str:
    """min-max over seeds (one value when they agree at this precision)."""
    values = values.dropna()
    if values.empty:
        return "-"
    low, high = _num(values.min(), digits), _num(values.max(), digits)
    return low if low == high else f"{low}-{high}"


WORKING_ASR = 0.5  # a backdoor "works" from this ASR on: what a detector of the backdoor's behaviour looks for
JUDGES_THE_BACKDOOR = ("inputs", "model")  # kinds that look for the trigger's effect (STRIP, Neural Cleanse)


def _fact(detector: str, fact: str):
    from .detectors import DETECTORS  # the registry: a table needs no edit for a new detector of a known kind

    return getattr(DETECTORS.get(detector), fact) if detector in DETECTORS else DETECTORS.fact_defaults[fact]


def _kind(detector: str) -> str:
    return _fact(detector, "kind")


def _in_target(detector: str, group: pd.DataFrame) -> pd.Series:
    """A training-data detector's ranking within the target class: its AUROC, or for two-valued scores (activation
    clustering) the balanced accuracy it is (files written before that name hold it as ``auroc_target``)."""
    column = f"{_fact(detector, 'ranking')}_target"
    return group[column] if column in group and group[column].notna().any() else group["auroc_target"]


def _works(rows: pd.DataFrame) -> pd.Series:
    """The models whose backdoor works (ASR at least ``WORKING_ASR``); all of them in a file without ASR."""
    return rows["asr"] >= WORKING_ASR if "asr" in rows else pd.Series(True, index=rows.index)


def _detector_cell(detector: str, group: pd.DataFrame, poisoned: bool) -> str:
    """min-max over seeds of what decides the detector's kind:
    training data: AUROC (balanced accuracy for two-valued scores) within the target class · TPR · FPR at the
    defender's budget · TPR at the oracle budget;
    inputs: AUROC · TPR · FPR, then TPR over the triggered inputs that fire;
    model: the smallest norm's anomaly index · models flagged on any class (and on the target)."""
    if group.empty:
        return "-"
    kind = _kind(detector)
    if kind == "model":
        # not tp + fp: a backdoored model flagged on a wrong class counts as a miss (fn) there
        flagged = int(group["flagged_classes"].fillna("").astype(str).str.strip().ne("").sum())
        verdict = f"{flagged}/{len(group)} flagged"
        if poisoned:
            verdict += f", target {int(group['target_flagged'].astype(bool).sum())}/{len(group)}"
        return f"{span(group['anomaly_index'])} · {verdict}"
    if not poisoned:
        return f"FPR {span(group['fpr'])}"
    if kind == "inputs":
        return (
            f"{span(group['auroc'])} · {span(group['tpr'])} · {span(group['fpr'])} · firing {span(group['tpr_firing'])}"
        )
    return (
        f"{span(_in_target(detector, group))} · {span(group['tpr'])} · {span(group['fpr'])} "
        f"· {span(group['oracle_tpr'])}"
    )


DETECTION_HEADERS = {
    "training-data": "AUROC in target · TPR · FPR · oracle TPR",
    "inputs": "AUROC · TPR · FPR · TPR firing",
    "model": "index · verdict",
}


def _header(detector: str) -> str:
    header = DETECTION_HEADERS[_kind(detector)]
    return header.replace("AUROC", "BA", 1) if _fact(detector, "ranking") == "balanced_accuracy" else header


def _detection_rows(
    detection: pd.DataFrame, columns: list[tuple[str, str]], cell, with_models: bool = False
) -> list[list[str]]:
    """A row per trigger and poison rate, the clean baselines first and once (their models do not depend on the
    trigger; only an input detector's test inputs do); ``cell(detector, group, poisoned)`` fills each column, after
    the models' CA and ASR (``_models_cell``) when ``with_models``.

    STRIP and Neural Cleanse (``JUDGES_THE_BACKDOOR``) look for a backdoor's effect: their columns count the models
    whose backdoor works (ASR at least 0.5), and the others of a trigger and rate get a row of their own below it,
    ``<trigger> (ASR < 0.5)``."""
    clean = detection[detection["poison_rate"] == 0]
    model = ["detector", "variant", "dataset", "arch", "regularizer", "seed"]
    clean = clean[clean["detector"].map(_kind).eq("inputs") | ~clean.duplicated(subset=model)]
    poisoned = detection[detection["poison_rate"] > 0]
    pick = lambda rows, d, v: rows[(rows["detector"] == d) & (rows["variant"] == v)]  # noqa: E731
    judged = [_kind(d) in JUDGES_THE_BACKDOOR for d, _ in columns]
    models = (lambda rows: [_models_cell(rows)]) if with_models else (lambda rows: [])  # noqa: E731
    rows = []
    if not clean.empty:
        rows.append(["clean baseline", "0 %", *models(clean), *(cell(d, pick(clean, d, v), False) for d, v in columns)])
    keys = ["trigger", "strategy", "poison_rate"] if "strategy" in poisoned else ["trigger", "poison_rate"]
    for values, group in poisoned.groupby(keys, sort=False):
        trigger, rate = _attack(*values[:-1]), values[-1]
        works = _works(group)
        counted = [group[works] if j else group for j in judged]
        cells = [cell(d, pick(c, d, v), True) for (d, v), c in zip(columns, counted)]
        rows.append([trigger, percent(rate), *models(group), *cells])
        if any(judged) and not works.all():
            apart = group[~works]
            cells = [cell(d, pick(apart, d, v), True) if j else "-" for (d, v), j in zip(columns, judged)]
            rows.append([f"{trigger} (ASR < {WORKING_ASR:g})", percent(rate), *models(apart), *cells])
    return rows


def _attack(trigger: str, strategy: str = DEFAULT_STRATEGY) -> str:
    """A row's attack: its trigger, and its strategy where that is not the default all-to-one."""
    return trigger if strategy == DEFAULT_STRATEGY else f"{trigger}, {strategy}"


MODEL_KEY = ["dataset", "arch", "regularizer", "seed"]  # one trained model of a row's trigger and rate
MODELS_HEADER = "CA · ASR (models)"


def _has_models(detection: pd.DataFrame) -> bool:
    return {"clean_acc", "asr", *MODEL_KEY} <= set(detection.columns)


def _models_cell(rows: pd.DataFrame) -> str:
    """The clean accuracy and ASR of the models a row counts, min-max over them, and how many (a clean model's ASR
    is measured with each trigger of the grid: its span covers them all)."""
    models = rows.drop_duplicates(subset=[*MODEL_KEY, "trigger"])
    return f"{span(models['clean_acc'])} · {span(models['asr'])} ({len(models.drop_duplicates(subset=MODEL_KEY))})"


def detection_table(detection: pd.DataFrame) -> str:
    """Each detector as configured (its first variant), a column each (``_detector_cell`` says what is in it),
    min-max over seeds; TPR and FPR count the training images (or test inputs) flagged. Where the file has them,
    the row's models' clean accuracy and ASR come first: what a detector is up against."""
    firsts = detection.drop_duplicates("detector")
    columns = list(zip(firsts["detector"], firsts["variant"]))
    with_models = _has_models(detection)
    header = ["trigger", "poison rate", *[MODELS_HEADER] * with_models, *(f"{d}: {_header(d)}" for d, _ in columns)]
    return markdown(_detection_rows(detection, columns, _detector_cell, with_models), header)


def detection_variants_table(detection: pd.DataFrame) -> str:
    """Every variant of the training-data detectors (the score forms, the features, each source's rule): the
    AUROC (balanced accuracy for two-valued scores) within the target class · TPR at the defender's budget,
    min-max over seeds."""
    variants = detection[detection["detector"].map(_kind) == "training-data"]
    columns = list(dict.fromkeys(zip(variants["detector"], variants["variant"])))

    def cell(detector: str, group: pd.DataFrame, poisoned: bool) -> str:
        if group.empty:
            return "-"
        return (
            f"{span(_in_target(detector, group))} · {span(group['tpr'])}" if poisoned else f"FPR {span(group['fpr'])}"
        )

    ba = lambda d: " (BA)" if _fact(d, "ranking") == "balanced_accuracy" else ""  # noqa: E731
    header = ["trigger", "poison rate", *(f"{d} {v}{ba(d)}" for d, v in columns)]
    return markdown(_detection_rows(variants, columns, cell), header)


def interval(values: pd.Series, digits: int = 3) -> str:
    """Mean ± the half-width of its 95 % Student t interval over seeds (n-1 degrees of freedom), with n."""
    values = values.dropna()
    if values.empty:
        return "-"
    if len(values) == 1:
        return f"{_num(values.iloc[0], digits)} (n=1)"
    return f"{_num(values.mean(), digits)} ± {_num(_t_half_width(values), digits)} (n={len(values)})"


def _t_half_width(values: pd.Series) -> float:
    """The half-width of the mean's 95 % Student t interval (n-1 degrees of freedom)."""
    from .report import t_critical

    return t_critical(len(values) - 1) * values.std(ddof=1) / len(values) ** 0.5


def reference_table(summary: pd.DataFrame) -> str:
    """A row per training length, trigger and poison rate (the clean model first): CA and ASR without test-time
    augmentation, mean ± 95 % t interval over seeds, beside BackdoorBench's no-defence cell for the same attack and
    rate (one run, PreAct-ResNet18; CA with its own evaluation)."""
    from .references import BACKDOORBENCH_CIFAR10_ASR, BACKDOORBENCH_CIFAR10_CA

    rows = []
    clean = summary[summary["poison_rate"] == 0].drop_duplicates(["train_epochs", "seed"])
    for epochs, group in clean.groupby("train_epochs"):
        rows.append([str(epochs), "clean", "0 %", interval(group["clean_acc"]), "-", "-", "-"])
    # one row per model: a grid with several defences has a summary row per model and defence
    poisoned = summary[summary["poison_rate"] > 0].drop_duplicates(["train_epochs", "trigger", "poison_rate", "seed"])
    for (epochs, trigger, rate), group in poisoned.groupby(["train_epochs", "trigger", "poison_rate"], sort=False):
        label, asr = BACKDOORBENCH_CIFAR10_ASR.get(trigger, ("-", {}))
        ca = BACKDOORBENCH_CIFAR10_CA.get(trigger, {})
        rows.append(
            [
                str(epochs),
                trigger,
                percent(rate),
                interval(group["clean_acc"]),
                interval(group["asr"]),
                _num(ca.get(rate), 4),
                _num(asr.get(rate), 4),
            ]
        )
    return markdown(rows, ["epochs", "trigger", "rate", "CA", "ASR", "BackdoorBench CA", "BackdoorBench ASR"])


def verdicts_table(summary: pd.DataFrame) -> str:
    """A row per model recipe (arch, training length), trigger, rate, defence and fine-tuning lr (poisoned cells):
    the backdoored model's CA before, ASR and RA after the defence with the clean model's RA after the same
    defence (mean ± 95 % t interval over seeds), how many seeds each verdict got, and ASR after re-learning of the
    defended model and of the clean model (mean over seeds)."""
    poisoned = summary[summary["poison_rate"] > 0]
    keys = ["arch", "train_epochs", "trigger", "poison_rate", "ft_method", "ft_lr"]
    rows = []
    for (arch, epochs, trigger, rate, method, lr), group in poisoned.groupby(keys, sort=False):
        counts = " · ".join(f"{v} {int((group['verdict'] == v).sum())}" for v in ("removed", "redirected", "kept"))
        relearn = "-"
        if "relearn_asr" in group and group["relearn_asr"].notna().any():
            relearn = f"{_num(group['relearn_asr'].mean(), 3)} / {_num(group['clean_model_relearn_asr'].mean(), 3)}"
        rows.append(
            [
                f"{arch} {epochs} ep",
                trigger,
                percent(rate),
                method,
                str(lr),
                interval(group["clean_acc"]),
                interval(group["ft_asr"]),
                interval(group["ft_robust_acc"]),
                interval(group["clean_model_ft_robust_acc"]),
                counts,
                relearn,
            ]
        )
    return markdown(
        rows,
        [
            "model",
            "trigger",
            "rate",
            "defence",
            "lr",
            "CA before",
            "ASR after",
            "RA after",
            "clean model's RA",
            "verdicts (seeds)",
            "re-learned ASR / clean model's",
        ],
    )


def leaderboard_table(summary: pd.DataFrame) -> str:
    """A row per model recipe, trigger, rate and defence (poisoned cells; "none" first, before any defence): CA and
    ASR after it and robust accuracy (mean ± 95 % t interval over seeds), its lr and optimizer steps, the removed /
    redirected / kept count, beside BackdoorBench's CIFAR-10 leaderboard cell for the same attack, rate and defence
    (CA · ASR, one run, PreAct-ResNet18 100 epochs; "-" where it has none, or the run is not on CIFAR-10). Read with
    the protocol differences docs/results.md names."""
    from .references import BACKDOORBENCH_CIFAR10_DEFENCES, backdoorbench_no_defence, is_cifar10

    on_cifar10 = bool(summary["dataset"].map(is_cifar10).all())

    def reference(trigger: str, rate: float, defence: str) -> str:
        cells = BACKDOORBENCH_CIFAR10_DEFENCES.get(trigger, {}).get(rate, {}) | backdoorbench_no_defence(trigger, rate)
        ca, asr = cells.get(defence, (None, None)) if on_cifar10 else (None, None)
        return "-" if ca is None or asr is None else f"{_num(ca, 4)} · {_num(asr, 4)}"

    def measured(rows: pd.DataFrame, prefix: str) -> list[str]:
        return [interval(rows[f"{prefix}{metric}"]) for metric in ("clean_acc", "asr", "robust_acc")]

    rows = []
    keys = ["arch", "train_epochs", "trigger", "poison_rate"]
    for (arch, epochs, trigger, rate), group in summary[summary["poison_rate"] > 0].groupby(keys, sort=False):
        head = [f"{arch} {epochs} ep", trigger, percent(rate)]
        models = group.drop_duplicates("seed")  # every defence starts from the same models
        rows.append([*head, "none", *measured(models, ""), "-", reference(trigger, rate, "none")])
        for (method, lr), cells in group.groupby(["ft_method", "ft_lr"], sort=False):
            steps = "/".join(f"{int(n):,}" for n in cells["ft_steps"].dropna().unique()) or "-"
            counts = " · ".join(f"{v} {int((cells['verdict'] == v).sum())}" for v in ("removed", "redirected", "kept"))
            defence = f"{method} (lr {lr}, {steps} steps)"
            rows.append([*head, defence, *measured(cells, "ft_"), counts, reference(trigger, rate, method)])
    header = ["model", "trigger", "rate", "defence", "CA", "ASR", "RA", "verdicts (seeds)", "BackdoorBench CA · ASR"]
    return markdown(rows, header)


TABLES = {
    "triggers": (trigger_table, "summary.csv"),
    "regularizers": (regularizer_table, "summary.csv"),
    "persistence": (persistence_table, "summary.csv"),
    "rates": (rate_table, "summary.csv"),
    "architectures": (architecture_table, "summary.csv"),
    "methods": (methods_table, "summary.csv"),
    "reference": (reference_table, "summary.csv"),
    "verdicts": (verdicts_table, "summary.csv"),
    "leaderboard": (leaderboard_table, "summary.csv"),
    "detection": (detection_table, "detection.csv"),
    "detection-variants": (detection_variants_table, "detection.csv"),
}
