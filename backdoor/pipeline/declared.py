"""Do the stages declare every parameter they read? DVC re-runs a stage when a declared parameter changes and only
then: a key read but not declared is a stale result that `dvc status` cannot see.

A stage run with ``BACKDOOR_PARAMS_READ=<folder>`` writes its command line and the dotted keys it read
(``backdoor.params.Params``); ``undeclared_reads`` matches each record to the stage whose command it ran (in dvc.yaml
and the grid's shard files) and returns what that stage read without declaring.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import yaml


def declared_params(stage: dict) -> dict[str, list[str]]:
    """A stage's params, by file: ``params.yaml`` for bare keys; an empty list means the whole file."""
    declared: dict[str, list[str]] = {}
    for entry in stage.get("params") or []:
        if isinstance(entry, str):
            declared.setdefault("params.yaml", []).append(entry)
        else:
            for file, keys in entry.items():
                declared.setdefault(file, []).extend(keys or [""])
    return declared


def covered(key: str, declared: list[str]) -> bool:
    """A read key is covered by a declared key equal to it or above it (``finetune_methods`` covers
    ``finetune_methods.fst.alpha``); ``""`` is the whole file."""
    return any(d == "" or key == d or key.startswith(d + ".") for d in declared)


def pipeline_stages(repo: Path) -> dict[str, dict]:
    """Every stage of dvc.yaml and the grid's shard files, by its command (whitespace normalised)."""
    stages = {}
    for dvc_yaml in [repo / "dvc.yaml", *sorted((repo / "grid").glob("shard-*/dvc.yaml"))]:
        for name, stage in (yaml.safe_load(dvc_yaml.read_text()).get("stages") or {}).items():
            stages[" ".join(shlex.split(stage["cmd"]))] = {"name": name, **stage}
    return stages


def params_file(argv: list[str]) -> str:
    return argv[argv.index("--params") + 1] if "--params" in argv else "params.yaml"


def undeclared_reads(repo: Path, records: Path) -> dict[str, list[str]]:
    """Stage name -> the keys it read without declaring them, over every record in ``records``; a record whose
    command is no stage's is reported under its command."""
    stages = pipeline_stages(repo)
    found: dict[str, list[str]] = {}
    for record_file in sorted(records.glob("*.json")):
        record = json.loads(record_file.read_text())
        argv = record["argv"]
        command = " ".join(
            ["python", str(Path(argv[0]).relative_to(repo) if Path(argv[0]).is_absolute() else argv[0]), *argv[1:]]
        )
        stage = stages.get(command)
        if stage is None:
            found[command] = ["(no stage runs this command)"]
            continue
        declared = declared_params(stage).get(params_file(argv), [])
        missing = sorted(key for key in record["reads"] if not covered(key, declared))
        if missing:
            found[stage["name"]] = missing
    return found
