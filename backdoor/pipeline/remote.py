"""The shared DVC remote: one setting (``REMOTE``), pushed and pulled whole, faults reported in one line.

The remote is written into ``.dvc/config.local`` (git-ignored) as the default remote ``shared``, so a clone's
committed ``.dvc/config`` stays clean; credentials come from the environment (``AWS_ACCESS_KEY_ID`` and
``AWS_SECRET_ACCESS_KEY``, or ``AWS_PROFILE``), never from a file of the repository. ``push`` sends every
output of every dvc.yaml (the focus pipeline and ``grid/shard-*``) and the run-cache; ``pull`` fetches them and
checks them out only once everything it needs has arrived, so a fault leaves the workspace as it was.

A preset run (``reports/presets/<name>/remote.json``) names the commit and the remote that restore its
outputs: ``pull_run`` checks that commit out in a git worktree sharing this repository's DVC cache and pulls
there.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from backdoor.errors import ConfigError
from backdoor.pipeline import workspace

NAME = "shared"  # the remote's name in .dvc/config.local
CONFIG_LOCAL = Path(".dvc") / "config.local"
CREDENTIALS = "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE)"
RUN_FILE = "remote.json"


class RemoteError(RuntimeError):
    """The remote refused or was unreachable: one line naming it and what to check, exit status 1."""


@dataclass(frozen=True)
class Remote:
    url: str  # s3://bucket/prefix, or a folder
    endpoint: str | None = None  # an S3-compatible server other than AWS: http://host:port

    @property
    def shown(self) -> str:
        return self.url + (f" at {self.endpoint}" if self.endpoint else "")


# ---------------------------------------------------------------- configuration


def _read_config(root: Path):
    from configobj import ConfigObj

    return ConfigObj(str(root / CONFIG_LOCAL))


def configured(root: Path) -> Remote | None:
    """The remote ``.dvc/config.local`` names (after an earlier push or pull), if any."""
    section = _read_config(root).get(f'remote "{NAME}"')
    return Remote(section["url"], section.get("endpointurl")) if section and section.get("url") else None


def resolve(root: Path, url: str | None, endpoint: str | None = None) -> Remote:
    """REMOTE (and REMOTE_ENDPOINT) when given, else the remote configured here before."""
    if url:
        return Remote(url, endpoint or None)
    remote = configured(root)
    if remote is None:
        raise ConfigError(
            "REMOTE: no DVC remote given or configured: make push/pull REMOTE=s3://bucket/path "
            "(REMOTE_ENDPOINT=http://host:port for an S3-compatible server) or REMOTE=/a/shared/folder"
        )
    return Remote(remote.url, endpoint or remote.endpoint)


def configure(root: Path, remote: Remote, cache: Path | None = None) -> bytes | None:
    """Write the remote (and optionally the cache folder) into ``.dvc/config.local``, keeping its other
    settings; returns what the file held before (None: no file), for ``restore_config``."""
    path = root / CONFIG_LOCAL
    before = path.read_bytes() if path.exists() else None
    config = _read_config(root)
    config.setdefault("core", {})["remote"] = NAME
    section = {"url": remote.url}
    if remote.endpoint:
        section["endpointurl"] = remote.endpoint
    config[f'remote "{NAME}"'] = section  # replaced whole: a changed REMOTE drops the old endpoint
    if cache is not None:
        config.setdefault("cache", {})["dir"] = str(cache)
    config.write()
    return before


def restore_config(root: Path, before: bytes | None) -> None:
    path = root / CONFIG_LOCAL
    if before is None:
        path.unlink(missing_ok=True)
    else:
        path.write_bytes(before)


def config_text(remote: Remote) -> str:
    """The ``.dvc/config.local`` lines that name the remote, for a clone written by a shell script."""
    lines = [f"['remote \"{NAME}\"']", f"    url = {remote.url}"]
    if remote.endpoint:
        lines.append(f"    endpointurl = {remote.endpoint}")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- faults in one line

UNREACHABLE = re.compile(
    r"Could not connect to the endpoint|Connection refused|Connect timeout|Name or service not known|"
    r"Temporary failure in name resolution|ConnectTimeout|EndpointConnectionError"
)
REFUSED = re.compile(
    r"InvalidAccessKeyId|SignatureDoesNotMatch|AccessDenied|Forbidden|\(403\)|Unable to locate credentials|"
    r"NoCredentialsError|InvalidToken|ExpiredToken|PermissionError"
)
NO_BUCKET = re.compile(r"NoSuchBucket|bucket does not exist")
MISSING = re.compile(r"Missing cache files:\n((?:md5: \S+\n?)+)")  # not even listed on the remote
GONE = re.compile(r"failed to transfer '(\w+)' - .*(?:NoSuchKey|does not exist|No such file)")  # listed, not there


def explain(remote: Remote, output: str, root: Path | None = None) -> str:
    """DVC's error output as one line: the remote, what went wrong, what to check."""
    if UNREACHABLE.search(output):
        return f"remote {remote.shown}: cannot connect: check REMOTE_ENDPOINT (or the URL) and that the server is up"
    if NO_BUCKET.search(output):
        return f"remote {remote.shown}: no such bucket: check the bucket in REMOTE"
    if REFUSED.search(output):
        return f"remote {remote.shown}: access refused: check {CREDENTIALS} in the environment"
    missing = missing_objects(output)
    if missing:
        return missing_message(remote, missing, root)
    lines = [line.removeprefix("ERROR: ").strip() for line in output.splitlines() if line.startswith("ERROR")]
    return f"remote {remote.shown}: {(lines or output.strip().splitlines() or ['dvc failed'])[-1]}"


def missing_objects(output: str) -> list[str]:
    """The md5 hashes DVC found neither in the cache nor on the remote."""
    listed = {h for block in MISSING.findall(output) for h in re.findall(r"md5: (\S+)", block)}
    return sorted(listed | set(GONE.findall(output)))


def only_missing(output: str) -> bool:
    """Whether every fault in DVC's output is an object the remote lacks (not a connection or a key)."""
    faults = (UNREACHABLE, REFUSED, NO_BUCKET)
    errors = [line for line in output.splitlines() if line.startswith("ERROR") and not GONE.search(line)]
    return (
        bool(missing_objects(output))
        and not any(f.search(output) for f in faults)
        and all("failed to fetch data from the cloud" in line for line in errors)
    )


def missing_message(remote: Remote, hashes: list[str], root: Path | None) -> str:
    where = owners(root, hashes) if root else []
    example = f" ({', '.join(where[:3])}{' ...' if len(where) > 3 else ''})" if where else ""
    return (
        f"remote {remote.shown}: {len(hashes)} object(s) missing{example}: push them from a workspace that has "
        "them (make push), or check that REMOTE is where they were pushed"
    )


def owners(root: Path, hashes: list[str]) -> list[str]:
    """The outputs the missing objects belong to, from the lock files: a file output by its hash, a directory
    output by the files its listing names, or whole when its listing never arrived (DVC keeps a directory's
    listing only once every file in it did)."""
    wanted, found = set(hashes), []
    cache = workspace.cache_dir(root) / "files" / "md5"
    for path, md5 in locked_outputs(root):
        listing = cache / md5[:2] / md5[2:]
        if md5 in wanted:
            found.append(path)
        elif md5.endswith(".dir") and listing.is_file():
            found += [f"{path}/{e['relpath']}" for e in json.loads(listing.read_text()) if e.get("md5") in wanted]
        elif md5.endswith(".dir"):
            found.append(path)
    return found


def locked_outputs(root: Path) -> list[tuple[str, str]]:
    """(path, md5) of every output that goes to the DVC cache, as the lock files name them."""
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        return [
            (os.path.relpath(out.fs_path, root), out.hash_info.value)
            for out in repo.index.outs
            if out.use_cache and out.hash_info and out.hash_info.value
        ]


def preflight(root: Path, remote: Remote) -> None:
    """One request before DVC's many: an unreachable server or a refused key fails in seconds, not after DVC
    retried every object."""
    from dvc.repo import Repo

    try:
        with Repo(str(root)) as repo:
            odb = repo.cloud.get_remote_odb(NAME)
            odb.fs.exists(odb.path)
    except Exception as exc:  # botocore's and s3fs's own errors, whatever their type
        raise RemoteError(explain(remote, f"ERROR: {type(exc).__name__}: {exc}")) from None


# ---------------------------------------------------------------- push and pull


def dvc(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*workspace.dvc_command(), *args], cwd=root, capture_output=True, text=True)


def failure(remote: Remote, result: subprocess.CompletedProcess, root: Path, verb: str) -> str:
    """One line for a failed dvc push or fetch; a killed one is completed by running it again."""
    if result.returncode < 0:
        return (
            f"remote {remote.shown}: dvc was stopped by signal {-result.returncode} during the {verb}: "
            f"run make {verb} again to complete it (what arrived is kept and not sent again)"
        )
    return explain(remote, result.stdout + result.stderr, root)


def summary(output: str) -> str:
    """DVC's count lines ("3 files pushed", "Everything is up to date."), joined."""
    lines = [
        line.strip() for line in output.splitlines() if re.match(r"\s*(\d+ files? \w+|Everything is up to date)", line)
    ]
    return "; ".join(lines) or "nothing to transfer"


@contextmanager
def _configured(root: Path, remote: Remote, keep_on_failure: bool = False) -> Iterator[None]:
    """The remote in .dvc/config.local, and the file as it was again when what follows fails."""
    before = configure(root, remote)
    try:
        yield
    except BaseException:
        if not keep_on_failure:
            restore_config(root, before)
        raise


def push(root: Path, remote: Remote, jobs: int | None = None, say: Callable[[str], None] = print) -> None:
    """Every output of every dvc.yaml, and the run-cache, to the remote. A push killed midway is completed by
    running it again: objects already there are skipped, and the rest is uploaded."""
    with _configured(root, remote):
        preflight(root, remote)
        result = dvc(root, "push", "--run-cache", *(["--jobs", str(jobs)] if jobs else []))
        if result.returncode:
            raise RemoteError(failure(remote, result, root, "push"))
    say(f"pushed to {remote.shown}: {summary(result.stdout)}")


def pull(
    root: Path,
    remote: Remote,
    allow_missing: bool = False,
    say: Callable[[str], None] = print,
    keep_config_on_failure: bool = False,
) -> None:
    """Fetch every output the lock files name, and the run-cache, into the cache; only then check them out.
    With ``allow_missing`` (a branch whose new cells were never pushed), what the remote lacks is left for
    `dvc repro` to run."""
    with _configured(root, remote, keep_config_on_failure):
        preflight(root, remote)
        fetched = dvc(root, "fetch", "--run-cache")
        output = fetched.stdout + fetched.stderr
        missing = missing_objects(output)
        tolerated = allow_missing and (not fetched.returncode or only_missing(output))
        if (fetched.returncode or missing) and not tolerated:
            raise RemoteError(failure(remote, fetched, root, "pull"))
        checkout = dvc(root, "checkout", *(["--allow-missing"] if allow_missing else []))
        if checkout.returncode:
            raise RemoteError(explain(remote, checkout.stdout + checkout.stderr, root))
    changed = sum(1 for line in checkout.stdout.splitlines() if re.match(r"[AMD]\s", line))
    skipped = f", {len(missing)} missing object(s) left to dvc repro" if missing else ""
    say(f"pulled from {remote.shown}: {summary(output)}; {changed} output(s) checked out{skipped}")


# ---------------------------------------------------------------- preset runs


@dataclass(frozen=True)
class Run:
    """A committed run's ``remote.json``: the commit whose lock files name its outputs, where they were pushed,
    and optionally a branch or tag that holds the commit."""

    name: str
    commit: str
    remote: Remote
    ref: str | None = None


def read_run(folder: Path) -> Run:
    path = folder / RUN_FILE
    if not path.is_file():
        raise ConfigError(f"RUN: no {path} (a preset run names its commit and remote there)")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ConfigError(f"RUN: {path} is not JSON: {exc}") from None
    if not isinstance(data, dict) or not re.fullmatch(r"[0-9a-f]{7,40}", str(data.get("commit", ""))):
        raise ConfigError(f"RUN: {path}: 'commit' must be a git commit hash (7 to 40 hex digits)")
    if not isinstance(data.get("remote"), str) or not data["remote"]:
        raise ConfigError(f"RUN: {path}: 'remote' must name where the run was pushed (s3://bucket/path or a folder)")
    return Run(folder.name, data["commit"], Remote(data["remote"], data.get("endpoint")), data.get("ref"))


def run_commit(root: Path, run: Run) -> str:
    """The run's full commit hash, fetched from origin (its ``ref``) when this clone lacks it."""
    for attempt in range(2):
        found = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--verify", "-q", f"{run.commit}^{{commit}}"],
            capture_output=True,
            text=True,
        )
        if found.returncode == 0:
            return found.stdout.strip()
        if attempt == 0 and run.ref:
            subprocess.run(["git", "-C", str(root), "fetch", "-q", "origin", run.ref], capture_output=True)
    raise ConfigError(
        f"RUN: commit {run.commit} of {run.name} is not in this clone: git fetch origin "
        f"{run.ref or '<the branch or tag that holds it>'}"
    )


def pull_run(
    root: Path,
    folder: Path,
    into: Path | None = None,
    url: str | None = None,
    endpoint: str | None = None,
    say: Callable[[str], None] = print,
) -> Path:
    """Restore a preset run's full outputs: in place when HEAD is its commit (and no ``into``), otherwise in a
    git worktree of its commit at ``into`` (default: beside this repository) sharing this DVC cache."""
    run = read_run(folder)
    remote = Remote(url or run.remote.url, endpoint or run.remote.endpoint)
    commit = run_commit(root, run)
    if into is None and workspace.head(root) == commit:
        pull(root, remote, say=say)
        return root
    target = (into or root.parent / f"{root.name}-{run.name}").resolve()
    created = not target.exists()
    if not created and _head_or_none(target) != commit:
        raise ConfigError(f"INTO: {target} exists and is not a checkout of {commit[:10]}: choose another INTO")
    if created:
        workspace.git(root, "worktree", "add", "-q", "--detach", str(target), commit)
    try:
        configure(target, remote, cache=workspace.cache_dir(root))
        pull(target, remote, say=say, keep_config_on_failure=not created)
    except BaseException:
        if created:
            workspace.git(root, "worktree", "remove", "--force", str(target))
        raise
    say(f"{run.name}: commit {commit[:10]} with its outputs in {target}")
    return target


def _head_or_none(path: Path) -> str | None:
    try:
        return workspace.head(path)
    except ConfigError:
        return None
