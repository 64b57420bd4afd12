"""Join a preset run kept in parts into the preset's own files, as one run of all the parts' cells would write them.

    python tools/keep_run.py reference-cifar10-cpu --part seed-0 --workspace <clone> --stage-times <csv>
    python tools/join_parts.py reference-cifar10-cpu

Reads reports/presets/<preset>/parts/*/ and writes, beside them, summary.csv (the cross-cell columns recomputed on
the joined table: a clean model and its poisoned cells may be in different parts), seeds.csv, recovery.csv,
detection.csv, metrics.json, stage_times.csv (every part's rows, a ``part`` column first), figures/ and run.json (each
part's record). A cell two parts both hold must agree, or nothing is written. The parts' detection/ folders stay
where they are; RUN.md is still written by hand.
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

import pandas as pd

from backdoor.cli import run
from backdoor.errors import ConfigError
from backdoor.files import atomic_dir, read_json, write_csv, write_json
from backdoor.joined_runs import join_parts
from backdoor.plots import grid_figures
from backdoor.report import FLOAT_FORMAT

ROOT = Path(__file__).resolve().parents[1]


def part_folders(preset_dir: Path) -> list[Path]:
    """The parts of a preset run, in name order; each must have been kept whole (its run.json last)."""
    parts = sorted(p for p in (preset_dir / "parts").glob("*") if p.is_dir())
    if not parts:
        raise ConfigError(f"preset: no parts under {preset_dir / 'parts'} (tools/keep_run.py <preset> --part <name>)")
    for part in parts:
        if not (part / "run.json").is_file():
            raise ConfigError(f"part {part}: no run.json, not a kept run (tools/keep_run.py --part)")
    return parts


def joined_stage_times(parts: list[Path]) -> pd.DataFrame:
    timed = [p for p in parts if (p / "stage_times.csv").is_file()]
    tables = [pd.read_csv(p / "stage_times.csv").assign(part=p.name) for p in timed]
    if not tables:
        return pd.DataFrame()
    table = pd.concat(tables, ignore_index=True)
    return table[["part", *(c for c in table if c != "part")]]


def write_figures(tables: dict, parts: list[Path], folder: Path) -> None:
    """The report's figures from the joined tables; the trigger galleries (drawn from the dataset's images, which the
    tables do not hold) from the first part that has each."""
    with atomic_dir(folder) as tmp:
        grid_figures(tables["summary.csv"], tables["recovery.csv"], tables["detection.csv"], tmp)
        for part in parts:
            for gallery in sorted((part / "figures").glob("triggers-*.png")):
                if not (tmp / gallery.name).exists():
                    shutil.copyfile(gallery, tmp / gallery.name)


def join_preset(preset_dir: Path) -> list[str]:
    """Write the joined run into ``preset_dir``; returns the names written. Everything is read and checked first;
    run.json is written last."""
    parts = part_folders(preset_dir)
    tables = join_parts(parts)
    stage_times = joined_stage_times(parts)
    summary = tables["summary.csv"]
    write_figures(tables, parts, preset_dir / "figures")
    for name, table in tables.items():
        if name.endswith(".json"):
            write_json(preset_dir / name, table)
        else:
            write_csv(table, preset_dir / name, FLOAT_FORMAT)
    written = list(tables)
    if len(stage_times):
        write_csv(stage_times, preset_dir / "stage_times.csv")
        written.append("stage_times.csv")
    record = {
        "joined_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "cells": len(summary),
        "seeds": sorted(int(s) for s in summary["seed"].unique()),
        "parts": {p.name: read_json(p / "run.json") for p in parts},
    }
    write_json(preset_dir / "run.json", record)
    return [*written, "figures/", "run.json"]


def main(args: argparse.Namespace) -> None:
    if Path(args.preset).name != args.preset or args.preset in ("", ".", ".."):
        raise ConfigError(f"preset: a folder name under reports/presets/, not {args.preset!r}")
    preset_dir = ROOT / "reports" / "presets" / args.preset
    written = join_preset(preset_dir)
    print(f"{preset_dir.relative_to(ROOT)}: {', '.join(written)} joined from parts/ (run.json lists them)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("preset", help="the folder name under reports/presets/ whose parts/ to join")
    run(main, parser)
