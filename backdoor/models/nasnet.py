"""NASNet-A (Zoph et al. 2018): ``nasnet-mobile`` (4 @ 1056) built from timm's cells, ``nasnet-large`` (timm), and
``nasnet-cpu`` (2 @ 576), a narrower member of the family for CPU runs.

timm ships only NASNet-A Large. NASNet-A Mobile is the same network with N = 4 cells per stage,
1056 penultimate filters (44 in the first stage's cells, doubling at each reduction) and a 32-filter
stem -- TF-slim's ``mobile_imagenet_config``: num_cells=12, num_conv_filters=44, stem_multiplier=1,
filter_scaling_rate=2 -- 5,289,978 parameters at 1000 classes, as published (5.3M). ``NASNetA`` below
builds any (N, penultimate, stem) member of the family from timm's own cell classes, with timm's
module names, so at (6, 4032, 96) its state_dict matches timm's ``nasnetalarge`` key for key.

Small images. The ImageNet stem is a 3x3 stride-2 convolution without padding followed by two
stride-2 reduction cells, then two reduction cells inside the network: 32 px become 15, 8, 4, 2, 1.
Every stride-2 op pads 'same' (output ceil(n/2)) and the cells' skip paths (1x1 average pool with
stride 2, output also ceil(n/2)) agree with it at any size, so every size from 1 px up gives valid
shapes -- but the first normal cells would see 4x4 maps and the last 1x1. Below 64 px we do what
the ResNet stem adaptation does: the stem convolution becomes 3x3 stride 1 with padding 1 (same
weights, so pretrained stems still load), and 32 px become 32, 16, 8, 4, 2 (28 px: 28, 14, 7, 4, 2).
"""

from __future__ import annotations

from functools import partial

import torch
import torch.nn as nn

from ..errors import ConfigError
from . import MODELS, SMALL_IMAGE, hidden_layers


class NASNetA(nn.Module):
    """NASNet-A with ``cells_per_stage`` normal cells per stage; timm's module names and interface."""

    def __init__(
        self,
        num_classes: int = 1000,
        in_chans: int = 3,
        *,
        cells_per_stage: int = 4,
        num_features: int = 1056,
        stem_size: int = 32,
        drop_rate: float = 0.0,
        pad_type: str = "same",
    ):
        super().__init__()
        from timm.layers import ConvNormAct, create_classifier
        from timm.models.nasnet import CellStem0, CellStem1, FirstCell, NormalCell, ReductionCell0, ReductionCell1

        if num_features % 24:
            raise ConfigError(
                f"nasnet: num_features must be a multiple of 24 (6 branches x 4 at the last stage), got {num_features}"
            )
        filters = num_features // 24  # width of each branch in the first stage (44 for Mobile, 168 for Large)
        self.num_classes, self.in_chans, self.num_features = num_classes, in_chans, num_features
        self.conv0 = ConvNormAct(
            in_chans,
            stem_size,
            kernel_size=3,
            stride=2,
            padding=0,
            apply_act=False,
            norm_layer=partial(nn.BatchNorm2d, eps=0.001, momentum=0.1),
        )
        self.cell_stem_0 = CellStem0(stem_size, num_channels=filters // 4, pad_type=pad_type)  # out: filters
        self.cell_stem_1 = CellStem1(stem_size, num_channels=filters // 2, pad_type=pad_type)  # out: 2 filters

        # Channels of (x_prev, x) fed to the next cell; a cell outputs 6 x width (normal) or 4 x width (reduction).
        prev, cur = filters, 2 * filters
        self.layer_names: list[str] = []
        cell = 0
        for stage in range(3):
            width = filters * 2**stage
            if stage:
                name = f"reduction_cell_{stage - 1}"
                reduction = (ReductionCell0 if stage == 1 else ReductionCell1)(
                    in_chs_left=prev, out_chs_left=width, in_chs_right=cur, out_chs_right=width, pad_type=pad_type
                )
                self.add_module(name, reduction)
                self.layer_names.append(name)
                cur = 4 * width  # x_prev stays: the first cell after a reduction reads the same x_prev
            for i in range(cells_per_stage):
                if i == 0:  # FirstCell: brings x_prev (twice the resolution) down with its two strided paths
                    module = FirstCell(
                        in_chs_left=prev,
                        out_chs_left=width // 2,
                        in_chs_right=cur,
                        out_chs_right=width,
                        pad_type=pad_type,
                    )
                else:
                    module = NormalCell(
                        in_chs_left=prev, out_chs_left=width, in_chs_right=cur, out_chs_right=width, pad_type=pad_type
                    )
                self.add_module(f"cell_{cell}", module)
                self.layer_names.append(f"cell_{cell}")
                prev, cur, cell = cur, 6 * width, cell + 1
        self.act = nn.ReLU(inplace=True)
        self.feature_info = [
            dict(num_chs=stem_size, reduction=2, module="conv0"),
            dict(num_chs=filters, reduction=4, module="cell_stem_1.conv_1x1.act"),
            dict(num_chs=6 * filters, reduction=8, module="reduction_cell_0.conv_1x1.act"),
            dict(num_chs=12 * filters, reduction=16, module="reduction_cell_1.conv_1x1.act"),
            dict(num_chs=num_features, reduction=32, module="act"),
        ]
        self.block_layers = after_stem([info["module"] for info in self.feature_info])
        self.global_pool, self.head_drop, self.last_linear = create_classifier(
            num_features, num_classes, pool_type="avg", drop_rate=drop_rate
        )

    def get_classifier(self) -> nn.Module:
        return self.last_linear

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x_conv0 = self.conv0(x)
        x_stem_0 = self.cell_stem_0(x_conv0)
        x_prev, x = x_stem_0, self.cell_stem_1(x_conv0, x_stem_0)
        for name in self.layer_names:
            if name.startswith("reduction"):
                x = getattr(self, name)(x, x_prev)  # x_prev is kept for the cell after it
            else:
                x_prev, x = x, getattr(self, name)(x, x_prev)
        return self.act(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.head_drop(self.global_pool(x))
        return x if pre_logits else self.last_linear(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def after_stem(layers: list[str]) -> list[str]:
    """The hidden stages after the stem convolution (``conv0``): NASNet's blocks, shallow to deep."""
    return [layer for layer in layers if layer != "conv0"]


def adapt_nasnet_stem(model: nn.Module, image_size: int) -> None:
    """Below 64 px, make the stem convolution stride 1 with padding 1 (weights unchanged)."""
    if image_size >= SMALL_IMAGE:
        return
    conv = model.conv0.conv
    conv.stride, conv.padding = (1, 1), (1, 1)
    model.feature_info = [dict(info, reduction=max(1, info["reduction"] // 2)) for info in model.feature_info]


@MODELS.register("nasnet-mobile", reference="Zoph et al. 2018, TF-slim mobile_imagenet_config, from timm's cells")
def nasnet_mobile(*, num_classes: int, in_chans: int, image_size: int, drop_rate: float = 0.0) -> nn.Module:
    """NASNet-A Mobile (4 @ 1056) from timm's cells; no pretrained weights (timm ships none: nasnet-large has them)"""
    model = NASNetA(num_classes, in_chans, cells_per_stage=4, num_features=1056, stem_size=32, drop_rate=drop_rate)
    adapt_nasnet_stem(model, image_size)
    return model


@MODELS.register("nasnet-cpu", reference="NASNet-A (Zoph et al. 2018) at 2 @ 576, from timm's cells")
def nasnet_cpu(*, num_classes: int, in_chans: int, image_size: int, drop_rate: float = 0.0) -> nn.Module:
    """NASNet-A with 2 normal cells per stage and 576 penultimate filters (24 per branch in the first stage, a
    32-filter stem): 755,996 parameters at 10 classes against NASNet-A Mobile's 4,243,548. Why narrower, measured
    on CIFAR-10's held-out training images (docs/cpu-recipes.md): at 32 px Mobile trains at about 130 images/s on
    2 cores here, so 5 epochs take 33 minutes, over a 25-minute cell, and its 3 epochs reach 0.673 validation
    accuracy; this one reaches 0.756 in 4 epochs at about 255 images/s. Same cells, same stem adaptation."""
    model = NASNetA(num_classes, in_chans, cells_per_stage=2, num_features=576, stem_size=32, drop_rate=drop_rate)
    adapt_nasnet_stem(model, image_size)
    return model


@MODELS.register("nasnet-large", has_weights=True, reference="timm's nasnetalarge (Zoph et al. 2018)")
def nasnet_large(
    *, num_classes: int, in_chans: int, image_size: int, pretrained: bool = False, drop_rate: float = 0.0
) -> nn.Module:
    """timm's ``nasnetalarge`` (6 @ 4032, 88.8M parameters at 1000 classes), ImageNet weights if pretrained."""
    from .timm_models import create_timm_model

    model = create_timm_model(
        "nasnetalarge",
        num_classes=num_classes,
        in_chans=in_chans,
        image_size=image_size,
        pretrained=pretrained,
        drop_rate=drop_rate,
    )
    adapt_nasnet_stem(model, image_size)
    model.block_layers = after_stem(hidden_layers(model))
    return model
