"""Make a preset the experiment: lay presets/<name>.yaml on params.yaml (make preset PRESET=<name>).

    python tools/preset.py cifar10-cpu            # then: make repro

Refuses an unknown preset or a key params.yaml does not have, naming it, before writing anything.
"""

import argparse

from backdoor.cli import run
from backdoor.presets import apply_preset


def main(args: argparse.Namespace) -> None:
    path = apply_preset(args.name)
    print(f"{path}: presets/{args.name}.yaml laid on the default; `git checkout params.yaml` restores it")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name")
    run(main, parser)
