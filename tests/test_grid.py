"""The grid: expansion, validation, the planned stages and shards, and the report on known numbers."""

import copy
import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from backdoor.checks import validate_grid as expand_grid
from backdoor.errors import ConfigError
from backdoor.files import read_json, write_json
from backdoor.grid import check_plan, grid_settings
from backdoor.naming import AXES
from backdoor.params import read_params
from backdoor.pipeline.plan import write_plan
from backdoor.report import (
    add_baseline_gap,
    aggregate_metrics,
    cell_results,
    collect,
    epoch_stays_below,
    seed_summary,
    t_critical,
)

ROOT = Path(__file__).resolve().parents[1]
PARAMS = read_params(ROOT / "params.yaml")


def plan_grid(params: dict, grid_dir: Path) -> dict:
    return write_plan(params, expand_grid(params), grid_dir)


def with_grid(**lists):
    params = copy.deepcopy(PARAMS)
    params["grid"].update({"detectors": [], **lists})
    return params


def test_cells_are_the_product_of_the_lists():
    params = with_grid(trigger=["checker", "square"], poison_rate=[0, 0.01, 0.1], seed=[0, 1])
    cells = expand_grid(params)
    assert len(cells) == 2 * 3 * 2
    assert len({c.name for c in cells}) == 12
    assert {c.poison_rate for c in cells} == {0.0, 0.01, 0.1}


@pytest.mark.parametrize(
    "lists, message",
    [
        ({"trigger": []}, "grid.trigger: must be a non-empty list"),
        ({"seed": 0}, "grid.seed: must be a non-empty list"),
        ({"trigger": ["checker", "squar"]}, "grid.trigger: value 'squar' is invalid: trigger: unknown value 'squar'"),
        ({"arch": ["small-cnn", "small-cnn"]}, "grid.arch: duplicated value(s) small-cnn"),
        ({"poison_rate": [0.1, 0.10]}, "grid.poison_rate: duplicated value(s) 0.1"),
        (
            {"poison_rate": [0.1, 1.5]},
            "grid.poison_rate: value 1.5 is invalid: poison_rate: must be a number in [0, 1]",
        ),
        ({"dataset": ["fashion-mnist", "mnist"]}, "grid.dataset: value 'mnist' is invalid"),
    ],
)
def test_bad_lists_fail_before_any_work(lists, message):
    with pytest.raises(ConfigError) as err:
        expand_grid(with_grid(**lists))
    assert str(err.value).startswith(message), str(err.value)


def test_a_combination_that_cannot_work_is_named():
    params = with_grid(dataset=["cifar10", "fashion-mnist"], trigger=["blend", "checker"])
    params["grid"]["settings"]["trigger_size"] = 30  # fits 32 px CIFAR-10, not 28 px Fashion-MNIST
    with pytest.raises(
        ConfigError,
        match="grid: the combination fashion-mnist_small-cnn_checker_.* cannot work: "
        "trigger_size: 30 px is larger than the 28x28 image",
    ):
        expand_grid(params)


def planned_stages(params, tmp_path):
    plan = plan_grid(params, tmp_path / "grid")
    stages = {}
    for shard in sorted((tmp_path / "grid").glob("shard-*/dvc.yaml")):
        for name in yaml.safe_load(shard.read_text())["stages"]:
            stages[name] = shard.parent.name
    return plan, stages


def test_planned_stages_match_the_product(tmp_path):
    params = with_grid(trigger=["checker", "square"], poison_rate=[0, 0.05], arch=["small-cnn", "resnet18"])
    plan, stages = planned_stages(params, tmp_path)
    cells = expand_grid(params)
    assert len(plan["cells"]) == 8
    # 1 dataset + 4 poisoned sets + (2 archs x (1 baseline + 2 poisoned)) trainings
    # + (2 archs x 2 triggers) fine-tunings, each of a family's 2 poison rates
    assert sum(n.startswith("download-") for n in stages) == 1
    assert sum(n.startswith("poison-") for n in stages) == 4
    assert sum(n.startswith("train-") for n in stages) == 6
    assert {n for n in stages if n.startswith("finetune-")} == {f"finetune-{c.family_key}" for c in cells}
    assert plan["num_stages"] == len(stages) == 15


def stage_specs(params, tmp_path) -> dict[str, dict]:
    plan_grid(params, tmp_path / "grid")
    return {
        name: stage
        for shard in (tmp_path / "grid").glob("shard-*/dvc.yaml")
        for name, stage in yaml.safe_load(shard.read_text())["stages"].items()
    }


@pytest.mark.parametrize(
    "axis, added",
    [
        ("trigger", "square"),
        ("arch", "resnet18"),
        ("regularizer", "logit-squeeze"),
        ("seed", 1),
        ("dataset", "cifar10"),
        ("strategy", "all-to-all"),
    ],
)
def test_adding_a_value_leaves_every_existing_stage_as_it_was(tmp_path, axis, added):
    params = with_grid(trigger=["checker"], poison_rate=[0, 0.05])
    before = stage_specs(params, tmp_path / "a")
    params["grid"][axis] = [*params["grid"][axis], added]
    after = stage_specs(params, tmp_path / "b")
    assert {name: after[name] for name in before} == before  # DVC sees nothing changed: only new stages run
    assert len(after) > len(before)


@pytest.mark.parametrize("axis, added", [("ft_lr", 0.05), ("ft_clean_size", 300)])
def test_adding_a_fine_tuning_value_adds_fine_tune_stages_only(tmp_path, axis, added):
    params = with_grid(trigger=["checker", "square"], poison_rate=[0, 0.05])
    before = stage_specs(params, tmp_path / "a")
    params["grid"][axis] = [*params["grid"][axis], added]
    after = stage_specs(params, tmp_path / "b")
    assert {name: after[name] for name in before} == before
    new = set(after) - set(before)
    assert len(new) == 2 and all(name.startswith("finetune-") for name in new)  # one per trigger; no training


def test_adding_a_poison_rate_trains_only_the_new_cells(tmp_path):
    before = stage_specs(with_grid(trigger=["checker"], poison_rate=[0, 0.05]), tmp_path / "a")
    after = stage_specs(with_grid(trigger=["checker"], poison_rate=[0, 0.05, 0.1]), tmp_path / "b")
    changed = sorted(name for name in before if after[name] != before[name])
    new = sorted(set(after) - set(before))
    assert changed == [
        "finetune-fashion-mnist_small-cnn_checker_all-to-one_none_s0_e3_ftlr0.01_ftn0.05_ft"
    ]  # the family
    assert new == [
        "poison-fashion-mnist_checker_all-to-one_r0.1_s0",
        "train-fashion-mnist_small-cnn_checker_all-to-one_r0.1_none_s0_e3",
    ]


def test_adding_a_trigger_keeps_every_existing_stage_in_its_shard(tmp_path):
    _, before = planned_stages(with_grid(trigger=["checker"]), tmp_path / "a")
    _, after = planned_stages(with_grid(trigger=["checker", "square"]), tmp_path / "b")
    assert all(after[name] == shard for name, shard in before.items())
    assert len(after) > len(before)


def test_shrinking_the_grid_removes_empty_shards(tmp_path):
    planned_stages(with_grid(trigger=["checker", "square"], seed=[0, 1, 2]), tmp_path)
    many = len(list((tmp_path / "grid").glob("shard-*")))
    params = with_grid(trigger=["checker"], poison_rate=[0.05])
    params["grid"]["shards"] = 2
    _, stages = planned_stages(params, tmp_path)
    assert len(list((tmp_path / "grid").glob("shard-*"))) <= 2 < many


def test_stages_read_settings_from_the_planned_json_and_depend_on_files(tmp_path):
    plan_grid(with_grid(trigger=["checker"], poison_rate=[0, 0.05]), tmp_path / "grid")
    settings = json.loads((tmp_path / "grid" / "settings.json").read_text())
    assert settings == grid_settings(with_grid())
    for shard in (tmp_path / "grid").glob("shard-*/dvc.yaml"):
        for name, stage in yaml.safe_load(shard.read_text())["stages"].items():
            assert "--params grid/settings.json" in stage["cmd"]
            assert list(stage["params"][0]) == ["grid/settings.json"]
            assert stage["deps"][0] == f"data/code/{name.split('-')[0]}.sha256"
            if name.startswith("finetune-"):  # files it reads, not whole folders; one small file per family
                assert stage["deps"][1:] == [
                    # the baseline's test set
                    "data/grid/poisoned/fashion-mnist_checker_all-to-one_r0_s0/manifest.json",
                    "models/grid/train/fashion-mnist_small-cnn_clean_none_s0_e3/model.pt",  # pins the data it saw
                    "models/grid/train/fashion-mnist_small-cnn_checker_all-to-one_r0.05_none_s0_e3/model.pt",
                ]
                assert stage["outs"] == [
                    "reports/grid/cells/fashion-mnist_small-cnn_checker_all-to-one_none_s0_e3_ftlr0.01_ftn0.05_ft.json"
                ]
                assert "--poison-rate 0.0 0.05 --poisoned" in stage["cmd"]


def test_a_plan_older_than_params_is_refused():
    params = with_grid(trigger=["checker"])
    plan = {"cells": [{"name": c.name} for c in expand_grid(params)]}
    check_plan(params, plan, grid_settings(params))  # up to date
    with pytest.raises(ConfigError, match="out of date"):
        check_plan(with_grid(trigger=["checker", "square"]), plan, grid_settings(params))
    edited = with_grid(trigger=["checker"])
    edited["grid"]["settings"]["finetune"]["epochs"] = 7
    with pytest.raises(ConfigError, match="run `make grid`"):
        check_plan(edited, plan, grid_settings(params))


def write_cell(cells_dir, family, name, ca, asr, ft_ca, ft_asr, n=10000):
    cells_dir.mkdir(parents=True, exist_ok=True)
    robust = lambda asr: None if asr is None else 1 - asr  # noqa: E731 - None: a diverged model's null
    metrics = {
        "clean_acc": ca,
        "asr": asr,
        "robust_acc": robust(asr),
        "finetuned": {"clean_acc": ft_ca, "asr": ft_asr, "robust_acc": robust(ft_asr)},
        "num_poisoned": 0,
        "num_train": 20000,
        "num_test": n,
        "num_triggered_test": 9000,
        "curve": [
            {"epoch": 0, "clean_acc": ca, "asr": asr, "robust_acc": robust(asr)},
            {"epoch": 1, "train_loss": 0.5, "clean_acc": ft_ca, "asr": ft_asr, "robust_acc": robust(ft_asr)},
        ],
    }
    path = cells_dir / f"{family}.json"
    results = json.loads(path.read_text()) if path.exists() else {}
    path.write_text(json.dumps(results | {name: metrics}))


def synthetic_plan(tmp_path):
    params = with_grid(trigger=["checker"], poison_rate=[0, 0.05], seed=[0, 1, 2])
    plan = plan_grid(params, tmp_path / "grid")
    numbers = {
        0: {0.0: (0.90, 0.10), 0.05: (0.88, 0.98)},
        1: {0.0: (0.92, 0.12), 0.05: (0.90, 0.96)},
        2: {0.0: (0.91, 0.11), 0.05: (0.86, 0.94)},
    }
    for cell in plan["cells"]:
        ca, asr = numbers[cell["seed"]][cell["poison_rate"]]
        write_cell(tmp_path / "cells", cell["family_key"], cell["name"], ca, asr, ca - 0.01, asr / 2)
    return plan


def synthetic_table(tmp_path):
    plan = synthetic_plan(tmp_path)
    return add_baseline_gap(collect(plan, cell_results(plan, tmp_path / "cells")))


def test_report_table_on_synthetic_results(tmp_path):
    table = synthetic_table(tmp_path)
    assert len(table) == 6
    assert list(table.columns[: len(AXES) + 1]) == ["cell", *AXES]
    poisoned = table[table["poison_rate"] == 0.05].set_index("seed")
    assert poisoned["clean_acc_gap"].tolist() == pytest.approx([-0.02, -0.02, -0.05])
    assert poisoned["ft_asr"].tolist() == pytest.approx([0.49, 0.48, 0.47])
    # Wald interval of p1 - p0, n = 10000: 1.959964 * sqrt((.88*.12 + .9*.1) / 1e4) = 0.0086681
    assert poisoned.loc[0, "clean_acc_gap_high"] == pytest.approx(-0.02 + 0.0086681, abs=1e-6)
    assert poisoned["gap_significant"].tolist() == [True, True, True]
    assert (table[table["poison_rate"] == 0]["clean_acc_gap"] == 0).all()


def test_seed_summary_mean_and_t_interval(tmp_path):
    table = synthetic_table(tmp_path)
    seeds = seed_summary(table)
    row = seeds[seeds["poison_rate"] == 0.05].iloc[0]
    assert row["n_seeds"] == 3
    assert row["asr_mean"] == pytest.approx(0.96)
    # std of (.98, .96, .94) = 0.02; t(2) = 4.303; half width = 4.303 * 0.02 / sqrt(3) = 0.049687
    assert row["asr_high"] - row["asr_mean"] == pytest.approx(0.049687, abs=1e-5)
    assert (row["asr_min"], row["asr_max"]) == pytest.approx((0.94, 0.98))
    assert t_critical(2) == 4.303 and t_critical(100) == pytest.approx(1.96, abs=1e-3)


def test_report_ignores_cells_removed_from_the_grid(tmp_path):
    plan = synthetic_plan(tmp_path)
    write_cell(tmp_path / "cells", plan["cells"][0]["family_key"], "stale_cell_no_longer_planned", 0.5, 0.5, 0.5, 0.5)
    write_cell(tmp_path / "cells", "stale_family", "stale_cell", 0.5, 0.5, 0.5, 0.5)
    assert len(collect(plan, cell_results(plan, tmp_path / "cells"))) == 6


def test_a_missing_cell_result_is_named(tmp_path):
    plan = synthetic_plan(tmp_path)
    cell = plan["cells"][1]
    family = tmp_path / "cells" / f"{cell['family_key']}.json"
    results = json.loads(family.read_text())
    family.write_text(json.dumps({k: v for k, v in results.items() if k != cell["name"]}))
    with pytest.raises(ConfigError, match=f"{cell['family_key']}.json has no result for cell {cell['name']}: re-run"):
        cell_results(plan, tmp_path / "cells")
    family.unlink()
    with pytest.raises(
        ConfigError, match=f"missing fine-tuning results .*{cell['family_key']}.json: run its fine-tune"
    ):
        cell_results(plan, tmp_path / "cells")


def test_report_without_baselines_says_unknown_not_none(tmp_path):
    """A grid without rate-0 cells has no clean-accuracy gap: empty in summary.csv, null in metrics.json."""
    plan = synthetic_plan(tmp_path)
    plan["cells"] = [cell for cell in plan["cells"] if cell["poison_rate"] > 0]
    table = add_baseline_gap(collect(plan, cell_results(plan, tmp_path / "cells")))
    assert table["clean_acc_gap"].isna().all() and table["gap_significant"].isna().all()
    metrics = aggregate_metrics(table)
    assert metrics["baselines"] == 0 and metrics["cells_with_visible_gap"] is None
    assert metrics["mean_clean_acc_gap"] is None and metrics["mean_asr"] == pytest.approx(0.96)
    json.dumps(metrics, allow_nan=False)  # valid JSON


def test_the_epoch_from_which_asr_stays_below_a_threshold():
    """A dip that comes back is not a removal (WaNet's ASR fell below 0.2 and rose to 0.43-0.52 in the old runs)."""
    curve = [
        {"epoch": 0, "asr": 0.99},
        {"epoch": 1, "asr": 0.1},
        {"epoch": 2, "asr": 0.5},
        {"epoch": 3, "asr": 0.15},
        {"epoch": 4, "asr": 0.1},
    ]
    assert epoch_stays_below(curve) == 3
    assert epoch_stays_below(curve[:3]) is None  # below at epoch 1, back up at the end
    assert epoch_stays_below(curve, threshold=0.995) == 0
    assert epoch_stays_below([{"epoch": 0, "asr": 0.9}, {"epoch": 1, "asr": None}]) is None  # diverged


def test_detector_stages_per_model_and_what_they_depend_on(tmp_path):
    params = with_grid(
        trigger=["checker", "square"], poison_rate=[0, 0.05], detectors=["spectral", "strip", "neural-cleanse"]
    )
    stages = stage_specs(params, tmp_path)
    detect = sorted(name for name in stages if name.startswith("detect-"))
    # spectral and Neural Cleanse once per model (3); STRIP once per poisoned model and once per trigger on
    # the clean baseline, whose triggered test inputs depend on the trigger (4)
    assert len(detect) == 3 + 3 + 4 and len([n for n in stages if n.startswith("features-")]) == 3
    assert "detect-strip-fashion-mnist_small-cnn_clean_none_s0_e3_square_all-to-one" in detect
    baseline_nc = stages["detect-neural-cleanse-fashion-mnist_small-cnn_clean_none_s0_e3"]
    assert "--poisoned" not in baseline_nc["cmd"] and "trigger=" not in baseline_nc["cmd"]  # no trigger involved
    assert baseline_nc["outs"][1].endswith(".scores.csv.gz") and baseline_nc["outs"][2].endswith(
        ".png"
    )  # reversed trigger
    spectral = stages["detect-spectral-fashion-mnist_small-cnn_checker_all-to-one_r0.05_none_s0_e3"]
    assert spectral["deps"][1:] == [
        "models/grid/train/fashion-mnist_small-cnn_checker_all-to-one_r0.05_none_s0_e3/model.pt",
        "data/grid/features/fashion-mnist_small-cnn_checker_all-to-one_r0.05_none_s0_e3/manifest.json",
    ]
    assert spectral["params"] == [
        {
            "grid/settings.json": [
                "grid.settings.train.subset",
                "grid.settings.target",
                "grid.settings.threads",
                "detectors.spectral",
            ]
        }
    ]


def test_adding_a_detector_or_changing_its_settings_touches_its_own_stages_only(tmp_path):
    params = with_grid(trigger=["checker"], poison_rate=[0, 0.05], detectors=["spectral"])
    before = stage_specs(params, tmp_path / "a")
    params["grid"]["detectors"] = ["spectral", "neural-cleanse"]
    after = stage_specs(params, tmp_path / "b")
    assert {name: after[name] for name in before} == before
    assert sorted(set(after) - set(before)) == [
        "detect-neural-cleanse-fashion-mnist_small-cnn_checker_all-to-one_r0.05_none_s0_e3",
        "detect-neural-cleanse-fashion-mnist_small-cnn_clean_none_s0_e3",
    ]
    # settings are a params dependency of the detector's stages alone (read from grid/settings.json)
    assert all(
        "detectors.spectral" not in str(stage.get("params"))
        for name, stage in after.items()
        if not name.startswith("detect-spectral")
    )


def test_a_folder_datasets_images_are_a_dependency_of_its_download(tmp_path):
    images = tmp_path / "pets"
    for name in ("cat", "dog"):
        (images / name).mkdir(parents=True)
        (images / name / "0.png").write_bytes(b"")  # a class folder holds images (read at download, not here)
    params = with_grid(dataset=[f"folder:{images}"], trigger=["blend"], poison_rate=[0.1])
    params["grid"]["settings"]["image_size"] = 16
    params["grid"]["settings"]["train"]["subset"] = None
    stages = stage_specs(params, tmp_path)
    download = next(stage for name, stage in stages.items() if name.startswith("download-folder-"))
    assert download["deps"] == ["data/code/download.sha256", str(images)]


def test_a_diverged_cell_has_empty_metrics_and_is_counted(tmp_path):
    """A diverged model's stage writes null metrics (backdoor.evaluation): the report keeps the row, empty."""
    plan = synthetic_plan(tmp_path)
    cell = next(c for c in plan["cells"] if c["poison_rate"] > 0 and c["seed"] == 1)
    write_cell(tmp_path / "cells", cell["family_key"], cell["name"], None, None, None, None)
    table = add_baseline_gap(collect(plan, cell_results(plan, tmp_path / "cells")))
    row = table.set_index("cell").loc[cell["name"]]
    assert pd.isna(row["clean_acc"]) and pd.isna(row["ft_asr"]) and pd.isna(row["ft_epoch_asr_stays_below_0.2"])
    assert pd.isna(row["clean_acc_gap"])
    metrics = aggregate_metrics(table)
    assert metrics["diverged_cells"] == 1 and metrics["mean_asr"] == pytest.approx((0.98 + 0.94) / 2)
    write_json(tmp_path / "metrics.json", metrics)
    assert read_json(tmp_path / "metrics.json")["diverged_cells"] == 1


def test_replanning_drops_the_lock_entries_of_stages_it_removed(tmp_path):
    """DVC keeps a removed stage's dvc.lock entry; a committed lock would carry it for good (no run rewrites it)."""
    from backdoor.pipeline.plan import prune_lock

    lock = tmp_path / "dvc.lock"
    lock.write_text(yaml.safe_dump({"schema": "2.0", "stages": {"kept": {"cmd": "a"}, "gone": {"cmd": "b"}}}))
    before = lock.read_text()
    prune_lock(lock, {"kept", "gone"})
    assert lock.read_text() == before  # nothing to drop: untouched
    prune_lock(lock, {"kept"})
    assert yaml.safe_load(lock.read_text()) == {"schema": "2.0", "stages": {"kept": {"cmd": "a"}}}


def _param_value(settings: dict, dotted: str):
    value = settings
    for key in dotted.split("."):
        if not isinstance(value, dict) or key not in value:
            raise KeyError(f"{dotted} is not in grid/settings.json")
        value = value[key]
    return value


def test_a_model_two_presets_both_train_is_one_stage_so_the_run_cache_serves_the_second():
    """Presets that reuse another's models (verdicts and defences on the core's or the reference model's trainings)
    rely on DVC's run-cache: a training or poisoning stage planned by two presets must be the same stage, command,
    dependencies and the values of every setting it reads. Fine-tune stages may differ: a family's stage tunes every
    poison rate its grid has."""
    from backdoor.pipeline.plan import grid_stages
    from tests.conftest import preset_params_as_originals

    plans = {}
    for preset in sorted(p.stem for p in (ROOT / "presets").glob("*-cpu.yaml")):
        params = preset_params_as_originals(preset)  # a fresh clone has no extracted copies to list
        stages = grid_stages(expand_grid(params), params)
        models = {name: stage for name, stage in stages.items() if name.startswith(("train-", "poison-", "perturb-"))}
        plans[preset] = (models, grid_settings(params))
    shared_models = 0
    for first, (stages, settings) in plans.items():
        for second, (other_stages, other_settings) in plans.items():
            if first >= second:
                continue
            for name in stages.keys() & other_stages.keys():
                shared_models += 1
                assert stages[name] == other_stages[name], f"{name}: {first} and {second} plan it differently"
                keys = [key for dep in stages[name].get("params", []) for keys in dep.values() for key in keys]
                for key in keys:
                    assert _param_value(settings, key) == _param_value(other_settings, key), (
                        f"{name} reads {key}, which {first} and {second} set differently"
                    )
    assert shared_models > 100  # the reuse this test guards exists
