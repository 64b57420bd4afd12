"""What names a grid cell: its axes, and the stable names of cells, their families and their stage outputs.

A name is a function of the axis values alone (never of a preset or of the order of the lists), so the same cell
in two presets has one name, one stage and one run-cache entry: it is trained once.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from .errors import ConfigError

AXES = (
    "dataset",
    "arch",
    "trigger",
    "strategy",
    "poison_rate",
    "regularizer",
    "seed",
    "init",
    "train_epochs",
    "ft_lr",
    "ft_clean_size",
    "ft_method",
)
FT_AXES = {"ft_lr": "lr", "ft_clean_size": "clean_size", "ft_method": "method"}  # axes that set a fine-tuning setting
TRAIN_AXES = {"train_epochs": "epochs"}  # axes that set a training setting
SCRATCH = "scratch"  # the init axis value of a model trained from random weights


def slug(value: Any) -> str:
    """A path- and stage-name-safe form of an axis value (``folder:/x/y`` -> ``folder-x-y``, 0.10 -> ``0.1``)."""
    text = f"{value:g}" if isinstance(value, float) else str(value)
    return re.sub(r"[^A-Za-z0-9.+-]+", "-", text).strip("-")


def init_part(init: str) -> list[str]:
    """The name part of a model's starting point: none for random weights (scratch cells keep their names)."""
    return [] if init == SCRATCH else [f"init-{slug(init)}"]


def epochs_part(epochs: Any) -> list[str]:
    return [f"e{epochs}"]


def cell_name(cell: dict[str, Any], with_rate: bool = True) -> str:
    """Stable name of a grid cell, e.g.
    ``fashion-mnist_small-cnn_checker_all-to-one_r0.05_none_s0_e3_ftlr0.01_ftn0.05_ft``; without the rate, the
    name of its family (the cells fine-tuned together)."""
    rate = ["r" + slug(float(cell["poison_rate"]))] if with_rate else []
    return "_".join(
        [
            slug(cell["dataset"]),
            slug(cell["arch"]),
            slug(cell["trigger"]),
            slug(cell["strategy"]),
            *rate,
            slug(cell["regularizer"]),
            f"s{cell['seed']}",
            *init_part(cell.get("init", SCRATCH)),
            *epochs_part(cell["train_epochs"]),
            "ftlr" + slug(cell["ft_lr"]),  # a number, or a multiple of the training peak lr ("1x")
            "ftn" + slug(cell["ft_clean_size"]),
            slug(cell.get("ft_method", "ft")),
        ]
    )


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
