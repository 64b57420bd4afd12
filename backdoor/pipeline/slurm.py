"""Run the stale stages of the pipeline on a SLURM cluster: one job array per layer, each cell a cached DVC stage.

Submission plans, in a throwaway clone of the committed HEAD that uses the shared DVC cache, what
`dvc repro` would run and is not yet in the run-cache (``backdoor.pipeline.stage_depth``), leaves out what
SLURM jobs of this repository are already running or queued for, and submits one array per layer of the
stage graph, each with ``--dependency=afterok`` on the previous one and ``%MAX_JOBS`` tasks at once.
Task i of an array runs line i of its layer's stage list: a throwaway clone of the commit on
node-local scratch, `dvc repro STAGE` (upstream stages are restored from the run-cache, not run), and
the clone removed on exit. DVC writes outputs to the cache and the run-cache entry only after the
command succeeded, so a failed, cancelled or pre-empted job leaves nothing half-written there, and
submitting again submits exactly the stages that are still missing.

Collecting is `dvc repro` in the workspace, after checking that every run-cacheable stage is in the
run-cache: it restores them without running any of them, and runs only the stages that cannot be
run-cached (outputs kept out of the cache and committed to git: the grid's report and the focus
experiment's plots), which take seconds.

Without a shared file system (``remote``: the shared DVC remote, ``backdoor.pipeline.remote``) the remote is the
shared state instead: a job clones the commit from a git server (``git_url``, default origin), keeps a DVC cache
of its own on scratch, runs `dvc repro --pull STAGE` (the stages upstream come from the remote's run-cache) and
`dvc push --run-cache STAGE`; its stage list is written into its script, and its log stays on the node (``/tmp``).
Planning and collecting fetch the remote's run-cache and pull the outputs of the stages found there.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import shutil
import subprocess
import time
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from backdoor.errors import ConfigError
from backdoor.pipeline import stage_depth, workspace
from backdoor.pipeline.remote import NAME as REMOTE_NAME
from backdoor.pipeline.remote import Remote, RemoteError, config_text, configure, explain
from backdoor.pipeline.slurm_options import LOG_DIR, Checked, Options, SlurmError, check_options
from backdoor.pipeline.stage_depth import Plan, layered, plan

COMMENT = "backdoor-slurm:"  # job comment: marks our arrays and names their stage list


def check_cluster(checked: Checked, partition: str | None) -> None:
    """Checks that need the cluster, before anything is submitted: the partition exists, and sbatch
    accepts the options (``sbatch --test-only``, which submits nothing)."""
    names = sorted(set(_run(["sinfo", "-h", "-o", "%R"], "cannot reach the SLURM controller").split()))
    if partition and partition not in names:
        raise ConfigError(
            f"--partition (PARTITION): no partition {partition!r} on this cluster "
            f"(sinfo lists: {', '.join(names) or 'none'})"
        )
    test = subprocess.run(
        ["sbatch", "--test-only", *checked.sbatch], input="#!/bin/sh\ntrue\n", capture_output=True, text=True
    )
    if test.returncode:
        message = " ".join(
            line.removeprefix("sbatch: error: ").strip() for line in test.stderr.splitlines() if line.strip()
        )
        raise ConfigError(f"sbatch options {checked.shown}: sbatch --test-only refuses them: {message}")


def _run(cmd: list[str], what: str | None = None) -> str:
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode:
        message = " ".join((result.stderr or result.stdout).split())
        raise SlurmError(f"{what or ' '.join(cmd) + ' failed'}: {message}")
    return result.stdout


def in_flight(log_dir: Path, sha: str) -> dict[str, str]:
    """Stages of this repository at commit ``sha`` that SLURM jobs are running or waiting to run: address ->
    array job id.

    Our arrays carry the comment ``backdoor-slurm:<stage list>``, in a submission folder named after the
    commit; squeue lists each pending task of an array on its own line (``-r``), with its task index,
    which is the line of the list it runs. Jobs of another commit do not count: a stage of the same name
    there may be defined differently."""
    if shutil.which("squeue") is None:
        return {}
    user = os.environ.get("USER") or _run(["id", "-un"]).strip()
    rows = _run(["squeue", "-h", "-r", "-u", user, "-o", "%F|%K|%k"])
    stages: dict[str, str] = {}
    lists: dict[Path, list[str]] = {}
    root = log_dir.resolve()
    for row in rows.splitlines():
        array_id, task, comment = (row.split("|", 2) + ["", ""])[:3]
        if not comment.startswith(COMMENT) or not task.isdigit():
            continue
        path = Path(comment[len(COMMENT) :])
        if path.parent.parent != root or not _folder_commit(path.parent.name) == sha[:10] or not path.is_file():
            continue
        lines = lists.setdefault(path, path.read_text().splitlines())
        if int(task) < len(lines):
            stages[lines[int(task)].split("\t")[0]] = array_id
    return stages


def _folder_commit(name: str) -> str:
    """The commit in a submission folder's name, ``YYYYmmdd-HHMMSS-<commit>[-n]``."""
    parts = name.split("-")
    return parts[2] if len(parts) >= 3 else ""


def submission_folder(log_dir: Path, sha: str) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    folder, n = log_dir / f"{stamp}-{sha[:10]}", 1
    while folder.exists():
        n += 1
        folder = log_dir / f"{stamp}-{sha[:10]}-{n}"
    return folder


JOB_SCRIPT = r"""#!/bin/bash
# One stage per array task, written by backdoor.pipeline.slurm (python tools/slurm_grid.py submit).
# Usage (by sbatch): job.sh STAGE_LIST LOG_PREFIX. Task i runs line i+1 of STAGE_LIST in a throwaway clone of
# commit SHA on node-local scratch, with the shared DVC cache as the only shared state, and removes the clone.
set -uo pipefail
REPO=@REPO@
SHA=@SHA@
CACHE=@CACHE@
CACHE_TYPE=@CACHE_TYPE@
VENV=@VENV@
SCRATCH=${BACKDOOR_SCRATCH:-@SCRATCH@}
LIST=$1
LOG="$2-${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}.log"
STAGE= CELL= WORK=
stage_list() {
@STAGE_LIST@
}
IFS=$'\t' read -r STAGE CELL < <(stage_list | sed -n "$((SLURM_ARRAY_TASK_ID + 1))p") || true
say() { echo "backdoor-slurm: $*"; }
finish() {
    status=$?
    trap - EXIT TERM INT
    cd /
    if [ -n "$WORK" ]; then chmod -R u+w "$WORK" 2>/dev/null; rm -rf "$WORK"; fi
    if [ "$status" -eq 0 ]; then
        say "done: stage $STAGE"
    else
        say "FAILED (exit status $status): stage $STAGE${CELL:+, cell $CELL}; log: $LOG"
        say "nothing of this stage entered the DVC cache; submit again (the same command) to re-submit what is missing"
    fi
    exit "$status"
}
trap finish EXIT
# The stage runs in the background so that a signal is handled at once: bash defers a trap until its foreground
# child exits, and SLURM's SIGKILL (KillWait after the SIGTERM) can come first on a loaded node.
CHILD=
on_signal() {
    say "stopped by a signal (scancel, time limit or pre-emption)"
    if [ -n "$CHILD" ]; then kill -TERM "$CHILD" 2>/dev/null; wait "$CHILD"; fi
    exit 143
}
trap on_signal TERM INT
TASK="${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}"
say "stage $STAGE${CELL:+ (cell $CELL)}: task $TASK on $(hostname), commit $SHA; log: $LOG"
[ -n "$STAGE" ] || { say "no stage on line $((SLURM_ARRAY_TASK_ID + 1)) of $LIST"; exit 2; }
export PATH="$VENV:$PATH" DVC_NO_ANALYTICS=1
WORK=$(mktemp -d "$SCRATCH/backdoor-${SLURM_JOB_ID}.XXXXXX") || exit 1
@CLONE@ && git -C "$WORK/repo" checkout -q "$SHA" || exit 1
cd "$WORK/repo" || exit 1
# = dvc config --local cache.dir/cache.type/cache.shared/core.site_cache_dir, in one write
cat > .dvc/config.local <<EOF
@CONFIG@EOF
# the clone's own code, not an editable install's
export PYTHONPATH="$WORK/repo${PYTHONPATH:+:$PYTHONPATH}"
@RUN@ &
CHILD=$!
wait "$CHILD"
"""


def job_script(
    root: Path,
    sha: str,
    cache: Path,
    venv: Path,
    cache_type: str,
    scratch: str | None,
    remote: Remote | None = None,
    git_url: str | None = None,
    stages: str | None = None,
) -> str:
    """The job script: with the shared cache, or (``remote``) with a node-local cache, the remote as the shared
    state, a clone from ``git_url`` and the layer's ``stages`` list written into the script."""
    if remote:
        cache = Path("$WORK/cache")
        config = workspace.local_config(cache, cache_type, Path("$WORK/site"), shared=None, remote=REMOTE_NAME)
        config += config_text(remote)
    else:
        config = workspace.local_config(cache, cache_type, Path("$WORK/site"), shared="group")
    values = {
        "@REPO@": shlex.quote(git_url or str(root)),
        "@SHA@": sha,
        "@CACHE@": shlex.quote(str(cache)),
        "@CACHE_TYPE@": cache_type,
        "@VENV@": shlex.quote(str(venv)),
        "@SCRATCH@": scratch or "${SLURM_TMPDIR:-${TMPDIR:-/tmp}}",
        "@CONFIG@": config,
        "@STAGE_LIST@": f"cat <<'STAGES'\n{stages}STAGES" if stages is not None else '    cat "$LIST"',
        "@CLONE@": 'git clone -q --no-checkout "$REPO" "$WORK/repo"'
        if remote
        else 'git clone -q --shared --no-checkout "$REPO" "$WORK/repo"',
        # the stages upstream from the remote's run-cache; this stage's outputs and run back to it
        "@RUN@": '{ dvc repro --pull "$STAGE" && dvc push --run-cache "$STAGE"; }' if remote else 'dvc repro "$STAGE"',
    }
    text = JOB_SCRIPT
    for key, value in values.items():
        text = text.replace(key, value)
    return text


@dataclass
class Layer:
    index: int
    stages: list[str]
    list_file: Path
    after: list[str] = field(default_factory=list)  # in-flight array jobs it also waits for
    node_log: Path | None = None  # without a shared file system: the log prefix on the node

    @property
    def name(self) -> str:
        kinds = sorted({s.rsplit(":", 1)[-1].split("-")[0] for s in self.stages})
        return f"L{self.index}-{'+'.join(kinds)}"

    @property
    def log_prefix(self) -> Path:
        return self.node_log or self.list_file.with_suffix("")


def sbatch_command(layer: Layer, checked: Checked, script: Path, previous: str | None) -> list[str]:
    """The sbatch command of one layer (``previous``: the array job id of the layer before, or a placeholder)."""
    after = ([previous] if previous else []) + layer.after
    cmd = [
        "sbatch",
        "--parsable",
        f"--job-name={layer.name}",
        f"--array=0-{len(layer.stages) - 1}%{checked.max_jobs}",
        f"--output={layer.log_prefix}-%A_%a.log",
        "--open-mode=append",
        f"--comment={COMMENT}{layer.list_file}",
    ]
    if after:
        cmd += [f"--dependency=afterok:{':'.join(after)}", "--kill-on-invalid-dep=yes"]
    return cmd + checked.sbatch + [str(script), str(layer.list_file), str(layer.log_prefix)]


def count(n: int, what: str) -> str:
    return f"{n} {what}{'' if n == 1 else 's'}"


def describe(stages: Sequence[str]) -> str:
    names = [s.rsplit(":", 1)[-1] for s in stages]
    return ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")


@contextmanager
def _quiet_dvc():
    """DVC logs every restored stage at INFO; a submission prints its own summary."""
    log = logging.getLogger("dvc")
    level = log.level
    log.setLevel(logging.WARNING)
    try:
        yield
    finally:
        log.setLevel(level)


def plan_in_clone(root: Path, sha: str, cache: Path, targets: Sequence[str], remote: Remote | None = None) -> Plan:
    """What is stale at commit ``sha`` given what the shared cache (and its run-cache) holds, or with a remote,
    what the remote's run-cache holds (the outputs of the stages found there are pulled into ``cache``). The
    clone links restored outputs from the cache (symlinks: nothing is copied), and is removed afterwards."""
    with workspace.throwaway_clone(root, sha, cache, "symlink") as clone, _quiet_dvc():
        if remote is None:
            return plan(clone, targets, restore=True)
        configure(clone, remote)
        with _restoring_from(clone, remote):
            return plan(clone, targets, restore=True)


@contextmanager
def _restoring_from(clone: Path, remote: Remote):
    """The remote's run-cache entries fetched into the clone's cache, and stage_depth's run-cache lookup made to
    pull a found stage's outputs from the remote first (DVC's ``restore(pull=True)``, as `dvc repro --pull`)."""
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    def fault(exc: Exception) -> RemoteError:
        return RemoteError(explain(remote, f"ERROR: {type(exc).__name__}: {exc}"))

    try:
        with Repo(str(clone)) as repo:
            repo.stage_cache.pull(None)
    except Exception as exc:  # botocore's and s3fs's own errors: one line naming the remote
        raise fault(exc) from None

    def restore(repo, stage) -> bool:
        try:
            repo.stage_cache.restore(stage, pull=True)
        except DvcException:  # not in the run-cache, or its outputs are not on the remote
            return False
        except Exception as exc:
            raise fault(exc) from None
        return True

    original = stage_depth._restore
    stage_depth._restore = restore
    try:
        yield
    finally:
        stage_depth._restore = original


def submit(
    options: Options,
    cwd: str | Path = ".",
    say: Callable[[str], None] = print,
    remote: Remote | None = None,
    git_url: str | None = None,
) -> list[str]:
    """Plan and submit; returns the array job ids (none when nothing is stale or on a dry run). With ``remote``
    the jobs share nothing but the remote and the git server at ``git_url`` (default: origin's URL)."""
    root = workspace.toplevel(cwd)
    checked = check_options(options, root)
    if remote and checked.cache:
        raise ConfigError("CACHE and REMOTE: give one (CACHE: a shared file system; REMOTE: none)")
    has_sbatch = shutil.which("sbatch") is not None
    if not has_sbatch and not options.dry_run:
        raise ConfigError(
            "sbatch: not found on PATH: submit from a SLURM login node (or --dry-run to print the sbatch commands)"
        )
    if has_sbatch:
        check_cluster(checked, options.partition)
    workspace.require_committed(root)
    workspace.require_planned(root)
    sha = workspace.head(root)
    if remote:
        git_url = git_url or workspace.origin_url(root, sha)
    cache = checked.cache or workspace.cache_dir(root)
    running = in_flight(checked.log_dir, sha) if has_sbatch else {}
    planned = plan_in_clone(root, sha, cache, checked.targets, remote)
    layers_, deferred = layered(planned.stale, exclude=running)
    pending = [s for s in planned.stale if s in running]
    after_collect = (
        f"; collecting (`dvc repro`) then runs here what cannot be run-cached: {describe(deferred)}" if deferred else ""
    )
    if not layers_:
        waiting = (
            f"{count(len(pending), 'stale stage')} already queued or running in SLURM jobs (squeue --me); "
            if pending
            else ""
        )
        say(
            f"nothing to submit at {sha[:10]}: {waiting}{count(len(planned.restored), 'stage')} in the run-cache, "
            f"{planned.up_to_date} up to date{after_collect}"
        )
        return []

    folder = submission_folder(checked.log_dir, sha)
    layers = []
    for index, stages in enumerate(layers_):
        after = sorted({running[u] for s in stages for u in planned.stale[s].upstream if u in running})
        node_log = Path("/tmp") / f"{folder.name}-layer-{index}" if remote else None
        layers.append(Layer(index, stages, folder / f"layer-{index}.stages", after, node_log))
    script = folder / "job.sh"
    scripts = {layer.index: folder / f"job-{layer.index}.sh" if remote else script for layer in layers}
    total = sum(len(layer.stages) for layer in layers)
    say(
        f"{count(total, 'stage')} to run at commit {sha[:10]} in {count(len(layers), 'job array')} (at most "
        f"{checked.max_jobs} tasks at once), "
        + (f"remote {remote.shown}, clones of {git_url}, logs on the nodes in /tmp" if remote else f"cache {cache}")
        + (f"; {len(pending)} more already queued or running" if pending else "")
    )

    if options.dry_run:
        shown = folder / "job-<layer>.sh" if remote else script
        say(f"dry run: nothing written or submitted; the job script would be {shown}")
        for layer in layers:
            say(f"layer {layer.index}: {count(len(layer.stages), 'stage')}: {describe(layer.stages)}")
            previous = f"$JOB_{layer.index - 1}" if layer.index else None
            command = shlex.join(sbatch_command(layer, checked, scripts[layer.index], previous))
            if previous:  # unquoted, so that a shell expands it
                command = command.replace(f"'--dependency=afterok:{previous}'", f"--dependency=afterok:{previous}")
            say(f"  JOB_{layer.index}=$({command})")
        say(f"when no job is left: make collect (dvc repro){after_collect}")
        return []

    folder.mkdir(parents=True)
    for layer in layers:
        listed = "".join(f"{s}\t{planned.stale[s].cell}\n" for s in layer.stages)
        layer.list_file.write_text(listed)
        text = job_script(
            root,
            sha,
            cache,
            checked.venv,
            checked.cache_type,
            checked.scratch,
            remote,
            git_url,
            listed if remote else None,
        )
        scripts[layer.index].write_text(text)
        scripts[layer.index].chmod(0o755)
    if checked.cache and workspace.set_cache_dir(root, cache):
        say(
            f"this workspace now uses the cache {cache} (dvc config --local cache.dir), so `dvc repro` collects from it"
        )

    job_ids: list[str] = []
    commands = []
    for layer in layers:
        cmd = sbatch_command(layer, checked, scripts[layer.index], job_ids[-1] if job_ids else None)
        result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode:
            if job_ids:
                subprocess.run(["scancel", *job_ids])
            raise SlurmError(
                f"sbatch refused layer {layer.index} ({(result.stderr or result.stdout).strip()})"
                + (f"; cancelled the arrays already submitted ({', '.join(job_ids)})" if job_ids else "")
            )
        job_ids.append(result.stdout.strip().split(";")[0])
        commands.append(cmd)
        say(
            f"layer {layer.index}: array {job_ids[-1]} ({layer.name}), {count(len(layer.stages), 'stage')}: "
            f"{describe(layer.stages)}"
        )
    (folder / "submitted.json").write_text(
        json.dumps(
            {
                "commit": sha,
                "cache": str(cache),
                "remote": remote.shown if remote else None,
                "jobs": job_ids,
                "commands": commands,
                "layers": [layer.stages for layer in layers],
                "deferred": deferred,
            },
            indent=1,
        )
        + "\n"
    )
    say(f"watch: squeue --me; logs: {folder}; when no job is left: make collect (dvc repro){after_collect}")
    return job_ids


def collect(
    cache: str | None = None,
    targets: Sequence[str] = (),
    cwd: str | Path = ".",
    say: Callable[[str], None] = print,
    remote: Remote | None = None,
) -> int:
    """`dvc repro` in the workspace once every run-cacheable stage is in the run-cache (with ``remote``: the
    remote's, its outputs pulled from there); its exit status."""
    root = workspace.toplevel(cwd)
    workspace.require_committed(root)
    workspace.require_planned(root)
    if cache:
        path = check_options(Options(cache=cache), root).cache
        if workspace.set_cache_dir(root, path):
            say(f"this workspace now uses the cache {path} (dvc config --local cache.dir)")
    sha = workspace.head(root)
    if remote:
        configure(root, remote)
    planned = plan_in_clone(root, sha, workspace.cache_dir(root), targets, remote)
    layers_, deferred = layered(planned.stale)
    missing = [s for layer in layers_ for s in layer]
    if missing:
        running = in_flight(root / LOG_DIR, sha) if shutil.which("sbatch") else {}
        queued = sum(s in running for s in missing)
        raise SlurmError(
            f"{count(len(missing), 'stage')} not in the run-cache yet ({describe(missing)}"
            + (f"; {queued} of them queued or running: see squeue --me" if queued else "")
            + "): `dvc repro` would run them here; wait for the jobs, or submit again (make slurm)"
        )
    say(
        f"every cached stage is in the run-cache ({len(planned.restored)} to restore, "
        f"{planned.up_to_date} up to date); "
        + (
            f"`dvc repro` runs only what cannot be run-cached: {describe(deferred)}"
            if deferred
            else "`dvc repro` runs nothing"
        )
    )
    pull = ["--pull"] if remote else []
    return subprocess.run([*workspace.dvc_command(), "repro", *pull, *targets], cwd=root).returncode
