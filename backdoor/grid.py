"""The experiment grid: axes from params.yaml ``grid:``, expanded into cells.

Each cell is one poisoned model and one fine-tuning of it. Cells share work where the result cannot
differ: one poisoned dataset per (dataset, trigger, strategy, poison_rate, seed), one trained model per
(dataset, arch, trigger, strategy, poison_rate, regularizer, seed) whatever the fine-tuning, and one clean
baseline model per (dataset, arch, regularizer, seed) for every poison_rate 0 cell. The cells of a family
(all poison rates of one model recipe and fine-tuning setting) are fine-tuned and evaluated by one stage
(``backdoor.pipeline.plan`` says why). ``backdoor.checks.validate_grid`` checks every cell.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

from .errors import ConfigError
from .naming import AXES, FT_AXES, SCRATCH, cell_name, epochs_part, init_part, slug
from .validation import check_bool, check_number

FLOAT_AXES = ("poison_rate", "ft_lr")  # 0.1 and 0.10 are one value; ft_clean_size keeps counts (int) apart


@dataclass(frozen=True)
class Cell:
    dataset: Any
    arch: Any
    trigger: Any
    strategy: Any
    poison_rate: float
    regularizer: Any
    seed: int
    init: Any
    train_epochs: int
    ft_lr: float
    ft_clean_size: float
    ft_method: Any

    def as_dict(self) -> dict[str, Any]:
        return {axis: getattr(self, axis) for axis in AXES}

    @property
    def is_baseline(self) -> bool:
        return self.poison_rate == 0

    @property
    def name(self) -> str:
        return cell_name(self.as_dict())

    @property
    def family_key(self) -> str:
        """The cell's name without the poison rate: what the cells fine-tuned in one stage share."""
        return cell_name(self.as_dict(), with_rate=False)

    @property
    def poison_key(self) -> str:
        """What the poisoned dataset depends on: not the arch, regularizer or fine-tuning."""
        return "_".join(
            [
                slug(self.dataset),
                slug(self.trigger),
                slug(self.strategy),
                "r" + slug(float(self.poison_rate)),
                f"s{self.seed}",
            ]
        )

    @property
    def train_key(self) -> str:
        """What the trained model depends on: not the fine-tuning; a baseline (rate 0) neither the trigger
        nor the strategy."""
        attack = (
            ["clean"]
            if self.is_baseline
            else [slug(self.trigger), slug(self.strategy), "r" + slug(float(self.poison_rate))]
        )
        return "_".join(
            [
                slug(self.dataset),
                slug(self.arch),
                *attack,
                slug(self.regularizer),
                f"s{self.seed}",
                *init_part(self.init),
                *epochs_part(self.train_epochs),
            ]
        )

    def detection_key(self, per_trigger: bool) -> str:
        """What a detector's result depends on: the trained model, and for a clean baseline scored on
        triggered inputs (``per_trigger``), also the trigger and strategy of those inputs."""
        if self.is_baseline and per_trigger:
            return f"{self.train_key}_{slug(self.trigger)}_{slug(self.strategy)}"
        return self.train_key

    def detection_axes(self) -> dict[str, Any]:
        """What names the trained model a detector judges: every axis but the defender's."""
        return {k: getattr(self, k) for k in AXES if k not in FT_AXES}

    def family_axes(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in AXES if k != "poison_rate"}

    def poison_axes(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ("dataset", "trigger", "strategy", "poison_rate", "seed")}

    def train_axes(self) -> dict[str, Any]:
        axes = ("dataset", "arch", "poison_rate", "regularizer", "seed", "init", "train_epochs")
        if not self.is_baseline:
            axes += ("trigger", "strategy")
        return {k: getattr(self, k) for k in axes}


OPTIONAL_AXES = {"init": [SCRATCH], "ft_method": ["ft"]}  # absent from grid: these single values


def grid_axes(params: dict) -> dict[str, list]:
    """Each axis list of ``grid:``, checked: present (but for the optional ones), a non-empty list, no duplicates."""
    grid = params.get("grid")
    if not isinstance(grid, dict):
        raise ConfigError(f"grid: missing section in params.yaml (one block-style list per axis: {', '.join(AXES)})")
    axes = {}
    for axis in AXES:
        values = grid.get(axis, OPTIONAL_AXES.get(axis))
        if not isinstance(values, list) or not values:
            raise ConfigError(f"grid.{axis}: must be a non-empty list, got {values!r}")
        normalized = [
            float(v) if axis in FLOAT_AXES and isinstance(v, (int, float)) and not isinstance(v, bool) else v
            for v in values
        ]
        duplicates = sorted({str(v) for v in normalized if normalized.count(v) > 1})
        if duplicates:
            raise ConfigError(f"grid.{axis}: duplicated value(s) {', '.join(duplicates)}")
        axes[axis] = normalized
    return axes


DEFAULT_SHARDS = 4


def grid_shards(params: dict) -> int:
    """How many shard files the grid's stages are spread over (``grid.shards``)."""
    return check_number("grid.shards", (params.get("grid") or {}).get("shards", DEFAULT_SHARDS), low=1, integer=True)


def grid_detectors(params: dict) -> list[str]:
    """``grid.detectors``: the detectors run on every trained model of the grid (empty: none)."""
    values = (params.get("grid") or {}).get("detectors", [])
    if values is None:
        return []
    if not isinstance(values, list) or any(not isinstance(v, str) for v in values):
        raise ConfigError(f"grid.detectors: must be a list of detector names (empty for none), got {values!r}")
    duplicates = sorted({v for v in values if values.count(v) > 1})
    if duplicates:
        raise ConfigError(f"grid.detectors: duplicated value(s) {', '.join(duplicates)}")
    return values


def grid_relearn(params: dict) -> bool:
    """``grid.relearn``: re-learning after every defence (keeps each defended model; stages/relearn.py)."""
    return check_bool("grid.relearn", (params.get("grid") or {}).get("relearn", False))


def grid_cells(params: dict) -> list[Cell]:
    """Every combination of the axes, in the order of the lists (not validated: see checks.validate_grid)."""
    axes = grid_axes(params)
    return [Cell(*values) for values in itertools.product(*(axes[a] for a in AXES))]


def families(cells: list[Cell]) -> dict[str, list[Cell]]:
    """Cells grouped by ``family_key``, each group in the order of ``grid.poison_rate``."""
    grouped: dict[str, list[Cell]] = {}
    for cell in cells:
        grouped.setdefault(cell.family_key, []).append(cell)
    return grouped


def grid_settings(params: dict) -> dict:
    """The part of params.yaml the grid's stages read: ``grid.settings``, ``triggers``, ``regularizers``.

    The planner writes it to grid/settings.json and the stages depend on that file's keys: DVC re-parses
    a params file for every params dependency of every stage it checks, and JSON parses in
    microseconds where the commented params.yaml costs about 50 ms (most of DVC's time at paper size).
    """
    return {
        "grid": {"settings": (params.get("grid") or {}).get("settings") or {}},
        "triggers": params.get("triggers") or {},
        "strategies": params.get("strategies") or {},
        "regularizers": params.get("regularizers") or {},
        "detectors": params.get("detectors") or {},
        "finetune_methods": params.get("finetune_methods") or {},
        "models": params.get("models") or {},
        "recipes": params.get("recipes") or {},
        "inits": params.get("inits") or {},
    }


def check_plan(params: dict, plan: dict, settings: dict) -> None:
    """Refuse results planned from another version of params.yaml (edited without re-planning)."""
    stale = (
        [cell.name for cell in grid_cells(params)] != [cell["name"] for cell in plan["cells"]]
        or grid_detectors(params) != plan.get("detectors", [])
        or grid_relearn(params) != plan.get("relearn", False)
    )
    if stale or grid_settings(params) != settings:
        raise ConfigError(
            "grid/ is out of date with params.yaml (grid, triggers, regularizers or detectors): run `make grid` "
            "(python stages/plan_grid.py), then dvc repro"
        )
