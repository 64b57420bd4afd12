"""``nad``: neural attention distillation (Li, Lyu, Koren, Lyu, Li, Ma, ICLR 2021), as BackdoorBench implements it.

Source: BackdoorBench ``defense/nad.py`` with ``config/defense/nad/cifar10.yaml`` (SCLBD/BackdoorBench @ f02e353);
the authors' code (bboylyg/NAD @ f17b713, ``main.py``, ``at.py``). A teacher, a copy of the backdoored model, is
fine-tuned on the clean set with cross-entropy; then the backdoored model itself (the student) is trained on the
clean set with cross-entropy plus, at three depths, ``beta * MSE(A(student), A(teacher))``, where the attention map
A(f) sums |f|^p over the channels and divides by its L2 norm over the positions (+1e-6). The teacher stays frozen
in eval mode. Defaults: ``beta1/2/3`` 500 / 1000 / 1000 (shallow to deep), ``p`` 2.0. BackdoorBench trains the
teacher ``te_epochs`` (10) and then the student ``te_epochs`` again (its ``epochs: 100`` is unused), SGD lr 0.01
momentum 0.9 weight decay 5e-4, batch 256, crop and flip: 20 epochs in all, ``teacher_share`` 0.5 of them for the
teacher, at a constant lr (the student's ``adjust_learning_rate`` keeps 0.01 and its scheduler is never stepped;
the teacher's ``CosineAnnealingLR(T_max=100)``, stepped per epoch, stays within 2 % of 0.01 over 10 epochs).

Budget: the loop's epochs, ``teacher_share`` of them (rounded, at least one) fine-tuning the teacher and the rest
training the student; ``steps`` counts both. This method's ``loop`` fact carries BackdoorBench's 20 epochs (200
steps of batch 256 on 2,500 images); a student step costs about 1.2 FT steps (a teacher forward each), measured on
a CPU.

Differences:

- the three depths are the last three of the model's hidden stages (``models.hidden_layers``, timm's
  ``feature_info``: ``layer2..4`` of a four-stage ResNet, ``groups.0..2`` of airbench, ``stages.0..2`` of
  small-cnn); a model with fewer stages uses the ones it has, with the deepest betas. BackdoorBench's
  PreAct-ResNet18 branch takes ``layer3``, ``layer4`` and the 1x1 pooled output, whose normalised attention map is
  constant, so its ``beta3`` term is zero there; the authors' WRN returns its three groups, as here;
- every map comes from one forward pass through hooks (BackdoorBench reruns the student's layer prefixes in three
  more passes, which move its BatchNorm statistics four times a step);
- the student's and teacher's lr is constant at ``finetune.lr`` with no warm-up, the other loop settings are
  ``finetune:``'s (BackdoorBench's optimiser has no Nesterov momentum; ``finetune.nesterov`` decides here); no
  weight decay on norm layers and biases; ``finetune.label_smoothing`` applies to both cross-entropies;
- the teacher's batches are drawn from its own seed stream; fp32 on a CPU where BackdoorBench uses AMP.
"""

from __future__ import annotations

import copy
from dataclasses import replace

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import ConfigError
from ..hooks import capture_outputs, unwrap
from ..loop import Loss
from ..models import hidden_layers
from ..seeding import derive_seed
from . import METHODS, Method, Tuning

ATTENTION_EPS = 1e-6  # at.py's


def attention_map(features: torch.Tensor, p: float) -> torch.Tensor:
    """|f|^p summed over the channels, one row per image, L2-normalised over the positions (at.py's ``attention_map``;
    channels are dim 1 of an N x C x H x W map, the last dim of N x tokens x C)."""
    power = features.float().abs().pow(p)
    maps = (power.sum(dim=1) if power.ndim == 4 else power.sum(dim=-1)).flatten(1)
    return maps / (maps.norm(dim=1, keepdim=True) + ATTENTION_EPS)


def attention_layers(model: nn.Module) -> list[str]:
    layers = hidden_layers(unwrap(model))[-3:]
    if not layers:
        raise ConfigError(f"finetune_methods.nad: {type(model).__name__} names no hidden stages (feature_info)")
    return layers


def nad_loss(teacher: nn.Module, layers: list[str], betas: list[float], p: float, label_smoothing: float) -> Loss:
    """Cross-entropy plus ``beta * MSE`` of the attention maps at ``layers`` (shallow to deep, each with its beta)
    against the frozen teacher's."""

    def loss(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        student = unwrap(net)  # hooks need the eager module
        with capture_outputs(student, layers) as ours:
            logits = student(x)
        with torch.no_grad(), capture_outputs(teacher, layers) as theirs:
            teacher(x)
        distill = sum(
            beta * F.mse_loss(attention_map(ours[name], p), attention_map(theirs[name], p))
            for name, beta in zip(layers, betas)
        )
        return F.cross_entropy(logits, y, label_smoothing=label_smoothing) + distill

    return loss


def teacher_epochs(epochs: int, share: float) -> int:
    """The teacher's epochs: ``share`` of them, at least one, leaving at least one to the student."""
    if epochs < 2:
        raise ConfigError(f"finetune_methods.nad: needs 2 or more epochs (teacher, then student), got {epochs}")
    return min(max(1, round(share * epochs)), epochs - 1)


def constant(step: int, total: int) -> float:
    return 1.0


@METHODS.register(
    "nad",
    reference="Li et al. ICLR 2021; BackdoorBench defense/nad.py (SCLBD/BackdoorBench @ f02e353), bboylyg/NAD",
    loop={"epochs": 20},
)
def nad(
    *, beta1: float = 500.0, beta2: float = 1000.0, beta3: float = 1000.0, p: float = 2.0, teacher_share: float = 0.5
) -> Method:
    betas = [
        float(METHODS.number("nad", key, b, low=0.0))
        for key, b in (("beta1", beta1), ("beta2", beta2), ("beta3", beta3))
    ]
    p = float(METHODS.number("nad", "p", p, low=0.0, low_open=True))
    share = float(
        METHODS.number("nad", "teacher_share", teacher_share, low=0.0, high=1.0, low_open=True, high_open=True)
    )

    def run(tuning: Tuning) -> dict:
        cfg = tuning.cfg
        first = teacher_epochs(cfg.epochs, share)
        teacher = replace(tuning.clf, model=copy.deepcopy(tuning.clf.model))
        teacher_run = replace(
            tuning,
            clf=teacher,
            cfg=replace(cfg, epochs=first),
            seed=derive_seed(tuning.seed, "nad-teacher"),
            on_epoch_end=None,  # the teacher is not the model the pipeline evaluates
        )
        steps = teacher_run.fit(schedule=constant)
        teacher.model.eval().requires_grad_(False)

        def on_epoch_end(epoch: int, loss: float) -> None:  # the student's epochs continue the teacher's
            if tuning.on_epoch_end is not None:
                tuning.on_epoch_end(first + epoch, loss)

        layers = attention_layers(tuning.clf.model)
        loss = nad_loss(teacher.model, layers, betas[-len(layers) :], p, cfg.label_smoothing)
        student = replace(tuning, cfg=replace(cfg, epochs=cfg.epochs - first), on_epoch_end=on_epoch_end)
        steps += student.fit(loss_fn=loss, schedule=constant)
        return {"steps": steps, "nad_teacher_epochs": first, "nad_layers": " ".join(layers)}

    return run
