"""The defender's clean fine-tuning: a few epochs on clean training images, with CA/ASR/RA per epoch."""

from __future__ import annotations

from typing import Callable

import torch

from .classifier import Classifier
from .config import Experiment
from .datasets import Dataset
from .errors import ConfigError
from .evaluation import evaluate
from .loop import fit
from .poisoned_set import PoisonedSet
from .seeding import generator

EpochLog = Callable[[int, dict[str, float]], None]


def clean_finetune_indices(exp: Experiment, poisoned: PoisonedSet) -> torch.Tensor:
    """The defender's clean set: a seeded draw of ``finetune.clean_size`` (a fraction of the training pool, or
    a count) from the pool's images that carry no trigger (neither poisoned nor WaNet cross images).

    These are training images the model has seen, clean, as a defender holding part of the clean training
    data would have them: not held-out images."""
    pool = poisoned.pool[~torch.isin(poisoned.pool, poisoned.indices)]
    count = exp.finetune.clean_count(len(poisoned.pool))
    if count > len(pool):
        raise ConfigError(f"finetune.clean_size: asks for {count} clean images but only {len(pool)} of the "
                          f"{len(poisoned.pool)} training images are unpoisoned")
    order = torch.randperm(len(pool), generator=generator(exp.seed, "finetune-clean-set"))
    return pool[order[:count]].sort().values


def finetune_model(exp: Experiment, clf: Classifier, data: Dataset, poisoned: PoisonedSet,
                   log: EpochLog | None = None, progress: bool = True) -> list[dict[str, float]]:
    """Fine-tune ``clf`` in place on clean data; returns CA/ASR/RA per epoch, epoch 0 = before."""
    keep = clean_finetune_indices(exp, poisoned)
    curve = [{"epoch": 0, **evaluate(clf, data, poisoned)}]
    if log is not None:
        log(0, curve[0])

    def on_epoch_end(epoch: int, train_loss: float) -> None:
        curve.append({"epoch": epoch, "train_loss": train_loss, **evaluate(clf, data, poisoned)})
        if log is not None:
            log(epoch, curve[-1])

    if exp.finetune.epochs > 0:
        fit(clf, data.train.images[keep], data.train.labels[keep], exp.finetune, seed=exp.seed,
            on_epoch_end=on_epoch_end, progress=progress)
    return curve
