"""Stage 3: train a model on its poisoned training pool; DVCLive logs loss, CA and ASR per epoch."""

from pathlib import Path

import torch

from backdoor.classifier import training_data_digests
from backdoor.cli import experiment, run, stage_parser, use_threads
from backdoor.datasets import load_dataset
from backdoor.epoch_log import dvclive_logger
from backdoor.errors import ConfigError
from backdoor.files import atomic_dir
from backdoor.models import check_model_settings
from backdoor.poisoned_set import load_poisoned, training_pool
from backdoor.recipes import check_recipe
from backdoor.regularizers import check_regularizer
from backdoor.settings import check_training
from backdoor.training import train_model


def main(args) -> None:
    exp = experiment(args)
    use_threads(exp)
    check_model_settings(exp.arch, exp.model_settings, exp.train.pretrained)
    check_recipe(exp.recipe, exp.recipe_settings, exp.train)
    check_regularizer(exp.regularizer, exp.regularizer_settings)
    data = load_dataset(args.raw)
    check_training(exp.train, len(data.train))
    poisoned = load_poisoned(args.poisoned, args.raw) if args.poisoned else None
    if poisoned is not None and not torch.equal(poisoned.pool, training_pool(len(data.train), exp.subset, exp.seed)):
        raise ConfigError(
            f"{args.poisoned} was drawn for another training pool (train.subset or seed): "
            f"re-run its poison stage (dvc repro)"
        )
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
