"""Model registry: ``create_model(name, num_classes=..., in_chans=..., image_size=..., **settings)``.

Our own families register in ``MODELS`` (a module each; a model's settings, such as its widths, are its factory's
keyword-only parameters, set under ``models.<name>`` in params.yaml); any other name is looked up in timm and
adapted to the input (channels, and a small-image stem below 64 px). Every model exposes timm's interface:
``forward_features``, ``forward_head(x, pre_logits=...)`` and ``feature_info`` (hidden layers by module name),
which is how regularizers, detectors and defences reach hidden layers of any model.

An entry's facts: ``has_weights`` (ImageNet weights exist for ``train.pretrained``) and ``data_init`` (part of the
model is computed from its training images by ``model.init_from_data(images, normalize)``, into the layer
``model.data_layer``: airbench's whitening).
"""

from __future__ import annotations

import torch.nn as nn

from ..errors import ConfigError
from ..registry import Registry

SMALL_IMAGE = 64  # below this, stems are adapted: an ImageNet stem (stride-2 conv + pool) throws away most pixels
MODELS = Registry(
    "arch",
    section="models",
    built_in=("num_classes", "in_chans", "image_size", "pretrained"),
    facts={"has_weights": False, "data_init": False},
)


def is_known_arch(name: str) -> bool:
    if name in MODELS:
        return True
    import timm  # only when needed: importing it costs seconds per stage

    return timm.is_model(name)


def check_arch(name: str) -> None:
    if not is_known_arch(name):
        raise ConfigError(
            f"arch: unknown value {name!r}; valid choices: {', '.join(MODELS.names())}, "
            f"or any timm model name (python -c 'import timm; print(timm.list_models())')"
        )


def check_model_settings(name: str, settings: dict, pretrained: bool = False) -> None:
    """A model's settings (``models.<name>``) and ``train.pretrained`` against what it has, before any work."""
    check_arch(name)
    if name not in MODELS:
        if settings:
            raise ConfigError(
                f"models.{name}: settings are for this project's models ({', '.join(MODELS.names())}); "
                f"a timm model takes none here"
            )
        return
    MODELS.check_keys(name, settings)
    if pretrained and not MODELS.get(name).has_weights:
        raise ConfigError(f"train.pretrained: {name} has no pretrained weights; set it to false")


def create_model(
    name: str, *, num_classes: int, in_chans: int, image_size: int, pretrained: bool = False, **settings
) -> nn.Module:
    check_model_settings(name, settings, pretrained)
    if name in MODELS:
        extra = {"pretrained": pretrained} if MODELS.get(name).has_weights else {}
        return MODELS.build(
            name, num_classes=num_classes, in_chans=in_chans, image_size=image_size, **extra, **settings
        )
    from .timm_models import create_timm_model

    return create_timm_model(
        name, num_classes=num_classes, in_chans=in_chans, image_size=image_size, pretrained=pretrained
    )


def check_widths(name: str, key: str, widths: object, count: int | None = None, low: int = 1) -> tuple[int, ...]:
    """A model setting that lists one positive integer per stage (``models.<name>.<key>``), as a tuple."""
    values = tuple(widths) if isinstance(widths, (list, tuple)) else None
    ok = values is not None and (count is None or len(values) == count) and len(values) > 0
    if not ok or any(not isinstance(w, int) or isinstance(w, bool) or w < low for w in values):
        what = f"{count} integers" if count else "a list of integers"
        raise ConfigError(f"models.{name}.{key}: {what} of at least {low} (one per stage), got {widths!r}")
    return values


def is_data_initialised(name: str) -> bool:
    """Whether part of the model is computed from its training images (``model.init_from_data``)."""
    return name in MODELS and MODELS.get(name).data_init


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


def classifier_head(model: nn.Module) -> nn.Linear:
    """The final linear layer (timm's ``get_classifier``, which every family here has): what linear probing trains,
    FE-tuning and FST re-initialise and fine-pruning masks."""
    head = model.get_classifier() if hasattr(model, "get_classifier") else None
    if not isinstance(head, nn.Linear):
        raise ConfigError(
            f"{type(model).__name__}: its classifier is {type(head).__name__}, not one linear layer: "
            f"the fine-tuning methods that work on the head (lp, fe-tuning, fst, fine-pruning) need one"
        )
    return head


def prunable_layer(model: nn.Module) -> tuple[str, int]:
    """The layer fine-pruning prunes, by module name, and its channels: the last hidden stage (timm's feature_info),
    whose channels, averaged over the image, are the head's inputs. Masking a head input is masking that
    channel (BackdoorBench masks the linear layer's input columns; Liu et al. prune the last conv's filters)."""
    layers = getattr(model, "feature_info", None)
    if not layers:
        raise ConfigError(f"{type(model).__name__}: no feature_info, so no layer to prune")
    last = (layers if isinstance(layers, list) else layers.info)[-1]
    head = classifier_head(model)
    if last["num_chs"] != head.in_features:
        raise ConfigError(
            f"{type(model).__name__}: its last stage {last['module']} has {last['num_chs']} channels but "
            f"the head takes {head.in_features} features: fine-pruning cannot map one to the other"
        )
    return last["module"], int(last["num_chs"])


from . import airbench, cpu_resnet, nasnet, small_cnn  # noqa: E402,F401  (each registers its models)
