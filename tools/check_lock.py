"""Fail when a committed dvc.lock no longer matches the code, parameters or commands it locks.

    python tools/check_lock.py            # exit 1 and one line per stale stage; run by .ci/run (make lock-check)

A lock entry is written by the run that produced the stage's outputs. When a later commit edits the library
(or params.yaml, or a stage's command) without re-running, a fresh clone's `dvc repro` re-runs those stages
and rewrites dvc.lock (git status is dirty afterwards), and `dvc checkout` cannot restore their outputs: the
locked hashes are in no cache. Two checks, neither needing any output to exist:

- the code fingerprints: every ``data/code/<script>.sha256`` a stage depends on is recomputed from the
  sources, as the ``code`` stage would write it (``backdoor.pipeline.fingerprints``), and its md5 compared with the
  locked one;
- everything else DVC compares: ``dvc status`` on the workspace, keeping only what differs in sources
  (the ``code`` stage's folders, tracked files), parameters and commands. Data dependencies produced by
  other stages are left out: a fresh clone has none, and their producers are checked themselves.

Fix a stale lock with ``make repro`` and commit the dvc.lock files it writes.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import yaml

from backdoor.pipeline.fingerprints import code_sha256, fingerprint_file, import_closure, stage_scripts

LOCK_FILES = ("dvc.lock", "grid/shard-*/dvc.lock")


def fresh_fingerprints(root: Path) -> dict[str, str]:
    """``data/code/<script>.sha256`` -> the md5 DVC would record for the file the code stage writes now."""
    return {
        fingerprint_file(script): hashlib.md5(
            (code_sha256(import_closure(script, root), root) + "\n").encode()
        ).hexdigest()
        for script in stage_scripts(root)
    }


def lock_entries(root: Path) -> dict[str, dict]:
    """Every locked stage by the name `dvc status` gives it (``grid/shard-00/dvc.yaml:train-...``)."""
    entries = {}
    for pattern in LOCK_FILES:
        for lock in sorted(root.glob(pattern)):
            prefix = "" if lock.parent == root else f"{lock.parent.relative_to(root).as_posix()}/dvc.yaml:"
            for name, stage in (yaml.safe_load(lock.read_text()) or {}).get("stages", {}).items():
                entries[prefix + name] = stage
    return entries


def orphaned(root: Path, entries: dict[str, dict]) -> list[str]:
    """Lock entries of stages their dvc.yaml no longer defines."""
    defined = set()
    for pattern in LOCK_FILES:
        for lock in root.glob(pattern):
            prefix = "" if lock.parent == root else f"{lock.parent.relative_to(root).as_posix()}/dvc.yaml:"
            spec = lock.with_name("dvc.yaml")
            stages = (yaml.safe_load(spec.read_text()) or {}).get("stages", {}) if spec.is_file() else {}
            defined |= {prefix + name for name in stages}
    return [f"{name}: locked, but no longer a stage of its dvc.yaml" for name in entries if name not in defined]


def stale_fingerprints(entries: dict[str, dict], fresh: dict[str, str]) -> list[str]:
    problems = []
    for name, stage in entries.items():
        for dep in stage.get("deps", []):
            if dep["path"] in fresh and dep.get("md5") != fresh[dep["path"]]:
                problems.append(f"{name}: the code of stages/{Path(dep['path']).stem}.py changed since it was locked")
    return problems


def stale_sources(status: dict, outputs: list[str]) -> list[str]:
    """What `dvc status` reports beyond missing data: edited sources, parameters, commands."""

    def produced(path: str) -> bool:  # an output, inside one, or a folder of outputs (reports/grid/cells)
        return any(
            path == out or path.startswith(out.rstrip("/") + "/") or out.startswith(path.rstrip("/") + "/")
            for out in outputs
        )

    problems = []
    for name, changes in status.items():
        for change in changes:
            if change == "changed command":
                problems.append(f"{name}: its command changed since it was locked")
            elif isinstance(change, dict):
                for path, what in change.get("changed deps", {}).items():
                    if isinstance(what, dict):  # a params file: key -> modified / new / deleted
                        problems.append(f"{name}: parameters {', '.join(sorted(what))} in {path} changed")
                    elif not produced(path):
                        problems.append(f"{name}: {path} {what} since it was locked")
    return problems


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path("."))
    root = parser.parse_args().root.resolve()
    entries = lock_entries(root)
    outputs = [out["path"] for stage in entries.values() for out in stage.get("outs", [])]
    status = subprocess.run([sys.executable, "-m", "dvc", "status", "--json"], cwd=root, capture_output=True, text=True)
    if status.returncode != 0:
        sys.exit(f"dvc status failed:\n{status.stderr}")
    problems = (
        orphaned(root, entries)
        + stale_fingerprints(entries, fresh_fingerprints(root))
        + stale_sources(json.loads(status.stdout.strip().splitlines()[-1] or "{}"), outputs)
    )
    for problem in problems:
        print(f"stale dvc.lock: {problem}")
    if problems:
        sys.exit("the committed dvc.lock files do not match the code they lock: run `make repro` and commit them")
    print(f"dvc.lock files match the code, parameters and commands of {len(entries)} stages")


if __name__ == "__main__":
    main()
