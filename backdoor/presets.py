"""Presets are overlays: ``presets/<name>.yaml`` holds only the keys a run changes from params.yaml.

``merge`` lays an overlay on the parameters (mappings merge key by key; a list or scalar replaces what it meets),
``apply_preset`` writes the result over params.yaml keeping its comments (``make preset PRESET=<name>``), and
``preset_params`` gives the merged parameters without writing (what the tests validate for every preset).
"""

from __future__ import annotations

import copy
import io
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .files import atomic_path
from .params import read_params

PRESETS = Path("presets")


def merge(base: dict, overlay: dict, where: str = "") -> dict:
    """``base`` with ``overlay`` laid on it; a key the base does not have is refused (a typo would be silently
    ignored by every stage), but in an empty mapping, which holds names of the user's own (``inits: {}``)."""
    merged = copy.deepcopy(base)
    for key, value in overlay.items():
        if key not in base and base:
            raise ConfigError(f"preset: {where}{key} is not a key of params.yaml")
        if isinstance(value, dict) and isinstance(base.get(key), dict) and value:
            merged[key] = merge(base[key], value, f"{where}{key}.")
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def preset_names(root: str | Path = ".") -> list[str]:
    return sorted(p.stem for p in (Path(root) / PRESETS).glob("*.yaml"))


def read_overlay(name: str, root: str | Path = ".") -> dict:
    path = Path(root) / PRESETS / f"{name}.yaml"
    if not path.is_file():
        raise ConfigError(f"PRESET: no {path}; valid choices: {', '.join(preset_names(root))}")
    return read_params(path)


def preset_params(name: str, root: str | Path = ".") -> dict:
    """params.yaml with preset ``name`` laid on it."""
    return merge(read_params(Path(root) / "params.yaml"), read_overlay(name, root))


def _lay(target: Any, overlay: dict) -> None:
    """Lay ``overlay`` on ruamel's round-trip mapping in place, so unchanged keys keep their comments."""
    for key, value in overlay.items():
        if isinstance(value, dict) and value and isinstance(target.get(key), dict):
            _lay(target[key], value)
        else:
            target[key] = copy.deepcopy(value)


def checked_seeds(name: str, merged: dict, seeds: list[int]) -> list[int]:
    """``seeds``, each one the preset's grid lists (one part of a run in several parts): another seed would make
    another experiment."""
    listed = list(merged["grid"].get("seed") or [])
    unknown = [seed for seed in seeds if seed not in listed]
    if not seeds or unknown:
        raise ConfigError(f"SEEDS: {unknown or 'none'} not in presets/{name}.yaml's grid.seed; valid choices: {listed}")
    return list(seeds)


def apply_preset(name: str, root: str | Path = ".", seeds: list[int] | None = None) -> Path:
    """Write params.yaml with the preset laid on it, restricted to ``seeds`` of its grid if given (checked first: an
    unknown key or seed changes nothing)."""
    from ruamel.yaml import YAML

    root = Path(root)
    overlay = read_overlay(name, root)
    merged = merge(read_params(root / "params.yaml"), overlay)  # refuses unknown keys before anything is written
    if seeds is not None:
        overlay = copy.deepcopy(overlay)
        overlay.setdefault("grid", {})["seed"] = checked_seeds(name, merged, seeds)
    yaml = YAML()
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.width = 4096
    params = yaml.load((root / "params.yaml").read_text())
    _lay(params, overlay)
    text = io.StringIO()
    yaml.dump(params, text)
    only = f", seeds {', '.join(map(str, seeds))} only" if seeds is not None else ""
    with atomic_path(root / "params.yaml") as tmp:
        tmp.write_text(
            f"# params.yaml with presets/{name}.yaml laid on it (make preset){only}; git checkout params.yaml "
            f"restores the default\n" + text.getvalue()
        )
    return root / "params.yaml"
