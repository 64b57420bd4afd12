"""Adding a method is one module and one import line: a dummy detector of each kind and a dummy trigger, registered
as a module would register them, go through validation, the planner, detection, poisoning and the tables with
nothing else edited."""

from __future__ import annotations

import copy
from dataclasses import dataclass

import pandas as pd
import pytest
import torch

from backdoor import detectors, triggers
from backdoor.checks import validate_params
from backdoor.classifier import Classifier
from backdoor.datasets import Dataset, Split
from backdoor.detection import detect
from backdoor.detectors.result import DetectionResult
from backdoor.detectors.strip import StripResult
from backdoor.grid import grid_cells
from backdoor.params import read_params
from backdoor.pipeline.plan import grid_stages
from backdoor.tables import detection_table

torch.set_num_threads(1)


@pytest.fixture
def registries(monkeypatch):
    """The registries as they are; whatever a test registers is gone afterwards."""
    for module, names in ((detectors, ("DETECTORS", "KINDS", "RULES", "VARIANTS")), (triggers, ("TRIGGERS",))):
        for name in names:
            monkeypatch.setattr(module, name, copy.copy(getattr(module, name)))
    monkeypatch.setattr(triggers, "PATCH_TRIGGERS", list(triggers.PATCH_TRIGGERS))
    import backdoor.checks
    import backdoor.detection
    import backdoor.pipeline.plan

    for module in (backdoor.checks, backdoor.detection, backdoor.pipeline.plan):  # modules that imported the dicts
        for name in ("DETECTORS", "KINDS", "RULES", "VARIANTS", "TRIGGERS", "PATCH_TRIGGERS"):
            if hasattr(module, name):
                monkeypatch.setattr(module, name, getattr(detectors if hasattr(detectors, name) else triggers, name))


def register_dummies() -> None:
    """What three detector modules would hold: a factory with its settings and one register_detector line."""

    @detectors.register_detector("feature-norm", rule="the largest feature norms, top `share` of each class")
    def feature_norm(*, share: float = 0.1):
        def run(features, labels, generator=None):
            scores = features.norm(dim=1).double()
            return DetectionResult(scores, scores >= scores.quantile(1 - share))

        return run

    @detectors.register_detector("max-logit", kind="inputs", rule="the most confident inputs")
    def max_logit(*, num_inputs: int = 6, num_clean: int = 4):
        @dataclass
        class Run:
            num_inputs: int
            num_clean: int

            def __call__(self, logits, inputs, pool, generator, clean=None):
                scores = logits(inputs.float() / 255).max(dim=1).values.double()
                threshold = float(scores.median())
                return StripResult(scores, scores > threshold, -scores, threshold, scores[:0])

        return Run(num_inputs, num_clean)

    @detectors.register_detector("head-norm", kind="model", rule="a class whose head row is longest")
    def head_norm():
        @dataclass
        class Result:
            norms: torch.Tensor
            anomaly_index: torch.Tensor
            flagged_classes: tuple

        def run(logits, images, labels, num_classes, generator):
            norms = torch.arange(num_classes, dtype=torch.float64)
            return Result(norms, norms / norms.max(), (0,))

        return run


def tiny() -> tuple[Classifier, Dataset]:
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (40, 1, 8, 8), dtype=torch.uint8, generator=g)
    labels = torch.arange(40) % 4
    data = Dataset("tiny", ("a", "b", "c", "d"), Split(images, labels), Split(images[:12], labels[:12]))
    return Classifier.create("small-cnn", images, 4, seed=0), data


def test_a_detector_of_each_kind_is_one_registration(registries, tmp_path):
    register_dummies()
    params = read_params("params.yaml")
    params["grid"]["detectors"] = ["feature-norm", "max-logit", "head-norm"]
    params["detectors"] = {**params["detectors"], "feature-norm": {"share": 0.2}}
    cells = validate_params(params)
    stages = grid_stages(cells, params)
    kinds = {name.split("-")[1]: stage for name, stage in stages.items() if name.startswith("detect-")}
    assert {"feature", "max", "head"} <= set(kinds)  # each planned as its kind: features, inputs, model
    assert any("--features" in s["cmd"] for n, s in stages.items() if n.startswith("detect-feature-norm"))
    assert any(s["outs"][-1].endswith(".png") for n, s in stages.items() if n.startswith("detect-head-norm"))

    clf, data = tiny()
    pool, poisoned = torch.arange(40), torch.tensor([0, 4, 8])
    truth = torch.isin(pool, poisoned)
    features = {
        "pooled": torch.randn(40, 5, generator=torch.Generator().manual_seed(1)),
        "labels": data.train.labels,
        "poisoned": truth,
    }
    rows = []
    for name in ("feature-norm", "max-logit", "head-norm"):
        record, scores = detect(
            name,
            params["detectors"].get(name, {}),
            clf,
            data,
            pool=pool,
            poisoned=poisoned,
            triggered=data.test.images,
            triggered_targets=torch.zeros(12, dtype=torch.int64),
            backdoored=True,
            target=0,
            seed=0,
            features=features,
        )
        assert record["kind"] == detectors.KINDS[name] and len(scores)
        rows += [
            {
                **row,
                "detector": name,
                "trigger": "checker",
                "poison_rate": 0.1,
                "seed": 0,
                "dataset": "tiny",
                "arch": "small-cnn",
                "regularizer": "none",
            }
            for row in record["rows"]
        ]
    header = detection_table(pd.DataFrame(rows)).splitlines()[0]
    assert "feature-norm: AUROC in target" in header and "max-logit: AUROC · TPR" in header
    assert "head-norm: index · verdict" in header


def test_a_trigger_is_one_registration(registries):
    @triggers.register_trigger("corner-dot", patch=True)
    def corner_dot(shape, *, seed, size, location, value: int = 200, **settings):
        triggers._keys("corner-dot", settings)
        triggers._check_patch(shape, size)
        return triggers.PatchTrigger(torch.full((shape[0], size, size), value, dtype=torch.uint8), location)

    params = read_params("params.yaml")
    params["grid"]["trigger"] = ["corner-dot"]
    params["triggers"] = {**params["triggers"], "corner-dot": {"value": 90}}
    assert len(validate_params(params)) == 2  # rates 0 and 0.05
    assert "corner-dot" in triggers.PATCH_TRIGGERS
    stamped = triggers.build_trigger("corner-dot", (1, 8, 8), size=2, value=90)(
        torch.zeros(2, 1, 8, 8, dtype=torch.uint8), torch.Generator()
    )
    assert stamped[:, :, -2:, -2:].eq(90).all() and stamped[:, :, :-2].eq(0).all()
    assert [c.trigger for c in grid_cells(params)] == ["corner-dot", "corner-dot"]
