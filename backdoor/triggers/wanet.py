"""``wanet``: a fixed smooth warp (Nguyen and Tran 2021), with WaNet's noise-mode cross images."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..seeding import generator as make_generator
from . import CHUNK, TRIGGERS, Trigger, check_shape, chunked, fixed_place, to_uint8


@dataclass
class WarpTrigger:
    """WaNet (Nguyen and Tran 2021): every image resampled through one fixed, smooth warping grid.

    ``grid`` is float32 (H, W, 2) in ``F.grid_sample`` convention (``[..., 0]`` = x across the
    width, ``[..., 1]`` = y down the height, both in [-1, 1], ``align_corners=True``): the identity
    grid plus a displacement field, made as in the paper's code:

    1. ``field`` = uniform [-1, 1] of shape (2, k, k) from ``generator(seed, "trigger-pattern")``,
       divided by its mean absolute value;
    2. bicubic upsampling (``align_corners=True``) to (H, W);
    3. scaled by ``strength / H`` for y and ``strength / W`` for x (the paper's ``s / input_height``
       on its square images), added to the identity grid, clamped to [-1, 1].

    Pixels are sampled bilinearly from the float image and rounded back to uint8.

    Noise mode (``noise_mode: true``): the paper also trains on "cross" images, warped through the
    grid plus per-image uniform noise in [-1, 1] / H (/ W for x), that keep their true labels so
    the network learns the *exact* warp, not any warp. Here ``cross_ratio`` is non-zero only in
    noise mode, and ``make_poisoned_set`` then adds round(cross_ratio x number poisoned) cross
    images, drawn from the unpoisoned training images of any class, to the poisoned-set delta
    (listed in ``PoisonedSet.cover_indices``). The paper mixes them per batch at the same ratio;
    a fixed set keeps the poisoned training set a stored, checksummed delta. Test images are
    warped without noise.
    """

    grid: torch.Tensor  # float32 (H, W, 2)
    noise_mode: bool = False
    ratio: float = 2.0  # the cross_ratio setting; used only in noise mode

    @property
    def cross_ratio(self) -> float:
        return self.ratio if self.noise_mode else 0.0

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        self._check(images)
        grid = self.grid.to(images.device)
        return chunked(lambda x: self._warp(x, grid.expand(len(x), -1, -1, -1)), images)

    def cross(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Warp with the grid plus fresh per-image noise (drawn from ``generator`` on the CPU)."""
        self._check(images)
        height, width = self.grid.shape[:2]
        scale = torch.tensor([1.0 / width, 1.0 / height])
        parts = []
        for start in range(0, len(images), CHUNK):
            x = images[start : start + CHUNK]
            noise = (torch.rand((len(x), height, width, 2), generator=generator) * 2 - 1) * scale
            parts.append(self._warp(x, (self.grid + noise).clamp_(-1, 1).to(images.device)))
        return torch.cat(parts) if parts else images.clone()

    def _check(self, images: torch.Tensor) -> None:
        check_shape(images, (images.shape[1], *self.grid.shape[:2]) if images.dim() == 4 else (), "wanet")

    @staticmethod
    def _warp(images: torch.Tensor, grids: torch.Tensor) -> torch.Tensor:
        return to_uint8(F.grid_sample(images.float(), grids, mode="bilinear", padding_mode="zeros", align_corners=True))


def wanet_grid(seed: int, height: int, width: int, strength: float, grid_size: int) -> torch.Tensor:
    """The fixed warping grid of ``WarpTrigger`` (float32 (H, W, 2), x then y, in [-1, 1])."""
    field = torch.rand((1, 2, grid_size, grid_size), generator=make_generator(seed, "trigger-pattern")) * 2 - 1
    field = field / field.abs().mean()
    field = F.interpolate(field, size=(height, width), mode="bicubic", align_corners=True)[0].permute(1, 2, 0)
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, height), torch.linspace(-1, 1, width), indexing="ij")
    identity = torch.stack((xs, ys), dim=-1)
    scale = torch.tensor([strength / width, strength / height])
    return (identity + field * scale).clamp_(-1, 1).contiguous()


@TRIGGERS.register(
    "wanet",
    reference="Nguyen and Tran 2021, WaNet - Imperceptible Warping-based Backdoor Attack "
    "(ICLR; github.com/VinAIResearch/Warping-based_Backdoor_Attack-release)",
)
def wanet(
    shape: tuple[int, int, int],
    *,
    seed: int,
    size: int,
    location: str,
    strength: float = 0.5,
    grid_size: int = 4,
    noise_mode: bool = False,
    cross_ratio: float = 2,
) -> Trigger:
    TRIGGERS.number("wanet", "strength", strength, low=0, low_open=True)
    TRIGGERS.number("wanet", "grid_size", grid_size, low=1, integer=True)
    TRIGGERS.flag("wanet", "noise_mode", noise_mode)
    TRIGGERS.number("wanet", "cross_ratio", cross_ratio, low=0, low_open=True)
    fixed_place(location)
    _, height, width = shape
    return WarpTrigger(wanet_grid(seed, height, width, float(strength), grid_size), noise_mode, float(cross_ratio))
