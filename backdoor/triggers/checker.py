"""``checker``: the BadNets-style checkerboard patch (Gu et al. 2017), 255 in its top-left cell."""

from __future__ import annotations

import torch

from . import PatchTrigger, Trigger, _check_patch, _keys, register_trigger


def checker_pattern(size: int, channels: int) -> torch.Tensor:
    """Checkerboard of 255 and 0, 255 in the top-left cell; the same in every channel."""
    rows = torch.arange(size)
    board = ((rows[:, None] + rows[None, :]) % 2 == 0).to(torch.uint8) * 255
    return board.expand(channels, size, size).clone()


@register_trigger("checker", patch=True)
def checker(shape, *, seed, size, location, **settings) -> Trigger:
    _keys("checker", settings)
    _check_patch(shape, size)
    return PatchTrigger(checker_pattern(size, shape[0]), location)
