"""Spectral signatures (Tran, Li & Madry, NeurIPS 2018): poisoned images stand out along the top
singular direction of their class's feature matrix.

For each class c (by the labels as trained, i.e. poisoned labels) with feature rows ``R`` (n_c, D):
``M = R - mean(R)``; ``v`` = top right-singular vector of ``M``; outlier score ``tau_i = (M_i . v)^2``
(the paper's Algorithm 1, ``score="paper"``), or ``|R_i . v|``, the *uncentred* row projected
(``score="reference"``: MadryLab's code, ART and BackdoorBench compute this). The ``k_c`` highest scores
of the class are flagged, with
``k_c = min(n_c, floor(eps_multiplier * e_c + 0.5))`` and ``e_c`` the expected number of poisoned
images in the class: either given per class, or a total ``E`` spread over the classes in proportion
to their size (``e_c = E n_c / N``), which is ART's rule of one expected poison fraction for every
class.

Setting (default, source): ``eps_multiplier`` [1.5], ART ``SpectralSignatureDefense(eps_multiplier=1.5)``
(art/defences/detector/poison/spectral_signature_defense.py); the paper also removes 1.5 eps n.

Sources read: the paper; ART ``SpectralSignatureDefense`` (Trusted-AI/adversarial-robustness-toolbox);
BackdoorBench ``defense/spectral.py`` (SCLBD/BackdoorBench, after MadryLab/backdoor_data_poisoning).
Differences from them:

* Score: both forms are offered; the default is the paper's. The ranking differs whenever the class
  mean has a component along ``v``: then the uncentred score orders the images by their side of the
  class mean, the centred one by their distance from it, and a poisoned half of a class (10 % poisoning
  all-to-one) sits as far from the mean as the clean half, so the centred score cannot tell them apart.
* Scores are per class and not rescaled: they rank images *within* a class, which is what the method
  flags by. An AUROC over all images mixes classes whose scores differ in scale; the report gives the
  AUROC within the target class beside it (``backdoor.detection``). A class of one image, or of
  identical features, scores 0.
* Budget: ART flags scores at or above the ``1 - eps_multiplier * expected_pp_poison`` quantile of
  each class (numpy linear interpolation; ``expected_pp_poison`` default 0.33); BackdoorBench flags
  scores above the 85th percentile of every class. Here the count is ``k_c`` above, ties broken by
  index (stable sort), and per-class expectations may be given.
* The top singular vector comes from ARPACK (scipy's ``svds``, k=1, to machine precision, from a seeded start
  vector) instead of a full SVD: the same vector to about 1e-15 (its sign aside, which no score depends on) at a
  fraction of the cost (a class of 5,000 images with 2,048 block features: 12.5 s for the full SVD on this CPU,
  0.26 s). A full SVD where ARPACK cannot run (a side below 2, a rank-0 class, no convergence).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from scipy.sparse.linalg import ArpackError, ArpackNoConvergence, svds

from . import DETECTORS, check_features
from .result import DetectionResult


@dataclass(frozen=True, eq=False)
class SpectralResult(DetectionResult):
    """``budgets``: class -> number of its images flagged (``k_c``)."""

    budgets: dict[int, int]


SCORES = ("paper", "reference")


def spectral_scores(features: torch.Tensor, score: str = "paper") -> torch.Tensor:
    """float64 (n,): the rows' projection on the top right-singular vector of the centred rows: centred and
    squared (``paper``), or uncentred and absolute (``reference``)."""
    x = features.detach().double().cpu()
    centred = x - x.mean(dim=0, keepdim=True)
    if len(x) < 2:
        return torch.zeros(len(x), dtype=torch.float64)
    top = top_singular_vector(centred)
    return (centred @ top) ** 2 if score == "paper" else (x @ top).abs()


def top_singular_vector(matrix: torch.Tensor) -> torch.Tensor:
    """The top right-singular vector of a float64 (n, D) matrix, by ARPACK; by a full SVD where ARPACK cannot run.
    The start vector is seeded and random: a fixed one like all-ones is orthogonal to every left-singular vector of a
    centred matrix (its columns sum to 0), where ARPACK would break down."""
    if min(matrix.shape) >= 2 and bool(matrix.abs().max() > 0):
        start = np.random.default_rng(0).standard_normal(min(matrix.shape))
        try:
            _, _, vt = svds(matrix.numpy(), k=1, v0=start, tol=0)
            return torch.from_numpy(vt[0].copy())
        except (ArpackError, ArpackNoConvergence):
            pass
    return torch.linalg.svd(matrix, full_matrices=False)[2][0]


def _expected_per_class(
    expected_poison: int | Sequence[float] | torch.Tensor, labels: torch.Tensor, classes: list[int]
) -> dict[int, float]:
    """``e_c`` for each present class: a total spread by class size, or the per-class values given."""
    if isinstance(expected_poison, int) and not isinstance(expected_poison, bool):
        if not 0 <= expected_poison <= len(labels):
            raise ValueError(f"expected_poison must be in [0, {len(labels)}], got {expected_poison}")
        return {c: expected_poison * int((labels == c).sum()) / len(labels) for c in classes}
    per_class = torch.as_tensor(expected_poison, dtype=torch.float64)
    if per_class.dim() != 1 or (classes and len(per_class) <= max(classes)):
        raise ValueError(
            "expected_poison must be an int (total) or a 1-D sequence indexed by class, "
            f"covering class {max(classes) if classes else 0}; got shape {tuple(per_class.shape)}"
        )
    if not bool(torch.isfinite(per_class).all()) or bool((per_class < 0).any()):
        raise ValueError("expected_poison per class must be finite and non-negative")
    return {c: float(per_class[c]) for c in classes}


@dataclass(frozen=True)
class SpectralSignatures:
    eps_multiplier: float = 1.5
    expected_rate: float = 0.1
    score: str = "paper"

    def __call__(
        self,
        features: torch.Tensor,
        labels: torch.Tensor,
        expected_poison: int | Sequence[float] | torch.Tensor | None = None,
    ) -> SpectralResult:
        """Score and flag training images from their penultimate-layer ``features`` (N, D) and the
        ``labels`` they were trained with; ``expected_poison`` is a total (int) or per-class counts;
        None: ``expected_rate`` of every class (the defender's assumption, ART's expected_pp_poison)."""
        check_features(features, labels)
        labels = labels.cpu()
        classes = labels.unique().tolist()
        if expected_poison is None:
            expected_poison = [self.expected_rate * int((labels == c).sum()) for c in range(max(classes) + 1)]
        expected = _expected_per_class(expected_poison, labels, classes)
        scores = torch.zeros(len(labels), dtype=torch.float64)
        flagged = torch.zeros(len(labels), dtype=torch.bool)
        budgets = {}
        for c in classes:
            index = (labels == c).nonzero().flatten()
            tau = spectral_scores(features[index.to(features.device)], self.score)
            scores[index] = tau
            budgets[c] = min(len(index), math.floor(self.eps_multiplier * expected[c] + 0.5))
            top = torch.argsort(tau, descending=True, stable=True)[: budgets[c]]
            flagged[index[top]] = True
        return SpectralResult(scores, flagged, budgets)


def spectral_variants(built: SpectralSignatures) -> dict:
    """The configured detector and the other score form, each on the pooled features and on the last block
    flattened (the layer BackdoorBench takes), all at the configured budget."""
    other = "reference" if built.score == "paper" else "paper"
    forms = {built.score: built, other: SpectralSignatures(built.eps_multiplier, built.expected_rate, other)}
    return {f"{form}-{layer}": (detector, layer) for form, detector in forms.items() for layer in ("pooled", "block")}


@DETECTORS.register(
    "spectral",
    reference="Tran, Li, Madry, NeurIPS 2018; ART SpectralSignatureDefense",
    rule="the top eps_multiplier x expected_rate x class size scores of each class (Tran et al. 2018)",
    variants=spectral_variants,
    seeded=False,
)
def spectral(*, eps_multiplier: float = 1.5, expected_rate: float = 0.1, score: str = "paper") -> SpectralSignatures:
    """``expected_rate``: the fraction of each class the defender assumes poisoned (Tran et al.'s epsilon) when
    no expected count is given; 0.1 here, an upper bound for the rates the CPU presets use (ART's
    ``expected_pp_poison`` defaults to 0.33)."""
    return SpectralSignatures(
        float(DETECTORS.number("spectral", "eps_multiplier", eps_multiplier, low=0.0)),
        float(DETECTORS.number("spectral", "expected_rate", expected_rate, low=0.0, high=1.0)),
        DETECTORS.choice("spectral", "score", score, SCORES),
    )
