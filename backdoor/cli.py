"""What every stage script shares: argument parsing for the experiment and clean error exits."""

from __future__ import annotations

import argparse
import sys
from typing import Callable

from .config import Experiment, load_experiment
from .errors import ConfigError
from .files import sweep_stale_temporaries
from .lifecycle import stage_process


def stage_parser(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--params", default="params.yaml", help="parameters file (default: params.yaml)")
    parser.add_argument("--cell", nargs="+", metavar="AXIS=VALUE",
                        help="a grid cell (dataset=.. arch=.. trigger=.. strategy=.. poison_rate=.. regularizer=.. "
                             "seed=.. ft_lr=.. ft_clean_size=..); without it, the focus experiment")
    return parser


def experiment(args: argparse.Namespace) -> Experiment:
    return load_experiment(args.params, args.cell)


def run(main: Callable[[argparse.Namespace], None], parser: argparse.ArgumentParser) -> None:
    """Parse, run, and turn a ConfigError into one line on stderr and exit status 2 (no traceback).

    The stage ends cleanly on SIGTERM/SIGINT and with the ``dvc`` that started it (``backdoor.lifecycle``), and
    first removes what killed writers left anywhere in the workspace (``backdoor.files.sweep_stale_temporaries``)."""
    args = parser.parse_args()
    try:
        with stage_process():
            sweep_stale_temporaries()
            main(args)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
