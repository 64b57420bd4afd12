"""Run the grid with N workers at once, one per GPU: `python tools/run_grid.py --gpus 0,1,2,3`.

DVC has no `repro -j`, but it releases its repository lock while a stage's command runs, so several
`dvc repro -s STAGE` processes can run disjoint stages side by side. Order: the code fingerprints,
datasets and poisoned sets first (cheap, serial), then every training stage from a shared queue
(worker k sees only GPU k through CUDA_VISIBLE_DEVICES), then the fine-tune/evaluate stages the same
way, then the report (`dvc repro report`). Results are identical to a serial `dvc repro`
(tests/test_e2e.py checks this).
"""

from __future__ import annotations

import argparse
import os
import queue
import subprocess
import sys
import threading
from pathlib import Path

import yaml

PHASES = (("download-", "poison-"), ("train-",), ("finetune-",))


def grid_stages(grid_dir: Path) -> list[str]:
    """Stage addresses (``grid/shard-03/dvc.yaml:train-...``) of every shard."""
    addresses = []
    for shard in sorted(grid_dir.glob("shard-*/dvc.yaml")):
        addresses += [f"{shard.as_posix()}:{name}" for name in yaml.safe_load(shard.read_text())["stages"]]
    return addresses


def dvc(args: list[str], env: dict | None = None) -> None:
    result = subprocess.run(["dvc", "--wait-for-lock", *args], env=env)
    if result.returncode:
        sys.exit(f"run_grid: `dvc {' '.join(args)}` failed with exit status {result.returncode}")


def run_parallel(stages: list[str], devices: list[str]) -> None:
    todo: queue.Queue[str] = queue.Queue()
    for stage in stages:
        todo.put(stage)
    failures: list[str] = []

    def worker(device: str) -> None:
        env = dict(os.environ, CUDA_VISIBLE_DEVICES=device) if device else dict(os.environ)
        while not failures:
            try:
                stage = todo.get_nowait()
            except queue.Empty:
                return
            if subprocess.run(["dvc", "--wait-for-lock", "repro", "-s", stage], env=env).returncode:
                failures.append(stage)

    threads = [threading.Thread(target=worker, args=(device,)) for device in devices]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        sys.exit(f"run_grid: stage failed: {failures[0]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--gpus", help="comma-separated GPU ids, one worker each (e.g. 0,1,2,3)")
    group.add_argument("--workers", type=int, help="number of workers without GPU pinning (CPU)")
    parser.add_argument("--grid-dir", default="grid")
    args = parser.parse_args()
    devices = args.gpus.split(",") if args.gpus else [""] * args.workers
    if subprocess.run([sys.executable, "stages/plan_grid.py"]).returncode:
        sys.exit(2)
    stages = grid_stages(Path(args.grid_dir))
    dvc(["repro", "code"])  # the code fingerprints every cell stage depends on
    for index, prefixes in enumerate(PHASES):
        batch = [s for s in stages if s.rsplit(":", 1)[1].startswith(prefixes)]
        if index == 0:  # datasets before the poisoned sets built from them
            batch.sort(key=lambda address: not address.rsplit(":", 1)[1].startswith("download-"))
            if batch:
                dvc(["repro", "-s", *batch])
        else:
            run_parallel(batch, devices)
    dvc(["repro", "report"])  # the report (every cell is cached by now); `dvc repro` adds the focus experiment


if __name__ == "__main__":
    main()
