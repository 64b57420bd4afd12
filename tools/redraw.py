"""Redraw a committed run's figures from its CSVs, with today's figure code (no rerun, no DVC):

    python tools/redraw.py reports/presets/cifar10-cpu        # -> reports/presets/cifar10-cpu/figures/

Reads summary.csv, recovery.csv and (where present) detection.csv, as the report stage wrote them.
"""

import argparse
from pathlib import Path

import pandas as pd

from backdoor.cli import run
from backdoor.errors import ConfigError
from backdoor.plots import grid_figures


def main(args: argparse.Namespace) -> None:
    folder = Path(args.folder)
    for name in ("summary.csv", "recovery.csv"):
        if not (folder / name).is_file():
            raise ConfigError(
                f"folder: no {name} in {folder} (a grid report's folder: reports/grid or reports/presets/<preset>)"
            )
    detection = folder / "detection.csv"
    grid_figures(
        pd.read_csv(folder / "summary.csv"),
        pd.read_csv(folder / "recovery.csv"),
        pd.read_csv(detection) if detection.is_file() else pd.DataFrame(),
        folder / "figures",
    )
    print(f"{folder}/figures: redrawn")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder")
    run(main, parser)
