"""Regularizer registry: each turns (model, inputs, labels) into the training loss.

``none`` is plain cross-entropy. The defensive regularizers of the paper are added here, each one
factory plus one registry entry; their settings come from ``params.yaml: regularizers.<name>``.
"""

from __future__ import annotations

from typing import Callable

import torch.nn as nn
import torch.nn.functional as F

from .errors import ConfigError, choices_error

Loss = Callable[[nn.Module, "torch.Tensor", "torch.Tensor"], "torch.Tensor"]
RegularizerFactory = Callable[..., Loss]
REGULARIZERS: dict[str, RegularizerFactory] = {}


def register_regularizer(name: str) -> Callable[[RegularizerFactory], RegularizerFactory]:
    def add(factory: RegularizerFactory) -> RegularizerFactory:
        REGULARIZERS[name] = factory
        return factory
    return add


def build_regularizer(name: str, model: nn.Module | None = None, label_smoothing: float = 0.0, **settings) -> Loss:
    """Validate ``settings`` and return the loss. ``model`` lets a factory check layer names."""
    if name not in REGULARIZERS:
        raise choices_error("regularizer", name, sorted(REGULARIZERS))
    return REGULARIZERS[name](model=model, label_smoothing=label_smoothing, **settings)


def check_regularizer(name: str, settings: dict) -> None:
    build_regularizer(name, None, **settings)


@register_regularizer("none")
def no_regularizer(*, model=None, label_smoothing: float = 0.0, **settings) -> Loss:
    if settings:
        raise ConfigError(f"regularizers.none: unknown setting(s) {', '.join(sorted(settings))}; it takes none")
    return lambda net, x, y: F.cross_entropy(net(x), y, label_smoothing=label_smoothing)
