"""Run `dvc repro` and record how long each stage took, for the minutes-per-cell figures of docs/results.md.

    python tools/time_stages.py --out reports/presets/cifar10-cpu/stage_times.csv report

DVC prints "Running stage 'NAME':" when a stage starts; a stage's time runs until the next one starts
or DVC exits (its own bookkeeping, well under a second a stage, included). Stages restored from the
run-cache or up to date take no time and are not listed.
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="CSV to write: stage, seconds")
    parser.add_argument("targets", nargs="*", help="what to reproduce, as for dvc repro")
    args = parser.parse_args()
    rows, current, start = [], None, time.monotonic()
    proc = subprocess.Popen(["dvc", "repro", *args.targets], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for line in proc.stdout:
        sys.stdout.write(line)
        match = STARTED.search(line)
        if match:
            now = time.monotonic()
            if current:
                rows.append({"stage": current, "seconds": round(now - start, 1)})
            current, start = match[1], now
    if current:
        rows.append({"stage": current, "seconds": round(time.monotonic() - start, 1)})
    write_csv(pd.DataFrame(rows, columns=["stage", "seconds"]), Path(args.out))
    sys.exit(proc.wait())


if __name__ == "__main__":
    main()
