"""Atomic writes and checksums: a crash never leaves a half-written file that looks valid."""

from __future__ import annotations

import gzip
import hashlib
import json
import math
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psutil

from .errors import ConfigError

if TYPE_CHECKING:
    import pandas

# torch is imported where tensors are saved or loaded: the code and check stages, which only write text,
# then start in a fraction of a second instead of paying torch's import.


def file_digest(path: str | Path, algorithm: str = "sha256", chunk: int = 1 << 20) -> str:
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def sha256_file(path: str | Path) -> str:
    return file_digest(path, "sha256")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# Temporaries are siblings named ".<name>.<pid>-<start time>.<random>.tmp": the writer's identity in the
# name lets a later run remove what a killed writer left (SIGKILL runs no cleanup) without touching a
# temporary that a live process is still writing.


def _start_time(pid: int) -> int | None:
    try:
        return int(psutil.Process(pid).create_time() * 100)
    except psutil.Error:
        return None


def _writer_token() -> str:
    return f"{os.getpid()}-{_start_time(os.getpid())}"


def _writer_alive(pid: int, start: str) -> bool:
    now = _start_time(pid)
    return now is not None and start in (str(now), "None")


def remove_stale_temporaries(path: str | Path) -> list[Path]:
    """Remove the temporaries of ``path`` whose writer is gone; return what was removed."""
    path = Path(path)
    pattern = re.compile(re.escape(f".{path.name}.") + r"(\d+)-(\d+|None)\.[^.]+\.tmp")
    removed = []
    if not path.parent.is_dir():
        return removed
    for candidate in path.parent.iterdir():
        match = pattern.fullmatch(candidate.name)
        if match is None or _writer_alive(int(match[1]), match[2]):
            continue
        shutil.rmtree(candidate, ignore_errors=True) if candidate.is_dir() else candidate.unlink(missing_ok=True)
        removed.append(candidate)
    return removed


OUTPUT_ROOTS = ("data", "models", "reports")  # where DVC outputs, and so their temporaries, live
_ANY_TEMPORARY = re.compile(r"\..+\.(\d+)-(\d+|None)\.[^.]+\.tmp")
_SWEEP_SKIP = {"external", "downloads"}  # extracted image trees and archives: many files, never outputs
_SWEEP_DEPTH = 6  # reports/grid/cells/detection/<detector>/<model>.json: outputs sit at most this deep


def sweep_stale_temporaries(root: str | Path = ".", folders: tuple[str, ...] = OUTPUT_ROOTS) -> list[Path]:
    """Remove every temporary under ``root/<folders>`` whose writer is gone; return what was removed.

    A stage killed by SIGKILL leaves its temporary (a whole model's size) beside its output; when the next
    run restores that output from DVC's run-cache instead of running the stage, nothing writes that output
    again, so every stage sweeps the workspace when it starts (``backdoor.cli.run``)."""
    removed: list[Path] = []
    todo = [(Path(root) / folder, 1) for folder in folders]
    while todo:
        folder, depth = todo.pop()
        try:
            entries = list(os.scandir(folder))
        except (FileNotFoundError, NotADirectoryError):
            continue
        for entry in entries:
            match = _ANY_TEMPORARY.fullmatch(entry.name)
            if match is not None:
                if not _writer_alive(int(match[1]), match[2]):
                    shutil.rmtree(entry.path, ignore_errors=True) if entry.is_dir() else Path(entry.path).unlink(
                        missing_ok=True
                    )
                    removed.append(Path(entry.path))
            elif entry.is_dir(follow_symlinks=False) and depth < _SWEEP_DEPTH and entry.name not in _SWEEP_SKIP:
                todo.append((Path(entry.path), depth + 1))
    return removed


def _temporary(path: Path, directory: bool) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    prefix = f".{path.name}.{_writer_token()}."
    if directory:
        return Path(tempfile.mkdtemp(dir=path.parent, prefix=prefix, suffix=".tmp"))
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=prefix, suffix=".tmp")
    os.close(fd)
    return Path(tmp)


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary sibling path; rename it onto ``path`` only if the block succeeds."""
    path = Path(path)
    tmp_path = _temporary(path, directory=False)
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
    tmp = _temporary(path, directory=True)
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700
        if path.exists():
            shutil.rmtree(path) if path.is_dir() else path.unlink()
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


@contextmanager
def scratch_dir(path: str | Path) -> Iterator[Path]:
    """Yield a temporary sibling directory of ``path`` for intermediate files; always removed afterwards."""
    tmp = _temporary(Path(path), directory=True)
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _nan_as_null(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _nan_as_null(v) for k, v in value.items()}
    return [_nan_as_null(v) for v in value] if isinstance(value, (list, tuple)) else value


def write_json(path: str | Path, obj: Any) -> None:
    """Write ``obj`` atomically; NaN (a diverged run's metric, a rate without a denominator) becomes null,
    because JSON has no NaN and readers such as ``jq`` or DVC reject the bare token."""
    text = json.dumps(_nan_as_null(obj), indent=2, sort_keys=False, allow_nan=False) + "\n"
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_csv(table: pandas.DataFrame, path: str | Path, float_format: str | None = None) -> None:
    """A CSV, gzipped when ``path`` ends in .gz: with no time stamp and no file name in the gzip header (the
    temporary's would differ each run), so the same table gives the same bytes, as a DVC output must."""
    with atomic_path(path) as tmp:
        if not str(path).endswith(".gz"):
            table.to_csv(tmp, index=False, float_format=float_format)
            return
        with open(tmp, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as packed:
            packed.write(table.to_csv(index=False, float_format=float_format).encode())


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
    import torch

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
    import torch

    return torch.load(path, map_location="cpu", weights_only=True)
