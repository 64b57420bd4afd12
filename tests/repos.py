"""Copies of this repository with a shrunk pipeline, for the tests that run DVC (test_e2e, test_slurm)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
ENV = {
    **os.environ,
    "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
    "DVC_NO_ANALYTICS": "1",
    "OMP_NUM_THREADS": "1",  # identical float sums whatever runs beside
    "GIT_AUTHOR_NAME": "test",
    "GIT_AUTHOR_EMAIL": "test@example.com",
    "GIT_COMMITTER_NAME": "test",
    "GIT_COMMITTER_EMAIL": "test@example.com",
}


def run(cwd: Path, *cmd: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, env=env or ENV, capture_output=True, text=True)


def sh(cwd: Path, *cmd: str, env: dict | None = None) -> str:
    result = run(cwd, *cmd, env=env)
    assert result.returncode == 0, f"{' '.join(cmd)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout + result.stderr


def executed(output: str) -> list[str]:
    """The stages DVC ran, from its output."""
    return re.findall(r"Running stage '([^']+)'", output)


def edit_params(repo: Path, change: Callable[[dict], None]) -> None:
    params = yaml.safe_load((repo / "params.yaml").read_text())
    change(params)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def shrink(params: dict) -> None:
    """A tiny pipeline: one epoch on 1,500 images; a grid of one trigger at rates 0 and 10 %, no detectors
    (tests add them, on small budgets)."""
    small_train = {"batch_size": 128, "subset": 1500}
    params["train"].update(small_train, epochs=1)
    params["threads"] = params["grid"]["settings"]["threads"] = 1  # identical float sums whatever runs beside
    params["finetune"].update(epochs=1, clean_size=300)
    params["detectors"]["strip"].update(num_blends=8, num_inputs=50, num_clean=100)
    params["detectors"]["neural-cleanse"].update(steps=2, num_images=64)
    grid = params["grid"]
    grid.update(trigger=["checker"], poison_rate=[0.0, 0.1], ft_clean_size=[300], detectors=[], train_epochs=[1])
    grid["settings"]["train"].update(small_train, eval_every_epoch=True)  # the paper preset's logging
    grid["settings"]["finetune"].update(epochs=1)


def make_copy(dest: Path, change: Callable[[dict], None] = shrink) -> Path:
    """The repository as a fresh clone would see it (tracked and not-ignored files, no results), with
    ``change`` applied to params.yaml, the grid planned, one commit."""
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split("\0")
    for name in filter(None, files):
        source = ROOT / name
        if source.is_file() and not name.startswith(("reports/", "grid/", "logs/")) and not name.endswith("dvc.lock"):
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    edit_params(dest, change)
    sh(dest, "python", "stages/plan_grid.py")
    sh(dest, "git", "init", "-q")
    sh(dest, "git", "add", "-A")
    sh(dest, "git", "commit", "-qm", "copy")
    return dest
