"""README's tables from a run's CSV files: the numbers they print are the ones in the file."""

import math
import re
from pathlib import Path

import pandas as pd

from backdoor.tables import (
    TABLES,
    detection_table,
    detection_variants_table,
    leaderboard_table,
    persistence_table,
    rate_table,
    reference_table,
    regularizer_table,
    spread,
    trigger_table,
)


def test_spread_is_a_t_interval_over_three_seeds_and_a_range_over_two():
    # 3 seeds: sd 0.2, t(0.975, 2) = 4.303, half-width 4.303 * 0.2 / sqrt(3) = 0.4969
    assert spread(pd.Series([0.5, 0.7, 0.9])) == "0.7000 ± 0.4969"
    assert spread(pd.Series([0.5, 0.9])) == "0.7000 [0.5000, 0.9000]"
    assert spread(pd.Series([0.25]), 2) == "0.25" and spread(pd.Series([math.nan])) == "-"


def test_persistence_rows_are_trigger_and_what_varies_with_a_column_per_clean_size():
    summary = pd.DataFrame(
        {
            "trigger": ["blend"] * 6,
            "ft_lr": [0.05] * 6,
            "ft_clean_size": [0.05, 0.05, 0.1, 0.1, 0.05, 0.05],
            "ft_method": ["ft"] * 4 + ["fst"] * 2,
            "poison_rate": [0.1] * 6,
            "seed": [1, 0, 0, 1, 0, 1],
            "num_train": [20000] * 6,
            "asr": [0.99, 0.98, 0.98, 0.99, 0.98, 0.99],
            "ft_asr": [0.1, 0.3, 0.05, 0.15, 0.01, 0.02],
            "clean_acc": [0.88, 0.89, 0.89, 0.88, 0.89, 0.88],
            "ft_clean_acc": [0.87, 0.86, 0.85, 0.86, 0.80, 0.80],
            "ft_steps": [80, 80, 160, 160, 80, 80],
            "ft_epoch_asr_stays_below_0.2": [3, None, 2, 4, 1, 1],
        }
    )
    lines = persistence_table(summary).splitlines()
    # one lr: no lr column; two methods: a method column
    assert lines[0] == "| trigger | method | ASR, CA before | 5 % (1,000 images) | 10 % (2,000 images) |"
    # seed 0's ASR does not stay below 0.2 with 5 %, seed 1's from epoch 3; with 10 %: seed 0 from 2, seed 1 from 4
    assert lines[2] == (
        "| blend | ft | 0.985 [0.980, 0.990], 0.885 | 0.200 [0.100, 0.300] · 0.865 · 80 steps · -, 3 "
        "| 0.100 [0.050, 0.150] · 0.855 · 160 steps · 2, 4 |"
    )
    assert lines[3] == (
        "| blend | fst | 0.985 [0.980, 0.990], 0.885 | 0.015 [0.010, 0.020] · 0.800 · 80 steps · 1, 1 | - |"
    )
    assert len(lines) == 4


def detection_frame() -> pd.DataFrame:
    nan = math.nan
    rows = []
    for seed, rate, trigger in ((0, 0.1, "checker"), (1, 0.1, "checker"), (0, 0.0, "checker"), (0, 0.0, "blend")):
        common = {
            "seed": seed,
            "dataset": "fashion-mnist",
            "arch": "small-cnn",
            "regularizer": "none",
            "trigger": trigger,
            "poison_rate": rate,
        }
        for variant, auroc in (("paper-pooled", 0.9 + 0.05 * seed), ("reference-block", 0.6)):
            rows.append(
                {
                    **common,
                    "detector": "spectral",
                    "variant": variant,
                    "auroc_target": auroc if rate else nan,
                    "tpr": 0.5 + 0.2 * seed if rate else nan,
                    "fpr": 0.1 if rate else 0.2,
                    "oracle_tpr": 0.8 if rate else nan,
                }
            )
        rows.append(
            {
                **common,
                "detector": "strip",
                "variant": "configured",
                "auroc": 0.9 if rate else nan,
                "tpr": 0.4 if rate else nan,
                "fpr": 0.05,
                "tpr_firing": 0.8 if rate else nan,
            }
        )
        # seed 1's backdoored model is flagged on class 8, not the target: a model flagged, the target missed
        rows.append(
            {
                **common,
                "detector": "neural-cleanse",
                "variant": "configured",
                "anomaly_index": [3.0, 1.0][seed] if rate else 1.5,
                "target_flagged": [True, False][seed] if rate else None,
                "flagged_classes": ["0", "8"][seed] if rate else "3 5",
            }
        )
    return pd.DataFrame(rows)


def test_detection_is_a_row_per_trigger_and_rate_and_a_column_per_detector_by_its_kind():
    lines = detection_table(detection_frame()).splitlines()
    assert lines[0] == (
        "| trigger | poison rate | spectral: AUROC in target · TPR · FPR · oracle TPR "
        "| strip: AUROC · TPR · FPR · TPR firing | neural-cleanse: index · verdict |"
    )
    # one clean model (seed 0), reported under each trigger of the grid: counted once, but STRIP's inputs per trigger
    assert lines[2] == "| clean baseline | 0 % | FPR 0.20 | FPR 0.05 | 1.50 · 1/1 flagged |"
    assert (
        lines[3]
        == (
            "| checker | 10 % | 0.90-0.95 · 0.50-0.70 · 0.10 · 0.80 | 0.90 · 0.40 · 0.05 · firing 0.80 "
            "| 1.00-3.00 · 2/2 flagged, target 1/2 |"
        )
        and len(lines) == 4
    )


def test_detection_puts_the_models_clean_accuracy_and_asr_first_counting_each_model_once():
    frame = detection_frame()
    frame["clean_acc"] = frame["seed"].map({0: 0.80, 1: 0.82})
    frame["asr"] = frame["poison_rate"].map({0.0: 0.01, 0.1: 0.9}) + frame["trigger"].map(
        {"checker": 0.0, "blend": 0.02}
    )
    lines = detection_table(frame).splitlines()
    assert lines[0].startswith("| trigger | poison rate | CA · ASR (models) | spectral: ")
    # the clean model is one model whose ASR is measured with both triggers; the checker rows are two seeds' models
    assert lines[2].startswith("| clean baseline | 0 % | 0.80 · 0.01-0.03 (1) | FPR 0.20 |")
    assert lines[3].startswith("| checker | 10 % | 0.80-0.82 · 0.90 (2) | 0.90-0.95 ")
    assert (
        detection_variants_table(frame).splitlines()[3]
        == "| checker | 10 % | 0.90-0.95 · 0.50-0.70 | 0.60 · 0.50-0.70 |"
    )


def test_detection_gives_each_poisoning_strategy_of_a_trigger_its_own_row():
    frame = detection_frame()
    poisoned = frame[frame["poison_rate"] > 0]
    frame = pd.concat([frame.assign(strategy="all-to-one"), poisoned.assign(strategy="label-consistent")])
    lines = detection_table(frame).splitlines()
    assert [line.split(" | ")[0] for line in lines[2:]] == [
        "| clean baseline",
        "| checker",
        "| checker, label-consistent",
    ]


def test_detection_variants_give_each_forms_auroc_within_the_target_class():
    lines = detection_variants_table(detection_frame()).splitlines()
    assert lines[0] == "| trigger | poison rate | spectral paper-pooled | spectral reference-block |"
    assert lines[3] == "| checker | 10 % | 0.90-0.95 · 0.50-0.70 | 0.60 · 0.50-0.70 |"


def test_a_new_detector_is_tabled_by_its_kind():
    from backdoor.detectors import DETECTORS

    DETECTORS.add("new-inputs", lambda: None, kind="inputs")
    try:
        frame = detection_frame()
        frame.loc[frame["detector"] == "strip", "detector"] = "new-inputs"
        assert "new-inputs: AUROC · TPR · FPR · TPR firing" in detection_table(frame).splitlines()[0]
    finally:
        DETECTORS.remove("new-inputs")


def test_a_diverged_seed_is_counted_not_averaged():
    summary = pd.DataFrame(
        {
            "regularizer": ["snnl"] * 3,
            "poison_rate": [0.05] * 3,
            "seed": [0, 1, 2],
            "clean_acc": [math.nan, 0.88, 0.86],
            "asr": [math.nan, 0.99, 0.97],
            "ft_clean_acc": [math.nan, 0.87, 0.85],
            "ft_asr": [math.nan, 0.9, 0.8],
        }
    )
    assert regularizer_table(summary).splitlines()[2] == (
        "| snnl | 3 (1 diverged) | 0.8700 [0.8600, 0.8800] | 0.9800 [0.9700, 0.9900] | 0.8600 [0.8500, 0.8700] "
        "| 0.8500 [0.8000, 0.9000] |"
    )


def test_trigger_rows_keep_the_gap_interval_for_one_seed_and_spread_several():
    summary = pd.DataFrame(
        {
            "trigger": ["square", "square", "blend", "blend"],
            "poison_rate": [0.0, 0.1, 0.1, 0.1],
            "seed": [0, 0, 0, 1],
            "clean_acc": [0.80, 0.79, 0.78, 0.76],
            "clean_acc_gap": [0.0, -0.01, -0.02, -0.04],
            "clean_acc_gap_low": [0.0, -0.03, -0.04, -0.06],
            "clean_acc_gap_high": [0.0, 0.01, 0.0, -0.02],
            "asr": [0.1, 0.95, 0.9, 0.8],
            "robust_acc": [0.8, 0.04, 0.08, 0.18],
            "ft_clean_acc": [0.8, 0.8, 0.79, 0.77],
            "ft_asr": [0.1, 0.9, 0.7, 0.5],
        }
    )
    one_seed = trigger_table(summary[summary["seed"] == 0]).splitlines()
    assert one_seed[2] == "| square | 0.7900 | -0.0100 [-0.0300, +0.0100] | 0.9500 | 0.0400 | 0.8000 | 0.9000 |"
    assert len(one_seed) == 4  # the clean baseline (rate 0) is the gap's reference, not a row
    seeds = trigger_table(summary).splitlines()
    assert seeds[0].startswith("| trigger | seeds | clean acc | gap to clean |")
    assert seeds[3] == (
        "| blend | 2 | 0.770 [0.760, 0.780] | -0.030 [-0.040, -0.020] | 0.850 [0.800, 0.900] "
        "| 0.130 [0.080, 0.180] | 0.780 [0.770, 0.790] | 0.600 [0.500, 0.700] |"
    )


def test_rate_rows_are_trigger_and_rate_in_grid_order_with_the_baseline_at_rate_zero():
    summary = pd.DataFrame(
        {
            "trigger": ["square"] * 4,
            "poison_rate": [0.0, 0.005, 0.0, 0.005],
            "seed": [0, 0, 1, 1],
            "num_poisoned": [0, 250, 0, 250],
            "asr": [0.02, 0.1, 0.01, 0.3],
            "clean_acc": [0.8, 0.79, 0.81, 0.8],
            "ft_asr": [0.02, 0.05, 0.01, 0.25],
            "clean_acc_gap": [0.0, -0.01, 0.0, -0.01],
            "ft_robust_acc": [0.8, 0.6, 0.8, 0.4],
        }
    )
    lines = rate_table(summary).splitlines()
    assert lines[0] == (
        "| trigger | poison rate | poisoned images | ASR | clean acc | gap to clean | ASR after fine-tuning "
        "| RA after fine-tuning |"
    )
    assert lines[2:] == [
        "| square | 0 % | 0 | 0.015 [0.010, 0.020] | 0.805 [0.800, 0.810] | - | 0.015 [0.010, 0.020] "
        "| 0.800 [0.800, 0.800] |",
        "| square | 0.5 % | 250 | 0.200 [0.100, 0.300] | 0.795 [0.790, 0.800] | -0.010 [-0.010, -0.010] "
        "| 0.150 [0.050, 0.250] | 0.500 [0.400, 0.600] |",
    ]


def test_every_results_table_is_what_its_command_prints_from_the_committed_run():
    """docs/results.md shows the command under each result table; the table above it must be that command's output."""
    root = Path(__file__).resolve().parents[1]
    checked = 0
    for page in (root / "README.md", root / "docs" / "results.md"):
        lines = page.read_text().splitlines()
        commands = [
            (i, m)
            for i, line in enumerate(lines)
            if (m := re.search(r"`python tools/result_tables\.py ([\w-]+) (\S+)`", line))
        ]
        for i, match in commands:
            end = max(j for j in range(i) if lines[j].startswith("|")) + 1
            start = end
            while start > 0 and lines[start - 1].startswith("|"):
                start -= 1
            make, file = TABLES[match.group(1)]
            expected = make(pd.read_csv(root / match.group(2) / file))
            where = f"{page.name}'s table above line {i + 1}"
            assert "\n".join(lines[start:end]) == expected, f"{where} is not {match.group(0)}"
            checked += 1
    assert checked >= 4


def test_every_committed_detector_run_keeps_each_records_per_image_scores():
    """A committed run with a detection table keeps, for each detector in it, every model's record and its scores
    (tools/keep_run.py): any metric of the table can be recomputed from git alone."""
    from backdoor.pipeline.plan import detection_outputs

    presets = Path(__file__).resolve().parents[1] / "reports" / "presets"
    runs = [folder for folder in presets.iterdir() if (folder / "detection.csv").is_file()]
    assert len(runs) >= 4
    for run in runs:
        for detector in pd.read_csv(run / "detection.csv")["detector"].unique():
            records = sorted((run / "detection").glob(f"{detector}/*.json"))
            assert records, f"{run.name}: no {detector} records"
            for record in records:
                for kept in detection_outputs(detector, record.relative_to(run / "detection").as_posix()):
                    assert (run / "detection" / kept).is_file(), f"{run.name}: no {kept}"


def anchor(heading: str) -> str:
    """GitHub's anchor for a Markdown heading: lower case, punctuation dropped, spaces as hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def test_every_link_in_readme_and_docs_points_at_a_file_and_section_that_exist():
    root = Path(__file__).resolve().parents[1]
    pages = [root / "README.md", *sorted((root / "docs").glob("*.md"))]
    anchors = {
        page: {anchor(line.lstrip("#")) for line in page.read_text().splitlines() if line.startswith("#")}
        for page in pages
    }
    broken = []
    for page in pages:
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
            if target.startswith(("http://", "https://", "mailto:")):
                continue
            path, _, section = target.partition("#")
            file = (page.parent / path).resolve() if path else page
            if not file.exists():
                broken.append(f"{page.name}: {target} (no such file)")
            elif section and file.suffix == ".md" and section not in anchors.get(file, set()):
                broken.append(f"{page.name}: {target} (no such section)")
    assert broken == []


def test_methods_rows_are_init_trigger_and_rate_with_a_column_per_method():
    from backdoor.tables import methods_table

    rows = []
    for init, rate, method, seed, ft_asr in (
        ("scratch", 0.1, "ft", 0, 0.9),
        ("scratch", 0.1, "ft", 1, 0.7),
        ("scratch", 0.1, "fine-pruning", 0, 0.1),
        ("scratch", 0.0, "ft", 0, 0.02),
        ("cifar10", 0.1, "ft", 0, 0.05),
    ):
        rows.append(
            dict(
                init=init,
                trigger="square",
                poison_rate=rate,
                ft_method=method,
                seed=seed,
                asr=0.95,
                clean_acc=0.8,
                ft_asr=ft_asr,
                ft_clean_acc=0.75,
                ft_steps=200,
            )
        )
    lines = methods_table(pd.DataFrame(rows)).splitlines()
    assert lines[0] == "| init | trigger | poison rate | ASR · CA before | after ft | after fine-pruning |"
    assert lines[2] == (
        "| scratch | square | 10 % | 0.950 [0.950, 0.950] · 0.800 "
        "| 0.800 [0.700, 0.900] · 0.750 · 200 steps | 0.100 · 0.750 · 200 steps |"
    )
    assert lines[3] == "| scratch | square | 0 % | 0.950 · 0.800 | 0.020 · 0.750 · 200 steps | - |"
    assert lines[4].startswith("| cifar10 | square | 10 % |") and lines[4].endswith("| - |")


def test_architecture_rows_pair_each_poisoned_cell_with_its_architectures_clean_model():
    from backdoor.tables import architecture_table

    rows = []
    for arch, rate, seed, acc, asr in (
        ("small-cnn", 0.0, 0, 0.72, 0.02),
        ("small-cnn", 0.01, 0, 0.71, 0.9),
        ("nasnet-cpu", 0.0, 0, 0.76, 0.01),
        ("nasnet-cpu", 0.01, 0, 0.75, 0.5),
        ("nasnet-cpu", 0.0, 1, 0.78, 0.03),
        ("nasnet-cpu", 0.01, 1, 0.75, 0.7),
    ):
        rows.append(
            dict(
                arch=arch,
                trigger="square",
                poison_rate=rate,
                seed=seed,
                clean_acc=acc,
                asr=asr,
                ft_asr=asr / 2,
                clean_acc_gap=-0.01 * (seed + 1),
                clean_acc_gap_low=-0.02,
                clean_acc_gap_high=0.0,
            )
        )
    lines = architecture_table(pd.DataFrame(rows)).splitlines()
    assert lines[0] == (
        "| arch | seeds | clean model: CA · ASR | trigger | poison rate | CA gap to clean | ASR "
        "| ASR after fine-tuning |"
    )
    assert lines[2] == "| small-cnn | 1 | 0.720 · 0.020 | square | 1 % | -0.0100 [-0.0200, +0.0000] | 0.900 | 0.450 |"
    assert lines[3] == (
        "| nasnet-cpu | 2 | 0.770 [0.760, 0.780] · 0.020 [0.010, 0.030] | square | 1 % "
        "| -0.015 [-0.020, -0.010] | 0.600 [0.500, 0.700] | 0.300 [0.250, 0.350] |"
    )
    assert len(lines) == 4  # clean models are each row's reference, not rows


def test_readme_is_a_front_door_of_at_most_100_lines_opening_with_the_two_commands():
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert len(readme.splitlines()) <= 100
    first_block = readme.split("```")[1]
    commands = [line.split("#")[0].strip() for line in first_block.strip().splitlines()]
    assert commands == ["make repro", "make test"]
    assert "**Prerequisites:**" in readme.split("```")[0]


def test_the_leaderboard_puts_backdoorbenchs_cell_beside_each_defence_and_none_before_them():
    """Two seeds of a CIFAR-10 square 10 % model under NAD and FT-SAM: "none" first (the models before any defence,
    counted once), each defence with its lr, steps and verdicts; BackdoorBench's NAD and no-defence cells beside them,
    none for FT-SAM (not on its leaderboard); a Fashion-MNIST run gets no reference."""
    rows = []
    for seed in (0, 1):
        for method, ft_asr, verdict in (("nad", 0.02, "removed"), ("ft-sam", 0.9, "kept")):
            rows.append(
                {"dataset": "folder:data/external/cifar10-jpeg", "arch": "resnet6-cpu", "train_epochs": 5,
                 "trigger": "square", "poison_rate": 0.1, "seed": seed, "ft_method": method, "ft_lr": "0.1x",
                 "clean_acc": 0.80, "asr": 0.95, "robust_acc": 0.05, "ft_clean_acc": 0.78, "ft_asr": ft_asr,
                 "ft_robust_acc": 0.7, "ft_steps": 200, "verdict": verdict}
            )  # fmt: skip
    summary = pd.DataFrame(rows)
    lines = leaderboard_table(summary).splitlines()
    assert lines[2] == (
        "| resnet6-cpu 5 ep | square | 10 % | none | 0.800 ± 0.000 (n=2) | 0.950 ± 0.000 (n=2) "
        "| 0.050 ± 0.000 (n=2) | - | 0.9132 · 0.9503 |"
    )
    assert lines[3].startswith("| resnet6-cpu 5 ep | square | 10 % | nad (lr 0.1x, 200 steps) | 0.780 ± 0.000 (n=2) ")
    assert lines[3].endswith("| removed 2 · redirected 0 · kept 0 | 0.8987 · 0.0214 |")
    assert lines[4].endswith("| removed 0 · redirected 0 · kept 2 | - |") and len(lines) == 5
    summary["dataset"] = "fashion-mnist"
    assert all(line.endswith("| - |") for line in leaderboard_table(summary).splitlines()[2:])


def test_reference_rows_are_models_over_seeds_beside_backdoorbenchs_no_defence_cell():
    """Each model counts once however many defences the grid ran on it; CA and ASR as mean ± t interval over seeds."""
    rows = []
    for seed, (ca, asr) in enumerate(((0.88, 0.60), (0.90, 0.70), (0.89, 0.80))):
        for ft_lr in ("0.1x", "1x"):  # two fine-tunings of each model: one model
            base = dict(train_epochs=11, trigger="square", seed=seed, ft_lr=ft_lr)
            rows.append(base | dict(poison_rate=0.0, clean_acc=ca + 0.01, asr=0.01))
            rows.append(base | dict(poison_rate=0.01, clean_acc=ca, asr=asr))
    lines = reference_table(pd.DataFrame(rows)).splitlines()
    # CA 0.89, sd 0.01: half-width 4.303 * 0.01 / sqrt(3) = 0.0248; ASR 0.70, sd 0.1: 0.2484
    assert lines[2] == "| 11 | clean | 0 % | 0.900 ± 0.025 (n=3) | - | - | - |"
    assert lines[3] == "| 11 | square | 1 % | 0.890 ± 0.025 (n=3) | 0.700 ± 0.248 (n=3) | 0.9314 | 0.7473 |"
