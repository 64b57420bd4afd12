"""Run `dvc repro` and record how long each stage took, for the minutes-per-cell figures of docs/results.md.

    python tools/time_stages.py --out reports/presets/cifar10-cpu/stage_times.csv report

DVC prints "Running stage 'NAME':" when a stage starts; a stage's wall time runs until the next one starts or DVC
exits (its own bookkeeping, well under a second a stage, included). Each stage script also prints its own wall and CPU
seconds (``backdoor.cli``: "stage time: wall W s, cpu C s"), recorded as ``stage_seconds`` and ``cpu_seconds``: CPU
seconds over wall seconds says how many cores it kept busy, and a machine shared with other work shows as wall time
above the CPU time's share. Stages restored from the run-cache or up to date take no time and are not listed.
With ``--append`` the rows are added to an existing file (a run in several parts).
"""

import argparse
import re
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

from backdoor.files import write_csv

STARTED = re.compile(r"Running stage '([^']+)'")
TIMED = re.compile(r"stage time: wall ([\d.]+) s, cpu ([\d.]+) s")
COLUMNS = ["stage", "seconds", "stage_seconds", "cpu_seconds"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="CSV to write: stage, seconds, stage_seconds, cpu_seconds")
    parser.add_argument("--append", action="store_true", help="add to the rows already in --out")
    parser.add_argument("targets", nargs="*", help="what to reproduce, as for dvc repro")
    args = parser.parse_args()
    rows: list[dict] = []
    start = time.monotonic()
    proc = subprocess.Popen(
        ["dvc", "repro", *args.targets], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    for line in proc.stdout:
        sys.stdout.write(line)
        if (timed := TIMED.search(line)) and rows:
            rows[-1].update(stage_seconds=float(timed[1]), cpu_seconds=float(timed[2]))
        if match := STARTED.search(line):
            now = time.monotonic()
            if rows:
                rows[-1]["seconds"] = round(now - start, 1)
            rows.append({"stage": match[1]})
            start = now
    if rows:
        rows[-1]["seconds"] = round(time.monotonic() - start, 1)
    table = pd.DataFrame(rows, columns=COLUMNS)
    out = Path(args.out)
    if args.append and out.is_file():
        table = pd.concat([pd.read_csv(out), table], ignore_index=True)
    write_csv(table, out)
    sys.exit(proc.wait())


if __name__ == "__main__":
    main()
