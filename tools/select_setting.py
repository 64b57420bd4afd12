"""Choose a regularizer setting on a validation split of the training set, never on the test set.

    python tools/select_setting.py --params presets/regularizers-cpu.yaml --regularizer snnl \\
        --key factor --values -10 -1 -0.1 -0.01 --out reports/selection/snnl-factor.json

A seeded ``--validation`` images of the training set are held out (the test set is not loaded for
training or scoring). The rest is poisoned and trained on exactly as a grid cell of ``--params`` would
be (its ``grid.settings`` and first dataset/arch/trigger/strategy/poison_rate/seed values), once with
``regularizer: none`` and once per candidate value. Each run reports clean accuracy on the validation
images and ASR on their triggered copies. The chosen value is the strongest candidate (largest
absolute value) whose validation clean accuracy is within ``--tolerance`` points of ``none``'s.
"""

from __future__ import annotations

import argparse
import copy
from pathlib import Path

import torch

from backdoor.cli import run
from backdoor.config import cell_experiment, read_params, slug
from backdoor.data import Dataset, Split, load_dataset
from backdoor.errors import ConfigError, choices_error
from backdoor.experiment import evaluate, poison_dataset, train_model
from backdoor.grid import grid_axes
from backdoor.io import write_json
from backdoor.seeding import generator


def validation_split(data: Dataset, size: int, seed: int) -> Dataset:
    """Train on all but ``size`` seeded training images; the held-out ones play the test set."""
    if not 0 < size < len(data.train):
        raise ConfigError(f"--validation: must be between 1 and {len(data.train) - 1} images, got {size}")
    order = torch.randperm(len(data.train), generator=generator(seed, "validation-split"))
    held, kept = order[:size].sort().values, order[size:].sort().values
    pick = lambda idx: Split(data.train.images[idx], data.train.labels[idx])  # noqa: E731
    return Dataset(data.name, data.classes, pick(kept), pick(held))


def score(params: dict, cell: dict, data: Dataset) -> dict[str, float]:
    exp = cell_experiment(params, cell)
    poisoned = poison_dataset(exp, data)
    metrics = evaluate(train_model(exp, data, poisoned, progress=False), data, poisoned)
    return {"clean_acc": metrics["clean_acc"], "asr": metrics["asr"]}


def select(runs: list[dict], baseline: dict, tolerance: float) -> dict | None:
    """The strongest value whose validation CA is within ``tolerance`` points of the baseline's."""
    ok = [r for r in runs if r["clean_acc"] >= baseline["clean_acc"] - tolerance / 100]
    return max(ok, key=lambda r: abs(r["value"]), default=None)


def main(args: argparse.Namespace) -> None:
    params = read_params(args.params)
    axes = grid_axes(params)
    cell = {axis: values[0] for axis, values in axes.items()}
    tunable = sorted(name for name, values in (params.get("regularizers") or {}).items() if values)
    if args.regularizer not in tunable:
        raise choices_error("--regularizer", args.regularizer, tunable)
    keys = sorted(params["regularizers"][args.regularizer])
    if args.key not in keys:
        raise ConfigError(f"--key: regularizers.{args.regularizer} in {args.params} has no setting {args.key!r}; "
                          f"valid choices: {', '.join(keys)}")
    trials = []
    for value in args.values:  # every candidate validated before any training
        trial = copy.deepcopy(params)
        trial["regularizers"][args.regularizer][args.key] = value
        cell_experiment(trial, cell | {"regularizer": args.regularizer})
        trials.append((value, trial))
    raw = args.raw or f"data/grid/raw/{slug(cell['dataset'])}"
    data = validation_split(load_dataset(raw), args.validation, cell["seed"])
    print(f"validation: {len(data.test)} held-out training images; training on {len(data.train)} "
          f"(then train.subset) as {args.params} grid cells")
    baseline = score(params, cell | {"regularizer": "none"}, data)
    print(f"none: val clean_acc {baseline['clean_acc']:.4f}  val asr {baseline['asr']:.4f}")
    runs = []
    for value, trial in trials:
        runs.append({"value": value, **score(trial, cell | {"regularizer": args.regularizer}, data)})
        print(f"{args.regularizer}.{args.key} = {value:g}: val clean_acc {runs[-1]['clean_acc']:.4f}  "
              f"val asr {runs[-1]['asr']:.4f}")
    chosen = select(runs, baseline, args.tolerance)
    print(f"chosen: {args.regularizer}.{args.key} = {chosen['value']:g}" if chosen
          else f"no value keeps validation clean accuracy within {args.tolerance} points of none")
    if args.out:
        write_json(Path(args.out), {"params": args.params, "cell": cell, "validation_images": args.validation,
                                    "regularizer": args.regularizer, "key": args.key, "tolerance_points": args.tolerance,
                                    "none": baseline, "runs": runs, "chosen": chosen and chosen["value"]})


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--raw", default=None, help="stored dataset (default: data/grid/raw/<first grid dataset>)")
    parser.add_argument("--regularizer", required=True)
    parser.add_argument("--key", required=True, help="the setting to choose, e.g. factor")
    parser.add_argument("--values", type=float, nargs="+", required=True)
    parser.add_argument("--validation", type=int, default=10000, help="held-out training images")
    parser.add_argument("--tolerance", type=float, default=2.0, help="allowed clean-accuracy drop, in points")
    parser.add_argument("--out", help="write the runs and the choice to this JSON file")
    run(main, parser)
