"""Regularizer registry: each turns (model, inputs, labels) into the training loss.

``none`` is plain cross-entropy. The defensive regularizers of the paper are added here, each one
factory plus one registry entry; their settings come from ``params.yaml: regularizers.<name>``.

A factory is called as ``factory(model=..., label_smoothing=..., **settings)``; its settings are its
other keyword-only arguments, whose defaults come from the method's source (cited at each factory; the
paper gives no hyper-parameters). It validates them (a :class:`ConfigError` naming
``regularizers.<name>.<key>``) and returns ``loss(model, x, y) -> scalar tensor`` for a normalized float
batch ``x`` and int64 labels ``y``. With ``model=None`` (``check_regularizer``, used before any model
exists) everything but layer names is checked; the names are then checked on the first call.

Hidden layers are reached one way for every model: forward hooks (``backdoor.hooks``) on the modules
named by ``backdoor.models.hidden_layers`` / ``block_layers``. ``manifold-mixup`` and ``snnl`` therefore
run the eager model even when ``train.compile`` is on (hooks added per call are invisible to a compiled
graph); ``contrastive`` calls ``forward_features``/``forward_head``, which a compiled wrapper also
forwards to the eager model. Only ``none`` and ``logit-squeeze`` use the compiled forward.

A loss may also have ``epoch_terms() -> dict``: the mean of its parts since the last call (SNNL reports
cross-entropy and its own term), which the training stage logs per epoch.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn as nn

from ..registry import Registry

Loss = Callable[[nn.Module, "torch.Tensor", "torch.Tensor"], "torch.Tensor"]
RegularizerFactory = Callable[..., Loss]
REGULARIZERS: Registry[RegularizerFactory] = Registry(
    "regularizer", section="regularizers", built_in=("model", "label_smoothing", "generator")
)


def build_regularizer(name: str, model: nn.Module | None = None, label_smoothing: float = 0.0, **settings) -> Loss:
    """Validate ``settings`` and return the loss. ``model`` lets a factory check layer names."""
    return REGULARIZERS.build(name, model=model, label_smoothing=label_smoothing, **settings)


def check_regularizer(name: str, settings: dict) -> None:
    build_regularizer(name, None, **settings)


def regularizer_defaults(name: str) -> dict:
    """A regularizer's settings with their defaults (its factory's keyword-only arguments)."""
    return REGULARIZERS.defaults(name)


# ---------------------------------------------------------------- helpers for regularizer modules


def number(name: str, key: str, value: object, **bounds) -> float:
    """``regularizers.<name>.<key>`` checked as a finite number in the interval, as a float."""
    return float(REGULARIZERS.number(name, key, value, **bounds))


def fp32(tensor: torch.Tensor) -> torch.autocast:
    """A region where matmuls stay float32 even inside the training loop's bf16 autocast."""
    return torch.autocast(device_type=tensor.device.type, enabled=False)


# Importing the regularizer modules registers them (each with @REGULARIZERS.register and the helpers above).
from . import contrastive, logit_squeeze, manifold_mixup, none, snnl  # noqa: E402,F401
