"""Make a preset the experiment: lay presets/<name>.yaml on params.yaml (make preset PRESET=<name>).

    python tools/preset.py cifar10-cpu            # then: make repro
    python tools/preset.py reference-cifar10-cpu --seeds 1   # one part of a run in several (tools/join_parts.py)

Refuses an unknown preset, a key params.yaml does not have or a seed the preset does not list, naming it, before
writing anything.
"""

import argparse

from backdoor.cli import run
from backdoor.presets import apply_preset


def main(args: argparse.Namespace) -> None:
    path = apply_preset(args.name, seeds=args.seeds)
    print(f"{path}: presets/{args.name}.yaml laid on the default; `git checkout params.yaml` restores it")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name")
    parser.add_argument("--seeds", type=int, nargs="+", help="only these of the preset's seeds (grid.seed)")
    run(main, parser)
