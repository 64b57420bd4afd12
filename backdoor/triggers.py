"""Trigger registry: a trigger is a function of a uint8 batch (N, C, H, W) that returns a new batch.

Adding a trigger is one factory plus one ``@register_trigger`` line. A factory receives the image
shape, a seed for any fixed random pattern, the patch size and location, and its own settings from
``params.yaml: triggers.<name>``; it validates them and returns the function that stamps images.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol

import torch

from .errors import ConfigError, choices_error
from .seeding import generator as make_generator

LOCATIONS = ("bottom-right", "bottom-left", "top-right", "top-left", "random")


class Trigger(Protocol):
    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor: ...


TriggerFactory = Callable[..., Trigger]
TRIGGERS: dict[str, TriggerFactory] = {}


def register_trigger(name: str) -> Callable[[TriggerFactory], TriggerFactory]:
    def add(factory: TriggerFactory) -> TriggerFactory:
        TRIGGERS[name] = factory
        return factory
    return add


def build_trigger(name: str, shape: tuple[int, int, int], *, seed: int = 0, size: int = 3,
                  location: str = "bottom-right", **settings) -> Trigger:
    """Validate and build trigger ``name`` for images of ``shape`` = (C, H, W)."""
    if name not in TRIGGERS:
        raise choices_error("trigger", name, sorted(TRIGGERS))
    if location not in LOCATIONS:
        raise choices_error("trigger_location", location, LOCATIONS)
    return TRIGGERS[name](tuple(shape), seed=seed, size=size, location=location, **settings)


def _no_settings(name: str, settings: dict) -> None:
    if settings:
        raise ConfigError(f"triggers.{name}: unknown setting(s) {', '.join(sorted(settings))}; this trigger takes none")


# ---------------------------------------------------------------- patch triggers


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
                out[i, :, top:top + size, left:left + size] = pattern
            return out
        top = 0 if self.location.startswith("top") else height - size
        left = 0 if self.location.endswith("left") else width - size
        out[:, :, top:top + size, left:left + size] = pattern
        return out


def _check_patch(shape: tuple[int, int, int], size: int) -> None:
    _, height, width = shape
    if not isinstance(size, int) or isinstance(size, bool) or size < 1:
        raise ConfigError(f"trigger_size: must be a positive integer, got {size!r}")
    if size > min(height, width):
        raise ConfigError(f"trigger_size: {size} px is larger than the {height}x{width} image")


def checker_pattern(size: int, channels: int) -> torch.Tensor:
    """Checkerboard of 255 and 0, 255 in the top-left cell; the same in every channel."""
    rows = torch.arange(size)
    board = ((rows[:, None] + rows[None, :]) % 2 == 0).to(torch.uint8) * 255
    return board.expand(channels, size, size).clone()


@register_trigger("checker")
def checker(shape, *, seed, size, location, **settings) -> Trigger:
    _no_settings("checker", settings)
    _check_patch(shape, size)
    return PatchTrigger(checker_pattern(size, shape[0]), location)


@register_trigger("square")
def square(shape, *, seed, size, location, value: int = 255, **settings) -> Trigger:
    """A solid patch (BadNets' white square by default)."""
    _no_settings("square", settings)
    _check_patch(shape, size)
    if not 0 <= value <= 255:
        raise ConfigError(f"triggers.square.value: must be in [0, 255], got {value}")
    return PatchTrigger(torch.full((shape[0], size, size), value, dtype=torch.uint8), location)
