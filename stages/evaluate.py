"""Stage 5: CA, ASR and RA of the poisoned model before and after clean fine-tuning -> metrics.json.

The fine-tune stage has evaluated both models on the whole clean and triggered test sets: its curve's epoch 0
is the trained model, its last epoch the fine-tuned one. This stage records those numbers with the poisoned
set's counts (from its manifest) rather than predicting the same 19,000 images twice again (7 of the default
pipeline's seconds).
"""

import csv
from pathlib import Path

from backdoor.cli import run, stage_parser
from backdoor.defence_settings import DefenceExperiment
from backdoor.evaluation import METRIC_KEYS, before_after
from backdoor.files import read_json, write_json
from backdoor.params import load_experiment


def read_curve(path: Path) -> list[dict[str, float]]:
    """The fine-tune stage's curve.csv: CA, ASR and RA per evaluated epoch (0 = before); a diverged model's are NaN."""
    with open(path, newline="") as handle:
        return [{k: float(row[k]) if row[k] else float("nan") for k in METRIC_KEYS} for row in csv.DictReader(handle)]


def main(args) -> None:
    exp = load_experiment(args.params, args.cell, DefenceExperiment)
    curve = read_curve(Path(args.finetuned) / "curve.csv")
    before, after = curve[0], curve[-1]
    counts = read_json(Path(args.poisoned) / "manifest.json")
    write_json(
        args.out,
        {
            **before_after(before, after, counts),
            "experiment": {
                "dataset": exp.dataset,
                "arch": exp.arch,
                "trigger": exp.trigger,
                "strategy": exp.strategy,
                "poison_rate": exp.poison_rate,
                "regularizer": exp.regularizer,
                "seed": exp.seed,
                "finetune_method": exp.ft_method,
            },
        },
    )
    print(
        f"CA {before['clean_acc']:.4f}  ASR {before['asr']:.4f}  RA {before['robust_acc']:.4f}  | after fine-tuning: "
        f"CA {after['clean_acc']:.4f}  ASR {after['asr']:.4f}  RA {after['robust_acc']:.4f}"
    )


if __name__ == "__main__":
    parser = stage_parser(__doc__)
    parser.add_argument("--poisoned", required=True, help="the poisoned set's folder (its manifest's counts)")
    parser.add_argument("--finetuned", required=True, help="the fine-tune stage's folder (curve.csv)")
    parser.add_argument("--out", required=True, help="metrics JSON to write")
    run(main, parser)
