"""Any timm model, adapted to the dataset's channels and, below 64 px, to small images."""

from __future__ import annotations

import torch.nn as nn

from ..errors import ConfigError
from . import SMALL_IMAGE


def adapt_resnet_stem(model: nn.Module, in_chans: int) -> None:
    """CIFAR-style stem: 3x3 stride-1 conv, no max-pool (timm ResNet family)."""
    old = model.conv1
    if isinstance(old, nn.Sequential):  # deep-stem variants (resnet50d ...): replace the first conv only
        first = old[0]
        old[0] = nn.Conv2d(in_chans, first.out_channels, 3, stride=1, padding=1, bias=False)
    else:
        model.conv1 = nn.Conv2d(in_chans, old.out_channels, 3, stride=1, padding=1, bias=False)
    model.maxpool = nn.Identity()


def create_timm_model(
    name: str, *, num_classes: int, in_chans: int, image_size: int, pretrained: bool = False, **kwargs
) -> nn.Module:
    import timm

    try:
        model = timm.create_model(name, pretrained=pretrained, num_classes=num_classes, in_chans=in_chans, **kwargs)
    except (OSError, RuntimeError) as exc:
        if pretrained:
            raise ConfigError(
                f"train.pretrained: could not load ImageNet weights for {name} (no internet access?): "
                f"{exc}. Place them in the Hugging Face cache (HF_HOME) or set pretrained: false"
            ) from exc
        raise
    if image_size < SMALL_IMAGE and hasattr(model, "conv1") and hasattr(model, "maxpool"):
        adapt_resnet_stem(model, in_chans)
    if hasattr(model, "layer1"):  # ResNet family: the residual stages, without the stem (act1)
        model.block_layers = [f"layer{i}" for i in range(1, 5) if hasattr(model, f"layer{i}")]
    return model
