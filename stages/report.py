"""Grid report: summary.csv (one row per cell), seeds.csv (mean and 95% interval), recovery.csv, detection.csv
(one row per model and detector), figures, metrics."""

from pathlib import Path

from backdoor.cli import run
from backdoor.datasets import load_dataset
from backdoor.defence_settings import DefenceExperiment
from backdoor.files import read_json, write_csv, write_json
from backdoor.gallery import trigger_gallery, trigger_zoo
from backdoor.grid import check_plan
from backdoor.naming import slug
from backdoor.params import read_params
from backdoor.plots import grid_figures
from backdoor.report import (
    FLOAT_FORMAT,
    aggregate_metrics,
    cell_results,
    collect,
    detection_table,
    recovery_curves,
    relearn_results,
    seed_summary,
    with_cross_cell_columns,
)


def write_galleries(params: dict, plan: dict, raw: Path, figures: Path) -> None:
    """triggers-<dataset>.png: what each of the grid's triggers does to that dataset's images."""
    triggers = list(dict.fromkeys(cell["trigger"] for cell in plan["cells"]))
    for dataset in dict.fromkeys(cell["dataset"] for cell in plan["cells"]):
        cell = next(c for c in plan["cells"] if c["dataset"] == dataset)
        exp = DefenceExperiment(params, {axis: cell[axis] for axis in ("dataset", "poison_rate", "seed")})
        images = load_dataset(raw / slug(dataset)).test.images
        zoo = trigger_zoo(exp, tuple(images.shape[1:]), params.get("triggers") or {}, triggers)
        trigger_gallery(images[: len(zoo)], zoo, figures / f"triggers-{slug(dataset)}.png", seed=exp.seed)


def main(args) -> None:
    plan = read_json(args.plan)
    params = read_params(args.params)
    check_plan(params, plan, read_json(args.settings))
    out = Path(args.out)
    results = cell_results(plan, args.cells)
    table = with_cross_cell_columns(collect(plan, results, relearn_results(plan, args.cells)))
    curves = recovery_curves(plan, results)
    write_csv(table, out / "summary.csv", FLOAT_FORMAT)
    write_csv(seed_summary(table), out / "seeds.csv", FLOAT_FORMAT)
    write_csv(curves, out / "recovery.csv", FLOAT_FORMAT)
    detection = detection_table(plan, args.cells, results)
    write_csv(detection, out / "detection.csv", FLOAT_FORMAT)
    write_json(out / "metrics.json", aggregate_metrics(table))
    figures = out / "figures"
    grid_figures(table, curves, detection, figures)
    write_galleries(params, plan, Path(args.raw), figures)
    print(f"report: {len(table)} cells -> {out}/summary.csv")


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--plan", default="grid/plan.json")
    parser.add_argument("--settings", default="grid/settings.json")
    parser.add_argument(
        "--cells",
        default="reports/grid/cells",
        help="one <family>.json per family of cells (metrics and fine-tuning curves)",
    )
    parser.add_argument("--raw", default="data/grid/raw", help="the grid's stored datasets (for the galleries)")
    parser.add_argument("--out", default="reports/grid")
    run(main, parser)
