"""Killed writers: their temporaries are removed by the next writer; a stage unwinds on SIGTERM and dies
with the process that launched it."""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from backdoor.files import atomic_dir, remove_stale_temporaries, sweep_stale_temporaries

WRITER = textwrap.dedent("""
    import sys, time
    from backdoor.files import atomic_dir
    with atomic_dir(sys.argv[1]) as tmp:
        (tmp / "partial").write_text("x")
        print(tmp, flush=True)
        time.sleep(60)
""")


def start_writer(out: Path) -> tuple[subprocess.Popen, Path]:
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(out)], stdout=subprocess.PIPE, text=True)
    return proc, Path(proc.stdout.readline().strip())


def test_a_killed_writers_temporary_is_removed_a_live_ones_is_kept(tmp_path):
    out = tmp_path / "model"
    live, live_tmp = start_writer(out)
    dead, dead_tmp = start_writer(out)
    dead.kill()  # SIGKILL: its `finally` never runs
    dead.wait()
    assert live_tmp.is_dir() and dead_tmp.is_dir()
    (tmp_path / ".model.notes.tmp").write_text("not ours")  # other names are left alone
    (tmp_path / ".model.05_none_s0.123-456.ab_cd.tmp").mkdir()  # another output's name that starts the same
    assert remove_stale_temporaries(out) == [dead_tmp]
    assert live_tmp.is_dir() and not dead_tmp.exists()
    live.kill()
    live.wait()
    with atomic_dir(out) as tmp:  # a writer starting removes what killed writers of the same output left
        assert not live_tmp.exists()
        (tmp / "done").write_text("ok")
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        ".model.05_none_s0.123-456.ab_cd.tmp",
        ".model.notes.tmp",
        "model",
    ]


def test_the_sweep_removes_dead_writers_temporaries_anywhere_under_the_output_folders(tmp_path):
    """A stage restored from DVC's run-cache never writes its output again: the litter a killed writer left beside
    it goes when any stage starts (backdoor.cli.run sweeps the workspace)."""
    live, live_tmp = start_writer(tmp_path / "models" / "grid" / "train" / "a")
    dead, dead_tmp = start_writer(tmp_path / "reports" / "grid" / "cells" / "detection" / "strip" / "m.json")
    dead.kill()
    dead.wait()
    deep = tmp_path / "data" / "grid" / "features" / ".f.1-2.x.tmp"  # a dead pid's, three folders down
    deep.parent.mkdir(parents=True)
    deep.write_text("x")
    kept = [
        tmp_path / "data" / "external" / "photos" / ".img.1-2.x.tmp",  # image trees are never searched
        tmp_path / "notes" / ".n.1-2.x.tmp",  # nor folders that hold no outputs
        tmp_path / "data" / ".plain.tmp",
    ]  # nor other names
    for path in kept:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x")
    try:
        assert sorted(sweep_stale_temporaries(tmp_path)) == sorted([dead_tmp, deep])
        assert live_tmp.is_dir() and not dead_tmp.exists() and not deep.exists()
        assert all(path.exists() for path in kept)
    finally:
        live.kill()
        live.wait()


STAGE = textwrap.dedent("""
    import sys, time
    from backdoor.cli import run
    from backdoor.files import atomic_dir

    def main(args):
        with atomic_dir(args.out) as tmp:
            print(tmp, flush=True)
            time.sleep(60)

    import argparse
    parser = argparse.ArgumentParser()
    parser.add_argument("--out")
    run(main, parser)
""")


def test_sigterm_unwinds_a_stage_and_removes_its_temporary(tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "-c", STAGE, "--out", str(tmp_path / "out")], stdout=subprocess.PIPE, text=True
    )
    tmp = Path(proc.stdout.readline().strip())
    assert tmp.is_dir()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 128 + signal.SIGTERM
    assert not tmp.exists() and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("reaped", [True, False], ids=["launcher-reaped", "launcher-left-a-zombie"])
def test_a_stage_run_by_dvc_dies_with_its_launcher(tmp_path, reaped):
    """A launcher (standing in for dvc) starts the stage through a shell, as DVC does, and is SIGKILLed. Its own
    parent may reap it at once (a shell) or only later (a Python wrapper reading DVC's output waits for the
    pipe the stage holds): a zombie launcher counts as gone."""
    (tmp_path / "stage.py").write_text(STAGE)
    command = f"{sys.executable} {tmp_path / 'stage.py'} --out {tmp_path / 'out'}; true"  # the shell stays between
    launcher = f"import subprocess, time; subprocess.Popen(['/bin/sh', '-c', {command!r}]); time.sleep(60)"
    proc = subprocess.Popen([sys.executable, "-c", launcher], env=dict(os.environ, DVC_STAGE="train"))
    deadline = time.monotonic() + 30
    while not list(tmp_path.glob(".out.*.tmp")) and time.monotonic() < deadline:
        time.sleep(0.1)
    stages = [p for p in psutil.Process(proc.pid).children(recursive=True) if p.name().startswith("python")]
    assert len(stages) == 1
    proc.kill()
    if reaped:
        proc.wait()
    stages[0].wait(timeout=10)  # the watcher notices within its half-second poll (raises if the stage lives on)
    proc.wait()
    assert not list(tmp_path.glob(".out.*.tmp"))  # and it unwound: its temporary is gone
