"""Detector registry: backdoor detectors that score training images, test inputs, or the model itself.

Adding a detector is one module with a factory and one ``@register_detector`` line. A factory takes
the detector's settings (``params.yaml: detectors.<name>``) as keyword arguments with defaults,
validates them and returns a callable detector. The valid keys are the factory's keyword arguments
(read with ``inspect.signature``), so a default lives in one place: the factory's signature.

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

import inspect
from typing import Any, Callable, Iterable

import torch

from ..errors import choices_error
from ..validation import check_choice, check_keys, check_number, setting_names
from .result import DetectionCounts, DetectionResult, auroc, detection_counts

DetectorFactory = Callable[..., Callable[..., Any]]
# A detector's variants, for a training-data detector: name -> (the detector built another way, the features it
# reads: "pooled", the penultimate vector, or "block", the last block flattened). The first is the configured one.
Variants = Callable[[Any], dict[str, tuple[Callable[..., Any], str]]]
DETECTORS: dict[str, DetectorFactory] = {}
# What a detector looks at, which decides what a pipeline feeds it: the training set's penultimate
# features ("training-data"), test inputs with and without the trigger ("inputs"), or the model alone.
KINDS: dict[str, str] = {}
RULES: dict[str, str] = {}  # how it decides what to flag, in one line (detection records carry it)
VARIANTS: dict[str, Variants] = {}
KIND_NAMES = ("training-data", "inputs", "model")


def register_detector(name: str, kind: str = "training-data", rule: str = "",
                      variants: Variants | None = None) -> Callable[[DetectorFactory], DetectorFactory]:
    """Register ``name``'s factory with what the pipeline needs to know of it: its ``kind``, its threshold ``rule``
    and, for a training-data detector, the ``variants`` to report beside the configured one."""
    if kind not in KIND_NAMES:
        raise ValueError(f"detector kind must be one of {KIND_NAMES}, got {kind!r}")

    def add(factory: DetectorFactory) -> DetectorFactory:
        DETECTORS[name], KINDS[name], RULES[name] = factory, kind, rule
        VARIANTS[name] = variants or (lambda built: {"configured": (built, "pooled")})
        return factory
    return add


def detector_defaults(name: str) -> dict[str, Any]:
    """The settings of detector ``name`` and their defaults, read from its factory's signature."""
    factory = _factory(name)
    params = inspect.signature(factory).parameters
    return {key: params[key].default for key in setting_names(factory)}


def build_detector(name: str, **settings: Any) -> Callable[..., Any]:
    """Validate ``settings`` (``params.yaml: detectors.<name>``) and return the detector."""
    check_keys(f"detectors.{name}", settings, detector_defaults(name))
    return DETECTORS[name](**settings)


def check_detector(name: str, settings: dict[str, Any]) -> None:
    """Raise ``ConfigError`` for a bad name or setting; building a detector does no work."""
    build_detector(name, **settings)


def _factory(name: str) -> DetectorFactory:
    if name not in DETECTORS:
        raise choices_error("detector", name, sorted(DETECTORS))
    return DETECTORS[name]


# ---------------------------------------------------------------- validation helpers for factories


def number(name: str, key: str, value: object, **bounds: Any) -> float:
    """``value`` as a finite number in the interval (``backdoor.validation.check_number``), named
    ``detectors.<name>.<key>``."""
    return check_number(f"detectors.{name}.{key}", value, **bounds)


def choice(name: str, key: str, value: object, choices: Iterable[str]) -> str:
    return check_choice(f"detectors.{name}.{key}", value, choices)


def check_features(features: torch.Tensor, labels: torch.Tensor) -> None:
    """Features (N, D) floating point and labels (N,) int64: what the feature-based detectors take."""
    if features.dim() != 2 or not features.is_floating_point():
        raise ValueError(f"features must be a float tensor (N, D), got {features.dtype} {tuple(features.shape)}")
    if labels.dim() != 1 or labels.dtype != torch.int64 or len(labels) != len(features):
        raise ValueError(f"labels must be an int64 tensor ({len(features)},), got {labels.dtype} "
                         f"{tuple(labels.shape)}")
    if len(labels) and int(labels.min()) < 0:
        raise ValueError("labels must be non-negative class indices")


# Importing the detector modules registers them (they use register_detector and the helpers above).
from . import activation_clustering, neural_cleanse, spectral, strip  # noqa: E402,F401

__all__ = ["DETECTORS", "KINDS", "RULES", "VARIANTS", "DetectionCounts", "DetectionResult", "auroc", "build_detector", "check_detector",
           "detection_counts", "detector_defaults", "register_detector"]
