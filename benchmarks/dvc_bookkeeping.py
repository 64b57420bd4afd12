"""How much time DVC itself spends per grid stage, on the real stage definitions at paper size.

Plans the grid from a params file (default: presets/paper.yaml, 720 cells) into a scratch copy of
the repository, swaps every stage's command for a stub that only writes its declared outputs (the
deps, params and outs stay exactly as planned), then times:
  1. a full `dvc repro` (every stage executes): seconds of DVC bookkeeping per executed stage;
  2. a no-op `dvc repro` (everything up to date).
With --compare N it also times the same N stages laid out in one dvc.yaml (the unsharded
layout) against N stages in shards, in the same run, and prints the ratio.

    python benchmarks/dvc_bookkeeping.py [--params presets/paper.yaml] [--compare 150]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
def stub(outs: list[str]) -> str:
    """A shell command that only creates its output folders, with the two files that later stages
    depend on (manifest.json, model.pt): ~5 ms, so the time measured is DVC's."""
    return " && ".join(f"mkdir -p {out} && echo {out} > {out}/manifest.json && echo {out} > {out}/model.pt"
                       for out in outs)


def sh(cwd: Path, *cmd: str) -> float:
    start = time.perf_counter()
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"  # this venv's dvc and python
    result = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True,
                            env={**os.environ, "PATH": path, "DVC_NO_ANALYTICS": "1"})
    if result.returncode:
        sys.exit(f"{' '.join(cmd)} failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
    return time.perf_counter() - start


def scratch_repo(dest: Path, params_file: Path) -> None:
    for name in ("stages", "backdoor", ".dvc"):
        shutil.copytree(ROOT / name, dest / name, ignore=shutil.ignore_patterns("cache", "tmp", "__pycache__"))
    shutil.copy(params_file, dest / "params.yaml")
    (dest / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"report": {
        "cmd": stub(["reports/grid/done"]), "deps": ["reports/grid/cells"], "outs": ["reports/grid/done"]}}}))
    sh(dest, "git", "init", "-q")
    sh(dest, sys.executable, "stages/plan_grid.py")


def stub_commands(grid_dir: Path) -> int:
    """Replace each command by one that writes its declared outputs; return the number of stages."""
    count = 0
    for shard in grid_dir.glob("shard-*/dvc.yaml"):
        spec = yaml.safe_load(shard.read_text())
        for stage in spec["stages"].values():
            stage["cmd"] = stub(stage["outs"])
            count += 1
        shard.write_text(yaml.safe_dump(spec, sort_keys=False, width=1000))
    return count


def merge_into_one_file(grid_dir: Path) -> None:
    stages = {}
    for shard in sorted(grid_dir.glob("shard-*/dvc.yaml")):
        stages.update(yaml.safe_load(shard.read_text())["stages"])
        shutil.rmtree(shard.parent)
    (grid_dir / "all").mkdir()
    (grid_dir / "all" / "dvc.yaml").write_text(yaml.safe_dump({"stages": stages}, sort_keys=False, width=1000))


def measure(repo: Path) -> tuple[int, float, float]:
    stages = stub_commands(repo / "grid")
    full = sh(repo, "dvc", "repro")
    noop = sh(repo, "dvc", "repro")
    return stages, full, noop


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default=str(ROOT / "presets" / "paper.yaml"))
    parser.add_argument("--compare", type=int, default=0, metavar="CELLS",
                        help="also time about CELLS cells sharded vs in one dvc.yaml, in this run")
    args = parser.parse_args()
    params_file = Path(args.params).resolve()
    cells = _cells(yaml.safe_load(params_file.read_text())["grid"])
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp) / "paper"
        repo.mkdir()
        scratch_repo(repo, params_file)
        stages, full, noop = measure(repo)
        print(f"paper-size grid: {cells} cells, {stages} stages in {len(list((repo / 'grid').glob('shard-*')))} shards")
        print(f"full dvc repro: {full:.1f} s = {full / stages:.3f} s per executed stage (target < 0.3)")
        print(f"no-op dvc repro: {noop:.1f} s (target < 15)")
        if args.compare:
            small = limited_params(params_file, args.compare, Path(tmp))
            timings = {}
            for layout in ("sharded", "one-file"):
                copy = Path(tmp) / layout
                copy.mkdir()
                scratch_repo(copy, small)
                if layout == "one-file":
                    merge_into_one_file(copy / "grid")
                timings[layout] = measure(copy)
            n = timings["sharded"][0]
            print(f"{n} stages, full repro: sharded {timings['sharded'][1]:.1f} s, one file {timings['one-file'][1]:.1f} s "
                  f"-> sharded is {timings['one-file'][1] / timings['sharded'][1]:.2f}x faster")


if __name__ == "__main__":
    main()
