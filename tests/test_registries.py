"""Adding a method is one module and one import line: a dummy trigger, fine-tuning method and detector of each kind,
each registered as its module would be (one decorator, the family's public helpers), go through the check, the
planner and their own stage scripts with nothing else edited."""

from __future__ import annotations

import os
import runpy
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
import yaml

from backdoor.checks import validate_params
from backdoor.datasets import store_dataset
from backdoor.datasets.registry import dataset_spec
from backdoor.detectors import DETECTORS
from backdoor.detectors.result import DetectionResult
from backdoor.files import read_json
from backdoor.finetune_methods import METHODS, Tuning, head_and_backbone
from backdoor.grid import grid_cells
from backdoor.pipeline.plan import grid_stages
from backdoor.registry import Registry
from backdoor.triggers import TRIGGERS, PatchTrigger, check_patch

ROOT = Path(__file__).resolve().parents[1]
DUMMIES = {TRIGGERS: ["corner-dot"], METHODS: ["head-sgd"], DETECTORS: ["feature-norm", "max-logit", "head-norm"]}


def register_dummies() -> None:
    """What the dummies' modules would hold: a factory with its settings and one registration line each."""

    @TRIGGERS.register("corner-dot", patch=True, reference="a test")
    def corner_dot(shape, *, seed: int, size: int, location: str, value: int = 200):
        check_patch(shape, size)
        TRIGGERS.number("corner-dot", "value", value, low=0, high=255, integer=True)
        return PatchTrigger(torch.full((shape[0], size, size), value, dtype=torch.uint8), location)

    @METHODS.register("head-sgd", reference="a test")
    def head_sgd(*, lr_scale: float = 1.0):
        METHODS.number("head-sgd", "lr_scale", lr_scale, low=0, low_open=True)

        def run(tuning: Tuning) -> dict:
            head, _ = head_and_backbone(tuning.clf.model)
            return {"steps": tuning.fit(params=head)}

        return run

    @DETECTORS.register("feature-norm", rule="the largest feature norms, top `share` of each class")
    def feature_norm(*, share: float = 0.1):
        def run(features, labels, generator=None):
            scores = features.norm(dim=1).double()
            return DetectionResult(scores, scores >= scores.quantile(1 - share))

        return run

    @DETECTORS.register("max-logit", kind="inputs", rule="the most confident inputs", score_columns=("entropy",))
    def max_logit(*, num_inputs: int = 6, num_clean: int = 4):
        @dataclass
        class Result:
            scores: torch.Tensor
            flagged: torch.Tensor
            entropy: torch.Tensor
            threshold: float

        @dataclass
        class Run:
            num_inputs: int
            num_clean: int

            def __call__(self, logits, inputs, pool, generator, clean=None):
                scores = logits(inputs.float() / 255).max(dim=1).values.double()
                return Result(scores, scores > scores.median(), -scores, float(scores.median()))

        return Run(num_inputs, num_clean)

    @DETECTORS.register("head-norm", kind="model", rule="a class whose head row is longest")
    def head_norm(*, num_images: int = 8):
        @dataclass
        class Result:
            norms: torch.Tensor
            anomaly_index: torch.Tensor
            flagged_classes: tuple

        @dataclass
        class Run:
            num_images: int

            def __call__(self, logits, images, labels, num_classes, generator):
                norms = torch.arange(num_classes, dtype=torch.float64)
                return Result(norms, norms / norms.max(), (0,))

        return Run(num_images)


@pytest.fixture
def dummies():
    register_dummies()
    yield
    for registry, names in DUMMIES.items():
        for name in names:
            registry.remove(name)


def small_params(tmp_path: Path) -> Path:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params.update(trigger="corner-dot", poison_rate=0.1, threads=1)
    params["train"].update(epochs=1, batch_size=16, subset=None, eval_every_epoch=False)
    params["finetune"].update(method="head-sgd", epochs=1, batch_size=8, clean_size=16)
    params["finetune_methods"]["head-sgd"] = {"lr_scale": 2.0}
    params["detectors"] = {**params["detectors"], "feature-norm": {"share": 0.2}}
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


def stage(script: str, *args: str) -> None:
    """A stage script run in this process (where the dummies are registered), as DVC runs it."""
    argv, cwd = sys.argv, os.getcwd()
    sys.argv = [str(ROOT / "stages" / script), *map(str, args)]
    try:
        runpy.run_path(sys.argv[0], run_name="__main__")
    finally:
        sys.argv = argv
        os.chdir(cwd)


def test_the_registry_refuses_a_fact_it_does_not_know():
    family = Registry("thing", facts={"kind": "a"}, fact_choices={"kind": ("a", "b")})
    with pytest.raises(ValueError, match="unknown fact"):
        family.add("x", object(), colour="red")
    with pytest.raises(ValueError, match="fact kind must be one of"):
        family.add("x", object(), kind="c")


def test_a_trigger_a_method_and_a_detector_of_each_kind_are_one_registration_each(dummies, tmp_path, monkeypatch):
    params_file = small_params(tmp_path)
    params = yaml.safe_load(params_file.read_text())
    assert TRIGGERS.defaults("corner-dot") == {"value": 200} and "corner-dot" in TRIGGERS.names(patch=True)
    params["grid"].update(
        trigger=["corner-dot"], ft_method=["head-sgd"], detectors=["feature-norm", "max-logit", "head-norm"]
    )
    validate_params(params)
    stages = grid_stages(grid_cells(params), params)
    assert any("--features" in s["cmd"] for n, s in stages.items() if n.startswith("detect-feature-norm"))
    assert any("--poisoned" in s["cmd"] for n, s in stages.items() if n.startswith("detect-max-logit"))
    assert any(n.startswith("finetune-") and n.endswith("_head-sgd") for n in stages)

    images = torch.randint(0, 200, (80, 1, 28, 28), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    labels = torch.arange(80) % 10
    store_dataset(
        dataset_spec("fashion-mnist"),
        (images, labels, images[:30], labels[:30]),
        tmp_path / "raw",
        source="fashion-mnist",
    )
    monkeypatch.chdir(tmp_path)  # restored after the test: later tests in this worker run tools from the repo
    common = ["--params", params_file, "--raw", "raw"]
    stage("poison.py", *common, "--out", "poisoned")
    triggered = torch.load(tmp_path / "poisoned" / "poison.pt", weights_only=True)["test_images"]
    assert (triggered[:, :, -3:, -3:] == 200).all()  # the dummy's patch, stamped by the poison stage
    stage("train.py", *common, "--poisoned", "poisoned", "--out", "model")
    stage("finetune.py", *common, "--poisoned", "poisoned", "--model", "model/model.pt", "--out", "finetuned")
    assert (tmp_path / "finetuned" / "curve.csv").read_text().count("\n") == 3  # before and after one epoch
    model = ["--model", "model/model.pt", "--poisoned", "poisoned"]
    stage("features.py", *common, *model, "--out", "features")
    for detector, extra in (("feature-norm", ["--features", "features"]), ("max-logit", []), ("head-norm", [])):
        stage("detect.py", *common, *model, *extra, "--detector", detector, "--out", f"{detector}.json")
        record = read_json(tmp_path / f"{detector}.json")
        assert record["kind"] == DETECTORS.get(detector).kind and record["rows"]
