"""``sig``: a horizontal sinusoid added to the image (Barni et al. 2019)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from . import TRIGGERS, Trigger, check_shape, chunked, fixed_place


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
        check_shape(images, self.shape, "sig")
        signal = self.signal.to(images.device)
        return chunked(lambda x: (x.to(torch.int16) + signal).clamp_(0, 255).to(torch.uint8), images)


@TRIGGERS.register(
    "sig",
    reference="Barni et al. 2019, A New Backdoor Attack in CNNs by Training Set Corruption "
    "Without Label Poisoning (its sinusoidal signal)",
)
def sig(
    shape: tuple[int, int, int], *, seed: int, size: int, location: str, amplitude: float = 20, frequency: float = 6
) -> Trigger:
    """Barni et al. 2019: the same horizontal sinusoid on every row and channel.

    The signal is rounded to integers once, then added with saturation, so the change to a pixel
    never depends on its value (except where it clips).
    """
    TRIGGERS.number("sig", "amplitude", amplitude, low=0, low_open=True, high=255)
    TRIGGERS.number("sig", "frequency", frequency, low=0, low_open=True)
    fixed_place(location)
    return AdditiveTrigger(sig_signal(shape[2], float(amplitude), float(frequency)), tuple(shape))
