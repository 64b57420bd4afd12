"""The training loop: the whole dataset on the device as uint8, batched augmentation, one screen.

The same loop trains the poisoned model and fine-tunes it on clean data; only the config differs.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from .augment import random_crop, random_flip
from .errors import ConfigError
from .io import atomic_path, torch_save
from .models import create_model
from .seeding import derive_seed, generator

Loss = Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass
class LoopConfig:
    epochs: int = 4
    batch_size: int = 128
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    warmup_epochs: float = 0.5
    label_smoothing: float = 0.0
    crop_padding: int = 2
    flip: bool = True
    compile: bool = False

    def validate(self, section: str) -> None:
        positive = {"epochs": self.epochs, "batch_size": self.batch_size, "lr": self.lr}
        for name, value in positive.items():
            if value <= 0 and not (name == "epochs" and value == 0 and section == "finetune"):
                raise ConfigError(f"{section}.{name}: must be positive, got {value}")
        for name in ("momentum", "weight_decay", "warmup_epochs", "label_smoothing", "crop_padding"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{section}.{name}: must be >= 0, got {getattr(self, name)}")
        if self.label_smoothing >= 1:
            raise ConfigError(f"{section}.label_smoothing: must be < 1, got {self.label_smoothing}")


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


@dataclass
class Normalizer:
    """Per-channel mean/std of the training images; uint8 in, float out."""

    mean: list[float]
    std: list[float]

    @classmethod
    def fit(cls, images: torch.Tensor) -> "Normalizer":
        x = images.float().div_(255)
        return cls(x.mean(dim=(0, 2, 3)).tolist(), x.std(dim=(0, 2, 3)).clamp_min(1e-3).tolist())

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        mean = torch.tensor(self.mean, device=images.device).view(1, -1, 1, 1)
        std = torch.tensor(self.std, device=images.device).view(1, -1, 1, 1)
        x = images.float().div_(255).sub_(mean).div_(std)
        return x.contiguous(memory_format=torch.channels_last)  # faster on CPU too (measured: 1.4x)


@dataclass
class Classifier:
    """A model with what it needs to be rebuilt and fed: arch, shapes and input normalization, and what
    it was trained on (manifest digests, see backdoor.experiment.training_data_digests)."""

    model: nn.Module
    arch: str
    num_classes: int
    in_chans: int
    image_size: int
    normalizer: Normalizer
    model_kwargs: dict = field(default_factory=dict)
    trained_on: dict = field(default_factory=dict)

    @classmethod
    def create(cls, arch: str, train_images: torch.Tensor, num_classes: int, pretrained: bool = False,
               seed: int = 0, **model_kwargs) -> "Classifier":
        in_chans, image_size = train_images.shape[1], train_images.shape[-1]
        torch.manual_seed(derive_seed(seed, "model-init"))  # initial weights depend on the seed alone
        model = create_model(arch, num_classes=num_classes, in_chans=in_chans, image_size=image_size,
                             pretrained=pretrained, **model_kwargs)
        return cls(model, arch, num_classes, in_chans, image_size, Normalizer.fit(train_images), model_kwargs)

    def save(self, path: str | Path) -> None:
        state = {k: v.detach().cpu() for k, v in self.model.state_dict().items()}
        meta = {"arch": self.arch, "num_classes": self.num_classes, "in_chans": self.in_chans,
                "image_size": self.image_size, "normalizer": asdict(self.normalizer), "model_kwargs": self.model_kwargs,
                "trained_on": self.trained_on}
        with atomic_path(path) as tmp:
            torch_save({"state_dict": state, "meta": meta}, tmp)

    @classmethod
    def load(cls, path: str | Path) -> "Classifier":
        if not Path(path).is_file():
            raise ConfigError(f"missing model {path}: run the stage that trains it (dvc repro)")
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        meta = checkpoint["meta"]
        model = create_model(meta["arch"], num_classes=meta["num_classes"], in_chans=meta["in_chans"],
                             image_size=meta["image_size"], **meta["model_kwargs"])
        model.load_state_dict(checkpoint["state_dict"])
        return cls(model, meta["arch"], meta["num_classes"], meta["in_chans"], meta["image_size"],
                   Normalizer(**meta["normalizer"]), meta["model_kwargs"], meta.get("trained_on") or {})


def cross_entropy(label_smoothing: float = 0.0) -> Loss:
    return lambda model, x, y: F.cross_entropy(model(x), y, label_smoothing=label_smoothing)


def lr_factor(step: int, total: int, warmup: int) -> float:
    """Linear warm-up, then cosine decay to zero."""
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


def fit(clf: Classifier, images: torch.Tensor, labels: torch.Tensor, cfg: LoopConfig, *, seed: int,
        loss_fn: Loss | None = None, on_epoch_end: Callable[[int, float], None] | None = None,
        device: torch.device | None = None, progress: bool = True) -> None:
    """Train ``clf.model`` in place with SGD + Nesterov, warm-up + cosine, crop/flip per batch."""
    from tqdm import tqdm

    device = device or pick_device()
    torch.manual_seed(derive_seed(seed, "training-randomness"))  # dropout, mixup draws ...
    model = clf.model.to(device, memory_format=torch.channels_last)
    step_model = torch.compile(model) if cfg.compile else model
    loss_fn = loss_fn or cross_entropy(cfg.label_smoothing)
    images, labels = images.to(device), labels.to(device)  # uint8 on the device: no loader, no workers
    rng = generator(seed, "batches", device)
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]  # no weight decay on BN and biases
    optimizer = torch.optim.SGD([{"params": decay, "weight_decay": cfg.weight_decay},
                                 {"params": no_decay, "weight_decay": 0.0}],
                                lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.momentum > 0)
    steps_per_epoch = math.ceil(len(labels) / cfg.batch_size)
    total, warmup = cfg.epochs * steps_per_epoch, int(cfg.warmup_epochs * steps_per_epoch)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, total, warmup))
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        order = torch.randperm(len(labels), generator=rng, device=device)
        total_loss = torch.zeros((), device=device)
        batches = tqdm(order.split(cfg.batch_size), desc=f"epoch {epoch}/{cfg.epochs}", leave=False,
                       disable=None if progress else True)  # None: off when not a terminal
        for idx in batches:
            x = random_flip(images[idx], rng) if cfg.flip else images[idx]
            x = clf.normalizer(random_crop(x, cfg.crop_padding, rng))
            with autocast:
                loss = loss_fn(step_model, x, labels[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            total_loss += loss.detach() * len(idx)
        if on_epoch_end is not None:
            on_epoch_end(epoch, (total_loss / len(labels)).item())


def inference_model(model: nn.Module) -> nn.Module:
    """An eval-mode copy with BatchNorm folded into the preceding convs (1.4x faster on CPU, same
    predictions); the model itself when torch.fx cannot trace it."""
    from torch.fx.experimental.optimization import fuse

    try:
        return fuse(model.eval())
    except Exception:  # noqa: BLE001 - any untraceable model simply runs unfused
        return model.eval()


def predict(clf: Classifier, images: torch.Tensor, batch_size: int = 1024,
            device: torch.device | None = None) -> torch.Tensor:
    return predict_sets(clf, [images], batch_size, device)[0]


def predict_sets(clf: Classifier, image_sets: list[torch.Tensor], batch_size: int = 1024,
                 device: torch.device | None = None) -> list[torch.Tensor]:
    """Class predictions for several image sets with one fused inference copy of the model."""
    device = device or pick_device()
    was_training = clf.model.training
    # Move the model outside inference mode: its parameters must stay usable for training.
    model = inference_model(clf.model.to(device, memory_format=torch.channels_last))
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")
    results = []
    with torch.inference_mode():
        for images in image_sets:
            preds = []
            for batch in images.split(batch_size):
                with autocast:
                    preds.append(model(clf.normalizer(batch.to(device))).argmax(dim=1).cpu())
            results.append(torch.cat(preds) if preds else torch.empty(0, dtype=torch.int64))
    clf.model.train(was_training)
    return results
