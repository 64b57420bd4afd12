"""The benchmarks run end to end in their smoke modes (seconds on a CPU)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from benchmarks import dvc_bookkeeping, train_throughput

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "train_throughput.py"
RATIO = re.compile(r"^ratio \(ours / DataLoader\): \d+\.\d\dx$", re.M)


@pytest.fixture
def bench():
    threads = torch.get_num_threads()
    yield train_throughput
    torch.set_num_threads(threads)


def test_smoke_run_prints_both_rates_and_the_ratio():
    env = dict(os.environ, OMP_NUM_THREADS="1")
    out = subprocess.run(
        [sys.executable, str(SCRIPT), "--smoke"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        cwd=SCRIPT.parents[1],
    )
    assert out.returncode == 0, out.stderr
    assert RATIO.search(out.stdout), out.stdout
    assert re.search(r"^ours \(uint8 on the device, batched augmentation\): [\d,.]+ images/s$", out.stdout, re.M)
    assert re.search(r"^torchvision Dataset \+ DataLoader \(2 workers\): [\d,.]+ images/s$", out.stdout, re.M)
    assert "forward FLOPs/image:" in out.stdout


def test_smoke_run_on_a_stored_dataset(bench, tmp_path, capsys):
    from backdoor.datasets import store_dataset
    from backdoor.datasets.registry import DATASETS

    images = torch.randint(0, 256, (5, 3, 32, 32), dtype=torch.uint8)
    labels = torch.tensor([0, 1, 2, 3, 9])
    store_dataset(
        DATASETS.get("cifar10").factory, (images, labels, images[:2], labels[:2]), tmp_path / "raw", source="test"
    )
    result = bench.main(
        ["--smoke", "--data", str(tmp_path / "raw"), "--num-workers", "0", "--threads", "1", "--device", "cpu"]
    )
    out = capsys.readouterr().out
    assert RATIO.search(out) and "cycled to 32 images" in out
    assert result["ours_images_per_s"] > 0 and result["dataloader_images_per_s"] > 0
    assert "ours_mfu" not in result  # MFU only on CUDA


def test_argument_modes(bench):
    epoch = bench.parse_args(["--cifar10-epoch", "--batch-size", "512"])
    assert (epoch.arch, epoch.dataset_shape, epoch.steps) == ("resnet18", (3, 32, 32), 98)  # ceil(50000 / 512)
    assert bench.parse_args(["--dataset-shape", "3x64x48"]).dataset_shape == (3, 64, 48)
    assert bench.parse_args([]).dataset_shape == (1, 28, 28) and bench.parse_args([]).peak_tflops == 989
    with pytest.raises(SystemExit):
        bench.parse_args(["--dataset-shape", "huge"])


def test_bookkeeping_stand_in_writes_each_planned_stages_files(tmp_path):
    """The shell stand-in for `python stages/<step>.py` parses the planned commands as the real scripts do:
    a training without --poisoned is a baseline (fewer logged metrics), a fine-tune writes its --report."""
    bench = dvc_bookkeeping
    bench.scratch_repo(tmp_path, SCRIPT.parents[1] / "params.yaml")
    env = dict(os.environ, PATH=f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    for shard in sorted((tmp_path / "grid").glob("shard-*/dvc.yaml")):
        for name, stage in yaml.safe_load(shard.read_text())["stages"].items():
            subprocess.run(stage["cmd"], shell=True, cwd=tmp_path, env=env, check=True)
            for out in stage["outs"]:
                if bench.is_file_output(out):
                    assert (tmp_path / out).is_file(), name
                else:
                    written = sorted(
                        p.relative_to(tmp_path / out).as_posix() for p in (tmp_path / out).rglob("*") if p.is_file()
                    )
                    assert written == bench.output_files(name), name


def test_time_stages_records_each_stage_that_ran(tmp_path):
    """tools/time_stages.py on a two-stage DVC repository: one row per stage run, with its seconds."""
    from .repos import ENV, sh

    (tmp_path / "dvc.yaml").write_text(
        yaml.safe_dump(
            {
                "stages": {
                    "slow": {"cmd": "sleep 1 && echo a > a.txt", "outs": ["a.txt"]},
                    "fast": {"cmd": "cp a.txt b.txt", "deps": ["a.txt"], "outs": ["b.txt"]},
                }
            }
        )
    )
    sh(tmp_path, "git", "init", "-q")
    sh(tmp_path, "dvc", "init", "-q")
    out = subprocess.run(
        [sys.executable, str(SCRIPT.parents[1] / "tools" / "time_stages.py"), "--out", "times.csv"],
        cwd=tmp_path,
        env=ENV,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    times = pd.read_csv(tmp_path / "times.csv")
    assert list(times["stage"]) == ["slow", "fast"] and times["seconds"][0] >= 1.0
    again = subprocess.run(
        [sys.executable, str(SCRIPT.parents[1] / "tools" / "time_stages.py"), "--out", "t2.csv"],
        cwd=tmp_path,
        env=ENV,
        capture_output=True,
        text=True,
    )
    assert again.returncode == 0 and pd.read_csv(tmp_path / "t2.csv").empty  # nothing ran


def test_time_stages_reads_the_stage_times_back_from_a_killed_runs_log(tmp_path):
    """A run killed before time_stages wrote its file: each started stage's own seconds from the saved output; the
    last stage, killed before it printed its time, is kept with blanks."""
    log = tmp_path / "run.log"
    log.write_text(
        "Running stage 'grid/shard-01/dvc.yaml:train-a':\n> python stages/train.py\nepoch 1\n"
        "stage time: wall 12.5 s, cpu 24.0 s\nRunning stage 'report':\n> python stages/report.py\n"
    )
    out = subprocess.run(
        [sys.executable, str(SCRIPT.parents[1] / "tools" / "time_stages.py"), "--log", str(log), "--out", "t.csv"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    times = pd.read_csv(tmp_path / "t.csv")
    assert list(times["stage"]) == ["grid/shard-01/dvc.yaml:train-a", "report"]
    assert list(times["stage_seconds"][:1]) == [12.5] and list(times["cpu_seconds"][:1]) == [24.0]
    assert times["seconds"].isna().all() and times["stage_seconds"].isna().tolist() == [False, True]


def test_gpu_benchmark_without_cuda_says_so_in_one_line_and_exits_0():
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.gpu"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=SCRIPT.parents[1],
        env=dict(os.environ, CUDA_VISIBLE_DEVICES=""),
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines() == [
        "bench-gpu: no CUDA device here (torch.cuda.is_available() is False): nothing measured"
    ]


def photo_tree(root: Path, classes: int = 3, train: int = 12, test: int = 4) -> Path:
    """An ImageFolder tree of random 32-px PNGs (train/<class>/, test/<class>/)."""
    from PIL import Image

    g = torch.Generator().manual_seed(0)
    for split, count in (("train", train), ("test", test)):
        for c in range(classes):
            (root / split / f"class{c}").mkdir(parents=True)
            for i in range(count):
                pixels = torch.randint(0, 256, (32, 32, 3), dtype=torch.uint8, generator=g).numpy()
                Image.fromarray(pixels).save(root / split / f"class{c}" / f"{i}.png")
    return root


@pytest.mark.slow
def test_gpu_benchmark_runs_every_part_at_toy_size_on_the_cpu(tmp_path):
    """--device cpu --tiny: the throughput rows, the ResNet-18 recipe and the paper cell's stages, in one file."""
    from benchmarks import gpu

    tree = photo_tree(tmp_path / "photos")
    result = gpu.main(["--device", "cpu", "--tiny", "--dataset", f"folder:{tree}", "--out", str(tmp_path / "gpu.json")])
    saved = json.loads((tmp_path / "gpu.json").read_text())
    assert saved["throughput"][0]["arch"] == "small-cnn" and saved["throughput"][0]["ratio"] > 0
    recipe = saved["resnet18_cifar10"]
    assert recipe["num_train"] == 36 and len(recipe["epoch_seconds"]) == 1 and 0 <= recipe["test_accuracy"] <= 1
    cell = saved["paper_cell"]
    assert list(cell["stage_seconds"]) == list(gpu.PAPER_STAGES) and 0 <= cell["asr"] <= 1
    assert set(saved["airbench_cifar10"]) == {"airbench93", "airbench94"}
    assert all(0 <= run["clean_acc_no_tta"] <= 1 and run["steps"] > 0 for run in saved["airbench_cifar10"].values())
    assert result["paper_cell"]["total_seconds"] == cell["total_seconds"]


def test_detector_throughput_prints_each_rate_against_the_loop(capsys):
    from benchmarks import detector_throughput

    torch.set_num_threads(1)
    rates = detector_throughput.main(["--smoke"])
    out = capsys.readouterr().out
    assert re.search(r"^STRIP: [\d,]+ blended images/s = \d+\.\d\dx the loop$", out, re.M)
    assert re.search(
        r"^Neural Cleanse: [\d,]+ masked images/s \(forward and backward\) = \d+\.\d\dx the loop$", out, re.M
    )
    assert all(rate > 0 for rate in rates.values())
