"""Keep a finished grid run in git: copy a workspace's report into reports/presets/<preset>/.

    python tools/keep_run.py detectors-cpu --stage-times /path/to/stage_times.csv
    python tools/keep_run.py reference-cifar10-cpu --part seed-1 ...   # one part of a run in several (join_parts.py)

From the workspace (default: this repository) it copies the report stage's files (summary.csv, seeds.csv,
recovery.csv, metrics.json, detection.csv, figures/) and, for every detector result the plan (grid/plan.json) names,
the detector's record, its per-image scores and a model detector's reversed trigger, under detection/<detector>/:
only this run's, not whatever other runs left in the workspace. ``run.json`` records the workspace's commit, the
time and the plan's seeds and cell count. Each file is replaced atomically; other files of the folder (RUN.md, extra
probes) are kept, and the detection/ folder is replaced whole, so no scores of an earlier run stay beside the new
records. The run's RUN.md (what ran where, the commands, what is missing) is still written by hand.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import time
from pathlib import Path

from backdoor.errors import ConfigError
from backdoor.files import atomic_dir, atomic_path, read_json, write_json
from backdoor.pipeline.plan import detection_outputs

ROOT = Path(__file__).resolve().parents[1]
REPORT_FILES = ("summary.csv", "seeds.csv", "recovery.csv", "metrics.json", "detection.csv")


def detection_files(workspace: Path, plan: dict) -> list[Path]:
    """Every file of the detect stages of the plan's cells (``detection_outputs``), relative to
    reports/grid/cells/detection; one missing means the run did not finish."""
    cells = workspace / "reports" / "grid" / "cells" / "detection"
    files: list[Path] = []
    for detector, key in sorted({(d, k) for cell in plan["cells"] for d, k in cell.get("detection", {}).items()}):
        for name in map(Path, detection_outputs(detector, f"{detector}/{key}.json")):
            if not (cells / name).is_file():
                raise ConfigError(f"{cells / name} is missing: the run did not finish (dvc repro), nothing copied")
            files.append(name)
    return files


def keep_run(workspace: Path, dest: Path, stage_times: Path | None = None) -> list[Path]:
    """Copy the run in ``workspace`` to ``dest``; returns the files written, relative to ``dest``. Everything is
    checked before the first file is written."""
    report, plan_file = workspace / "reports" / "grid", workspace / "grid" / "plan.json"
    if not plan_file.is_file():
        raise ConfigError(f"--workspace: no {plan_file}: not a repository that planned a grid (make grid)")
    plan = read_json(plan_file)
    missing = [name for name in REPORT_FILES if not (report / name).is_file()]
    if missing:
        raise ConfigError(f"{report} lacks {', '.join(missing)}: run the report stage first (dvc repro report)")
    if stage_times is not None and not stage_times.is_file():
        raise ConfigError(f"--stage-times: no file {stage_times}")
    detections = detection_files(workspace, plan)
    figures = sorted(p.name for p in (report / "figures").glob("*.png"))
    copies = {Path(name): report / name for name in REPORT_FILES}
    if stage_times is not None:
        copies[Path("stage_times.csv")] = stage_times
    dest.mkdir(parents=True, exist_ok=True)
    for name, source in copies.items():
        with atomic_path(dest / name) as tmp:
            shutil.copyfile(source, tmp)
    for folder, source, names in (
        ("figures", report / "figures", figures),
        ("detection", report / "cells" / "detection", detections),
    ):
        if names:
            with atomic_dir(dest / folder) as tmp:
                for name in names:
                    (tmp / name).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(source / name, tmp / name)
    write_json(dest / "run.json", run_record(workspace, plan))
    return [
        *copies,
        *(Path("figures") / n for n in figures),
        *(Path("detection") / n for n in detections),
        Path("run.json"),
    ]


def run_record(workspace: Path, plan: dict) -> dict:
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=workspace, capture_output=True, text=True).stdout.strip()
    return {
        "commit": commit or None,
        "kept_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "cells": len(plan["cells"]),
        "seeds": sorted({cell["seed"] for cell in plan["cells"]}),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("preset", help="the folder name under reports/presets/ (the preset the run used)")
    parser.add_argument("--workspace", type=Path, default=ROOT, help="the repository that ran it (default: this one)")
    parser.add_argument("--stage-times", type=Path, help="tools/time_stages.py's CSV of the run, kept beside it")
    parser.add_argument(
        "--part", help="a run in several parts: keep this one under parts/<part>/ (then tools/join_parts.py <preset>)"
    )
    args = parser.parse_args()
    for option, name in (("preset", args.preset), ("--part", args.part)):
        if name is not None and (Path(name).name != name or name in ("", ".", "..")):
            raise SystemExit(f"keep_run: {option} must be a folder name, not {name!r}")
    dest = ROOT / "reports" / "presets" / args.preset
    if args.part is not None:
        dest = dest / "parts" / args.part
    try:
        written = keep_run(args.workspace.resolve(), dest, args.stage_times)
    except ConfigError as error:
        raise SystemExit(f"keep_run: {error}") from None
    print(f"{dest.relative_to(ROOT)}: {len(written)} files")


if __name__ == "__main__":
    main()
