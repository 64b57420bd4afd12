"""Detector registry: backdoor detectors that score training images, test inputs, or the model itself.

Adding a detector is one module with a factory under ``@DETECTORS.register(name, kind=..., rule=...)`` and its
import at the bottom of this file. A factory takes the detector's settings (``params.yaml: detectors.<name>``) as
keyword-only arguments with defaults, validates them (``DETECTORS.number``, ``DETECTORS.choice``) and returns a
callable detector; a default lives in one place, the factory's signature. The entry's facts (``DETECTORS`` below)
say what the pipeline must know of a detector without building it: ``backdoor.detection`` dispatches on its
``kind`` and reads the rest, so a new detector of a known kind needs no edit there.

The zoo (module, source, what the detector is called with, what it returns):

``spectral``               ``spectral.py``: Tran et al. 2018. (features, labels, expected_poison) ->
                           ``SpectralResult`` (a score and a flag per training image).
``activation-clustering``  ``activation_clustering.py``: Chen et al. 2018. (features, labels,
                           generator) -> ``ClusteringResult`` (flags, and the classes called poisoned).
``strip``                  ``strip.py``: Gao et al. 2019. (predict_logits, inputs, pool, generator)
                           -> ``StripResult`` (entropy and flag per test input, the threshold).
``neural-cleanse``         ``neural_cleanse.py``: Wang et al. 2019. (predict_logits, images, labels,
                           num_classes, generator) -> ``NeuralCleanseResult`` (per-class mask norms,
                           anomaly indices, flagged classes, reversed masks and patterns).

Detectors work on plain tensors and callables (no dataset or model classes), are deterministic given
their inputs and ``torch.Generator``, and report per-item scores where higher means more suspicious.
``detection_counts`` and ``auroc`` (``result.py``) turn scores and flags into the usual numbers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import torch

from ..registry import Registry
from .result import DetectionCounts, DetectionResult, auroc, detection_counts

DetectorFactory = Callable[..., Callable[..., Any]]
# What a detector looks at, which decides what the pipeline feeds it and how it judges the result.
KIND_NAMES = ("training-data", "inputs", "model")

DETECTORS: Registry[DetectorFactory] = Registry(
    "detector",
    section="detectors",
    facts={
        # training-data: the training set's penultimate features (a score per image); inputs: test inputs with and
        # without the trigger (a score per input); model: the model alone (a verdict per class). One of KIND_NAMES.
        "kind": "training-data",
        "rule": "",  # how it decides what to flag, in one line: detection records carry it
        # training-data: ``variants(built) -> {name: (detector, features)}``, the variants to report, the configured
        # one first; features "pooled" (the penultimate vector) or "block" (the last block flattened). None: the
        # configured detector on the pooled features alone. inputs: the same, features None (STRIP's superpositions).
        "variants": None,
        # training-data: what its per-image scores rank by, named in the record: "auroc", or "balanced_accuracy" for
        # scores that take two values within a class (their AUROC there is the balanced accuracy of the split)
        "ranking": "auroc",
        "seeded": True,  # training-data: called with ``generator=`` (False: a detector that draws no random number)
        "columns": (),  # columns each record row adds to its kind's: attributes of the result, of the same name
        "score_columns": (),  # inputs, model: per-item columns of the kept scores table: attributes of the result
        "reversed_trigger": False,  # model: the result's ``masks`` and ``patterns`` hold a reversed trigger per class
    },
    fact_choices={"kind": KIND_NAMES, "ranking": ("auroc", "balanced_accuracy")},
)


# ---------------------------------------------------------------- what the pipeline reads of each kind


class InputDetector(Protocol):
    """An ``inputs`` detector: the pipeline scores ``num_inputs`` triggered and as many clean test inputs, and gives
    it ``num_clean`` clean images to blend with and as many held out to set its threshold."""

    num_inputs: int
    num_clean: int

    def __call__(
        self,
        predict_logits: Callable[[torch.Tensor], torch.Tensor],
        inputs: torch.Tensor,
        pool: torch.Tensor,
        generator: torch.Generator,
        clean: torch.Tensor | None = None,
    ) -> InputResult: ...


class InputResult(Protocol):
    scores: torch.Tensor
    flagged: torch.Tensor
    threshold: float  # set on the clean held-out inputs


class ModelDetector(Protocol):
    """A ``model`` detector: the pipeline gives it ``num_images`` of the defender's clean images."""

    num_images: int

    def __call__(
        self,
        predict_logits: Callable[[torch.Tensor], torch.Tensor],
        images: torch.Tensor,
        labels: torch.Tensor,
        num_classes: int,
        generator: torch.Generator,
    ) -> ModelResult: ...


class ModelResult(Protocol):
    norms: torch.Tensor  # float (K,): per class, smaller is more suspicious
    anomaly_index: torch.Tensor  # float (K,)
    flagged_classes: tuple[int, ...]


# ---------------------------------------------------------------- building


def detector_defaults(name: str) -> dict[str, Any]:
    """The settings of detector ``name`` and their defaults, read from its factory's signature."""
    return DETECTORS.defaults(name)


def build_detector(name: str, **settings: Any) -> Callable[..., Any]:
    """Validate ``settings`` (``params.yaml: detectors.<name>``) and return the detector."""
    return DETECTORS.build(name, **settings)


def check_detector(name: str, settings: dict[str, Any]) -> None:
    """Raise ``ConfigError`` for a bad name or setting; building a detector does no work."""
    build_detector(name, **settings)


def detector_variants(name: str, built: Callable[..., Any]) -> dict[str, tuple[Callable[..., Any], str | None]]:
    """A detector's variants to report: name -> (detector, the features it reads: a training-data detector's
    "pooled" or "block", None for the others), configured first."""
    variants = DETECTORS.get(name).variants
    if variants is not None:
        return variants(built)
    return {"configured": (built, "pooled" if DETECTORS.get(name).kind == "training-data" else None)}


def check_features(features: torch.Tensor, labels: torch.Tensor) -> None:
    """Features (N, D) floating point and labels (N,) int64: what the feature-based detectors take."""
    if features.dim() != 2 or not features.is_floating_point():
        raise ValueError(f"features must be a float tensor (N, D), got {features.dtype} {tuple(features.shape)}")
    if labels.dim() != 1 or labels.dtype != torch.int64 or len(labels) != len(features):
        raise ValueError(f"labels must be an int64 tensor ({len(features)},), got {labels.dtype} {tuple(labels.shape)}")
    if len(labels) and int(labels.min()) < 0:
        raise ValueError("labels must be non-negative class indices")


# Importing the detector modules registers them (they use DETECTORS and check_features above).
from . import activation_clustering, neural_cleanse, spectral, strip  # noqa: E402,F401

__all__ = [
    "DETECTORS",
    "KIND_NAMES",
    "DetectionCounts",
    "DetectionResult",
    "InputDetector",
    "InputResult",
    "ModelDetector",
    "ModelResult",
    "auroc",
    "build_detector",
    "check_detector",
    "check_features",
    "detection_counts",
    "detector_defaults",
    "detector_variants",
]
