"""Run the grid with N workers at once, one per GPU: `python tools/run_grid.py --gpus 0,1,2,3`.

DVC has no `repro -j`, but it releases its repository lock while a stage's command runs, so several
`dvc repro -s STAGE` processes can run disjoint stages side by side. The stages `dvc repro` would run
are grouped into layers by their depth in DVC's stage graph (backdoor.pipeline.stage_depth, shared with the
SLURM submission): the code fingerprints, then the datasets, then the poisoned sets and clean baselines,
then the other trainings, then the fine-tunings. Each layer runs from a shared queue (worker k sees only
GPU k through CUDA_VISIBLE_DEVICES) once the previous one has finished; then `dvc repro TARGETS`
(default: the report) runs what cannot be run-cached and records the rest. Results are identical to a
serial `dvc repro` (tests/test_e2e.py checks this).
"""

from __future__ import annotations

import argparse
import os
import queue
import subprocess
import sys
import threading

from backdoor.errors import ConfigError
from backdoor.pipeline.stage_depth import plan

DEFAULT_TARGETS = ["report"]  # the grid and its report; `dvc repro` adds the focus experiment


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

    threads = [threading.Thread(target=worker, args=(device,)) for device in devices[: len(stages)]]
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
    parser.add_argument(
        "targets",
        nargs="*",
        default=DEFAULT_TARGETS,
        help="stages or dvc.yaml files, as for dvc repro (default: report)",
    )
    args = parser.parse_args()
    devices = args.gpus.split(",") if args.gpus else [""] * args.workers
    if subprocess.run([sys.executable, "stages/plan_grid.py"]).returncode:
        sys.exit(2)
    try:
        planned = plan(".", args.targets)
    except ConfigError as exc:
        sys.exit(f"run_grid: {exc}")
    for stages in planned.layers():
        run_parallel(stages, devices)
    dvc(["repro", *args.targets])  # what cannot be run-cached (the report); the rest is up to date by now


if __name__ == "__main__":
    main()
