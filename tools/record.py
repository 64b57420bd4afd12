"""Run a benchmark and keep what it printed with the conditions it ran under, as the file a figure is quoted from.

    python tools/record.py --out benchmarks/results/train-throughput.txt -- python benchmarks/train_throughput.py

The file starts with the date (UTC), the commit, the machine (CPU model, cores) and the load average before
and after, then the command and its whole output. Benchmarks print ratios measured in the same run; the load
says whether the machine was quiet. Exits with the command's status and writes nothing if it failed.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

from backdoor.files import atomic_path

ROOT = Path(__file__).resolve().parents[1]


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def without_local_paths(text: str, repo: Path) -> str:
    """``text`` with the repository's folder written as <repo> and the home folder as ~: a committed log names no
    machine's paths."""
    return text.replace(str(repo), "<repo>").replace(str(Path.home()), "~")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- then the command")
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the command after --")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout
    before, started = os.getloadavg(), time.time()
    result = subprocess.run(command, capture_output=True, text=True)
    after = os.getloadavg()
    if result.returncode != 0:
        sys.stderr.write(result.stdout + result.stderr)
        sys.exit(result.returncode)
    header = [
        f"date: {time.strftime('%Y-%m-%d %H:%M', time.gmtime(started))} UTC ({time.time() - started:.0f} s)",
        f"commit: {commit.strip()}",
        f"machine: {cpu_model()}, {os.cpu_count()} cores",
        f"load average (1, 5, 15 min): before {before[0]:.2f} {before[1]:.2f} {before[2]:.2f}, "
        f"after {after[0]:.2f} {after[1]:.2f} {after[2]:.2f}",
        f"command: {' '.join(command)}",
        "",
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(args.out) as tmp:
        tmp.write_text("\n".join(header) + without_local_paths(result.stdout, Path.cwd()))
    sys.stdout.write(result.stdout)


if __name__ == "__main__":
    main()
