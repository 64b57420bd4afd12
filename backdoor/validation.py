"""One wording for every setting check: numbers with their interval, booleans, unknown keys.

Every error names the setting as the user writes it in params.yaml (``train.lr``,
``triggers.blend.alpha``) and says what is valid, in one line.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Iterable
from typing import Any

from .errors import ConfigError


def interval(low: float, high: float, low_open: bool, high_open: bool) -> str:
    left = "(" if low_open or low == -math.inf else "["
    right = ")" if high_open or high == math.inf else "]"
    return f"{left}{low:g}, {high:g}{right}"


def check_number(
    where: str,
    value: Any,
    *,
    low: float = -math.inf,
    high: float = math.inf,
    low_open: bool = False,
    high_open: bool = False,
    integer: bool = False,
) -> float | int:
    """``value`` if it is a finite number (an integer if ``integer``) inside the interval, else a ConfigError."""
    kind = "an integer" if integer else "a number"
    span = interval(low, high, low_open, high_open)
    ok_type = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok_type or not math.isfinite(value):
        raise ConfigError(f"{where}: must be {kind} in {span}, got {value!r}")
    above = value > low if low_open else value >= low
    below = value < high if high_open else value <= high
    if not (above and below):
        raise ConfigError(f"{where}: must be {kind} in {span}, got {value!r}")
    return value


def check_bool(where: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{where}: must be true or false, got {value!r}")
    return value


def check_text(where: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{where}: must be a non-empty name, got {value!r}")
    return value


def check_choice(where: str, value: Any, choices: Iterable[str]) -> str:
    choices = list(choices)
    if value not in choices:
        raise ConfigError(f"{where}: unknown value {value!r}; valid choices: {', '.join(map(str, choices))}")
    return value


def setting_names(factory: Callable, internal: Iterable[str] = ()) -> list[str]:
    """The settings a factory takes: its keyword-only parameters, minus the ones the caller supplies."""
    params = inspect.signature(factory).parameters.values()
    return sorted(p.name for p in params if p.kind is p.KEYWORD_ONLY and p.name not in set(internal))


def check_keys(where: str, settings: dict, valid: Iterable[str]) -> None:
    """Reject keys not in ``valid``, naming each as ``<where>.<key>``."""
    valid = sorted(valid)
    unknown = sorted(set(settings) - set(valid))
    if unknown:
        keys = ", ".join(f"{where}.{key}" for key in unknown)
        allowed = f"valid keys: {', '.join(valid)}" if valid else "it takes none"
        raise ConfigError(f"{keys}: unknown setting; {allowed}")
