"""Training throughput: our loop versus the conventional torchvision Dataset + DataLoader pipeline.

Both train the same model (same initial weights) on the same uint8 images for the same number of
steps, with the same SGD + Nesterov step, LR schedule, loss, crop/flip augmentation and, on CUDA,
the same bf16 autocast and channels_last layout, so the ratio isolates the input pipeline:

  ours      backdoor.loop.fit: the whole dataset as uint8 on the device, crop/flip/normalize
            applied to each batch as tensor ops there; no loader, no worker processes.
  baseline  what backdoor toolboxes do: a Dataset that returns one PIL image per index (like
            torchvision's CIFAR10/MNIST: Image.fromarray on a stored uint8 array), transforms
            RandomCrop(padding) + RandomHorizontalFlip + ToTensor + Normalize per sample, batched
            by a DataLoader with --num-workers worker processes (default 2 on CPU, 8 on CUDA).

Warm-up steps (cuDNN autotuning, torch.compile, DataLoader worker start) are not timed. Prints
images/s for both and their ratio; on CUDA also MFU = 3 x forward FLOPs/image x images/s / peak,
forward FLOPs counted by torch.utils.flop_counter.FlopCounterMode, peak from --peak-tflops (989:
H100 SXM bf16 dense).

  python benchmarks/train_throughput.py --smoke                       # seconds, anywhere (the test)
  python benchmarks/train_throughput.py                               # small-cnn, 1x28x28, CPU default
  python benchmarks/train_throughput.py --dataset-shape cifar10 --arch resnet18 --steps 100
  python benchmarks/train_throughput.py --cifar10-epoch               # one resnet18 epoch, 50k 32 px images (GPU)
  python benchmarks/train_throughput.py --data data/grid/raw/cifar10  # a stored dataset instead of random data
"""

from __future__ import annotations

import argparse
import copy
import math
import time
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from backdoor.classifier import Classifier, pick_device
from backdoor.loop import fit, lr_factor
from backdoor.settings import LoopConfig

SHAPES = {
    "fashion-mnist": (1, 28, 28),
    "mnist": (1, 28, 28),
    "cifar10": (3, 32, 32),
    "flowers": (3, 224, 224),
    "flowers102": (3, 224, 224),
    "imagenet": (3, 224, 224),
}
H100_BF16_DENSE_TFLOPS = 989.0


def parse_shape(text: str) -> tuple[int, int, int]:
    if text in SHAPES:
        return SHAPES[text]
    try:
        c, h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: a dataset name ({', '.join(SHAPES)}) or CxHxW, e.g. 3x32x32"
        ) from None
    return c, h, w


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__
    )
    p.add_argument("--arch", default="small-cnn", help="any registered arch or timm model (default small-cnn)")
    p.add_argument(
        "--dataset-shape",
        type=parse_shape,
        default=SHAPES["fashion-mnist"],
        help="dataset name or CxHxW for synthetic data (default fashion-mnist = 1x28x28)",
    )
    p.add_argument("--num-classes", type=int, default=10)
    p.add_argument("--data", type=Path, help="a stored dataset folder (data/raw/<name>) instead of synthetic data")
    p.add_argument("--steps", type=int, default=50, help="timed training steps per pipeline")
    p.add_argument("--warmup-steps", type=int, default=5, help="untimed steps before timing")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--num-workers", type=int, help="baseline DataLoader workers (default 2 on CPU, 8 on CUDA)")
    p.add_argument("--crop-padding", type=int, default=2)
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, help="torch CPU threads of the training process (default: torch's)")
    p.add_argument("--compile", action="store_true", help="torch.compile the model in both pipelines")
    p.add_argument(
        "--peak-tflops",
        type=float,
        default=H100_BF16_DENSE_TFLOPS,
        help="accelerator peak for MFU (default 989 = H100 SXM bf16 dense)",
    )
    p.add_argument(
        "--cifar10-epoch",
        action="store_true",
        help="time one epoch of resnet18 on 50,000 CIFAR-10-shaped images (a GPU run)",
    )
    p.add_argument("--smoke", action="store_true", help="a tiny run (seconds on a CPU) that checks the script works")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if args.cifar10_epoch:
        args.arch, args.dataset_shape, args.crop_padding = "resnet18", SHAPES["cifar10"], 4
        args.steps = math.ceil(50_000 / args.batch_size)
        args.warmup_steps = max(args.warmup_steps, 20)
    if args.smoke:
        args.steps, args.warmup_steps, args.batch_size = 3, 1, 8
    for name in ("steps", "batch_size", "num_classes"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be positive")
    if args.warmup_steps < 0:
        p.error("--warmup-steps must be >= 0")
    return args


# ---------------------------------------------------------------- data


def synthetic(shape: tuple[int, int, int], n: int, num_classes: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, *shape), dtype=torch.uint8, generator=g)
    return images, torch.randint(0, num_classes, (n,), generator=g)


def stored(path: Path, n: int) -> tuple[torch.Tensor, torch.Tensor, int]:
    from backdoor.datasets import load_dataset

    ds = load_dataset(path)
    idx = torch.arange(n) % len(ds.train)  # cycle if the dataset is smaller than the run
    return ds.train.images[idx], ds.train.labels[idx], ds.num_classes


class PILDataset(torch.utils.data.Dataset):
    """torchvision's CIFAR10/MNIST pattern: uint8 HWC array in memory, one PIL image per __getitem__."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, transform):
        self.data = images.permute(0, 2, 3, 1).contiguous().numpy()  # N, H, W, C
        self.targets = labels.tolist()
        self.transform = transform

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int):
        from PIL import Image

        img = self.data[index]
        img = Image.fromarray(img[..., 0], mode="L") if img.shape[-1] == 1 else Image.fromarray(img)
        return self.transform(img), self.targets[index]


# ---------------------------------------------------------------- the two pipelines


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_ours(clf: Classifier, images: torch.Tensor, labels: torch.Tensor, args, device: torch.device) -> float:
    """Seconds for ``args.steps`` steps of backdoor.loop.fit (one epoch over steps x batch images)."""
    cfg = LoopConfig(epochs=1, batch_size=args.batch_size, crop_padding=args.crop_padding, compile=args.compile)
    bs = args.batch_size
    if args.warmup_steps:
        fit(
            clf,
            images[: args.warmup_steps * bs],
            labels[: args.warmup_steps * bs],
            cfg,
            seed=args.seed,
            device=device,
            progress=False,
        )
    timed = slice(args.warmup_steps * bs, (args.warmup_steps + args.steps) * bs)
    sync(device)
    start = time.perf_counter()
    fit(clf, images[timed], labels[timed], cfg, seed=args.seed, device=device, progress=False)
    sync(device)
    return time.perf_counter() - start


def time_dataloader(
    model: nn.Module,
    mean: list[float],
    std: list[float],
    images: torch.Tensor,
    labels: torch.Tensor,
    args,
    device: torch.device,
) -> float:
    """Seconds for ``args.steps`` steps of the per-sample PIL + DataLoader pipeline, after the warm-up steps."""
    from torchvision import transforms

    size = images.shape[-1]
    transform = transforms.Compose(
        [
            transforms.RandomCrop(size, padding=args.crop_padding),
            transforms.RandomHorizontalFlip(),
            transforms.ToTensor(),
            transforms.Normalize(mean, std),
        ]
    )
    bs, total = args.batch_size, args.warmup_steps + args.steps
    dataset = PILDataset(images[: total * bs], labels[: total * bs], transform)
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_size=bs,
        shuffle=True,
        num_workers=args.num_workers,
        pin_memory=device.type == "cuda",
        drop_last=True,
        generator=torch.Generator().manual_seed(args.seed),
    )
    model = model.to(device, memory_format=torch.channels_last).train()
    step_model = torch.compile(model) if args.compile else model
    cfg = LoopConfig()
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    optimizer = torch.optim.SGD(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=cfg.lr,
        momentum=cfg.momentum,
        nesterov=True,
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, total, 0))
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")
    start = None
    for step, (x, y) in enumerate(loader):
        if step == args.warmup_steps:
            sync(device)
            start = time.perf_counter()
        x = x.to(device, non_blocking=True).contiguous(memory_format=torch.channels_last)
        y = y.to(device, non_blocking=True)
        with autocast:
            loss = F.cross_entropy(step_model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
    sync(device)
    return time.perf_counter() - start


def forward_flops(model: nn.Module, shape: tuple[int, int, int], device: torch.device) -> float:
    """Forward FLOPs per image (FlopCounterMode: 2 per multiply-add, convolutions and matmuls)."""
    from torch.utils.flop_counter import FlopCounterMode

    model = copy.deepcopy(model).to(device).eval()
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(torch.zeros(1, *shape, device=device))
    return float(counter.get_total_flops())


# ---------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> dict[str, float]:
    args = parse_args(argv)
    device = pick_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.num_workers is None:
        args.num_workers = 8 if device.type == "cuda" else 2
    n = (args.warmup_steps + args.steps) * args.batch_size
    if args.data is not None:
        images, labels, args.num_classes = stored(args.data, n)
        source = f"{args.data} (train split, cycled to {n} images)"
    else:
        images, labels = synthetic(args.dataset_shape, n, args.num_classes, args.seed)
        source = f"synthetic uint8 {'x'.join(map(str, args.dataset_shape))}, {n} images"
    shape = tuple(images.shape[1:])

    clf = Classifier.create(args.arch, images, args.num_classes)
    initial = copy.deepcopy(clf.model)  # both pipelines start from the same weights
    flops = forward_flops(initial, shape, device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{torch.get_num_threads()} torch threads"
    print(f"device: {device} ({name}); torch {torch.__version__}")
    print(
        f"arch {args.arch}; data {source}; batch {args.batch_size}; {args.steps} timed steps "
        f"after {args.warmup_steps} warm-up steps{'; torch.compile' if args.compile else ''}"
    )
    print(f"forward FLOPs/image: {flops / 1e6:.1f} MFLOP")

    timed_images = args.steps * args.batch_size
    ours = timed_images / time_ours(clf, images, labels, args, device)
    print(f"ours (uint8 on the device, batched augmentation): {ours:,.1f} images/s")
    baseline = timed_images / time_dataloader(
        initial, clf.normalizer.mean, clf.normalizer.std, images, labels, args, device
    )
    print(f"torchvision Dataset + DataLoader ({args.num_workers} workers): {baseline:,.1f} images/s")
    print(f"ratio (ours / DataLoader): {ours / baseline:.2f}x")
    result = {
        "ours_images_per_s": ours,
        "dataloader_images_per_s": baseline,
        "ratio": ours / baseline,
        "forward_flops_per_image": flops,
    }
    if args.cifar10_epoch:
        print(f"one epoch of 50,000 images: ours {50_000 / ours:.1f} s, DataLoader {50_000 / baseline:.1f} s")
    if device.type == "cuda":
        peak = args.peak_tflops * 1e12
        result.update(ours_mfu=3 * flops * ours / peak, dataloader_mfu=3 * flops * baseline / peak)
        print(
            f"MFU (3 x forward FLOPs x images/s / {args.peak_tflops:g} TFLOP/s): ours {result['ours_mfu']:.2%}, "
            f"DataLoader {result['dataloader_mfu']:.2%}"
        )
    return result


if __name__ == "__main__":
    main()
