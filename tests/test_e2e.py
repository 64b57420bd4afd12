"""End to end on a copy of this repository with shrunk params: dvc repro, caching, exp run, grid edits.

Slow by nature (it runs the real pipeline through DVC, about 4 minutes on 2 cores) but part of
`make test`: it is the check that the README's commands work on a fresh clone.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
ENV = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "DVC_NO_ANALYTICS": "1",
       "OMP_NUM_THREADS": "1",  # identical float sums in serial and parallel runs
       "GIT_AUTHOR_NAME": "test", "GIT_AUTHOR_EMAIL": "test@example.com",
       "GIT_COMMITTER_NAME": "test", "GIT_COMMITTER_EMAIL": "test@example.com"}
pytestmark = pytest.mark.slow


def sh(cwd: Path, *cmd: str) -> str:
    result = subprocess.run(cmd, cwd=cwd, env=ENV, capture_output=True, text=True)
    assert result.returncode == 0, f"{' '.join(cmd)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout + result.stderr


def executed(output: str) -> list[str]:
    return re.findall(r"Running stage '([^']+)'", output)


def edit_params(repo: Path, change) -> None:
    params = yaml.safe_load((repo / "params.yaml").read_text())
    change(params)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def shrink(params: dict) -> None:
    small_train = {"epochs": 1, "batch_size": 128, "subset": 1500}
    small_finetune = {"epochs": 1, "clean_size": 300}
    params["train"].update(small_train)
    params["finetune"].update(small_finetune)
    grid = params["grid"]
    grid.update(trigger=["checker"], poison_rate=[0.0, 0.1], shards=4)
    grid["settings"]["train"].update(small_train, eval_every_epoch=True)  # the paper preset's logging
    grid["settings"]["finetune"].update(small_finetune)


def make_copy(dest: Path) -> Path:
    """The repository as a fresh clone would see it: tracked and not-ignored files, one commit."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, capture_output=True,
                           text=True, check=True).stdout.split("\0")
    for name in filter(None, files):
        source = ROOT / name
        if source.is_file() and not name.startswith(("reports/", "grid/")) and name != "dvc.lock":
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    edit_params(dest, shrink)
    sh(dest, "git", "init", "-q")
    sh(dest, "git", "add", "-A")
    sh(dest, "git", "commit", "-qm", "copy")
    return dest


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    return make_copy(tmp_path_factory.mktemp("repo"))


def test_repro_runs_every_stage_and_writes_metrics(repo):
    sh(repo, "python", "stages/plan_grid.py")
    out = sh(repo, "dvc", "repro")
    ran = executed(out)
    for stage in ("download", "poison", "train", "finetune", "evaluate", "plot", "report"):
        assert stage in ran
    # code fingerprints, download, poison x2, train x2, fine-tune (one stage for both poison rates)
    assert len([s for s in ran if s.startswith("grid/")]) == 1 + 1 + 2 + 2 + 1
    metrics = json.loads((repo / "reports" / "metrics.json").read_text())
    for key in ("clean_acc", "asr", "robust_acc"):
        assert 0.0 <= metrics[key] <= 1.0 and 0.0 <= metrics["finetuned"][key] <= 1.0
    assert metrics["num_poisoned"] == 3000  # 5% of the 60,000 training images
    for figure in ("training.png", "finetune.png", "samples.png"):
        assert (repo / "reports" / "figures" / figure).stat().st_size > 1000
    summary = pd.read_csv(repo / "reports" / "grid" / "summary.csv")
    assert len(summary) == 2 and set(summary["poison_rate"]) == {0.0, 0.1}
    assert {"clean_acc", "asr", "robust_acc", "ft_clean_acc", "ft_asr", "ft_robust_acc",
            "clean_acc_gap"} <= set(summary.columns)


def test_bookkeeping_benchmark_stubs_write_what_the_real_stages_write(repo):
    spec = importlib.util.spec_from_file_location("dvc_bookkeeping", ROOT / "benchmarks" / "dvc_bookkeeping.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    checked = set()
    for shard in (repo / "grid").glob("shard-*/dvc.yaml"):
        for name, stage in yaml.safe_load(shard.read_text())["stages"].items():
            for out in stage["outs"]:
                assert bench.is_file_output(out) == (repo / out).is_file(), out
                if bench.is_file_output(out):
                    continue
                written = sorted(p.relative_to(repo / out).as_posix() for p in (repo / out).rglob("*") if p.is_file())
                assert written == bench.output_files(name), name
                checked.add("baseline" if "_clean_" in name else name.split("-")[0])
    assert checked == {"download", "poison", "train", "baseline"}


def test_second_repro_executes_nothing(repo):
    out = sh(repo, "dvc", "repro")
    assert executed(out) == [], out


def test_plots_page_renders_offline(repo):
    sh(repo, "dvc", "plots", "show", "-o", "dvc_plots")
    page = (repo / "dvc_plots" / "index.html").read_text()
    assert "cdn.jsdelivr.net" not in page and "vegaEmbed" in page


def test_exp_run_changes_only_what_depends_on_the_trigger(repo):
    sh(repo, "git", "add", "-A")
    sh(repo, "git", "commit", "-qm", "results")
    ran = executed(sh(repo, "dvc", "exp", "run", "-S", "trigger=square"))
    assert "poison" in ran and "train" in ran and "evaluate" in ran
    assert "download" not in ran
    assert not [s for s in ran if s.startswith("grid/") or s == "report"], ran


def test_adding_a_trigger_runs_only_the_new_cells(repo):
    edit_params(repo, lambda p: p["grid"].update(trigger=["checker", "square"]))
    sh(repo, "python", "stages/plan_grid.py")
    ran = executed(sh(repo, "dvc", "repro"))
    new = sorted(s.split(":")[-1].split("-")[0] for s in ran if s.startswith("grid/"))
    # two poisoned sets, one training (the rate-0 baseline is shared), one fine-tuning of both rates
    assert new == ["finetune", "poison", "poison", "train"], ran
    assert "report" in ran and "train" not in ran
    summary = pd.read_csv(repo / "reports" / "grid" / "summary.csv")
    assert sorted(summary["trigger"]) == ["checker", "checker", "square", "square"]


def test_removing_a_trigger_leaves_a_consistent_summary(repo):
    edit_params(repo, lambda p: p["grid"].update(trigger=["square"]))
    sh(repo, "python", "stages/plan_grid.py")
    ran = executed(sh(repo, "dvc", "repro"))
    assert ran == ["report"], ran
    summary = pd.read_csv(repo / "reports" / "grid" / "summary.csv")
    assert list(summary["trigger"]) == ["square", "square"]


def test_stale_plan_is_refused(repo):
    edit_params(repo, lambda p: p["grid"].update(seed=[0, 1]))
    result = subprocess.run(["dvc", "repro", "report"], cwd=repo, env=ENV, capture_output=True, text=True)
    assert result.returncode != 0
    assert "grid/ is out of date with params.yaml (grid, triggers or regularizers): run `make grid`" in (
        result.stdout + result.stderr)
    edit_params(repo, lambda p: p["grid"].update(seed=[0]))
    assert executed(sh(repo, "dvc", "repro")) == ["report"]  # the failed run removed the old report


def test_two_parallel_workers_match_a_serial_run(repo, tmp_path):
    # the serial reference: up to date after the tests above; computed here when this test runs alone
    edit_params(repo, lambda p: p["grid"].update(trigger=["square"], seed=[0]))
    sh(repo, "python", "stages/plan_grid.py")
    sh(repo, "dvc", "repro", "report")
    parallel = make_copy(tmp_path)
    edit_params(parallel, lambda p: p["grid"].update(trigger=["square"]))
    sh(parallel, "python", "tools/run_grid.py", "--workers", "2")
    serial = pd.read_csv(repo / "reports" / "grid" / "summary.csv")
    assert pd.read_csv(parallel / "reports" / "grid" / "summary.csv").equals(serial)
