"""Stage `check`: validate the whole params.yaml before DVC touches any other stage's outputs.

DVC removes a stage's outputs just before running its command, so a bad value caught by the stage itself
would already have cost the user those outputs. Every focus stage and the grid report depend on this
stage's output, so DVC runs it first; it checks the focus experiment, every trigger and regularizer
setting, the grid (every cell) and that grid/ is planned from this params.yaml. Its output
(``persist``: never removed before a run) holds one fixed line, so a valid change never makes anything
downstream stale through it.

Where the dataset is already stored (``--raw``, ``--grid-raw``), the rules only the data can judge (how many images
of the drawn training pool a strategy may poison) are judged here too, on its labels. They are read, not declared:
this stage's output is one fixed line whatever they hold, and on a machine where the data is not stored yet no
output downstream of it exists to lose (the poison stage judges the same rule before it writes).
"""

import argparse
from pathlib import Path

from backdoor.checks import validate_params
from backdoor.cli import run
from backdoor.files import atomic_path, read_json
from backdoor.params import read_params

VALID = "params.yaml is valid (stages/check.py)\n"


def main(args: argparse.Namespace) -> None:
    planned = Path(args.plan).is_file()
    validate_params(
        read_params(args.params),
        read_json(args.plan) if planned else None,
        read_json(args.settings) if planned else None,
        focus_raw=args.raw,
        grid_raw=args.grid_raw,
    )
    out = Path(args.out)
    if not out.is_file() or out.read_text() != VALID:
        with atomic_path(out) as tmp:
            tmp.write_text(VALID)
    print(f"{args.params}: valid")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--plan", default="grid/plan.json")
    parser.add_argument("--settings", default="grid/settings.json")
    parser.add_argument("--raw", default="data/raw/focus", help="the focus dataset, where already stored")
    parser.add_argument("--grid-raw", default="data/grid/raw", help="the grid's datasets, where already stored")
    parser.add_argument("--out", default="reports/params-valid.txt")
    run(main, parser)
