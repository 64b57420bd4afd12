"""Poisoning strategies and the poisoned-set delta.

A strategy says which training images may carry the trigger, what label they get, and, for the
test set, which triggered images count towards the attack success rate and what their target is.
The poisoned training set is stored as a delta (indices, triggered pixels, new labels), never as a
copy of the dataset.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from .errors import ConfigError, choices_error
from .seeding import generator
from .triggers import Trigger


@dataclass(frozen=True)
class Strategy:
    """``train_mask``: who may be poisoned; ``relabel``: their new label; ``test_mask``/``test_target``: ASR set."""

    train_mask: Callable[[torch.Tensor], torch.Tensor]
    relabel: Callable[[torch.Tensor], torch.Tensor]
    test_mask: Callable[[torch.Tensor], torch.Tensor]
    test_target: Callable[[torch.Tensor], torch.Tensor]


def all_to_one(target: int, source: int | None, num_classes: int) -> Strategy:
    """Dirty-label: any non-target image gets the trigger and label ``target``."""
    return Strategy(
        train_mask=lambda y: y != target,
        relabel=lambda y: torch.full_like(y, target),
        test_mask=lambda y: y != target,
        test_target=lambda y: torch.full_like(y, target),
    )


STRATEGIES: dict[str, Callable[[int, int | None, int], Strategy]] = {"all-to-one": all_to_one}


def build_strategy(name: str, target: int, source: int | None, num_classes: int) -> Strategy:
    if name not in STRATEGIES:
        raise choices_error("strategy", name, sorted(STRATEGIES))
    if not 0 <= target < num_classes:
        raise ConfigError(f"target: class {target} is outside this dataset's classes 0..{num_classes - 1}")
    if source is not None and not 0 <= source < num_classes:
        raise ConfigError(f"source: class {source} is outside this dataset's classes 0..{num_classes - 1}")
    return STRATEGIES[name](target, source, num_classes)


@dataclass
class PoisonedSet:
    """The delta to the clean training set, plus the triggered test set used for ASR and RA."""

    indices: torch.Tensor       # int64 (P,), positions in the training set
    images: torch.Tensor        # uint8 (P, C, H, W), triggered pixels
    labels: torch.Tensor        # int64 (P,), labels after poisoning
    test_indices: torch.Tensor  # int64 (T,), positions in the test set
    test_images: torch.Tensor   # uint8 (T, C, H, W), triggered test images
    test_labels: torch.Tensor   # int64 (T,), their true labels
    test_targets: torch.Tensor  # int64 (T,), the label the attack wants for each

    def to_dict(self) -> dict[str, torch.Tensor]:
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, tensors: dict[str, torch.Tensor]) -> "PoisonedSet":
        return cls(**{name: tensors[name] for name in cls.__dataclass_fields__})

    def apply(self, images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The poisoned training set: copies of ``images`` and ``labels`` with the delta written in."""
        images, labels = images.clone(), labels.clone()
        images[self.indices] = self.images
        labels[self.indices] = self.labels
        return images, labels


def poison_count(num_train: int, rate: float) -> int:
    return int(round(num_train * rate))


def make_poisoned_set(train_images: torch.Tensor, train_labels: torch.Tensor,
                      test_images: torch.Tensor, test_labels: torch.Tensor,
                      trigger: Trigger, strategy: Strategy, rate: float, seed: int) -> PoisonedSet:
    """Draw ``rate`` x N eligible training images (seeded), trigger and relabel them; trigger the test set."""
    if not 0.0 <= rate <= 1.0:
        raise ConfigError(f"poison_rate: must be in [0, 1], got {rate}")
    eligible = torch.nonzero(strategy.train_mask(train_labels)).flatten()
    count = poison_count(len(train_labels), rate)
    if count > len(eligible):
        raise ConfigError(f"poison_rate: {rate} asks for {count} poisoned images but only {len(eligible)} "
                          f"training images are eligible under this strategy")
    order = torch.randperm(len(eligible), generator=generator(seed, "poison-indices"))
    indices = eligible[order[:count]].sort().values
    images = trigger(train_images[indices], generator(seed, "trigger-train"))
    labels = strategy.relabel(train_labels[indices])

    test_indices = torch.nonzero(strategy.test_mask(test_labels)).flatten()
    true = test_labels[test_indices]
    return PoisonedSet(
        indices=indices, images=images, labels=labels,
        test_indices=test_indices,
        test_images=trigger(test_images[test_indices], generator(seed, "trigger-test")),
        test_labels=true, test_targets=strategy.test_target(true),
    )
