"""Choose a regularizer setting on a validation split of the training set, never on the test set.

    python tools/select_setting.py --preset regularizers-cpu --regularizer snnl \\
        --key factor --values -10 -1 -0.1 -0.01 --out reports/selection/snnl-factor.json

A seeded ``--validation`` images of the training set are held out (the test set is not loaded for
training or scoring). The rest is poisoned and trained on exactly as a grid cell of ``--params`` would
be (its ``grid.settings`` and first dataset/arch/trigger/strategy/poison_rate/seed values), once with
``regularizer: none`` (or ``--none-from`` an earlier report of the same cell and split, to train it once for
several regularizers) and once per candidate value. Each run reports clean accuracy on the validation
images and ASR on their triggered copies. The chosen value is the strongest candidate (largest
absolute value) whose validation clean accuracy is within ``--tolerance`` points of ``none``'s.
"""

from __future__ import annotations

import argparse
import copy
from pathlib import Path

from backdoor.checks import validate_experiment
from backdoor.cli import run
from backdoor.datasets import Dataset, load_dataset, validation_split
from backdoor.defence_settings import DefenceExperiment
from backdoor.errors import ConfigError, choices_error
from backdoor.evaluation import evaluate
from backdoor.files import read_json, write_json
from backdoor.grid import grid_axes
from backdoor.naming import slug
from backdoor.params import read_params
from backdoor.poisoning import poison_dataset
from backdoor.presets import preset_params
from backdoor.regularizers import REGULARIZERS, regularizer_defaults
from backdoor.training import train_model


def score(params: dict, cell: dict, data: Dataset) -> dict[str, float]:
    """Validation CA and ASR of a grid cell trained on ``data.train``; with the loss's own terms in its last
    epoch (SNNL: mean cross-entropy and mean factor x SNNL) when it reports them."""
    exp = DefenceExperiment(params, cell)
    poisoned = poison_dataset(exp, data)
    epochs: list[dict] = []
    model = train_model(exp, data, poisoned, log=lambda epoch, values: epochs.append(values), progress=False)
    metrics = evaluate(model, data, poisoned)
    terms = {k: v for k, v in epochs[-1].items() if k in ("ce", "snnl_term")} if epochs else {}
    if "ce" in terms and "snnl_term" in terms:
        terms["term_to_ce"] = abs(terms["snnl_term"]) / terms["ce"]
    return {"clean_acc": metrics["clean_acc"], "asr": metrics["asr"], **terms}


def select(runs: list[dict], baseline: dict, tolerance: float) -> dict | None:
    """The strongest value whose validation CA is within ``tolerance`` points of the baseline's."""
    ok = [r for r in runs if r["clean_acc"] >= baseline["clean_acc"] - tolerance / 100]
    return max(ok, key=lambda r: abs(r["value"]), default=None)


def first_cell(params: dict) -> dict:
    """The grid cell a selection trains: the first value of every grid axis."""
    return {axis: axis_values[0] for axis, axis_values in grid_axes(params).items()}


def select_setting(
    params: dict,
    regularizer: str,
    key: str,
    values: list[float],
    *,
    raw: str | None = None,
    validation: int = 10000,
    tolerance: float = 2.0,
    baseline: dict | None = None,
    log=print,
) -> dict:
    """Train ``none`` (unless ``baseline`` holds its scores) and one grid cell per candidate value on a
    validation split; return every run and the choice (see ``select``). Every candidate is validated before
    any training."""
    cell = first_cell(params)
    if regularizer not in REGULARIZERS or regularizer == "none":
        raise choices_error("--regularizer", regularizer, sorted(set(REGULARIZERS) - {"none"}))
    keys = sorted(regularizer_defaults(regularizer))
    if key not in keys:
        raise ConfigError(f"--key: regularizers.{regularizer} has no setting {key!r}; valid choices: {', '.join(keys)}")
    trials = []
    for value in values:
        trial = copy.deepcopy(params)
        trial.setdefault("regularizers", {}).setdefault(regularizer, {})[key] = value
        validate_experiment(DefenceExperiment(trial, cell | {"regularizer": regularizer}))
        trials.append((value, trial))
    data = validation_split(load_dataset(raw or f"data/grid/raw/{slug(cell['dataset'])}"), validation, cell["seed"])
    log(
        f"validation: {len(data.test)} held-out training images; training on {len(data.train)} "
        f"(then train.subset) as grid cells"
    )
    baseline = baseline if baseline is not None else score(params, cell | {"regularizer": "none"}, data)
    log(f"none: val clean_acc {baseline['clean_acc']:.4f}  val asr {baseline['asr']:.4f}")
    runs = []
    for value, trial in trials:
        runs.append({"value": value, **score(trial, cell | {"regularizer": regularizer}, data)})
        ratio = f"  |term| / CE {runs[-1]['term_to_ce']:.3f}" if "term_to_ce" in runs[-1] else ""
        log(
            f"{regularizer}.{key} = {value:g}: val clean_acc {runs[-1]['clean_acc']:.4f}  "
            f"val asr {runs[-1]['asr']:.4f}{ratio}"
        )
    chosen = select(runs, baseline, tolerance)
    log(
        f"chosen: {regularizer}.{key} = {chosen['value']:g}"
        if chosen
        else f"no value keeps validation clean accuracy within {tolerance} points of none"
    )
    return {
        "cell": cell,
        "validation_images": validation,
        "regularizer": regularizer,
        "key": key,
        "tolerance_points": tolerance,
        "none": baseline,
        "runs": runs,
        "chosen": chosen and chosen["value"],
    }


def earlier_baseline(path: Path, params_name: str, cell: dict, validation: int) -> dict:
    """``none``'s scores from an earlier report, refused unless it scored the same cell on the same split."""
    try:
        report = read_json(path)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"--none-from: cannot read a selection report from {path} ({exc})") from None
    scored = (report.get("params"), report.get("cell"), report.get("validation_images"))
    if scored != (params_name, cell, validation):
        raise ConfigError(
            f"--none-from: {path} scored {report.get('params')} cell {report.get('cell')} on "
            f"{report.get('validation_images')} images, not {params_name} cell {cell} on {validation}"
        )
    return report["none"]


def main(args: argparse.Namespace) -> None:
    params = preset_params(args.preset) if args.preset else read_params(args.params)
    params_name = f"presets/{args.preset}.yaml" if args.preset else args.params
    baseline = (
        earlier_baseline(Path(args.none_from), params_name, first_cell(params), args.validation)
        if args.none_from
        else None
    )
    report = select_setting(
        params,
        args.regularizer,
        args.key,
        args.values,
        raw=args.raw,
        validation=args.validation,
        tolerance=args.tolerance,
        baseline=baseline,
    )
    if args.out:
        write_json(Path(args.out), {"params": params_name, **report})


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
    parser.add_argument("--none-from", help="take none's scores from this earlier report instead of training it")
    parser.add_argument("--out", help="write the runs and the choice to this JSON file")
    run(main, parser)
