"""Trigger registry: a trigger is a function of a uint8 batch (N, C, H, W) that returns a new batch.

Adding a trigger is one module and one import line (at the bottom of this file). The module's factory is
registered with ``@TRIGGERS.register("<name>", patch=..., reference=...)``; it receives the image shape, a
seed for any fixed random pattern, the patch size and location, and its own settings from ``params.yaml:
triggers.<name>`` as keyword-only parameters, whose defaults are the settings' defaults. ``build_trigger``
refuses a setting the factory does not take; the factory checks the values (``TRIGGERS.number``,
``check_patch``, ``fixed_place``) and returns the function that stamps images.

The zoo (settings and their defaults in brackets):

``checker``  BadNets-style checkerboard patch (Gu et al. 2017): a ``trigger_size`` square of 255 and 0
             cells, 255 in its top-left cell, flush in the corner. No settings.
``art-pattern`` ART's ``add_pattern_bd`` (IBM Adversarial Robustness Toolbox): exactly four pixels set to
             ``pixel_value`` [255] on every channel, at (H-d, W-d), (H-d-1, W-d-1), (H-d, W-d-2),
             (H-d-2, W-d) for ``distance`` d [2]; every other pixel is kept. ART's default pixel value 1 is
             for images in [0, 1]; 255 is the same on uint8 images.
``square``   solid patch, BadNets' white square. ``value`` [255].
``noise``    fixed random uint8 patch, drawn once from the seed. No settings.
``blend``    whole image blended with a fixed random uniform pattern (Chen et al. 2017):
             ``out = round((1 - alpha) * x + alpha * pattern)``. ``alpha`` [0.2], in (0, 1]. Chen et
             al. and BackdoorBench blend a Hello Kitty photo at 0.2; we blend seeded uniform noise.
``sig``      horizontal sinusoid added to every row and channel (Barni et al. 2019):
             ``out = clip(x + round(amplitude * sin(2 pi j frequency / W)), 0, 255)``.
             ``amplitude`` [20] (the paper's delta on the 0-255 scale), ``frequency`` [6].
``wanet``    fixed smooth warp (Nguyen and Tran 2021). ``strength`` [0.5] (s), ``grid_size`` [4] (k),
             ``noise_mode`` [false], ``cross_ratio`` [2]. See ``WarpTrigger``.
``four-corner`` Turner et al. 2019's label-consistent trigger: a 3x3 +-1 pattern in each corner, added at
             ``amplitude`` [255] (255: stamped, their default; 16, 32, 64: their reduced-visibility forms).
``adaptive-blend`` Qi et al. 2023's Adap-Blend: the ``blend`` pattern cut into ``pieces`` [16], ``mask_rate``
             [0.5] of them masked per poisoned or cover image at ``train_alpha`` [0.15]; the whole pattern at
             ``test_alpha`` [0.2] on test inputs; ``cover_rate`` [0.003] of the pool as cover images.
``adaptive-patch`` Qi et al. 2023's Adap-Patch: four seeded patches, one per poisoned or cover image at its own
             opacity ``train_alphas`` [0.5, 0.2, 0.5, 0.3]; two of them at ``test_alpha`` [1] on test inputs;
             ``cover_rate`` [0.006].

Training-time form and cover images (any trigger may declare them; ``TwoFormTrigger`` holds both): a trigger with
``train_form()`` stamps poisoned training images (and cover images) with that form and the triggered test set with
itself; a trigger with ``cover_rate > 0`` asks ``make_poisoned_set`` for round(cover_rate x pool) "cover" images:
unpoisoned training images of any class that carry the training-time form and keep their labels (Qi et al. 2023).

Patch triggers (fact ``patch=True``, listed by ``TRIGGERS.names(patch=True)``: checker, noise, square) use
``trigger_size`` and ``trigger_location``; the fixed-place triggers (art-pattern, four-corner, adaptive-patch) and
the full-image ones (blend, sig, wanet, adaptive-blend) ignore both, and reject ``trigger_location: random``.
Every trigger keeps uint8, works for any channel count and image size (four-corner: at least 6 x 6), and is a pure
function of (seed, settings, images, generator): the fixed pattern comes from ``generator(seed, "trigger-pattern")``,
per-image randomness (random patch location, WaNet cross noise, adaptive-blend's masked pieces) from the generator
passed in. adaptive-patch's training form depends on the batch too: the j-th quarter of it gets patch j.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import torch

from ..errors import ConfigError, choices_error
from ..registry import Registry
from ..seeding import generator as make_generator

LOCATIONS = ("bottom-right", "bottom-left", "top-right", "top-left", "random")

# Full-image triggers go through float tensors; this many images at a time bounds the memory
# (256 x 3 x 224 x 224 float32 is 150 MB) whatever the size of the batch passed in.
CHUNK = 256


class Trigger(Protocol):
    """``trigger(images, generator)`` returns a new uint8 batch; ``images`` is never modified.

    A trigger may also have ``cross_ratio`` (float > 0) and ``cross(images, generator)``: then
    ``make_poisoned_set`` adds ``cross_ratio`` x (number poisoned) "cross" samples, made by ``cross``
    from unpoisoned training images, that keep their true labels (WaNet's noise mode). It may have
    ``train_form()``, the trigger its poisoned and cover training images carry, and ``cover_rate``, the
    fraction of the training pool made cover images (``TwoFormTrigger``).
    """

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor: ...


TriggerFactory = Callable[..., Trigger]

# patch: the trigger stamps a ``trigger_size`` patch at ``trigger_location`` (else it has a fixed place).
TRIGGERS: Registry[TriggerFactory] = Registry(
    "trigger", section="triggers", built_in=("shape", "seed", "size", "location"), facts={"patch": False}
)


def build_trigger(
    name: str, shape: tuple[int, int, int], *, seed: int = 0, size: int = 3, location: str = "bottom-right", **settings
) -> Trigger:
    """Validate and build trigger ``name`` for images of ``shape`` = (C, H, W)."""
    TRIGGERS.get(name)  # an unknown name first, then the location, then the settings
    if location not in LOCATIONS:
        raise choices_error("trigger_location", location, LOCATIONS)
    return TRIGGERS.build(name, tuple(shape), seed=seed, size=size, location=location, **settings)


# ---------------------------------------------------------------- helpers for trigger modules


def check_patch(shape: tuple[int, int, int], size: int) -> None:
    """A patch trigger's ``trigger_size``: a positive integer that fits the image."""
    _, height, width = shape
    if not isinstance(size, int) or isinstance(size, bool) or size < 1:
        raise ConfigError(f"trigger_size: must be a positive integer, got {size!r}")
    if size > min(height, width):
        raise ConfigError(f"trigger_size: {size} px is larger than the {height}x{width} image")


def fixed_place(location: str) -> None:
    """Refuse ``trigger_location: random`` for a trigger that is not a patch."""
    if location == "random":
        raise ConfigError(
            "trigger_location: random is only for patch triggers "
            f"({', '.join(TRIGGERS.names(patch=True))}); the others have a fixed place"
        )


def check_shape(images: torch.Tensor, shape: tuple[int, int, int], name: str) -> None:
    """A batch must have the (C, H, W) the trigger was built for (a ValueError: a bug, not a setting)."""
    if images.dim() != 4 or tuple(images.shape[1:]) != tuple(shape):
        raise ValueError(
            f"{name} trigger was built for images of shape {tuple(shape)}, got a batch of shape {tuple(images.shape)}"
        )


def chunked(fn: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor) -> torch.Tensor:
    """``fn`` applied CHUNK images at a time (bounded float memory); always a new tensor."""
    if len(images) == 0:
        return images.clone()
    return torch.cat([fn(images[start : start + CHUNK]) for start in range(0, len(images), CHUNK)])


def to_uint8(values: torch.Tensor) -> torch.Tensor:
    """Round half to even (``torch.round``), saturate to [0, 255]."""
    return values.round().clamp_(0, 255).to(torch.uint8)


def random_pattern(seed: int, shape: tuple[int, ...]) -> torch.Tensor:
    """Uniform uint8 pattern in [0, 255] drawn from ``generator(seed, "trigger-pattern")``."""
    return torch.randint(0, 256, tuple(shape), generator=make_generator(seed, "trigger-pattern"), dtype=torch.uint8)


# ---------------------------------------------------------------- the patch stamp


@dataclass
class PatchTrigger:
    """Stamps a (C, s, s) uint8 pattern at a corner, or at a random place per image."""

    pattern: torch.Tensor
    location: str

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        out = images.clone()
        _, _, height, width = images.shape
        size = self.pattern.shape[-1]
        pattern = self.pattern.to(images.device)
        if self.location == "random":
            tops = torch.randint(0, height - size + 1, (len(images),), generator=generator).tolist()
            lefts = torch.randint(0, width - size + 1, (len(images),), generator=generator).tolist()
            for i, (top, left) in enumerate(zip(tops, lefts)):
                out[i, :, top : top + size, left : left + size] = pattern
            return out
        top = 0 if self.location.startswith("top") else height - size
        left = 0 if self.location.endswith("left") else width - size
        out[:, :, top : top + size, left : left + size] = pattern
        return out


# ---------------------------------------------------------------- training-time form and cover images


@dataclass
class TwoFormTrigger:
    """A trigger whose training images carry another form than its test inputs (Qi et al. 2023's asymmetric
    triggers), with cover images: calling it stamps ``test``, the full trigger of the triggered test set;
    ``train_form()`` is ``train``, what poisoned and cover images carry; ``cover_rate`` of the training pool
    are cover images, which keep their labels."""

    test: Trigger
    train: Trigger
    cover_rate: float = 0.0

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return self.test(images, generator)

    def train_form(self) -> Trigger:
        return self.train


def train_form(trigger: Trigger) -> Trigger:
    """What a trigger's poisoned and cover training images carry: its ``train_form()``, or the trigger itself."""
    form = getattr(trigger, "train_form", None)
    return trigger if form is None else form()


def cover_rate(trigger: Trigger) -> float:
    """The fraction of the training pool a trigger makes cover images (0 for most)."""
    return float(getattr(trigger, "cover_rate", 0.0))


def check_cover_rate(name: str, value: float) -> float:
    """A trigger's ``cover_rate`` setting: a fraction of the training pool, in [0, 1)."""
    return float(TRIGGERS.number(name, "cover_rate", value, low=0, high=1, high_open=True))


# Importing the trigger modules registers them (they use TRIGGERS and the helpers above).
from . import (  # noqa: E402,F401
    adaptive_blend,
    adaptive_patch,
    art_pattern,
    blend,
    checker,
    four_corner,
    noise,
    sig,
    square,
    wanet,
)

__all__ = [
    "CHUNK",
    "LOCATIONS",
    "TRIGGERS",
    "PatchTrigger",
    "Trigger",
    "TriggerFactory",
    "TwoFormTrigger",
    "build_trigger",
    "check_cover_rate",
    "check_patch",
    "check_shape",
    "chunked",
    "fixed_place",
    "random_pattern",
    "cover_rate",
    "to_uint8",
    "train_form",
]
