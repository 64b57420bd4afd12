"""Time `make repro` on a fresh clone of this repository's HEAD, stage by stage, then check it is idempotent and clean.

    python -m tools.fresh_clone_repro --out reports/fresh-clone   # writes repro.log and repro-stage-times.csv

The clone goes to a temporary folder (removed afterwards unless --keep); the log names the commit and the CPU, and
writes the clone's folder as ``<clone>`` (no machine's paths in a committed file). One log of each kind is kept: the
latest. Every line `make repro` prints is
stamped with the seconds since it started; a stage's time runs from DVC's "Running stage" line to the next one
(its start-up, work and DVC's bookkeeping). Then a second `make repro` (everything cached) is timed and
`git status --short` is recorded: a committed dvc.lock that reproduces leaves it empty.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pandas as pd

from backdoor.files import write_csv
from tools.record import cpu_model, without_local_paths

ROOT = Path(__file__).resolve().parents[1]
STAGE = re.compile(r"Running stage '([^']+)'")


def stage_times(lines: list[tuple[float, str]], end: float) -> pd.DataFrame:
    """Seconds per step from the stamped output: set-up until the planner starts, then each stage."""
    marks = []
    for stamp, text in lines:
        if text.startswith("python stages/plan_grid.py"):
            marks.append(("plan_grid", stamp))
        elif match := STAGE.search(text):
            marks.append((match[1], stamp))
    rows = [{"stage": "set-up (venv, pip, bytecode)", "seconds": round(marks[0][1], 1)}] if marks else []
    for (name, start), (_, stop) in zip(marks, marks[1:] + [("", end)]):
        rows.append({"stage": name, "seconds": round(stop - start, 1)})
    return pd.DataFrame(rows, columns=["stage", "seconds"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "fresh-clone")
    parser.add_argument("--keep", action="store_true", help="keep the clone (its path is printed)")
    args = parser.parse_args()
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()
    work = Path(tempfile.mkdtemp(prefix=f"fresh-{commit}-"))
    clone = work / "repo"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV",)}
    env["PATH"] = os.pathsep.join(p for p in env["PATH"].split(os.pathsep) if ".venv" not in p)
    header = (
        f"commit {commit} start {time.strftime('%Y-%m-%d %H:%M:%S %Z')} cpu {cpu_model()} x {os.cpu_count()} "
        f"load {os.getloadavg()}"
    )
    start = time.monotonic()
    proc = subprocess.Popen(
        ["make", "repro"], cwd=clone, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    lines = [
        (time.monotonic() - start, without_local_paths(line.rstrip("\n").replace(str(clone), "<clone>"), ROOT))
        for line in proc.stdout
        if not line.startswith("WARNING: Location")
    ]  # pip's notes on this machine's local package index
    first = time.monotonic() - start
    if proc.wait() != 0:
        raise SystemExit(f"make repro failed in {clone}:\n" + "\n".join(text for _, text in lines[-30:]))
    again = time.monotonic()
    subprocess.run(["make", "repro"], cwd=clone, env=env, capture_output=True, check=True)
    again = time.monotonic() - again
    status = subprocess.run(["git", "status", "--short"], cwd=clone, capture_output=True, text=True).stdout
    args.out.mkdir(parents=True, exist_ok=True)
    log = [
        header,
        *(f"{stamp:.2f} {text}" for stamp, text in lines),
        f"make repro: {first:.1f} s; again: {again:.1f} s; load {os.getloadavg()}",
        "git status --short after both:",
        status.rstrip() or "(clean)",
    ]
    (args.out / "repro.log").write_text("\n".join(log) + "\n")
    write_csv(stage_times(lines, first), args.out / "repro-stage-times.csv")
    print(
        f"make repro {first:.1f} s, again {again:.1f} s, git status {'clean' if not status else 'DIRTY'}; "
        f"{args.out}/repro.log"
    )
    if args.keep:
        print(f"clone kept: {clone}")
    else:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
