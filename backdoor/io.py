"""Atomic writes and checksums: a crash never leaves a half-written file that looks valid."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import torch

from .errors import ConfigError


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary sibling path; rename it onto ``path`` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600; give the file normal permissions
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


@contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield a temporary sibling directory; it replaces ``path`` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700
        if path.exists():
            shutil.rmtree(path) if path.is_dir() else path.unlink()
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def write_json(path: str | Path, obj: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=False) + "\n")


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text())


def save_tensors(path: str | Path, tensors: dict[str, Any]) -> str:
    """Save a dict of tensors atomically and return the file's sha256."""
    with atomic_path(path) as tmp:
        torch_save(tensors, tmp)
        digest = sha256_file(tmp)
    return digest


def torch_save(obj: Any, path: str | Path) -> None:
    """``torch.save`` with the same bytes for the same tensors: given a path, torch names the archive
    inside the file after it (here a random temporary name), so equal outputs would hash differently
    and DVC would rerun everything downstream. Through a file object the name is fixed."""
    with open(path, "wb") as handle:
        torch.save(obj, handle)


def manifest_sha256(folder: str | Path) -> str:
    """The digest of a stored folder's manifest.json, which pins every other file in it: how one
    artifact records the exact version of another it was made from."""
    return sha256_file(Path(folder) / "manifest.json")


def load_tensors(path: str | Path, sha256: str | None = None) -> dict[str, Any]:
    """Load a dict of tensors, verifying its checksum first; never unpickles code."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"missing file {path}: run the stage that produces it (dvc repro)")
    if sha256 is not None and sha256_file(path) != sha256:
        raise ConfigError(f"corrupt file {path}: sha256 does not match its manifest; delete it and re-run dvc repro")
    return torch.load(path, map_location="cpu", weights_only=True)


def code_sha256(paths: list[str | Path]) -> str:
    """One digest over source files and folders (recursively; ``__pycache__`` and ``.pyc`` skipped).

    Each file enters as its path and its content digest, in sorted order, so renaming a file or
    moving code between files changes the result.
    """
    files: list[Path] = []
    for path in map(Path, paths):
        if not path.exists():
            raise ConfigError(f"code fingerprint: {path} does not exist (stages/plan_grid.py CODE lists it)")
        found = sorted(path.rglob("*")) if path.is_dir() else [path]
        files += [f for f in found if f.is_file() and "__pycache__" not in f.parts and f.suffix != ".pyc"]
    digest = hashlib.sha256()
    for file in sorted(set(files)):
        digest.update(f"{file.as_posix()}\0{sha256_file(file)}\n".encode())
    return digest.hexdigest()
