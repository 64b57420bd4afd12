"""Print one of the result tables of docs/results.md (Markdown) from the files a preset run wrote.

    python tools/result_tables.py persistence reports/presets/persistence-cpu
    python tools/result_tables.py --update     # every table of README.md and docs/results.md, from its command

Tables: triggers, regularizers, persistence, rates, architectures, methods, reference, verdicts, leaderboard,
detection and detection-variants (backdoor/tables.py says what each holds). In the detection table STRIP and Neural
Cleanse count the models whose backdoor works (ASR at least 0.5); the others of a trigger and rate are listed apart,
on a row "<trigger> (ASR < 0.5)".
"""

import argparse
import re
from pathlib import Path

import pandas as pd

from backdoor.tables import TABLES

ROOT = Path(__file__).resolve().parents[1]
COMMAND = re.compile(r"`python tools/result_tables\.py ([\w-]+) (\S+)`")


def table(name: str, folder: Path) -> str:
    make, file = TABLES[name]
    try:
        return make(pd.read_csv(folder / file))
    except KeyError as missing:
        raise SystemExit(
            f"error: {folder / file} has no column {missing}: written before the {name} table needed it"
        ) from None


def rewrite(page: Path) -> bool:
    """Every table in ``page`` that has a command below it, rewritten as that command prints it (``--update``)."""
    lines = page.read_text().splitlines()
    for i in reversed(range(len(lines))):
        match = COMMAND.search(lines[i])
        if not match:
            continue
        end = max(j for j in range(i) if lines[j].startswith("|")) + 1
        start = end
        while start > 0 and lines[start - 1].startswith("|"):
            start -= 1
        lines[start:end] = table(match[1], ROOT / match[2]).splitlines()
    text = "\n".join(lines) + "\n"
    changed = text != page.read_text()
    page.write_text(text)
    return changed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("table", nargs="?", choices=sorted(TABLES))
    parser.add_argument("folder", nargs="?", type=Path, help="a run's reports: reports/grid, or reports/presets/<run>")
    parser.add_argument("--update", action="store_true", help="rewrite every table of README.md and docs/results.md")
    args = parser.parse_args()
    if args.update:
        for page in (ROOT / "README.md", ROOT / "docs" / "results.md"):
            print(f"{page.relative_to(ROOT)}: {'rewritten' if rewrite(page) else 'up to date'}")
        return
    if not (args.table and args.folder):
        parser.error("give a table and a folder, or --update")
    print(table(args.table, args.folder))


if __name__ == "__main__":
    main()
