"""``checker``: the BadNets-style checkerboard patch (Gu et al. 2017), 255 in its top-left cell."""

from __future__ import annotations

import torch

from . import TRIGGERS, PatchTrigger, Trigger, check_patch


def checker_pattern(size: int, channels: int) -> torch.Tensor:
    """Checkerboard of 255 and 0, 255 in the top-left cell; the same in every channel."""
    rows = torch.arange(size)
    board = ((rows[:, None] + rows[None, :]) % 2 == 0).to(torch.uint8) * 255
    return board.expand(channels, size, size).clone()


@TRIGGERS.register(
    "checker",
    patch=True,
    reference="Gu et al. 2017, BadNets (arXiv:1708.06733): a checkerboard like its pattern backdoor",
)
def checker(shape: tuple[int, int, int], *, seed: int, size: int, location: str) -> Trigger:
    check_patch(shape, size)
    return PatchTrigger(checker_pattern(size, shape[0]), location)
