"""Reach a model's hidden layers by module name through forward hooks, the same way for every model, and
resolve the layer names a regularizer is given against the model.

Names come from ``backdoor.models.hidden_layers(model)`` (timm's ``feature_info``), so small-cnn and
any timm model are handled by one mechanism, with no per-architecture code.

Hooks are added and removed around a single forward pass. A ``torch.compile``'d model does not see
hooks added after it was compiled (dynamo skips hook guards by default), so :func:`unwrap` gives the
eager module behind a compiled wrapper; callers that need hooks run that one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
import torch.nn as nn

from .errors import ConfigError
from .models import block_layers, hidden_layers

INPUT = "input"  # manifold mixup's layer 0: mix the input batch itself


def unwrap(model: nn.Module) -> nn.Module:
    """The eager module behind a ``torch.compile`` wrapper (the model itself otherwise)."""
    return getattr(model, "_orig_mod", model)


def _module(model: nn.Module, name: str) -> nn.Module:
    try:
        return model.get_submodule(name)
    except AttributeError as exc:
        raise KeyError(f"{type(model).__name__} has no module {name!r}") from exc


def _once(name: str, seen: set[str]) -> None:
    # A module called twice in one forward pass (a shared activation, say) has no single output.
    if name in seen:
        raise RuntimeError(
            f"module {name!r} ran more than once in one forward pass; "
            f"hook a module that runs once (one of the model's hidden stages)"
        )
    seen.add(name)


@contextmanager
def capture_outputs(model: nn.Module, names: list[str]) -> Iterator[dict[str, torch.Tensor]]:
    """Record the outputs of the named modules during the one forward pass run inside the block.

    The yielded dict maps each name to its module's output (with its autograd graph). When the
    block exits, an output that a later in-place operation changed is reported instead of being
    silently used with the wrong values.
    """
    outputs: dict[str, torch.Tensor] = {}
    versions: dict[str, int] = {}
    seen: set[str] = set()

    def hook_for(name: str):
        def hook(module: nn.Module, inputs, output):
            if not isinstance(output, torch.Tensor):
                raise TypeError(f"module {name!r} returns {type(output).__name__}, not a tensor")
            _once(name, seen)
            outputs[name] = output
            versions[name] = output._version

        return hook

    handles = [_module(model, name).register_forward_hook(hook_for(name)) for name in names]
    try:
        yield outputs
    finally:
        for handle in handles:
            handle.remove()
    for name, output in outputs.items():
        if output._version != versions[name]:
            raise RuntimeError(
                f"the output of module {name!r} was changed in place later in the forward pass; "
                f"its captured value is not the module's output"
            )


@contextmanager
def replace_output(model: nn.Module, name: str, fn: Callable[[torch.Tensor], torch.Tensor]) -> Iterator[None]:
    """Inside the block, the named module's output is replaced by ``fn(output)``."""
    seen: set[str] = set()

    def hook(module: nn.Module, inputs, output):
        if not isinstance(output, torch.Tensor):
            raise TypeError(f"module {name!r} returns {type(output).__name__}, not a tensor")
        _once(name, seen)
        return fn(output)

    handle = _module(model, name).register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


def layer_names(name: str, value: object, *, allow_input: bool) -> list[str] | None:
    """Check the form of a ``layers`` setting (None: the method's default layers)."""
    if value is None:
        return None
    where = f"regularizers.{name}.layers"
    if isinstance(value, str) or not isinstance(value, (list, tuple)) or not value:
        raise ConfigError(f"{where}: must be a non-empty list of layer names, got {value!r}")
    for layer in value:
        if not isinstance(layer, str) or not layer:
            raise ConfigError(f"{where}: layer names must be non-empty strings, got {layer!r}")
        if layer == INPUT and not allow_input:
            raise ConfigError(f"{where}: {INPUT!r} is not a hidden layer; list hidden layers only")
    if len(set(value)) != len(value):
        raise ConfigError(f"{where}: a layer is listed twice in {list(value)}")
    return list(value)


class Layers:
    """Layer names resolved against the model: the given ones, checked, or ``default(model)``; at build time
    when the model is known, else on first use."""

    def __init__(
        self,
        name: str,
        layers: list[str] | None,
        model: nn.Module | None,
        *,
        allow_input: bool,
        default: Callable[[nn.Module], list[str]],
    ):
        self.name, self.layers, self.allow_input, self.default = name, layers, allow_input, default
        self.model: nn.Module | None = None
        self.resolved: list[str] = []
        if model is not None:
            self.for_model(model)

    def for_model(self, model: nn.Module) -> list[str]:
        model = unwrap(model)
        if model is not self.model:
            self.resolved = self._resolve(model)
            self.model = model
        return self.resolved

    def _resolve(self, model: nn.Module) -> list[str]:
        hidden = list(dict.fromkeys(hidden_layers(model) + block_layers(model)))
        valid = ([INPUT] if self.allow_input else []) + hidden
        if self.layers is None:
            if not hidden:
                raise ConfigError(
                    f"regularizers.{self.name}.layers: {type(model).__name__} exposes no hidden layers "
                    f"(no feature_info); list the layers explicitly"
                )
            return self.default(model)
        for layer in self.layers:
            if layer not in valid:
                raise ConfigError(
                    f"regularizers.{self.name}.layers: unknown layer {layer!r} for "
                    f"{type(model).__name__}; valid layers: {', '.join(valid)}"
                )
        return self.layers
