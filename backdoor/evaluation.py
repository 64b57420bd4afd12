"""CA, ASR and RA of a model on a dataset's clean test set and a poisoned set's triggered test set."""

from __future__ import annotations

import math

import torch

from .classifier import Classifier, predict_sets
from .datasets import Dataset
from .metrics import backdoor_metrics
from .poisoned_set import PoisonedSet

METRIC_KEYS = ("clean_acc", "asr", "robust_acc")


def diverged(clf: Classifier) -> bool:
    """Whether training left a non-finite weight or BatchNorm statistic (a NaN loss does)."""
    return any(t.is_floating_point() and not torch.isfinite(t).all() for t in clf.model.state_dict().values())


def evaluate(clf: Classifier, data: Dataset, poisoned: PoisonedSet) -> dict[str, float]:
    """CA on the clean test set; ASR and RA on the triggered test set (see backdoor.metrics). A diverged
    model's are NaN (null in the reports): its NaN logits' argmax is class 0, which would pass for an ASR
    of 1 whenever the target is class 0."""
    if diverged(clf):
        return dict.fromkeys(METRIC_KEYS, math.nan)
    clean, triggered = predict_sets(clf, [data.test.images, poisoned.test_images])  # one fused model copy
    return backdoor_metrics(clean, data.test.labels, triggered, poisoned.test_labels, poisoned.test_targets)


def poisoned_counts(poisoned: PoisonedSet) -> dict[str, int]:
    """What a poisoned set's manifest also records: ``num_poisoned`` (what the model trained on), ``num_train`` (its
    pool) and ``num_triggered_test``."""
    return {
        "num_poisoned": poisoned.num_poisoned,
        "num_train": len(poisoned.pool),
        "num_triggered_test": len(poisoned.test_indices),
    }


def before_after(before: dict[str, float], after: dict[str, float], counts: dict[str, int]) -> dict:
    """CA/ASR/RA before and after clean fine-tuning, with the poisoned set's counts (``poisoned_counts``, or its
    manifest): the record the focus metrics.json and every grid cell's report share."""
    return {
        **{k: before[k] for k in METRIC_KEYS},
        "finetuned": {k: after[k] for k in METRIC_KEYS},
        **{k: counts[k] for k in ("num_poisoned", "num_train", "num_triggered_test")},
    }
