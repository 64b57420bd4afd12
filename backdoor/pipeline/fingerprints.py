"""What code a stage runs, from the import graph, and one fingerprint of it per stage script.

Every stage (focus and grid) depends on ``data/code/<script>.sha256`` instead of listing source files:
the ``code`` stage (stages/fingerprint.py) depends on the whole ``backdoor/`` and ``stages/`` folders,
computes each stage script's import closure inside the project, and hashes exactly those files. Editing a
module re-runs the stages whose scripts import it, directly or not, and nothing else; a new import is
picked up without editing any list.

The closure is static (``ast``): every ``import`` anywhere in a module counts, including ones inside
functions, so it over-approximates what a run executes and never misses a module it could run.
"""

from __future__ import annotations

import ast
import hashlib
from pathlib import Path

from ..files import sha256_file

PACKAGE = "backdoor"


def _module_file(root: Path, module: str) -> Path | None:
    """The file of a dotted module name inside ``root``, if it is part of the project."""
    base = root.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imported(root: Path, path: Path) -> set[str]:
    """Dotted names a file imports (absolute, with relative ones resolved), and ``pkg.name`` candidates for
    ``from pkg import name`` (a name may be a submodule)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = _module_name(root, path)
    if path.name != "__init__.py":
        package = package.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1] if package else []
                base = ".".join(anchor + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def import_closure(script: str | Path, root: str | Path = ".") -> list[Path]:
    """The project files ``script`` runs: itself, every project module it imports directly or not, and the
    ``__init__.py`` of each package on the way (run on import). Paths relative to ``root``, sorted."""
    root = Path(root).resolve()
    start = (root / script).resolve()
    seen: set[Path] = set()
    todo = [start]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for name in _imported(root, path):
            if name.split(".")[0] != PACKAGE:
                continue
            parts = name.split(".")
            for depth in range(1, len(parts) + 1):  # the packages on the way run their __init__.py
                found = _module_file(root, ".".join(parts[:depth]))
                if found is not None and found not in seen:
                    todo.append(found)
    return sorted(p.relative_to(root) for p in seen)


def code_sha256(files: list[Path], root: str | Path = ".") -> str:
    """One digest over source files: each enters as its path and its content digest, in sorted order, so
    renaming a file or moving code between files changes the result."""
    digest = hashlib.sha256()
    for file in sorted(files):
        digest.update(f"{Path(file).as_posix()}\0{sha256_file(Path(root) / file)}\n".encode())
    return digest.hexdigest()


def stage_scripts(root: str | Path = ".") -> list[Path]:
    return sorted(p.relative_to(root) for p in (Path(root) / "stages").glob("*.py"))


def fingerprint_file(script: str | Path, out_dir: str = "data/code") -> str:
    """The file a stage running ``script`` depends on for its code."""
    return f"{out_dir}/{Path(script).stem}.sha256"
