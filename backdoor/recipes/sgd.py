"""``sgd``: the project's training loop (``backdoor.loop.fit``), its settings the ``train:`` section itself."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..loop import fit
from ..settings import TrainConfig
from . import RECIPES


@dataclass(frozen=True)
class SGDRecipe:
    def label_smoothing(self, cfg: TrainConfig) -> float:
        return cfg.label_smoothing

    def peak_lr(self, cfg: TrainConfig) -> float:
        return cfg.lr

    def fit(self, clf, images, labels, cfg: TrainConfig, *, seed: int, **options: Any) -> int:
        return fit(clf, images, labels, cfg, seed=seed, **options)


@RECIPES.register("sgd", reference="this project's loop: SGD + Nesterov, warm-up then cosine decay (train: section)")
def sgd() -> SGDRecipe:
    return SGDRecipe()
