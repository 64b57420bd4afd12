"""The experiment grid: axes from params.yaml ``grid:``, validated, expanded into cells.

Each cell is one poisoned model. Cells share work where the result cannot differ:
one poisoned dataset per (dataset, trigger, strategy, poison_rate, seed), and one clean baseline
model per (dataset, arch, regularizer, seed) for every poison_rate 0 cell. The cells of a family (all
poison rates of one dataset, arch, trigger, strategy, regularizer and seed) are fine-tuned and
evaluated by one stage (see stages/plan_grid.py for why).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

from .config import AXES, cell_experiment, cell_name, slug
from .errors import ConfigError


@dataclass(frozen=True)
class Cell:
    dataset: Any
    arch: Any
    trigger: Any
    strategy: Any
    poison_rate: float
    regularizer: Any
    seed: int

    def as_dict(self) -> dict[str, Any]:
        return {axis: getattr(self, axis) for axis in AXES}

    @property
    def is_baseline(self) -> bool:
        return self.poison_rate == 0

    @property
    def name(self) -> str:
        return cell_name(self.as_dict())

    @property
    def poison_key(self) -> str:
        """What the poisoned dataset depends on: not the arch, not the regularizer."""
        return "_".join([slug(self.dataset), slug(self.trigger), slug(self.strategy),
                         "r" + slug(float(self.poison_rate)), f"s{self.seed}"])

    @property
    def train_key(self) -> str:
        """What the trained model depends on: a baseline (rate 0) ignores trigger and strategy."""
        if self.is_baseline:
            return "_".join([slug(self.dataset), slug(self.arch), "clean", slug(self.regularizer), f"s{self.seed}"])
        return self.name

    @property
    def family_key(self) -> str:
        """The cell's name without the poison rate: what the cells fine-tuned in one stage share."""
        return "_".join([slug(self.dataset), slug(self.arch), slug(self.trigger), slug(self.strategy),
                         slug(self.regularizer), f"s{self.seed}"])

    def family_axes(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in AXES if k != "poison_rate"}

    def poison_axes(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ("dataset", "trigger", "strategy", "poison_rate", "seed")}

    def train_axes(self) -> dict[str, Any]:
        axes = ("dataset", "arch", "poison_rate", "regularizer", "seed")
        if not self.is_baseline:
            axes += ("trigger", "strategy")
        return {k: getattr(self, k) for k in axes}


def grid_axes(params: dict) -> dict[str, list]:
    """Each axis list of ``grid:``, checked: present, a non-empty list, no duplicates."""
    grid = params.get("grid")
    if not isinstance(grid, dict):
        raise ConfigError("grid: missing section in params.yaml (one block-style list per axis: "
                          f"{', '.join(AXES)})")
    axes = {}
    for axis in AXES:
        values = grid.get(axis)
        if not isinstance(values, list) or not values:
            raise ConfigError(f"grid.{axis}: must be a non-empty list, got {values!r}")
        normalized = [float(v) if axis == "poison_rate" and isinstance(v, (int, float)) and not isinstance(v, bool)
                      else v for v in values]
        duplicates = sorted({str(v) for v in normalized if normalized.count(v) > 1})
        if duplicates:
            raise ConfigError(f"grid.{axis}: duplicated value(s) {', '.join(duplicates)}")
        axes[axis] = normalized
    return axes


def expand_grid(params: dict) -> list[Cell]:
    """All cells, validated one by one before any work; an error names the list and the value."""
    axes = grid_axes(params)
    for axis, values in axes.items():  # each value once, with the other axes at their first value
        for value in values:
            probe = {a: v[0] for a, v in axes.items()} | {axis: value}
            try:
                cell_experiment(params, probe)
            except ConfigError as exc:
                raise ConfigError(f"grid.{axis}: value {value!r} is invalid: {exc}") from None
    cells = [Cell(*values) for values in itertools.product(*(axes[a] for a in AXES))]
    for cell in cells:  # combinations (a target outside one dataset's classes, ...)
        try:
            cell_experiment(params, cell.as_dict())
        except ConfigError as exc:
            raise ConfigError(f"grid: the combination {cell.name} cannot work: {exc}") from None
    return cells


def families(cells: list[Cell]) -> dict[str, list[Cell]]:
    """Cells grouped by ``family_key``, each group in the order of ``grid.poison_rate``."""
    grouped: dict[str, list[Cell]] = {}
    for cell in cells:
        grouped.setdefault(cell.family_key, []).append(cell)
    return grouped


def grid_settings(params: dict) -> dict:
    """The part of params.yaml the grid's stages read: ``grid.settings``, ``triggers``, ``regularizers``.

    plan_grid writes it to grid/settings.json and the stages depend on that file's keys: DVC re-parses
    a params file for every params dependency of every stage it checks, and JSON parses in
    microseconds where the commented params.yaml costs about 50 ms (most of DVC's time at paper size).
    """
    return {"grid": {"settings": (params.get("grid") or {}).get("settings") or {}},
            "triggers": params.get("triggers") or {}, "regularizers": params.get("regularizers") or {}}


def check_plan(params: dict, plan: dict, settings: dict) -> None:
    """Refuse results planned from another version of params.yaml (edited without re-planning)."""
    stale = [cell.name for cell in expand_grid(params)] != [cell["name"] for cell in plan["cells"]]
    if stale or grid_settings(params) != settings:
        raise ConfigError("grid/ is out of date with params.yaml (grid, triggers or regularizers): run `make grid` "
                          "(python stages/plan_grid.py), then dvc repro")
