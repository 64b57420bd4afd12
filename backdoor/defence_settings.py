"""The defender's settings: clean fine-tuning (``finetune:`` and the grid's ``ft_`` axes) and re-learning
(``relearn:``), and the experiment as a defence stage reads it.

Apart from ``backdoor.settings`` so that no training stage reads them: editing a defence never makes a trained
model stale.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Any

from .errors import ConfigError
from .naming import AXES, FT_AXES
from .params import Experiment, mapping
from .settings import LoopConfig, section
from .validation import check_number, check_text

LR_MULTIPLE = re.compile(r"^(\d+(?:\.\d*)?|\.\d+)x$")  # "0.1x": a multiple of the training run's peak lr


def lr_multiple(lr: Any) -> float | None:
    """The multiple in ``"<m>x"`` (the fine-tuning lr as a multiple of the model's training peak lr), else None."""
    match = LR_MULTIPLE.match(lr) if isinstance(lr, str) else None
    return float(match[1]) if match else None


def check_lr(where: str, lr: Any) -> None:
    """A learning rate: a positive number, or ``"<m>x"``, m > 0 times the training run's peak lr."""
    if isinstance(lr, str):
        multiple = lr_multiple(lr)
        if multiple is None or multiple <= 0:
            raise ConfigError(
                f"{where}: must be a number in (0, inf) or a multiple of the training run's peak lr "
                f"written as '<m>x' (e.g. '1x', '0.1x'), got {lr!r}"
            )
        return
    check_number(where, lr, low=0, low_open=True)


@dataclass
class DefenceLoop(LoopConfig):
    """The loop settings of a defender's run; ``lr`` may be ``"<m>x"`` (``resolve`` turns it into a number)."""

    def validate(self, section: str) -> None:
        check_lr(f"{section}.lr", self.lr)
        LoopConfig.validate(replace(self, lr=1.0) if isinstance(self.lr, str) else self, section)

    def resolve(self, peak_lr: float | None) -> DefenceLoop:
        """The settings with ``lr`` a number: a multiple times ``peak_lr`` (the trained model's, from its file)."""
        multiple = lr_multiple(self.lr)
        if multiple is None:
            return self
        if peak_lr is None:
            raise ConfigError(
                f"finetune lr {self.lr!r}: the model records no training peak lr (trained before "
                "recipes were recorded): re-run its train stage"
            )
        return replace(self, lr=multiple * peak_lr)


@dataclass
class FinetuneConfig(DefenceLoop):
    epochs: int = 5
    lr: float | str = 0.01
    batch_size: int = 128
    clean_size: float = 0.05  # < 1: fraction of the training pool; >= 1: number of images
    method: str = "ft"  # the fine-tuning method (backdoor.finetune_methods); its settings: finetune_methods.<method>
    eval_every: int = 1  # evaluate CA/ASR every this many epochs (and after the last)

    min_epochs = 0

    def validate(self, section: str) -> None:
        super().validate(section)
        self.validate_one("clean_size", f"{section}.clean_size")
        self.validate_one("method", f"{section}.method")
        check_number(f"{section}.eval_every", self.eval_every, low=1, integer=True)

    def validate_one(self, key: str, where: str) -> None:
        """The settings a grid axis can set (lr, clean_size, method), named as the user wrote them; the method's
        name against the registry is checked by backdoor.checks."""
        if key == "lr":
            check_lr(where, self.lr)
            return
        if key == "method":
            check_text(where, self.method)
            return
        check_number(where, self.clean_size, low=0, low_open=True)
        if self.clean_size >= 1 and self.clean_size != int(self.clean_size):
            raise ConfigError(f"{where}: 1 or more means a number of images and must be whole, got {self.clean_size!r}")

    def clean_count(self, pool: int) -> int:
        """The number of clean images: a fraction of the training pool, or a count."""
        return int(round(self.clean_size * pool)) if self.clean_size < 1 else int(self.clean_size)


@dataclass
class RelearnConfig(DefenceLoop):
    """Re-learning (Min et al., NeurIPS 2024): a defended model, and the clean model of the same cell, re-tuned on
    the defender's clean set plus ``poisons`` of the attacker's poisoned images; their setting: 5 epochs, 5 poisons."""

    epochs: int = 5
    lr: float | str = 0.01
    batch_size: int = 128
    poisons: int = 5
    crop_padding: int = 0
    flip: bool = False
    warmup_epochs: float = 0.0

    def validate(self, section: str) -> None:
        super().validate(section)
        check_number(f"{section}.poisons", self.poisons, low=1, integer=True)


def check_finetuning(finetune: FinetuneConfig, pool: int, poison_rate: float) -> None:
    """The defender's clean set against the pool's unpoisoned images, and its batch size."""
    from .settings import poison_count

    unpoisoned = pool - poison_count(pool, poison_rate)
    clean = finetune.clean_count(pool)
    if clean < 1:
        raise ConfigError(f"finetune.clean_size: {finetune.clean_size:g} of {pool} training images is no image")
    if clean > unpoisoned:
        raise ConfigError(
            f"finetune.clean_size: asks for {clean} clean images but only {unpoisoned} of the {pool} "
            f"training images are unpoisoned"
        )
    if finetune.epochs and finetune.batch_size > clean:
        raise ConfigError(f"finetune.batch_size: {finetune.batch_size} is more than the {clean} clean images")


class DefenceExperiment(Experiment):
    """The experiment as a defence stage reads it: the training side, plus the fine-tuning and re-learning settings
    (for a grid cell, ``grid.settings.finetune`` with the ``ft_`` axes)."""

    PARTS = (*Experiment.PARTS, "finetune", "method_settings", "relearn")

    @cached_property
    def finetune(self) -> FinetuneConfig:
        values = self.settings_section("finetune")
        if self.cell is not None:
            for axis, key in FT_AXES.items():
                if key in values:
                    raise ConfigError(
                        f"grid.settings.finetune.{key}: set by the grid axis grid.{axis} (a list), not in grid.settings"
                    )
                if axis in self.cell:  # checked here, so that an error names the axis, not the finetune section
                    FinetuneConfig(**{key: self.cell[axis]}).validate_one(key, axis)
                    values[key] = self.cell[axis]
        return section(FinetuneConfig, values, f"{self.prefix}finetune")

    @property
    def ft_lr(self) -> float | str:
        return self.finetune.lr

    @property
    def ft_clean_size(self) -> float:
        return self.finetune.clean_size

    @cached_property
    def ft_method(self) -> str:
        """The grid's ``ft_method`` axis, or ``finetune.method`` alone."""
        method = self.cell.get("ft_method") if self.cell is not None else None
        if method is None:
            finetune = mapping(f"{self.prefix}finetune", self.setting("finetune"))
            method = finetune.get("method", FinetuneConfig.method)
        return check_text("ft_method" if self.cell else "finetune.method", method)

    @cached_property
    def method_settings(self) -> dict[str, Any]:
        """``finetune_methods.<finetune.method>``."""
        return self.method_block("finetune_methods", self.ft_method)

    @cached_property
    def relearn(self) -> RelearnConfig:
        return section(RelearnConfig, self.settings_section("relearn"), f"{self.prefix}relearn")

    def axes(self) -> dict[str, Any]:
        """Every axis value: what names the cell."""
        return {axis: getattr(self, axis) for axis in AXES}
