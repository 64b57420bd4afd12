"""STRIP (Gao et al., "STRIP: a defence against trojan attacks on deep neural networks", ACSAC 2019):
a trigger keeps deciding the class when the input is superimposed on other images, so a
backdoored input's predictions stay confident (low entropy) where a clean input's spread out.

For each input ``x`` (uint8, scaled to [0, 1]), ``num_blends`` images ``b_j`` are drawn from the clean
``pool`` (uniformly, with replacement, independently per input) and superimposed in float, as
``superimpose`` says:

* ``sum`` (default, the paper's code): ``x_j = x + b_j``, unclipped, in [0, 2], as its
  ``cv2.addWeighted(background, 1, overlay, 1, 0)`` on float images in [0, 1] gives;
* ``convex``: ``x_j = (1 - alpha) * x + alpha * b_j``, in [0, 1] (at alpha 0.5, ART's ``combine_images``).

The input's entropy is ``H(x) = (1 / N) sum_j -sum_k p_jk ln p_jk`` with ``p_j = softmax(predict_logits(x_j))``
(nats). Low entropy is suspicious: the score is ``-H``. The pipeline reports both superpositions (the other one as
a variant named by its form: ``strip_variants``), scored on the same draws.

Threshold: ``H`` of clean held-out inputs (``clean``; the pool itself when not given, as BackdoorBench
does), sorted ascending; ``threshold = H_sorted[floor(false_rejection_rate * n)]`` and an input is
flagged when ``H < threshold``, so ``floor(rate * n)`` of those clean inputs are rejected (without ties).

Settings (default, source): ``superimpose`` [sum], the paper's code; ``num_blends`` [64] (N), ``alpha`` [0.5]
(convex only), ``false_rejection_rate`` [0.05]: BackdoorBench ``detection_infer/strip.py`` class
``STRIP(strip_alpha=0.5, N=64, defense_fpr=0.05)``, after Fight-Poison-With-Poison's ``other_cleansers/strip.py``;
``batch_size`` [256] superimposed images per ``predict_logits`` call (memory only; results do not depend on it).

Sources read: the paper's code (garrisongys/STRIP @ 6588a38, STRIP_CIFAR10DeepArchit_Tb.ipynb: ``superimpose``,
``entropyCal``); ART ``STRIPMixin`` (art/estimators/poison_mitigation/strip/strip.py); BackdoorBench
``detection_infer/strip.py``. Differences from them:

* Superposition: the paper's code feeds the sum to a model trained on [0, 1] images without normalisation; here
  the sum goes through the model's own normaliser like any input. BackdoorBench computes ``x + alpha * b`` on
  *normalized* tensors (its own detection script calls it with alpha 1.0, N 100, rate 0.1); ART's
  ``combine_images`` is ``alpha * x + (1 - alpha) * b`` (the ``convex`` form here).
* Entropy: the original code and ART use log base 2 (a constant factor; flags are unchanged).
  BackdoorBench adds 1e-8 to the probabilities; here ``p ln p`` comes from ``log_softmax``, exact.
  ART's ``entropy(..., axis=0)`` sums over the N blends per class rather than over classes per blend.
* Draws: BackdoorBench draws N pool images without replacement, once per batch of 128 inputs; the
  original (from its 10,000 held-out training images) and ART draw per input with replacement, as here.
* Threshold: the original code and ART fit a normal distribution to the clean entropies and take its
  ``rate`` quantile (original FRR 0.01 with N 100; ART ``false_acceptance_rate=0.01``,
  ``num_samples=20``); this module takes BackdoorBench's empirical order statistic.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F

from . import DETECTORS
from .result import DetectionResult

PredictLogits = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True, eq=False)
class StripResult(DetectionResult):
    """``entropy``: float64 (N,) mean entropy of each input's blends (nats); ``scores = -entropy``.
    ``threshold``: inputs with entropy below it are flagged; ``clean_entropy``: the held-out inputs'."""

    entropy: torch.Tensor
    threshold: float
    clean_entropy: torch.Tensor


def _check_images(name: str, images: torch.Tensor, shape: tuple[int, ...] | None = None) -> None:
    if images.dtype != torch.uint8 or images.dim() != 4 or (shape is not None and images.shape[1:] != shape):
        want = f"(N, {', '.join(map(str, shape))})" if shape is not None else "(N, C, H, W)"
        raise ValueError(f"{name} must be a uint8 tensor {want}, got {images.dtype} {tuple(images.shape)}")


def softmax_entropy(logits: torch.Tensor) -> torch.Tensor:
    """Entropy in nats of softmax(logits) along dim 1, in float64."""
    log_p = F.log_softmax(logits.double(), dim=1)
    return -(log_p.exp() * log_p).sum(dim=1)


SUPERPOSITIONS = ("sum", "convex")


def superimposed(x: torch.Tensor, b: torch.Tensor, superimpose: str, alpha: float) -> torch.Tensor:
    """Inputs ``x`` and pool images ``b`` (float, [0, 1]) superimposed: their sum, or ``(1 - alpha) x + alpha b``."""
    return x + b if superimpose == "sum" else (1 - alpha) * x + alpha * b


def blend_entropy(
    predict_logits: PredictLogits,
    inputs: torch.Tensor,
    pool: torch.Tensor,
    generator: torch.Generator,
    *,
    num_blends: int = 64,
    alpha: float = 0.5,
    batch_size: int = 256,
    superimpose: str = "sum",
) -> torch.Tensor:
    """float64 (N,): each uint8 input's entropy averaged over ``num_blends`` superpositions with pool images."""
    _check_images("inputs", inputs)
    _check_images("pool", pool, tuple(inputs.shape[1:]))
    if len(pool) == 0:
        raise ValueError("pool must hold at least one clean image")
    draws = torch.randint(len(pool), (len(inputs), num_blends), generator=generator).flatten()
    owners = torch.arange(len(inputs)).repeat_interleave(num_blends)
    entropy = torch.empty(len(draws), dtype=torch.float64)
    with torch.no_grad():
        for start in range(0, len(draws), batch_size):
            part = slice(start, start + batch_size)
            x = inputs[owners[part].to(inputs.device)].float() / 255
            b = pool[draws[part].to(pool.device)].to(x.device).float() / 255
            entropy[part] = softmax_entropy(predict_logits(superimposed(x, b, superimpose, alpha))).cpu()
    return entropy.view(len(inputs), num_blends).mean(dim=1)


def rejection_threshold(clean_entropy: torch.Tensor, false_rejection_rate: float) -> float:
    """The entropy below which ``floor(rate * n)`` of the clean entropies lie (BackdoorBench's order statistic)."""
    if len(clean_entropy) == 0:
        raise ValueError("need at least one clean held-out input to set the threshold")
    ordered = clean_entropy.double().sort().values
    position = math.floor(false_rejection_rate * len(ordered) + 1e-9)  # 1e-9: 0.07 * 100 is 7.000000000000001
    return float(ordered[min(position, len(ordered) - 1)])


@dataclass(frozen=True)
class Strip:
    num_blends: int = 64
    alpha: float = 0.5
    superimpose: str = "sum"
    false_rejection_rate: float = 0.05
    batch_size: int = 256
    num_inputs: int = 500  # a pipeline scores this many triggered and this many clean test inputs
    num_clean: int = 1000  # and gives this many clean images to blend, and as many to set the threshold

    def __call__(
        self,
        predict_logits: PredictLogits,
        inputs: torch.Tensor,
        pool: torch.Tensor,
        generator: torch.Generator,
        clean: torch.Tensor | None = None,
    ) -> StripResult:
        """Score uint8 ``inputs`` (N, C, H, W). ``predict_logits`` maps float [0, 1] images to logits;
        ``pool``: clean uint8 images to blend with; ``clean``: clean held-out inputs that set the
        threshold (default: ``pool``). The held-out inputs draw from ``generator`` first, then ``inputs``."""
        clean = pool if clean is None else clean
        settings = dict(
            num_blends=self.num_blends, alpha=self.alpha, batch_size=self.batch_size, superimpose=self.superimpose
        )
        clean_entropy = blend_entropy(predict_logits, clean, pool, generator, **settings)
        threshold = rejection_threshold(clean_entropy, self.false_rejection_rate)
        entropy = blend_entropy(predict_logits, inputs, pool, generator, **settings)
        return StripResult(-entropy, entropy < threshold, entropy, threshold, clean_entropy)


def strip_variants(built: Strip) -> dict[str, tuple[Strip, None]]:
    """The configured detector, then the other superposition (``sum`` or ``convex``), on the same draws."""
    other = next(form for form in SUPERPOSITIONS if form != built.superimpose)
    return {"configured": (built, None), other: (replace(built, superimpose=other), None)}


@DETECTORS.register(
    "strip",
    kind="inputs",
    reference="Gao et al., ACSAC 2019 (github.com/garrisongys/STRIP); BackdoorBench detection_infer/strip.py",
    rule="entropy below the false_rejection_rate quantile of the defender's clean inputs (Gao et al. 2019)",
    variants=strip_variants,
    score_columns=("entropy",),
)
def strip(
    *,
    superimpose: str = "sum",
    num_blends: int = 64,
    alpha: float = 0.5,
    false_rejection_rate: float = 0.05,
    batch_size: int = 256,
    num_inputs: int = 500,
    num_clean: int = 1000,
) -> Strip:
    name = "strip"
    return Strip(
        num_blends=int(DETECTORS.number(name, "num_blends", num_blends, low=2, integer=True)),
        alpha=float(DETECTORS.number(name, "alpha", alpha, low=0.0, high=1.0, low_open=True, high_open=True)),
        superimpose=DETECTORS.choice(name, "superimpose", superimpose, SUPERPOSITIONS),
        false_rejection_rate=float(
            DETECTORS.number(name, "false_rejection_rate", false_rejection_rate, low=0.0, high=1.0, high_open=True)
        ),
        batch_size=int(DETECTORS.number(name, "batch_size", batch_size, low=1, integer=True)),
        num_inputs=int(DETECTORS.number(name, "num_inputs", num_inputs, low=1, integer=True)),
        num_clean=int(DETECTORS.number(name, "num_clean", num_clean, low=2, integer=True)),
    )
