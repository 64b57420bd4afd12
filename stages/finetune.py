"""Stage 4: fine-tune the poisoned model on a small clean set; log CA/ASR/RA per epoch (0 = before).

The focus experiment keeps the fine-tuned model (``--out``) and evaluates it in a stage of its own.
A grid cell writes only ``--report``: one JSON file with the metrics before and after and the
per-epoch curve. One small file per cell instead of two folders keeps DVC's per-stage bookkeeping
low at paper size, and 720 fine-tuned copies of the trained models are not worth their storage
(re-run this script on a cell's model.pt to get its weights).
"""

from pathlib import Path

import pandas as pd

from backdoor.cli import experiment, run, stage_parser
from backdoor.data import load_dataset
from backdoor.errors import ConfigError
from backdoor.experiment import before_after, finetune_model, load_poisoned
from backdoor.io import atomic_dir, write_json
from backdoor.logging import dvclive_logger
from backdoor.training import Classifier


def main(args) -> None:
    if not (args.out or args.report):
        raise ConfigError("finetune: give --out (model folder), --report (metrics file) or both")
    exp = experiment(args)
    data, poisoned = load_dataset(args.raw), load_poisoned(args.poisoned, args.raw)
    clf = Classifier.load(args.model)
    if args.out:
        with atomic_dir(args.out) as tmp:
            log, close = dvclive_logger(Path(tmp) / "live")
            curve = finetune_model(exp, clf, data, poisoned, log=log)
            close()
            clf.save(Path(tmp) / "model.pt")
            pd.DataFrame(curve).to_csv(Path(tmp) / "curve.csv", index=False)
    else:
        curve = finetune_model(exp, clf, data, poisoned)
    if args.report:
        write_json(args.report, {**before_after(curve[0], curve[-1], poisoned), "num_test": len(data.test),
                                 "curve": curve})
    print(f"fine-tuned {exp.finetune.epochs} epochs: ASR {curve[0]['asr']:.3f} -> {curve[-1]['asr']:.3f}")


if __name__ == "__main__":
    parser = stage_parser(__doc__)
    parser.add_argument("--raw", required=True)
    parser.add_argument("--poisoned", required=True)
    parser.add_argument("--model", required=True, help="trained model.pt")
    parser.add_argument("--out", help="output folder: model.pt, curve.csv, live/")
    parser.add_argument("--report", help="output file: metrics before and after, and the per-epoch curve (JSON)")
    run(main, parser)
