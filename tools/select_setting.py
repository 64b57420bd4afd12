"""Choose a regularizer setting on a validation split of the training set, never on the test set.

    python tools/select_setting.py --preset regularizers-cpu --regularizer snnl \\
        --key factor --values -10 -1 -0.1 --out reports/selection/snnl-factor.json

How the split and the choice are made: backdoor/selection.py.
"""

import argparse
from pathlib import Path

from backdoor.cli import run
from backdoor.config import read_params
from backdoor.io import write_json
from backdoor.presets import preset_params
from backdoor.selection import select_setting


def main(args: argparse.Namespace) -> None:
    params = preset_params(args.preset) if args.preset else read_params(args.params)
    report = select_setting(params, args.regularizer, args.key, args.values, raw=args.raw,
                            validation=args.validation, tolerance=args.tolerance)
    if args.out:
        write_json(Path(args.out), {"params": f"presets/{args.preset}.yaml" if args.preset else args.params, **report})  # a diverged run's NaN: null


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--preset", help="a preset's name: params.yaml with presets/<name>.yaml laid on it")
    parser.add_argument("--raw", default=None, help="stored dataset (default: data/grid/raw/<first grid dataset>)")
    parser.add_argument("--regularizer", required=True)
    parser.add_argument("--key", required=True, help="the setting to choose, e.g. factor")
    parser.add_argument("--values", type=float, nargs="+", required=True)
    parser.add_argument("--validation", type=int, default=10000, help="held-out training images")
    parser.add_argument("--tolerance", type=float, default=2.0, help="allowed clean-accuracy drop, in points")
    parser.add_argument("--out", help="write the runs and the choice to this JSON file")
    run(main, parser)
