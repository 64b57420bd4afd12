"""``blend``: the whole image blended with a fixed random pattern (Chen et al. 2017)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from . import Trigger, _check_shape, _chunked, _fixed_place, _keys, _number, _to_uint8, random_pattern, register_trigger


@dataclass
class BlendTrigger:
    """``round((1 - alpha) * x + alpha * pattern)`` over the whole image (Chen et al. 2017)."""

    pattern: torch.Tensor  # uint8 (C, H, W)
    alpha: float

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        _check_shape(images, tuple(self.pattern.shape), "blend")
        pattern = self.pattern.to(images.device, torch.float32) * self.alpha
        return _chunked(lambda x: _to_uint8(x.float() * (1.0 - self.alpha) + pattern), images)


@register_trigger("blend")
def blend(shape, *, seed, size, location, alpha: float = 0.2, **settings) -> Trigger:
    _keys("blend", settings)
    _number("blend", "alpha", alpha, low=0, low_open=True, high=1)
    _fixed_place(location)
    return BlendTrigger(random_pattern(seed, shape), float(alpha))
