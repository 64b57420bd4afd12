"""``blend``: the whole image blended with a fixed random pattern (Chen et al. 2017)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from . import TRIGGERS, Trigger, check_shape, chunked, fixed_place, random_pattern, to_uint8


@dataclass
class BlendTrigger:
    """``round((1 - alpha) * x + alpha * pattern)`` over the whole image (Chen et al. 2017)."""

    pattern: torch.Tensor  # uint8 (C, H, W)
    alpha: float

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        check_shape(images, tuple(self.pattern.shape), "blend")
        pattern = self.pattern.to(images.device, torch.float32) * self.alpha
        return chunked(lambda x: to_uint8(x.float() * (1.0 - self.alpha) + pattern), images)


@TRIGGERS.register(
    "blend",
    reference="Chen et al. 2017, Targeted Backdoor Attacks on Deep Learning Systems Using "
    "Data Poisoning (blended injection; a seeded uniform pattern, not their photo)",
)
def blend(shape: tuple[int, int, int], *, seed: int, size: int, location: str, alpha: float = 0.2) -> Trigger:
    TRIGGERS.number("blend", "alpha", alpha, low=0, low_open=True, high=1)
    fixed_place(location)
    return BlendTrigger(random_pattern(seed, shape), float(alpha))
