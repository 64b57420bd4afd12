"""params.yaml's method sections and choice lists, and docs/parameters.md's generated part, written from the
registries: a method's settings and their defaults live in one place, its factory's signature.

    python tools/parameters_doc.py            # rewrite both
    python tools/parameters_doc.py --check    # exit 1 naming what is out of date and the command that fixes it

In params.yaml: each method section (``strategies:``, ``triggers:``, ``regularizers:``, ``finetune_methods:``,
``detectors:``, ``models:``, ``recipes:``) lists every registered method with its settings at their defaults (a
fine-tuning method also with the loop settings its source uses, the ``loop`` fact), its comment the first line of its
factory's docstring; a parameter's comment starts with its choices joined by " | ". docs/parameters.md ends with the
choices and every method's settings, defaults and source. A new method registered in its module shows up in both
after one run of this.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
GENERATED = "## Choices\n"
DOC_NOTE = (
    "Written from the registries by `python tools/parameters_doc.py`; `tests/test_config.py` fails when this page, "
    "params.yaml and the registries disagree.\n"
)
COMMENT_COLUMN = 28  # where params.yaml's comments start
WIDTH = 120


def choices() -> dict[str, list[str]]:
    """Each parameter that names a method, with the names its registry holds (in the order they are listed)."""
    from backdoor.datasets.registry import DATASETS, FOLDER_PREFIX
    from backdoor.detectors import DETECTORS
    from backdoor.finetune_methods import METHODS
    from backdoor.models import MODELS
    from backdoor.recipes import RECIPES
    from backdoor.regularizers import REGULARIZERS
    from backdoor.settings import FREEZE
    from backdoor.strategies import STRATEGIES
    from backdoor.triggers import LOCATIONS, TRIGGERS

    return {
        "dataset": [*DATASETS.names(), f"{FOLDER_PREFIX}<path>"],
        "arch": MODELS.names(),
        "trigger": TRIGGERS.names(),
        "trigger_location": list(LOCATIONS),
        "strategy": STRATEGIES.names(),
        "regularizer": REGULARIZERS.names(),
        "train.recipe": RECIPES.names(),
        "train.freeze": list(FREEZE),
        "finetune.method": METHODS.names(),
        "grid.detectors": DETECTORS.names(),
    }


def sections() -> dict[str, tuple[Any, str]]:
    """Each method section of params.yaml: its registry and the section's own comment."""
    from backdoor.detectors import DETECTORS
    from backdoor.finetune_methods import METHODS
    from backdoor.models import MODELS
    from backdoor.recipes import RECIPES
    from backdoor.regularizers import REGULARIZERS
    from backdoor.strategies import STRATEGIES
    from backdoor.triggers import TRIGGERS

    return {
        "strategies": (STRATEGIES, "each poisoning strategy's settings; backdoor/strategies.py"),
        "triggers": (TRIGGERS, "each trigger's settings (patches also take trigger_size/location); backdoor/triggers/"),
        "regularizers": (REGULARIZERS, "each regularizer's settings; backdoor/regularizers/"),
        "finetune_methods": (METHODS, "each defence's settings and overrides of finetune:; backdoor/finetune_methods/"),
        "detectors": (DETECTORS, "each detector's settings; backdoor/detectors/"),
        "models": (MODELS, "each model's settings (any timm model name takes none); backdoor/models/"),
        "recipes": (RECIPES, "each training recipe's settings (sgd's are train: itself); backdoor/recipes/"),
    }


def defaults(registry: Any, name: str) -> dict[str, Any]:
    """A method's settings at their defaults; a fine-tuning method's with its source's loop settings (``loop``)."""
    values = registry.defaults(name)
    return {**values, **(registry.get(name).facts.get("loop") or {})}


def summary(registry: Any, name: str) -> str:
    """The first line of the factory's docstring, else its reference."""
    entry = registry.get(name)
    doc = (getattr(entry.factory, "__doc__", None) or "").strip().splitlines()
    return (doc[0] if doc else entry.reference).strip().rstrip(".")


def scalar(value: Any) -> str:
    if isinstance(value, tuple):
        value = list(value)
    return yaml.safe_dump(value, default_flow_style=True, width=1000).strip().removesuffix("\n...").strip()


def commented(text: str, comment: str) -> str:
    """``text`` with ``# comment`` at the comment column, the comment shortened to fit the line."""
    start = max(COMMENT_COLUMN, len(text) + 1)
    room = WIDTH - start - 2
    if len(comment) > room:
        comment = comment[: room - 3].rsplit(" ", 1)[0] + " ..."
    return f"{text.ljust(start)}# {comment}" if comment else text


def section_text(name: str) -> str:
    """One method section of params.yaml, every registered method at its defaults."""
    registry, comment = sections()[name]
    lines = [commented(f"{name}:", comment)]
    for method in registry.names():
        values = defaults(registry, method)
        lines.append(commented(f"  {method}:" + ("" if values else " {}"), summary(registry, method)))
        lines += [f"    {key}: {scalar(value)}" for key, value in values.items()]
    return "\n".join(lines) + "\n"


def params_sections(text: str) -> str:
    """params.yaml with each method section replaced by its generated text (a section runs to the next blank line
    followed by a top-level key)."""
    for name in sections():
        pattern = re.compile(rf"^{re.escape(name)}:.*?(?=^\n|^[A-Za-z#]|\Z)", re.S | re.M)
        if not pattern.search(text):
            raise SystemExit(f"params.yaml: no `{name}:` section to write")
        text = pattern.sub(section_text(name).replace("\\", "\\\\"), text, count=1)
    return text


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
            lines[i] = f"{match[1]}{match[2]}:{match[3]}# {' | '.join(names[key])}{match[5] or ''}\n"
    return "".join(lines)


def method_tables() -> list[str]:
    """docs/parameters.md: every method's settings, defaults and source, a table per section."""
    out = []
    for name, (registry, comment) in sections().items():
        out += [
            f"### `{name}`",
            "",
            comment[0].upper() + comment[1:] + ".",
            "",
            "| name | settings (defaults) | source |",
            "|---|---|---|",
        ]
        for method in registry.names():
            values = ", ".join(f"`{k}: {scalar(v)}`" for k, v in defaults(registry, method).items()) or "none"
            out.append(f"| `{method}` | {values} | {registry.get(method).reference or summary(registry, method)} |")
        out.append("")
    return out


def parameters_doc(text: str, names: dict[str, list[str]]) -> str:
    """docs/parameters.md with its generated part at the end, rewritten."""
    head = text.split(GENERATED, 1)[0].rstrip("\n")
    table = ["| parameter | choices |", "|---|---|"]
    table += [f"| `{key}` | {', '.join(f'`{n}`' for n in values)} |" for key, values in names.items()]
    methods = ["", "## Method settings", "", *method_tables()]
    return f"{head}\n\n{GENERATED}\n{DOC_NOTE}\n" + "\n".join(table + methods).rstrip("\n") + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if a file is out of date")
    parser.add_argument("--root", type=Path, default=ROOT)
    args = parser.parse_args()
    names = choices()
    stale = []
    for path, write in (
        (args.root / "params.yaml", lambda text, names: params_comments(params_sections(text), names)),
        (args.root / "docs" / "parameters.md", parameters_doc),
    ):
        current = path.read_text()
        wanted = write(current, names)
        if wanted != current:
            stale.append(str(path.relative_to(args.root)))
            if not args.check:
                path.write_text(wanted)
    if args.check and stale:
        sys.exit(f"{', '.join(stale)}: out of date with the registries; run: python tools/parameters_doc.py")
    print(f"{'checked' if args.check else 'wrote'}: params.yaml, docs/parameters.md")


if __name__ == "__main__":
    main()
