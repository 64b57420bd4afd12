"""The options of a SLURM submission (``make slurm`` / ``tools/slurm_grid.py submit``), checked before
anything is planned or submitted: each error names the option and its make variable (exit status 2)."""

from __future__ import annotations

import os
import re
import shlex
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from backdoor.errors import ConfigError

LOG_DIR = "logs/slurm"  # submissions: job script, stage lists, job logs
CACHE_TYPES = ("symlink", "hardlink", "copy", "reflink")
TIME = re.compile(r"^(\d+(-\d+)?(:\d{1,2}){0,2}|UNLIMITED|INFINITE)$")
# Options the submission sets itself; --sbatch-args may not override them.
CONTROLLED = (
    "-a",
    "--array",
    "-d",
    "--dependency",
    "-o",
    "--output",
    "-e",
    "--error",
    "--parsable",
    "-J",
    "--job-name",
    "--comment",
    "--kill-on-invalid-dep",
    "--open-mode",
    "--wrap",
    "--test-only",
)


class SlurmError(RuntimeError):
    """The cluster or a stage refused: reported in one line, exit status 1."""


@dataclass
class Options:
    """What the user chooses (Makefile: PARTITION, ACCOUNT, TIME, GPUS_PER_JOB, MAX_JOBS, CACHE, SBATCH_ARGS)."""

    partition: str | None = None
    account: str | None = None
    time: str | None = None
    gpus_per_job: str | int = 0
    max_jobs: str | int = 32
    cache: str | None = None
    sbatch_args: str = ""
    venv: str | None = None  # default: the directory of the running interpreter
    scratch: str | None = None  # on the node ($VARIABLES expand there); default $SLURM_TMPDIR, $TMPDIR or /tmp
    cache_type: str = "symlink"
    log_dir: str = LOG_DIR
    targets: Sequence[str] = ()
    dry_run: bool = False


@dataclass
class Checked:
    """Options after validation."""

    sbatch: list[str]  # the user's sbatch options: --partition ... and --sbatch-args
    max_jobs: int
    cache: Path | None
    venv: Path
    scratch: str | None
    cache_type: str
    log_dir: Path
    targets: list[str]
    shown: str  # the user's cluster options as typed, for error messages


def _int(value, name: str, minimum: int) -> int:
    text = str(value).strip()
    if not re.fullmatch(r"\d+", text) or int(text) < minimum:
        kind = "a positive integer" if minimum > 0 else "a non-negative integer"
        raise ConfigError(f"{name}: must be {kind}, got {value!r}")
    return int(text)


def check_options(options: Options, root: Path) -> Checked:
    """Validate what needs no cluster; ConfigError names the option (exit status 2)."""
    max_jobs = _int(options.max_jobs, "--max-jobs (MAX_JOBS)", 1)
    gpus = _int(options.gpus_per_job, "--gpus-per-job (GPUS_PER_JOB)", 0)
    sbatch: list[str] = []
    for name, make_var, value in (
        ("--partition", "PARTITION", options.partition),
        ("--account", "ACCOUNT", options.account),
    ):
        if value is not None and value != "":
            if not re.fullmatch(r"[\w.,+-]+", value):
                raise ConfigError(f"{name} ({make_var}): not a valid name: {value!r}")
            sbatch.append(f"{name}={value}")
    if options.time:
        if not TIME.fullmatch(options.time):
            raise ConfigError(
                f"--time (TIME): {options.time!r} is not a SLURM time limit (minutes, HH:MM:SS, D-HH:MM:SS)"
            )
        sbatch.append(f"--time={options.time}")
    if gpus:
        sbatch.append(f"--gres=gpu:{gpus}")
    try:
        extra = shlex.split(options.sbatch_args or "")
    except ValueError as exc:
        raise ConfigError(f"--sbatch-args (SBATCH_ARGS): cannot be split like a shell would: {exc}") from None
    for position, arg in enumerate(extra):
        if not arg.startswith("-"):
            if position == 0:
                raise ConfigError(f"--sbatch-args (SBATCH_ARGS): expected sbatch options, got {arg!r}")
            continue
        name = arg.split("=", 1)[0] if arg.startswith("--") else arg[:2]
        if name in CONTROLLED:
            raise ConfigError(f"--sbatch-args (SBATCH_ARGS): {name} is set by the submission itself")
    sbatch += extra
    if options.cache_type not in CACHE_TYPES:
        raise ConfigError(
            f"--cache-type: unknown value {options.cache_type!r}; valid choices: {', '.join(CACHE_TYPES)}"
        )
    cache = None
    if options.cache:
        cache = Path(options.cache).expanduser().resolve()
        if any(c in str(cache) for c in '"$`\\\n'):
            raise ConfigError(f"--cache (CACHE): unsupported character in {options.cache!r}")
        if cache.exists() and not cache.is_dir():
            raise ConfigError(f"--cache (CACHE): {cache} is not a directory")
        if not cache.exists() and not cache.parent.is_dir():
            raise ConfigError(f"--cache (CACHE): neither {cache} nor its parent folder exists")
    venv = Path(options.venv).expanduser().absolute() if options.venv else Path(sys.executable).parent
    for tool in ("python", "dvc"):
        if not os.access(venv / tool, os.X_OK):
            raise ConfigError(f"--venv: no executable {tool} in {venv} (jobs run the stages with this environment)")
    if options.scratch and not re.fullmatch(r"/[\w./${}-]*", options.scratch):
        raise ConfigError(
            f"--scratch: an absolute path on the node is needed ($VARIABLES allowed), got {options.scratch!r}"
        )
    log_dir = Path(options.log_dir)
    log_dir = log_dir if log_dir.is_absolute() else root / log_dir
    shown = " ".join(shlex.quote(a) for a in sbatch) or "(none)"
    return Checked(
        sbatch,
        max_jobs,
        cache,
        venv,
        options.scratch or None,
        options.cache_type,
        log_dir,
        list(options.targets),
        shown,
    )
