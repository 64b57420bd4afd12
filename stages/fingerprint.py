"""Grid stage: one sha256 per role (download, poison, train, finetune) of the code that role runs.

Grid stages depend on their role's fingerprint file instead of listing each source file: DVC checks
every dependency of every stage on each `dvc repro`, and at paper size (then 1,340 stages) the source
files were a quarter of a no-op run. Editing a file reruns this stage; a role's cells rerun only if
their fingerprint changed (adding a trigger to backdoor/triggers.py reruns poisoning, not training).
The role -> files table is ``CODE`` in stages/plan_grid.py.
"""

from pathlib import Path

from backdoor.cli import run
from backdoor.io import atomic_dir, code_sha256


def main(args) -> None:
    with atomic_dir(args.out) as tmp:
        for spec in args.roles:
            role, _, paths = spec.partition("=")
            (Path(tmp) / f"{role}.sha256").write_text(code_sha256(paths.split(",")) + "\n")
    print(f"code fingerprints of {len(args.roles)} roles in {args.out}")


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("roles", nargs="+", metavar="ROLE=PATH,PATH,...")
    run(main, parser)
