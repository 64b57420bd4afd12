"""Grid stage (optional, ``grid.relearn: true``): re-learning after a defence (Min et al., NeurIPS 2024).

For each poisoned cell of a family: a copy of its defended model (the fine-tune stage's ``--defended`` folder) and a
copy of the family's clean model (its rate-0 cell's trained model, never poisoned, never defended) are re-tuned on
the defender's clean set plus ``relearn.poisons`` of the cell's poisoned images (``backdoor.relearning``); the
report holds CA, ASR and RA of both copies. The model files are read, never written.
"""

from __future__ import annotations

import argparse

from backdoor.classifier import Classifier
from backdoor.cli import run, stage_parser, use_threads
from backdoor.datasets import load_dataset
from backdoor.defence_settings import DefenceExperiment
from backdoor.errors import ConfigError
from backdoor.files import write_json
from backdoor.naming import cell_name
from backdoor.params import load_experiment
from backdoor.poisoned_set import load_poisoned
from backdoor.relearning import relearn, relearn_set


def main(args: argparse.Namespace) -> None:
    if len(args.poisoned) != len(args.poison_rate):
        raise ConfigError(
            f"relearn: one --poisoned per --poison-rate ({len(args.poison_rate)}), got {len(args.poisoned)}"
        )
    cells = [
        load_experiment(args.params, [*args.cell, f"poison_rate={rate}"], DefenceExperiment)
        for rate in args.poison_rate
    ]
    use_threads(cells[0])
    for exp in cells:
        exp.relearn  # noqa: B018  (a bad setting fails before any loading)
    data = load_dataset(args.raw)
    clean = Classifier.load(args.clean_model) if args.clean_model else None
    report = {}
    for exp, poisoned_dir in zip(cells, args.poisoned):
        name = cell_name(exp.axes())
        poisoned = load_poisoned(poisoned_dir, args.raw)
        images, labels = relearn_set(exp, data, poisoned, exp.relearn)
        defended = Classifier.load(f"{args.defended}/{name}.pt")
        record = relearn(defended, images, labels, exp.relearn, data, poisoned, exp.seed)
        if clean is not None:
            record |= {
                f"clean_model_{k}": v
                for k, v in relearn(clean, images, labels, exp.relearn, data, poisoned, exp.seed).items()
            }
        report[name] = record
        print(
            f"{name}: re-learning ASR {record['relearn_asr']:.3f} (the clean model's: "
            f"{record.get('clean_model_relearn_asr', float('nan')):.3f})"
        )
    write_json(args.report, report)


if __name__ == "__main__":
    parser = stage_parser(__doc__)
    parser.add_argument("--raw", required=True)
    parser.add_argument("--poison-rate", required=True, nargs="+", type=float, help="the family's poisoned cells")
    parser.add_argument("--poisoned", required=True, nargs="+", help="their poisoned sets, one per rate")
    parser.add_argument("--defended", required=True, help="the fine-tune stage's folder of defended models")
    parser.add_argument("--clean-model", help="the family's clean model (rate 0); without it, no comparison")
    parser.add_argument("--report", required=True, help="output JSON: cell name -> re-learning metrics")
    run(main, parser)
