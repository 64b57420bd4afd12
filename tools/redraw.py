"""Redraw a committed run's figures from its CSVs, with today's figure code (no rerun, no DVC):

    python tools/redraw.py reports/presets/cifar10-cpu        # -> reports/presets/cifar10-cpu/figures/

Several runs drawn together (models whose training settings no one grid can hold, as the resnet6-cpu core and the
airbench reference model): their tables are joined, a cell two runs share counted once, into the folder --out:

    python tools/redraw.py reports/presets/verdicts-ft-cifar10-cpu reports/presets/verdicts-convergence-cifar10-cpu \
        --out reports/figures/verdicts

Reads summary.csv, recovery.csv and (where present) detection.csv, as the report stage wrote them.
"""

import argparse
from pathlib import Path

from backdoor.cli import run
from backdoor.errors import ConfigError
from backdoor.joined_runs import ROW_KEYS, read_runs
from backdoor.plots import grid_figures


def main(args: argparse.Namespace) -> None:
    folders = [Path(folder) for folder in args.folder]
    if len(folders) > 1 and args.out is None:
        raise ConfigError("--out: required with several folders (the joined figures belong to none of them)")
    for folder in folders:
        for name in ("summary.csv", "recovery.csv"):
            if not (folder / name).is_file():
                raise ConfigError(
                    f"folder: no {name} in {folder} (a grid report's folder: reports/grid or reports/presets/<preset>)"
                )
    out = Path(args.out) if args.out else folders[0] / "figures"
    grid_figures(*(read_runs(folders, name) for name in ROW_KEYS), out)
    print(f"{out}: redrawn from {', '.join(map(str, folders))}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", nargs="+")
    parser.add_argument("--out", help="where the figures go (default: <folder>/figures; required with several)")
    run(main, parser)
