"""``adaptive-patch``: Qi et al.'s Adap-Patch (ICLR 2023), patch triggers aimed at latent-separation detectors.

Four patches, placed as the reference's CIFAR-10 trigger images are on a 32 x 32 image (lengths scaled to the
image, at least one pixel): (0) a 5 x 5 patch in the bottom-right corner (their ``phoenix_corner_32.png``), (1) a
13 x 13 patch one pixel from the top and right edges (``firefox_corner_32.png``), (2) a 3 x 3 "X" in each of the
four corners, its centre-facing cell dark (``badnet_patch4_32.png``), (3) an 8 x 8 square three pixels from the
bottom and right edges (``trojan_square_32.png``). Each poisoned or cover image carries one of them, blended at its
own opacity ``train_alphas`` (``out = round(x + alpha (patch - x))`` over the patch): the j-th quarter of the
images, in index order, patch j, as the reference assigns them. Test inputs carry patch 0 in both bottom corners
(``phoenix_corner2_32.png``) and then patch 2, at ``test_alpha``. ``cover_rate`` of the training pool are cover
images (labels kept).

Reference: Unispac/Circumventing-Backdoor-Defenses @ e7c0703, ``poison_tool_box/adaptive_patch.py`` and
``config.py`` (``adaptive_patch_{train,test}_trigger_{names,alphas}['cifar10']``; the same in vtu81/backdoor-toolbox
@ 9d4d909, whose README runs it at poison rate 0.003 and cover rate 0.006). Defaults: theirs. Differences:

* patches 0, 1 and 3 are seeded uniform noise (``generator(seed, "trigger-pattern")``), not their logo pictures,
  and cover their whole box (theirs blend only a picture's non-black pixels); patch 2 is their pattern, in 255/0;
* any image size: lengths and margins scaled by side / 32 (theirs are 32 x 32 pictures);
* the split into quarters is over the batch the form is given (poisoning gives it all poisoned images at once,
  then all cover images, as theirs counts each set apart).

Who is poisoned and who covers: ``backdoor.poisoning`` (its differences from theirs are listed there).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ..errors import ConfigError
from ..seeding import generator as make_generator
from . import TRIGGERS, Trigger, TwoFormTrigger, check_cover_rate, check_shape, fixed_place, to_uint8

REFERENCE_SIDE = 32  # the reference's patch geometry is for 32 x 32 images
X_CORNER = ((1, 0, 1), (0, 1, 0), (1, 0, 0))  # badnet_patch4's top-left 3 x 3 (1 = 255), the others mirror it


@dataclass(frozen=True)
class Stamp:
    """A uint8 (C, h, w) patch and where its top-left pixel goes."""

    pattern: torch.Tensor
    top: int
    left: int


def blend_stamps(images: torch.Tensor, stamps: Sequence[Stamp], alpha: float) -> torch.Tensor:
    """``round(x + alpha (patch - x))`` over each stamp's box, one after the other; a new tensor."""
    out = images.clone()
    for stamp in stamps:
        height, width = stamp.pattern.shape[1:]
        box = (slice(None), slice(None), slice(stamp.top, stamp.top + height), slice(stamp.left, stamp.left + width))
        x = out[box].float()
        out[box] = to_uint8(x + alpha * (stamp.pattern.to(images.device, torch.float32) - x))
    return out


@dataclass
class StampTrigger:
    """The test form: every stamp on every image at one opacity."""

    stamps: tuple[Stamp, ...]
    alpha: float
    shape: tuple[int, int, int]

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        check_shape(images, self.shape, "adaptive-patch")
        return blend_stamps(images, self.stamps, self.alpha)


@dataclass
class OnePatchPerImage:
    """The training form: of ``n`` images, image i carries patch ``floor(i k / n)`` at that patch's opacity."""

    patches: tuple[tuple[Stamp, ...], ...]
    alphas: tuple[float, ...]
    shape: tuple[int, int, int]

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        check_shape(images, self.shape, "adaptive-patch")
        out = images.clone()
        which = torch.arange(len(images)) * len(self.patches) // max(len(images), 1)
        for j, (stamps, alpha) in enumerate(zip(self.patches, self.alphas)):
            rows = (which == j).nonzero().flatten().to(images.device)
            if len(rows):
                out[rows] = blend_stamps(images[rows], stamps, alpha)
        return out


def scaled(length: int, side: int, least: int = 1) -> int:
    """A length of the reference's 32-pixel geometry on an image ``side`` pixels across."""
    return max(least, round(length * side / REFERENCE_SIDE))


def x_corners(channels: int, height: int, width: int) -> tuple[Stamp, ...]:
    """badnet_patch4: the 3 x 3 X in each corner (cells scaled), mirrored so its dark cell faces the centre."""
    cells = torch.tensor(X_CORNER, dtype=torch.uint8) * 255
    cells = cells.repeat_interleave(scaled(1, height), 0).repeat_interleave(scaled(1, width), 1)
    rows, columns = cells.shape
    stamps = []
    for bottom in (False, True):
        for right in (False, True):
            flips = [axis for axis, flip in ((0, bottom), (1, right)) if flip]
            pattern = (cells.flip(flips) if flips else cells).expand(channels, rows, columns).clone()
            stamps.append(Stamp(pattern, height - rows if bottom else 0, width - columns if right else 0))
    return tuple(stamps)


def patches(shape: tuple[int, int, int], seed: int) -> tuple[tuple[Stamp, ...], ...]:
    """The four training patches (see the module doc), noise drawn from ``generator(seed, "trigger-pattern")``."""
    channels, height, width = shape
    g = make_generator(seed, "trigger-pattern")
    noise = lambda h, w: torch.randint(0, 256, (channels, h, w), generator=g, dtype=torch.uint8)  # noqa: E731
    corner = noise(scaled(5, height), scaled(5, width))
    logo = noise(scaled(13, height), scaled(13, width))
    square = noise(scaled(8, height), scaled(8, width))
    logo_top, logo_right = scaled(1, height, 0), scaled(1, width, 0)
    square_bottom, square_right = scaled(3, height, 0), scaled(3, width, 0)
    return (
        (Stamp(corner, height - corner.shape[1], width - corner.shape[2]),),
        (Stamp(logo, logo_top, max(0, width - logo_right - logo.shape[2])),),
        x_corners(channels, height, width),
        (
            Stamp(
                square,
                max(0, height - square_bottom - square.shape[1]),
                max(0, width - square_right - square.shape[2]),
            ),
        ),
    )


def check_alphas(values: object) -> tuple[float, ...]:
    where = TRIGGERS.where("adaptive-patch", "train_alphas")
    if not isinstance(values, (list, tuple)) or len(values) != 4:
        raise ConfigError(f"{where}: must be a list of 4 opacities in (0, 1], one per patch, got {values!r}")
    return tuple(
        float(TRIGGERS.number("adaptive-patch", "train_alphas", v, low=0, low_open=True, high=1)) for v in values
    )


@TRIGGERS.register(
    "adaptive-patch",
    reference="Qi et al. 2023, Revisiting the Assumption of Latent Separability for Backdoor Defenses (ICLR; "
    "Adap-Patch, github.com/Unispac/Circumventing-Backdoor-Defenses; seeded patches, not their pictures)",
)
def adaptive_patch(
    shape: tuple[int, int, int],
    *,
    seed: int,
    size: int,
    location: str,
    train_alphas: Sequence[float] = (0.5, 0.2, 0.5, 0.3),
    test_alpha: float = 1.0,
    cover_rate: float = 0.006,
) -> Trigger:
    """Qi et al. 2023's Adap-Patch: one of four patches per poisoned or cover image, two at test_alpha at test."""
    alphas = check_alphas(train_alphas)
    TRIGGERS.number("adaptive-patch", "test_alpha", test_alpha, low=0, low_open=True, high=1)
    cover = check_cover_rate("adaptive-patch", cover_rate)
    fixed_place(location)
    shape = tuple(shape)
    pieces = patches(shape, seed)
    corner = pieces[0][0]
    test = (corner, Stamp(corner.pattern, corner.top, 0), *pieces[2])  # phoenix_corner2, then badnet_patch4
    return TwoFormTrigger(StampTrigger(test, float(test_alpha), shape), OnePatchPerImage(pieces, alphas, shape), cover)
