"""Train a model on its training pool: the poisoned set (or, for a clean baseline, the clean one)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import torch

from .classifier import Classifier, predict
from .datasets import Dataset
from .errors import ConfigError
from .evaluation import evaluate
from .files import sha256_file
from .metrics import clean_accuracy
from .models import classifier_head
from .params import Experiment
from .poisoned_set import PoisonedSet, training_pool
from .recipes import build_recipe
from .regularizers import build_regularizer

EpochLog = Callable[[int, dict[str, float]], None]


def training_set(exp: Experiment, data: Dataset, poisoned: PoisonedSet | None) -> tuple[torch.Tensor, torch.Tensor]:
    """The images the model trains on: the poisoned set's pool with its delta, or (clean baseline) the same
    seeded pool of the clean training set."""
    if poisoned is not None:
        return poisoned.training_set(data.train.images, data.train.labels)
    pool = training_pool(len(data.train), exp.subset, exp.seed)
    return data.train.images[pool], data.train.labels[pool]


def train_model(
    exp: Experiment, data: Dataset, poisoned: PoisonedSet | None, log: EpochLog | None = None, progress: bool = True
) -> Classifier:
    """Train on the poisoned set; ``poisoned=None`` trains the clean baseline (CA logged, no ASR)."""
    images, labels = training_set(exp, data, poisoned)
    clf = Classifier.create(
        exp.arch, images, data.num_classes, pretrained=exp.train.pretrained, seed=exp.seed, **exp.model_settings
    )
    if exp.train.init is not None:
        start_from(clf, exp.train.init)
    recipe = build_recipe(exp.recipe, **exp.recipe_settings)
    loss = build_regularizer(exp.regularizer, clf.model, recipe.label_smoothing(exp.train), **exp.regularizer_settings)

    started = time.perf_counter()

    def on_epoch_end(epoch: int, train_loss: float) -> None:
        if progress:  # one line an epoch: a long CPU training shows how far it is in the stage's log
            print(
                f"epoch {epoch}/{exp.train.epochs}: loss {train_loss:.4f}, {time.perf_counter() - started:.0f} s",
                flush=True,
            )
        if log is None:
            return
        values = {"train_loss": train_loss, **getattr(loss, "epoch_terms", lambda: {})()}
        if exp.train.eval_every_epoch and poisoned is None:
            values["clean_acc"] = clean_accuracy(predict(clf, data.test.images), data.test.labels)
        elif exp.train.eval_every_epoch:
            values |= evaluate(clf, data, poisoned)
        log(epoch, values)

    head = None if exp.train.freeze == "none" else list(classifier_head(clf.model).parameters())
    steps = recipe.fit(
        clf,
        images,
        labels,
        exp.train,
        seed=exp.seed,
        loss_fn=loss,
        on_epoch_end=on_epoch_end,
        progress=progress,
        params=head,
        freeze_norm_stats=head is not None,
    )
    clf.training = {
        "recipe": exp.recipe,
        "epochs": exp.train.epochs,
        "steps": steps,
        "peak_lr": recipe.peak_lr(exp.train),
        "label_smoothing": recipe.label_smoothing(exp.train),
    }
    return clf


def start_from(clf: Classifier, path: str | Path) -> None:
    """The transfer setting (``train.init``): every weight and BatchNorm statistic of a trained model of the same
    arch, but its head, which keeps this model's seeded initialisation (the classes differ). The source's
    digest joins ``trained_on``, so the new model's bytes change with it."""
    source = Classifier.load(path)
    if (source.arch, source.in_chans) != (clf.arch, clf.in_chans):
        raise ConfigError(
            f"train.init: {path} is a {source.arch} on {source.in_chans} channels; this model is a "
            f"{clf.arch} on {clf.in_chans}"
        )
    head = {id(p) for p in classifier_head(clf.model).parameters()}
    head_names = {name for name, p in clf.model.named_parameters() if id(p) in head}
    state = {k: v for k, v in source.model.state_dict().items() if k not in head_names}
    missing, unexpected = clf.model.load_state_dict(state, strict=False)
    if set(missing) != head_names or unexpected:
        raise ConfigError(
            f"train.init: {path} does not fit this {clf.arch}: missing {sorted(set(missing) - head_names)},"
            f" unexpected {sorted(unexpected)}"
        )
    clf.init_from = sha256_file(path)
