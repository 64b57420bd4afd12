"""``anp``: adversarial neuron pruning (Wu and Wang, NeurIPS 2021), as BackdoorBench implements it.

Source: BackdoorBench ``defense/anp.py``, ``utils/defense_utils/anp/anp_model/anp_batchnorm.py`` and
``config/defense/anp/cifar10.yaml`` (SCLBD/BackdoorBench @ f02e353); the authors' code (csdongxian/ANP_backdoor
@ ec7b179, ``optimize_mask_cifar.py``, ``prune_neuron_cifar.py``). Every unit (channel) of every normalisation layer
gets a mask m in [0, 1], multiplying its scale. Each step, on a batch of the clean set: noise on every unit's scale
and bias, drawn uniform in [-eps, eps], takes ``perturbation_steps`` signed-gradient ascent steps of size
eps / steps on the cross-entropy (the layer computing ``weight * (m + noise)`` and ``bias * (1 + noise_bias)``);
then the masks take an SGD step on ``alpha * CE(clean) + (1 - alpha) * CE(perturbed)`` and are clipped to [0, 1].
Then units are pruned (their scale set to 0, the bias kept, as both codes do) at thresholds 0, 0.05, ..., 0.90:
every unit whose mask is at or below the threshold. Defaults: ``eps`` 0.4, ``perturbation_steps`` 1, ``alpha`` 0.2,
``pruning_max`` 0.9, ``pruning_step`` 0.05, ``acc_ratio`` 0.1; the mask optimiser is SGD at ``finetune.lr``
(the config's 0.01) with ``finetune.momentum`` (0.9), on batches of ``finetune.batch_size`` with its crop and flip.

Which threshold. BackdoorBench keeps the one with the lowest ASR on the triggered test set among those losing
less than ``acc_ratio`` (relative) of the clean test accuracy: it needs the attacker's trigger. This module keeps
a defender's choice instead, on the clean set alone: the largest threshold before the first whose clean-set
accuracy falls by ``acc_ratio`` (relative) or more (none, and nothing pruned, when the first already does). Both
are reported: ``anp_threshold``, ``anp_pruned`` and ``anp_clean_set_acc`` for the model kept, and, when the
poisoned set is at hand, ``anp_attacker_rule_threshold``, ``anp_attacker_rule_pruned``,
``anp_attacker_rule_clean_acc`` and ``anp_attacker_rule_asr`` (test-set values) for BackdoorBench's.

Budget. BackdoorBench runs 2,000 mask steps of batch 256 (``nb_iter``; 205 epochs of its 2,500 images), each
costing about two FT steps (a perturbation pass, then a clean and a perturbed pass: 1.9x on resnet6-cpu, 2.4x on
small-cnn, measured on a CPU); that is about nine times an FT of 1,000 steps of batch 128, which does not fit. This
method takes the loop's epochs instead, and its ``loop`` fact sets 15: 150 mask steps of batch 256 (300 of batch
128) on 2,500 images, 7.5 % of BackdoorBench's, which with the threshold scans (an inference of the clean set per
threshold, and of the test sets per distinct pruned set for the reported rule) costs about that FT. Masks move
less in fewer steps: raise ``finetune_methods.anp.epochs`` where the time is there. The model is unchanged until
the pruning, so the curve gets one point, after it.

Differences (besides the budget and the rule the kept model follows):

- masks cover every norm layer with a scale (BatchNorm, GroupNorm, LayerNorm), through a parametrization of a
  copy of the model: no per-architecture model file; a frozen scale (airbench's, fixed at 1) is masked as any other;
- the mask lr is constant, as BackdoorBench's (no scheduler), but momentum and Nesterov follow ``finetune:``
  (BackdoorBench: momentum 0.9, no Nesterov); batches are drawn by epochs of the clean set, not with replacement;
  the noise is drawn from the loop's seeded stream;
- the threshold scan evaluates each distinct pruned set once and measures the ASR only where the clean accuracy
  is within ``acc_ratio`` (the only thresholds BackdoorBench's rule can pick); pruning by count (``pruning_by:
  number``) is not implemented; fp32 on a CPU where BackdoorBench uses AMP.
"""

from __future__ import annotations

import copy
import math
from dataclasses import replace

import torch
import torch.nn as nn
import torch.nn.utils.parametrize as parametrize

from ..classifier import predict
from ..errors import ConfigError
from ..loop import Gradients, Loss
from ..metrics import attack_success_rate, clean_accuracy
from . import METHODS, Method, Tuning

NORMS = (nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.LayerNorm)


class NeuronMask(nn.Module):
    """A norm layer's scale times its units' masks; under perturbation, times (mask + noise)."""

    def __init__(self, weight: torch.Tensor):
        super().__init__()
        self.mask = nn.Parameter(torch.ones_like(weight))
        self.noise = nn.Parameter(torch.zeros_like(weight))
        self.perturbed = False

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return weight * (self.mask + self.noise if self.perturbed else self.mask)


class BiasNoise(nn.Module):
    """A norm layer's bias; under perturbation, times (1 + noise)."""

    def __init__(self, bias: torch.Tensor):
        super().__init__()
        self.noise = nn.Parameter(torch.zeros_like(bias))
        self.perturbed = False

    def forward(self, bias: torch.Tensor) -> torch.Tensor:
        return bias * (1 + self.noise) if self.perturbed else bias


def norm_layers(model: nn.Module) -> dict[str, nn.Module]:
    """The layers ANP masks, by module name: normalisation layers with a per-unit scale."""
    return {name: m for name, m in model.named_modules() if isinstance(m, NORMS) and m.weight is not None}


def masked_copy(model: nn.Module) -> tuple[nn.Module, dict[str, NeuronMask], list[nn.Module]]:
    """A frozen copy of ``model`` whose norm layers carry masks and noise; its masks by layer name, and every
    mask or noise module (what ``perturb`` switches)."""
    masked = copy.deepcopy(model).requires_grad_(False)
    masks, switches = {}, []
    for name, layer in norm_layers(masked).items():
        masks[name] = NeuronMask(layer.weight)
        parametrize.register_parametrization(layer, "weight", masks[name])
        switches.append(masks[name])
        if layer.bias is not None:
            switches.append(BiasNoise(layer.bias))
            parametrize.register_parametrization(layer, "bias", switches[-1])
    if not masks:
        raise ConfigError(f"finetune_methods.anp: {type(model).__name__} has no normalisation layer with a scale")
    return masked, masks, switches


def perturb(switches: list[nn.Module], on: bool) -> None:
    for switch in switches:
        switch.perturbed = on


def anp_gradients(switches: list[nn.Module], eps: float, steps: int, alpha: float) -> Gradients:
    """``fit``'s gradient hook: the adversarial noise for this batch, then the masks' gradient of
    ``alpha * CE(clean) + (1 - alpha) * CE(perturbed)`` left in ``.grad``."""
    noises = [s.noise for s in switches]
    masks = [s.mask for s in switches if isinstance(s, NeuronMask)]

    def gradients(model: nn.Module, loss_fn: Loss, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        robust = torch.zeros((), device=x.device)
        if eps > 0:
            with torch.no_grad():
                for noise in noises:
                    noise.uniform_(-eps, eps)
            perturb(switches, True)
            for _ in range(steps):
                grads = torch.autograd.grad(loss_fn(model, x, y), noises, allow_unused=True)
                with torch.no_grad():
                    for noise, grad in zip(noises, grads):
                        if grad is not None:
                            noise.add_(grad.sign(), alpha=eps / steps)  # ascent on the loss
            robust = loss_fn(model, x, y)
            perturb(switches, False)
        loss = alpha * loss_fn(model, x, y) + (1 - alpha) * robust
        loss.backward(inputs=masks)
        return loss

    return gradients


def clip(masks: dict[str, NeuronMask]) -> None:
    with torch.no_grad():
        for mask in masks.values():
            mask.mask.clamp_(0.0, 1.0)


def constant(step: int, total: int) -> float:
    return 1.0


def learn_masks(tuning: Tuning, eps: float, steps: int, alpha: float) -> tuple[dict[str, torch.Tensor], int, float]:
    """Masks learned on the clean set for the loop's epochs: by layer name, the optimizer steps, the last epoch's
    mean loss."""
    masked, masks, switches = masked_copy(tuning.clf.model)
    losses = []
    run = replace(
        tuning,
        clf=replace(tuning.clf, model=masked),
        cfg=replace(tuning.cfg, compile=False),  # the switches are Python flags a compiled graph would not see
        on_epoch_end=lambda epoch, loss: losses.append(loss),
    )
    taken = run.fit(
        params=[m.mask for m in masks.values()],
        gradients=anp_gradients(switches, eps, steps, alpha),
        after_step=lambda: clip(masks),
        schedule=constant,
    )
    return {name: m.mask.detach().cpu() for name, m in masks.items()}, taken, losses[-1]


class Pruner:
    """Prunes ``model``'s norm-layer units by mask value: at a threshold, every unit whose mask is at or below it
    has its scale set to 0 (from the scales it started with, so thresholds can be tried in any order)."""

    def __init__(self, model: nn.Module, masks: dict[str, torch.Tensor]):
        self.layers = {name: layer for name, layer in norm_layers(model).items() if name in masks}
        self.scales = {name: layer.weight.detach().clone() for name, layer in self.layers.items()}
        self.masks = masks

    @torch.no_grad()
    def __call__(self, threshold: float | None) -> int:
        """Prune at ``threshold`` (None: restore every unit); the number of units pruned."""
        pruned = 0
        for name, layer in self.layers.items():
            keep = torch.ones_like(self.masks[name], dtype=torch.bool)
            if threshold is not None:
                keep = self.masks[name] > threshold
            layer.weight.copy_(self.scales[name] * keep.to(layer.weight.device))
            pruned += int((~keep).sum())
        return pruned


def thresholds(pruning_max: float, pruning_step: float) -> list[float]:
    """0, step, 2 step, ... up to ``pruning_max`` (``np.arange(0, max + step, step)``, without its float drift)."""
    return [round(i * pruning_step, 10) for i in range(math.floor(pruning_max / pruning_step + 1e-9) + 1)]


def has_triggered_test(tuning: Tuning) -> bool:
    """Whether the attacker's triggered test set is at hand, with an image whose ASR counts."""
    poisoned = tuning.poisoned
    return poisoned is not None and bool((poisoned.test_labels != poisoned.test_targets).any())


def relative_drop(before: float, after: float) -> float:
    return abs(after - before) / before if before else math.inf


def defender_rule(tuning: Tuning, prune: Pruner, levels: list[float], acc_ratio: float) -> tuple[float | None, float]:
    """The largest threshold before the first whose clean-set accuracy falls by ``acc_ratio`` or more; its
    clean-set accuracy (and the unpruned model's, when none passes)."""
    start = clean_accuracy(predict(tuning.clf, tuning.images), tuning.labels)
    chosen, reached = None, start
    for level in levels:
        prune(level)
        accuracy = clean_accuracy(predict(tuning.clf, tuning.images), tuning.labels)
        if relative_drop(start, accuracy) >= acc_ratio:
            break
        chosen, reached = level, accuracy
    return chosen, reached


def attacker_rule(tuning: Tuning, prune: Pruner, levels: list[float], acc_ratio: float) -> dict:
    """BackdoorBench's choice: the lowest triggered-test ASR (strictly below the unpruned model's) among the
    thresholds whose clean test accuracy is within ``acc_ratio`` (relative) of the unpruned model's."""
    poisoned, test = tuning.poisoned, tuning.data.test

    def accuracy() -> float:
        return clean_accuracy(predict(tuning.clf, test.images), test.labels)

    def asr() -> float:
        preds = predict(tuning.clf, poisoned.test_images)
        return attack_success_rate(preds, poisoned.test_labels, poisoned.test_targets)

    prune(None)
    start = accuracy()
    best = {"threshold": None, "pruned": 0, "clean_acc": start, "asr": asr()}
    seen: dict[int, tuple[float, float]] = {}  # thresholds that prune the same units give the same model
    for level in levels:
        pruned = prune(level)
        if pruned not in seen:
            acc = accuracy()
            seen[pruned] = (acc, asr() if relative_drop(start, acc) < acc_ratio else math.inf)
        acc, rate = seen[pruned]
        if rate < best["asr"]:
            best = {"threshold": level, "pruned": pruned, "clean_acc": acc, "asr": rate}
    return best


@METHODS.register(
    "anp",
    reference="Wu and Wang NeurIPS 2021; BackdoorBench defense/anp.py (SCLBD/BackdoorBench @ f02e353)",
    loop={"epochs": 15},
)
def anp(
    *,
    eps: float = 0.4,
    perturbation_steps: int = 1,
    alpha: float = 0.2,
    pruning_max: float = 0.9,
    pruning_step: float = 0.05,
    acc_ratio: float = 0.1,
) -> Method:
    name = "anp"
    eps = float(METHODS.number(name, "eps", eps, low=0.0))
    steps = int(METHODS.number(name, "perturbation_steps", perturbation_steps, low=1, integer=True))
    alpha = float(METHODS.number(name, "alpha", alpha, low=0.0, high=1.0))
    pruning_max = float(METHODS.number(name, "pruning_max", pruning_max, low=0.0, high=1.0))
    pruning_step = float(METHODS.number(name, "pruning_step", pruning_step, low=0.0, high=1.0, low_open=True))
    acc_ratio = float(METHODS.number(name, "acc_ratio", acc_ratio, low=0.0, high=1.0, low_open=True))
    levels = thresholds(pruning_max, pruning_step)

    def run(tuning: Tuning) -> dict:
        masks, taken, loss = learn_masks(tuning, eps, steps, alpha)
        prune = Pruner(tuning.clf.model, masks)
        record = {"anp_units": sum(m.numel() for m in masks.values())}
        attacker = dict.fromkeys(("threshold", "pruned", "clean_acc", "asr"))
        if has_triggered_test(tuning):
            attacker = attacker_rule(tuning, prune, levels, acc_ratio)
        record.update({f"anp_attacker_rule_{key}": value for key, value in attacker.items()})
        prune(None)
        chosen, accuracy = defender_rule(tuning, prune, levels, acc_ratio)
        record.update({"anp_threshold": chosen, "anp_pruned": prune(chosen), "anp_clean_set_acc": accuracy})
        if tuning.on_epoch_end is not None:
            tuning.on_epoch_end(tuning.cfg.epochs, loss)  # the model changed only now: one curve point
        return {"steps": taken, **record}

    return run
