"""``ft-sam``: fine-tuning with sharpness-aware minimisation (Zhu, Wei, Shen, Fan, Wu, ICCV 2023), as BackdoorBench
implements it.

Source: BackdoorBench ``defense/ft-sam.py``, ``utils/defense_utils/sam/sam.py`` and
``config/defense/ft-sam/cifar10.yaml`` (SCLBD/BackdoorBench @ f02e353). Every step: the gradient g at the weights
w; an ascent to w + e, with e = rho * g / ||g|| (plain SAM) or, with ``adaptive`` (ASAM, BackdoorBench's default:
its ``--adaptive`` flag is ``store_false``), e = rho * w^2 * g / || |w| * g ||; the gradient at w + e, taken with
BatchNorm's running statistics held; the weights put back to w; then the SGD step along that second gradient.
``rho`` 2.0 (the config's ``rho_max`` = ``rho_min``: a constant radius); the loss is cross-entropy with label
smoothing 0.1 (the config's ``label_smoothing``, this method's ``loop`` fact); the rest is the FT config (SGD
momentum 0.9, lr 0.01, weight decay 5e-4, 100 epochs of batch 256 on 5 % of the training data), the shared
``finetune:`` block. Budget: the loop's steps, each two forward-backward passes (2.0 FT steps, measured on a CPU).

Differences:

- the lr follows the loop's schedule (warm-up, then cosine to zero over all steps); BackdoorBench steps its
  ``CosineAnnealingLR(T_max=100)`` once per *batch*, so its lr is a cosine wave of period 200 steps (five waves
  in its 1,000 steps);
- label smoothing is torch's (``smoothing / classes`` on every class); BackdoorBench's ``smooth_crossentropy`` puts
  ``smoothing / (classes - 1)`` on the other classes alone;
- GSAM's gradient decomposition (the config's ``alpha: 0.0``, which switches it off) is not implemented;
- the weights are restored from a copy, not by subtracting e (exactly w again, no rounding);
- the clean set is the pipeline's seeded draw (``ft-sam.py`` draws it class-balanced), and, as ``ft``: no weight
  decay on norm layers and biases, fp32 on a CPU where BackdoorBench uses AMP.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn as nn

from ..hooks import unwrap
from ..loop import Gradients, Loss
from . import METHODS, Method, Tuning

NORM_EPS = 1e-12  # sam.py's perturb_eps


@contextmanager
def frozen_running_stats(model: nn.Module) -> Iterator[None]:
    """BatchNorm still normalises by the batch, but its running statistics stay as they are (momentum 0), as
    sam.py's ``disable_running_stats`` does for the pass at the perturbed weights."""
    norms = [m for m in unwrap(model).modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.momentum = 0.0
    try:
        yield
    finally:
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum


@torch.no_grad()
def ascent(params: list[nn.Parameter], rho: float, adaptive: bool) -> list[torch.Tensor]:
    """The step e to the worst point within radius ``rho`` (in ASAM's weight-scaled norm when ``adaptive``)."""
    scaled = [p.grad * p.abs() if adaptive else p.grad for p in params]
    norm = torch.linalg.vector_norm(torch.stack([s.norm() for s in scaled]))
    return [rho * p.grad * (p * p if adaptive else 1) / (norm + NORM_EPS) for p in params]


def sam_gradients(rho: float, adaptive: bool) -> Gradients:
    """``fit``'s gradient hook: leaves the gradient at the perturbed weights in ``.grad``, the weights unchanged."""

    def gradients(model: nn.Module, loss_fn: Loss, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        loss = loss_fn(model, x, y)
        loss.backward()
        params = [p for p in model.parameters() if p.grad is not None]
        saved = [p.detach().clone() for p in params]
        with torch.no_grad():
            for p, e in zip(params, ascent(params, rho, adaptive)):
                p.add_(e)
        for p in params:
            p.grad = None
        with frozen_running_stats(model):
            loss_fn(model, x, y).backward()
        with torch.no_grad():
            for p, w in zip(params, saved):
                p.copy_(w)
        return loss  # the loss at w, as sam.py reports it

    return gradients


@METHODS.register(
    "ft-sam",
    reference="Zhu et al. ICCV 2023; BackdoorBench defense/ft-sam.py (SCLBD/BackdoorBench @ f02e353)",
    loop={"label_smoothing": 0.1},
)
def ft_sam(*, rho: float = 2.0, adaptive: bool = True) -> Method:
    rho = float(METHODS.number("ft-sam", "rho", rho, low=0.0, low_open=True))
    adaptive = METHODS.flag("ft-sam", "adaptive", adaptive)

    def run(tuning: Tuning) -> dict:
        return {"steps": tuning.fit(gradients=sam_gradients(rho, adaptive))}

    return run
