"""The data-level detectors' common result, and the numbers a report makes of it.

``auroc`` is scikit-learn's ``roc_auc_score`` (ties count one half, the usual Mann-Whitney form).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch


@dataclass(frozen=True, eq=False)
class DetectionResult:
    """One score and one flag per item (training image or test input), in input order.

    ``scores``: float64 (N,), higher = more suspicious, comparable across all N items.
    ``flagged``: bool (N,), the items the detector would remove or reject.
    """

    scores: torch.Tensor
    flagged: torch.Tensor


class DetectionCounts(NamedTuple):
    """Confusion counts of flags against the truth (True = poisoned) and the rates made of them.

    A rate whose denominator is zero is NaN: ``tpr`` with no poisoned item, ``fpr`` with no clean
    item, ``precision`` with nothing flagged. ``f1 = 2 tp / (2 tp + fp + fn)``, which equals the
    harmonic mean of precision and recall where both exist; NaN only when there is no poisoned item
    and nothing is flagged.
    """

    tp: int
    fp: int
    tn: int
    fn: int
    tpr: float
    fpr: float
    precision: float
    f1: float


def _ratio(num: int, den: int) -> float:
    return num / den if den else math.nan


def _bool_vector(name: str, values: torch.Tensor, n: int | None = None) -> torch.Tensor:
    values = torch.as_tensor(values)
    if values.dim() != 1 or values.dtype != torch.bool or (n is not None and len(values) != n):
        size = f" of length {n}" if n is not None else ""
        raise ValueError(f"{name} must be a 1-D bool tensor{size}, got {values.dtype} {tuple(values.shape)}")
    return values.cpu()


def detection_counts(flagged: torch.Tensor, truth: torch.Tensor) -> DetectionCounts:
    """Counts and rates of ``flagged`` against ``truth``; both 1-D bool, True = flagged / poisoned."""
    truth = _bool_vector("truth", truth)
    flagged = _bool_vector("flagged", flagged, len(truth))
    tp = int((flagged & truth).sum())
    fp = int((flagged & ~truth).sum())
    fn = int((~flagged & truth).sum())
    tn = len(truth) - tp - fp - fn
    return DetectionCounts(
        tp, fp, tn, fn, _ratio(tp, tp + fn), _ratio(fp, fp + tn), _ratio(tp, tp + fp), _ratio(2 * tp, 2 * tp + fp + fn)
    )


def auroc(scores: torch.Tensor, truth: torch.Tensor) -> float:
    """Area under the ROC curve of ``scores`` (higher = more suspicious) for ``truth`` (bool, True =
    poisoned). NaN when ``truth`` holds one class only (the curve is undefined)."""
    from sklearn.metrics import roc_auc_score  # the import takes about a second; only here

    truth = _bool_vector("truth", truth)
    scores = torch.as_tensor(scores).detach().cpu().double()
    if scores.shape != truth.shape:
        raise ValueError(f"scores must have the shape of truth {tuple(truth.shape)}, got {tuple(scores.shape)}")
    if bool(truth.all()) or not bool(truth.any()):
        return math.nan
    return float(roc_auc_score(truth.numpy(), scores.numpy()))
