"""What every stage script shares: argument parsing for the experiment and clean error exits."""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path

from .errors import ConfigError
from .files import sweep_stale_temporaries
from .lifecycle import stage_process
from .params import Experiment, load_experiment, write_read_log

READ_LOG = "BACKDOOR_PARAMS_READ"  # a folder: where each stage writes the params keys it read (tests/test_e2e.py)


def stage_parser(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--params", default="params.yaml", help="parameters file (default: params.yaml)")
    parser.add_argument(
        "--cell",
        nargs="+",
        metavar="AXIS=VALUE",
        help="a grid cell (dataset=.. arch=.. trigger=.. strategy=.. poison_rate=.. regularizer=.. "
        "seed=.. ft_lr=.. ft_clean_size=..); without it, the focus experiment",
    )
    return parser


def experiment(args: argparse.Namespace) -> Experiment:
    return load_experiment(args.params, args.cell)


def use_threads(exp: Experiment) -> None:
    """Torch's CPU threads from the experiment's ``threads``: a stage that computes with a model calls this first,
    so that its bytes depend on a declared parameter, not on the machine's core count."""
    import torch

    torch.set_num_threads(exp.threads)


def run(main: Callable[[argparse.Namespace], None], parser: argparse.ArgumentParser) -> None:
    """Parse, run, and turn a ConfigError into one line on stderr and exit status 2 (no traceback).

    The stage ends cleanly on SIGTERM/SIGINT and with the ``dvc`` that started it (``backdoor.lifecycle``), and
    first removes what killed writers left anywhere in the workspace (``backdoor.files.sweep_stale_temporaries``)."""
    args = parser.parse_args()
    start = time.perf_counter()
    try:
        with stage_process():
            sweep_stale_temporaries()
            main(args)
        print(stage_time(start))
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    finally:
        if os.environ.get(READ_LOG):
            write_read_log(Path(os.environ[READ_LOG]) / f"{os.getpid()}.json", sys.argv)


STAGE_TIME = "stage time:"  # tools/time_stages.py reads these lines


def stage_time(start: float) -> str:
    """One line with the stage's wall and CPU seconds (its own process: user + system), printed, never recorded in
    an output (a timing in a locked output would make every fresh clone's lock differ)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return f"{STAGE_TIME} wall {time.perf_counter() - start:.1f} s, cpu {usage.ru_utime + usage.ru_stime:.1f} s"
