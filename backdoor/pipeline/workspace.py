"""The user's repository as seen from outside a single `dvc repro`: its commit, what is uncommitted,
whether grid/ matches params.yaml, its DVC cache, and throwaway clones that share that cache."""

from __future__ import annotations

import filecmp
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from backdoor.errors import ConfigError

GRID_DIR = "grid"
PLANNER = "stages/plan_grid.py"


def git(root: Path, *args: str) -> str:
    result = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True)
    if result.returncode:
        raise ConfigError(f"git {' '.join(args)}: {result.stderr.strip() or result.stdout.strip()}")
    return result.stdout


def toplevel(path: str | Path) -> Path:
    try:
        return Path(git(Path(path), "rev-parse", "--show-toplevel").strip()).resolve()
    except ConfigError:
        raise ConfigError(f"{path}: not inside a git repository (jobs run a commit of it)") from None


def head(root: Path) -> str:
    return git(root, "rev-parse", "--verify", "HEAD^{commit}").strip()


def origin_url(root: Path, sha: str) -> str:
    """Where nodes without this file system clone from: origin's URL, once a branch there holds ``sha``."""
    try:
        url = git(root, "remote", "get-url", "origin").strip()
    except ConfigError:
        raise ConfigError(
            "GIT_URL: no git remote 'origin': jobs without a shared file system clone the commit from a git "
            "server; push it there and set GIT_URL (default: origin's URL)"
        ) from None
    if not git(root, "branch", "-r", "--contains", sha).strip():
        raise ConfigError(f"GIT_URL: commit {sha[:10]} is on no branch of origin ({url}): git push it first")
    return url


def dvc_written(root: Path) -> list[str]:
    """Paths `dvc repro` itself writes and git may track: lock files, the .gitignore entries for
    outputs, and every stage output (outputs with ``cache: false`` are committed to git)."""
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        outs = [os.path.relpath(out.fs_path, root) for stage in repo.index.stages for out in stage.outs]
    return ["dvc.lock", "*/dvc.lock", "*/.gitignore", *outs]


def uncommitted(root: Path) -> list[str]:
    """Changed, staged or untracked (not ignored) files, except what `dvc repro` writes."""
    out = git(root, "status", "--porcelain=v1", "-z", "--untracked-files=all")
    entries, skip_next = [], False
    for entry in out.split("\0"):
        if skip_next or not entry:
            skip_next = False
            continue
        status, path = entry[:2], entry[3:]
        skip_next = "R" in status or "C" in status  # a rename's source follows
        entries.append(path)
    allowed = dvc_written(root)
    return [p for p in entries if not any(_covers(pattern, p) for pattern in allowed)]


def _covers(pattern: str, path: str) -> bool:
    if pattern.startswith("*/"):
        return path == pattern[2:] or path.endswith(pattern[1:])
    return path == pattern or path.startswith(pattern.rstrip("/") + "/")


def require_committed(root: Path) -> None:
    changed = uncommitted(root)
    if changed:
        shown = ", ".join(changed[:3]) + (f" and {len(changed) - 3} more" if len(changed) > 3 else "")
        raise ConfigError(
            f"uncommitted changes ({shown}): jobs run a commit, so commit them (git commit) or stash them first"
        )


def grid_staleness(root: Path) -> list[str]:
    """Files of grid/ that differ from what the planner writes from params.yaml now (empty: up to date)."""
    if not (root / PLANNER).is_file():
        return []
    with tempfile.TemporaryDirectory(prefix="plan-") as tmp:
        fresh = Path(tmp) / GRID_DIR
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))}
        result = subprocess.run(
            [sys.executable, PLANNER, "--grid-dir", str(fresh)], cwd=root, env=env, capture_output=True, text=True
        )
        if result.returncode:
            raise ConfigError(f"params.yaml: the grid cannot be planned: {result.stderr.strip().splitlines()[-1:]}")
        planned = {p.relative_to(fresh).as_posix() for p in fresh.rglob("*") if p.is_file()}
        tracked = git(root, "ls-files", "-co", "--exclude-standard", "-z", "--", GRID_DIR).split("\0")
        current = {
            Path(p).relative_to(GRID_DIR).as_posix()
            for p in tracked
            if p and Path(p).name not in ("dvc.lock", ".gitignore") and (root / p).is_file()
        }
        differ = sorted(
            (planned ^ current)
            | {f for f in planned & current if not filecmp.cmp(fresh / f, root / GRID_DIR / f, shallow=False)}
        )
    return differ


def require_planned(root: Path) -> None:
    differ = grid_staleness(root)
    if differ:
        raise ConfigError(
            f"grid/ is out of date with params.yaml ({', '.join(differ[:3])}"
            f"{' ...' if len(differ) > 3 else ''}): run `make grid` (python {PLANNER}) and commit"
        )


def cache_dir(root: Path) -> Path:
    """The DVC cache the workspace uses (``dvc cache dir``)."""
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        return Path(repo.cache.local_cache_dir).resolve()


def set_cache_dir(root: Path, cache: Path) -> bool:
    """Point the workspace's DVC cache at ``cache`` (``dvc config --local cache.dir``); True if changed."""
    if cache_dir(root) == cache:
        return False
    subprocess.run([*dvc_command(), "config", "--local", "cache.dir", str(cache)], cwd=root, check=True)
    return True


def dvc_command() -> list[str]:
    """DVC as this interpreter's environment has it."""
    dvc = Path(sys.executable).parent / "dvc"
    return [str(dvc)] if dvc.exists() else [sys.executable, "-m", "dvc"]


def local_config(
    cache: Path, cache_type: str, site_cache: Path, shared: str | None = "group", remote: str | None = None
) -> str:
    """The ``.dvc/config.local`` of a throwaway clone: the shared cache, how outputs are linked from it, and
    DVC's per-repository state kept inside the clone (it is keyed by path, and would pile up elsewhere); with
    ``remote``, the name of the default remote (its section follows: ``backdoor.pipeline.remote.config_text``)."""
    lines = ["[core]", f'    site_cache_dir = "{site_cache}"']
    if remote:
        lines.append(f"    remote = {remote}")
    lines += ["[cache]", f'    dir = "{cache}"', f"    type = {cache_type}"]
    if shared:
        lines.append(f"    shared = {shared}")
    return "\n".join(lines) + "\n"


@contextmanager
def throwaway_clone(root: Path, sha: str, cache: Path, cache_type: str = "symlink") -> Iterator[Path]:
    """A clone of commit ``sha`` that uses ``cache`` (the same recipe as a SLURM job), removed afterwards."""
    tmp = Path(tempfile.mkdtemp(prefix="backdoor-plan-"))
    try:
        clone = tmp / "repo"
        subprocess.run(["git", "clone", "-q", "--shared", "--no-checkout", str(root), str(clone)], check=True)
        subprocess.run(["git", "-C", str(clone), "checkout", "-q", sha], check=True)
        (clone / ".dvc" / "config.local").write_text(local_config(cache, cache_type, tmp / "site", shared=None))
        yield clone
    finally:
        _rmtree(tmp)


def _rmtree(path: Path) -> None:
    def writable(func, name, _exc):  # DVC makes cache links read-only
        os.chmod(os.path.dirname(name), 0o700)
        os.chmod(name, 0o700)
        func(name)

    shutil.rmtree(path, onerror=writable)
