"""``adaptive-blend``: Qi et al.'s Adap-Blend (ICLR 2023), a blend trigger aimed at latent-separation detectors.

The blended pattern is cut into a ``k x k`` grid of ``pieces``; every poisoned and cover image carries it at
``train_alpha`` with ``round(mask_rate x pieces)`` pieces, chosen at random per image, masked out; test inputs carry
the whole pattern at ``test_alpha``: ``out = round(x + alpha m (pattern - x))``, ``m`` the image's piece mask (all
ones at test). ``cover_rate`` of the training pool are cover images: triggered the same way, labels kept.

Reference: Unispac/Circumventing-Backdoor-Defenses @ e7c0703, ``poison_tool_box/adaptive_blend.py`` (the same
file in vtu81/backdoor-toolbox @ 9d4d909, whose README runs it with ``-alpha 0.15 -test_alpha 0.2``, poison and
cover rate 0.003 on CIFAR-10). Defaults: theirs (pieces 16, mask_rate 0.5, the README's opacities and cover rate;
the poison rate 0.003 is the grid's ``poison_rate``). Differences:

* the pattern is seeded uniform noise (``generator(seed, "trigger-pattern")``, the ``blend`` trigger's), not their
  Hello Kitty photo (``hellokitty_32.png``); at ``test_alpha`` the test trigger is ``blend``'s at that alpha;
* any image size: piece edges at ``floor(i H / k)`` (theirs asserts the side is a multiple of k);
* the masked pieces come from the generator passed in (poisoning's ``"trigger-train"`` and ``"trigger-cover"``
  streams), not Python's ``random``; uint8 rounding half to even (theirs: floats saved as PNG, half up);
* the original repository blends at 0.2 for both forms; 0.15 / 0.2 is the toolbox README's asymmetric pair.

Who is poisoned and who covers: ``backdoor.poisoning`` (its differences from theirs are listed there).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .. import triggers as package  # its CHUNK read at call time
from ..errors import ConfigError
from . import (
    TRIGGERS,
    Trigger,
    TwoFormTrigger,
    check_cover_rate,
    check_shape,
    fixed_place,
    random_pattern,
    to_uint8,
)
from .blend import BlendTrigger


def piece_map(height: int, width: int, side: int) -> torch.Tensor:
    """int64 (H, W): the piece of a ``side x side`` grid each pixel is in, ``row_block x side + column_block``."""
    rows = torch.arange(height) * side // height
    columns = torch.arange(width) * side // width
    return rows[:, None] * side + columns[None, :]


@dataclass
class PieceMaskedBlend:
    """The blend with ``masked`` of its ``side x side`` pieces masked out, drawn per image from the generator."""

    pattern: torch.Tensor  # uint8 (C, H, W)
    alpha: float
    side: int
    masked: int

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        check_shape(images, tuple(self.pattern.shape), "adaptive-blend")
        pieces = self.side * self.side
        # every image's draw first, on the CPU: the result does not depend on the chunking or the device
        hidden_pieces = torch.rand((len(images), pieces), generator=generator).argsort(dim=1)[:, : self.masked]
        hidden = torch.zeros((len(images), pieces), dtype=torch.bool).scatter_(1, hidden_pieces, True)
        where = piece_map(*self.pattern.shape[1:], self.side)
        pattern = self.pattern.to(images.device, torch.float32)
        parts = []
        for start in range(0, len(images), package.CHUNK):
            x = images[start : start + package.CHUNK].float()
            keep = (~hidden[start : start + package.CHUNK][:, where]).unsqueeze(1).to(images.device)  # (n, 1, H, W)
            parts.append(to_uint8(x + self.alpha * keep * (pattern - x)))
        return torch.cat(parts) if parts else images.clone()


@TRIGGERS.register(
    "adaptive-blend",
    reference="Qi et al. 2023, Revisiting the Assumption of Latent Separability for Backdoor Defenses (ICLR; "
    "Adap-Blend, github.com/Unispac/Circumventing-Backdoor-Defenses; a seeded uniform pattern, not their photo)",
)
def adaptive_blend(
    shape: tuple[int, int, int],
    *,
    seed: int,
    size: int,
    location: str,
    train_alpha: float = 0.15,
    test_alpha: float = 0.2,
    pieces: int = 16,
    mask_rate: float = 0.5,
    cover_rate: float = 0.003,
) -> Trigger:
    """Qi et al. 2023's Adap-Blend: half its pieces at train_alpha when poisoning, all at test_alpha at test."""
    name = "adaptive-blend"
    TRIGGERS.number(name, "train_alpha", train_alpha, low=0, low_open=True, high=1)
    TRIGGERS.number(name, "test_alpha", test_alpha, low=0, low_open=True, high=1)
    TRIGGERS.number(name, "pieces", pieces, low=1, integer=True)
    side = math.isqrt(pieces)
    if side * side != pieces:
        raise ConfigError(f"{TRIGGERS.where(name, 'pieces')}: must be a square (k x k pieces), got {pieces}")
    TRIGGERS.number(name, "mask_rate", mask_rate, low=0, high=1, high_open=True)
    cover = check_cover_rate(name, cover_rate)
    fixed_place(location)
    pattern = random_pattern(seed, shape)
    masked = round(mask_rate * pieces)  # theirs: round(mask_rate * pieces)
    if masked == pieces:
        raise ConfigError(f"{TRIGGERS.where(name, 'mask_rate')}: {mask_rate:g} masks all {pieces} pieces")
    train = PieceMaskedBlend(pattern, float(train_alpha), side, masked)
    return TwoFormTrigger(BlendTrigger(pattern, float(test_alpha)), train, cover)
