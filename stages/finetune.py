"""Stage 4: fine-tune trained models on a small clean set; log CA/ASR/RA per epoch (0 = before).

The focus experiment fine-tunes one model, keeps it (``--out``) and evaluates it in a stage of its own.
A grid stage fine-tunes the cells of one family, every poison rate of one (dataset, arch, trigger,
strategy, regularizer, seed, ft_lr, ft_clean_size): ``--poison-rate``, ``--poisoned`` and ``--model``
are parallel lists, one entry per cell, and ``--report`` is one JSON file, cell name -> metrics before
and after and the per-epoch curve. Grid cells keep no fine-tuned weights: hundreds of copies of the
trained models are not worth their storage (run this script on one cell's model.pt with ``--out`` to
get its weights).
"""

from __future__ import annotations

import argparse
import contextlib
from pathlib import Path

from backdoor.classifier import load_trained
from backdoor.cli import run, stage_parser, use_threads
from backdoor.datasets import load_dataset
from backdoor.defence_settings import DefenceExperiment, check_finetuning
from backdoor.epoch_log import dvclive_logger
from backdoor.errors import ConfigError
from backdoor.evaluation import before_after, poisoned_counts
from backdoor.files import atomic_dir, write_json
from backdoor.finetuning import finetune_model
from backdoor.naming import cell_name
from backdoor.params import load_experiment
from backdoor.poisoned_set import load_poisoned
from backdoor.settings import pool_size


def cell_experiments(args: argparse.Namespace) -> list[DefenceExperiment]:
    """One experiment per model, checked before any loading: the lists must line up."""
    if not (args.out or args.report):
        raise ConfigError("finetune: give --out (model folder), --report (metrics file) or both")
    count = len(args.model)
    lists = {"--poisoned": args.poisoned, "--poison-rate": args.poison_rate}
    mismatched = [f"{name} ({len(values)})" for name, values in lists.items() if values and len(values) != count]
    if mismatched:
        raise ConfigError(f"finetune: one entry per --model ({count}) expected in {', '.join(mismatched)}")
    if args.out and count > 1:
        raise ConfigError(f"finetune: --out keeps one model's weights, got {count} models")
    if not args.poison_rate:
        return [load_experiment(args.params, args.cell, DefenceExperiment)]
    if not args.cell or any(pair.startswith("poison_rate=") for pair in args.cell):
        raise ConfigError("finetune: --poison-rate needs --cell with every other axis (and no poison_rate=)")
    return [
        load_experiment(args.params, [*args.cell, f"poison_rate={rate}"], DefenceExperiment)
        for rate in args.poison_rate
    ]


def main(args: argparse.Namespace) -> None:
    experiments = cell_experiments(args)
    use_threads(experiments[0])
    data = load_dataset(args.raw)  # once for the whole family
    for exp in experiments:
        check_finetuning(exp.finetune, pool_size(exp.subset, len(data.train)), exp.poison_rate)
    report = {}
    defended = atomic_dir(args.defended) if args.defended else contextlib.nullcontext()
    with defended as defended_dir:
        for exp, poisoned_dir, model in zip(experiments, args.poisoned, args.model):
            name, record = defend(args, exp, data, poisoned_dir, model, defended_dir)
            report[name] = record
    if args.report:
        write_json(args.report, report)  # a diverged model's metrics: null


def defend(
    args: argparse.Namespace, exp: DefenceExperiment, data, poisoned_dir: str, model: str, defended_dir: Path | None
) -> tuple[str, dict]:
    """One cell: its model fine-tuned by the defence (kept in ``defended_dir`` when given, for re-learning)."""
    poisoned = load_poisoned(poisoned_dir, args.raw)
    clf = load_trained(model, args.raw, poisoned_dir)
    if args.out:
        with atomic_dir(args.out) as tmp:
            log, close = dvclive_logger(Path(tmp) / "live")
            curve = finetune_model(exp, clf, data, poisoned, log=log)
            close()
            clf.save(Path(tmp) / "model.pt")
            import pandas as pd  # the focus experiment's curve only: a grid family skips its import

            pd.DataFrame(curve).to_csv(Path(tmp) / "curve.csv", index=False)
    else:
        curve = finetune_model(exp, clf, data, poisoned)
    name = cell_name(exp.axes()) if args.report else "focus"
    if defended_dir is not None:
        clf.save(Path(defended_dir) / f"{name}.pt")
    last = curve[-1]
    print(
        f"{name}: {exp.finetune.method}, {last['epoch']} epochs = {last['steps']} optimizer steps, "
        f"ASR {curve[0]['asr']:.3f} -> {last['asr']:.3f}"
    )
    return name, {
        **before_after(curve[0], curve[-1], poisoned_counts(poisoned)),
        "num_test": len(data.test),
        "curve": curve,
    }


if __name__ == "__main__":
    parser = stage_parser(__doc__)
    parser.add_argument("--raw", required=True)
    parser.add_argument("--poisoned", required=True, nargs="+", help="poisoned set folder(s), one per model")
    parser.add_argument("--model", required=True, nargs="+", help="trained model.pt file(s)")
    parser.add_argument(
        "--poison-rate",
        nargs="+",
        type=float,
        help="with --cell (all other axes): each model's poison rate, one grid cell per model",
    )
    parser.add_argument("--out", help="output folder for a single model: model.pt, curve.csv, live/")
    parser.add_argument("--defended", help="output folder: each cell's fine-tuned model, <cell name>.pt (re-learning)")
    parser.add_argument(
        "--report", help="output file (JSON): cell name -> metrics before and after and the per-epoch curve"
    )
    run(main, parser)
