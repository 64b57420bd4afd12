"""Trigger registry: a trigger is a function of a uint8 batch (N, C, H, W) that returns a new batch.

Adding a trigger is one factory plus one ``@register_trigger`` line. A factory receives the image
shape, a seed for any fixed random pattern, the patch size and location, and its own settings from
``params.yaml: triggers.<name>``; it validates them and returns the function that stamps images.

The zoo (settings and their defaults in brackets):

``checker``  BadNets-style checkerboard patch (Gu et al. 2017): a ``trigger_size`` square of 255 and 0
             cells, 255 in its top-left cell, flush in the corner. No settings.
``art-pattern`` ART's ``add_pattern_bd`` (IBM Adversarial Robustness Toolbox): exactly four pixels set to
             ``pixel_value`` [255] on every channel, at (H-d, W-d), (H-d-1, W-d-1), (H-d, W-d-2),
             (H-d-2, W-d) for ``distance`` d [2]; every other pixel is kept. ART's default pixel value 1 is
             for images in [0, 1]; 255 is the same on uint8 images.
``square``   solid patch, BadNets' white square. ``value`` [255].
``noise``    fixed random uint8 patch, drawn once from the seed. No settings.
``blend``    whole image blended with a fixed random uniform pattern (Chen et al. 2017):
             ``out = round((1 - alpha) * x + alpha * pattern)``. ``alpha`` [0.2], in (0, 1]. Chen et
             al. and BackdoorBench blend a Hello Kitty photo at 0.2; we blend seeded uniform noise.
``sig``      horizontal sinusoid added to every row and channel (Barni et al. 2019):
             ``out = clip(x + round(amplitude * sin(2 pi j frequency / W)), 0, 255)``.
             ``amplitude`` [20] (the paper's delta on the 0-255 scale), ``frequency`` [6].
``wanet``    fixed smooth warp (Nguyen and Tran 2021). ``strength`` [0.5] (s), ``grid_size`` [4] (k),
             ``noise_mode`` [false], ``cross_ratio`` [2]. See ``WarpTrigger``.

Patch triggers (checker, square, noise) use ``trigger_size`` and ``trigger_location``; art-pattern and
the full-image triggers (blend, sig, wanet) ignore both, and reject ``trigger_location: random``.
Every trigger keeps uint8, works for any channel count and image size, and is a pure function of
(seed, settings, images, generator): the fixed pattern comes from ``generator(seed, "trigger-pattern")``,
per-image randomness (random patch location, WaNet cross noise) from the generator passed in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Protocol

import torch
import torch.nn.functional as F

from .errors import ConfigError, choices_error
from .seeding import generator as make_generator
from .validation import check_bool, check_keys, check_number, setting_names

LOCATIONS = ("bottom-right", "bottom-left", "top-right", "top-left", "random")
PATCH_TRIGGERS = ("checker", "square", "noise")

# Full-image triggers go through float tensors; this many images at a time bounds the memory
# (256 x 3 x 224 x 224 float32 is 150 MB) whatever the size of the batch passed in.
CHUNK = 256


class Trigger(Protocol):
    """``trigger(images, generator)`` returns a new uint8 batch; ``images`` is never modified.

    A trigger may also have ``cross_ratio`` (float > 0) and ``cross(images, generator)``: then
    ``make_poisoned_set`` adds ``cross_ratio`` x (number poisoned) "cross" samples, made by ``cross``
    from unpoisoned training images, that keep their true labels (WaNet's noise mode).
    """

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor: ...


TriggerFactory = Callable[..., Trigger]
TRIGGERS: dict[str, TriggerFactory] = {}


def register_trigger(name: str) -> Callable[[TriggerFactory], TriggerFactory]:
    def add(factory: TriggerFactory) -> TriggerFactory:
        TRIGGERS[name] = factory
        return factory
    return add


def build_trigger(name: str, shape: tuple[int, int, int], *, seed: int = 0, size: int = 3,
                  location: str = "bottom-right", **settings) -> Trigger:
    """Validate and build trigger ``name`` for images of ``shape`` = (C, H, W)."""
    if name not in TRIGGERS:
        raise choices_error("trigger", name, sorted(TRIGGERS))
    if location not in LOCATIONS:
        raise choices_error("trigger_location", location, LOCATIONS)
    return TRIGGERS[name](tuple(shape), seed=seed, size=size, location=location, **settings)


# ---------------------------------------------------------------- validation helpers

BUILT_IN = ("shape", "seed", "size", "location")  # what build_trigger passes every factory


def _keys(name: str, settings: dict) -> None:
    """Reject settings the factory does not take as keywords, naming ``triggers.<name>.<key>``."""
    check_keys(f"triggers.{name}", settings, setting_names(TRIGGERS[name], BUILT_IN))


def _number(name: str, key: str, value: object, **bounds) -> float:
    return check_number(f"triggers.{name}.{key}", value, **bounds)


def _fixed_place(location: str) -> None:
    if location == "random":
        raise ConfigError("trigger_location: random is only for patch triggers "
                          f"({', '.join(PATCH_TRIGGERS)}); the others have a fixed place")


def _check_shape(images: torch.Tensor, shape: tuple[int, int, int], name: str) -> None:
    if images.dim() != 4 or tuple(images.shape[1:]) != tuple(shape):
        raise ValueError(f"{name} trigger was built for images of shape {tuple(shape)}, "
                         f"got a batch of shape {tuple(images.shape)}")


def _chunked(fn: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor) -> torch.Tensor:
    """``fn`` applied CHUNK images at a time (bounded float memory); always a new tensor."""
    if len(images) == 0:
        return images.clone()
    return torch.cat([fn(images[start:start + CHUNK]) for start in range(0, len(images), CHUNK)])


def _to_uint8(values: torch.Tensor) -> torch.Tensor:
    """Round half to even (``torch.round``), saturate to [0, 255]."""
    return values.round().clamp_(0, 255).to(torch.uint8)


# ---------------------------------------------------------------- patch triggers


@dataclass
class PatchTrigger:
    """Stamps a (C, s, s) uint8 pattern at a corner, or at a random place per image."""

    pattern: torch.Tensor
    location: str

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        out = images.clone()
        _, _, height, width = images.shape
        size = self.pattern.shape[-1]
        pattern = self.pattern.to(images.device)
        if self.location == "random":
            tops = torch.randint(0, height - size + 1, (len(images),), generator=generator).tolist()
            lefts = torch.randint(0, width - size + 1, (len(images),), generator=generator).tolist()
            for i, (top, left) in enumerate(zip(tops, lefts)):
                out[i, :, top:top + size, left:left + size] = pattern
            return out
        top = 0 if self.location.startswith("top") else height - size
        left = 0 if self.location.endswith("left") else width - size
        out[:, :, top:top + size, left:left + size] = pattern
        return out


def _check_patch(shape: tuple[int, int, int], size: int) -> None:
    _, height, width = shape
    if not isinstance(size, int) or isinstance(size, bool) or size < 1:
        raise ConfigError(f"trigger_size: must be a positive integer, got {size!r}")
    if size > min(height, width):
        raise ConfigError(f"trigger_size: {size} px is larger than the {height}x{width} image")


def checker_pattern(size: int, channels: int) -> torch.Tensor:
    """Checkerboard of 255 and 0, 255 in the top-left cell; the same in every channel."""
    rows = torch.arange(size)
    board = ((rows[:, None] + rows[None, :]) % 2 == 0).to(torch.uint8) * 255
    return board.expand(channels, size, size).clone()


def random_pattern(seed: int, shape: tuple[int, ...]) -> torch.Tensor:
    """Uniform uint8 pattern in [0, 255] drawn from ``generator(seed, "trigger-pattern")``."""
    return torch.randint(0, 256, tuple(shape), generator=make_generator(seed, "trigger-pattern"), dtype=torch.uint8)


@register_trigger("checker")
def checker(shape, *, seed, size, location, **settings) -> Trigger:
    _keys("checker", settings)
    _check_patch(shape, size)
    return PatchTrigger(checker_pattern(size, shape[0]), location)


@register_trigger("square")
def square(shape, *, seed, size, location, value: int = 255, **settings) -> Trigger:
    """A solid patch (BadNets' white square by default)."""
    _keys("square", settings)
    _check_patch(shape, size)
    _number("square", "value", value, low=0, high=255, integer=True)
    return PatchTrigger(torch.full((shape[0], size, size), value, dtype=torch.uint8), location)


@register_trigger("noise")
def noise(shape, *, seed, size, location, **settings) -> Trigger:
    """A fixed uniform-noise patch, independent per channel, drawn once from the seed."""
    _keys("noise", settings)
    _check_patch(shape, size)
    return PatchTrigger(random_pattern(seed, (shape[0], size, size)), location)


def art_pattern_pixels(height: int, width: int, distance: int) -> list[tuple[int, int]]:
    """The (row, column) of each pixel ART's ``add_pattern_bd`` sets, for ``distance`` d from the bottom-right."""
    return [(height - distance, width - distance), (height - distance - 1, width - distance - 1),
            (height - distance, width - distance - 2), (height - distance - 2, width - distance)]


@dataclass
class PixelTrigger:
    """Sets the listed pixels to ``value`` on every channel; keeps every other pixel."""

    pixels: list[tuple[int, int]]
    value: int
    shape: tuple[int, int, int]

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        _check_shape(images, (images.shape[1], *self.shape[1:]) if images.dim() == 4 else (), "art-pattern")
        out = images.clone()
        for row, col in self.pixels:
            out[:, :, row, col] = self.value
        return out


@register_trigger("art-pattern")
def art_pattern(shape, *, seed, size, location, distance: int = 2, pixel_value: int = 255, **settings) -> Trigger:
    """ART's add_pattern_bd (art/attacks/poisoning/perturbations/image_perturbations.py), pixel for pixel."""
    _keys("art-pattern", settings)
    _, height, width = shape
    _number("art-pattern", "distance", distance, low=1, high=min(height, width) - 2, integer=True)
    _number("art-pattern", "pixel_value", pixel_value, low=0, high=255, integer=True)
    _fixed_place(location)
    return PixelTrigger(art_pattern_pixels(height, width, distance), pixel_value, tuple(shape))


# ---------------------------------------------------------------- full-image triggers


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


def sig_signal(width: int, amplitude: float, frequency: float) -> torch.Tensor:
    """int16 (W,): ``round(amplitude * sin(2 pi j frequency / W))`` for column j, in float64."""
    columns = torch.arange(width, dtype=torch.float64)
    return (amplitude * torch.sin(2 * math.pi * columns * frequency / width)).round().to(torch.int16)


@dataclass
class AdditiveTrigger:
    """Adds a fixed integer signal (broadcast to (C, H, W)) and saturates to [0, 255]."""

    signal: torch.Tensor  # int16, broadcastable to (C, H, W)
    shape: tuple[int, int, int]

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        _check_shape(images, self.shape, "sig")
        signal = self.signal.to(images.device)
        return _chunked(lambda x: (x.to(torch.int16) + signal).clamp_(0, 255).to(torch.uint8), images)


@register_trigger("sig")
def sig(shape, *, seed, size, location, amplitude: float = 20, frequency: float = 6, **settings) -> Trigger:
    """Barni et al. 2019: the same horizontal sinusoid on every row and channel.

    The signal is rounded to integers once, then added with saturation, so the change to a pixel
    never depends on its value (except where it clips).
    """
    _keys("sig", settings)
    _number("sig", "amplitude", amplitude, low=0, low_open=True, high=255)
    _number("sig", "frequency", frequency, low=0, low_open=True)
    _fixed_place(location)
    return AdditiveTrigger(sig_signal(shape[2], float(amplitude), float(frequency)), tuple(shape))


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
    (listed in ``PoisonedSet.cross_indices``). The paper mixes them per batch at the same ratio;
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
        return _chunked(lambda x: self._warp(x, grid.expand(len(x), -1, -1, -1)), images)

    def cross(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Warp with the grid plus fresh per-image noise (drawn from ``generator`` on the CPU)."""
        self._check(images)
        height, width = self.grid.shape[:2]
        scale = torch.tensor([1.0 / width, 1.0 / height])
        parts = []
        for start in range(0, len(images), CHUNK):
            x = images[start:start + CHUNK]
            noise = (torch.rand((len(x), height, width, 2), generator=generator) * 2 - 1) * scale
            parts.append(self._warp(x, (self.grid + noise).clamp_(-1, 1).to(images.device)))
        return torch.cat(parts) if parts else images.clone()

    def _check(self, images: torch.Tensor) -> None:
        _check_shape(images, (images.shape[1], *self.grid.shape[:2]) if images.dim() == 4 else (), "wanet")

    @staticmethod
    def _warp(images: torch.Tensor, grids: torch.Tensor) -> torch.Tensor:
        return _to_uint8(F.grid_sample(images.float(), grids, mode="bilinear", padding_mode="zeros",
                                       align_corners=True))


def wanet_grid(seed: int, height: int, width: int, strength: float, grid_size: int) -> torch.Tensor:
    """The fixed warping grid of ``WarpTrigger`` (float32 (H, W, 2), x then y, in [-1, 1])."""
    field = torch.rand((1, 2, grid_size, grid_size), generator=make_generator(seed, "trigger-pattern")) * 2 - 1
    field = field / field.abs().mean()
    field = F.interpolate(field, size=(height, width), mode="bicubic", align_corners=True)[0].permute(1, 2, 0)
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, height), torch.linspace(-1, 1, width), indexing="ij")
    identity = torch.stack((xs, ys), dim=-1)
    scale = torch.tensor([strength / width, strength / height])
    return (identity + field * scale).clamp_(-1, 1).contiguous()


@register_trigger("wanet")
def wanet(shape, *, seed, size, location, strength: float = 0.5, grid_size: int = 4,
          noise_mode: bool = False, cross_ratio: float = 2, **settings) -> Trigger:
    _keys("wanet", settings)
    _number("wanet", "strength", strength, low=0, low_open=True)
    _number("wanet", "grid_size", grid_size, low=1, integer=True)
    check_bool("triggers.wanet.noise_mode", noise_mode)
    _number("wanet", "cross_ratio", cross_ratio, low=0, low_open=True)
    _fixed_place(location)
    _, height, width = shape
    return WarpTrigger(wanet_grid(seed, height, width, float(strength), grid_size), noise_mode, float(cross_ratio))
