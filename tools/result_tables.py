"""Print one of the result tables of docs/results.md (Markdown) from the files a preset run wrote.

    python tools/result_tables.py persistence reports/presets/persistence-cpu

Tables: triggers, regularizers, persistence, rates, architectures, methods, reference, verdicts, detection and
detection-variants (backdoor/tables.py says what each holds). In the detection table STRIP and Neural Cleanse
count the models whose backdoor works (ASR at least 0.5); the others of a trigger and rate are listed apart, on a
row "<trigger> (ASR < 0.5)".
"""

import argparse
from pathlib import Path

import pandas as pd

from backdoor.tables import TABLES


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("table", choices=sorted(TABLES))
    parser.add_argument("folder", type=Path, help="the run's reports: reports/grid, or its copy under reports/presets")
    args = parser.parse_args()
    make, file = TABLES[args.table]
    print(make(pd.read_csv(args.folder / file)))


if __name__ == "__main__":
    main()
