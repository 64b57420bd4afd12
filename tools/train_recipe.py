"""Time one clean training recipe and score it: on a held-out part of the training set, or (--test) once on
the test set. How resnet6-cpu and its CIFAR-10 / Flowers schedules were chosen (docs/cpu-recipes.md), and airbench's
whitening eps on the JPEG copy of CIFAR-10:

    python tools/train_recipe.py resnet6-cpu --raw data/grid/raw/cifar10-jpeg --epochs 5 --lr 0.1 \\
        --label-smoothing 0.1 --crop-padding 2 --flip true --out reports/selection/cpu-recipes.jsonl
    python tools/train_recipe.py airbench --recipe airbench --epochs 11 --batch-size 1024 \\
        --model-setting widths=[64,128,128] --model-setting whiten_eps=0.01 \\
        --raw data/grid/raw/folder-data-external-cifar10-jpeg --out reports/selection/airbench-whitening.jsonl

--raw is a dataset stored by the download stage (any grid with that dataset stores it). One JSON line a
run: accuracy, wall-clock and CPU minutes, images/s, seconds per epoch, and the load average around it
(other jobs on the same cores slow torch down: compare CPU minutes when the machine was shared).
"""

import argparse
import json
import os
import time
from dataclasses import asdict, fields
from pathlib import Path

import torch
import yaml

from backdoor.classifier import Classifier, predict
from backdoor.cli import run
from backdoor.datasets import load_dataset, validation_split
from backdoor.files import read_json
from backdoor.models import check_model_settings
from backdoor.recipes import build_recipe, check_recipe
from backdoor.regularizers import build_regularizer
from backdoor.settings import LoopConfig, TrainConfig


def dataset_identity(raw: str) -> dict:
    """The stored dataset by its name and its training file's checksum: a committed log names no machine's paths."""
    manifest = read_json(Path(raw) / "manifest.json")
    return {"dataset": manifest["dataset"], "train_sha256": manifest["sha256"]["train.pt"]}


def main(args: argparse.Namespace) -> None:
    cfg = TrainConfig(recipe=args.recipe, **{f.name: getattr(args, f.name) for f in fields(LoopConfig)})
    settings = dict(args.model_setting)
    check_model_settings(args.arch, settings)  # a bad name or setting fails before the dataset is read
    check_recipe(args.recipe, {}, cfg)
    torch.set_num_threads(args.threads)
    data = load_dataset(args.raw)
    if not args.test:  # candidates are compared on held-out training images, never on the test set
        data = validation_split(data, args.validation, seed=0)
    images, labels = data.train.images, data.train.labels
    clf = Classifier.create(args.arch, images, len(data.classes), seed=args.seed, **settings)
    recipe = build_recipe(args.recipe)  # its settings at their defaults (the reference's, for airbench)
    loss_fn = build_regularizer("none", clf.model, recipe.label_smoothing(cfg))
    epoch_seconds, last = [], [time.perf_counter()]

    def on_epoch_end(epoch: int, loss: float) -> None:
        now = time.perf_counter()
        epoch_seconds.append(round(now - last[0], 1))
        last[0] = now
        print(f"epoch {epoch}: {epoch_seconds[-1]} s, loss {loss:.3f}, load {os.getloadavg()[0]:.2f}", flush=True)

    load_start, wall, cpu = os.getloadavg(), time.perf_counter(), time.process_time()
    recipe.fit(clf, images, labels, cfg, seed=args.seed, loss_fn=loss_fn, progress=False, on_epoch_end=on_epoch_end)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    accuracy = (predict(clf, data.test.images) == data.test.labels).float().mean().item()
    record = {
        "arch": args.arch,
        **dataset_identity(args.raw),
        "model_settings": settings,
        "recipe": args.recipe,
        "loop": asdict(cfg),
        "num_train": len(labels),
        "scored_on": "test" if args.test else f"{args.validation} held-out training images",
        "accuracy": round(accuracy, 4),
        "train_minutes": round(wall / 60, 2),
        "cpu_minutes": round(cpu / 60, 2),
        "images_per_s": round(len(labels) * cfg.epochs / wall),
        "threads": args.threads,
        "epoch_seconds": epoch_seconds,
        "load_start": load_start,
        "load_end": os.getloadavg(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
    }
    print(json.dumps(record))
    if args.out:
        with open(args.out, "a") as out:  # one line per run: a log, appended
            out.write(json.dumps(record) + "\n")


def setting(text: str) -> tuple[str, object]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, yaml.safe_load(value)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("arch")
    parser.add_argument("--raw", required=True, help="a stored dataset folder (data/grid/raw/<name>)")
    parser.add_argument("--test", action="store_true", help="score once on the test set (the chosen recipe only)")
    parser.add_argument("--validation", type=int, default=5000, help="held-out training images to score on")
    parser.add_argument("--recipe", default="sgd", help="a training recipe (backdoor/recipes/), at its defaults")
    parser.add_argument(
        "--model-setting",
        type=setting,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a model setting (models.<arch>.KEY; VALUE read as YAML), repeatable",
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="JSON-lines log to append the record to")
    for field in fields(LoopConfig):
        kind = (
            (lambda text: text.lower() in ("1", "true"))
            if field.type in (bool, "bool")
            else (type(field.default) if field.default is not None else int)
        )
        parser.add_argument(f"--{field.name.replace('_', '-')}", type=kind, default=field.default)
    run(main, parser)
