"""The settings of a training run, checked for type and range, and the size rules between them.

``backdoor.params`` reads them from params.yaml; ``backdoor.checks`` checks names and combinations against the
registries and the dataset. The defender's settings (fine-tuning, re-learning) are in ``backdoor.defence_settings``:
a training stage never reads them, so editing them never makes a trained model stale.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from .errors import ConfigError
from .validation import check_bool, check_choice, check_keys, check_number, check_text


@dataclass
class LoopConfig:
    """The training loop's settings (``backdoor.loop.fit``, the ``sgd`` recipe): SGD + Nesterov, warm-up then
    cosine decay. Fine-tuning always runs this loop."""

    epochs: int = 4
    batch_size: int = 128
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    warmup_epochs: float = 0.5
    label_smoothing: float = 0.0
    crop_padding: int = 2
    flip: bool = True
    compile: bool = False
    nesterov: bool = True  # BackdoorBench's and FST's fine-tuning use plain momentum

    min_epochs = 1  # fine-tuning may run 0 epochs (evaluation only)

    def validate(self, section: str) -> None:
        check_number(f"{section}.epochs", self.epochs, low=self.min_epochs, integer=True)
        check_number(f"{section}.batch_size", self.batch_size, low=1, integer=True)
        check_number(f"{section}.lr", self.lr, low=0, low_open=True)
        check_number(f"{section}.momentum", self.momentum, low=0, high=1, high_open=True)
        check_number(f"{section}.weight_decay", self.weight_decay, low=0)
        check_number(f"{section}.warmup_epochs", self.warmup_epochs, low=0, high=max(self.epochs, 0))
        check_number(f"{section}.label_smoothing", self.label_smoothing, low=0, high=1, high_open=True)
        check_number(f"{section}.crop_padding", self.crop_padding, low=0, integer=True)
        check_bool(f"{section}.flip", self.flip)
        check_bool(f"{section}.compile", self.compile)
        check_bool(f"{section}.nesterov", self.nesterov)


FREEZE = ("none", "backbone")
SGD_ONLY = ("lr", "momentum", "weight_decay", "warmup_epochs", "label_smoothing", "crop_padding", "flip", "nesterov")


@dataclass
class TrainConfig(LoopConfig):
    recipe: str = "sgd"  # how the model is trained (backdoor.recipes); its own settings: recipes.<recipe>
    pretrained: bool = False
    subset: int | None = None  # train on this many (seeded) images of the training set; None = all
    eval_every_epoch: bool = True  # log CA/ASR after each epoch (a full test-set pass); else loss only
    init: str | None = None  # a trained model.pt to start from (its head is re-initialised); None = random weights
    freeze: str = "none"  # none | backbone: train the head only (the transfer setting)

    def validate(self, section: str) -> None:
        super().validate(section)
        check_text(f"{section}.recipe", self.recipe)
        check_bool(f"{section}.pretrained", self.pretrained)
        if self.subset is not None:
            check_number(f"{section}.subset", self.subset, low=1, integer=True)
        check_bool(f"{section}.eval_every_epoch", self.eval_every_epoch)
        check_choice(f"{section}.freeze", self.freeze, FREEZE)
        if self.init is not None:
            check_text(f"{section}.init", self.init)
            if self.pretrained:
                raise ConfigError(f"{section}.init: a model to start from, and {section}.pretrained too: choose one")
        elif self.freeze != "none":  # a frozen random backbone trains a head on noise
            raise ConfigError(
                f"{section}.freeze: {self.freeze} needs a trained backbone to freeze: set it with init "
                f"(grid.init, a name under inits:), or leave freeze at none"
            )


def section(cls: type, values: Any, name: str) -> Any:
    """A settings section (``train``, ``finetune``) as its dataclass, every key and value checked."""
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise ConfigError(f"{name}: must be a mapping of settings, got {values!r}")
    check_keys(name, values, [f.name for f in fields(cls)])
    config = cls(**values)
    config.validate(name)
    return config


def check_poison_rate(rate: Any, where: str = "poison_rate") -> float:
    """The one rule for a poison rate: a fraction of the training pool, in [0, 1]."""
    return float(check_number(where, rate, low=0, high=1))


def poison_count(pool: int, rate: float) -> int:
    """Poisoned images for a rate: a fraction of the training pool, rounded."""
    return int(round(pool * rate))


def pool_size(subset: int | None, num_train: int) -> int:
    """The training pool against the training set; returns the pool's size."""
    if subset is not None and subset > num_train:
        raise ConfigError(f"train.subset: {subset} is more than the {num_train} training images")
    return subset or num_train


def check_training(train: TrainConfig, num_train: int) -> None:
    pool = pool_size(train.subset, num_train)
    if train.batch_size > pool:
        raise ConfigError(f"train.batch_size: {train.batch_size} is more than the {pool} training images")
