"""``square``: a solid patch, BadNets' white square."""

from __future__ import annotations

import torch

from . import PatchTrigger, Trigger, _check_patch, _keys, _number, register_trigger


@register_trigger("square", patch=True)
def square(shape, *, seed, size, location, value: int = 255, **settings) -> Trigger:
    """A solid patch (BadNets' white square by default)."""
    _keys("square", settings)
    _check_patch(shape, size)
    _number("square", "value", value, low=0, high=255, integer=True)
    return PatchTrigger(torch.full((shape[0], size, size), value, dtype=torch.uint8), location)
