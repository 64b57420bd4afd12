"""The poisoned-set delta: a strategy's images with the trigger, and the triggered test set.

The poisoned training set is stored as a delta (indices, triggered pixels, new labels), never as a copy of the
dataset. The strategies (``all-to-one``, ``one-to-one``, ``all-to-all``, ``clean-label``, ``label-consistent``:
who may be poisoned, their new label, the ASR set) are in ``backdoor.strategies``; ``STRATEGIES``,
``build_strategy`` and ``eligible_count`` are importable from here too.

``poison_rate`` is a fraction of the training pool, the images the model trains on (the whole training
set, or a seeded ``train.subset`` of it): round(rate x pool) images are drawn (seeded) from the pool's
images that the strategy makes eligible, and it is an error if fewer are eligible.

Poisoned images carry the trigger's training-time form (``backdoor.triggers.train_form``: the trigger itself but
for the adaptive triggers), the triggered test set its full form. Besides them the delta holds images that carry a
form of the trigger and keep their labels, listed in ``cover_indices``: WaNet's noise-mode "cross" images, and the
cover images of a trigger with a ``cover_rate`` (Qi et al. 2023): round(cover_rate x pool) of the pool's other
images, of any class, with the training-time form; none when nothing is poisoned. Qi et al.'s code draws poisoned
and cover images from one shuffle of the whole set (the poisoned ones of any class, the target's relabelled too),
with int() counts; here the poisoned ones are the strategy's and the cover ones the rest of the pool's, rounded.

A strategy whose images are first perturbed (``label-consistent``) takes them from the perturb stage's output
(``backdoor.perturbation.PerturbedSet``): the trigger goes on the perturbed image.

``make_poisoned_set`` stores exactly the counted test images (``test_indices``) with their true
labels and targets; ``backdoor.metrics`` then defines ASR as the fraction classified as their
target and RA as the fraction classified as their true label (over images whose label differs from
their target, which is all of them for the registered strategies).
"""

from __future__ import annotations

import torch

from .datasets import Dataset
from .errors import ConfigError
from .params import Experiment
from .perturbation import PerturbedSet
from .poisoned_set import PoisonedSet, training_pool
from .seeding import generator
from .settings import check_poison_rate, poison_count
from .strategies import STRATEGIES, Strategy, build_strategy, eligible_count
from .triggers import Trigger, build_trigger, cover_rate, train_form

__all__ = [
    "STRATEGIES",
    "Strategy",
    "build_attack",
    "build_strategy",
    "eligible_count",
    "make_poisoned_set",
    "poison_dataset",
]


def make_poisoned_set(
    train_images: torch.Tensor,
    train_labels: torch.Tensor,
    test_images: torch.Tensor,
    test_labels: torch.Tensor,
    trigger: Trigger,
    strategy: Strategy,
    rate: float,
    seed: int,
    pool: torch.Tensor | None = None,
    perturbed: PerturbedSet | None = None,
) -> PoisonedSet:
    """Draw round(rate x pool) eligible images of the training ``pool`` (seeded; default: every training
    image), trigger (its training-time form; on their ``perturbed`` copies for a perturbing strategy) and
    relabel them; trigger the test set (the full form).

    A trigger with ``cross_ratio > 0`` (WaNet noise mode) also gets that many times as many "cross"
    images from the pool's unpoisoned images, made by ``trigger.cross`` and keeping their labels; a trigger
    with ``cover_rate > 0``, round(cover_rate x pool) cover images from the pool's other images, with the
    training-time form and their labels. Both are part of the delta and listed in ``cover_indices``.
    """
    rate = check_poison_rate(rate)
    pool = torch.arange(len(train_labels)) if pool is None else pool
    eligible = pool[strategy.train_mask(train_labels[pool])]
    count = poison_count(len(pool), rate)
    if count > len(eligible):
        raise ConfigError(
            f"poison_rate: {rate:g} asks for {count} poisoned images but only {len(eligible)} of the "
            f"{len(pool)} training images are eligible under this strategy"
        )
    order = torch.randperm(len(eligible), generator=generator(seed, "poison-indices"))
    indices = eligible[order[:count]].sort().values
    base = _base_images(train_images, indices, strategy, perturbed)
    images = train_form(trigger)(base, generator(seed, "trigger-train"))
    labels = strategy.relabel(train_labels[indices])

    kept = []  # (positions, images) of the images that carry a form of the trigger and keep their labels
    cross_ratio = float(getattr(trigger, "cross_ratio", 0.0))
    if cross_ratio > 0:
        kept.append(_cross_samples(train_images, pool, indices, trigger, cross_ratio, seed))
    if cover_rate(trigger) > 0 and count > 0:
        taken = torch.cat([indices, *(positions for positions, _ in kept)])
        kept.append(_cover_samples(train_images, pool, taken, trigger, seed))
    cover_indices = torch.zeros(0, dtype=torch.int64)
    if kept:
        positions = torch.cat([positions for positions, _ in kept])
        by_position = positions.argsort()
        cover_indices, cover_images = positions[by_position], torch.cat([x for _, x in kept])[by_position]
        indices, order = torch.cat([indices, cover_indices]).sort()
        images = torch.cat([images, cover_images])[order]
        labels = torch.cat([labels, train_labels[cover_indices]])[order]

    test_indices = torch.nonzero(strategy.test_mask(test_labels)).flatten()
    true = test_labels[test_indices]
    return PoisonedSet(
        pool=pool,
        indices=indices,
        images=images,
        labels=labels,
        test_indices=test_indices,
        test_images=trigger(test_images[test_indices], generator(seed, "trigger-test")),
        test_labels=true,
        test_targets=strategy.test_target(true),
        cover_indices=cover_indices,
    )


def _base_images(
    train_images: torch.Tensor, indices: torch.Tensor, strategy: Strategy, perturbed: PerturbedSet | None
) -> torch.Tensor:
    """What the trigger goes on: the clean images, or for a perturbing strategy their perturbed copies."""
    if strategy.perturbation is None:
        if perturbed is not None:
            raise ValueError("perturbed images given for a strategy that perturbs nothing")
        return train_images[indices]
    if perturbed is None and len(indices):
        raise ConfigError(
            f"strategy: {', '.join(STRATEGIES.names(perturbed=True))} poisons images perturbed against a clean "
            "model: the poison stage needs --perturbed (the grid's perturb stage output)"
        )
    return perturbed.images_for(indices) if len(indices) else train_images[indices]


def _cross_samples(
    train_images: torch.Tensor, pool: torch.Tensor, poisoned: torch.Tensor, trigger: Trigger, ratio: float, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """round(ratio x poisoned) unpoisoned images of the pool (any class, seeded) through ``trigger.cross``."""
    free = pool[~torch.isin(pool, poisoned)]
    wanted = int(round(ratio * len(poisoned)))
    if wanted > len(free):
        raise ConfigError(
            f"triggers.wanet.cross_ratio: {ratio:g} x {len(poisoned)} poisoned asks for {wanted} cross "
            f"images but only {len(free)} training images are unpoisoned"
        )
    order = torch.randperm(len(free), generator=generator(seed, "cross-indices"))
    cover_indices = free[order[:wanted]].sort().values
    return cover_indices, trigger.cross(train_images[cover_indices], generator(seed, "trigger-cross"))


def _cover_samples(
    train_images: torch.Tensor, pool: torch.Tensor, taken: torch.Tensor, trigger: Trigger, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """round(cover_rate x pool) of the pool's images outside ``taken`` (any class, seeded), with the trigger's
    training-time form (Qi et al. 2023's cover images)."""
    free = pool[~torch.isin(pool, taken)]
    rate = cover_rate(trigger)
    wanted = poison_count(len(pool), rate)
    if wanted > len(free):
        raise ConfigError(
            f"cover_rate: {rate:g} asks for {wanted} cover images but only {len(free)} of the {len(pool)} "
            "training images are neither poisoned nor cross images"
        )
    order = torch.randperm(len(free), generator=generator(seed, "cover-indices"))
    positions = free[order[:wanted]].sort().values
    return positions, train_form(trigger)(train_images[positions], generator(seed, "trigger-cover"))


def build_attack(exp: Experiment, shape: tuple[int, int, int], num_classes: int) -> tuple[Trigger, Strategy]:
    """The experiment's trigger and strategy, validated, for images of ``shape``."""
    trigger = build_trigger(
        exp.trigger, shape, seed=exp.seed, size=exp.trigger_size, location=exp.trigger_location, **exp.trigger_settings
    )
    return trigger, build_strategy(exp.strategy, exp.target, exp.source, num_classes)


def poison_dataset(exp: Experiment, data: Dataset, perturbed: PerturbedSet | None = None) -> PoisonedSet:
    """The experiment's poisoned set: its trigger and strategy, inside its training pool (on the ``perturbed``
    images for a perturbing strategy)."""
    trigger, strategy = build_attack(exp, tuple(data.train.images.shape[1:]), data.num_classes)
    pool = training_pool(len(data.train), exp.subset, exp.seed)
    return make_poisoned_set(
        data.train.images,
        data.train.labels,
        data.test.images,
        data.test.labels,
        trigger,
        strategy,
        exp.poison_rate,
        exp.seed,
        pool,
        perturbed,
    )


def attack_record(exp: Experiment) -> dict:
    """What the poisoned set is made of, as its manifest records it."""
    return {
        "dataset": exp.dataset,
        "trigger": exp.trigger,
        "trigger_size": exp.trigger_size,
        "trigger_location": exp.trigger_location,
        "strategy": exp.strategy,
        "target": exp.target,
        "source": exp.source,
        "poison_rate": exp.poison_rate,
        "seed": exp.seed,
        "trigger_settings": exp.trigger_settings,
        "subset": exp.subset,
    }
