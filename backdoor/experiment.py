"""One experiment end to end, as functions the stage scripts call: poison, train, fine-tune, evaluate."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch

from .config import Experiment
from .data import Dataset
from .errors import ConfigError
from .io import load_tensors, manifest_sha256, read_json
from .metrics import backdoor_metrics, clean_accuracy
from .poisoning import PoisonedSet, build_strategy, make_poisoned_set
from .regularizers import build_regularizer
from .seeding import generator
from .training import Classifier, fit, predict, predict_sets
from .triggers import Trigger, build_trigger

EpochLog = Callable[[int, dict[str, float]], None]


def poison_dataset(exp: Experiment, data: Dataset) -> PoisonedSet:
    shape = tuple(data.train.images.shape[1:])
    trigger = build_trigger(exp.trigger, shape, seed=exp.seed, size=exp.trigger_size,
                            location=exp.trigger_location, **exp.trigger_settings)
    strategy = build_strategy(exp.strategy, exp.target, exp.source, data.num_classes)
    return make_poisoned_set(data.train.images, data.train.labels, data.test.images, data.test.labels,
                             trigger, strategy, exp.poison_rate, exp.seed)


def trigger_zoo(exp: Experiment, shape: tuple[int, int, int], settings: dict[str, dict],
                names: list[str] | None = None) -> dict[str, Trigger]:
    """Every registered trigger (or ``names``) with the experiment's size, location and settings.

    Full-image triggers take no location: they get the default corner instead of ``random``.
    """
    from .triggers import PATCH_TRIGGERS, TRIGGERS

    zoo = {}
    for name in names or sorted(TRIGGERS):
        location = exp.trigger_location if name in PATCH_TRIGGERS else "bottom-right"
        zoo[name] = build_trigger(name, shape, seed=exp.seed, size=exp.trigger_size, location=location,
                                  **(settings.get(name) or {}))
    return zoo


def load_poisoned(folder: str | Path, raw: str | Path | None = None) -> PoisonedSet:
    """Load a poisoned set (checksummed). With ``raw``, also check it was built from that stored dataset:
    grid stages depend on the poisoned set's manifest alone, which pins the dataset by this digest."""
    manifest = read_json(Path(folder) / "manifest.json")
    if raw is not None and manifest.get("raw_manifest_sha256") != manifest_sha256(raw):
        raise ConfigError(f"{folder} was not built from the dataset in {raw}: re-run its poison stage (dvc repro)")
    return PoisonedSet.from_dict(load_tensors(Path(folder) / "poison.pt", manifest["sha256"]["poison.pt"]))


def training_data_digests(raw: str | Path, poisoned: str | Path | None) -> dict[str, str | None]:
    """What a model is trained on, by the sha256 of the manifests (each pins its files): saved in
    model.pt, so a model's bytes change whenever its training data do and a stage that reads a model
    can depend on model.pt instead of also on the data it was trained on."""
    return {"dataset": manifest_sha256(raw), "poisoned": manifest_sha256(poisoned) if poisoned is not None else None}


def load_trained(model: str | Path, raw: str | Path, poisoned: str | Path) -> Classifier:
    """A trained model, checked to come from this dataset and, unless it is a clean baseline, from
    this poisoned set (whose triggered test set evaluates it)."""
    clf = Classifier.load(model)
    expected = training_data_digests(raw, poisoned if clf.trained_on.get("poisoned") else None)
    if clf.trained_on != expected:
        raise ConfigError(f"{model} was not trained on {raw} and {poisoned}: re-run its train stage (dvc repro)")
    return clf


def evaluate(clf: Classifier, data: Dataset, poisoned: PoisonedSet) -> dict[str, float]:
    """CA on the clean test set; ASR and RA on the triggered test set (see backdoor.metrics)."""
    clean, triggered = predict_sets(clf, [data.test.images, poisoned.test_images])  # one fused model copy
    return backdoor_metrics(clean, data.test.labels, triggered, poisoned.test_labels, poisoned.test_targets)


METRIC_KEYS = ("clean_acc", "asr", "robust_acc")


def before_after(before: dict[str, float], after: dict[str, float], poisoned: PoisonedSet) -> dict:
    """CA/ASR/RA before and after clean fine-tuning, with the poison counts: the record the focus
    metrics.json and every grid cell's report share."""
    return {**{k: before[k] for k in METRIC_KEYS}, "finetuned": {k: after[k] for k in METRIC_KEYS},
            "num_poisoned": poisoned.num_poisoned, "num_triggered_test": len(poisoned.test_indices)}


def training_set(exp: Experiment, data: Dataset, poisoned: PoisonedSet | None) -> tuple[torch.Tensor, torch.Tensor]:
    """The poisoned training set (clean if ``poisoned`` is None), or a seeded subset (``train.subset``)."""
    images, labels = data.train.images, data.train.labels
    if poisoned is not None:
        images, labels = poisoned.apply(images, labels)
    if exp.train.subset is not None and exp.train.subset < len(labels):
        keep = torch.randperm(len(labels), generator=generator(exp.seed, "train-subset"))[:exp.train.subset]
        images, labels = images[keep], labels[keep]
    return images, labels


def train_model(exp: Experiment, data: Dataset, poisoned: PoisonedSet | None, log: EpochLog | None = None,
                progress: bool = True) -> Classifier:
    """Train on the poisoned set; ``poisoned=None`` trains the clean baseline (CA logged, no ASR)."""
    images, labels = training_set(exp, data, poisoned)
    clf = Classifier.create(exp.arch, images, data.num_classes, pretrained=exp.train.pretrained, seed=exp.seed)
    loss = build_regularizer(exp.regularizer, clf.model, exp.train.label_smoothing, **exp.regularizer_settings)

    def on_epoch_end(epoch: int, train_loss: float) -> None:
        if log is None:
            return
        if not exp.train.eval_every_epoch:
            log(epoch, {"train_loss": train_loss})
        elif poisoned is None:
            log(epoch, {"train_loss": train_loss, "clean_acc": clean_accuracy(predict(clf, data.test.images),
                                                                               data.test.labels)})
        else:
            log(epoch, {"train_loss": train_loss, **evaluate(clf, data, poisoned)})

    fit(clf, images, labels, exp.train, seed=exp.seed, loss_fn=loss, on_epoch_end=on_epoch_end, progress=progress)
    return clf


def clean_finetune_indices(exp: Experiment, num_train: int, poisoned_indices: torch.Tensor) -> torch.Tensor:
    """The defender's clean set: a seeded draw from training images that carry no poison."""
    clean = torch.ones(num_train, dtype=torch.bool)
    clean[poisoned_indices] = False
    pool = torch.nonzero(clean).flatten()
    size = exp.finetune.clean_size
    count = int(round(size * num_train)) if size < 1 else int(size)
    if count > len(pool):
        raise ConfigError(f"finetune.clean_size: asks for {count} clean images but only {len(pool)} are unpoisoned")
    order = torch.randperm(len(pool), generator=generator(exp.seed, "finetune-clean-set"))
    return pool[order[:count]].sort().values


def finetune_model(exp: Experiment, clf: Classifier, data: Dataset, poisoned: PoisonedSet,
                   log: EpochLog | None = None, progress: bool = True) -> list[dict[str, float]]:
    """Fine-tune ``clf`` in place on clean data; returns CA/ASR/RA per epoch, epoch 0 = before."""
    keep = clean_finetune_indices(exp, len(data.train), poisoned.indices)
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
