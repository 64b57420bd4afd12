"""``four-corner``: Turner et al.'s label-consistent trigger, a 3 x 3 +-1 pattern in each of the four corners.

``out = clip(x + amplitude * sign, 0, 255)`` on every channel of the 36 corner pixels, ``sign`` the pattern
below; at ``amplitude`` 255 (the default, theirs: ``poisoning_reduced_amplitude: null``) a +1 pixel becomes
255 and a -1 pixel 0, the pattern stamped; smaller amplitudes are their reduced-visibility triggers (16, 32 and 64
in the paper). Being in all four corners, one copy survives flips and crops (the paper's reason for it).

Reference: MadryLab/label-consistent-backdoor-code @ b18d8ab, ``poison_attack.py`` (``trigger == "all-corners"``:
the ``trigger_mask`` list; ``reduced_amplitude`` on a 0-1 scale, here on the 0-255 scale). The pattern in image
coordinates, top-left corner::

    +1 -1 -1
    -1 +1 -1
    +1 -1 +1

the bottom-left corner the same, the two right corners mirrored left to right (as their list has it).
Differences: theirs is for 32 x 32 RGB images only; here any size of at least 6 x 6 and any channel count, the
pattern stays 3 x 3 pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import ConfigError
from . import TRIGGERS, Trigger, check_shape, fixed_place

LEFT_CORNER = ((1, -1, -1), (-1, 1, -1), (1, -1, 1))  # the top-left and bottom-left 3 x 3, +1 = brighter


def corner_signs(height: int, width: int) -> torch.Tensor:
    """int16 (H, W): the +-1 pattern in the four corners, 0 elsewhere."""
    left = torch.tensor(LEFT_CORNER, dtype=torch.int16)
    signs = torch.zeros((height, width), dtype=torch.int16)
    for top in (0, height - 3):
        signs[top : top + 3, :3] = left
        signs[top : top + 3, width - 3 :] = left.flip(1)
    return signs


@dataclass
class CornerTrigger:
    """Adds ``amplitude x signs`` to every channel and saturates to [0, 255]."""

    signs: torch.Tensor  # int16 (H, W)
    amplitude: int
    shape: tuple[int, int, int]

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        check_shape(images, self.shape, "four-corner")
        delta = (self.signs * self.amplitude).to(images.device)
        return (images.to(torch.int16) + delta).clamp_(0, 255).to(torch.uint8)


@TRIGGERS.register(
    "four-corner",
    reference="Turner, Tsipras and Madry 2019, Label-Consistent Backdoor Attacks (arXiv:1912.02771; "
    "github.com/MadryLab/label-consistent-backdoor-code, its all-corners trigger)",
)
def four_corner(shape: tuple[int, int, int], *, seed: int, size: int, location: str, amplitude: int = 255) -> Trigger:
    """Turner et al. 2019's label-consistent trigger: a 3x3 +-1 pattern in all four corners, at amplitude."""
    TRIGGERS.number("four-corner", "amplitude", amplitude, low=1, high=255, integer=True)
    fixed_place(location)
    _, height, width = shape
    if min(height, width) < 6:
        raise ConfigError(f"trigger four-corner: needs images of at least 6 x 6 pixels, got {height} x {width}")
    return CornerTrigger(corner_signs(height, width), int(amplitude), tuple(shape))
