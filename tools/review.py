"""A review report of a change, as a pull request would show it: what changed in params, metrics, grid cells and plots.

    python tools/review.py --base main --out review        # make review BASE=main (default: the merge base with main)

Writes ``<out>/report.md`` and its images, offline (matplotlib, no browser). Two sides:

- the branch: this workspace after ``dvc repro`` (run here: stages whose results are in the cache or the
  run-cache are restored, not run; the report counts both);
- the base: the results committed at ``--base`` (the metrics, plots data, grid summary and figures are
  git-tracked), when its dvc.lock files match its code (``tools/check_lock.py`` on a worktree of it); otherwise it
  is reproduced in a temporary worktree sharing this repository's DVC cache, and the report says so.

With ``--remote`` (make review REMOTE=...: the shared DVC remote, backdoor.pipeline.remote) each side first pulls
the cells the remote holds (what it lacks is left to run), then runs ``dvc repro --pull``, which restores a changed
stage from the remote's run-cache when anyone pushed that run: only what changed and was never pushed runs.

Sections: the parameters that changed (as ``dvc params diff`` lists them), the focus experiment's metrics with their
deltas (as ``dvc metrics diff``), the grid cells whose results changed (and those added or removed), and every plot
whose data changed, base against branch in one figure. Nothing changed: a one-line report.
"""

from __future__ import annotations

import argparse
import io
import math
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import matplotlib

from backdoor.errors import ConfigError
from backdoor.pipeline.remote import Remote, RemoteError, configure, pull

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

ROOT = Path.cwd()  # the repository under review: run from its root (make review does)
FOCUS_METRICS = ("clean_acc", "asr", "robust_acc", "finetuned.clean_acc", "finetuned.asr", "finetuned.robust_acc")
CELL_COLUMNS = ("clean_acc", "asr", "ft_clean_acc", "ft_asr")
CURVES = {
    "reports/plots/train.csv": "training on the poisoned set",
    "reports/plots/finetune.csv": "clean fine-tuning (epoch 0 = before)",
}
GRID_DATA = {
    "reports/grid/summary.csv": "grid: ASR against poison rate",
    "reports/grid/recovery.csv": "grid: ASR during fine-tuning",
}
IMAGE_FOLDERS = ("reports/figures", "reports/grid/figures")


def sh(*cmd: str, cwd: Path = ROOT, check: bool = True) -> str:
    result = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if check and result.returncode != 0:
        sys.exit(f"review: {' '.join(cmd)} failed:\n{result.stderr.strip()[-2000:]}")
    return result.stdout


def default_base() -> str:
    for main in ("main", "origin/main"):
        if subprocess.run(["git", "rev-parse", "--verify", "-q", main], cwd=ROOT, capture_output=True).returncode == 0:
            return sh("git", "merge-base", "HEAD", main).strip()
    sys.exit("review: no main branch to take the merge base with: give BASE=<rev>")


# ---------------------------------------------------------------- the two sides


def reproduce(cwd: Path, remote: Remote | None = None) -> dict[str, int]:
    """``dvc repro`` in ``cwd`` (with a remote: its cells pulled first, then ``dvc repro --pull``); how many stages
    ran and how many came back from the cache, the run-cache or the remote."""
    if remote:
        try:
            pull(cwd, remote, allow_missing=True, say=lambda line: None)
        except (RemoteError, ConfigError) as exc:
            sys.exit(f"review: {exc}")
    out = sh("dvc", "repro", *(["--pull"] if remote else []), cwd=cwd)
    pulled = len(re.findall(r"Pulling data for", out)) - len(re.findall(r"Unable to pull data for", out))
    return {
        "ran": len(re.findall(r"Running stage '", out)),
        "restored": len(re.findall(r"is cached - skipping run|Restored stage", out)) + pulled,
    }


def base_side(base: str, keep: Path, remote: Remote | None = None) -> tuple[Path, str]:
    """Where to read the base's results from, and how they were obtained: its committed files when its locks
    match its code; otherwise a worktree of it reproduced against this repository's DVC cache (and the remote)."""
    worktree = keep / "base-worktree"
    sh("git", "worktree", "add", "-q", "--detach", str(worktree), base)
    try:
        check = subprocess.run(
            [sys.executable, str(ROOT / "tools" / "check_lock.py"), "--root", str(worktree)],
            cwd=worktree,
            capture_output=True,
            text=True,
        )
        if check.returncode == 0:
            return worktree, f"committed at {base[:10]}, its dvc.lock files matching its code"
        cache = sh("dvc", "cache", "dir").strip()
        sh("dvc", "config", "--local", "cache.dir", cache, cwd=worktree)
        if remote:
            configure(worktree, remote)
        counts = reproduce(worktree, remote)
        return worktree, (
            f"reproduced from {base[:10]} in a worktree (its committed dvc.lock did not match its "
            f"code): {counts['ran']} stages ran, {counts['restored']} came from the cache"
            + (f" or {remote.shown}" if remote else "")
        )
    except BaseException:
        sh("git", "worktree", "remove", "--force", str(worktree), check=False)
        raise


# ---------------------------------------------------------------- sections


def number(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def delta(value) -> str:
    return "-" if value is None else f"{value:+.4f}"


def flatten(tree, prefix: str = "") -> dict:
    """Nested mappings as dotted keys (``train.lr``), as DVC names parameters and metrics."""
    if not isinstance(tree, dict) or not tree:
        return {prefix: tree}
    return {
        k: v for key, value in tree.items() for k, v in flatten(value, f"{prefix}.{key}" if prefix else key).items()
    }


def read_tree(path: Path) -> dict:
    import yaml

    return flatten(yaml.safe_load(path.read_text()) or {}) if path.is_file() else {}


def params_section(base_root: Path) -> list[str]:
    """What ``dvc params diff`` lists for params.yaml: every changed, added or removed parameter."""
    old, new = read_tree(base_root / "params.yaml"), read_tree(ROOT / "params.yaml")
    changed = sorted(k for k in set(old) | set(new) if old.get(k, "-") != new.get(k, "-"))
    if not changed:
        return []
    lines = ["### Parameters", "", "| parameter | base | branch |", "|---|---|---|"]
    lines += [f"| `{key}` | {old.get(key, '-')} | {new.get(key, '-')} |" for key in changed]
    return lines + [""]


def metrics_section(base_root: Path) -> list[str]:
    """What ``dvc metrics diff`` gives for the focus experiment: each metric on both sides and the change."""
    old, new = (read_tree(root / "reports" / "metrics.json") for root in (base_root, ROOT))
    rows = [(key, old.get(key), new.get(key)) for key in FOCUS_METRICS if key in old or key in new]
    if all(_same(a, b) for _, a, b in rows):
        return []
    lines = ["### Focus experiment", "", "| metric | base | branch | change |", "|---|---|---|---|"]
    lines += [
        f"| {key} | {number(a)} | {number(b)} | {delta(b - a if a is not None and b is not None else None)} |"
        for key, a, b in rows
    ]
    return lines + [""]


def read_csv(data: bytes | None) -> pd.DataFrame | None:
    return pd.read_csv(io.BytesIO(data)) if data else None


def grid_section(old: pd.DataFrame | None, new: pd.DataFrame | None) -> list[str]:
    """The cells whose results changed, compactly, and the cells added or removed."""
    if old is None and new is None:
        return []
    old = old.set_index("cell") if old is not None else pd.DataFrame(columns=CELL_COLUMNS)
    new = new.set_index("cell") if new is not None else pd.DataFrame(columns=CELL_COLUMNS)
    added, removed = sorted(set(new.index) - set(old.index)), sorted(set(old.index) - set(new.index))
    changed = [
        cell
        for cell in new.index.intersection(old.index)
        if any(not _same(old.at[cell, c], new.at[cell, c]) for c in CELL_COLUMNS if c in old and c in new)
    ]
    if not (added or removed or changed):
        return []
    lines = ["### Grid cells", ""]
    if changed:
        lines += ["| cell | CA | ASR | CA after fine-tuning | ASR after |", "|---|---|---|---|---|"]
        for cell in changed:
            lines.append(
                f"| `{cell}` | "
                + " | ".join(f"{number(old.at[cell, c])} -> {number(new.at[cell, c])}" for c in CELL_COLUMNS)
                + " |"
            )
        lines.append("")
    for title, cells in (("added", added), ("removed", removed)):
        if cells:
            lines += [f"{len(cells)} cell(s) {title}: " + ", ".join(f"`{c}`" for c in cells), ""]
    return lines


def _same(a, b) -> bool:
    if pd.isna(a) and pd.isna(b):
        return True
    try:
        return abs(float(a) - float(b)) < 1e-9
    except (TypeError, ValueError):
        return a == b


def curve_figure(old: pd.DataFrame, new: pd.DataFrame, title: str, path: Path) -> None:
    """A long table (epoch, metric, value): a panel per metric, the base dashed and the branch solid."""
    metrics = list(dict.fromkeys([*old["metric"], *new["metric"]]))
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.2 * len(metrics), 3), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        for frame, style, label in ((old, "--", "base"), (new, "-", "branch")):
            rows = frame[frame["metric"] == metric]
            ax.plot(rows["epoch"], rows["value"], style, marker="o", markersize=3, label=label)
        ax.set(title=metric, xlabel="epoch")
        ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def grid_figure(old: pd.DataFrame, new: pd.DataFrame, title: str, path: Path) -> None:
    """ASR against poison rate (summary) or against the fine-tuning epoch (recovery), per trigger, base dashed."""
    x = "poison_rate" if "epoch" not in new else "epoch"
    fig, ax = plt.subplots(figsize=(5, 3.4))
    for frame, style, side in ((old, "--", "base"), (new, "-", "branch")):
        for index, (trigger, rows) in enumerate(frame.groupby("trigger")):
            mean = rows.groupby(x)["asr"].mean()
            ax.plot(
                mean.index,
                mean.values,
                style,
                marker="o",
                markersize=3,
                color=f"C{index % 10}",
                label=f"{trigger} ({side})",
            )
    ax.set(title=title, xlabel=x.replace("_", " "), ylabel="ASR", ylim=(-0.02, 1.02))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def image_figure(old: bytes, new: bytes, title: str, path: Path) -> None:
    """A figure that is itself an image: base and branch side by side."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, data, side in zip(axes, (old, new), ("base", "branch")):
        ax.imshow(plt.imread(io.BytesIO(data), format="png"))
        ax.set_title(side)
        ax.axis("off")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def plots_section(base_root: Path, out: Path) -> list[str]:
    """Every plot whose data (or image) differs between the sides, rendered base against branch."""
    lines, images = [], out / "images"
    for path, title in {**CURVES, **GRID_DATA}.items():
        old, new = (
            (base_root / path).read_bytes() if (base_root / path).is_file() else None,
            (ROOT / path).read_bytes() if (ROOT / path).is_file() else None,
        )
        if old is None or new is None or old == new:
            continue
        images.mkdir(parents=True, exist_ok=True)
        target = images / (Path(path).stem + ".png")
        (curve_figure if path in CURVES else grid_figure)(read_csv(old), read_csv(new), title, target)
        lines.append(f"![{title}](images/{target.name})")
    for folder in IMAGE_FOLDERS:
        for new_file in sorted((ROOT / folder).glob("*.png")):
            old_file = base_root / folder / new_file.name
            if not old_file.is_file() or old_file.read_bytes() == new_file.read_bytes():
                continue
            images.mkdir(parents=True, exist_ok=True)
            target = images / f"{Path(folder).name}-{new_file.name}"
            image_figure(old_file.read_bytes(), new_file.read_bytes(), f"{folder}/{new_file.name}", target)
            lines.append(f"![{folder}/{new_file.name}](images/{target.name})")
    return ["### Plots", "", *(f"{line}\n" for line in lines)] if lines else []


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", help="the revision to compare with (default: the merge base with main)")
    parser.add_argument("--out", type=Path, default=ROOT / "review")
    parser.add_argument("--no-repro", action="store_true", help="read the workspace as it is (already reproduced)")
    parser.add_argument("--remote", help="the shared DVC remote to pull both sides' cells from (REMOTE)")
    parser.add_argument("--endpoint", help="its S3-compatible server, http://host:port (REMOTE_ENDPOINT)")
    args = parser.parse_args(argv)
    remote = Remote(args.remote, args.endpoint or None) if args.remote else None
    base = sh("git", "rev-parse", args.base or default_base()).strip()
    source = f"the cache or {remote.shown}" if remote else "the cache"
    branch = (
        "the workspace as it is"
        if args.no_repro
        else "the workspace after dvc repro: {ran} stages ran, {restored} came from {source}".format(
            **reproduce(ROOT, remote), source=source
        )
    )
    if args.out.exists():
        shutil.rmtree(args.out)
    args.out.mkdir(parents=True)
    with tempfile.TemporaryDirectory(prefix="review-") as scratch:
        base_root, base_source = base_side(base, Path(scratch), remote)
        try:
            summary_old = read_csv(
                (base_root / "reports/grid/summary.csv").read_bytes()
                if (base_root / "reports/grid/summary.csv").is_file()
                else None
            )
            summary_new = read_csv((ROOT / "reports/grid/summary.csv").read_bytes())
            sections = [
                *params_section(base_root),
                *metrics_section(base_root),
                *grid_section(summary_old, summary_new),
                *plots_section(base_root, args.out),
            ]
        finally:
            sh("git", "worktree", "remove", "--force", str(base_root), check=False)
    head = f"## Review: {sh('git', 'rev-parse', '--short', 'HEAD').strip()} against {base[:10]}"
    sides = [f"- base: {base_source}", f"- branch: {branch}", ""]
    if not sections:
        text = f"No change in params, metrics, grid cells or plots against {base[:10]}.\n"
    else:
        text = "\n".join([head, "", *sides, *sections]).rstrip("\n") + "\n"
    (args.out / "report.md").write_text(text)
    print(f"review: {args.out / 'report.md'}")
    return args.out / "report.md"


if __name__ == "__main__":
    main()
