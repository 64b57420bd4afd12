"""Model registry: ``create_model(name, num_classes=..., in_chans=..., image_size=...)``.

Our own families register here; any other name is looked up in timm and adapted to the input
(channels, and a small-image stem below 64 px). Every model exposes timm's interface:
``forward_features``, ``forward_head(x, pre_logits=...)`` and ``feature_info`` (hidden layers by
module name), which is how regularizers reach hidden layers of any model.
"""

from __future__ import annotations

from typing import Callable

import torch.nn as nn

from ..errors import ConfigError

ModelBuilder = Callable[..., nn.Module]
SMALL_IMAGE = 64  # below this, stems are adapted: an ImageNet stem (stride-2 conv + pool) throws away most pixels
MODELS: dict[str, ModelBuilder] = {}


def register_model(name: str) -> Callable[[ModelBuilder], ModelBuilder]:
    def add(builder: ModelBuilder) -> ModelBuilder:
        MODELS[name] = builder
        return builder
    return add


def is_known_arch(name: str) -> bool:
    if name in MODELS:
        return True
    import timm  # only when needed: importing it costs seconds per stage

    return timm.is_model(name)


def check_arch(name: str) -> None:
    if not is_known_arch(name):
        raise ConfigError(f"arch: unknown value {name!r}; valid choices: {', '.join(sorted(MODELS))}, "
                          f"or any timm model name (python -c 'import timm; print(timm.list_models())')")


def create_model(name: str, *, num_classes: int, in_chans: int, image_size: int,
                 pretrained: bool = False, **kwargs) -> nn.Module:
    check_arch(name)
    if name in MODELS:
        return MODELS[name](num_classes=num_classes, in_chans=in_chans, image_size=image_size,
                            pretrained=pretrained, **kwargs)
    from .timm_models import create_timm_model

    return create_timm_model(name, num_classes=num_classes, in_chans=in_chans, image_size=image_size,
                             pretrained=pretrained, **kwargs)


def hidden_layers(model: nn.Module) -> list[str]:
    """Module names of the model's hidden stages, shallow to deep (timm's feature_info)."""
    info = getattr(model, "feature_info", None)
    if info is None:
        return []
    return [entry["module"] for entry in (info if isinstance(info, list) else info.info)]


def block_layers(model: nn.Module) -> list[str]:
    """Module names of the model's blocks, shallow to deep, without the stem: where manifold mixup's
    reference mixes (after layer1 and layer2 of a ResNet). A family names them in ``model.block_layers``;
    without it, the hidden stages."""
    return list(getattr(model, "block_layers", None) or hidden_layers(model))


from . import small_cnn  # noqa: E402,F401  (registers small-cnn)
from . import nasnet  # noqa: E402,F401  (registers nasnet-mobile, nasnet-large)
from . import cpu_resnet  # noqa: E402,F401  (registers resnet6-cpu)
