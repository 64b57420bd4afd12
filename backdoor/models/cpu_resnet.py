"""resnet6-cpu: a small ResNet for 32-px colour images: 0.80 CIFAR-10 test accuracy after 5 epochs on the 50k
training set (9.6 min wall on 2 shared cores here, 9.2 CPU-minutes; 90 s per epoch on one quiet thread).

Three stages of 3x3 conv -> 2x2 max-pool -> BN -> ReLU (widths 32, 64, 128; 32 -> 16 -> 8 -> 4 px), then
one residual pair of conv-BN-ReLU at the deepest stage, global average pooling and a linear head: five
convs and a linear layer. At 32 px: 390k parameters, 30.1 MFLOPs forward per image (FlopCounterMode),
about 480 training images/s per CPU core here (2-core AMD EPYC, batch 128, crop+flip; 1 thread,
images per CPU-second). Recipe and measurements: docs/cpu-recipes.md.

Why this shape (measured, same doc): on CPU the batch-norm, ReLU and pooling passes over full-resolution
activations cost as much as the convs, so pooling comes before BN (a quarter of the pixels), and the
extra depth goes where it is cheapest per useful FLOP, the 4x4 stage (+50% FLOPs, -15% speed, +4-5
points of accuracy at the same CPU time). At 64 px (Flowers) every stage is 4x dearer, still under
0.13 GFLOPs per image.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from ..errors import ConfigError
from . import MODELS, check_widths
from .small_cnn import StagedCNN, conv_bn


class Residual(nn.Module):
    """x + conv-BN-ReLU(conv-BN-ReLU(x)), as in Page's ResNet-9."""

    def __init__(self, chans: int):
        super().__init__()
        self.body = nn.Sequential(conv_bn(chans, chans), conv_bn(chans, chans))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class CPUResNet(StagedCNN):
    """Stage i: conv-pool-BN-ReLU to ``widths[i]`` channels (half the resolution), then ``residual[i]``
    residual pairs."""

    def __init__(
        self,
        num_classes: int,
        in_chans: int,
        widths: tuple[int, ...] = (32, 64, 128),
        residual: tuple[int, ...] = (0, 0, 1),
    ):
        if len(widths) != len(residual):
            raise ConfigError(f"resnet6-cpu: {len(widths)} widths but {len(residual)} residual counts")
        stages = [
            nn.Sequential(conv_bn(prev, width, pool=True), *[Residual(width) for _ in range(pairs)])
            for prev, width, pairs in zip((in_chans, *widths[:-1]), widths, residual)
        ]
        super().__init__(stages, widths, num_classes)


@MODELS.register("resnet6-cpu", reference="this project's CPU ResNet (docs/cpu-recipes.md), after Page's ResNet-9")
def resnet6_cpu(
    *,
    num_classes: int,
    in_chans: int,
    image_size: int,
    widths: tuple[int, ...] = (32, 64, 128),
    residual: tuple[int, ...] = (0, 0, 1),
) -> nn.Module:
    """Three conv-pool-BN-ReLU stages, residual pairs where asked, a linear head: the CPU model for colour images"""
    widths = check_widths("resnet6-cpu", "widths", widths)
    return CPUResNet(num_classes, in_chans, widths, check_widths("resnet6-cpu", "residual", residual, len(widths), 0))
