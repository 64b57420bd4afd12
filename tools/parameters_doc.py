"""The choice lists of params.yaml's comments and docs/parameters.md, written from the registries.

    python tools/parameters_doc.py            # rewrite both
    python tools/parameters_doc.py --check    # exit 1 naming what is out of date (tests/test_config.py runs it)

A parameter's comment in params.yaml starts with its choices joined by " | " (then any note, in parentheses or
after a colon); docs/parameters.md ends with a generated table of every parameter that names a method. A new
trigger, model, detector or fine-tuning method registered in its module shows up in both after one run of this.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GENERATED = "## Choices\n"
DOC_NOTE = (
    "Written from the registries by `python tools/parameters_doc.py`; `tests/test_config.py` fails when "
    "this list and the registries disagree.\n"
)


def choices() -> dict[str, list[str]]:
    """Each parameter that names a method, with the names its registry holds (in the order they are listed)."""
    from backdoor.datasets.registry import DATASETS, FOLDER_PREFIX
    from backdoor.detectors import DETECTORS
    from backdoor.finetune_methods import METHODS
    from backdoor.models import MODELS
    from backdoor.poisoning import STRATEGIES
    from backdoor.regularizers import REGULARIZERS
    from backdoor.settings import FREEZE
    from backdoor.triggers import LOCATIONS, TRIGGERS

    return {
        "dataset": [*sorted(DATASETS), f"{FOLDER_PREFIX}<path>"],
        "arch": sorted(MODELS),
        "trigger": sorted(TRIGGERS),
        "trigger_location": list(LOCATIONS),
        "strategy": list(STRATEGIES),
        "regularizer": sorted(REGULARIZERS),
        "train.freeze": list(FREEZE),
        "finetune.method": sorted(METHODS),
        "grid.detectors": sorted(DETECTORS),
    }


def params_comments(text: str, names: dict[str, list[str]]) -> str:
    """params.yaml with each listed parameter's comment starting with its current choices."""
    lines = text.splitlines(keepends=True)
    section = ""
    for i, line in enumerate(lines):
        if re.match(r"^[A-Za-z_]", line):
            section = line.split(":", 1)[0]
        match = re.match(r"^(\s*)([\w.-]+):([^#\n]*)# ((?:\S+ \| )+\S+?)((?: \(|; ).*)?$", line.rstrip("\n"))
        if not match:
            continue
        key = match[2] if not match[1] else f"{section}.{match[2]}"
        if key in names:
            new = f"{match[1]}{match[2]}:{match[3]}# {' | '.join(names[key])}{match[5] or ''}\n"
            lines[i] = new
    return "".join(lines)


def parameters_doc(text: str, names: dict[str, list[str]]) -> str:
    """docs/parameters.md with its generated section at the end, rewritten."""
    head = text.split(GENERATED, 1)[0].rstrip("\n")
    table = ["| parameter | choices |", "|---|---|"]
    table += [f"| `{key}` | {', '.join(f'`{n}`' for n in values)} |" for key, values in names.items()]
    return f"{head}\n\n{GENERATED}\n{DOC_NOTE}\n" + "\n".join(table) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if a file is out of date")
    parser.add_argument("--root", type=Path, default=ROOT)
    args = parser.parse_args()
    names = choices()
    stale = []
    for path, write in (
        (args.root / "params.yaml", params_comments),
        (args.root / "docs" / "parameters.md", parameters_doc),
    ):
        current = path.read_text()
        wanted = write(current, names)
        if wanted != current:
            stale.append(str(path.relative_to(args.root)))
            if not args.check:
                path.write_text(wanted)
    if args.check and stale:
        sys.exit(f"out of date with the registries: {', '.join(stale)} (run python tools/parameters_doc.py)")
    print(f"{'checked' if args.check else 'wrote'}: params.yaml, docs/parameters.md")


if __name__ == "__main__":
    main()
