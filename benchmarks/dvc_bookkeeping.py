"""How much time DVC itself spends per grid stage, on the real stage definitions at paper size.

Plans the grid from a params file (default: presets/paper.yaml, 720 cells) into a scratch copy of
the repository where `python stages/<step>.py` is a shell stand-in that only writes the files the real
step writes (commands, deps, params and outs stay exactly as planned), then times:
  1. a full `dvc repro` (every stage executes): seconds of DVC bookkeeping per executed stage;
  2. a no-op `dvc repro` (everything up to date), three times: the median and each run;
  3. in the same run, a no-op over bare stages (one dependency, one output): DVC's own cost per
     stage on this machine, the floor any layout of this many stages pays.
With --compare N it also times the same N stages laid out in one dvc.yaml (the unsharded
layout) against N stages in shards, in the same run, and prints the ratio.

    python benchmarks/dvc_bookkeeping.py [--params presets/paper.yaml] [--compare 150]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
NOOP_RUNS = 3
# What each stage writes into a folder output, as the real stages do at paper size (training logs CA
# and ASR every epoch there): DVC's cost of checking a folder grows with its files.
# tests/test_e2e.py checks this table against the folders of a real grid run.
TRAIN_METRICS = ("train_loss", "clean_acc", "asr", "robust_acc")
OUTPUT_FILES = {
    "download": ["manifest.json", "test.pt", "train.pt"],
    "poison": ["manifest.json", "poison.pt"],
    "train": ["live/metrics.json", *(f"live/plots/metrics/{m}.tsv" for m in TRAIN_METRICS), "model.pt"],
    "train-baseline": ["live/metrics.json", *(f"live/plots/metrics/{m}.tsv" for m in TRAIN_METRICS[:2]), "model.pt"],
    "features": ["features.pt", "manifest.json"],
}


def output_files(stage: str) -> list[str]:
    """The files a grid stage writes into its output folder (see OUTPUT_FILES)."""
    kind = stage.split("-", 1)[0]
    if kind == "train" and "_clean_" in stage:
        kind = "train-baseline"
    return sorted(OUTPUT_FILES[kind])


def is_file_output(out: str) -> bool:
    """The grid's file outputs: the families' and detectors' JSON reports, a detector's scores and reversed trigger
    (a folder name may contain a dot)."""
    return out.endswith((".json", ".csv.gz", ".png"))


def stand_in_python(repo: Path) -> None:
    """``bin/python`` for the scratch repository: ``python stages/<grid step>.py``
    becomes a shell stub that writes the files the real script writes (its ``--out`` folder, or its
    ``--report`` file), in a few milliseconds; anything else runs the real Python. The commands DVC
    stores and checks stay exactly as planned, and the time measured is DVC's."""
    branches = []
    for kind, files in OUTPUT_FILES.items():
        folders = sorted({str(Path(f).parent) for f in files} - {"."})
        branches.append(f"  {kind}) folders='{' '.join(folders)}'; names='{' '.join(sorted(files))}';;")
    script = f"""#!/bin/sh
case "$1" in
  stages/download.py|stages/poison.py|stages/train.py|stages/finetune.py|stages/features.py|stages/detect.py) ;;
  *) exec {sys.executable} "$@";;
esac
kind=${{1#stages/}}; kind=${{kind%.py}}; shift
out=; report=; list=; baseline=yes
for arg in "$@"; do
  case "$arg" in
    --out) list=out;;
    --report) list=report;;
    --poisoned) list=; baseline=;;
    --*) list=;;
    *) case "$list" in out) out=$arg;; report) report=$arg;; esac;;
  esac
done
[ "$kind" = train ] && [ -n "$baseline" ] && kind=train-baseline
[ "$kind" = detect ] && report=$out && out=  # a detector's --out is its JSON record
folders=; names=
case "$kind" in
{chr(10).join(branches)}
esac
if [ -n "$out" ]; then
  mkdir -p "$out" || exit 1
  for folder in $folders; do mkdir -p "$out/$folder" || exit 1; done
  for name in $names; do echo "$name" > "$out/$name" || exit 1; done
fi
if [ -n "$report" ]; then mkdir -p "${{report%/*}}" && echo "$report" > "$report" || exit 1; fi
if [ "$kind" = detect ]; then  # its scores, and a reversed trigger (read only for a model-level detector)
  echo scores > "${{report%.json}}.scores.csv.gz" && echo png > "${{report%.json}}.png" || exit 1
fi
"""
    path = repo / "bin" / "python"
    path.parent.mkdir()
    path.write_text(script)
    path.chmod(0o755)


def write_cmd(path: str) -> str:
    """A command for a bare stage: write one small file."""
    return f"mkdir -p {Path(path).parent} && echo {path} > {path}"


def timed(cwd: Path, *cmd: str) -> tuple[float, float]:
    """Run a command; return its wall-clock seconds and its CPU seconds (user + system)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    # the repository's stand-in python first (if any), then this venv's dvc
    path = os.pathsep.join([str(cwd / "bin"), str(Path(sys.executable).parent), os.environ["PATH"]])
    result = subprocess.run(
        cmd, cwd=cwd, capture_output=True, text=True, env={**os.environ, "PATH": path, "DVC_NO_ANALYTICS": "1"}
    )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode:
        sys.exit(f"{' '.join(cmd)} failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
    return wall, after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime


def sh(cwd: Path, *cmd: str) -> float:
    return timed(cwd, *cmd)[0]


def copy_dvc_config(dest: Path) -> None:
    shutil.copytree(ROOT / ".dvc", dest / ".dvc", ignore=shutil.ignore_patterns("cache", "tmp"))


def scratch_repo(dest: Path, params_file: Path) -> None:
    copy_dvc_config(dest)
    for name in ("stages", "backdoor"):
        shutil.copytree(ROOT / name, dest / name, ignore=shutil.ignore_patterns("cache", "tmp", "__pycache__"))
    shutil.copy(params_file, dest / "params.yaml")
    (dest / "dvc.yaml").write_text(
        yaml.safe_dump(
            {
                "stages": {
                    "code": {
                        "cmd": "python stages/fingerprint.py --out data/code",
                        "deps": ["backdoor", "stages"],
                        "outs": ["data/code"],
                    },
                    "report": {
                        "cmd": write_cmd("reports/grid/done.json"),
                        "deps": ["reports/grid/cells"],
                        "outs": ["reports/grid/done.json"],
                    },
                }
            }
        )
    )
    stand_in_python(dest)
    sh(dest, "git", "init", "-q")
    sh(dest, sys.executable, "stages/plan_grid.py")


def count_stages(grid_dir: Path) -> int:
    return sum(len(yaml.safe_load(shard.read_text())["stages"]) for shard in grid_dir.glob("shard-*/dvc.yaml"))


def merge_into_one_file(grid_dir: Path) -> None:
    stages = {}
    for shard in sorted(grid_dir.glob("shard-*/dvc.yaml")):
        stages.update(yaml.safe_load(shard.read_text())["stages"])
        shutil.rmtree(shard.parent)
    (grid_dir / "all").mkdir()
    (grid_dir / "all" / "dvc.yaml").write_text(yaml.safe_dump({"stages": stages}, sort_keys=False, width=1000))


def floor_repo(dest: Path, stages: int, per_shard: int = 5) -> None:
    """``stages`` bare stages, ``per_shard`` to a dvc.yaml like the grid, each with one shared file
    dependency and one file output, pulled in by a root stage as the report pulls in the grid: what
    DVC charges any stage on this machine."""
    copy_dvc_config(dest)
    (dest / "input.txt").write_text("input\n")
    (dest / "dvc.yaml").write_text(
        yaml.safe_dump(
            {
                "stages": {
                    "report": {
                        "cmd": write_cmd("done.json"),
                        "deps": ["out" if stages else "input.txt"],
                        "outs": ["done.json"],
                    }
                }
            }
        )
    )
    for first in range(0, stages, per_shard):
        names = [f"bare-{i}" for i in range(first, min(first + per_shard, stages))]
        spec = {
            name: {
                "cmd": write_cmd(f"out/{name}.json"),
                "deps": ["input.txt"],
                "outs": [f"out/{name}.json"],
                "wdir": "../..",
            }
            for name in names
        }
        shard = dest / "shards" / f"{first // per_shard:03d}"
        shard.mkdir(parents=True)
        (shard / "dvc.yaml").write_text(yaml.safe_dump({"stages": spec}))
    sh(dest, "git", "init", "-q")


def measure(repo: Path) -> tuple[float, list[float], list[float]]:
    """(full run seconds, no-op seconds of each of NOOP_RUNS runs, and their CPU seconds)."""
    full = sh(repo, "dvc", "repro")
    noops, cpus = zip(*(timed(repo, "dvc", "repro") for _ in range(NOOP_RUNS)))
    return full, list(noops), list(cpus)


def limited_params(params_file: Path, cells: int, dest: Path) -> Path:
    """The same preset cut down (seeds, then triggers ...) to about ``cells`` cells."""
    params = yaml.safe_load(params_file.read_text())
    grid = params["grid"]
    for axis in ("seed", "regularizer", "trigger", "arch", "dataset", "poison_rate", "strategy"):
        while len(grid[axis]) > 1 and _cells(grid) > cells:
            grid[axis].pop()
    path = dest / "params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


def _cells(grid: dict) -> int:
    n = 1
    for axis in ("dataset", "arch", "trigger", "strategy", "poison_rate", "regularizer", "seed"):
        n *= len(grid[axis])
    return n


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default=str(ROOT / "presets" / "paper.yaml"))
    parser.add_argument(
        "--floor-stages",
        type=int,
        default=300,
        help="bare stages timed in the same run as DVC's own floor per stage (0: skip)",
    )
    parser.add_argument(
        "--compare",
        type=int,
        default=0,
        metavar="CELLS",
        help="also time about CELLS cells sharded vs in one dvc.yaml, in this run",
    )
    args = parser.parse_args(argv)
    params_file = Path(args.params).resolve()
    cells = _cells(yaml.safe_load(params_file.read_text())["grid"])
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp) / "paper"
        repo.mkdir()
        scratch_repo(repo, params_file)
        stages = count_stages(repo / "grid")
        full, noops, cpus = measure(repo)
        noop = statistics.median(noops)
        print(f"paper-size grid: {cells} cells, {stages} stages in {len(list((repo / 'grid').glob('shard-*')))} shards")
        print(f"full dvc repro: {full:.1f} s = {full / stages:.3f} s per executed stage (target < 0.3)")
        print(
            f"no-op dvc repro: median {noop:.1f} s of {NOOP_RUNS} runs ({', '.join(f'{t:.1f}' for t in noops)} s; "
            f"CPU {', '.join(f'{t:.1f}' for t in cpus)} s; target < 15)"
        )
        if args.floor_stages:  # DVC's start-up (a root stage alone) and its cost per added bare stage
            floors = {}
            for count in (0, args.floor_stages):
                floor = Path(tmp) / f"floor-{count}"
                floor.mkdir()
                floor_repo(floor, count)
                floors[count] = statistics.median(measure(floor)[1])
            start_up = floors[0]
            bare = (floors[args.floor_stages] - start_up) / args.floor_stages
            print(
                f"DVC's floor on this machine, same run: start-up {start_up:.1f} s + {bare * 1000:.1f} ms "
                f"per bare stage "
                f"(one dependency, one output; {args.floor_stages} timed) -> {start_up + bare * stages:.1f} s "
                f"for {stages} bare stages"
            )
            print(
                f"grid stages: {(noop - start_up) / stages * 1000:.1f} ms each = "
                f"{(noop - start_up) / stages / bare:.2f}x a bare stage"
            )
        if args.compare:
            small = limited_params(params_file, args.compare, Path(tmp))
            timings = {}
            for layout in ("sharded", "one-file"):
                copy = Path(tmp) / layout
                copy.mkdir()
                scratch_repo(copy, small)
                if layout == "one-file":
                    merge_into_one_file(copy / "grid")
                n = count_stages(copy / "grid")
                timings[layout] = measure(copy)[0]
            print(
                f"{n} stages, full repro: sharded {timings['sharded']:.1f} s, one file {timings['one-file']:.1f} s "
                f"-> sharded is {timings['one-file'] / timings['sharded']:.2f}x faster"
            )


if __name__ == "__main__":
    main()
