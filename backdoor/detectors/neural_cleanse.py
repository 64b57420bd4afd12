"""Neural Cleanse (Wang et al., "Neural Cleanse: identifying and mitigating backdoor attacks in neural
networks", IEEE S&P 2019): a backdoor target class is one that a much smaller input patch reaches.

For each class t, a mask ``m`` (H, W) and a pattern ``P`` (C, H, W) are optimized on clean images
``x`` in [0, 1] so that ``x' = (1 - m) * x + m * P`` is classified as t:
``loss = mean CE(predict_logits(x'), t) + cost * sum |m|``, with ``m = tanh(a) / (2 - eps) + 0.5`` and
``P = tanh(b) / (2 - eps) + 0.5`` (eps = 1e-7, Keras' epsilon), ``a`` and ``b`` initialized from
uniform random m and P, Adam(lr, betas=(0.5, 0.9)). One *step* is a pass over the clean images not
labelled t, in shuffled batches; after each step, with ``success`` the fraction of the step's images
classified as t and ``reg`` the mean of the batches' ``sum |m|``:

* keep (m, P) as the result when ``success >= success_threshold`` and ``reg`` is the lowest so far;
  if no step succeeds, the last (m, P) is kept;
* cost schedule: cost starts at 0; after ``patience`` successful steps in a row it is set to
  ``init_cost``; then ``patience`` successful steps in a row multiply it by ``cost_multiplier`` and
  ``patience`` failing steps divide it by ``cost_multiplier ** 1.5``;
* early stop once the cost has gone both up and down and the best ``reg`` has not fallen below 0.99x
  its previous best for ``5 * patience`` steps;
* at most ``steps`` steps.

Outlier test over the classes' L1 norms ``n_t = sum |m_t|``: ``median``, ``MAD = 1.4826 * median |n -
median|`` (consistency constant of the normal), anomaly index ``|n_t - median| / MAD``; flagged
classes have ``n_t <= median`` and index ``> 2``, listed by increasing norm. The median of an even
count is the mean of the two middle values (numpy's). With MAD 0 the index is inf for a norm off the
median and 0 on it.

Settings (default, source): ``init_cost`` [1e-3], ``lr`` [0.1], ``batch_size`` [32], ``patience`` [5],
``cost_multiplier`` [2], ``success_threshold`` [0.99]: bolunwang/backdoor ``gtsrb_visualize_example.py``
(INIT_COST, LR, BATCH_SIZE, PATIENCE, COST_MULTIPLIER, ATTACK_SUCC_THRESHOLD); early-stop patience
5 x patience as there; early-stop threshold 0.99 as ``visualizer.py``'s default, ART and
BackdoorBench (the example passes 1.0: stop unless the norm improves at all). The budget is cut for CPU:
``steps`` [20] (original 1000 steps of ~1000 images), ``num_images`` [256] clean images (drawn once
from the ones given, shared by all classes; BackdoorBench uses 5 % of the training set).

Cost (measured): the project's small-cnn (94k parameters), backdoored (synthetic 1x28x28 images:
10 class templates plus noise, a 3x3 checker trigger; the data are not in this checkout), one CPU
thread, default settings (all 20 steps ran for every class: 8 batches of 32 per step, 1600
forward+backward passes): 54 s of CPU time per model, 5.4 s per class, 71-74 s wall on the shared
2-core machine (load ~4). It scales with ``steps * num_images`` (128 images: 27.5 s);
early stop can only shorten it.

Sources read: bolunwang/backdoor (``visualizer.py``, ``gtsrb_visualize_example.py``,
``mad_outlier_detection.py``); ART ``NeuralCleanseMixin`` and ``KerasNeuralCleanse``
(art/estimators/poison_mitigation/neural_cleanse/); BackdoorBench ``defense/nc.py``. Differences:

* Budget and data, above. Images labelled t are left out of class t's optimization, so ``success``
  counts flipped images only (the references optimize on all images, including those already of
  class t). Each step is one shuffled pass over the subset; the original draws ``NB_SAMPLE //
  BATCH_SIZE`` batches per step from its whole test set.
* The original writes masks to 8-bit PNG files and computes norms from those; here the float mask.
* ART optimizes a (C, H, W) mask, starts the cost at ``init_cost`` (not 0), defaults to the L2 norm
  with ``cost_multiplier`` 1.5 and ``early_stop_patience`` 10; BackdoorBench starts at ``init_cost``,
  initializes a and b to ones, uses ``tanh / (2 + eps)``, a 98 % success threshold and 80 epochs.
* The original and BackdoorBench record the anomaly index of the smallest norm; all indices are returned.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from . import DETECTORS

PredictLogits = Callable[[torch.Tensor], torch.Tensor]
CONSISTENCY = 1.4826  # MAD of a normal sample times this estimates its standard deviation
EPS = 1e-7  # keeps tanh(a) / (2 - EPS) + 0.5 strictly inside (0, 1)
EARLY_STOP_THRESHOLD = 0.99
EARLY_STOP_FACTOR = 5  # early-stop patience = 5 x patience, as the original's example


@dataclass(frozen=True, eq=False)
class NeuralCleanseResult:
    """Per class t (index = class): ``norms`` float64 L1 norm of the kept mask; ``anomaly_index``
    float64; ``masks`` float32 (K, H, W) and ``patterns`` float32 (K, C, H, W), both in [0, 1]
    (the reversed trigger is ``masks[:, None] * patterns``); ``success`` float64, the kept mask's
    step success; ``steps`` int64, steps run; ``updates`` int64, the Adam updates they took (a step is one pass
    over the class's images in batches). ``flagged_classes``: by increasing norm."""

    norms: torch.Tensor
    anomaly_index: torch.Tensor
    flagged_classes: tuple[int, ...]
    masks: torch.Tensor
    patterns: torch.Tensor
    success: torch.Tensor
    steps: torch.Tensor
    updates: torch.Tensor

    @property
    def updates_per_class(self) -> float:
        """The Adam updates a class took, on average (the record's column)."""
        return float(self.updates.numpy().mean())

    def summary(self) -> dict[str, Any]:
        """The numbers as plain Python (for JSON): everything but the masks and patterns."""
        return {
            "norms": self.norms.tolist(),
            "anomaly_index": self.anomaly_index.tolist(),
            "flagged_classes": list(self.flagged_classes),
            "success": self.success.tolist(),
            "steps": self.steps.tolist(),
            "updates": self.updates.tolist(),
        }


def _median(values: torch.Tensor) -> torch.Tensor:
    return values.quantile(0.5)  # linear interpolation: the mean of the two middle values, as numpy


def anomaly_index(norms: torch.Tensor) -> torch.Tensor:
    """float64: ``|n - median| / (1.4826 * MAD)``; inf (or 0 on the median) when MAD is 0."""
    norms = norms.double()
    deviation = (norms - _median(norms)).abs()
    mad = CONSISTENCY * _median(deviation)
    if mad == 0:
        return torch.where(deviation > 0, math.inf, 0.0).double()
    return deviation / mad


def flag_classes(norms: torch.Tensor, index: torch.Tensor, limit: float = 2.0) -> tuple[int, ...]:
    """Classes with a norm at or below the median and an anomaly index above ``limit``, by norm."""
    median = float(_median(norms.double()))
    chosen = [c for c in range(len(norms)) if float(norms[c]) <= median and float(index[c]) > limit]
    return tuple(sorted(chosen, key=lambda c: (float(norms[c]), c)))


def _to_tanh_space(values: torch.Tensor) -> torch.Tensor:
    return torch.atanh((values - 0.5) * (2 - EPS))


def _from_tanh_space(values: torch.Tensor) -> torch.Tensor:
    return torch.tanh(values) / (2 - EPS) + 0.5


class CostSchedule:
    """The original's dynamic weight of the mask norm, and its early-stop rule (see the module doc)."""

    def __init__(self, init_cost: float, multiplier: float, patience: int):
        self.init_cost, self.up, self.down, self.patience = init_cost, multiplier, multiplier**1.5, patience
        self.cost = 0.0
        self.set_count = self.up_count = self.down_count = self.stop_count = 0
        self.went_up = self.went_down = False
        self.stop_best = math.inf

    def update(self, success: bool, reg_best: float) -> bool:
        """Adjust the cost after a step; True when the optimization should stop."""
        if reg_best < math.inf:
            self.stop_count = self.stop_count + 1 if reg_best >= EARLY_STOP_THRESHOLD * self.stop_best else 0
        self.stop_best = min(self.stop_best, reg_best)
        if self.went_up and self.went_down and self.stop_count >= EARLY_STOP_FACTOR * self.patience:
            return True
        self.set_count = self.set_count + 1 if self.cost == 0 and success else 0
        if self.set_count >= self.patience:
            self.cost, self.up_count, self.down_count, self.went_up, self.went_down = self.init_cost, 0, 0, False, False
        self.up_count, self.down_count = (self.up_count + 1, 0) if success else (0, self.down_count + 1)
        if self.up_count >= self.patience:
            self.up_count, self.cost, self.went_up = 0, self.cost * self.up, True
        elif self.down_count >= self.patience:
            self.down_count, self.cost, self.went_down = 0, self.cost / self.down, True
        return False


@dataclass(frozen=True)
class NeuralCleanse:
    steps: int = 20
    num_images: int = 256
    batch_size: int = 32
    lr: float = 0.1
    init_cost: float = 1e-3
    cost_multiplier: float = 2.0
    patience: int = 5
    success_threshold: float = 0.99

    def __call__(
        self,
        predict_logits: PredictLogits,
        images: torch.Tensor,
        labels: torch.Tensor,
        num_classes: int,
        generator: torch.Generator,
    ) -> NeuralCleanseResult:
        """Reverse a trigger for every class of the model behind ``predict_logits`` (differentiable,
        float [0, 1] images -> logits; put the model in eval mode) from clean uint8 ``images``
        (N, C, H, W) and their int64 ``labels``; ``generator`` (CPU) draws the subset, starts, orders."""
        _check_inputs(images, labels, num_classes)
        chosen = torch.randperm(len(images), generator=generator)[: self.num_images]
        x, y = images[chosen.to(images.device)].float() / 255, labels[chosen.to(labels.device)].cpu()
        runs = [self.reverse(predict_logits, x[(y != t).to(x.device)], t, generator) for t in range(num_classes)]
        masks, patterns, success, steps, updates = (torch.stack([run[i] for run in runs]) for i in range(5))
        norms = masks.double().flatten(1).sum(dim=1)
        index = anomaly_index(norms)
        return NeuralCleanseResult(norms, index, flag_classes(norms, index), masks, patterns, success, steps, updates)

    def reverse(
        self, predict_logits: PredictLogits, x: torch.Tensor, target: int, generator: torch.Generator
    ) -> tuple[torch.Tensor, ...]:
        """(mask (H, W), pattern (C, H, W), success, steps run, Adam updates) for ``target`` from float images ``x``."""
        if len(x) == 0:
            raise ValueError(f"neural cleanse: no clean image outside class {target} in the subset")
        _, channels, height, width = x.shape
        a = _to_tanh_space(torch.rand(height, width, generator=generator)).to(x.device).requires_grad_()
        b = _to_tanh_space(torch.rand(channels, height, width, generator=generator)).to(x.device).requires_grad_()
        optimizer = torch.optim.Adam([a, b], lr=self.lr, betas=(0.5, 0.9))
        schedule = CostSchedule(self.init_cost, self.cost_multiplier, self.patience)
        best, reg_best = None, math.inf
        for step in range(1, self.steps + 1):  # noqa: B007 (read after the loop: the steps run)
            success, reg = self._step(predict_logits, x, target, a, b, optimizer, schedule.cost, generator)
            current = (_from_tanh_space(a.detach()), _from_tanh_space(b.detach()), success)
            if success >= self.success_threshold and reg < reg_best:
                best, reg_best = current, reg
            if schedule.update(success >= self.success_threshold, reg_best):
                break
        mask, pattern, success = best if best is not None else current  # never succeeded: the last
        updates = step * math.ceil(len(x) / self.batch_size)
        return (
            mask.float().cpu(),
            pattern.float().cpu(),
            torch.tensor(success, dtype=torch.float64),
            torch.tensor(step),
            torch.tensor(updates),
        )

    def _step(
        self,
        predict_logits: PredictLogits,
        x: torch.Tensor,
        target: int,
        a: torch.Tensor,
        b: torch.Tensor,
        optimizer: torch.optim.Optimizer,
        cost: float,
        generator: torch.Generator,
    ) -> tuple[float, float]:
        """One shuffled pass over ``x``; returns (fraction classified as target, mean batch L1 norm)."""
        hits, regs = 0, []
        for batch in torch.randperm(len(x), generator=generator).split(self.batch_size):
            mask, pattern = _from_tanh_space(a), _from_tanh_space(b)
            logits = predict_logits((1 - mask) * x[batch.to(x.device)] + mask * pattern)
            wanted = torch.full((len(batch),), target, dtype=torch.int64, device=logits.device)
            reg = mask.abs().sum()
            # autograd.grad, not backward: the model's parameters get no .grad even if they require it
            a.grad, b.grad = torch.autograd.grad(F.cross_entropy(logits, wanted) + cost * reg, [a, b])
            optimizer.step()
            hits += int((logits.argmax(dim=1) == wanted).sum())
            regs.append(float(reg.detach()))
        return hits / len(x), sum(regs) / len(regs)


def _check_inputs(images: torch.Tensor, labels: torch.Tensor, num_classes: int) -> None:
    if images.dtype != torch.uint8 or images.dim() != 4:
        raise ValueError(f"images must be a uint8 tensor (N, C, H, W), got {images.dtype} {tuple(images.shape)}")
    if labels.dtype != torch.int64 or labels.shape != (len(images),):
        raise ValueError(f"labels must be an int64 tensor ({len(images)},), got {labels.dtype} {tuple(labels.shape)}")
    if not isinstance(num_classes, int) or num_classes < 3:
        raise ValueError(f"num_classes must be an integer >= 3 (the outlier test needs a median), got {num_classes!r}")


@DETECTORS.register(
    "neural-cleanse",
    kind="model",
    reference="Wang et al., IEEE S&P 2019 (bolunwang/backdoor)",
    rule="anomaly index > 2 (MAD x 1.4826) with a norm below the median (Wang et al. 2019)",
    columns=("updates_per_class",),
    score_columns=("steps", "updates", "success"),
    reversed_trigger=True,
)
def neural_cleanse(
    *,
    steps: int = 20,
    num_images: int = 256,
    batch_size: int = 32,
    lr: float = 0.1,
    init_cost: float = 1e-3,
    cost_multiplier: float = 2.0,
    patience: int = 5,
    success_threshold: float = 0.99,
) -> NeuralCleanse:
    name = "neural-cleanse"
    return NeuralCleanse(
        steps=int(DETECTORS.number(name, "steps", steps, low=1, integer=True)),
        num_images=int(DETECTORS.number(name, "num_images", num_images, low=1, integer=True)),
        batch_size=int(DETECTORS.number(name, "batch_size", batch_size, low=1, integer=True)),
        lr=float(DETECTORS.number(name, "lr", lr, low=0.0, low_open=True)),
        init_cost=float(DETECTORS.number(name, "init_cost", init_cost, low=0.0, low_open=True)),
        cost_multiplier=float(DETECTORS.number(name, "cost_multiplier", cost_multiplier, low=1.0, low_open=True)),
        patience=int(DETECTORS.number(name, "patience", patience, low=1, integer=True)),
        success_threshold=float(
            DETECTORS.number(name, "success_threshold", success_threshold, low=0.0, high=1.0, low_open=True)
        ),
    )
