"""Push the pipeline's outputs to the shared DVC remote, or pull them (make push / make pull).

    python tools/remote.py push --remote s3://bucket/backdoor [--endpoint http://host:9000]
    python tools/remote.py pull [--remote ...]                      # a fresh clone: then make repro runs nothing
    python tools/remote.py pull --run reports/presets/<name> [--into DIR]   # a committed preset run's outputs

Every output of every dvc.yaml (the focus pipeline and grid/shard-*) and the run-cache. The remote is written into
.dvc/config.local (not committed), so later calls need no --remote; credentials come from the environment
(AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE). A bad setting: one line, exit status 2; an
unreachable remote, refused credentials or a missing object: one line naming the remote and what to check, exit
status 1, the workspace as it was. The logic lives in backdoor.pipeline.remote.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from backdoor.errors import ConfigError
from backdoor.pipeline import workspace
from backdoor.pipeline.remote import RemoteError, pull, pull_run, push, resolve


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=("push", "pull"))
    parser.add_argument("--remote", default=os.environ.get("REMOTE"), help="s3://bucket/path or a folder (REMOTE)")
    parser.add_argument(
        "--endpoint",
        default=os.environ.get("REMOTE_ENDPOINT"),
        help="an S3-compatible server's URL, http://host:port (REMOTE_ENDPOINT; default: AWS)",
    )
    parser.add_argument("--jobs", type=int, help="parallel transfers (default: DVC's, 4 per core)")
    parser.add_argument("--allow-missing", action="store_true", help="pull: leave what the remote lacks to dvc repro")
    parser.add_argument("--run", type=Path, help="pull: a preset run's folder holding remote.json (RUN)")
    parser.add_argument("--into", type=Path, help="pull --run: where its commit is checked out (INTO)")
    args = parser.parse_args(argv)
    try:
        root = workspace.toplevel(".")
        if args.command == "push":
            push(root, resolve(root, args.remote, args.endpoint), jobs=args.jobs)
        elif args.run:
            pull_run(root, args.run, args.into, args.remote, args.endpoint)
        else:
            pull(root, resolve(root, args.remote, args.endpoint), allow_missing=args.allow_missing)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except RemoteError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
