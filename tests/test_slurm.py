"""SLURM: layers from the stage graph, option checks, and the grid end to end on a real one-node SLURM.

The cluster tests install Debian's slurmctld, slurmd, slurm-client and munge when they are missing
(root and apt-get, as `make test` installs a Debian package), start munged, slurmctld and slurmd from a
configuration in a temp folder (own ports, own munge socket and key: nothing of the machine's is used),
and stop them by pid afterwards, even when a test fails; then they check that none of those processes,
nor anything a job started, is left. Without root or apt-get (and no SLURM installed) they are skipped.
They are marked ``cluster`` and run by `make test-slurm` (which .ci/run runs after `make test`): about 9
minutes on 2 cores, most of it the stages' own work. Every test makes its own copy of the repository and its own
cache, so any of them runs alone
(`pytest tests/test_slurm.py -k resubmit`); the serial reference run and the one submitted run they
share are module fixtures, computed by whichever test needs them first.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
import yaml

from backdoor.pipeline.slurm import COMMENT, Layer, job_script, sbatch_command
from backdoor.pipeline.slurm_options import Options, check_options
from backdoor.pipeline.stage_depth import PlannedStage, cell_of, layered

from .repos import BIN, ENV, ROOT, executed, make_copy, sh

TOOL = "tools/slurm_grid.py"
TARGET = "report"  # the grid and its report (the focus experiment would double the test's time)
PACKAGES = ("slurmctld", "slurmd", "slurm-client", "munge")
DAEMONS = ("slurmctld", "slurmd", "slurmstepd", "munged")


# --- layers: pure functions on a made-up stage graph -------------------------------------------------


def stages(**upstream) -> dict[str, PlannedStage]:
    """name=(upstream names, run-cacheable) in the order given."""
    return {name: PlannedStage(name, frozenset(ups), cacheable) for name, (ups, cacheable) in upstream.items()}


def test_layers_are_dependency_depth_among_stale_stages_not_names():
    graph = stages(
        code=((), True),
        raw=(("code",), True),
        poisoned=(("code", "raw"), True),
        baseline=(("raw",), True),
        model=(("poisoned",), True),
        zz_detector=(("model",), True),  # a new kind of stage: placed by its dependencies
        finetune=(("model", "baseline"), True),
        report=(("finetune",), False),
        after_report=(("report",), True),
    )
    layers, deferred = layered(graph)
    assert layers == [["code"], ["raw"], ["baseline", "poisoned"], ["model"], ["finetune", "zz_detector"]]
    assert deferred == ["report", "after_report"]  # not run-cacheable, and what depends on it


def test_only_stale_upstream_stages_count_and_excluded_ones_keep_their_place():
    graph = stages(model=((), True), finetune=(("model", "fresh-baseline"), True), other=((), True))
    assert layered(graph)[0] == [["model", "other"], ["finetune"]]
    # "model" is already running in a job: left out, and "finetune" still comes after it
    assert layered(graph, exclude={"model"})[0] == [["other"], ["finetune"]]
    assert layered(graph, exclude={"model", "other"})[0] == [["finetune"]]


def test_a_stage_command_names_its_cell():
    cmd = (
        "python stages/train.py --params grid/settings.json --cell dataset=fashion-mnist 'seed=0' --raw data/x --out y"
    )
    assert cell_of(cmd) == "dataset=fashion-mnist seed=0"
    assert cell_of("python stages/report.py --out reports") == ""


# --- options: one line naming the option, exit status 2, before anything else -------------------------


def tool(cwd: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / TOOL), *args], cwd=cwd, env=env or ENV, capture_output=True, text=True
    )


@pytest.mark.parametrize(
    "args, message",
    [
        (["--max-jobs", "0"], "error: --max-jobs (MAX_JOBS): must be a positive integer, got '0'"),
        (["--max-jobs", "many"], "error: --max-jobs (MAX_JOBS): must be a positive integer, got 'many'"),
        (["--gpus-per-job", "-1"], "error: --gpus-per-job (GPUS_PER_JOB): must be a non-negative integer, got '-1'"),
        (["--time", "soon"], "error: --time (TIME): 'soon' is not a SLURM time limit"),
        (["--partition", "gpu;rm"], "error: --partition (PARTITION): not a valid name: 'gpu;rm'"),
        (["--sbatch-args=--array=0-3"], "error: --sbatch-args (SBATCH_ARGS): --array is set by the submission itself"),
        (["--sbatch-args=--mem='4G"], "error: --sbatch-args (SBATCH_ARGS): cannot be split like a shell would"),
        (["--cache", "/proc/version"], "error: --cache (CACHE): /proc/version is not a directory"),
        (["--venv", "/nonexistent"], "error: --venv: no executable python in /nonexistent"),
    ],
)
def test_bad_options_fail_in_one_line_before_anything(args, message):
    result = tool(ROOT, "submit", *args)
    assert result.returncode == 2, result
    assert result.stderr.strip().startswith(message), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not result.stdout


def test_without_sbatch_submission_says_so(tmp_path):
    bare = tmp_path / "bin"  # git and this interpreter, no SLURM client
    bare.mkdir()
    (bare / "git").symlink_to(shutil.which("git"))
    result = tool(ROOT, "submit", env={**ENV, "PATH": f"{BIN}{os.pathsep}{bare}"})
    assert result.returncode == 2 and result.stderr.startswith("error: sbatch: not found on PATH"), result.stderr


def test_sbatch_commands_chain_the_layers_with_the_users_options(tmp_path):
    checked = check_options(
        Options(
            partition="gpu",
            account="lab",
            time="4:00:00",
            gpus_per_job=1,
            max_jobs=8,
            sbatch_args="--mem=16G --qos=long",
        ),
        tmp_path,
    )
    layer = Layer(
        2,
        ["grid/shard-01/dvc.yaml:train-a", "grid/shard-02/dvc.yaml:train-b"],
        tmp_path / "layer-2.stages",
        after=["41"],
    )
    cmd = sbatch_command(layer, checked, tmp_path / "job.sh", "40")
    assert cmd[:2] == ["sbatch", "--parsable"] and "--array=0-1%8" in cmd
    assert "--dependency=afterok:40:41" in cmd and "--kill-on-invalid-dep=yes" in cmd
    assert f"--comment={COMMENT}{tmp_path / 'layer-2.stages'}" in cmd
    assert cmd[-6:] == [
        "--gres=gpu:1",
        "--mem=16G",
        "--qos=long",
        str(tmp_path / "job.sh"),
        str(tmp_path / "layer-2.stages"),
        str(tmp_path / "layer-2"),
    ]
    assert {"--partition=gpu", "--account=lab", "--time=4:00:00"} <= set(cmd)


def test_job_script_uses_a_clone_of_the_commit_and_the_shared_cache(tmp_path):
    script = job_script(
        Path("/home/me/backdoor"), "a" * 40, Path("/shared/cache"), Path("/home/me/backdoor/.venv/bin"), "symlink", None
    )
    assert 'git clone -q --shared --no-checkout "$REPO" "$WORK/repo"' in script
    assert 'dir = "/shared/cache"' in script and "type = symlink" in script and "shared = group" in script
    assert 'dvc repro "$STAGE"' in script and "trap finish EXIT" in script
    assert subprocess.run(["bash", "-n"], input=script, text=True).returncode == 0


def test_make_targets_call_the_tool_with_the_users_variables():
    out = subprocess.run(
        [
            "make",
            "-n",
            "slurm",
            "collect",
            "PARTITION=gpu",
            "GPUS_PER_JOB=1",
            "MAX_JOBS=32",
            "CACHE=/shared/dvc-cache",
            "ACCOUNT=lab",
            "TIME=4:00:00",
            "SBATCH_ARGS=--mem=16G",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    out = re.sub(r"\\\n\s*", " ", out)  # the recipe's continuation lines
    submit = next(line for line in out.splitlines() if f"{TOOL} submit" in line)
    assert submit.split() == [
        "python",
        TOOL,
        "submit",
        "--partition",
        "'gpu'",
        "--account",
        "'lab'",
        "--time",
        "'4:00:00'",
        "--gpus-per-job",
        "'1'",
        "--max-jobs",
        "'32'",
        "--cache",
        "'/shared/dvc-cache'",
        "--sbatch-args='--mem=16G'",
    ]
    collect = next(line for line in out.splitlines() if f"{TOOL} collect" in line)
    assert collect.split() == ["python", TOOL, "collect", "--cache", "'/shared/dvc-cache'"]


# --- repository copies ----------------------------------------------------------------------------------


def test_dry_run_prints_the_commands_and_submits_nothing(tmp_path):
    repo = make_copy(tmp_path / "repo")
    bare = tmp_path / "bin"  # no SLURM client: a dry run still plans and prints
    bare.mkdir()
    (bare / "git").symlink_to(shutil.which("git"))
    out = sh(
        repo,
        "python",
        str(ROOT / TOOL),
        "submit",
        "--dry-run",
        "--max-jobs",
        "4",
        "--cache",
        str(tmp_path / "cache"),
        env={**ENV, "PATH": f"{BIN}{os.pathsep}{bare}"},
    )
    # the whole project, as a bare `dvc repro`: the grid in jobs; the params check (committed to git, so not
    # run-cacheable), the focus experiment behind it and the report at collect
    assert re.search(r"^7 stages to run at commit \w+ in 5 job arrays", out, re.M), out
    assert "JOB_0=$(sbatch --parsable --job-name=L0-code" in out and "--dependency=afterok:$JOB_3 " in out
    assert out.rstrip().endswith(
        "collecting (`dvc repro`) then runs here what cannot be run-cached: check, download, poison and 5 more"
    ), out
    assert not (repo / "logs").exists() and not (tmp_path / "cache").exists()


def test_uncommitted_changes_and_a_stale_grid_are_refused(tmp_path):
    repo = make_copy(tmp_path / "repo")
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["grid"]["seed"] = [0, 1]
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    bare = tmp_path / "bin"  # no SLURM client needed to refuse
    bare.mkdir()
    (bare / "git").symlink_to(shutil.which("git"))
    env = {**ENV, "PATH": f"{BIN}{os.pathsep}{bare}"}
    result = tool(repo, "submit", "--dry-run", env=env)
    assert result.returncode == 2 and result.stderr.startswith("error: uncommitted changes (params.yaml): "), (
        result.stderr
    )
    sh(repo, "git", "commit", "-qam", "a seed more, not re-planned")
    result = tool(repo, "submit", "--dry-run", env=env)
    assert result.returncode == 2 and result.stderr.startswith("error: grid/ is out of date with params.yaml ("), (
        result.stderr
    )
    assert "run `make grid`" in result.stderr and len(result.stderr.strip().splitlines()) == 1


# --- a real one-node SLURM -----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def install_slurm() -> None:
    """Debian's packages, without letting their scripts start system services (no systemd here anyway)."""
    if all(shutil.which(tool) for tool in ("slurmctld", "slurmd", "sbatch", "munged")):
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        pytest.skip(
            "SLURM is not installed and cannot be: installing slurmctld, slurmd, slurm-client and munge "
            "needs root and apt-get"
        )
    policy = Path("/usr/sbin/policy-rc.d")
    added = not policy.exists()
    if added:
        policy.write_text("#!/bin/sh\nexit 101\n")  # what Debian's Docker images do: no service starts
        policy.chmod(0o755)
    try:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *PACKAGES]
        result = subprocess.run(install, env=env, capture_output=True, text=True)
        if result.returncode:
            subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True)
            result = subprocess.run(install, env=env, capture_output=True, text=True)
        if result.returncode:
            pytest.skip(f"cannot install {' '.join(PACKAGES)}: {result.stderr.strip().splitlines()[-1:]}")
    finally:
        if added:
            policy.unlink()


@dataclass
class Cluster:
    folder: Path
    env: dict
    procs: dict

    def run(self, *cmd: str) -> str:
        return sh(self.folder, *cmd, env=self.env)

    def jobs(self) -> list[str]:
        return self.run("squeue", "-h", "-o", "%i").split()

    def wait_empty(self, timeout: float = 900) -> None:
        deadline = time.monotonic() + timeout
        while self.jobs():
            assert time.monotonic() < deadline, f"jobs still queued after {timeout} s: {self.run('squeue')}"
            time.sleep(1)

    def ended(self, workdir: Path) -> Counter:
        """End states of the jobs submitted from ``workdir``, from SLURM's job completion log (what sacct
        shows on a cluster with accounting)."""
        log = self.folder / "jobcomp.log"
        lines = log.read_text().splitlines() if log.exists() else []
        return Counter(re.search(r"JobState=(\w+)", line).group(1) for line in lines if f" WorkDir={workdir} " in line)


def training(cluster: Cluster, out_dir: str) -> bool:
    """Whether a job of this cluster is running the training that writes ``out_dir``."""
    for pid in our_processes(f"SLURM_CONF={cluster.env['SLURM_CONF']}"):
        try:
            args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"stages/train.py" in args and out_dir.encode() in args:
            return True
    return False


def our_processes(marker: str) -> list[int]:
    """Processes started for this cluster: the daemons and whatever jobs started carry SLURM_CONF=<ours>."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if marker.encode() in environ and state != "Z":
            pids.append(int(entry.name))
    return pids


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    install_slurm()
    if os.geteuid() != 0:
        pytest.skip("slurmd runs jobs as their user: it needs root")
    folder = tmp_path_factory.mktemp("slurm")
    folder.chmod(0o755)
    for sub in ("state", "spool", "log"):
        (folder / sub).mkdir()
    host = socket.gethostname().split(".")[0]
    conf = folder / "slurm.conf"
    conf.write_text(f"""ClusterName=test
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={free_port()}
SlurmdPort={free_port()}
SlurmUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={folder}/munge.socket
StateSaveLocation={folder}/state
SlurmdSpoolDir={folder}/spool
SlurmctldPidFile={folder}/slurmctld.pid
SlurmdPidFile={folder}/slurmd.pid
SlurmctldLogFile={folder}/log/slurmctld.log
SlurmdLogFile={folder}/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc={folder}/jobcomp.log
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SlurmdParameters=config_overrides
ReturnToService=2
MailProg=/bin/true
KillWait=30
MinJobAge=600
NodeName={host} NodeAddr=127.0.0.1 CPUs={max(2, os.cpu_count() or 2)} RealMemory=2000 State=UNKNOWN
PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP
""")
    v2 = Path("/sys/fs/cgroup/cgroup.controllers").exists()  # cgroup v2 only; else v1 or hybrid
    (folder / "cgroup.conf").write_text(
        "CgroupPlugin=cgroup/v2\nIgnoreSystemd=yes\n" if v2 else "CgroupPlugin=autodetect\n"
    )
    key = folder / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o400)
    env = {**ENV, "SLURM_CONF": str(conf)}
    procs: dict[str, subprocess.Popen] = {}
    cluster = Cluster(folder, env, procs)

    def start(name: str, *cmd: str) -> None:
        with open(folder / "log" / f"{name}.out", "w") as out:
            procs[name] = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)

    def logs() -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text()[-2000:]}" for p in sorted((folder / "log").iterdir()))

    try:
        start(
            "munged",
            "munged",
            "--foreground",
            "--force",
            f"--socket={folder}/munge.socket",
            f"--key-file={key}",
            f"--pid-file={folder}/munged.pid",
            f"--log-file={folder}/log/munged.log",
            f"--seed-file={folder}/munged.seed",
        )
        wait_for(lambda: (folder / "munge.socket").exists(), 20, "munged socket", logs)
        start("slurmctld", "slurmctld", "-D", "-f", str(conf))
        wait_for(
            lambda: subprocess.run(["scontrol", "ping"], env=env, capture_output=True).returncode == 0,
            30,
            "slurmctld",
            logs,
        )
        start("slurmd", "slurmd", "-D", "-f", str(conf), "-N", host)
        wait_for(lambda: cluster.run("sinfo", "-h", "-o", "%T").strip() == "idle", 60, "an idle node", logs)
        yield cluster
    finally:
        stop(cluster)


def wait_for(ready, timeout: float, what: str, logs) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            raise AssertionError(f"SLURM test cluster: no {what} after {timeout} s\n{logs()}")
        time.sleep(0.5)


def stop(cluster: Cluster) -> None:
    """Cancel every job, shut the daemons down, kill by pid whatever is left; then check nothing is."""
    env, procs = cluster.env, cluster.procs
    if "slurmctld" in procs and procs["slurmctld"].poll() is None:
        subprocess.run(["scancel", "--user", str(os.getuid())], env=env, capture_output=True)
        deadline = time.monotonic() + 30
        while (
            time.monotonic() < deadline
            and subprocess.run(["squeue", "-h"], env=env, capture_output=True, text=True).stdout.strip()
        ):
            time.sleep(0.5)
        subprocess.run(["scontrol", "shutdown"], env=env, capture_output=True)
    for name in ("slurmd", "slurmctld", "munged"):
        proc = procs.get(name)
        if proc is None:
            continue
        try:
            proc.wait(timeout=20 if name != "munged" else 0.1)
        except subprocess.TimeoutExpired:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    marker = f"SLURM_CONF={env['SLURM_CONF']}"
    for pid in our_processes(marker):  # slurmstepd and job processes of a cluster that died mid-job
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    time.sleep(0.5)
    left = our_processes(marker)
    assert not left, f"processes of the test cluster left behind: {left}"


@pytest.fixture(scope="module")
def serial(tmp_path_factory) -> dict:
    """The reference: a serial `dvc repro` of the tiny grid, timed."""
    repo = make_copy(tmp_path_factory.mktemp("serial"))
    start = time.monotonic()
    out = sh(repo, "dvc", "repro", TARGET)
    return {
        "repo": repo,
        "seconds": time.monotonic() - start,
        "ran": executed(out),
        "summary": pd.read_csv(repo / "reports" / "grid" / "summary.csv"),
    }


def submit(cluster: Cluster, repo: Path, cache: Path) -> str:
    """The submission as a user types it, with the clones in a folder of the test's own (checked empty later)."""
    scratch(repo).mkdir(exist_ok=True)
    return sh(
        repo,
        "python",
        TOOL,
        "submit",
        "--max-jobs",
        "2",
        "--cache",
        str(cache),
        "--scratch",
        str(scratch(repo)),
        TARGET,
        env=cluster.env,
    )


def address(stage: str) -> str:
    """A stage as the submission names it: DVC prints a root dvc.yaml stage without its file."""
    return stage if ":" in stage else f"dvc.yaml:{stage}"


def scratch(repo: Path) -> Path:
    return repo.parent / "scratch"


def collect(cluster: Cluster, repo: Path) -> str:
    return sh(repo, "python", TOOL, "collect", TARGET, env=cluster.env)


def job_logs(repo: Path) -> dict[Path, str]:
    return {p: p.read_text() for p in sorted((repo / "logs" / "slurm").glob("*/layer-*.log"))}


def submissions(repo: Path) -> list[dict]:
    return [yaml.safe_load(p.read_text()) for p in sorted((repo / "logs" / "slurm").glob("*/submitted.json"))]


@pytest.fixture(scope="module")
def submitted(cluster, tmp_path_factory) -> dict:
    """The tiny grid submitted once (and at once a second time), run to the end: timed."""
    base = tmp_path_factory.mktemp("submitted")
    repo, cache = make_copy(base / "repo"), base / "cache"
    start = time.monotonic()
    first = submit(cluster, repo, cache)
    submitted = time.monotonic()
    again = submit(cluster, repo, cache)  # while the first submission's jobs are queued or running
    cluster.wait_empty()
    end = time.monotonic()
    return {
        "repo": repo,
        "cache": cache,
        "first": first,
        "again": again,
        "submit": submitted - start,
        "jobs": end - submitted,
    }


@pytest.mark.slow
@pytest.mark.cluster
def test_unknown_partition_is_refused_before_anything_is_submitted(cluster, tmp_path):
    result = tool(ROOT, "submit", "--partition", "gpu", env=cluster.env)
    assert result.returncode == 2, result
    assert (
        result.stderr.strip()
        == "error: --partition (PARTITION): no partition 'gpu' on this cluster (sinfo lists: debug)"
    )
    assert cluster.jobs() == []
    result = tool(ROOT, "submit", "--gpus-per-job", "1", env=cluster.env)  # this cluster has no GPUs
    assert result.returncode == 2 and result.stderr.startswith(
        "error: sbatch options --gres=gpu:1: sbatch --test-only refuses them: "
    ), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and cluster.jobs() == []


@pytest.mark.slow
@pytest.mark.cluster
def test_grid_through_slurm_matches_a_serial_repro(cluster, serial, submitted, capsys):
    repo = submitted["repo"]
    [plan] = submissions(repo)
    stages = [s for layer in plan["layers"] for s in layer]
    assert [len(layer) for layer in plan["layers"]] == [
        1,
        1,
        3,
        1,
        1,
    ]  # code, dataset, poisoned+baseline, model, fine-tune
    # the params check and the report cannot be run-cached (their outputs are kept in git): collect runs them
    assert sorted(stages) == sorted(address(s) for s in serial["ran"] if s not in ("check", "report"))
    assert sorted(plan["deferred"]) == ["dvc.yaml:check", "dvc.yaml:report"]
    # each stage ran once, in the SLURM job that was submitted for it, and every job completed
    logs = job_logs(repo)
    ran = Counter(address(s) for text in logs.values() for s in executed(text))
    assert ran == Counter(stages), ran
    for path, text in logs.items():
        [stage] = map(address, executed(text))
        assert f"backdoor-slurm: stage {stage}" in text and f"log: {path}" in text and "backdoor-slurm: done" in text
    assert cluster.ended(repo) == Counter({"COMPLETED": len(stages)})
    # collecting restores every cell from the run-cache and runs only the report (not run-cacheable)
    start = time.monotonic()
    out = collect(cluster, repo)
    collected = time.monotonic() - start
    assert executed(out) == ["check", "report"], out
    assert out.count("is cached - skipping run") == len(stages)
    assert pd.read_csv(repo / "reports" / "grid" / "summary.csv").equals(serial["summary"])
    assert "Data and pipelines are up to date." in sh(repo, "dvc", "status", TARGET)
    assert not list(scratch(repo).iterdir())  # every job removed its clone
    total = submitted["submit"] + submitted["jobs"] + collected
    with capsys.disabled():
        print(
            f"\n[slurm timing] tiny grid, {len(stages)} stages + report, one run: serial `dvc repro {TARGET}` "
            f"{serial['seconds']:.0f} s; through SLURM ({os.cpu_count()} CPUs, --max-jobs 2): submit "
            f"{submitted['submit']:.0f} s + jobs {submitted['jobs']:.0f} s + collect {collected:.0f} s = {total:.0f} s"
        )


@pytest.mark.slow
@pytest.mark.cluster
def test_submitting_twice_submits_nothing_the_second_time(cluster, submitted):
    # (the first jobs may have finished by then: those stages are in the run-cache)
    again = re.search(
        r"^nothing to submit at \w+: (\d+) stale stages? already queued or running in SLURM jobs "
        r"\(squeue --me\); (\d+) stages? in the run-cache",
        submitted["again"],
        re.M,
    )
    assert again and int(again[1]) >= 1 and int(again[1]) + int(again[2]) == 7, submitted["again"]
    assert len(submissions(submitted["repo"])) == 1
    # and once they have run: everything is in the run-cache
    out = submit(cluster, submitted["repo"], submitted["cache"])
    assert re.search(r"^nothing to submit at \w+: 7 stages in the run-cache", out, re.M), out
    assert len(submissions(submitted["repo"])) == 1 and cluster.jobs() == []


@pytest.mark.slow
@pytest.mark.cluster
def test_resubmit_after_a_cancelled_training_runs_only_what_is_missing(cluster, serial, tmp_path):
    repo, cache = make_copy(tmp_path / "repo"), tmp_path / "cache"
    submit(cluster, repo, cache)
    [plan] = submissions(repo)
    victim = next(s for layer in plan["layers"] for s in layer if re.search(r":train-.*_r0\.1_", s))
    index = next(i for i, layer in enumerate(plan["layers"]) if victim in layer)
    task = f"{plan['jobs'][index]}_{plan['layers'][index].index(victim)}"
    out_dir = f"models/grid/train/{victim.split(':train-')[1]}"
    deadline = time.monotonic() + 600
    while not training(cluster, out_dir):  # the stage's command, in its job
        assert time.monotonic() < deadline, "the training never started"
        time.sleep(0.2)
    cluster.run("scancel", task)
    cluster.wait_empty()
    [log] = (repo / "logs" / "slurm").glob(f"*/layer-{index}-{task}.log")
    text = log.read_text()
    assert "stopped by a signal" in text and f"FAILED (exit status 143): stage {victim}, cell " in text
    assert f"; log: {log}" in text and "backdoor-slurm: done" not in text
    assert not list(scratch(repo).iterdir())  # the cancelled job removed its clone too
    assert cluster.ended(repo)["CANCELLED"] == 2  # the training, and the fine-tuning waiting for it

    # collecting now would run the missing stages here: it refuses, in one line, and runs nothing
    result = subprocess.run(
        ["python", TOOL, "collect", TARGET], cwd=repo, env=cluster.env, capture_output=True, text=True
    )
    assert result.returncode == 1 and result.stderr.startswith("error: 2 stages not in the run-cache yet (train-"), (
        result
    )
    assert len(result.stderr.strip().splitlines()) == 1 and not executed(result.stdout + result.stderr)

    out = submit(cluster, repo, cache)
    first, second = submissions(repo)
    assert second["layers"] == [[victim], first["layers"][-1]], out  # only what is not in the run-cache
    cluster.wait_empty()
    ran = Counter(s for text in job_logs(repo).values() for s in executed(text))
    assert ran[victim] == 2 and all(n == 1 for s, n in ran.items() if s != victim), ran
    out = collect(cluster, repo)
    assert executed(out) == ["check", "report"], out
    assert pd.read_csv(repo / "reports" / "grid" / "summary.csv").equals(serial["summary"])
    assert "Data and pipelines are up to date." in sh(repo, "dvc", "status", TARGET)
