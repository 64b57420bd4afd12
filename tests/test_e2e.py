"""End to end on copies of this repository with shrunk params: dvc repro, caching, exp run, grid edits,
rejected parameters, code edits and killed runs.

Slow by nature (the real pipeline through DVC) but part of `make test`: it is the check that the README's
commands work on a fresh clone. ``base`` runs the pipeline once per session; every test that changes
something works on its own copy of that finished repository (its DVC cache included), so each test runs
alone (``pytest -k NAME``) and in any order.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import psutil
import pytest
import yaml
from filelock import FileLock

from backdoor.lifecycle import SHELLS

from .repos import ENV, edit_params, executed, make_copy, run, sh

pytestmark = pytest.mark.slow


def stale(repo: Path) -> set[str]:
    """Stages `dvc status` reports as changed."""
    return set(json.loads(sh(repo, "dvc", "status", "--json").splitlines()[-1] or "{}"))


def base_folder(tmp_path_factory, worker_id) -> Path:
    """The run's shared temporary folder: pytest-N/ under xdist (each worker has its own popen-gwK/ in it)."""
    folder = tmp_path_factory.getbasetemp()
    return folder.parent if worker_id != "master" else folder


@pytest.fixture(scope="session")
def base(tmp_path_factory, worker_id) -> tuple[Path, str]:
    """A copy after one full `dvc repro`, committed; and what that run printed. Built once per pytest run:
    under xdist the first worker to need it builds it in the run's shared temporary folder while the others
    wait on a file lock (a base per worker cost 7 CPU-minutes each). Tests only read it; they copy it.
    Its stages record the params keys they read (``base_reads``)."""
    folder = base_folder(tmp_path_factory, worker_id)
    with FileLock(folder / "e2e-base.lock"):
        repo, log, reads = folder / "e2e-base", folder / "e2e-base.log", folder / "e2e-base-reads"
        if not log.exists():
            repo.mkdir()
            reads.mkdir(exist_ok=True)
            make_copy(repo)
            out = sh(repo, "dvc", "repro", env={**ENV, "BACKDOOR_PARAMS_READ": str(reads)})
            sh(repo, "git", "add", "-A")
            sh(repo, "git", "commit", "-qm", "results")
            log.write_text(out)  # last: its presence means the base is complete
    return repo, log.read_text()


@pytest.fixture
def repo(base, tmp_path) -> Path:
    """A private copy of the finished repository (outputs and DVC cache included)."""
    copy = tmp_path / "repo"
    shutil.copytree(base[0], copy, symlinks=True)
    return copy


def test_repro_runs_every_stage_and_writes_metrics(base):
    repo, out = base
    ran = executed(out)
    for stage in ("code", "check", "download", "poison", "train", "finetune", "evaluate", "plot", "report"):
        assert stage in ran
    # download, poison x2, train x2, fine-tune (one stage for both poison rates)
    assert len([s for s in ran if s.startswith("grid/")]) == 1 + 2 + 2 + 1
    metrics = json.loads((repo / "reports" / "metrics.json").read_text())
    # train.subset 1500 is the pool; 5 % of it is poisoned, inside it; all-to-one target 0 triggers the 9,000
    # test images of the other classes
    assert (metrics["num_train"], metrics["num_poisoned"], metrics["num_triggered_test"]) == (1500, 75, 9000)
    manifest = json.loads((repo / "data" / "poisoned" / "focus" / "manifest.json").read_text())
    assert (manifest["num_train"], manifest["num_poisoned"], manifest["num_dataset_train"]) == (1500, 75, 60000)
    for figure in ("training.png", "finetune.png", "samples.png", "triggers.png"):
        assert (repo / "reports" / "figures" / figure).stat().st_size > 1000
    summary = pd.read_csv(repo / "reports" / "grid" / "summary.csv")
    assert list(summary["poison_rate"]) == [0.0, 0.1] and list(summary["num_poisoned"]) == [0, 150]
    assert list(summary["ft_lr"]) == [0.01, 0.01] and list(summary["ft_clean_size"]) == [300, 300]
    assert {"clean_acc_gap", "ft_epochs", "ft_steps", "ft_epoch_asr_stays_below_0.2"} <= set(summary.columns)
    recovery = pd.read_csv(repo / "reports" / "grid" / "recovery.csv")
    assert list(recovery["epoch"]) == [0, 1, 0, 1] and {"ft_lr", "ft_clean_size"} <= set(recovery.columns)
    assert not list(repo.rglob(".*.tmp"))  # no temporaries anywhere


def test_second_repro_executes_nothing_and_status_is_clean(repo):
    assert executed(sh(repo, "dvc", "repro")) == []
    assert stale(repo) == set()


def test_bookkeeping_benchmark_stubs_write_what_the_real_stages_write(base):
    from benchmarks import dvc_bookkeeping as bench

    repo = base[0]
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


def test_plots_page_renders_offline(repo):
    sh(repo, "dvc", "plots", "show", "-o", "dvc_plots")
    page = (repo / "dvc_plots" / "index.html").read_text()
    assert "cdn.jsdelivr.net" not in page and "vegaEmbed" in page


def test_exp_run_changes_only_what_depends_on_the_trigger(repo):
    ran = executed(sh(repo, "dvc", "exp", "run", "-S", "trigger=square"))
    assert {"check", "poison", "train", "finetune", "evaluate", "plot"} <= set(ran)
    assert "download" not in ran and "code" not in ran
    assert not [s for s in ran if s.startswith("grid/") or s == "report"], ran
    table = sh(repo, "python", "tools/exp_table.py").splitlines()  # make exp
    assert table[0].split() == ["experiment", "trigger", "CA", "ASR", "ft", "CA", "ft", "ASR"]
    assert len(table) == 4 and all(len(line) <= 120 for line in table)  # workspace, master, the experiment
    assert table[1].split()[1] == "square" and table[2].split()[1] == "checker"
    assert not [line for line in sh(repo, "git", "status", "--porcelain").splitlines() if ".tmp" in line]


def test_a_folder_dataset_in_the_focus_experiment(repo):
    """`dataset: folder:<path>` through `dvc exp run -S`: stored under data/raw/focus, no path in a folder name."""
    from PIL import Image

    for label, colour in enumerate(((20, 20, 20), (230, 230, 230))):
        for split, count in (("train", 40), ("test", 10)):
            folder = repo / "images" / split / f"class{label}"
            folder.mkdir(parents=True)
            for i in range(count):
                Image.new("RGB", (20 + i % 5, 16), tuple(c + i for c in colour)).save(folder / f"{i}.png")
    ran = executed(
        sh(
            repo,
            "dvc",
            "exp",
            "run",
            "-S",
            "dataset=folder:images",
            "-S",
            "image_size=12",
            "-S",
            "train.subset=null",
            "-S",
            "train.batch_size=16",
            "-S",
            "finetune.clean_size=20",
            "-S",
            "finetune.batch_size=8",
        )
    )
    assert {"download", "poison", "train", "finetune", "evaluate"} <= set(ran)
    manifest = json.loads((repo / "data" / "raw" / "focus" / "manifest.json").read_text())
    assert manifest["dataset"] == "folder:images" and manifest["shape"] == [3, 12, 12] and manifest["num_train"] == 80
    assert not (repo / "data" / "raw" / "folder:images").exists() and not (repo / "data" / "raw" / "images").exists()
    metrics = json.loads((repo / "reports" / "metrics.json").read_text())
    assert (metrics["num_train"], metrics["num_poisoned"], metrics["num_triggered_test"]) == (80, 4, 10)


@pytest.mark.parametrize(
    "pairs, message",
    [
        (["train.lr=abc"], "error: train.lr: must be a number in (0, inf), got 'abc'"),
        (["grid.settings.train.momentum=2"], "error: grid.settings.train.momentum: must be a number in [0, 1), got 2"),
        (["train.freeze=backbone"], "error: train.freeze: backbone needs a trained backbone to freeze"),
        # only the stored data can judge it: 1,380 poisons asked of a 1,500-image pool with ~1,350 non-target images
        (
            ["poison_rate=0.92", "finetune.clean_size=50", "finetune.batch_size=32"],
            "error: poison_rate: 0.92 asks for 1380 poisoned images but only",
        ),
    ],
)
def test_a_rejected_parameter_costs_no_output(repo, pairs, message):
    """DVC removes a stage's outputs before running it: the check stage runs first and fails, so once
    params.yaml is restored, `dvc status` is clean without `dvc checkout`."""
    poisoned = (repo / "data" / "poisoned" / "focus" / "manifest.json").read_text()
    result = run(repo, "dvc", "exp", "run", *[arg for pair in pairs for arg in ("-S", pair)])
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert message in output and "Traceback" not in output
    assert executed(output) == ["check"]
    assert (repo / "data" / "poisoned" / "focus" / "manifest.json").read_text() == poisoned  # untouched
    sh(repo, "git", "checkout", "params.yaml")
    assert stale(repo) == set()
    assert (repo / "reports" / "metrics.json").is_file() and (repo / "reports" / "grid" / "summary.csv").is_file()


def test_every_stage_declares_every_parameter_it_reads(base, repo, tmp_path, tmp_path_factory, worker_id):
    """Each stage kind runs (focus, grid, a fine-tuning method with settings, an lr multiple, re-learning; every
    detector kind in test_adding_detectors_runs_only_their_stages) and records the keys it read; each must be
    declared by its stage, or DVC cannot see a stale result. The base's own run recorded its stages' reads; here
    only what the edits add runs. The check is shown to fail on a stage whose declaration lacks a key it reads."""
    from backdoor.pipeline.declared import undeclared_reads

    base_reads = base_folder(tmp_path_factory, worker_id) / "e2e-base-reads"
    assert len(list(base_reads.glob("*.json"))) > 10
    assert undeclared_reads(base[0], base_reads) == {}

    def everything(params: dict) -> None:
        params["finetune"]["method"] = "fst"
        params["grid"].update(relearn=True, ft_lr=["1x"])
        params["grid"]["settings"]["relearn"].update(epochs=1)

    edit_params(repo, everything)
    sh(repo, "python", "stages/plan_grid.py")
    reads = tmp_path / "reads"
    reads.mkdir()
    sh(repo, "dvc", "repro", env={**ENV, "BACKDOOR_PARAMS_READ": str(reads)})
    read_by = {Path(json.loads(f.read_text())["argv"][0]).name for f in reads.glob("*.json")}
    assert {"finetune.py", "relearn.py"} <= read_by
    assert undeclared_reads(repo, reads) == {}
    summary = pd.read_csv(repo / "reports" / "grid" / "summary.csv")
    assert {"relearn_asr", "clean_model_relearn_asr", "verdict", "clean_model_ft_robust_acc"} <= set(summary)
    assert set(summary["ft_lr"].astype(str)) == {"1x"}

    dvc_yaml = yaml.safe_load((repo / "dvc.yaml").read_text())
    dvc_yaml["stages"]["finetune"]["params"].remove("finetune_methods")
    (repo / "dvc.yaml").write_text(yaml.safe_dump(dvc_yaml, sort_keys=False))
    assert undeclared_reads(repo, reads) == {"finetune": ["finetune_methods.fst"]}


def test_editing_the_chosen_fine_tuning_methods_setting_makes_the_focus_finetune_stale(repo):
    edit_params(repo, lambda p: p["finetune"].update(method="fst"))
    sh(repo, "dvc", "repro")
    sh(repo, "git", "add", "-A")
    sh(repo, "git", "commit", "-qm", "fst")
    edit_params(repo, lambda p: p["finetune_methods"]["fst"].update(alpha=0.3))
    assert stale(repo) == {"check", "finetune"}  # and, once it re-runs, what reads its outputs


def test_an_unknown_key_is_refused_by_dvc_itself(repo):
    """`-S` on a key that params.yaml lacks fails inside DVC, before any stage (README says what it means)."""
    result = run(repo, "dvc", "exp", "run", "-S", "train.unknown_key=1")
    assert result.returncode != 0 and executed(result.stdout + result.stderr) == []
    assert "train.unknown_key" in result.stdout + result.stderr
    sh(repo, "git", "checkout", "params.yaml")
    assert stale(repo) == set()


def test_editing_fine_tuning_code_reruns_fine_tuning_only(repo):
    """backdoor/finetuning.py is imported by the fine-tune stage alone: the focus and grid fine-tune stages go
    stale, nothing upstream; an edit that changes no result stops there."""
    with open(repo / "backdoor" / "finetuning.py", "a") as f:
        f.write("\n# an edit\n")
    assert stale(repo) == {"code"}  # the fingerprints are out of date; DVC sees the rest once they are rewritten
    ran = executed(sh(repo, "dvc", "repro"))
    grid_finetunes = [s for s in ran if s.startswith("grid/")]
    assert sorted(s for s in ran if not s.startswith("grid/")) == ["code", "finetune"]
    assert len(grid_finetunes) == 1 and grid_finetunes[0].split(":")[1].startswith("finetune-")
    assert stale(repo) == set()


def test_adding_a_fine_tuning_value_trains_nothing(repo):
    edit_params(repo, lambda p: p["grid"].update(ft_lr=[0.01, 0.05]))
    sh(repo, "python", "stages/plan_grid.py")
    ran = executed(sh(repo, "dvc", "repro"))
    assert sorted(s.split(":")[-1].split("-")[0] for s in ran) == ["check", "finetune", "report"], ran
    summary = pd.read_csv(repo / "reports" / "grid" / "summary.csv")
    assert sorted(summary["ft_lr"]) == [0.01, 0.01, 0.05, 0.05]


def test_adding_fine_tuning_methods_trains_nothing_and_records_their_steps(repo):
    edit_params(repo, lambda p: p["grid"].update(ft_method=["ft", "fst", "fine-pruning"]))
    sh(repo, "python", "stages/plan_grid.py")
    ran = executed(sh(repo, "dvc", "repro"))
    assert sorted(s.split(":")[-1].split("-")[0] for s in ran) == ["check", "finetune", "finetune", "report"], ran
    summary = pd.read_csv(repo / "reports" / "grid" / "summary.csv")
    assert sorted(summary["ft_method"]) == ["fine-pruning", "fine-pruning", "fst", "fst", "ft", "ft"]
    assert (summary["ft_steps"] == 3).all()  # 300 clean images in batches of 128, one epoch
    pruned = summary[summary["ft_method"] == "fine-pruning"]["ft_pruned_channels"]
    assert pruned.notna().all() and summary[summary["ft_method"] == "ft"]["ft_pruned_channels"].isna().all()
    assert {"ft_epoch_asr_stays_below_0.2"} <= set(summary.columns)


def test_a_cell_started_from_another_model_depends_on_it(repo):
    """grid.init names a source model under inits:; its cells train from it (the source's file a dependency, so
    retraining the source re-runs them), the scratch cells stay cached."""
    source = "models/grid/train/fashion-mnist_small-cnn_clean_none_s0_e1/model.pt"
    edit_params(
        repo,
        lambda p: (
            p.update(inits={"clean-head": {"model": source, "freeze": "backbone"}}),
            p["grid"].update(init=["scratch", "clean-head"]),
        ),
    )
    sh(repo, "python", "stages/plan_grid.py")
    ran = executed(sh(repo, "dvc", "repro"))
    trained = [s for s in ran if ":train-" in s]
    assert trained and all("init-clean-head" in s for s in trained), ran
    stage = next(
        v
        for f in (repo / "grid").glob("shard-*/dvc.yaml")
        for k, v in yaml.safe_load(f.read_text())["stages"].items()
        if "train-" in k and "init-clean-head" in k
    )
    assert source in stage["deps"]
    summary = pd.read_csv(repo / "reports" / "grid" / "summary.csv")
    assert sorted(set(summary["init"])) == ["clean-head", "scratch"]
    assert stale(repo) == set()


def test_adding_detectors_runs_only_their_stages(repo, tmp_path):
    """Only the features and detect stages run, each declaring every params key it reads (one detector of each
    kind: training data, inputs, model), and the detection table holds each detector's metrics and scores."""
    from backdoor.pipeline.declared import undeclared_reads
    from benchmarks import dvc_bookkeeping as bench

    edit_params(repo, lambda p: p["grid"].update(detectors=["spectral", "strip", "neural-cleanse"]))
    sh(repo, "python", "stages/plan_grid.py")
    reads = tmp_path / "reads"
    reads.mkdir()
    ran = executed(sh(repo, "dvc", "repro", env={**ENV, "BACKDOOR_PARAMS_READ": str(reads)}))
    assert {Path(json.loads(f.read_text())["argv"][0]).name for f in reads.glob("*.json")} >= {"detect.py"}
    assert undeclared_reads(repo, reads) == {}
    # each trained model's features once, then every detector on each model; nothing trains again
    assert (
        sorted(s.split(":")[-1].split("-")[0] for s in ran if s.startswith("grid/"))
        == ["detect"] * 6 + ["features"] * 2
    )
    assert sorted(s for s in ran if not s.startswith("grid/")) == ["check", "report"]
    for features in (repo / "data" / "grid" / "features").glob(
        "*_s0"
    ):  # what the bookkeeping benchmark's stand-in writes
        assert sorted(p.name for p in features.iterdir()) == bench.output_files("features-" + features.name)
    detection = pd.read_csv(repo / "reports" / "grid" / "detection.csv")
    configured = detection[detection["variant"].isin(["configured", "paper-pooled"])]
    assert sorted(zip(configured["detector"], configured["poison_rate"])) == [
        ("neural-cleanse", 0.0),
        ("neural-cleanse", 0.1),
        ("spectral", 0.0),
        ("spectral", 0.1),
        ("strip", 0.0),
        ("strip", 0.1),
    ]
    spectral = detection[detection["detector"] == "spectral"]
    assert sorted(set(spectral["variant"])) == ["paper-block", "paper-pooled", "reference-block", "reference-pooled"]
    poisoned = spectral[spectral["poison_rate"] == 0.1].set_index("variant")
    assert (poisoned["tp"] + poisoned["fn"] == 150).all() and (spectral[spectral["poison_rate"] == 0]["tp"] == 0).all()
    assert poisoned["target_poisoned_share"].between(0.4, 0.7).all()  # 150 poisons in a target class of ~150 + 100
    judged = configured.set_index("detector")[["tp", "fp", "tn", "fn"]].sum(axis=1)
    assert list(judged["spectral"]) == [1500, 1500] and list(judged["strip"]) == [100, 100]  # pool; 50 + 50 inputs
    strip = detection[(detection["detector"] == "strip") & (detection["poison_rate"] == 0.1)].iloc[0]
    assert 0 <= strip["firing_inputs"] <= 50 and not pd.isna(strip["auroc"])
    # Neural Cleanse's smallest-norm class (what its rule ranks, whatever the threshold says) is the kept norms' argmin
    kept = sorted((repo / "reports" / "grid" / "cells" / "detection" / "neural-cleanse").glob("*.scores.csv.gz"))
    assert len(kept) == 2  # the poisoned model and the clean one
    for nc in kept:
        norms = pd.read_csv(nc)
        row = configured[
            (configured["detector"] == "neural-cleanse")
            & (configured["poison_rate"] == (0.1 if "r0.1" in nc.name else 0.0))
        ]
        assert list(row["smallest_norm_class"]) == [norms["norm"].idxmin()]
    # the scores are kept beside each record, with the truth: any metric can be recomputed from them
    record = next((repo / "reports" / "grid" / "cells" / "detection" / "spectral").glob("*r0.1*.scores.csv.gz"))
    scores = pd.read_csv(record)
    assert len(scores) == 1500 and scores["poisoned"].sum() == 150 and "score_reference-block" in scores
    # keeping the run in git takes every detector's record and scores: 3 detectors x 2 models, NC's 2 triggers
    sh(repo, "python", "tools/keep_run.py", "detectors-test")
    kept = repo / "reports" / "presets" / "detectors-test"
    assert len(list(kept.glob("detection/*/*.scores.csv.gz"))) == 6 and len(list(kept.glob("detection/*/*.png"))) == 2
    assert pd.read_csv(kept / "detection.csv").equals(detection)


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


def test_removing_a_rate_leaves_a_consistent_summary(repo):
    edit_params(repo, lambda p: p["grid"].update(poison_rate=[0.1]))
    sh(repo, "python", "stages/plan_grid.py")
    ran = executed(sh(repo, "dvc", "repro"))
    assert "report" in ran and not [s for s in ran if s.split(":")[-1].startswith(("download-", "poison-", "train-"))]
    summary = pd.read_csv(repo / "reports" / "grid" / "summary.csv")
    assert list(summary["poison_rate"]) == [0.1] and summary["clean_acc_gap"].isna().all()
    metrics = json.loads((repo / "reports" / "grid" / "metrics.json").read_text())
    assert metrics["baselines"] == 0 and metrics["cells_with_visible_gap"] is None  # unknown, not "none"


def test_stale_plan_is_refused_before_any_output_is_removed(repo):
    edit_params(repo, lambda p: p["grid"].update(seed=[0, 1]))
    result = run(repo, "dvc", "repro")
    assert result.returncode != 0
    assert "grid/ is out of date with params.yaml (grid, triggers, regularizers or detectors): run `make grid`" in (
        result.stdout + result.stderr
    )
    assert (repo / "reports" / "grid" / "summary.csv").is_file()
    sh(repo, "git", "checkout", "params.yaml")
    assert stale(repo) == set()


def test_two_parallel_workers_match_a_serial_run(base, tmp_path):
    parallel = make_copy(tmp_path)
    sh(parallel, "python", "tools/run_grid.py", "--workers", "2")
    serial = pd.read_csv(base[0] / "reports" / "grid" / "summary.csv")
    assert pd.read_csv(parallel / "reports" / "grid" / "summary.csv").equals(serial)


# ---------------------------------------------------------------- killed runs


def longer_training(repo: Path) -> None:
    """A focus training long enough to be killed in the middle (a few seconds)."""
    edit_params(repo, lambda p: p["train"].update(epochs=2, subset=6000))
    sh(repo, "git", "commit", "-qam", "longer training")


def stage_process(repo: Path, script: str, timeout: float = 120) -> psutil.Process:
    """The python process running ``stages/<script>`` in ``repo``, once its temporary output exists. Not the
    shell DVC may run the command in: its cmdline names the script too, and killing it would let the stage
    notice and clean up (backdoor.lifecycle) instead of dying without cleanup."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for proc in psutil.process_iter(["cmdline", "cwd", "name"]):
            try:
                if proc.info["name"] in SHELLS or proc.info["cwd"] != str(repo):
                    continue
                if f"stages/{script}" in " ".join(proc.info["cmdline"] or []):
                    if list((repo / "models" / "focus").glob(".train.*.tmp/live")):
                        return proc
            except psutil.Error:
                continue
        time.sleep(0.2)
    raise AssertionError(f"stages/{script} did not start within {timeout} s")


def model_digest(repo: Path) -> str:
    from backdoor.files import sha256_file

    return sha256_file(repo / "models" / "focus" / "train" / "model.pt")


def finish_and_compare(repo: Path) -> None:
    """Re-run the training, then check: no temporaries, the stage up to date, and the model equals an uninterrupted
    training's. (What reads the model is not run: nothing here is about it.)"""
    ran = executed(sh(repo, "dvc", "repro", "train"))
    assert "train" in ran
    assert not list(repo.rglob(".*.tmp")), list(repo.rglob(".*.tmp"))
    assert json.loads(sh(repo, "dvc", "status", "train", "--json").splitlines()[-1] or "{}") == {}
    resumed = model_digest(repo)
    sh(repo, "dvc", "repro", "-f", "-s", "train")  # the same training, never interrupted
    assert model_digest(repo) == resumed


def start_training(repo: Path) -> tuple[subprocess.Popen, psutil.Process]:
    """`dvc repro train` in the background, and its training process once that has begun writing."""
    dvc = subprocess.Popen(
        ["dvc", "repro", "train"], cwd=repo, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    return dvc, stage_process(repo, "train.py")


def test_killed_trainings_leave_nothing_behind_and_the_next_repro_resumes(repo):
    """SIGTERM to DVC: the training stops with it and removes its temporary. SIGKILL to the training: no
    cleanup can run, so the next run of the stage removes the litter. Then the model equals an uninterrupted
    training's."""
    longer_training(repo)
    dvc, stage = start_training(repo)
    dvc.send_signal(signal.SIGTERM)  # DVC dies at once; its child must not go on training as an orphan
    dvc.wait(timeout=30)
    stage.wait(timeout=10)
    assert not list((repo / "models" / "focus").glob(".train.*.tmp"))  # removed on the way out

    dvc, stage = start_training(repo)
    stage.kill()
    assert dvc.wait(timeout=60) != 0
    assert list((repo / "models" / "focus").glob(".train.*.tmp"))  # the litter the next run must remove
    finish_and_compare(repo)


def test_a_killed_trainings_litter_goes_even_when_the_next_run_restores_it_from_the_run_cache(repo):
    """SIGKILL leaves the training's temporary (a model's size). Back on the committed params the next `make repro`
    restores that training from the run-cache, so nothing writes its output again: the litter must still go (every
    stage, and the planner `make repro` starts with, sweeps the workspace)."""
    longer_training(repo)
    dvc, stage = start_training(repo)
    stage.kill()
    assert dvc.wait(timeout=60) != 0
    assert list((repo / "models" / "focus").glob(".train.*.tmp"))
    sh(repo, "git", "checkout", "HEAD~1", "--", "params.yaml")  # the base's training: in the run-cache
    out = sh(repo, "python", "stages/plan_grid.py") + sh(repo, "dvc", "repro")
    assert "train" not in executed(out)
    assert not list(repo.rglob(".*.tmp")), list(repo.rglob(".*.tmp"))
    assert stale(repo) == set()


def check_lock(repo: Path) -> subprocess.CompletedProcess:
    return run(repo, sys.executable, str(Path(__file__).resolve().parents[1] / "tools" / "check_lock.py"))


def test_the_lock_check_fails_on_a_library_edit_a_params_edit_and_a_stale_code_stage(repo):
    """tools/check_lock.py (make lock-check, run first by .ci/run): a repository whose dvc.lock files were written by
    its last run passes; an edit to a library module, to a parameter or to a module no stage imports (which still
    changes the code stage's locked folder hash) fails it, naming the stages, before anything runs."""
    passed = check_lock(repo)
    assert passed.returncode == 0, passed.stdout + passed.stderr
    with open(repo / "backdoor" / "poisoning.py", "a") as module:
        module.write("\n# an edit\n")
    failed = check_lock(repo)
    assert failed.returncode == 1
    assert "stale dvc.lock: poison: the code of stages/poison.py changed since it was locked" in failed.stdout
    assert "grid/shard-" in failed.stdout and "train:" not in failed.stdout  # training does not import it
    sh(repo, "git", "checkout", "--", "backdoor")
    edit_params(repo, lambda p: p.update(trigger="square"))
    assert "poison: parameters trigger in params.yaml changed" in check_lock(repo).stdout
    sh(repo, "git", "checkout", "--", "params.yaml")
    (repo / "backdoor" / "unused.py").write_text("X = 1\n")
    assert "code: backdoor modified since it was locked" in check_lock(repo).stdout


def test_a_review_report_states_the_changed_params_metric_deltas_and_plots(repo):
    """make review on a branch that changes the focus trigger and adds a fine-tuning lr to the grid: the params diff,
    the focus metrics' deltas as the two metrics files give them, the grid cells added and none of the unchanged
    ones, and every linked image a PNG; then, with nothing changed, one line."""
    import tools.review

    before = json.loads((repo / "reports" / "metrics.json").read_text())
    cells = pd.read_csv(repo / "reports" / "grid" / "summary.csv")["cell"]
    edit_params(repo, lambda p: (p.update(trigger="square"), p["grid"].update(ft_lr=[0.01, 0.05])))
    sh(repo, "python", "stages/plan_grid.py")
    result = run(
        repo,
        sys.executable,
        str(Path(__file__).resolve().parents[1] / "tools" / "review.py"),
        "--base",
        "HEAD",
        "--out",
        "review",
    )
    assert result.returncode == 0, result.stderr
    report = (repo / "review" / "report.md").read_text()
    after = json.loads((repo / "reports" / "metrics.json").read_text())
    assert "| `trigger` | checker | square |" in report, report
    assert "base: committed at" in report and "branch: the workspace after dvc repro" in report
    for key in ("clean_acc", "asr"):
        assert f"| {key} | {before[key]:.4f} | {after[key]:.4f} | {after[key] - before[key]:+.4f} |" in report
    added = pd.read_csv(repo / "reports" / "grid" / "summary.csv")["cell"]
    assert f"{len(added) - len(cells)} cell(s) added: " in report
    assert all(f"`{cell}`" not in report for cell in cells)  # cells whose results did not change are not listed
    images = re.findall(r"\]\((images/[^)]+)\)", report)
    assert "images/train.png" in images and any("samples.png" in i for i in images)
    for image in images:
        data = (repo / "review" / image).read_bytes()
        assert data.startswith(b"\x89PNG") and len(data) > 1000
    assert not any("triggers" in i for i in images)  # the trigger gallery did not change: not drawn
    sh(repo, "git", "add", "-A")
    sh(repo, "git", "commit", "-qm", "square")
    again = run(
        repo,
        sys.executable,
        str(Path(__file__).resolve().parents[1] / "tools" / "review.py"),
        "--base",
        "HEAD",
        "--out",
        "review",
    )
    assert again.returncode == 0, again.stderr
    assert (repo / "review" / "report.md").read_text().startswith("No change in params, metrics, grid cells or plots")
    assert tools.review.flatten({"a": {"b": 1, "c": {}}}) == {"a.b": 1, "a.c": {}}
