"""tools/keep_run.py: a finished run's report and only its own detection files go to reports/presets/<preset>/."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from backdoor.errors import ConfigError
from tools.keep_run import REPORT_FILES, keep_run


def workspace(root: Path) -> Path:
    """A finished run of two cells (spectral on both, Neural Cleanse on the poisoned one) plus a record an
    earlier run left behind."""
    plan = {
        "cells": [
            {"seed": 0, "detection": {"spectral": "clean_s0"}},
            {"seed": 1, "detection": {"spectral": "square_s1", "neural-cleanse": "square_s1"}},
        ]
    }
    (root / "grid").mkdir(parents=True)
    (root / "grid" / "plan.json").write_text(json.dumps(plan))
    report = root / "reports" / "grid"
    (report / "figures").mkdir(parents=True)
    for name in REPORT_FILES:
        (report / name).write_text(name)
    (report / "figures" / "detection.png").write_bytes(b"png")
    cells = report / "cells" / "detection"
    for detector, key, suffixes in [
        ("spectral", "clean_s0", (".json", ".scores.csv.gz")),
        ("spectral", "square_s1", (".json", ".scores.csv.gz")),
        ("neural-cleanse", "square_s1", (".json", ".scores.csv.gz", ".png")),
        ("spectral", "other_run_s7", (".json", ".scores.csv.gz")),
    ]:
        (cells / detector).mkdir(parents=True, exist_ok=True)
        for suffix in suffixes:
            (cells / detector / f"{key}{suffix}").write_text(f"{detector} {key}")
    return root


def test_it_copies_the_report_and_the_plans_detection_files_only(tmp_path):
    run = workspace(tmp_path / "run")
    dest = tmp_path / "kept"
    dest.mkdir()
    (dest / "RUN.md").write_text("by hand")
    (dest / "detection" / "strip").mkdir(parents=True)
    (dest / "detection" / "strip" / "stale.json").write_text("an earlier run's")
    stage_times = tmp_path / "times.csv"
    stage_times.write_text("stage,seconds\n")
    keep_run(run, dest, stage_times)
    kept = sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file())
    assert kept == sorted(
        [
            "RUN.md",
            "run.json",
            "stage_times.csv",
            "figures/detection.png",
            *REPORT_FILES,
            "detection/spectral/clean_s0.json",
            "detection/spectral/clean_s0.scores.csv.gz",
            "detection/spectral/square_s1.json",
            "detection/spectral/square_s1.scores.csv.gz",
            "detection/neural-cleanse/square_s1.json",
            "detection/neural-cleanse/square_s1.scores.csv.gz",
            "detection/neural-cleanse/square_s1.png",
        ]
    )
    assert (dest / "RUN.md").read_text() == "by hand"
    assert json.loads((dest / "run.json").read_text())["seeds"] == [0, 1]


def test_an_unfinished_run_is_refused_before_anything_is_written(tmp_path):
    run = workspace(tmp_path / "run")
    (run / "reports" / "grid" / "cells" / "detection" / "spectral" / "square_s1.scores.csv.gz").unlink()
    with pytest.raises(ConfigError, match="square_s1.scores.csv.gz is missing"):
        keep_run(run, tmp_path / "kept")
    (run / "reports" / "grid" / "seeds.csv").unlink()
    with pytest.raises(ConfigError, match="lacks seeds.csv"):
        keep_run(run, tmp_path / "kept")
    assert not (tmp_path / "kept").exists()


def test_the_command_refuses_a_path_for_a_preset_and_a_folder_without_a_plan(tmp_path):
    tool = [sys.executable, str(Path(__file__).resolve().parents[1] / "tools" / "keep_run.py")]
    for args, message in (
        (["../elsewhere"], "preset must be a folder name"),
        (["some-preset", "--part", "../seed-0"], "--part must be a folder name"),
        (["some-preset", "--workspace", str(tmp_path)], "--workspace: no "),
    ):
        result = subprocess.run([*tool, *args], capture_output=True, text=True)
        assert result.returncode == 1 and message in result.stderr and len(result.stderr.splitlines()) == 1
    assert not (Path(__file__).resolve().parents[1] / "reports" / "presets" / "some-preset").exists()
