"""Run the pipeline's stale stages on a SLURM cluster, one job array per layer; collect with `dvc repro`.

    python tools/slurm_grid.py submit --partition gpu --gpus-per-job 1 --max-jobs 32 --cache /shared/dvc-cache
    squeue --me
    python tools/slurm_grid.py collect

(`make slurm PARTITION=gpu GPUS_PER_JOB=1 MAX_JOBS=32 CACHE=/shared/dvc-cache` and `make collect` call
these.) Without a shared file system: `--remote s3://bucket/path` (make slurm/collect REMOTE=...) instead of
--cache. The logic lives in backdoor.pipeline.slurm; docs/cluster.md has the set-up.
Bad options: one line naming the option, exit status 2, nothing submitted. A cluster or stage that
refuses: one line, exit status 1.
"""

from __future__ import annotations

import argparse
import sys

from backdoor.errors import ConfigError
from backdoor.pipeline.remote import Remote, RemoteError
from backdoor.pipeline.slurm import collect, submit
from backdoor.pipeline.slurm_options import LOG_DIR, Options, SlurmError


def remote_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--remote",
        help="no shared file system: the shared DVC remote (s3://bucket/path) jobs pull from and push to (REMOTE)",
    )
    parser.add_argument("--endpoint", help="its S3-compatible server, http://host:port (REMOTE_ENDPOINT)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    sub = commands.add_parser("submit", help="plan the stale stages and submit one job array per layer")
    sub.add_argument("--partition", help="sbatch --partition (default: the cluster's default partition)")
    sub.add_argument("--account", help="sbatch --account")
    sub.add_argument("--time", help="sbatch --time, per stage (e.g. 4:00:00)")
    sub.add_argument("--gpus-per-job", default="0", help="GPUs per stage, as --gres=gpu:N (default 0)")
    sub.add_argument("--max-jobs", default="32", help="at most this many tasks of an array at once (default 32)")
    sub.add_argument(
        "--cache",
        help="the shared DVC cache, on storage every node mounts at the same path "
        "(default: this workspace's cache, `dvc cache dir`); this workspace is "
        "pointed at it (dvc config --local cache.dir)",
    )
    sub.add_argument(
        "--sbatch-args", default="", help='more sbatch options, e.g. "--mem=32G --cpus-per-task=8 --qos=long"'
    )
    sub.add_argument(
        "--venv",
        help="directory holding the python and dvc that jobs run, the same path on every node "
        "(default: this interpreter's, %(default)s)",
    )
    sub.add_argument(
        "--scratch", help="node-local folder for the throwaway clones (default: $SLURM_TMPDIR, $TMPDIR or /tmp)"
    )
    sub.add_argument(
        "--cache-type", default="symlink", help="how a clone links outputs from the cache (default symlink)"
    )
    sub.add_argument("--log-dir", default=LOG_DIR, help="job scripts, stage lists and job logs (default %(default)s)")
    sub.add_argument("--dry-run", action="store_true", help="print the sbatch commands; write and submit nothing")
    remote_options(sub)
    sub.add_argument(
        "--git-url", help="with --remote: where jobs clone the commit from (GIT_URL; default: origin's URL)"
    )
    sub.add_argument("targets", nargs="*", help="stages or dvc.yaml files, as for dvc repro (default: dvc.yaml)")
    col = commands.add_parser("collect", help="dvc repro here once every cached stage is in the run-cache")
    col.add_argument("--cache", help="the shared DVC cache the jobs used (default: this workspace's)")
    remote_options(col)
    col.add_argument("targets", nargs="*", help="as for dvc repro (default: dvc.yaml)")
    args = parser.parse_args()
    remote = Remote(args.remote, args.endpoint or None) if args.remote else None
    try:
        if args.command == "submit":
            submit(
                Options(
                    partition=args.partition,
                    account=args.account,
                    time=args.time,
                    gpus_per_job=args.gpus_per_job,
                    max_jobs=args.max_jobs,
                    cache=args.cache,
                    sbatch_args=args.sbatch_args,
                    venv=args.venv,
                    scratch=args.scratch,
                    cache_type=args.cache_type,
                    log_dir=args.log_dir,
                    targets=args.targets,
                    dry_run=args.dry_run,
                ),
                remote=remote,
                git_url=args.git_url,
            )
        else:
            sys.exit(collect(args.cache, args.targets, remote=remote))
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except (SlurmError, RemoteError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
