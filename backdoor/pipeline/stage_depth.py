"""Which stages `dvc repro` would run, grouped into layers by their depth in DVC's stage graph.

A stage is *stale* when `dvc repro` would run it: it changed (dependencies, command, missing outputs)
and, when planning with ``restore=True``, its result is not in the run-cache either; or a stage it
depends on is stale. Layer 0 holds the stale stages none of whose upstream stages are stale, layer k
those whose deepest stale upstream stage is in layer k-1: a layer can run all at once once the
previous ones have finished. Layers come from the graph, not from stage names, so a new kind of
stage (a per-model detector, say) finds its place without changes here.

Only *run-cacheable* stages go into layers: their outputs all go to the DVC cache and their run is
recorded in the run-cache, so a run elsewhere (another process, another machine sharing the cache)
is restored by `dvc repro` here without running anything. A stale stage with an output kept out of
the cache (``cache: false``, committed to git, like the grid's ``report``), and every stage that
depends on one, is *deferred*: the final `dvc repro` in the workspace runs it.

Shared by ``tools/run_grid.py`` (several workers on one machine) and ``backdoor.pipeline.slurm``.
"""

from __future__ import annotations

import contextlib
import os
import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from backdoor.errors import ConfigError

DEFAULT_TARGETS = ("dvc.yaml",)  # what a bare `dvc repro` reproduces (with everything upstream)


@dataclass(frozen=True)
class PlannedStage:
    address: str  # "grid/shard-03/dvc.yaml:train-...", relative to the repository root
    upstream: frozenset[str]  # the stale stages it depends on directly
    run_cacheable: bool
    cell: str = ""  # the `--cell AXIS=VALUE ...` arguments of its command, if any


@dataclass
class Plan:
    stale: dict[str, PlannedStage]  # in the order `dvc repro` would run them
    restored: list[str] = field(default_factory=list)  # changed, but found in the run-cache (restore=True)
    up_to_date: int = 0

    def layers(self, exclude: Iterable[str] = ()) -> list[list[str]]:
        return layered(self.stale, exclude)[0]

    @property
    def deferred(self) -> list[str]:
        return layered(self.stale)[1]


def layered(stale: Mapping[str, PlannedStage], exclude: Iterable[str] = ()) -> tuple[list[list[str]], list[str]]:
    """Group run-cacheable stale stages by dependency depth among the stale stages.

    Returns (layers, deferred). ``exclude`` (stages already running elsewhere) keep their place in the
    depth computation, so what depends on them still comes after them, but they are left out of the
    layers; layers left empty are dropped. Deferred: stages that are not run-cacheable and everything
    stale downstream of them, in the given order.
    """
    depth: dict[str, int] = {}
    deferred: set[str] = set()

    def visit(address: str, path: tuple[str, ...] = ()) -> None:
        if address in depth or address in deferred:
            return
        if address in path:
            raise ConfigError(f"stage graph: cycle through {address}")
        stage = stale[address]
        upstream = [u for u in stage.upstream if u in stale]
        for u in upstream:
            visit(u, path + (address,))
        if not stage.run_cacheable or any(u in deferred for u in upstream):
            deferred.add(address)
        else:
            depth[address] = 1 + max((depth[u] for u in upstream), default=-1)

    for address in stale:
        visit(address)
    skip = set(exclude)
    by_depth: dict[int, list[str]] = {}
    for address, d in depth.items():
        if address not in skip:
            by_depth.setdefault(d, []).append(address)
    layers = [sorted(by_depth[d]) for d in sorted(by_depth)]
    return layers, [a for a in stale if a in deferred]


def address(stage, root: Path) -> str:
    """A stage's address relative to the repository root: ``path/to/dvc.yaml:name``."""
    return f"{Path(os.path.relpath(stage.path, root)).as_posix()}:{stage.name}"


def cell_of(cmd: str | list | None) -> str:
    """The grid cell a stage works on: the ``--cell AXIS=VALUE ...`` arguments of its command."""
    if not cmd:
        return ""
    words = shlex.split(" ".join(cmd) if isinstance(cmd, list) else cmd)
    if "--cell" not in words:
        return ""
    rest = words[words.index("--cell") + 1 :]
    return " ".join(word for word in _until_option(rest))


def _until_option(words: list[str]) -> Iterable[str]:
    for word in words:
        if word.startswith("--"):
            return
        yield word


def run_cacheable(stage) -> bool:
    """Whether DVC records this stage in its run-cache and can restore it from there.

    Mirrors ``dvc.stage.cache._can_hash`` and ``Stage.run`` (dvc 3.x) without hashing dependencies,
    which may not exist yet: a command, dependencies and outputs, all local and inside the
    repository, nothing persistent or always changed, and every output cached (metrics and plots
    excepted).
    """
    if stage.is_callback or stage.always_changed or not (stage.cmd and stage.deps and stage.outs):
        return False
    if any(dep.protocol != "local" or not dep.def_path for dep in stage.deps):
        return False
    if any(out.protocol != "local" or not out.def_path or out.persist or not out.is_in_repo for out in stage.outs):
        return False
    return all(out.use_cache or out.is_metric or out.is_plot for out in stage.outs)


def plan(root: str | Path, targets: Iterable[str] = (), restore: bool = False) -> Plan:
    """What `dvc repro TARGETS` would run in the repository at ``root`` (default targets: dvc.yaml).

    With ``restore=True`` a changed run-cacheable stage is first looked up in the run-cache, and when
    found its outputs are checked out (as `dvc repro` would), so that the stages depending on it can be
    checked in turn: use it in a throwaway clone, never in a user's workspace. Without it, every changed
    stage counts as stale (the workers that run them restore from the run-cache themselves).
    """
    from dvc.exceptions import DvcException
    from dvc.repo import Repo
    from dvc.repo.reproduce import collect_stages, get_active_graph, plan_repro

    root = Path(root).resolve()
    with _chdir(root), Repo(str(root)) as repo, repo.lock:
        try:
            stages = collect_stages(repo, list(targets) or list(DEFAULT_TARGETS))
        except DvcException as exc:
            raise ConfigError(f"targets: {exc}") from None
        graph = get_active_graph(repo.index.graph)
        result = Plan(stale={})
        for stage in plan_repro(graph, stages):
            name = address(stage, root)
            stale_upstream = frozenset(
                u for u in (address(s, root) for s in graph.successors(stage)) if u in result.stale
            )
            cacheable = run_cacheable(stage)
            if not stale_upstream:
                if not stage.changed():
                    result.up_to_date += 1
                    continue
                if restore and cacheable and _restore(repo, stage):
                    result.restored.append(name)
                    continue
            result.stale[name] = PlannedStage(name, stale_upstream, cacheable, cell_of(stage.cmd))
        return result


@contextlib.contextmanager
def _chdir(path: Path):
    """DVC resolves some paths against the working directory (contextlib.chdir needs Python 3.11)."""
    before = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(before)


def _restore(repo, stage) -> bool:
    """Check out the stage's outputs from the run-cache, as `dvc repro` does; False when not there."""
    from dvc.exceptions import DvcException

    try:
        repo.stage_cache.restore(stage)
    except DvcException:  # not in the run-cache, or its outputs are gone from the cache
        return False
    return True
