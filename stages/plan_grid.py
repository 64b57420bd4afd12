"""Plan the grid: write grid/plan.json, grid/settings.json and the shard files grid/shard-NN/dvc.yaml.

Run after editing params.yaml (``make grid``; ``make repro`` does it); the check stage refuses a stale
plan. The layout and why it is so: backdoor/pipeline/plan.py.
"""

import argparse
from pathlib import Path

from backdoor.checks import validate_grid
from backdoor.cli import run
from backdoor.params import read_params
from backdoor.pipeline.plan import write_plan


def main(args: argparse.Namespace) -> None:
    params = read_params(args.params)
    summary = write_plan(params, validate_grid(params), Path(args.grid_dir))
    print(f"grid: {len(summary['cells'])} cells, {summary['num_stages']} stages in {summary['shards']} shard files")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--grid-dir", default="grid")
    run(main, parser)
