"""Stage 3: train a model on the poisoned training set; DVCLive logs loss, CA and ASR per epoch."""

from pathlib import Path

from backdoor.cli import experiment, run, stage_parser
from backdoor.data import load_dataset
from backdoor.experiment import load_poisoned, train_model, training_data_digests
from backdoor.io import atomic_dir
from backdoor.logging import dvclive_logger


def main(args) -> None:
    exp = experiment(args)
    data = load_dataset(args.raw)
    poisoned = load_poisoned(args.poisoned, args.raw) if args.poisoned else None
    with atomic_dir(args.out) as tmp:
        log, close = dvclive_logger(Path(tmp) / "live")
        clf = train_model(exp, data, poisoned, log=log)
        close()
        clf.trained_on = training_data_digests(args.raw, args.poisoned)
        clf.save(Path(tmp) / "model.pt")
    print(f"saved {args.out}/model.pt")


if __name__ == "__main__":
    parser = stage_parser(__doc__)
    parser.add_argument("--raw", required=True, help="stored dataset folder")
    parser.add_argument("--poisoned", help="poison stage output folder; without it, the clean baseline")
    parser.add_argument("--out", required=True, help="output folder for model.pt and live/")
    run(main, parser)
