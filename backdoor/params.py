"""Reading params.yaml (or the grid's generated settings.json) into an experiment, recording what a stage reads.

A stage reads its settings through :class:`Params`, a read-only view that records the dotted key of every value
read, and a whole section when it is iterated or copied. :class:`Experiment` reads each part on first use, so a
stage reads exactly what it uses, and DVC can be told exactly that: ``tests/test_e2e.py`` runs every stage kind and
fails when one reads a key its dvc.yaml entry does not declare (a stale result DVC cannot see). With
``BACKDOOR_PARAMS_READ=<folder>`` in the environment, each stage writes the keys it read there.

Top-level scalars of params.yaml are the focus experiment. A grid cell is ``grid.settings`` plus one value per
axis; method settings (``triggers.<name>``, ``regularizers.<name>`` ...) are shared.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError
from .naming import SCRATCH, TRAIN_AXES, parse_cell
from .settings import TrainConfig, check_poison_rate, section
from .validation import check_keys, check_number, check_text

DEFAULT_THREADS = 2


@dataclass
class ReadLog:
    """The dotted keys read (``reads``), and the keys looked up but absent (``missing``)."""

    reads: set[str] = field(default_factory=set)
    missing: set[str] = field(default_factory=set)


LOG = ReadLog()  # what this process's stage has read


class Params(Mapping[str, Any]):
    """A read-only view of parameters that records what is read into ``log``: a scalar by its dotted key, a
    section by its own key when it is iterated, sized or copied (``plain``)."""

    def __init__(self, data: Mapping[str, Any], path: str = "", log: ReadLog | None = None):
        self._data, self._path, self._log = data, path, LOG if log is None else log

    def _key(self, key: str) -> str:
        return f"{self._path}.{key}" if self._path else str(key)

    def __getitem__(self, key: str) -> Any:
        if key not in self._data:
            self._log.missing.add(self._key(key))
            raise KeyError(key)
        value = self._data[key]
        if isinstance(value, Mapping):
            return Params(value, self._key(key), self._log)
        self._log.reads.add(self._key(key))
        return value

    def __contains__(self, key: object) -> bool:
        present = key in self._data
        (self._log.reads if present else self._log.missing).add(self._key(str(key)))
        return present

    def __iter__(self) -> Iterator[str]:
        self._log.reads.add(self._path)
        return iter(self._data)

    def __len__(self) -> int:
        self._log.reads.add(self._path)
        return len(self._data)

    def plain(self) -> dict[str, Any]:
        """The whole section as a plain dict (recorded as read whole)."""
        self._log.reads.add(self._path)
        return copy.deepcopy(dict(self._data))


def read_params(path: str | Path = "params.yaml") -> dict:
    """params.yaml, or the grid's generated settings.json (same keys), as a plain dict."""
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


def plain(value: Any) -> Any:
    return value.plain() if isinstance(value, Params) else copy.deepcopy(value)


def mapping(where: str, value: Any, what: str = "settings") -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where}: must be a mapping of {what}, got {plain(value)!r}")
    return value


def init_settings(params: Mapping[str, Any], name: str) -> dict[str, Any]:
    """The train settings a grid cell's ``init`` value sets: ``inits.<name>`` (model, freeze); scratch: none."""
    if name == SCRATCH:
        return {}
    inits = mapping("inits", params.get("inits"), "name -> {model: <model.pt>, freeze: none | backbone}")
    if name not in inits:
        raise ConfigError(
            f"init: unknown value {name!r}; valid choices: {', '.join([SCRATCH, *sorted(inits)])} "
            f"(define it under inits: in params.yaml)"
        )
    entry = plain(inits[name])
    if not isinstance(entry, dict) or "model" not in entry:
        raise ConfigError(
            f"inits.{name}: must be a mapping with model: <path to a trained model.pt> and "
            f"freeze: none | backbone, got {entry!r}"
        )
    check_keys(f"inits.{name}", entry, ("model", "freeze"))
    return {"init": entry["model"], "freeze": entry.get("freeze", "none")}


class Experiment:
    """One experiment: the focus scalars of params.yaml (``cell`` None), or a grid cell (``grid.settings`` plus
    the cell's axis values; a stage passes only the axes it uses, the others read as None).

    Every part is read, and checked, on first use; ``validate`` reads them all (the check stage)."""

    def __init__(self, params: Mapping[str, Any], cell: Mapping[str, Any] | None = None):
        self.params = params if isinstance(params, Params) else Params(params, log=ReadLog())
        self.cell = None if cell is None else dict(cell)
        self.prefix = "" if cell is None else "grid.settings."

    # ---------------------------------------------------------------- axes and shared scalars

    def _axis(self, axis: str, optional: bool = False) -> Any:
        if self.cell is not None:
            return self.cell.get(axis)
        if axis not in self.params:
            if optional:
                return None
            raise ConfigError(f"params.yaml: missing key {axis}")
        return plain(self.params[axis])

    @cached_property
    def shared(self) -> Mapping[str, Any]:
        """Where the shared settings live: the top level, or ``grid.settings``."""
        if self.cell is None:
            return self.params
        grid = mapping("grid", self.params.get("grid"))
        return mapping("grid.settings", grid.get("settings"))

    def setting(self, key: str, default: Any = None) -> Any:
        """A shared setting: a top-level scalar of the focus experiment, or ``grid.settings.<key>``."""
        return self.shared.get(key, default)

    def _name(self, axis: str) -> str | None:
        value = self._axis(axis, optional=self.cell is not None)
        return None if value is None and self.cell is not None else check_text(axis, value)

    @cached_property
    def dataset(self) -> str:
        return check_text("dataset", self._axis("dataset"))

    @cached_property
    def arch(self) -> str | None:
        return self._name("arch")

    @cached_property
    def trigger(self) -> str | None:
        return self._name("trigger")

    @cached_property
    def strategy(self) -> str | None:
        return self._name("strategy")

    @cached_property
    def regularizer(self) -> str | None:
        return self._name("regularizer")

    @cached_property
    def poison_rate(self) -> float:
        return check_poison_rate(self._axis("poison_rate"))

    @cached_property
    def seed(self) -> int:
        return check_number("seed", self._axis("seed"), low=0, integer=True)

    @cached_property
    def init(self) -> str:
        """A grid cell's init axis value (``inits.<name>``); the focus experiment trains from random weights."""
        value = SCRATCH if self.cell is None else self.cell.get("init", SCRATCH)
        return check_text("init", value)

    @cached_property
    def image_size(self) -> int | None:
        value = self.setting("image_size")
        return None if value is None else check_number(f"{self.prefix}image_size", value, low=1, integer=True)

    @cached_property
    def trigger_size(self) -> int:
        return check_number(f"{self.prefix}trigger_size", self.setting("trigger_size"), low=1, integer=True)

    @cached_property
    def trigger_location(self) -> str:
        return check_text(f"{self.prefix}trigger_location", self.setting("trigger_location"))

    @cached_property
    def target(self) -> int:
        return check_number(f"{self.prefix}target", self.setting("target"), low=0, integer=True)

    @cached_property
    def source(self) -> int | None:
        value = self.setting("source")
        return None if value is None else check_number(f"{self.prefix}source", value, low=0, integer=True)

    @cached_property
    def threads(self) -> int:
        """Torch's CPU threads for every stage that computes: part of a result's identity (reductions split by
        thread, so another count gives other bytes)."""
        return check_number(f"{self.prefix}threads", self.setting("threads", DEFAULT_THREADS), low=1, integer=True)

    # ---------------------------------------------------------------- the training and fine-tuning settings

    def settings_section(self, name: str) -> dict[str, Any]:
        """A shared settings section (``train``, ``finetune``) as a plain dict, read whole."""
        return plain(mapping(f"{self.prefix}{name}", self.setting(name)))

    @cached_property
    def train(self) -> TrainConfig:
        values = self.settings_section("train")
        if self.cell is not None:
            if "init" in values or "freeze" in values:
                raise ConfigError(
                    "grid.settings.train.init: set by the grid axis grid.init (a list of names under "
                    "inits:), not in grid.settings"
                )
            values.update(init_settings(self.params, self.init))
            for axis, key in TRAIN_AXES.items():
                if key in values:
                    raise ConfigError(
                        f"grid.settings.train.{key}: set by the grid axis grid.{axis} (a list), not in grid.settings"
                    )
                if axis in self.cell:
                    values[key] = self.cell[axis]
        return section(TrainConfig, values, f"{self.prefix}train")

    @cached_property
    def subset(self) -> int | None:
        """``train.subset`` alone (the training pool): what poisoning reads of the training settings."""
        train = mapping(f"{self.prefix}train", self.setting("train"))
        value = train.get("subset")
        return None if value is None else check_number(f"{self.prefix}train.subset", value, low=1, integer=True)

    @cached_property
    def recipe(self) -> str:
        """``train.recipe`` alone: what names the recipe's settings block."""
        train = mapping(f"{self.prefix}train", self.setting("train"))
        return check_text(f"{self.prefix}train.recipe", train.get("recipe", TrainConfig.recipe))

    @cached_property
    def train_epochs(self) -> int:
        """The grid's ``train_epochs`` axis, or ``train.epochs`` alone (what names a model)."""
        if self.cell is not None and "train_epochs" in self.cell:
            value = self.cell["train_epochs"]
        else:
            value = mapping(f"{self.prefix}train", self.setting("train")).get("epochs", TrainConfig.epochs)
        return check_number("train_epochs" if self.cell else "train.epochs", value, low=1, integer=True)

    # ---------------------------------------------------------------- each chosen method's own settings

    def method_block(self, section_name: str, name: str | None) -> dict[str, Any]:
        """``<section>.<name>``: a method's own settings (empty when the block is absent: its defaults)."""
        methods = mapping(section_name, self.params.get(section_name), "method name -> settings")
        if name is None or name not in methods:
            return {}
        return dict(plain(mapping(f"{section_name}.{name}", methods[name])))

    def all_methods(self, section_name: str) -> dict[str, dict[str, Any]]:
        """Every method's settings block of a section (``triggers``), read whole."""
        return dict(plain(mapping(section_name, self.params.get(section_name), "method name -> settings")))

    @cached_property
    def trigger_settings(self) -> dict[str, Any]:
        return self.method_block("triggers", self.trigger)

    @cached_property
    def regularizer_settings(self) -> dict[str, Any]:
        return self.method_block("regularizers", self.regularizer)

    @cached_property
    def model_settings(self) -> dict[str, Any]:
        return self.method_block("models", self.arch)

    @cached_property
    def recipe_settings(self) -> dict[str, Any]:
        return self.method_block("recipes", self.recipe)

    # ---------------------------------------------------------------- all of it

    PARTS = (
        "dataset",
        "arch",
        "trigger",
        "strategy",
        "regularizer",
        "poison_rate",
        "seed",
        "init",
        "image_size",
        "trigger_size",
        "trigger_location",
        "target",
        "source",
        "threads",
        "train",
        "trigger_settings",
        "regularizer_settings",
        "model_settings",
        "recipe_settings",
    )

    def validate(self) -> None:
        """Read and check every part (the check stage; a stage reads only what it uses)."""
        for name in self.PARTS:
            getattr(self, name)


def stage_params(path: str | Path = "params.yaml") -> Params:
    """A stage's parameters: read through :class:`Params`, recorded in ``LOG``."""
    return Params(read_params(path))


def load_experiment(
    params_path: str | Path = "params.yaml", cell: list[str] | None = None, kind: type[Experiment] | None = None
) -> Experiment:
    """The focus experiment, or with ``cell`` (``AXIS=VALUE`` pairs) a grid cell, read as a stage reads it;
    ``kind``: an Experiment subclass that reads more (the defender's settings: ``backdoor.defence_settings``)."""
    return (kind or Experiment)(stage_params(params_path), parse_cell(cell) if cell else None)


def write_read_log(path: str | Path, argv: list[str]) -> None:
    """The keys this process read (``LOG``) and its command line, as JSON: what the declared-params test compares
    with the stage's entry in dvc.yaml."""
    Path(path).write_text(json.dumps({"argv": argv, "reads": sorted(LOG.reads), "missing": sorted(LOG.missing)}))
