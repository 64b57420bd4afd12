"""Stage `code`: one sha256 per stage script over the project files it imports (data/code/<script>.sha256).

Every stage depends on its script's fingerprint instead of listing source files; this stage depends on
the backdoor/ and stages/ folders, so a new import is picked up without editing any list
(backdoor/pipeline/fingerprints.py).
"""

import argparse
from pathlib import Path

from backdoor.cli import run
from backdoor.files import atomic_dir
from backdoor.pipeline.fingerprints import code_sha256, import_closure, stage_scripts


def main(args: argparse.Namespace) -> None:
    scripts = stage_scripts()
    with atomic_dir(args.out) as tmp:
        for script in scripts:
            (Path(tmp) / f"{script.stem}.sha256").write_text(code_sha256(import_closure(script)) + "\n")
    print(f"code fingerprints of {len(scripts)} stage scripts in {args.out}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="data/code")
    run(main, parser)
