"""Stage scripts: bad input exits 2 with one line naming the problem, no traceback, no output left."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from backdoor.files import atomic_dir, atomic_path, write_json

ROOT = Path(__file__).resolve().parents[1]


def run_stage(tmp_path: Path, script: str, *args: str, **param_changes) -> subprocess.CompletedProcess:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["train"]["subset"] = None  # the whole training set: these tests store a few dozen images
    params.update(param_changes)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    return subprocess.run(
        [sys.executable, str(ROOT / "stages" / script), "--params", str(tmp_path / "params.yaml"), *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )


@pytest.mark.parametrize(
    "script, change, message",
    [
        ("check.py", {"trigger": "chekcer"}, "error: trigger: unknown value 'chekcer'; valid choices:"),
        ("check.py", {"poison_rate": 2}, "error: poison_rate: must be a number in [0, 1], got 2"),
        ("check.py", {"target": 12}, "error: target: class 12 is outside this dataset's classes 0..9"),
        ("check.py", {"trigger_size": 40}, "error: trigger_size: 40 px is larger than the 28x28 image"),
        ("download.py", {"dataset": "mnist"}, "error: dataset: unknown value 'mnist'; valid choices:"),
        ("train.py", {"arch": "resnet-9000"}, "error: arch: unknown value 'resnet-9000'"),
        ("train.py", {"regularizer": "dropout"}, "error: regularizer: unknown value 'dropout'"),
    ],
)
def test_bad_params_fail_before_work(tmp_path, script, change, message):
    args = {
        "check.py": ["--out", "raw", "--plan", "none"],
        "download.py": ["--out", "raw", "--downloads", "dl"],
        "train.py": ["--raw", "dl", "--out", "raw"],
    }[script]
    result = run_stage(tmp_path, script, *args, **change)
    assert result.returncode == 2
    assert result.stderr.strip().startswith(message), result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "raw").exists() and not (tmp_path / "dl").exists()


def test_the_check_stage_writes_one_fixed_line(tmp_path):
    (tmp_path / "out.txt").write_text("params.yaml is valid (stages/check.py)\n")
    before = (tmp_path / "out.txt").stat().st_mtime_ns
    result = run_stage(tmp_path, "check.py", "--out", "out.txt", "--plan", "none")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out.txt").stat().st_mtime_ns == before  # not even rewritten: nothing downstream changes


def test_missing_dataset_gives_clear_message(tmp_path):
    result = run_stage(tmp_path, "poison.py", "--raw", "nowhere", "--out", "poisoned")
    assert result.returncode == 2
    assert "missing dataset manifest nowhere/manifest.json: run the download stage" in result.stderr
    assert not (tmp_path / "poisoned").exists()


def test_corrupt_dataset_file_is_rejected(tmp_path):
    from backdoor.datasets import store_dataset
    from backdoor.datasets.registry import DATASETS

    spec = DATASETS.get("fashion-mnist").factory
    images = torch.zeros(20, 1, 28, 28, dtype=torch.uint8)
    labels = torch.arange(20) % 10
    store_dataset(spec, (images, labels, images[:10], labels[:10]), tmp_path / "raw", source="test")
    with open(tmp_path / "raw" / "train.pt", "r+b") as f:  # flip one byte
        f.seek(100)
        byte = f.read(1)
        f.seek(100)
        f.write(bytes([byte[0] ^ 0xFF]))
    result = run_stage(tmp_path, "poison.py", "--raw", "raw", "--out", "poisoned")
    assert result.returncode == 2
    assert "corrupt file raw/train.pt: sha256 does not match its manifest" in result.stderr
    assert not (tmp_path / "poisoned").exists()


def test_atomic_writes_leave_nothing_on_failure(tmp_path):
    with pytest.raises(RuntimeError):
        with atomic_dir(tmp_path / "out") as tmp:
            (tmp / "half.pt").write_text("partial")
            raise RuntimeError("killed")
    with pytest.raises(RuntimeError):
        with atomic_path(tmp_path / "file.json") as tmp:
            tmp.write_text("{")
            raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []


def test_json_writes_nan_as_null_at_any_depth(tmp_path):
    write_json(tmp_path / "m.json", {"asr": float("nan"), "curve": [0.5, float("nan")], "cell": {"ca": float("nan")}})
    assert json.loads((tmp_path / "m.json").read_text()) == {"asr": None, "curve": [0.5, None], "cell": {"ca": None}}


def test_atomic_dir_replaces_previous_output(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "stale.txt").write_text("old")
    with atomic_dir(tmp_path / "out") as tmp:
        (tmp / "new.txt").write_text("new")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["new.txt"]


def test_saved_tensors_are_byte_identical_across_paths(tmp_path):
    """Equal outputs must hash equal, or DVC reruns everything downstream of a re-run stage."""
    from backdoor.files import save_tensors

    tensors = {"images": torch.arange(12, dtype=torch.uint8).view(3, 4), "labels": torch.tensor([0, 1, 2])}
    first = save_tensors(tmp_path / "a" / "poison.pt", tensors)
    second = save_tensors(tmp_path / "b" / "other-name.pt", tensors)
    assert first == second
    assert (tmp_path / "a" / "poison.pt").read_bytes() == (tmp_path / "b" / "other-name.pt").read_bytes()


def small_dataset(folder: Path, fill: int) -> None:
    from backdoor.datasets import store_dataset
    from backdoor.datasets.registry import DATASETS

    images = torch.full((40, 1, 28, 28), fill, dtype=torch.uint8)
    labels = torch.arange(40) % 10
    store_dataset(
        DATASETS.get("fashion-mnist").factory, (images, labels, images[:10], labels[:10]), folder, source="test"
    )


def test_poisoned_set_from_another_dataset_is_refused(tmp_path):
    """Grid stages depend on the poisoned manifest alone; it pins the dataset it was built from."""
    small_dataset(tmp_path / "raw", fill=0)
    assert run_stage(tmp_path, "poison.py", "--raw", "raw", "--out", "poisoned", poison_rate=0.1).returncode == 0
    small_dataset(tmp_path / "raw", fill=7)  # the dataset changed after poisoning
    small_batches = {**yaml.safe_load((ROOT / "params.yaml").read_text())["train"], "batch_size": 8, "subset": None}
    result = run_stage(
        tmp_path,
        "train.py",
        "--raw",
        "raw",
        "--poisoned",
        "poisoned",
        "--out",
        "model",
        poison_rate=0.1,
        train=small_batches,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "error: poisoned was not built from the dataset in raw: re-run its poison stage" in result.stderr
    assert not (tmp_path / "model").exists()


def test_finetune_without_an_output_is_refused_before_loading(tmp_path):
    result = run_stage(tmp_path, "finetune.py", "--raw", "raw", "--poisoned", "poisoned", "--model", "model.pt")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "error: finetune: give --out (model folder), --report (metrics file) or both" in result.stderr


def test_finetune_lists_must_line_up_before_loading(tmp_path):
    result = run_stage(
        tmp_path,
        "finetune.py",
        "--cell",
        "dataset=fashion-mnist",
        "seed=0",
        "--raw",
        "raw",
        "--poison-rate",
        "0",
        "0.1",
        "--poisoned",
        "p0",
        "--model",
        "m0",
        "m1",
        "--report",
        "r.json",
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "error: finetune: one entry per --model (2) expected in --poisoned (1)" in result.stderr


def stage(cwd: Path, script: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "stages" / script), "--params", "params.yaml", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
    )


def test_a_family_fine_tuned_in_one_run_matches_one_run_per_cell(tmp_path):
    """A grid stage fine-tunes all poison rates of a family in one process: no state may leak between cells."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["grid"]["settings"]["train"].update(batch_size=16, subset=None)
    params["grid"]["train_epochs"] = [1]
    params["grid"]["settings"]["finetune"].update(epochs=1, batch_size=8)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    small_dataset(tmp_path / "raw", fill=0)
    family = [
        "dataset=fashion-mnist",
        "arch=small-cnn",
        "trigger=checker",
        "strategy=all-to-one",
        "regularizer=none",
        "seed=0",
        "train_epochs=1",
    ]
    fine_tuning = ["ft_lr=0.01", "ft_clean_size=12"]

    for rate in ("0.0", "0.1"):
        assert (
            stage(
                tmp_path, "poison.py", "--cell", *family, f"poison_rate={rate}", "--raw", "raw", "--out", f"p{rate}"
            ).returncode
            == 0
        )
        trained = stage(
            tmp_path,
            "train.py",
            "--cell",
            *family,
            f"poison_rate={rate}",
            "--raw",
            "raw",
            "--poisoned",
            f"p{rate}",
            "--out",
            f"m{rate}",
        )
        assert trained.returncode == 0, trained.stderr
    ran = stage(
        tmp_path,
        "finetune.py",
        "--cell",
        *family,
        *fine_tuning,
        "--raw",
        "raw",
        "--poison-rate",
        "0.0",
        "0.1",
        "--poisoned",
        "p0.0",
        "p0.1",
        "--model",
        "m0.0/model.pt",
        "m0.1/model.pt",
        "--report",
        "family.json",
    )
    assert ran.returncode == 0, ran.stderr
    assert (
        stage(
            tmp_path,
            "finetune.py",
            "--cell",
            *family,
            *fine_tuning,
            "poison_rate=0.1",
            "--raw",
            "raw",
            "--poisoned",
            "p0.1",
            "--model",
            "m0.1/model.pt",
            "--report",
            "alone.json",
        ).returncode
        == 0
    )
    family_results, alone = (json.loads((tmp_path / f).read_text()) for f in ("family.json", "alone.json"))
    name = "fashion-mnist_small-cnn_checker_all-to-one_r0.1_none_s0_e1_ftlr0.01_ftn12_ft"
    baseline = "fashion-mnist_small-cnn_checker_all-to-one_r0_none_s0_e1_ftlr0.01_ftn12_ft"
    assert list(family_results) == [baseline, name]
    assert family_results[name] == alone[name]
    assert alone[name]["num_poisoned"] == 4 and family_results[baseline]["num_poisoned"] == 0

    # model.pt records the data it was trained on: a stage that depends on it alone cannot mix them up
    mixed = stage(
        tmp_path,
        "finetune.py",
        "--cell",
        *family,
        *fine_tuning,
        "poison_rate=0.1",
        "--raw",
        "raw",
        "--poisoned",
        "p0.0",
        "--model",
        "m0.1/model.pt",
        "--report",
        "mixed.json",
    )
    assert mixed.returncode == 2 and not (tmp_path / "mixed.json").exists()
    assert (
        mixed.stderr.strip()
        == "error: m0.1/model.pt was not trained on raw and p0.0: re-run its train stage (dvc repro)"
    )


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["--poison-rate", "0", "0.1", "--poisoned", "p0", "p1", "--model", "m0", "m1", "--out", "ft"],
            "finetune: --out keeps one model's weights, got 2 models",
        ),
        (
            [
                "--cell",
                "dataset=fashion-mnist",
                "poison_rate=0.1",
                "seed=0",
                "--poison-rate",
                "0.1",
                "--poisoned",
                "p",
                "--model",
                "m",
                "--report",
                "r.json",
            ],
            "finetune: --poison-rate needs --cell with every other axis (and no poison_rate=)",
        ),
        (
            ["--poison-rate", "0.1", "--poisoned", "p", "--model", "m", "--report", "r.json"],
            "finetune: --poison-rate needs --cell with every other axis (and no poison_rate=)",
        ),
        (
            ["--poison-rate", "0", "0.1", "0.2", "--poisoned", "p0", "p1", "--model", "m0", "m1", "--report", "r.json"],
            "finetune: one entry per --model (2) expected in --poison-rate (3)",
        ),
    ],
)
def test_finetune_argument_combinations_that_cannot_work(args, message, tmp_path):
    """Checked before anything is loaded (none of these paths exists)."""
    (tmp_path / "params.yaml").write_text((ROOT / "params.yaml").read_text())
    result = stage(tmp_path, "finetune.py", "--raw", "raw", *args)
    assert result.returncode == 2
    assert result.stderr.strip() == f"error: {message}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml"]


def test_gzipped_csv_bytes_depend_on_the_table_alone(tmp_path):
    """Detectors' scores are gzipped DVC outputs: the temporary's name or the time in the header would change
    the hash of the same scores from run to run (and make a committed dvc.lock unreproducible)."""
    import pandas as pd

    from backdoor.files import write_csv

    table = pd.DataFrame({"score": [0.5, 0.25], "poisoned": [True, False]})
    write_csv(table, tmp_path / "a.scores.csv.gz")
    write_csv(table, tmp_path / "b" / "other-name.scores.csv.gz")
    assert (tmp_path / "a.scores.csv.gz").read_bytes() == (tmp_path / "b" / "other-name.scores.csv.gz").read_bytes()
    assert pd.read_csv(tmp_path / "a.scores.csv.gz").equals(table)
