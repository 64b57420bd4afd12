"""One experiment's settings, read from params.yaml and checked for type and range before any work.

Top-level scalars of params.yaml are the focus experiment. A grid cell is ``grid.settings`` plus one
value per axis. Method settings (``triggers.<name>``, ``regularizers.<name>``) are shared.

This module checks what needs no registry (types, ranges, keys); ``backdoor.checks`` checks names and
combinations against the registries and the dataset. Stages import only this one, so editing a
trigger does not make a training stage's code stale.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError
from .validation import check_bool, check_choice, check_keys, check_number, check_text

AXES = ("dataset", "arch", "trigger", "strategy", "poison_rate", "regularizer", "seed", "init", "ft_lr",
        "ft_clean_size", "ft_method")
FT_AXES = {"ft_lr": "lr", "ft_clean_size": "clean_size", "ft_method": "method"}  # axes that set a fine-tuning setting
SCRATCH = "scratch"  # the init axis value of a model trained from random weights
CELL_SETTINGS = ("image_size", "trigger_size", "trigger_location", "target", "source", "train", "finetune")


@dataclass
class LoopConfig:
    """The training loop's settings (``backdoor.loop.fit``): SGD + Nesterov, warm-up then cosine decay."""

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


@dataclass
class TrainConfig(LoopConfig):
    pretrained: bool = False
    subset: int | None = None  # train on this many (seeded) images of the training set; None = all
    eval_every_epoch: bool = True  # log CA/ASR after each epoch (a full test-set pass); else loss only
    init: str | None = None  # a trained model.pt to start from (its head is re-initialised); None = random weights
    freeze: str = "none"  # none | backbone: train the head only (the transfer setting)

    def validate(self, section: str) -> None:
        super().validate(section)
        check_bool(f"{section}.pretrained", self.pretrained)
        if self.subset is not None:
            check_number(f"{section}.subset", self.subset, low=1, integer=True)
        check_bool(f"{section}.eval_every_epoch", self.eval_every_epoch)
        if self.init is not None:
            check_text(f"{section}.init", self.init)
            if self.pretrained:
                raise ConfigError(f"{section}.init: a model to start from, and {section}.pretrained too: choose one")
        check_choice(f"{section}.freeze", self.freeze, FREEZE)


@dataclass
class FinetuneConfig(LoopConfig):
    epochs: int = 5
    lr: float = 0.01
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
            check_number(where, self.lr, low=0, low_open=True)
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


def _section(cls, values: Any, name: str):
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise ConfigError(f"{name}: must be a mapping of settings, got {values!r}")
    check_keys(name, values, [f.name for f in fields(cls)])
    config = cls(**values)
    config.validate(name)
    return config


def _text(name: str, value: Any, optional: bool = False) -> str | None:
    return None if value is None and optional else check_text(name, value)


@dataclass
class Experiment:
    dataset: str
    arch: str | None
    trigger: str | None
    trigger_size: int
    trigger_location: str
    strategy: str | None
    target: int
    source: int | None
    poison_rate: float
    regularizer: str | None
    seed: int
    image_size: int | None = None  # photo datasets are resized to this once, at download; None = default
    train: TrainConfig = field(default_factory=TrainConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    trigger_settings: dict = field(default_factory=dict)
    regularizer_settings: dict = field(default_factory=dict)
    method_settings: dict = field(default_factory=dict)  # finetune_methods.<finetune.method>
    init: str = SCRATCH  # a grid cell's init axis value (inits.<name>); the focus: scratch, or "model" with train.init

    REQUIRED = ("dataset", "arch", "trigger", "trigger_size", "trigger_location", "strategy", "target", "source",
                "poison_rate", "regularizer", "seed")

    @classmethod
    def from_dict(cls, values: dict, triggers: dict | None = None, regularizers: dict | None = None,
                  optional: tuple[str, ...] = (), settings_prefix: str = "",
                  finetune_methods: dict | None = None, init: str | None = None) -> "Experiment":
        """``optional``: axes a grid stage does not use (absent -> None). ``settings_prefix``: where the
        shared settings (the train and finetune sections, image and trigger sizes, target, source) come from,
        for error messages: "" for the focus scalars, "grid.settings." for a grid cell."""
        missing = [k for k in cls.REQUIRED if k not in values and k not in optional]
        if missing:
            raise ConfigError(f"params.yaml: missing key(s) {', '.join(missing)}")
        for name, methods in (("triggers", triggers), ("regularizers", regularizers),
                              ("finetune_methods", finetune_methods)):
            if methods is not None and not isinstance(methods, dict):
                raise ConfigError(f"{name}: must be a mapping of method name -> settings, got {methods!r}")
        train = _section(TrainConfig, values.get("train"), f"{settings_prefix}train")
        finetune = _section(FinetuneConfig, values.get("finetune"), f"{settings_prefix}finetune")
        exp = cls(**{k: values.get(k) for k in cls.REQUIRED},
                  image_size=values.get("image_size"), train=train, finetune=finetune,
                  trigger_settings=_method_settings("triggers", triggers, values.get("trigger")),
                  regularizer_settings=_method_settings("regularizers", regularizers, values.get("regularizer")),
                  method_settings=_method_settings("finetune_methods", finetune_methods, finetune.method),
                  init=init or (SCRATCH if train.init is None else "model"))
        exp.validate(optional, settings_prefix)
        return exp

    def validate(self, optional: tuple[str, ...] = (), settings_prefix: str = "") -> None:
        """Types and ranges of the scalars; names are checked against the registries by backdoor.checks."""
        _text("dataset", self.dataset)
        for axis in ("arch", "trigger", "strategy", "regularizer"):
            _text(axis, getattr(self, axis), optional=axis in optional)
        _text(f"{settings_prefix}trigger_location", self.trigger_location)
        if self.image_size is not None:
            check_number(f"{settings_prefix}image_size", self.image_size, low=1, integer=True)
        check_number(f"{settings_prefix}trigger_size", self.trigger_size, low=1, integer=True)
        check_number(f"{settings_prefix}target", self.target, low=0, integer=True)
        if self.source is not None:
            check_number(f"{settings_prefix}source", self.source, low=0, integer=True)
        check_number("seed", self.seed, low=0, integer=True)
        self.poison_rate = check_poison_rate(self.poison_rate)

    @property
    def ft_lr(self) -> float:
        return self.finetune.lr

    @property
    def ft_clean_size(self) -> float:
        return self.finetune.clean_size

    @property
    def ft_method(self) -> str:
        return self.finetune.method

    def to_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> dict:
        """The experiment without its loop settings: what manifests and metrics files record."""
        return {k: v for k, v in self.to_dict().items() if k not in ("train", "finetune")}


def check_poison_rate(rate: Any, where: str = "poison_rate") -> float:
    """The one rule for a poison rate: a fraction of the training pool, in [0, 1]."""
    return float(check_number(where, rate, low=0, high=1))


def poison_count(pool: int, rate: float) -> int:
    """Poisoned images for a rate: a fraction of the training pool, rounded."""
    return int(round(pool * rate))


def check_pool(exp: Experiment, num_train: int) -> int:
    """The training pool against the training set; returns the pool's size."""
    if exp.train.subset is not None and exp.train.subset > num_train:
        raise ConfigError(f"train.subset: {exp.train.subset} is more than the {num_train} training images")
    return exp.train.subset or num_train


def check_training(exp: Experiment, num_train: int) -> None:
    pool = check_pool(exp, num_train)
    if exp.train.batch_size > pool:
        raise ConfigError(f"train.batch_size: {exp.train.batch_size} is more than the {pool} training images")


def check_finetuning(exp: Experiment, num_train: int) -> None:
    """The defender's clean set against the pool's unpoisoned images, and its batch size."""
    pool = check_pool(exp, num_train)
    unpoisoned = pool - poison_count(pool, exp.poison_rate)
    clean = exp.finetune.clean_count(pool)
    if clean < 1:
        raise ConfigError(f"finetune.clean_size: {exp.finetune.clean_size:g} of {pool} training images is no image")
    if clean > unpoisoned:
        raise ConfigError(f"finetune.clean_size: asks for {clean} clean images but only {unpoisoned} of the {pool} "
                          f"training images are unpoisoned")
    if exp.finetune.epochs and exp.finetune.batch_size > clean:
        raise ConfigError(f"finetune.batch_size: {exp.finetune.batch_size} is more than the {clean} clean images")


def check_sizes(exp: Experiment, num_train: int) -> None:
    """Every size against the training set: the subset, batches, the poison and the defender's clean set."""
    check_training(exp, num_train)
    check_finetuning(exp, num_train)


def _method_settings(section: str, methods: dict | None, name: Any) -> dict:
    settings = (methods or {}).get(name) if isinstance(name, str) else None
    if settings is None:
        return {}
    if not isinstance(settings, dict):
        raise ConfigError(f"{section}.{name}: must be a mapping of settings, got {settings!r}")
    return dict(settings)


def read_params(path: str | Path = "params.yaml") -> dict:
    """params.yaml, or the grid's generated settings.json (same keys)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"missing {path}: run from the repository root")
    try:  # JSON is YAML, but json parses the generated grid/settings.json much faster
        params = json.loads(path.read_text()) if path.suffix == ".json" else yaml.safe_load(path.read_text())
    except (yaml.YAMLError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: not valid YAML or JSON ({exc})") from exc
    if params is None:
        return {}
    if not isinstance(params, dict):
        raise ConfigError(f"{path}: must be a mapping of parameters, got {type(params).__name__}")
    return params


def focus_experiment(params: dict) -> Experiment:
    """The top-level scalars: the experiment that ``dvc exp run -S key=value`` changes."""
    return Experiment.from_dict(params, params.get("triggers"), params.get("regularizers"),
                                finetune_methods=params.get("finetune_methods"))


def init_settings(params: dict, name: str) -> dict[str, Any]:
    """The train settings a grid cell's ``init`` value sets: ``inits.<name>`` (model, freeze); scratch: none."""
    if name == SCRATCH:
        return {}
    inits = params.get("inits") or {}
    if not isinstance(inits, dict):
        raise ConfigError(f"inits: must be a mapping of name -> {{model: <model.pt>, freeze: none | backbone}}, "
                          f"got {inits!r}")
    if name not in inits:
        raise ConfigError(f"init: unknown value {name!r}; valid choices: {', '.join([SCRATCH, *sorted(inits)])} "
                          f"(define it under inits: in params.yaml)")
    entry = inits[name]
    if not isinstance(entry, dict) or "model" not in entry:
        raise ConfigError(f"inits.{name}: must be a mapping with model: <path to a trained model.pt> and "
                          f"freeze: none | backbone, got {entry!r}")
    check_keys(f"inits.{name}", entry, ("model", "freeze"))
    return {"init": entry["model"], "freeze": entry.get("freeze", "none")}


def parse_cell(pairs: list[str]) -> dict[str, Any]:
    """``["trigger=checker", "poison_rate=0.05", ...]`` -> typed dict (YAML scalars).

    A grid stage passes only the axes it uses: the poison stage no arch or regularizer, a clean
    baseline's training no trigger or strategy, only fine-tuning the ft_ axes.
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
    settings = (params.get("grid") or {}).get("settings") or {}
    if not isinstance(settings, dict):
        raise ConfigError(f"grid.settings: must be a mapping of settings, got {settings!r}")
    check_keys("grid.settings", settings, CELL_SETTINGS)
    finetune = settings.get("finetune") or {}
    if not isinstance(finetune, dict):
        raise ConfigError(f"grid.settings.finetune: must be a mapping of settings, got {finetune!r}")
    finetune = dict(finetune)
    train = dict(settings.get("train") or {})
    init = cell.get("init", SCRATCH)
    if isinstance(init, str):
        if "init" in train or "freeze" in train:
            raise ConfigError("grid.settings.train.init: set by the grid axis grid.init (a list of names under "
                              "inits:), not in grid.settings")
        train.update(init_settings(params, init))
    for axis, key in FT_AXES.items():
        if key in finetune:
            raise ConfigError(f"grid.settings.finetune.{key}: set by the grid axis grid.{axis} (a list), "
                              f"not in grid.settings")
        if axis in cell:  # checked here, so that an error names the axis, not the finetune section
            FinetuneConfig(**{key: cell[axis]}).validate_one(key, axis)
            finetune[key] = cell[axis]
    values = {**settings, **{k: v for k, v in cell.items() if k not in (*FT_AXES, "init")}, "finetune": finetune,
              "train": train}
    return Experiment.from_dict(values, params.get("triggers"), params.get("regularizers"),
                                optional=("arch", "trigger", "strategy", "regularizer"), settings_prefix="grid.settings.",
                                finetune_methods=params.get("finetune_methods"), init=init if isinstance(init, str)
                                else None)


def load_experiment(params_path: str | Path = "params.yaml", cell: list[str] | None = None) -> Experiment:
    params = read_params(params_path)
    return cell_experiment(params, parse_cell(cell)) if cell else focus_experiment(params)


def slug(value: Any) -> str:
    """A path- and stage-name-safe form of an axis value (``folder:/x/y`` -> ``folder-x-y``)."""
    text = f"{value:g}" if isinstance(value, float) else str(value)
    return re.sub(r"[^A-Za-z0-9.+-]+", "-", text).strip("-")


def cell_name(cell: dict[str, Any], with_rate: bool = True) -> str:
    """Stable name of a grid cell, e.g. ``fashion-mnist_small-cnn_checker_all-to-one_r0.05_none_s0_ftlr0.01_ftn0.05``;
    without the rate, the name of its family (the cells fine-tuned together)."""
    rate = ["r" + slug(float(cell["poison_rate"]))] if with_rate else []
    return "_".join([slug(cell["dataset"]), slug(cell["arch"]), slug(cell["trigger"]), slug(cell["strategy"]), *rate,
                     slug(cell["regularizer"]), f"s{cell['seed']}", *init_part(cell.get("init", SCRATCH)),
                     "ftlr" + slug(float(cell["ft_lr"])), "ftn" + slug(cell["ft_clean_size"]),
                     slug(cell.get("ft_method", "ft"))])


def init_part(init: str) -> list[str]:
    """The name part of a model's starting point: none for random weights (scratch cells keep their names)."""
    return [] if init == SCRATCH else [f"init-{slug(init)}"]
