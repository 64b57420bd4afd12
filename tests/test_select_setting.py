"""tools/select_setting.py: the validation split never touches the test set; the choice rule."""

import json
import subprocess
import sys
from pathlib import Path

import torch
import yaml

from backdoor.datasets import Dataset, Split, store_dataset
from backdoor.datasets.registry import dataset_spec
from backdoor.presets import preset_params
from tools import select_setting

ROOT = Path(__file__).resolve().parents[1]


def toy_dataset(n_train: int = 300, n_test: int = 50) -> Dataset:
    gen = torch.Generator().manual_seed(0)
    images = lambda n: torch.randint(0, 256, (n, 1, 28, 28), dtype=torch.uint8, generator=gen)  # noqa: E731
    return Dataset(
        "fashion-mnist",
        tuple(str(i) for i in range(10)),
        Split(images(n_train), torch.arange(n_train) % 10),
        Split(images(n_test), torch.arange(n_test) % 10),
    )


def store_toy_dataset(raw: Path) -> None:
    """The toy dataset stored as the download stage stores one (the tools read a --raw folder)."""
    data = toy_dataset()
    store_dataset(
        dataset_spec("fashion-mnist"),
        (data.train.images, data.train.labels, data.test.images, data.test.labels),
        raw,
        "generated",
    )


def test_validation_split_holds_out_training_images_only():
    data = toy_dataset()
    split = select_setting.validation_split(data, 100, seed=0)
    assert len(split.train) == 200 and len(split.test) == 100
    rows = lambda s: {tuple(x.flatten().tolist()) for x in s.images}  # noqa: E731
    assert rows(split.train).isdisjoint(rows(split.test))
    assert rows(split.train) | rows(split.test) == rows(data.train)
    assert rows(split.test).isdisjoint(rows(data.test))
    again = select_setting.validation_split(data, 100, seed=0)
    assert torch.equal(again.test.images, split.test.images)


def test_select_takes_the_strongest_value_within_tolerance():
    baseline = {"clean_acc": 0.90}
    runs = [
        {"value": -10.0, "clean_acc": 0.40},
        {"value": -1.0, "clean_acc": 0.875},
        {"value": -0.1, "clean_acc": 0.89},
        {"value": -0.01, "clean_acc": 0.905},
    ]
    assert select_setting.select(runs, baseline, tolerance=2.0)["value"] == -0.1
    assert select_setting.select(runs, baseline, tolerance=3.0)["value"] == -1.0
    assert select_setting.select(runs[:1], baseline, tolerance=2.0) is None


def test_tool_runs_and_writes_its_choice(tmp_path):
    store_toy_dataset(tmp_path / "raw")
    params = preset_params("regularizers-cpu", ROOT)
    params["grid"]["settings"]["train"].update(subset=None, batch_size=64)
    params["grid"]["train_epochs"] = [1]
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    out = tmp_path / "choice.json"
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "tools" / "select_setting.py"),
            "--params",
            str(tmp_path / "params.yaml"),
            "--raw",
            str(tmp_path / "raw"),
            "--regularizer",
            "snnl",
            "--key",
            "factor",
            "--values",
            "-1",
            "-0.1",
            "--validation",
            "100",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    assert [r["value"] for r in report["runs"]] == [-1.0, -0.1]
    assert report["validation_images"] == 100 and set(report["none"]) == {"clean_acc", "asr"}
    assert all(run["term_to_ce"] == abs(run["snnl_term"]) / run["ce"] for run in report["runs"])  # SNNL's share

    # A second regularizer reuses none's scores; a report of another split is refused before any training.
    tool = [
        sys.executable,
        str(ROOT / "tools" / "select_setting.py"),
        "--params",
        str(tmp_path / "params.yaml"),
        "--raw",
        str(tmp_path / "raw"),
        "--regularizer",
        "logit-squeeze",
        "--key",
        "weight",
        "--values",
        "0.5",
        "--none-from",
        str(out),
    ]
    again = subprocess.run(
        tool + ["--validation", "100", "--out", str(tmp_path / "ls.json")], capture_output=True, text=True
    )
    assert again.returncode == 0, again.stderr
    assert json.loads((tmp_path / "ls.json").read_text())["none"] == report["none"]
    refused = subprocess.run(tool + ["--validation", "50"], capture_output=True, text=True)
    assert refused.returncode == 2 and "--none-from:" in refused.stderr and "on 100 images" in refused.stderr
    missing = subprocess.run(tool[:-1] + [str(tmp_path / "missing.json")], capture_output=True, text=True)
    assert missing.returncode == 2 and "--none-from: cannot read a selection report" in missing.stderr


def test_unknown_setting_is_refused(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "tools" / "select_setting.py"),
            "--preset",
            "regularizers-cpu",
            "--regularizer",
            "snnl",
            "--key",
            "fator",
            "--values",
            "-1",
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert "regularizers.snnl" in result.stderr and "'fator'" in result.stderr
    assert "valid choices: cos_distance, factor, layers, optimize_temperature, stabilized, temperature" in result.stderr


def test_bad_regularizer_or_value_fails_before_training(tmp_path):
    tool = [
        sys.executable,
        str(ROOT / "tools" / "select_setting.py"),
        "--preset",
        "regularizers-cpu",
        "--raw",
        str(tmp_path / "missing"),
    ]
    result = subprocess.run(
        tool + ["--regularizer", "snl", "--key", "factor", "--values", "-1"], capture_output=True, text=True
    )
    assert result.returncode == 2 and "--regularizer: unknown value 'snl'; valid choices:" in result.stderr
    result = subprocess.run(
        tool + ["--regularizer", "snnl", "--key", "temperature", "--values", "-1"], capture_output=True, text=True
    )
    assert result.returncode == 2 and "temperature" in result.stderr and "manifest" not in result.stderr


def test_train_recipe_scores_on_held_out_images_unless_told_test(tmp_path):
    store_toy_dataset(tmp_path / "raw")
    tool = [
        sys.executable,
        str(ROOT / "tools" / "train_recipe.py"),
        "small-cnn",
        "--raw",
        str(tmp_path / "raw"),
        "--epochs",
        "2",
        "--batch-size",
        "64",
        "--flip",
        "true",
        "--threads",
        "1",
        "--out",
        str(tmp_path / "log.jsonl"),
    ]
    for extra in (["--validation", "100"], ["--test"]):
        result = subprocess.run(tool + extra, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
    held_out, tested = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]  # appended
    assert held_out["num_train"] == 200 and held_out["scored_on"] == "100 held-out training images"
    assert tested["num_train"] == 300 and tested["scored_on"] == "test"
    assert "raw" not in held_out and len(held_out["train_sha256"]) == 64  # the data by checksum, not a local path
    for record in (held_out, tested):
        assert record["loop"]["flip"] is True and record["loop"]["epochs"] == 2 and len(record["epoch_seconds"]) == 2


def test_train_recipe_trains_with_a_named_recipe_and_model_settings(tmp_path):
    store_toy_dataset(tmp_path / "raw")
    tool = [sys.executable, str(ROOT / "tools" / "train_recipe.py"), "small-cnn", "--raw", str(tmp_path / "raw")]
    options = ["--recipe", "airbench", "--batch-size", "64", "--model-setting", "widths=[4, 8, 8]", "--threads", "1"]
    result = subprocess.run(
        [*tool, *options, "--epochs", "1", "--validation", "100", "--out", str(tmp_path / "log.jsonl")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    record = json.loads((tmp_path / "log.jsonl").read_text())
    assert record["recipe"] == "airbench" and record["model_settings"] == {"widths": [4, 8, 8]}
    refused = subprocess.run([*tool, "--model-setting", "widths"], capture_output=True, text=True)
    assert refused.returncode == 2 and "KEY=VALUE" in refused.stderr
    # a bad setting is refused before the dataset is read: the --raw folder here does not exist
    for bad, message in ((["--model-setting", "depth=3"], "models.small-cnn.depth"), (["--recipe", "adam"], "recipe")):
        cmd = [*tool[:-1], str(tmp_path / "missing"), *bad]
        refused = subprocess.run(cmd, capture_output=True, text=True)
        assert refused.returncode != 0 and message in refused.stderr and "manifest" not in refused.stderr
