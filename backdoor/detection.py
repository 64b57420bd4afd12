"""The detectors (``backdoor.detectors``) on one trained model: what each is given, the ground truth, one record.

What the defender has, the same for every detector: the trained model, its training set as it was trained
on (poisoned images included, unknown to the defender) and clean images of its own, drawn (seeded) from the
training pool's unpoisoned images, as the fine-tuning defence gets them. The test set is used only to score
input-level detectors: triggered test inputs are the positives, clean test inputs the negatives.

- ``training-data`` detectors (spectral signatures, activation clustering) score every training image from
  its penultimate features (``training_features``); truth: the poisoned images.
- ``inputs`` detectors (STRIP) score triggered and clean test inputs; their threshold comes from the
  defender's clean images only, never from the scored test inputs.
- ``model`` detectors (Neural Cleanse) judge the model: a poisoned model counts as found when the attack's
  target is among the flagged classes; a clean baseline flagged at all is a false alarm.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from .classifier import Classifier, inference_batch
from .datasets import Dataset
from .detectors import KINDS, auroc, build_detector, detection_counts
from .seeding import generator

THRESHOLD_RULES = {
    "spectral": "top eps_multiplier x expected_rate x class size scores per class (Tran et al. 2018)",
    "activation-clustering": "smaller of two clusters per class; class called poisoned below size_threshold (ART)",
    "strip": "entropy below the false_rejection_rate quantile of the defender's clean inputs (Gao et al. 2019)",
    "neural-cleanse": "anomaly index > 2 (MAD x 1.4826) with a norm below the median (Wang et al. 2019)",
}


def training_features(clf: Classifier, images: torch.Tensor) -> torch.Tensor:
    """Penultimate-layer features (``forward_head(..., pre_logits=True)``) of uint8 images, float32 (N, D)."""
    model = clf.model.eval()
    parts = []
    with torch.inference_mode():
        for batch in images.split(inference_batch(next(model.parameters()).device)):
            parts.append(model.forward_head(model.forward_features(clf.normalizer(batch)), pre_logits=True).float())
    return torch.cat(parts).flatten(1)


def model_logits(clf: Classifier):
    """Differentiable logits of float images in [0, 1] (input-level and model-level detectors)."""
    model = clf.model.eval()
    return lambda images: model(clf.normalizer(images))


def defender_clean_images(data: Dataset, pool: torch.Tensor, poisoned: torch.Tensor, count: int,
                          seed: int) -> tuple[torch.Tensor, ...]:
    """``count`` images (and labels) of the training ``pool`` outside ``poisoned``, seeded: the defender's own
    clean data."""
    clean = pool[~torch.isin(pool, poisoned)]
    pick = clean[torch.randperm(len(clean), generator=generator(seed, "defender-clean"))[:count]]
    return data.train.images[pick], data.train.labels[pick]


def _counts(flagged: torch.Tensor, truth: torch.Tensor, scores: torch.Tensor | None) -> dict[str, Any]:
    counts = detection_counts(flagged, truth)._asdict()
    counts["auroc"] = auroc(scores, truth) if scores is not None else math.nan
    return counts


def detect(name: str, settings: dict, clf: Classifier, data: Dataset, *, pool: torch.Tensor,
           poisoned: torch.Tensor, triggered: torch.Tensor | None, backdoored: bool, target: int | None, seed: int,
           features: dict[str, torch.Tensor] | None = None) -> dict[str, Any]:
    """Run detector ``name`` on one model; return its record: confusion counts, rates, AUROC where the
    method gives scores, what it flagged and the clean data it used. No timing: the record is a DVC output
    whose hash is locked, so it holds only what the same inputs reproduce (the stage prints its seconds).

    ``pool``: the training pool; ``poisoned``: its images carrying the trigger (the defender's clean data
    avoids them); ``triggered``: triggered test inputs (input-level detectors); ``backdoored``: whether the
    model was trained on poison; ``target``: the attack's target class (None when there is no single one,
    as for all-to-all), used only to score a model-level detector."""
    detector = build_detector(name, **settings)
    rng = generator(seed, f"detector:{name}")
    record: dict[str, Any] = {"detector": name, "threshold_rule": THRESHOLD_RULES[name], "target_known": False}
    if KINDS[name] == "training-data":
        truth = features["poisoned"]
        result = detector(features["features"], features["labels"], **({} if name == "spectral" else {"generator": rng}))
        record |= _counts(result.flagged, truth, result.scores) | {"clean_data": 0}
        if hasattr(result, "poisoned_classes"):
            record["flagged_classes"] = list(result.poisoned_classes)
    elif KINDS[name] == "inputs":
        clean_images, _ = defender_clean_images(data, pool, poisoned, 2 * detector.num_clean, seed)
        pool, held_out = clean_images[:detector.num_clean], clean_images[detector.num_clean:]
        pick = lambda n, g: torch.randperm(n, generator=g)[:detector.num_inputs]  # noqa: E731
        triggered = triggered[pick(len(triggered), rng)]
        clean_inputs = data.test.images[pick(len(data.test), rng)]
        inputs = torch.cat([triggered, clean_inputs])
        truth = torch.cat([torch.ones(len(triggered), dtype=torch.bool), torch.zeros(len(clean_inputs), dtype=torch.bool)])
        result = detector(model_logits(clf), inputs, pool, rng, clean=held_out)
        record |= _counts(result.flagged, truth, result.scores) | {"clean_data": len(clean_images),
                                                                   "threshold": result.threshold}
    else:
        images, labels = defender_clean_images(data, pool, poisoned, detector.num_images, seed)
        result = detector(model_logits(clf), images, labels, clf.num_classes, rng)
        flagged = list(result.flagged_classes)
        found = bool(flagged) and (target in flagged if backdoored and target is not None else True)
        record |= _counts(torch.tensor([found]), torch.tensor([backdoored]), None)
        record |= {"clean_data": len(images), "flagged_classes": flagged,
                   "target_flagged": backdoored and target is not None and target in flagged,
                   "anomaly_index": float(result.anomaly_index[result.norms.argmin()]),
                   "norms": result.norms.tolist()}
        record["reversed"] = {"mask": result.masks[result.norms.argmin()], "pattern": result.patterns[result.norms.argmin()]}
    return record
