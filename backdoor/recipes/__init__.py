"""Training recipes (``train.recipe``): how a model is trained on its poisoned set.

``sgd`` is the project's loop (``backdoor.loop.fit``: SGD with Nesterov momentum, warm-up then cosine decay,
crop and flip), whose settings are the ``train:`` section itself; fine-tuning always runs it. ``airbench`` is
Keller Jordan's fast CIFAR-10 recipe, whose own settings live under ``recipes.airbench``.

Adding a recipe is one module with a factory and one ``@RECIPES.register`` line (and its import below). A factory
takes the recipe's settings as keyword-only arguments with defaults (the one place a default lives), validates them
and returns a :class:`Recipe`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import torch
import torch.nn as nn

from ..classifier import Classifier
from ..registry import Registry
from ..settings import TrainConfig

Loss = Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]


class Recipe(Protocol):
    """What the training stage needs of a recipe."""

    def label_smoothing(self, cfg: TrainConfig) -> float:
        """The label smoothing of the loss the recipe trains (the regularizers build the loss with it)."""

    def peak_lr(self, cfg: TrainConfig) -> float:
        """The largest learning rate of the weights' SGD update on the batch-mean loss: what a fine-tuning lr
        given as a multiple of the training lr (``finetune.lr_multiple``) multiplies."""

    def fit(
        self,
        clf: Classifier,
        images: torch.Tensor,
        labels: torch.Tensor,
        cfg: TrainConfig,
        *,
        seed: int,
        loss_fn: Loss,
        on_epoch_end: Callable[[int, float], None] | None = None,
        progress: bool = True,
        params: list[nn.Parameter] | None = None,
        freeze_norm_stats: bool = False,
    ) -> int:
        """Train ``clf.model`` in place on uint8 ``images``; return the optimizer steps taken."""


RECIPES: Registry[Callable[..., Recipe]] = Registry("train.recipe", section="recipes")


def build_recipe(name: str, **settings: Any) -> Recipe:
    """Validate ``recipes.<name>`` and return the recipe."""
    return RECIPES.build(name, **settings)


def check_recipe(name: str, settings: dict[str, Any], cfg: TrainConfig) -> None:
    """A recipe's name, settings and what it cannot do with ``cfg``, before any work."""
    recipe = build_recipe(name, **settings)
    refuse = getattr(recipe, "refuse", None)
    if refuse is not None:
        refuse(cfg)


from . import airbench, sgd  # noqa: E402,F401  (each registers its recipe)
