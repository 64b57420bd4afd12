"""The training loop: the whole dataset on the device as uint8, batched augmentation, one screen.

The same loop trains the poisoned model and fine-tunes it on clean data; only the config differs.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from .augment import random_crop, random_flip
from .classifier import Classifier, pick_device
from .seeding import derive_seed, generator
from .settings import LoopConfig

Loss = Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]


def cross_entropy(label_smoothing: float = 0.0) -> Loss:
    return lambda model, x, y: F.cross_entropy(model(x), y, label_smoothing=label_smoothing)


def lr_factor(step: int, total: int, warmup: int) -> float:
    """Linear warm-up, then cosine decay to zero."""
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


LrFactor = Callable[[int, int], float]  # (step, total steps) -> factor of cfg.lr
Gradients = Callable[[nn.Module, Loss, torch.Tensor, torch.Tensor], torch.Tensor]  # leaves .grad, returns the loss


def backward(model: nn.Module, loss_fn: Loss, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The plain step's gradients: the loss's, by one backward pass."""
    loss = loss_fn(model, x, y)
    loss.backward()
    return loss


def warmup_cosine(cfg: LoopConfig, steps_per_epoch: int) -> LrFactor:
    warmup = int(cfg.warmup_epochs * steps_per_epoch)
    return lambda step, total: lr_factor(step, total, warmup)


def fit(
    clf: Classifier,
    images: torch.Tensor,
    labels: torch.Tensor,
    cfg: LoopConfig,
    *,
    seed: int,
    loss_fn: Loss | None = None,
    on_epoch_end: Callable[[int, float], None] | None = None,
    device: torch.device | None = None,
    progress: bool = True,
    params: list[nn.Parameter] | None = None,
    schedule: LrFactor | None = None,
    after_step: Callable[[], None] | None = None,
    freeze_norm_stats: bool = False,
    gradients: Gradients | None = None,
) -> int:
    """Train ``clf.model`` in place with SGD (+ Nesterov unless ``cfg.nesterov`` is off), warm-up + cosine per step
    (or ``schedule``), crop/flip per batch; return the optimizer steps taken.

    ``params``: the parameters to train (default all; the others keep their values, and their BatchNorm statistics
    still follow the data unless ``freeze_norm_stats``: then BatchNorm layers with no trained parameter stay in eval
    mode, a frozen backbone); ``after_step``: called after every optimizer step (a fine-tuning method's constraint);
    ``gradients``: computes the batch's loss and leaves the gradients the step follows in ``.grad`` (default: the
    loss's own; sharpness-aware minimisation takes them at perturbed weights)."""
    from tqdm import tqdm

    device = device or pick_device()
    torch.manual_seed(derive_seed(seed, "training-randomness"))  # dropout, mixup draws ...
    model = clf.model.to(device, memory_format=torch.channels_last)
    step_model = torch.compile(model) if cfg.compile else model
    loss_fn = loss_fn or cross_entropy(cfg.label_smoothing)
    images, labels = images.to(device), labels.to(device)  # uint8 on the device: no loader, no workers
    rng = generator(seed, "batches", device)
    trained = list(model.parameters()) if params is None else params
    trained_ids = {id(p) for p in trained}
    frozen_norms = [
        m
        for m in model.modules()
        if freeze_norm_stats
        and isinstance(m, nn.modules.batchnorm._BatchNorm)
        and not any(id(p) in trained_ids for p in m.parameters(recurse=False))
    ]
    decay = [p for p in trained if p.ndim > 1]
    no_decay = [p for p in trained if p.ndim <= 1]  # no weight decay on BN and biases
    optimizer = torch.optim.SGD(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=cfg.lr,
        momentum=cfg.momentum,
        nesterov=cfg.nesterov and cfg.momentum > 0,
    )
    steps_per_epoch = math.ceil(len(labels) / cfg.batch_size)
    total = cfg.epochs * steps_per_epoch
    factor = schedule or warmup_cosine(cfg, steps_per_epoch)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: factor(s, total))
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")

    def amp_loss(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        with autocast:
            return loss_fn(net, x, y)

    steps = 0
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        for norm in frozen_norms:
            norm.eval()
        order = torch.randperm(len(labels), generator=rng, device=device)
        total_loss = torch.zeros((), device=device)
        batches = tqdm(
            order.split(cfg.batch_size),
            desc=f"epoch {epoch}/{cfg.epochs}",
            leave=False,
            disable=None if progress else True,
        )  # None: off when not a terminal
        for idx in batches:
            x = random_flip(images[idx], rng) if cfg.flip else images[idx]
            x = clf.normalizer(random_crop(x, cfg.crop_padding, rng))
            optimizer.zero_grad(set_to_none=True)
            loss = (gradients or backward)(step_model, amp_loss, x, labels[idx])
            optimizer.step()
            scheduler.step()
            steps += 1
            if after_step is not None:
                after_step()
            total_loss += loss.detach() * len(idx)
        if on_epoch_end is not None:
            on_epoch_end(epoch, (total_loss / len(labels)).item())
    return steps
