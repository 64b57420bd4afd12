"""Activation clustering (Chen et al., "Detecting backdoor attacks on deep neural networks by
activation clustering", 2018): within a class, poisoned images form their own, smaller cluster of
last-hidden-layer activations.

For each class (by the labels as trained) with at least two images: the features are reduced to
``nb_dims`` dimensions (only when they have more; at most one per image) by ``reduce``, then split by
2-means. ``share`` = the smaller cluster's fraction of the class.

* Flags (``cluster_analysis``): ``smaller`` flags the smaller cluster of every class (ART's
  ``ClusteringAnalyzer.analyze_by_size``, ART's and BackdoorBench's default analysis);
  ``relative-size`` flags it only in classes called poisoned (ART's ``analyze_by_relative_size``).
* Classes called poisoned, whatever the analysis: ``0 < share < size_threshold``, ART's relative-size
  rule with its default ``size_threshold=0.35``. A class that 2-means cannot split (share 0) is not.
* Score of an image: ``1 - (fraction of its class in its own cluster)``, so the smaller cluster of a
  lopsided class scores near 1 and both halves of an even split near 0.5; 0 for an unclustered class.
  Within a class the score takes two values, so its AUROC there is the balanced accuracy of the split into the
  two clusters: the record names it ``balanced_accuracy_target`` (fact ``ranking``), and ``balanced_accuracy``
  over all images is that of the flags.

Settings (default, source): ``nb_dims`` [10] and ``reduce`` [FastICA], ART
``activation_defence.cluster_activations(nb_dims=10, reduce="FastICA")`` and Chen et al. (ICA to 10
dimensions); ``cluster_analysis`` [smaller], ART ``ActivationDefence`` and BackdoorBench
``config/defense/ac/config.yaml``; ``size_threshold`` [0.35], ART ``analyze_by_relative_size``.
FastICA runs with ``max_iter=1000, tol=0.005`` as in ART's ``reduce_dimensionality``.

Sources read: ART ``ActivationDefence`` and ``ClusteringAnalyzer`` (Trusted-AI/adversarial-robustness-
toolbox, art/defences/detector/poison/); BackdoorBench ``defense/ac.py`` (SCLBD/BackdoorBench).
Differences from them:

* ART's ``ActivationDefence`` class itself reduces with PCA (its default since at least ART 1.0);
  ART's module functions ``cluster_activations``/``reduce_dimensionality`` default to FastICA, as
  does the paper. BackdoorBench reduces with PCA to 10 dimensions
  and clusters each *batch* (``cluster_batch_size``) separately, not the whole class.
* 2-means runs ``n_init=10`` times from k-means++ seeds (ART uses scikit-learn's default, which is
  10 before scikit-learn 1.4 and 1 since), with ``random_state`` drawn from the generator.
* ART rounds the share to 2 decimals before comparing with the threshold; this module compares the
  exact share. ART's ``nb_clusters`` (2 here, fixed) and exclusionary reclassification are not offered.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from . import DETECTORS, check_features
from .result import DetectionResult

REDUCTIONS = ("FastICA", "PCA")
ANALYSES = ("smaller", "relative-size")


@dataclass(frozen=True, eq=False)
class ClusteringResult(DetectionResult):
    """``smaller``: int64 (N,) 1 = in its class's smaller cluster, 0 = larger, -1 = class not clustered.
    ``shares``: class -> the smaller cluster's fraction. ``poisoned_classes``: ascending."""

    smaller: torch.Tensor
    shares: dict[int, float]
    poisoned_classes: tuple[int, ...]

    @property
    def flagged_classes(self) -> list[int]:
        """The classes called poisoned, as the record's ``flagged_classes`` column lists them."""
        return list(self.poisoned_classes)


def reduce_features(features: np.ndarray, nb_dims: int, reduce: str, random_state: int) -> np.ndarray:
    """``features`` (n, D) reduced to ``min(nb_dims, n)`` dimensions, or unchanged when D <= nb_dims."""
    from sklearn.decomposition import PCA, FastICA

    if features.shape[1] <= nb_dims:
        return features
    dims = min(nb_dims, len(features))
    if reduce == "FastICA":
        projector = FastICA(n_components=dims, max_iter=1000, tol=0.005, random_state=random_state)
    else:
        projector = PCA(n_components=dims, random_state=random_state)
    return projector.fit_transform(features)


def two_means(points: np.ndarray, random_state: int) -> np.ndarray:
    """bool (n,): True for the smaller of the two k-means clusters (cluster 1 on a tie)."""
    from sklearn.cluster import KMeans

    clusters = KMeans(n_clusters=2, n_init=10, random_state=random_state).fit_predict(points)
    sizes = np.bincount(clusters, minlength=2)
    return clusters == (0 if sizes[0] < sizes[1] else 1)


@dataclass(frozen=True)
class ActivationClustering:
    nb_dims: int = 10
    reduce: str = "FastICA"
    cluster_analysis: str = "smaller"
    size_threshold: float = 0.35

    def __call__(self, features: torch.Tensor, labels: torch.Tensor, generator: torch.Generator) -> ClusteringResult:
        """Cluster each class's ``features`` (N, D); ``labels`` as trained; ``generator`` seeds scikit-learn."""
        check_features(features, labels)
        random_state = int(torch.randint(0, 2**31 - 1, (1,), generator=generator))
        labels = labels.cpu()
        values = features.detach().cpu().double().numpy()
        scores = torch.zeros(len(labels), dtype=torch.float64)
        flagged = torch.zeros(len(labels), dtype=torch.bool)
        smaller = torch.full((len(labels),), -1, dtype=torch.int64)
        shares, poisoned = {}, []
        for c in labels.unique().tolist():
            index = (labels == c).nonzero().flatten()
            if len(index) < 2:
                continue
            reduced = reduce_features(values[index.numpy()], self.nb_dims, self.reduce, random_state)
            in_smaller = torch.from_numpy(two_means(reduced, random_state))
            share = float(in_smaller.double().mean())
            shares[c] = share
            smaller[index] = in_smaller.long()
            scores[index] = torch.where(in_smaller, 1.0 - share, share).double()
            is_poisoned = 0.0 < share < self.size_threshold
            poisoned += [c] if is_poisoned else []
            if self.cluster_analysis == "smaller" or is_poisoned:
                flagged[index] = in_smaller
        return ClusteringResult(scores, flagged, smaller, shares, tuple(poisoned))


def clustering_variants(built: ActivationClustering) -> dict:
    """The configured detector, then each source's rule with its reduction, all on the pooled features (the layer
    ART and BackdoorBench's AC take): ART's ``ActivationDefence`` (PCA to 10 dimensions, k-means) flagging the
    smaller cluster of every class, ART's relative-size rule (only where it holds under ``size_threshold`` of its
    class), and BackdoorBench's detection rule (``detection_pretrain/ac.py``: FastICA to 10, k-means, the smaller
    cluster when under 35 % of its class). ART clusters with MiniBatchKMeans only when given a data generator."""
    art = dict(nb_dims=built.nb_dims, reduce="PCA", size_threshold=built.size_threshold)
    return {
        "configured": (built, "pooled"),
        "art-smaller": (ActivationClustering(**art, cluster_analysis="smaller"), "pooled"),
        "art-relative-size": (ActivationClustering(**art, cluster_analysis="relative-size"), "pooled"),
        "backdoorbench": (ActivationClustering(10, "FastICA", "relative-size", 0.35), "pooled"),
    }


@DETECTORS.register(
    "activation-clustering",
    reference="Chen et al. 2018 (arXiv 1811.03728); ART ActivationDefence",
    rule="per class 2-means of reduced features: the smaller cluster (cluster_analysis) or only one "
    "under size_threshold of its class (Chen et al. 2018, ART)",
    variants=clustering_variants,
    columns=("flagged_classes",),
    ranking="balanced_accuracy",
)
def activation_clustering(
    *, nb_dims: int = 10, reduce: str = "FastICA", cluster_analysis: str = "smaller", size_threshold: float = 0.35
) -> ActivationClustering:
    name = "activation-clustering"
    return ActivationClustering(
        nb_dims=int(DETECTORS.number(name, "nb_dims", nb_dims, low=1, integer=True)),
        reduce=DETECTORS.choice(name, "reduce", reduce, REDUCTIONS),
        cluster_analysis=DETECTORS.choice(name, "cluster_analysis", cluster_analysis, ANALYSES),
        size_threshold=float(
            DETECTORS.number(name, "size_threshold", size_threshold, low=0.0, high=0.5, low_open=True)
        ),
    )
