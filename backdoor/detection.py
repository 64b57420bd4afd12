"""The detectors (``backdoor.detectors``) on one trained model: what each is given, the truth, the scores kept,
and the numbers made of them.

What the defender has, the same for every detector: the trained model, its training set as it was trained
on (poisoned images included, unknown to the defender) and clean images of its own, drawn (seeded) from the
training pool's unpoisoned images, as the fine-tuning defence gets them. The test set is used only to score
input-level detectors: triggered test inputs are the positives, clean test inputs the negatives.

``detect`` returns a record (JSON: one row of metrics per variant, no timing, so that the same inputs give the
same bytes) and a table of the scores with the truth beside each, kept so that any other metric can be
computed later without running the detector again:

- ``training-data`` detectors score every training image; a row per variant (its entry's ``variants``): the flags'
  counts at the detector's own budget, at the oracle budget (the top 1.5 x the true poisoned count of each class
  by score), the AUROC within the attack's target class (its poisons against its clean images: what the method
  ranks) and over all images (scores of different classes compared as they are), and the target class's
  poisoned share. Scores: one row per image (pool index, label as trained, poisoned), a score and a flag column
  per variant.
  A detector whose scores take two values within a class (activation clustering: fact ``ranking``) has its
  AUROC within the target class named for what it is, ``balanced_accuracy_target``, and ``balanced_accuracy`` (of
  its flags, over all images) instead of the AUROC over all images.
- ``inputs`` detectors (STRIP) score triggered and clean test inputs; the threshold comes from the defender's
  clean images. A triggered input the model does not obey (it is not classified as the target) carries no
  working trigger: TPR and AUROC are given over all triggered inputs and over those that fire. A row per variant
  (STRIP's two superpositions), each with its own threshold, on the same draws; the scores table holds the
  configured one's columns and each other variant's with its name appended.
- ``model`` detectors (Neural Cleanse) judge the model: a poisoned model counts as found when the attack's
  target is among the flagged classes; a clean baseline flagged at all is a false alarm. Scores: a row per class.

``detect`` dispatches on the kind the detector's entry declares (``JUDGES``) and reads the entry's other facts
(``backdoor.detectors.DETECTORS``: its rule, variants, extra columns), so a new detector of a known kind needs no
edit here.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd
import torch

from .classifier import Classifier, inference_batch, inference_model
from .datasets import Dataset
from .detectors import DETECTORS, InputDetector, ModelDetector, build_detector, detector_variants
from .detectors.result import auroc, detection_counts
from .registry import Entry
from .seeding import generator

ORACLE_MULTIPLIER = 1.5  # the oracle budget: Tran et al.'s 1.5 x epsilon with the true poisoned count


def detection_scores_file(record: str) -> str:
    """The per-image scores (with the truth beside them) that a detect stage writes beside its JSON record."""
    return record.removesuffix(".json") + ".scores.csv.gz"


def reversed_trigger_file(record: str) -> str:
    """The image of the trigger a model-level detector (Neural Cleanse) reversed, beside its record."""
    return record.removesuffix(".json") + ".png"


@torch.inference_mode()
def _forward(clf: Classifier, images: torch.Tensor, pooled: bool) -> torch.Tensor:
    model = clf.model.eval()
    parts = []
    for batch in images.split(inference_batch(next(model.parameters()).device)):
        x = model.forward_features(clf.normalizer(batch))
        parts.append((model.forward_head(x, pre_logits=True) if pooled else x).float().flatten(1))
    return torch.cat(parts)


def training_features(clf: Classifier, images: torch.Tensor) -> torch.Tensor:
    """Penultimate-layer features (``forward_head(..., pre_logits=True)``) of uint8 images, float32 (N, D)."""
    return _forward(clf, images, pooled=True)


def block_features(clf: Classifier, images: torch.Tensor) -> torch.Tensor:
    """The last block's output flattened (``forward_features``), float32 (N, C x H x W): the layer BackdoorBench's
    spectral signatures read, which keeps where in the image a feature fired."""
    return _forward(clf, images, pooled=False)


def model_logits(clf: Classifier):
    """Differentiable logits of float images in [0, 1] (model-level detectors optimise their inputs)."""
    model = clf.model.eval()
    return lambda images: model(clf.normalizer(images))


def inference_logits(clf: Classifier):
    """Logits of float images in [0, 1] through the BatchNorm-folded inference copy, without autograd: what an
    input-level detector needs, several times faster on a CPU."""
    model = inference_model(clf.model)

    def logits(images: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return model(clf.normalizer(images))

    return logits


def defender_clean_images(
    data: Dataset, pool: torch.Tensor, poisoned: torch.Tensor, count: int, seed: int
) -> tuple[torch.Tensor, ...]:
    """``count`` images (and labels) of the training ``pool`` outside ``poisoned``, seeded: the defender's own
    clean data."""
    clean = pool[~torch.isin(pool, poisoned)]
    pick = clean[torch.randperm(len(clean), generator=generator(seed, "defender-clean"))[:count]]
    return data.train.images[pick], data.train.labels[pick]


# ---------------------------------------------------------------- metrics from scores


def oracle_flags(
    scores: torch.Tensor, truth: torch.Tensor, labels: torch.Tensor, multiplier: float = ORACLE_MULTIPLIER
) -> torch.Tensor:
    """Flag the top ``floor(multiplier x true poisoned count + 0.5)`` scores of each class: the budget a defender
    who knew each class's poisoned share would give Tran et al.'s rule (ties broken by index)."""
    flags = torch.zeros(len(scores), dtype=torch.bool)
    for c in labels.unique().tolist():
        index = (labels == c).nonzero().flatten()
        budget = min(len(index), math.floor(multiplier * int(truth[index].sum()) + 0.5))
        flags[index[torch.argsort(scores[index], descending=True, stable=True)[:budget]]] = True
    return flags


def _counts(flagged: torch.Tensor, truth: torch.Tensor, prefix: str = "") -> dict[str, Any]:
    return {f"{prefix}{k}": v for k, v in detection_counts(flagged, truth)._asdict().items()}


def balanced_accuracy(flagged: torch.Tensor, truth: torch.Tensor) -> float:
    """(TPR + TNR) / 2 of the flags; NaN when ``truth`` holds one class only."""
    counts = detection_counts(flagged, truth)
    return (counts.tpr + 1 - counts.fpr) / 2


def image_metrics(
    scores: torch.Tensor,
    flagged: torch.Tensor,
    truth: torch.Tensor,
    labels: torch.Tensor,
    target: int | None,
    ranking: str = "auroc",
) -> dict[str, Any]:
    """A training-data detector's numbers from its scores and flags (see the module doc); ``ranking``
    "balanced_accuracy" names the within-target AUROC of two-valued scores for what it is."""
    scores, flagged, truth, labels = (t.cpu() for t in (scores.double(), flagged, truth, labels))
    overall = auroc(scores, truth) if ranking == "auroc" else balanced_accuracy(flagged, truth)
    metrics = _counts(flagged, truth) | {ranking: overall}
    metrics |= {
        f"oracle_{k}": v
        for k, v in detection_counts(oracle_flags(scores, truth, labels), truth)._asdict().items()
        if k in ("tpr", "fpr", "precision")
    }
    in_target = labels == target if target is not None else torch.zeros(len(labels), dtype=torch.bool)
    metrics[f"{ranking}_target"] = auroc(scores[in_target], truth[in_target]) if bool(in_target.any()) else math.nan
    metrics["target_poisoned_share"] = float(truth[in_target].double().mean()) if bool(in_target.any()) else math.nan
    return metrics


def input_metrics(scores: torch.Tensor, flagged: torch.Tensor, truth: torch.Tensor, fires: torch.Tensor) -> dict:
    """An input-level detector's numbers: over all triggered inputs, and over those the model obeys (``fires``)
    against the same clean inputs."""
    metrics = _counts(flagged, truth) | {"auroc": auroc(scores, truth)}
    firing = fires | ~truth
    metrics |= {
        "firing_inputs": int((fires & truth).sum()),
        "tpr_firing": _counts(flagged[firing], truth[firing])["tpr"],
        "auroc_firing": auroc(scores[firing], truth[firing]),
    }
    return metrics


# ---------------------------------------------------------------- one detector on one model


@dataclass(frozen=True)
class Case:
    """What ``detect`` is given about one model (its arguments; see there)."""

    name: str
    clf: Classifier
    data: Dataset
    pool: torch.Tensor
    poisoned: torch.Tensor
    triggered: torch.Tensor | None
    triggered_targets: torch.Tensor | None
    backdoored: bool
    target: int | None
    seed: int
    features: dict[str, torch.Tensor] | None

    def rng(self) -> torch.Generator:
        return generator(self.seed, f"detector:{self.name}")


def _columns(entry: Entry, result: Any) -> dict[str, Any]:
    """The record columns the entry declares, read from its result."""
    return {column: getattr(result, column) for column in entry.columns}


def _score_columns(entry: Entry, result: Any) -> dict[str, Any]:
    return {column: getattr(result, column).numpy() for column in entry.score_columns}


def judge_training_data(entry: Entry, detector: Callable[..., Any], case: Case) -> tuple[dict, pd.DataFrame]:
    """Every variant on the training set's features: a row of metrics and a score and flag column each."""
    truth, labels = case.features["poisoned"], case.features["labels"]
    table = pd.DataFrame({"label": labels.numpy(), "poisoned": truth.numpy()})
    rows = []
    for variant, (variant_detector, layer) in detector_variants(entry.name, detector).items():
        kwargs = {"generator": case.rng()} if entry.seeded else {}
        result = variant_detector(case.features[layer], labels, **kwargs)
        rows.append(
            {
                "variant": variant,
                "features": layer,
                **image_metrics(result.scores, result.flagged, truth, labels, case.target, entry.ranking),
                **_columns(entry, result),
            }
        )
        table[f"score_{variant}"], table[f"flag_{variant}"] = result.scores.numpy(), result.flagged.numpy()
    return {"clean_data": 0, "rows": rows}, table


def judge_inputs(entry: Entry, detector: InputDetector, case: Case) -> tuple[dict, pd.DataFrame]:
    """Triggered and clean test inputs scored by each variant on the same draws, the threshold set on the
    defender's clean images."""
    rng = case.rng()
    clean_images, _ = defender_clean_images(case.data, case.pool, case.poisoned, 2 * detector.num_clean, case.seed)
    blend_pool, held_out = clean_images[: detector.num_clean], clean_images[detector.num_clean :]
    pick = lambda n, g: torch.randperm(n, generator=g)[: detector.num_inputs]  # noqa: E731
    chosen = pick(len(case.triggered), rng)
    triggered, wanted = case.triggered[chosen], case.triggered_targets[chosen]
    test_pick = pick(len(case.data.test), rng)
    clean_inputs, clean_labels = case.data.test.images[test_pick], case.data.test.labels[test_pick]
    inputs = torch.cat([triggered, clean_inputs])
    truth = torch.cat([torch.ones(len(triggered), dtype=torch.bool), torch.zeros(len(clean_inputs), dtype=torch.bool)])
    logits = inference_logits(case.clf)
    fires = torch.cat(
        [logits(triggered.float() / 255).argmax(1).cpu() == wanted, torch.zeros(len(clean_inputs), dtype=torch.bool)]
    )
    table = pd.DataFrame(
        {"triggered": truth.numpy(), "fires": fires.numpy(), "class": torch.cat([wanted, clean_labels]).numpy()}
    )
    state, rows, thresholds = rng.get_state(), [], []
    for variant, (variant_detector, _) in detector_variants(entry.name, detector).items():
        rng.set_state(state)  # every variant draws the same pool images
        result = variant_detector(logits, inputs, blend_pool, rng, clean=held_out)
        thresholds.append(result.threshold)
        rows.append(
            {
                "variant": variant,
                **input_metrics(result.scores, result.flagged, truth, fires),
                "threshold": result.threshold,
                **_columns(entry, result),
            }
        )
        suffix = "" if variant == "configured" else f"_{variant}"
        for column, values in {**_score_columns(entry, result), "flagged": result.flagged.numpy()}.items():
            table[f"{column}{suffix}"] = values
    return {"clean_data": len(clean_images), "threshold": thresholds[0], "rows": rows}, table


def judge_model(entry: Entry, detector: ModelDetector, case: Case) -> tuple[dict, pd.DataFrame]:
    """The model judged from the defender's clean images: found when the attack's target is among the flagged
    classes (a clean baseline: when any is); a row per class in the table."""
    backdoored, target, classes = case.backdoored, case.target, case.clf.num_classes
    images, labels = defender_clean_images(case.data, case.pool, case.poisoned, detector.num_images, case.seed)
    result = detector(model_logits(case.clf), images, labels, classes, case.rng())
    flagged = list(result.flagged_classes)
    found = bool(flagged) and (target in flagged if backdoored and target is not None else True)
    smallest = int(result.norms.argmin())
    per_class = {
        "class": range(classes),
        "norm": result.norms.numpy(),
        "anomaly_index": result.anomaly_index.numpy(),
        "flagged": [c in flagged for c in range(classes)],
        **_score_columns(entry, result),
    }
    row = {
        "variant": "configured",
        **_counts(torch.tensor([found]), torch.tensor([backdoored])),
        "flagged_classes": flagged,
        "target_flagged": backdoored and target is not None and target in flagged,
        "anomaly_index": float(result.anomaly_index[smallest]),
        "smallest_norm_class": smallest,
        **_columns(entry, result),
    }
    record = {"clean_data": len(images), "rows": [row], "norms": result.norms.tolist()}
    if entry.reversed_trigger:  # the smallest norm's, for the stage to draw
        record["reversed"] = {"mask": result.masks[smallest], "pattern": result.patterns[smallest]}
    return record, pd.DataFrame(per_class)


JUDGES = {"training-data": judge_training_data, "inputs": judge_inputs, "model": judge_model}  # by kind


def detect(
    name: str,
    settings: dict,
    clf: Classifier,
    data: Dataset,
    *,
    pool: torch.Tensor,
    poisoned: torch.Tensor,
    triggered: torch.Tensor | None,
    triggered_targets: torch.Tensor | None,
    backdoored: bool,
    target: int | None,
    seed: int,
    features: dict[str, torch.Tensor] | None = None,
) -> tuple[dict[str, Any], pd.DataFrame]:
    """Run detector ``name`` on one model; return its record (``rows``: metrics per variant) and its scores.

    ``pool``: the training pool; ``poisoned``: its images carrying the trigger (the defender's clean data
    avoids them); ``triggered`` and ``triggered_targets``: triggered test inputs and the class each should
    produce (input-level detectors); ``backdoored``: whether the model was trained on poison; ``target``: the
    attack's target class (None when there is no single one, as for all-to-all); ``features``: the training
    set's ``pooled`` features with its ``labels`` and ``poisoned`` truth, and ``block`` features when a variant
    reads them (training-data detectors)."""
    detector = build_detector(name, **settings)
    entry = DETECTORS.get(name)
    case = Case(name, clf, data, pool, poisoned, triggered, triggered_targets, backdoored, target, seed, features)
    record, table = JUDGES[entry.kind](entry, detector, case)
    return {"detector": name, "kind": entry.kind, "threshold_rule": entry.rule, "target_known": False, **record}, table
