"""The GPU figures in one command (``make bench-gpu``): throughput and MFU, a ResNet-18 CIFAR-10 recipe, one paper cell.

    python -m benchmarks.gpu --out reports/bench/gpu.json       # from the repository root; about 10 min on one H200

1. **Throughput** at CIFAR-10 shape (synthetic uint8 3x32x32), batch 512: small-cnn, resnet18 and resnet50,
   this project's loop against the torchvision DataLoader pipeline (``benchmarks/train_throughput.py``):
   images/s of each and MFU (3 x forward FLOPs x images/s / the accelerator's peak, ``--peak-tflops``).
2. **ResNet-18 on CIFAR-10**: ``--epochs`` (default 10) of a short recipe through ``backdoor.loop.fit`` (batch
   512, lr 0.4, label smoothing 0.1, crop 4 + flip, bf16 autocast, channels_last): seconds per epoch and
   test accuracy.
3. **airbench on CIFAR-10** (``backdoor/models/airbench.py`` and its recipe): the airbench93 (widths 64/128/128,
   11 epochs) and airbench94 (64/256/256, 10 epochs) recipes, each trained once: seconds of training (the
   reference's timing: evaluation excluded) and clean accuracy without test-time augmentation, so the time to 93 % and
   94 % (the references' figures with TTA) reads beside what the no-TTA model reaches.
4. **One paper-preset cell end to end** through the stage scripts (download, poison, train, fine-tune,
   evaluate): ``presets/paper.yaml``'s focus experiment (CIFAR-10, resnet50, checker at 5 %, its training
   settings; ``--paper-epochs`` shortens it): seconds per stage, CA and ASR.

CIFAR-10 comes from ``--dataset``: default ``folder:data/external/cifar10-jpeg`` when ``make external-data``
has extracted it (an offline machine), else ``cifar10`` (downloaded). One JSON file with the device, the
commit and every figure. Without CUDA it prints one line and exits 0; ``--device cpu --tiny`` runs every
part at toy sizes on the CPU (the test of this script).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import yaml

from backdoor.classifier import Classifier, pick_device, predict
from backdoor.datasets import load_dataset
from backdoor.datasets.registry import prepare_dataset
from backdoor.files import write_json
from backdoor.loop import fit
from backdoor.presets import preset_params
from backdoor.settings import LoopConfig
from benchmarks import train_throughput

ROOT = Path(__file__).resolve().parents[1]
EXTRACTED_CIFAR10 = "data/external/cifar10-jpeg"
THROUGHPUT_ARCHS = ("small-cnn", "resnet18", "resnet50")
RECIPE = LoopConfig(
    epochs=10,
    batch_size=512,
    lr=0.4,
    momentum=0.9,
    weight_decay=5e-4,
    warmup_epochs=1.0,
    label_smoothing=0.1,
    crop_padding=4,
    flip=True,
)
PAPER_STAGES = ("download", "poison", "train", "finetune", "evaluate")


def default_dataset() -> str:
    return f"folder:{EXTRACTED_CIFAR10}" if (ROOT / EXTRACTED_CIFAR10).is_dir() else "cifar10"


def throughput(args: argparse.Namespace) -> list[dict]:
    rows = []
    for arch in args.archs:
        argv = [
            "--arch",
            arch,
            "--dataset-shape",
            "cifar10",
            "--batch-size",
            str(args.batch_size),
            "--steps",
            str(args.steps),
            "--device",
            args.device,
            "--peak-tflops",
            str(args.peak_tflops),
        ]
        if args.compile:
            argv.append("--compile")
        if args.tiny:
            argv += ["--num-workers", "0", "--warmup-steps", "1"]
        print(f"== throughput: {arch}", flush=True)
        rows.append({"arch": arch, **train_throughput.main(argv)})
    return rows


def resnet18_recipe(args: argparse.Namespace, raw: Path, device: torch.device) -> dict:
    data = load_dataset(raw)
    cfg = LoopConfig(
        **{**RECIPE.__dict__, "epochs": args.epochs, "batch_size": args.batch_size, "compile": args.compile}
    )
    clf = Classifier.create("resnet18", data.train.images, data.num_classes, seed=0)
    seconds, last = [], [time.perf_counter()]

    def on_epoch_end(epoch: int, loss: float) -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        now = time.perf_counter()
        seconds.append(round(now - last[0], 2))
        last[0] = now
        print(f"resnet18 epoch {epoch}: {seconds[-1]} s, loss {loss:.3f}", flush=True)

    print(f"== resnet18 on CIFAR-10: {cfg.epochs} epochs", flush=True)
    fit(
        clf, data.train.images, data.train.labels, cfg, seed=0, device=device, progress=False, on_epoch_end=on_epoch_end
    )
    accuracy = (predict(clf, data.test.images, device=device) == data.test.labels).float().mean().item()
    steady = seconds[1:] or seconds  # the first epoch pays compilation and cuDNN autotuning
    return {
        "recipe": {**cfg.__dict__},
        "num_train": len(data.train),
        "epoch_seconds": seconds,
        "median_epoch_seconds": sorted(steady)[len(steady) // 2],
        "test_accuracy": round(accuracy, 4),
    }


AIRBENCH = {"airbench93": ((64, 128, 128), 11), "airbench94": ((64, 256, 256), 10)}


def airbench_recipes(args: argparse.Namespace, raw: Path, device: torch.device) -> dict:
    """Each airbench recipe trained once on the whole training set: training seconds and clean accuracy (no TTA)."""
    from backdoor.recipes import build_recipe
    from backdoor.regularizers import build_regularizer
    from backdoor.settings import TrainConfig

    data = load_dataset(raw)
    results = {}
    for name, (widths, epochs) in AIRBENCH.items():
        recipe = build_recipe("airbench")
        cfg = TrainConfig(
            recipe="airbench", epochs=1 if args.tiny else epochs, batch_size=args.airbench_batch, compile=args.compile
        )
        clf = Classifier.create("airbench", data.train.images, data.num_classes, seed=0, widths=widths)
        loss = build_regularizer("none", clf.model, recipe.label_smoothing(cfg))
        print(f"== {name} on CIFAR-10: {cfg.epochs} epochs", flush=True)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        steps = recipe.fit(
            clf, data.train.images, data.train.labels, cfg, seed=0, loss_fn=loss, progress=False, device=device
        )
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds = time.perf_counter() - start
        accuracy = (predict(clf, data.test.images, device=device) == data.test.labels).float().mean().item()
        results[name] = {
            "widths": list(widths),
            "epochs": cfg.epochs,
            "steps": steps,
            "train_seconds": round(seconds, 2),
            "clean_acc_no_tta": round(accuracy, 4),
        }
    return results


def paper_params(dataset: str, epochs: int | None, tiny: bool) -> dict:
    """params.yaml with presets/paper.yaml laid on it (an overlay), its focus experiment on ``dataset`` (shortened
    for --tiny or --paper-epochs)."""
    params = preset_params("paper", ROOT)
    params["dataset"] = dataset
    if epochs is not None:
        params["train"]["epochs"] = epochs
    if tiny:
        params.update(arch="small-cnn")
        params["train"].update(epochs=1, batch_size=16, compile=False, warmup_epochs=0.5)
        params["finetune"].update(epochs=1, clean_size=16, batch_size=8, compile=False)
    return params


def paper_cell(args: argparse.Namespace, work: Path, device: torch.device) -> dict:
    """The stage scripts in order, as dvc.yaml runs them, each timed (its start-up and data loading included)."""
    work.mkdir(parents=True, exist_ok=True)
    params = work / "params.yaml"
    params.write_text(yaml.safe_dump(paper_params(args.dataset, args.paper_epochs, args.tiny), sort_keys=False))
    raw, poisoned, train, finetune = work / "raw", work / "poisoned", work / "train", work / "finetune"
    commands = {
        "download": ["--out", raw, "--downloads", ROOT / "data" / "downloads"],
        "poison": ["--raw", raw, "--out", poisoned],
        "train": ["--raw", raw, "--poisoned", poisoned, "--out", train],
        "finetune": ["--raw", raw, "--poisoned", poisoned, "--model", train / "model.pt", "--out", finetune],
        "evaluate": ["--poisoned", poisoned, "--finetuned", finetune, "--out", work / "metrics.json"],
    }
    seconds = {}
    for stage in PAPER_STAGES:
        print(f"== paper cell: {stage}", flush=True)
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, ROOT / "stages" / f"{stage}.py", "--params", params, *map(str, commands[stage])],
            cwd=ROOT,
            check=True,
            env=None if device.type == "cuda" else {**os.environ, "CUDA_VISIBLE_DEVICES": ""},
        )
        seconds[stage] = round(time.perf_counter() - start, 1)
    metrics = json.loads((work / "metrics.json").read_text())
    return {
        "params": "presets/paper.yaml" + (" (tiny)" if args.tiny else ""),
        "dataset": args.dataset,
        "train_epochs": paper_params(args.dataset, args.paper_epochs, args.tiny)["train"]["epochs"],
        "stage_seconds": seconds,
        "total_seconds": round(sum(seconds.values()), 1),
        "clean_acc": metrics["clean_acc"],
        "asr": metrics["asr"],
        "ft_asr": metrics["finetuned"]["asr"],
    }


def commit() -> str | None:
    out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    return out.stdout.strip() or None


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], epilog=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "bench" / "gpu.json")
    parser.add_argument("--device", default="cuda", help="cuda (default), or cpu to run it anyway (with --tiny)")
    parser.add_argument(
        "--dataset",
        default=None,
        help=f"CIFAR-10 source (default folder:{EXTRACTED_CIFAR10} if extracted, else cifar10)",
    )
    parser.add_argument("--epochs", type=int, default=RECIPE.epochs, help="ResNet-18 recipe epochs")
    parser.add_argument("--paper-epochs", type=int, help="shorten the paper cell's training (default: the preset's)")
    parser.add_argument("--batch-size", type=int, default=RECIPE.batch_size)
    parser.add_argument(
        "--airbench-batch", type=int, default=1024, help="the airbench recipes' batch (reference: 1024)"
    )
    parser.add_argument("--steps", type=int, default=100, help="timed throughput steps per pipeline")
    parser.add_argument(
        "--peak-tflops",
        type=float,
        default=train_throughput.H100_BF16_DENSE_TFLOPS,
        help="dense bf16 peak for MFU (989: H100/H200 SXM)",
    )
    parser.add_argument("--compile", action="store_true", help="torch.compile in the throughput and recipe runs")
    parser.add_argument("--tiny", action="store_true", help="toy sizes: checks that every part runs (CPU test)")
    args = parser.parse_args(argv)
    args.dataset = args.dataset or default_dataset()
    args.archs = THROUGHPUT_ARCHS
    if args.tiny:
        args.epochs, args.steps, args.batch_size, args.archs = 1, 2, 16, ("small-cnn",)
        args.airbench_batch = 32
    return args


def main(argv: list[str] | None = None) -> dict | None:
    args = parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        print("bench-gpu: no CUDA device here (torch.cuda.is_available() is False): nothing measured")
        return None
    device = pick_device(args.device)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-gpu-") as scratch:
        work = Path(scratch)
        raw = work / "cifar10"
        prepare_dataset(args.dataset, raw, ROOT / "data" / "downloads", image_size=32)
        if args.tiny:  # a few hundred images: every code path, none of the cost
            data = load_dataset(raw)
            from backdoor.datasets import store_dataset
            from backdoor.datasets.registry import dataset_spec

            store_dataset(
                dataset_spec(args.dataset, 32),
                (data.train.images[:256], data.train.labels[:256], data.test.images[:128], data.test.labels[:128]),
                raw,
                source="tiny",
            )
        result = {
            "device": torch.cuda.get_device_name(device)
            if device.type == "cuda"
            else f"cpu, {torch.get_num_threads()} threads",
            "torch": torch.__version__,
            "commit": commit(),
            "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "tiny": args.tiny,
            "peak_tflops": args.peak_tflops,
            "throughput": throughput(args),
            "resnet18_cifar10": resnet18_recipe(args, raw, device),
            "airbench_cifar10": airbench_recipes(args, raw, device),
            "paper_cell": paper_cell(args, work / "paper", device),
        }
    result["total_minutes"] = round((time.perf_counter() - started) / 60, 2)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_json(args.out, result)
    print(f"bench-gpu: {result['total_minutes']} min, results in {args.out}")
    return result


if __name__ == "__main__":
    main()
