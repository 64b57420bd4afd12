"""``square``: a solid patch, BadNets' white square."""

from __future__ import annotations

import torch

from . import TRIGGERS, PatchTrigger, Trigger, check_patch


@TRIGGERS.register(
    "square",
    patch=True,
    reference="Gu et al. 2017, BadNets (arXiv:1708.06733): the white square (BackdoorBench's BadNets)",
)
def square(shape: tuple[int, int, int], *, seed: int, size: int, location: str, value: int = 255) -> Trigger:
    """A solid patch (BadNets' white square by default)."""
    check_patch(shape, size)
    TRIGGERS.number("square", "value", value, low=0, high=255, integer=True)
    return PatchTrigger(torch.full((shape[0], size, size), value, dtype=torch.uint8), location)
