"""Run `dvc repro` and record how long each stage took, for the minutes-per-cell figures of docs/results.md.

    python tools/time_stages.py --out reports/presets/cifar10-cpu/stage_times.csv report

DVC prints "Running stage 'NAME':" when a stage starts; a stage's wall time runs until the next one starts or DVC
exits (its own bookkeeping, well under a second a stage, included). Each stage script also prints its own wall and CPU
seconds (``backdoor.cli``: "stage time: wall W s, cpu C s"), recorded as ``stage_seconds`` and ``cpu_seconds``: CPU
seconds over wall seconds says how many cores it kept busy, and a machine shared with other work shows as wall time
above the CPU time's share. Stages restored from the run-cache or up to date take no time and are not listed.
With ``--append`` the rows are added to an existing file (a run in several parts). ``--log FILE`` reads the saved
output of a run that was killed before this script wrote its file (a session's end): the stages' own wall and CPU
seconds come back, the ``seconds`` between starts do not (blank).
"""

import argparse
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import pandas as pd

from backdoor.files import write_csv

STARTED = re.compile(r"Running stage '([^']+)'")
TIMED = re.compile(r"stage time: wall ([\d.]+) s, cpu ([\d.]+) s")
COLUMNS = ["stage", "seconds", "stage_seconds", "cpu_seconds"]


def stage_rows(lines: Iterable[str], clock: Callable[[], float] | None = None) -> Iterator[dict]:
    """One row per stage DVC started, from its output as it comes; with a clock, each row's wall seconds until
    the next stage starts (or the output ends)."""
    row: dict | None = None
    start = clock() if clock else None
    for line in lines:
        if (timed := TIMED.search(line)) and row:
            row.update(stage_seconds=float(timed[1]), cpu_seconds=float(timed[2]))
        if match := STARTED.search(line):
            now = clock() if clock else None
            if row:
                yield {**row, "seconds": None if now is None else round(now - start, 1)}
            row, start = {"stage": match[1]}, now
    if row:
        yield {**row, "seconds": round(clock() - start, 1) if clock else None}


def echoed(lines: Iterable[str]) -> Iterator[str]:
    for line in lines:
        sys.stdout.write(line)
        yield line


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="CSV to write: stage, seconds, stage_seconds, cpu_seconds")
    parser.add_argument("--append", action="store_true", help="add to the rows already in --out")
    parser.add_argument("--log", type=Path, help="read this saved dvc repro output instead of running dvc repro")
    parser.add_argument("targets", nargs="*", help="what to reproduce, as for dvc repro")
    args = parser.parse_args()
    if args.log:
        if args.targets:
            parser.error("--log reads a finished run's output: give no targets")
        with open(args.log) as log:
            rows, status = list(stage_rows(log)), 0
    else:
        proc = subprocess.Popen(
            ["dvc", "repro", *args.targets], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        rows = list(stage_rows(echoed(proc.stdout), time.monotonic))
        status = proc.wait()
    table = pd.DataFrame(rows, columns=COLUMNS)
    out = Path(args.out)
    if args.append and out.is_file():
        table = pd.concat([pd.read_csv(out), table], ignore_index=True)
    write_csv(table, out)
    sys.exit(status)


if __name__ == "__main__":
    main()
