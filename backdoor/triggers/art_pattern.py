"""``art-pattern``: ART's ``add_pattern_bd``, four pixels near the bottom-right corner."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from . import TRIGGERS, Trigger, check_shape, fixed_place


def art_pattern_pixels(height: int, width: int, distance: int) -> list[tuple[int, int]]:
    """The (row, column) of each pixel ART's ``add_pattern_bd`` sets, for ``distance`` d from the bottom-right."""
    return [
        (height - distance, width - distance),
        (height - distance - 1, width - distance - 1),
        (height - distance, width - distance - 2),
        (height - distance - 2, width - distance),
    ]


@dataclass
class PixelTrigger:
    """Sets the listed pixels to ``value`` on every channel; keeps every other pixel."""

    pixels: list[tuple[int, int]]
    value: int
    shape: tuple[int, int, int]

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        check_shape(images, (images.shape[1], *self.shape[1:]) if images.dim() == 4 else (), "art-pattern")
        out = images.clone()
        for row, col in self.pixels:
            out[:, :, row, col] = self.value
        return out


@TRIGGERS.register(
    "art-pattern",
    reference="IBM Adversarial Robustness Toolbox, add_pattern_bd "
    "(art/attacks/poisoning/perturbations/image_perturbations.py)",
)
def art_pattern(
    shape: tuple[int, int, int], *, seed: int, size: int, location: str, distance: int = 2, pixel_value: int = 255
) -> Trigger:
    """ART's add_pattern_bd, pixel for pixel."""
    _, height, width = shape
    TRIGGERS.number("art-pattern", "distance", distance, low=1, high=min(height, width) - 2, integer=True)
    TRIGGERS.number("art-pattern", "pixel_value", pixel_value, low=0, high=255, integer=True)
    fixed_place(location)
    return PixelTrigger(art_pattern_pixels(height, width, distance), pixel_value, tuple(shape))
