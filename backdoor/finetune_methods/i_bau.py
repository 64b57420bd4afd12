"""``i-bau``: implicit backdoor adversarial unlearning (Zeng, Chen, Park, Mao, Jin, Jia, ICLR 2022), as BackdoorBench
implements it.

Source: BackdoorBench ``defense/i-bau.py`` with ``config/defense/i-bau/cifar10.yaml`` (SCLBD/BackdoorBench @
f02e353); the authors' code (YiZeng623/I-BAU @ d4bfa52, ``defense.py``, ``hypergrad.py``). The model stays in eval
mode. Each round (an epoch of the clean set):

1. a universal perturbation delta, one 1 x C x H x W tensor added to every (normalised) image, starts at zero and
   takes one SGD step (lr ``perturbation_lr``, 10) per batch on ``-CE(f(x + delta), f(x)'s own labels) +
   penalty * ||delta||^2`` (``penalty`` 0.001);
2. then, per batch, the model takes one Adam step along the implicit hypergradient of the outer loss
   ``CE(f(x + delta on a random perturbed_fraction of the batch), y)`` (``perturbed_fraction`` 0.01), with delta
   taken as the fixed point of one gradient step (lr ``inner_lr``, 0.1) on the inner loss ``-CE(f(x + delta), y) +
   penalty * ||delta||^2``: ``fixed_point_iterations`` (K, 5) iterations of v <- J^T v + dL/d delta, J the step's
   Jacobian in delta, then grad = dL/dtheta + (d step / d theta)^T v (hypergrad.py's ``fixed_point``).

The loop's ``epochs`` are the rounds, ``lr`` Adam's (amsgrad, betas 0.9 / 0.999, as BackdoorBench's
``argparser_opt_scheduler`` builds it; its scheduler is never stepped: a constant lr); this method's ``loop`` fact
sets BackdoorBench's ``n_rounds`` 5, ``lr`` 1e-4 and ``wd`` 0. ``finetune.momentum`` and ``nesterov`` are unused.
Budget: ``steps`` counts the model's Adam steps, one per batch and round. The hypergradient's double-backward
passes make each cost about 9 FT steps on resnet6-cpu and 22 on small-cnn (measured on a CPU; a round's
perturbation pass adds about one per batch), so BackdoorBench's 5 rounds on 2,500 images cost about an FT of 900
steps of batch 128 on resnet6-cpu, and twice that on small-cnn, where ``finetune_methods.i-bau.epochs: 2`` would
fit; the default keeps the reference's 5.

Differences:

- each round draws fresh batches (seeded order, crop and flip as ``finetune:`` sets them) for both passes;
  BackdoorBench's unlearning batches are drawn, augmented, once before the first round;
- the inner loss of the fixed-point map uses the current batch; both codes use the clean set's first batch for it
  in every step;
- the perturbed images of each outer batch are a seeded draw (``random.sample`` there): int(fraction x batch),
  so 1 image of a batch of 128 and none below 100 (then the step is plain cross-entropy on the batch);
- the fixed-point iteration skips the reference's first, trivial iterate from v = 0 (the same v after K) and
  never stops early (the reference stops below a 1e-10 change, which does not happen in practice);
- no weight decay on norm layers and biases (0 everywhere by default); fp32 on every device (no autocast through
  the double-backward passes), where BackdoorBench's config sets AMP, which its i-bau.py does not use.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..augment import random_crop, random_flip
from ..classifier import pick_device
from ..seeding import generator
from . import METHODS, Method, Tuning

Objective = Callable[[torch.Tensor], torch.Tensor]  # a loss as a function of the perturbation


def clean_batches(tuning: Tuning, rng: torch.Generator, device: torch.device) -> Iterator[tuple[torch.Tensor, ...]]:
    """One epoch of the clean set in a seeded order, cropped and flipped as the loop would, normalised."""
    cfg = tuning.cfg
    images, labels = tuning.images.to(device), tuning.labels.to(device)
    for idx in torch.randperm(len(labels), generator=rng, device=rng.device).to(device).split(cfg.batch_size):
        x = random_flip(images[idx], rng) if cfg.flip else images[idx]
        yield tuning.clf.normalizer(random_crop(x, cfg.crop_padding, rng)), labels[idx]


def universal_perturbation(
    model: nn.Module, batches: Iterator[tuple[torch.Tensor, ...]], shape: tuple[int, ...], lr: float, penalty: float
) -> torch.Tensor:
    """One tensor of ``shape`` (1 x C x H x W), added to every image, that moves the model off its own predictions:
    one SGD step per batch on ``-CE(f(x + delta), argmax f(x)) + penalty * ||delta||^2`` from zero."""
    delta = torch.zeros(shape, device=next(model.parameters()).device, requires_grad=True)
    optimizer = torch.optim.SGD([delta], lr=lr)
    for x, _ in batches:
        with torch.no_grad():
            own = model(x).argmax(dim=1)
        loss = -F.cross_entropy(model(x + delta), own) + penalty * delta.pow(2).sum()
        optimizer.zero_grad()
        loss.backward(inputs=[delta])
        optimizer.step()
    return delta.detach()


def hypergradient(
    params: list[nn.Parameter],
    delta: torch.Tensor,
    inner: Objective,
    outer: Objective,
    iterations: int,
    inner_lr: float,
) -> torch.Tensor:
    """Leave in ``.grad`` the implicit hypergradient of ``outer`` in ``params``, with ``delta`` the fixed point of
    one gradient step on ``inner``; return the outer loss."""
    delta = delta.detach().requires_grad_(True)
    loss = outer(delta)
    d_delta, *d_params = torch.autograd.grad(loss, [delta, *params], allow_unused=True)
    step = delta - inner_lr * torch.autograd.grad(inner(delta), delta, create_graph=True)[0]
    v = d_delta  # sum over k < K of (J^T)^k dL/d delta
    for _ in range(iterations - 1):
        v = torch.autograd.grad(step, delta, grad_outputs=v, retain_graph=True)[0] + d_delta
    implicit = torch.autograd.grad(step, params, grad_outputs=v, allow_unused=True)
    for p, direct, indirect in zip(params, d_params, implicit):
        p.grad = sum((g for g in (direct, indirect) if g is not None), torch.zeros_like(p))
    return loss.detach()


def objectives(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, chosen: torch.Tensor, penalty: float
) -> tuple[Objective, Objective]:
    """The inner loss (the perturbation's, on every image of the batch) and the outer one (the model's, with the
    perturbation on the ``chosen`` images alone), each as a function of the perturbation."""

    def inner(d: torch.Tensor) -> torch.Tensor:
        return -F.cross_entropy(model(x + d), y) + penalty * d.pow(2).sum()

    def outer(d: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(model(x + chosen.view(-1, 1, 1, 1) * d), y)

    return inner, outer


def adam(params: list[nn.Parameter], lr: float, weight_decay: float) -> torch.optim.Optimizer:
    """BackdoorBench's outer optimiser: Adam with amsgrad; no weight decay on norm layers and biases."""
    groups = [
        {"params": [p for p in params if p.ndim > 1], "weight_decay": weight_decay},
        {"params": [p for p in params if p.ndim <= 1], "weight_decay": 0.0},
    ]
    return torch.optim.Adam(groups, lr=lr, betas=(0.9, 0.999), amsgrad=True)


@METHODS.register(
    "i-bau",
    reference="Zeng et al. ICLR 2022; BackdoorBench defense/i-bau.py (SCLBD/BackdoorBench @ f02e353), YiZeng623/I-BAU",
    loop={"epochs": 5, "lr": 1e-4, "weight_decay": 0.0},
)
def i_bau(
    *,
    fixed_point_iterations: int = 5,
    inner_lr: float = 0.1,
    perturbation_lr: float = 10.0,
    penalty: float = 0.001,
    perturbed_fraction: float = 0.01,
) -> Method:
    name = "i-bau"
    iterations = int(METHODS.number(name, "fixed_point_iterations", fixed_point_iterations, low=1, integer=True))
    inner_lr = float(METHODS.number(name, "inner_lr", inner_lr, low=0.0, low_open=True))
    perturbation_lr = float(METHODS.number(name, "perturbation_lr", perturbation_lr, low=0.0, low_open=True))
    penalty = float(METHODS.number(name, "penalty", penalty, low=0.0))
    fraction = float(METHODS.number(name, "perturbed_fraction", perturbed_fraction, low=0.0, high=1.0))

    def run(tuning: Tuning) -> dict:
        device = pick_device()
        model = tuning.clf.model.to(device, memory_format=torch.channels_last).eval()
        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = adam(params, tuning.cfg.lr, tuning.cfg.weight_decay)
        rng, picks = generator(tuning.seed, "batches", device), generator(tuning.seed, "i-bau-perturbed")
        shape = (1, *tuning.images.shape[1:])
        steps, delta = 0, torch.zeros(shape)
        for epoch in range(1, tuning.cfg.epochs + 1):
            delta = universal_perturbation(model, clean_batches(tuning, rng, device), shape, perturbation_lr, penalty)
            total = torch.zeros((), device=device)
            for x, y in clean_batches(tuning, rng, device):
                chosen = torch.zeros(len(y), device=device)
                chosen[torch.randperm(len(y), generator=picks)[: int(len(y) * fraction)].to(device)] = 1
                inner, outer = objectives(model, x, y, chosen, penalty)
                optimizer.zero_grad(set_to_none=True)
                total += hypergradient(params, delta, inner, outer, iterations, inner_lr) * len(y)
                optimizer.step()
                steps += 1
            if tuning.on_epoch_end is not None:
                tuning.on_epoch_end(epoch, (total / len(tuning.labels)).item())
        return {"steps": steps, "ibau_perturbation_norm": delta.norm().item()}

    return run
