"""Print one of the result tables of docs/results.md (Markdown) from the files a preset run wrote.

    python tools/result_tables.py persistence reports/presets/persistence-cpu

Tables: triggers, regularizers, persistence, rates, detection (backdoor/tables.py says what each holds).
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
