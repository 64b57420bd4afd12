"""Stage 4: fine-tune the poisoned model on a small clean set; log CA/ASR/RA per epoch (0 = before).

With ``--report`` it also writes the before/after metrics: grid cells need no evaluate stage of their own
(fewer stages, less DVC bookkeeping).
"""

from pathlib import Path

import pandas as pd

from backdoor.cli import experiment, run, stage_parser
from backdoor.data import load_dataset
from backdoor.experiment import finetune_model, load_poisoned
from backdoor.io import atomic_dir, write_json
from backdoor.logging import dvclive_logger
from backdoor.training import Classifier


def main(args) -> None:
    exp = experiment(args)
    data, poisoned = load_dataset(args.raw), load_poisoned(args.poisoned)
    clf = Classifier.load(args.model)
    with atomic_dir(args.out) as tmp:
        log, close = dvclive_logger(Path(tmp) / "live")
        curve = finetune_model(exp, clf, data, poisoned, log=log)
        close()
        clf.save(Path(tmp) / "model.pt")
        pd.DataFrame(curve).to_csv(Path(tmp) / "curve.csv", index=False)
    if args.report:  # grid cells: the evaluation lives here instead of in a stage of its own
        before, after = curve[0], curve[-1]
        keys = ("clean_acc", "asr", "robust_acc")
        with atomic_dir(args.report) as tmp:
            pd.DataFrame(curve).to_csv(Path(tmp) / "curve.csv", index=False)
            write_json(Path(tmp) / "metrics.json", {**{k: before[k] for k in keys},
                                                    "finetuned": {k: after[k] for k in keys},
                                                    "num_poisoned": poisoned.num_poisoned,
                                                    "num_test": len(data.test),
                                                    "num_triggered_test": len(poisoned.test_indices)})
    print(f"fine-tuned {exp.finetune.epochs} epochs: ASR {curve[0]['asr']:.3f} -> {curve[-1]['asr']:.3f}")


if __name__ == "__main__":
    parser = stage_parser(__doc__)
    parser.add_argument("--raw", required=True)
    parser.add_argument("--poisoned", required=True)
    parser.add_argument("--model", required=True, help="trained model.pt")
    parser.add_argument("--out", required=True, help="output folder: model.pt, curve.csv, live/")
    parser.add_argument("--report", help="also write metrics.json (before/after) and curve.csv into this folder")
    run(main, parser)
