"""Poisoning strategies and the poisoned-set delta.

A strategy says which training images may carry the trigger, what label they get, and, for the
test set, which triggered images count towards the attack success rate and what their target is.
The poisoned training set is stored as a delta (indices, triggered pixels, new labels), never as a
copy of the dataset.

``poison_rate`` is a fraction of the training pool, the images the model trains on (the whole training
set, or a seeded ``train.subset`` of it): round(rate x pool) images are drawn (seeded) from the pool's
images that the strategy makes eligible, and it is an error if fewer are eligible.

Strategies, with t = ``target``, s = ``source``, K = number of classes:

=============  =========================  ===============  ========================================
strategy       poisoned training images   their new label  ASR: triggered test images -> target
=============  =========================  ===============  ========================================
all-to-one     any class but t            t                every test image not of class t -> t
one-to-one     class s only               t                every test image of class s -> t
all-to-all     any class                  (y + 1) mod K    every test image, label y -> (y + 1) mod K
clean-label    class t only               t (unchanged)    every test image not of class t -> t
=============  =========================  ===============  ========================================

``make_poisoned_set`` stores exactly the counted test images (``test_indices``) with their true
labels and targets; ``backdoor.metrics`` then defines ASR as the fraction classified as their
target and RA as the fraction classified as their true label (over images whose label differs from
their target, which is all of them for these four strategies).

``source`` is used by one-to-one only; the other strategies reject a ``source`` that is set
rather than silently ignore it. Clean-label here is the plain form (trigger on target-class
images, labels untouched; cf. Barni et al. 2019's SIG attack), without the adversarial or GAN
perturbations of Turner et al. 2019.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from .config import Experiment, check_poison_rate, poison_count
from .datasets import Dataset
from .errors import ConfigError, choices_error
from .poisoned_set import PoisonedSet, training_pool
from .seeding import generator
from .triggers import Trigger, build_trigger


@dataclass(frozen=True)
class Strategy:
    """``train_mask``: who may be poisoned; ``relabel``: their new label; ``test_mask``/``test_target``: ASR set."""

    train_mask: Callable[[torch.Tensor], torch.Tensor]
    relabel: Callable[[torch.Tensor], torch.Tensor]
    test_mask: Callable[[torch.Tensor], torch.Tensor]
    test_target: Callable[[torch.Tensor], torch.Tensor]


def _no_source(name: str, source: int | None) -> None:
    if source is not None:
        raise ConfigError(f"source: only used by one-to-one; set it to null for strategy {name} (got {source})")


def all_to_one(target: int, source: int | None, num_classes: int) -> Strategy:
    """Dirty-label: any non-target image gets the trigger and label ``target``."""
    _no_source("all-to-one", source)
    return Strategy(
        train_mask=lambda y: y != target,
        relabel=lambda y: torch.full_like(y, target),
        test_mask=lambda y: y != target,
        test_target=lambda y: torch.full_like(y, target),
    )


def one_to_one(target: int, source: int | None, num_classes: int) -> Strategy:
    """Dirty-label: only ``source``-class images get the trigger and label ``target``."""
    if source is None:
        raise ConfigError("source: one-to-one needs a source class (the class whose images are attacked)")
    if source == target:
        raise ConfigError(f"source: must differ from target for one-to-one, both are {target}")
    return Strategy(
        train_mask=lambda y: y == source,
        relabel=lambda y: torch.full_like(y, target),
        test_mask=lambda y: y == source,
        test_target=lambda y: torch.full_like(y, target),
    )


def all_to_all(target: int, source: int | None, num_classes: int) -> Strategy:
    """Dirty-label: any image gets the trigger and label (y + 1) mod K; ``target`` is not used."""
    _no_source("all-to-all", source)
    return Strategy(
        train_mask=lambda y: torch.ones_like(y, dtype=torch.bool),
        relabel=lambda y: (y + 1) % num_classes,
        test_mask=lambda y: torch.ones_like(y, dtype=torch.bool),
        test_target=lambda y: (y + 1) % num_classes,
    )


def clean_label(target: int, source: int | None, num_classes: int) -> Strategy:
    """Only ``target``-class images get the trigger; no label changes. ASR as for all-to-one."""
    _no_source("clean-label", source)
    return Strategy(
        train_mask=lambda y: y == target,
        relabel=lambda y: y.clone(),
        test_mask=lambda y: y != target,
        test_target=lambda y: torch.full_like(y, target),
    )


STRATEGIES: dict[str, Callable[[int, int | None, int], Strategy]] = {
    "all-to-one": all_to_one,
    "one-to-one": one_to_one,
    "all-to-all": all_to_all,
    "clean-label": clean_label,
}


def eligible_count(strategy: Strategy, class_counts: tuple[int, ...]) -> int:
    """How many images of a set with these class counts the strategy may poison (its ``train_mask`` per class)."""
    eligible = strategy.train_mask(torch.arange(len(class_counts)))
    return sum(count for count, ok in zip(class_counts, eligible.tolist()) if ok)


def build_strategy(name: str, target: int, source: int | None, num_classes: int) -> Strategy:
    if name not in STRATEGIES:
        raise choices_error("strategy", name, sorted(STRATEGIES))
    if num_classes < 2:
        raise ConfigError(f"strategy: a backdoor needs at least 2 classes, this dataset has {num_classes}")
    if not 0 <= target < num_classes:
        raise ConfigError(f"target: class {target} is outside this dataset's classes 0..{num_classes - 1}")
    if source is not None and not 0 <= source < num_classes:
        raise ConfigError(f"source: class {source} is outside this dataset's classes 0..{num_classes - 1}")
    return STRATEGIES[name](target, source, num_classes)


def make_poisoned_set(train_images: torch.Tensor, train_labels: torch.Tensor,
                      test_images: torch.Tensor, test_labels: torch.Tensor,
                      trigger: Trigger, strategy: Strategy, rate: float, seed: int,
                      pool: torch.Tensor | None = None) -> PoisonedSet:
    """Draw round(rate x pool) eligible images of the training ``pool`` (seeded; default: every training
    image), trigger and relabel them; trigger the test set.

    A trigger with ``cross_ratio > 0`` (WaNet noise mode) also gets that many times as many "cross"
    images from the pool's unpoisoned images, made by ``trigger.cross`` and keeping their labels;
    they are part of the delta and listed in ``cross_indices``.
    """
    rate = check_poison_rate(rate)
    pool = torch.arange(len(train_labels)) if pool is None else pool
    eligible = pool[strategy.train_mask(train_labels[pool])]
    count = poison_count(len(pool), rate)
    if count > len(eligible):
        raise ConfigError(f"poison_rate: {rate:g} asks for {count} poisoned images but only {len(eligible)} of the "
                          f"{len(pool)} training images are eligible under this strategy")
    order = torch.randperm(len(eligible), generator=generator(seed, "poison-indices"))
    indices = eligible[order[:count]].sort().values
    images = trigger(train_images[indices], generator(seed, "trigger-train"))
    labels = strategy.relabel(train_labels[indices])

    cross_indices = torch.zeros(0, dtype=torch.int64)
    cross_ratio = float(getattr(trigger, "cross_ratio", 0.0))
    if cross_ratio > 0:
        cross_indices, cross_images = _cross_samples(train_images, pool, indices, trigger, cross_ratio, seed)
        indices, order = torch.cat([indices, cross_indices]).sort()
        images = torch.cat([images, cross_images])[order]
        labels = torch.cat([labels, train_labels[cross_indices]])[order]

    test_indices = torch.nonzero(strategy.test_mask(test_labels)).flatten()
    true = test_labels[test_indices]
    return PoisonedSet(
        pool=pool, indices=indices, images=images, labels=labels,
        test_indices=test_indices,
        test_images=trigger(test_images[test_indices], generator(seed, "trigger-test")),
        test_labels=true, test_targets=strategy.test_target(true),
        cross_indices=cross_indices,
    )


def _cross_samples(train_images: torch.Tensor, pool: torch.Tensor, poisoned: torch.Tensor, trigger: Trigger,
                   ratio: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """round(ratio x poisoned) unpoisoned images of the pool (any class, seeded) through ``trigger.cross``."""
    free = pool[~torch.isin(pool, poisoned)]
    wanted = int(round(ratio * len(poisoned)))
    if wanted > len(free):
        raise ConfigError(f"triggers.wanet.cross_ratio: {ratio:g} x {len(poisoned)} poisoned asks for {wanted} cross "
                          f"images but only {len(free)} training images are unpoisoned")
    order = torch.randperm(len(free), generator=generator(seed, "cross-indices"))
    cross_indices = free[order[:wanted]].sort().values
    return cross_indices, trigger.cross(train_images[cross_indices], generator(seed, "trigger-cross"))


def build_attack(exp: Experiment, shape: tuple[int, int, int], num_classes: int) -> tuple[Trigger, Strategy]:
    """The experiment's trigger and strategy, validated, for images of ``shape``."""
    trigger = build_trigger(exp.trigger, shape, seed=exp.seed, size=exp.trigger_size,
                            location=exp.trigger_location, **exp.trigger_settings)
    return trigger, build_strategy(exp.strategy, exp.target, exp.source, num_classes)


def poison_dataset(exp: Experiment, data: Dataset) -> PoisonedSet:
    """The experiment's poisoned set: its trigger and strategy, inside its training pool."""
    trigger, strategy = build_attack(exp, tuple(data.train.images.shape[1:]), data.num_classes)
    pool = training_pool(len(data.train), exp.train.subset, exp.seed)
    return make_poisoned_set(data.train.images, data.train.labels, data.test.images, data.test.labels,
                             trigger, strategy, exp.poison_rate, exp.seed, pool)
