"""Poisoning strategies: which training images may carry the trigger, what label they get, and, for the test
set, which triggered images count towards the attack success rate and what their target is.

With t = ``target``, s = ``source``, K = number of classes:

================  =========================  ===============  ========================================
strategy          poisoned training images   their new label  ASR: triggered test images -> target
================  =========================  ===============  ========================================
all-to-one        any class but t            t                every test image not of class t -> t
one-to-one        class s only               t                every test image of class s -> t
all-to-all        any class                  (y + 1) mod K    every test image, label y -> (y + 1) mod K
clean-label       class t only               t (unchanged)    every test image not of class t -> t
label-consistent  class t, PGD-perturbed     t (unchanged)    every test image not of class t -> t
================  =========================  ===============  ========================================

Adding a strategy is one decorated factory here: ``@STRATEGIES.register("<name>", reference=..., facts)``,
a function of (target, source, num_classes) and its own settings that returns a :class:`Strategy`. Its facts:

``uses_source``    [false] it reads ``source`` (one-to-one); ``build_strategy`` requires ``source`` for such a
                   strategy and rejects a ``source`` that is set for any other, rather than silently ignore it.
``single_target``  [true] its triggered images all aim at the one class ``target``; false for all-to-all,
                   where each image has its own target, so a detector is told no target class.
``perturbed``      [false] its images are first perturbed against a clean model (``Strategy.perturbation``, run
                   by the grid's perturb stage from the cell's clean baseline; the poison stage reads the result).

A strategy's own settings are its factory's keyword-only parameters (``params.yaml: strategies.<name>``, the
defaults in the signature), read by the stage that uses them (label-consistent's: the perturb stage).

``clean-label`` is the plain form (trigger on target-class images, labels untouched; cf. Barni et al. 2019's SIG
attack), without the adversarial or GAN perturbations of Turner et al. 2019; ``label-consistent`` is Turner et
al.'s adversarial form: the target-class images are first moved by L-inf PGD against a clean model
(``backdoor.perturbation``), then triggered (their four-corner trigger: ``four-corner``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from .errors import ConfigError
from .perturbation import PGD
from .registry import Registry


@dataclass(frozen=True)
class Strategy:
    """``train_mask``: who may be poisoned; ``relabel``: their new label; ``test_mask``/``test_target``: ASR set;
    ``perturbation``: how the poisoned images are first perturbed against a clean model (None: they are not)."""

    train_mask: Callable[[torch.Tensor], torch.Tensor]
    relabel: Callable[[torch.Tensor], torch.Tensor]
    test_mask: Callable[[torch.Tensor], torch.Tensor]
    test_target: Callable[[torch.Tensor], torch.Tensor]
    perturbation: PGD | None = None


StrategyFactory = Callable[..., Strategy]
STRATEGIES: Registry[StrategyFactory] = Registry(
    "strategy", section="strategies", facts={"uses_source": False, "single_target": True, "perturbed": False}
)


@STRATEGIES.register("all-to-one", reference="Gu et al. 2017, BadNets (arXiv:1708.06733); BackdoorBench's default")
def all_to_one(target: int, source: int | None, num_classes: int) -> Strategy:
    """Dirty-label: any non-target image gets the trigger and label ``target``."""
    return Strategy(
        train_mask=lambda y: y != target,
        relabel=lambda y: torch.full_like(y, target),
        test_mask=lambda y: y != target,
        test_target=lambda y: torch.full_like(y, target),
    )


@STRATEGIES.register(
    "one-to-one",
    uses_source=True,
    reference="Gu et al. 2017, BadNets (arXiv:1708.06733): the single target attack, i -> j",
)
def one_to_one(target: int, source: int | None, num_classes: int) -> Strategy:
    """Dirty-label: only ``source``-class images get the trigger and label ``target``."""
    if source == target:
        raise ConfigError(f"source: must differ from target for one-to-one, both are {target}")
    return Strategy(
        train_mask=lambda y: y == source,
        relabel=lambda y: torch.full_like(y, target),
        test_mask=lambda y: y == source,
        test_target=lambda y: torch.full_like(y, target),
    )


@STRATEGIES.register(
    "all-to-all",
    single_target=False,
    reference="Gu et al. 2017, BadNets (arXiv:1708.06733): the all-to-all attack, i -> i + 1",
)
def all_to_all(target: int, source: int | None, num_classes: int) -> Strategy:
    """Dirty-label: any image gets the trigger and label (y + 1) mod K; ``target`` is not used."""
    return Strategy(
        train_mask=lambda y: torch.ones_like(y, dtype=torch.bool),
        relabel=lambda y: (y + 1) % num_classes,
        test_mask=lambda y: torch.ones_like(y, dtype=torch.bool),
        test_target=lambda y: (y + 1) % num_classes,
    )


@STRATEGIES.register(
    "clean-label",
    reference="Turner et al. 2019, Label-Consistent Backdoor Attacks, in the plain form of Barni et al. 2019 (SIG)",
)
def clean_label(target: int, source: int | None, num_classes: int) -> Strategy:
    """Only ``target``-class images get the trigger; no label changes. ASR as for all-to-one."""
    return Strategy(
        train_mask=lambda y: y == target,
        relabel=lambda y: y.clone(),
        test_mask=lambda y: y != target,
        test_target=lambda y: torch.full_like(y, target),
    )


@STRATEGIES.register(
    "label-consistent",
    perturbed=True,
    reference="Turner, Tsipras and Madry 2019, Label-Consistent Backdoor Attacks (arXiv:1912.02771): the "
    "adversarial-perturbation form, L-inf PGD from a clean model",
)
def label_consistent(
    target: int,
    source: int | None,
    num_classes: int,
    *,
    eps: float = 8,
    steps: int = 10,
    step_size: float = 2,
    random_start: bool = True,
) -> Strategy:
    """Clean-label on images first perturbed by L-inf PGD (0-255 scale) against a clean model; ASR as all-to-one."""
    name = "label-consistent"
    pgd = PGD(
        eps=float(STRATEGIES.number(name, "eps", eps, low=0, low_open=True, high=255)),
        steps=int(STRATEGIES.number(name, "steps", steps, low=1, integer=True)),
        step_size=float(STRATEGIES.number(name, "step_size", step_size, low=0, low_open=True, high=255)),
        random_start=STRATEGIES.flag(name, "random_start", random_start),
    )
    plain = clean_label(target, source, num_classes)
    return Strategy(plain.train_mask, plain.relabel, plain.test_mask, plain.test_target, perturbation=pgd)


def build_strategy(name: str, target: int, source: int | None, num_classes: int, **settings) -> Strategy:
    """Strategy ``name`` with its own ``settings`` (``strategies.<name>``; defaults when not given), its classes
    checked against the dataset's ``num_classes``."""
    entry = STRATEGIES.get(name)
    STRATEGIES.check_keys(name, settings)
    if num_classes < 2:
        raise ConfigError(f"strategy: a backdoor needs at least 2 classes, this dataset has {num_classes}")
    if not 0 <= target < num_classes:
        raise ConfigError(f"target: class {target} is outside this dataset's classes 0..{num_classes - 1}")
    if source is not None and not 0 <= source < num_classes:
        raise ConfigError(f"source: class {source} is outside this dataset's classes 0..{num_classes - 1}")
    if entry.uses_source and source is None:
        raise ConfigError(f"source: {name} needs a source class (the class whose images are attacked)")
    if not entry.uses_source and source is not None:
        raise ConfigError(
            f"source: only used by {', '.join(STRATEGIES.names(uses_source=True))}; set it to null "
            f"for strategy {name} (got {source})"
        )
    return entry.factory(target, source, num_classes, **settings)


def check_strategy_settings(name: str, settings: dict) -> None:
    """Raise ``ConfigError`` for a bad ``strategies.<name>`` block (names and values; classes are not checked)."""
    STRATEGIES.check_keys(name, settings)
    STRATEGIES.get(name).factory(0, None, 2, **settings)


def check_focus_strategy(name: str | None) -> None:
    """The focus experiment has no clean model to perturb against: a perturbed strategy is for grid cells."""
    if name is not None and STRATEGIES.get(name).perturbed:
        raise ConfigError(
            f"strategy: {name} perturbs its images against the cell's clean baseline model: use it in the grid "
            "(grid.strategy), whose poison rate 0 model of the same dataset, arch, regularizer and seed is the source"
        )


def eligible_count(strategy: Strategy, class_counts: tuple[int, ...]) -> int:
    """How many images of a set with these class counts the strategy may poison (its ``train_mask`` per class)."""
    eligible = strategy.train_mask(torch.arange(len(class_counts)))
    return sum(count for count, ok in zip(class_counts, eligible.tolist()) if ok)
