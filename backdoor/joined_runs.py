"""The tables of several committed grid runs read as one run of all their cells.

A CPU preset that outlasts a session runs in parts (a seed each, say); ``tools/keep_run.py --part`` keeps each under
reports/presets/<preset>/parts/<part>/ and ``tools/join_parts.py`` writes the preset's tables from them, recomputing
what compares cells (the clean-accuracy gap, the verdicts, the intervals over seeds) on the joined table. The
figures of runs that no one grid can hold (``tools/redraw.py``) read them the same way.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from .errors import ConfigError
from .report import CROSS_CELL_COLUMNS, aggregate_metrics, seed_summary, with_cross_cell_columns

# what identifies a row of each table: a cell (and, in recovery.csv, an evaluation); detection.csv rows whole
ROW_KEYS: dict[str, list[str] | None] = {
    "summary.csv": ["cell"],
    "recovery.csv": ["cell", "steps"],
    "detection.csv": None,
}


def read_runs(folders: list[Path], name: str, *, strict: bool = False) -> pd.DataFrame:
    """One table of every run that has ``name``; a row two runs share is kept once (the same cell is the same model).
    ``strict``: a row that two runs give different values is refused, naming the cell (parts of one run must not
    hold two trainings of a cell that disagree)."""
    tables = [pd.read_csv(folder / name) for folder in folders if (folder / name).is_file()]
    if not tables:
        return pd.DataFrame()
    table = pd.concat(tables, ignore_index=True)
    keys = ROW_KEYS[name]
    if not keys or not set(keys) <= set(table):
        return table.drop_duplicates(ignore_index=True)
    if strict:
        distinct = table.drop_duplicates()
        clashes = distinct[distinct.duplicated(subset=keys, keep=False)]
        if len(clashes):
            cell = clashes.iloc[0]["cell"]
            raise ConfigError(f"{name}: cell {cell} differs between the parts: two runs of one cell, keep one part")
    return table.drop_duplicates(subset=keys, ignore_index=True)


def join_parts(folders: list[Path]) -> dict[str, pd.DataFrame | dict]:
    """The report tables of one run holding every part's cells: summary.csv with its cross-cell columns recomputed,
    seeds.csv, recovery.csv, detection.csv and metrics.json (as ``stages/report.py`` writes them). They are computed
    from the parts' CSVs (six significant digits), so a derived number can differ from a single run's in its sixth
    digit."""
    for folder in folders:
        if not (folder / "summary.csv").is_file():
            raise ConfigError(f"part {folder}: no summary.csv (kept by tools/keep_run.py --part)")
    summary = read_runs(folders, "summary.csv", strict=True)
    summary = with_cross_cell_columns(summary.drop(columns=[c for c in CROSS_CELL_COLUMNS if c in summary]))
    return {
        "summary.csv": summary,
        "seeds.csv": seed_summary(summary),
        "recovery.csv": read_runs(folders, "recovery.csv", strict=True),
        "detection.csv": read_runs(folders, "detection.csv"),
        "metrics.json": aggregate_metrics(summary),
    }
