"""A small BatchNorm CNN: the CPU default (94k parameters; about 2k training images/s on 2 CPU cores)."""

from __future__ import annotations

import torch
import torch.nn as nn

from . import MODELS, check_widths


def conv_bn(in_chans: int, out_chans: int, pool: bool = False) -> nn.Sequential:
    """3x3 conv, [2x2 max-pool], BN, ReLU. Pooling before BN (resnet6-cpu) normalises a quarter of the pixels;
    small-cnn pools after the block instead, as it always has (its state-dict keys stay the same)."""
    layers: list[nn.Module] = [nn.Conv2d(in_chans, out_chans, 3, padding=1, bias=False)]
    if pool:
        layers.append(nn.MaxPool2d(2))
    return nn.Sequential(*layers, nn.BatchNorm2d(out_chans), nn.ReLU(inplace=True))


class StagedCNN(nn.Module):
    """Stages that each halve the resolution, global average pooling, a linear head. timm-style
    ``feature_info`` and ``block_layers`` name the stage outputs (no stem: every stage is a block)."""

    def __init__(self, stages: list[nn.Module], widths: tuple[int, ...], num_classes: int):
        super().__init__()
        self.stages = nn.Sequential(*stages)
        self.num_features = widths[-1]
        self.fc = nn.Linear(widths[-1], num_classes)
        self.feature_info = [
            {"module": f"stages.{i}", "num_chs": w, "reduction": 2 ** (i + 1)} for i, w in enumerate(widths)
        ]
        self.block_layers = [info["module"] for info in self.feature_info]

    def get_classifier(self) -> nn.Module:
        return self.fc

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = x.mean(dim=(2, 3))
        return x if pre_logits else self.fc(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


class SmallCNN(StagedCNN):
    """Per stage: 3x3 conv, BN, ReLU, 2x2 max-pool."""

    def __init__(self, num_classes: int, in_chans: int, widths: tuple[int, ...] = (32, 64, 128)):
        stages = [
            nn.Sequential(conv_bn(prev, width), nn.MaxPool2d(2))
            for prev, width in zip((in_chans, *widths[:-1]), widths)
        ]
        super().__init__(stages, widths, num_classes)


@MODELS.register("small-cnn", reference="this project's CPU default")
def small_cnn(
    *, num_classes: int, in_chans: int, image_size: int, widths: tuple[int, ...] = (32, 64, 128)
) -> nn.Module:
    """Three conv-BN-ReLU-pool stages and a linear head: the CPU default"""
    return SmallCNN(num_classes, in_chans, check_widths("small-cnn", "widths", widths))
