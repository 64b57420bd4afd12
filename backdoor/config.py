"""One experiment's settings, read from params.yaml and validated before any heavy work.

Top-level scalars of params.yaml are the focus experiment. A grid cell is ``grid.settings`` plus
one value per axis. Method settings (``triggers.<name>``, ``regularizers.<name>``) are shared.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError, choices_error
from .training import LoopConfig

AXES = ("dataset", "arch", "trigger", "strategy", "poison_rate", "regularizer", "seed")
CELL_SETTINGS = ("image_size", "trigger_size", "trigger_location", "target", "source", "train", "finetune")


@dataclass
class TrainConfig(LoopConfig):
    pretrained: bool = False
    subset: int | None = None  # train on this many (seeded) images of the poisoned set; None = all
    eval_every_epoch: bool = True  # log CA/ASR after each epoch (a full test-set pass); else loss only


@dataclass
class FinetuneConfig(LoopConfig):
    epochs: int = 5
    lr: float = 0.01
    batch_size: int = 128
    clean_size: float = 0.05  # < 1: fraction of the training set; >= 1: number of images


def _section(cls, values: dict | None, name: str):
    values = dict(values or {})
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"{name}: unknown key(s) {', '.join(unknown)}; valid keys: {', '.join(sorted(known))}")
    config = cls(**values)
    config.validate(name)
    return config


def _int(name: str, value: Any, optional: bool = False) -> int | None:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{name}: must be an integer, got {value!r}")
    return value


@dataclass
class Experiment:
    dataset: str
    arch: str
    trigger: str
    trigger_size: int
    trigger_location: str
    strategy: str
    target: int
    source: int | None
    poison_rate: float
    regularizer: str
    seed: int
    image_size: int | None = None  # photo datasets are resized to this once, at download; None = default
    train: TrainConfig = field(default_factory=TrainConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    trigger_settings: dict = field(default_factory=dict)
    regularizer_settings: dict = field(default_factory=dict)

    @classmethod
    def from_dict(cls, values: dict, triggers: dict | None = None, regularizers: dict | None = None,
                  optional: tuple[str, ...] = ()) -> "Experiment":
        """``optional``: axes a grid stage does not use (absent -> None, not validated)."""
        required = [f.name for f in fields(cls)][:11]
        missing = [k for k in required if k not in values and k not in optional]
        if missing:
            raise ConfigError(f"params.yaml: missing key(s) {', '.join(missing)}")
        exp = cls(**{k: values.get(k) for k in required},
                  image_size=values.get("image_size"),
                  train=_section(TrainConfig, values.get("train"), "train"),
                  finetune=_section(FinetuneConfig, values.get("finetune"), "finetune"),
                  trigger_settings=dict((triggers or {}).get(values.get("trigger")) or {}),
                  regularizer_settings=dict((regularizers or {}).get(values.get("regularizer")) or {}))
        exp.validate()
        return exp

    def validate(self) -> None:
        """Every check that needs no data: names, ranges, classes, trigger vs image size."""
        from .data import dataset_spec
        from .models import check_arch
        from .poisoning import build_strategy
        from .regularizers import check_regularizer
        from .triggers import build_trigger

        _int("image_size", self.image_size, optional=True)
        spec = dataset_spec(self.dataset, self.image_size)
        if self.arch is not None:
            check_arch(self.arch)
        _int("trigger_size", self.trigger_size)
        _int("target", self.target)
        _int("source", self.source, optional=True)
        _int("seed", self.seed)
        if isinstance(self.poison_rate, bool) or not isinstance(self.poison_rate, (int, float)):
            raise ConfigError(f"poison_rate: must be a number in [0, 1], got {self.poison_rate!r}")
        if not 0.0 <= self.poison_rate <= 1.0:
            raise ConfigError(f"poison_rate: must be in [0, 1], got {self.poison_rate}")
        self.poison_rate = float(self.poison_rate)
        if self.strategy is not None:
            build_strategy(self.strategy, self.target, self.source, spec.num_classes)
        if self.trigger is not None:
            build_trigger(self.trigger, (spec.channels, spec.image_size, spec.image_size), seed=self.seed,
                          size=self.trigger_size, location=self.trigger_location, **self.trigger_settings)
        if self.regularizer is not None:
            check_regularizer(self.regularizer, self.regularizer_settings)
        _int("train.subset", self.train.subset, optional=True)
        if self.train.subset is not None and self.train.subset < 1:
            raise ConfigError(f"train.subset: must be a positive number of images or null, got {self.train.subset}")
        if self.finetune.clean_size <= 0:
            raise ConfigError(f"finetune.clean_size: must be > 0 (a fraction below 1 or a number of images), "
                              f"got {self.finetune.clean_size}")

    def to_dict(self) -> dict:
        return asdict(self)


def read_params(path: str | Path = "params.yaml") -> dict:
    """params.yaml, or the grid's generated settings.json (same keys)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"missing {path}: run from the repository root")
    try:  # JSON is YAML, but json parses the generated grid/settings.json much faster
        return (json.loads(path.read_text()) if path.suffix == ".json" else yaml.safe_load(path.read_text())) or {}
    except (yaml.YAMLError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: not valid YAML or JSON ({exc})") from exc


def focus_experiment(params: dict) -> Experiment:
    """The top-level scalars: the experiment that ``dvc exp run -S key=value`` changes."""
    return Experiment.from_dict(params, params.get("triggers"), params.get("regularizers"))


def parse_cell(pairs: list[str]) -> dict[str, Any]:
    """``["trigger=checker", "poison_rate=0.05", ...]`` -> typed dict (YAML scalars).

    A grid stage passes only the axes it uses: the poison stage no arch or regularizer, a clean
    baseline's training no trigger or strategy.
    """
    cell = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or key not in AXES:
            raise ConfigError(f"--cell: expected AXIS=VALUE with AXIS in {', '.join(AXES)}, got {pair!r}")
        cell[key] = yaml.safe_load(value)
    missing = [axis for axis in ("dataset", "poison_rate", "seed") if axis not in cell]
    if missing:
        raise ConfigError(f"--cell: missing axis value(s) for {', '.join(missing)}")
    return cell


def cell_experiment(params: dict, cell: dict[str, Any]) -> Experiment:
    """A grid cell: ``grid.settings`` plus the cell's axis values (the focus scalars are not used)."""
    settings = dict((params.get("grid") or {}).get("settings") or {})
    unknown = sorted(set(settings) - set(CELL_SETTINGS))
    if unknown:
        raise ConfigError(f"grid.settings: unknown key(s) {', '.join(unknown)}; valid keys: {', '.join(CELL_SETTINGS)}")
    return Experiment.from_dict({**settings, **cell}, params.get("triggers"), params.get("regularizers"),
                                optional=("arch", "trigger", "strategy", "regularizer"))


def load_experiment(params_path: str | Path = "params.yaml", cell: list[str] | None = None) -> Experiment:
    params = read_params(params_path)
    return cell_experiment(params, parse_cell(cell)) if cell else focus_experiment(params)


def slug(value: Any) -> str:
    """A path- and stage-name-safe form of an axis value (``folder:/x/y`` -> ``folder-x-y``)."""
    text = f"{value:g}" if isinstance(value, float) else str(value)
    return re.sub(r"[^A-Za-z0-9.+-]+", "-", text).strip("-")


def cell_name(cell: dict[str, Any]) -> str:
    """Stable name of a grid cell, e.g. ``fashion-mnist_small-cnn_checker_all-to-one_r0.05_none_s0``."""
    return "_".join([slug(cell["dataset"]), slug(cell["arch"]), slug(cell["trigger"]), slug(cell["strategy"]),
                     "r" + slug(float(cell["poison_rate"])), slug(cell["regularizer"]), f"s{cell['seed']}"])
