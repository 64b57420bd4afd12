"""The defender's clean fine-tuning: a few epochs on clean training images, with CA/ASR/RA per epoch."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from .classifier import Classifier
from .datasets import Dataset
from .defence_settings import DefenceExperiment as Experiment
from .errors import ConfigError
from .evaluation import evaluate
from .finetune_methods import Tuning, build_method, tuning_config
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
        raise ConfigError(
            f"finetune.clean_size: asks for {count} clean images but only {len(pool)} of the "
            f"{len(poisoned.pool)} training images are unpoisoned"
        )
    order = torch.randperm(len(pool), generator=generator(exp.seed, "finetune-clean-set"))
    return pool[order[:count]].sort().values


def finetune_model(
    exp: Experiment,
    clf: Classifier,
    data: Dataset,
    poisoned: PoisonedSet,
    log: EpochLog | None = None,
    progress: bool = True,
) -> list[dict[str, float]]:
    """Fine-tune ``clf`` in place on clean data with ``finetune.method``; returns CA/ASR/RA per evaluated epoch
    (epoch 0 = before, then every ``finetune.eval_every`` epochs and the last), each with ``steps``, the optimizer
    updates taken so far. The method's own record (e.g. what fine-pruning pruned) is in the last point."""
    keep = clean_finetune_indices(exp, poisoned)
    cfg = tuning_config(exp.finetune, exp.finetune.method, exp.method_settings).resolve(clf.training.get("peak_lr"))
    steps_per_epoch = math.ceil(len(keep) / cfg.batch_size)
    curve = [{"epoch": 0, "steps": 0, **evaluate(clf, data, poisoned)}]
    if log is not None:
        log(0, curve[0])

    def on_epoch_end(epoch: int, train_loss: float) -> None:
        if epoch % cfg.eval_every and epoch != cfg.epochs:
            return
        curve.append(
            {
                "epoch": epoch,
                "steps": epoch * steps_per_epoch,
                "train_loss": train_loss,
                **evaluate(clf, data, poisoned),
            }
        )
        if log is not None:
            log(epoch, curve[-1])

    if cfg.epochs > 0:
        tuning = Tuning(
            clf, data.train.images[keep], data.train.labels[keep], cfg, exp.seed, data, on_epoch_end, progress, poisoned
        )
        record = build_method(exp.finetune.method, exp.method_settings)(tuning)
        if record["steps"] != curve[-1]["steps"]:
            raise RuntimeError(
                f"{exp.finetune.method}: took {record['steps']} steps, the curve counted {curve[-1]['steps']}"
            )
        curve[-1].update({k: v for k, v in record.items() if k != "steps"})
    return curve
