"""What every stage script shares: argument parsing for the experiment and clean error exits."""

from __future__ import annotations

import argparse
import sys
from typing import Callable

from .config import Experiment, load_experiment
from .errors import ConfigError


def stage_parser(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--params", default="params.yaml", help="parameters file (default: params.yaml)")
    parser.add_argument("--cell", nargs="+", metavar="AXIS=VALUE",
                        help="a grid cell (dataset=.. arch=.. trigger=.. strategy=.. poison_rate=.. regularizer=.. "
                             "seed=..); without it, the focus experiment (top-level scalars)")
    return parser


def experiment(args: argparse.Namespace) -> Experiment:
    return load_experiment(args.params, args.cell)


def run(main: Callable[[argparse.Namespace], None], parser: argparse.ArgumentParser) -> None:
    """Parse, run, and turn a ConfigError into one line on stderr and exit status 2 (no traceback)."""
    args = parser.parse_args()
    try:
        main(args)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
