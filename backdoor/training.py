"""Train a model on its training pool: the poisoned set (or, for a clean baseline, the clean one)."""

from __future__ import annotations

from typing import Callable

import torch

from .classifier import Classifier, predict
from .config import Experiment
from .datasets import Dataset
from .evaluation import evaluate
from .loop import fit
from .metrics import clean_accuracy
from .poisoned_set import PoisonedSet, training_pool
from .regularizers import build_regularizer

EpochLog = Callable[[int, dict[str, float]], None]


def training_set(exp: Experiment, data: Dataset, poisoned: PoisonedSet | None) -> tuple[torch.Tensor, torch.Tensor]:
    """The images the model trains on: the poisoned set's pool with its delta, or (clean baseline) the same
    seeded pool of the clean training set."""
    if poisoned is not None:
        return poisoned.training_set(data.train.images, data.train.labels)
    pool = training_pool(len(data.train), exp.train.subset, exp.seed)
    return data.train.images[pool], data.train.labels[pool]


def train_model(exp: Experiment, data: Dataset, poisoned: PoisonedSet | None, log: EpochLog | None = None,
                progress: bool = True) -> Classifier:
    """Train on the poisoned set; ``poisoned=None`` trains the clean baseline (CA logged, no ASR)."""
    images, labels = training_set(exp, data, poisoned)
    clf = Classifier.create(exp.arch, images, data.num_classes, pretrained=exp.train.pretrained, seed=exp.seed)
    loss = build_regularizer(exp.regularizer, clf.model, exp.train.label_smoothing, **exp.regularizer_settings)

    def on_epoch_end(epoch: int, train_loss: float) -> None:
        if log is None:
            return
        values = {"train_loss": train_loss, **getattr(loss, "epoch_terms", lambda: {})()}
        if exp.train.eval_every_epoch and poisoned is None:
            values["clean_acc"] = clean_accuracy(predict(clf, data.test.images), data.test.labels)
        elif exp.train.eval_every_epoch:
            values |= evaluate(clf, data, poisoned)
        log(epoch, values)

    fit(clf, images, labels, exp.train, seed=exp.seed, loss_fn=loss, on_epoch_end=on_epoch_end, progress=progress)
    return clf
