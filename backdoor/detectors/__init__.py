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
import math
from typing import Any, Callable, Iterable

import torch

from ..errors import ConfigError, choices_error
from .result import DetectionCounts, DetectionResult, auroc, detection_counts

DetectorFactory = Callable[..., Callable[..., Any]]
DETECTORS: dict[str, DetectorFactory] = {}


def register_detector(name: str) -> Callable[[DetectorFactory], DetectorFactory]:
    def add(factory: DetectorFactory) -> DetectorFactory:
        DETECTORS[name] = factory
        return factory
    return add


def detector_defaults(name: str) -> dict[str, Any]:
    """The settings of detector ``name`` and their defaults, read from its factory's signature."""
    factory = _factory(name)
    return {key: p.default for key, p in inspect.signature(factory).parameters.items()
            if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)}


def build_detector(name: str, **settings: Any) -> Callable[..., Any]:
    """Validate ``settings`` (``params.yaml: detectors.<name>``) and return the detector."""
    valid = detector_defaults(name)
    unknown = sorted(set(settings) - set(valid))
    if unknown:
        keys = ", ".join(f"detectors.{name}.{key}" for key in unknown)
        raise ConfigError(f"{keys}: unknown setting; valid keys: {', '.join(sorted(valid))}")
    return DETECTORS[name](**settings)


def check_detector(name: str, settings: dict[str, Any]) -> None:
    """Raise ``ConfigError`` for a bad name or setting; building a detector does no work."""
    build_detector(name, **settings)


def _factory(name: str) -> DetectorFactory:
    if name not in DETECTORS:
        raise choices_error("detector", name, sorted(DETECTORS))
    return DETECTORS[name]


# ---------------------------------------------------------------- validation helpers for factories


def number(name: str, key: str, value: object, *, low: float = -math.inf, high: float = math.inf,
           low_open: bool = False, high_open: bool = False, integer: bool = False) -> float:
    """``value`` as a finite number (an int with ``integer``) in the interval; else a one-line ConfigError."""
    where = f"detectors.{name}.{key}"
    kind = "an integer" if integer else "a number"
    ok_type = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok_type or not math.isfinite(value):
        raise ConfigError(f"{where}: must be {kind}, got {value!r}")
    above = value > low if low_open else value >= low
    below = value < high if high_open else value <= high
    if not (above and below):
        interval = (("(" if low_open else "[") + f"{low:g}, {high:g}" + (")" if high_open else "]")
                    if math.isfinite(high) else f"{'>' if low_open else '>='} {low:g}")
        raise ConfigError(f"{where}: must be {kind} {'in ' if math.isfinite(high) else ''}{interval}, "
                          f"got {value!r}")
    return value


def choice(name: str, key: str, value: object, choices: Iterable[str]) -> str:
    choices = tuple(choices)
    if not isinstance(value, str) or value not in choices:
        raise choices_error(f"detectors.{name}.{key}", value, choices)
    return value


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

__all__ = ["DETECTORS", "DetectionCounts", "DetectionResult", "auroc", "build_detector", "check_detector",
           "detection_counts", "detector_defaults", "register_detector"]
