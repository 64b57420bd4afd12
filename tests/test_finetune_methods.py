"""The fine-tuning methods (backdoor/finetune_methods/): each test checks the step that defines its method, so a
variant without it fails; the step budget; the transfer setting (train.init, train.freeze)."""

from __future__ import annotations

import copy

import pytest
import torch

from backdoor.classifier import Classifier
from backdoor.datasets import Dataset, Split
from backdoor.defence_settings import FinetuneConfig
from backdoor.errors import ConfigError
from backdoor.finetune_methods import METHODS, Tuning, build_method, check_method, head_and_backbone, tuning_config
from backdoor.finetune_methods.fine_pruning import head_inputs, pruning_steps
from backdoor.finetune_methods.super_ft import super_ft_lr
from backdoor.models import classifier_head
from backdoor.settings import TrainConfig
from tests.conftest import make_experiment

torch.set_num_threads(1)


def tiny_data(n: int = 96, classes: int = 4, noise: int = 60, signal: int = 150) -> Dataset:
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(n) % classes
    images = torch.randint(0, noise, (n, 1, 16, 16), dtype=torch.uint8, generator=g)
    for c in range(classes):  # a learnable signal: each class brightens its own quadrant
        rows, cols = divmod(c, 2)
        images[labels == c, :, rows * 8 : rows * 8 + 8, cols * 8 : cols * 8 + 8] += signal
    return Dataset("tiny", tuple(map(str, range(classes))), Split(images, labels), Split(images[:32], labels[:32]))


def trained(data: Dataset, seed: int = 0) -> Classifier:
    from backdoor.loop import fit

    clf = Classifier.create("small-cnn", data.train.images, 4, seed=seed)
    fit(
        clf,
        data.train.images,
        data.train.labels,
        TrainConfig(epochs=3, batch_size=16, lr=0.05, crop_padding=0, flip=False),
        seed=seed,
        progress=False,
    )
    return clf


@pytest.fixture(scope="module")
def source():
    data = tiny_data()
    return data, trained(data)


@pytest.fixture(scope="module")
def faint_source():
    """A faint signal: accuracy falls channel by channel as fine-pruning masks them, not all at once."""
    data = tiny_data(n=192, noise=120, signal=15)
    return data, trained(data)


def tune(name: str, clf: Classifier, data: Dataset, settings: dict | None = None, **loop) -> dict:
    cfg = tuning_config(
        FinetuneConfig(**{"epochs": 2, "batch_size": 16, "lr": 0.05, "crop_padding": 0, "flip": False, **loop}),
        name,
        settings,
    )
    tuning = Tuning(clf, data.train.images, data.train.labels, cfg, seed=0, data=data, progress=False)
    return build_method(name, settings)(tuning)


def state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def head_names(model: torch.nn.Module) -> set[str]:
    head = {id(p) for p in classifier_head(model).parameters()}
    return {name for name, p in model.named_parameters() if id(p) in head}


def test_every_method_is_registered_with_a_module_and_validates_its_settings():
    assert sorted(METHODS) == [
        "anp",
        "fe-tuning",
        "fine-pruning",
        "fst",
        "ft",
        "ft-sam",
        "i-bau",
        "lp",
        "nad",
        "super-ft",
    ]
    with pytest.raises(ConfigError, match=r"finetune.method: unknown value 'fine-tune'; valid choices: anp, fe-tuning"):
        check_method("fine-tune", {})
    with pytest.raises(ConfigError, match=r"finetune_methods.fst.alpha: must be a number in \[0, inf\)"):
        check_method("fst", {"alpha": -1})
    with pytest.raises(ConfigError, match=r"finetune_methods.fine-pruning.stop_on: unknown value 'val'"):
        check_method("fine-pruning", {"stop_on": "val"})
    with pytest.raises(ConfigError, match=r"finetune_methods.lp.epochs: must be an integer"):  # a loop override
        check_method("lp", {"epochs": 1.5})
    with pytest.raises(ConfigError, match=r"finetune_methods.ft.alpha: unknown setting; valid keys: batch_size"):
        check_method("ft", {"alpha": 0.1})


def test_every_method_counts_the_steps_it_took(source):
    data, model = source
    for name in METHODS:  # 96 images in batches of 16, two epochs
        assert tune(name, copy.deepcopy(model), data)["steps"] == 12, name


def test_linear_probing_changes_the_head_and_no_other_parameter(source):
    data, model = source
    clf = copy.deepcopy(model)
    before = state(clf.model)
    tune("lp", clf, data)
    after = dict(clf.model.named_parameters())
    heads = head_names(clf.model)
    for name, param in after.items():
        if name in heads:
            assert not torch.equal(param.detach(), before[name]), name
        else:
            assert torch.equal(param.detach(), before[name]), name  # bit-identical outside the head


def test_linear_probing_keeps_the_head_norm(source):
    data, model = source
    clf = copy.deepcopy(model)
    norm = classifier_head(clf.model).weight.norm().item()
    tune("lp", clf, data, lr=0.5)
    assert classifier_head(clf.model).weight.norm().item() == pytest.approx(norm, rel=1e-5)


def test_fe_tuning_reinitialises_the_head_and_keeps_it_frozen(source):
    data, model = source
    clf = copy.deepcopy(model)
    original = classifier_head(clf.model).weight.detach().clone()
    backbone_before = [p.detach().clone() for p in head_and_backbone(clf.model)[1]]
    tune("fe-tuning", clf, data)
    head = classifier_head(clf.model).weight.detach()
    assert not torch.allclose(head, original)  # re-initialised ...
    bound = 1 / clf.model.fc.in_features**0.5
    assert head.abs().max() <= bound  # ... uniform in +-1/sqrt(fan_in), and never trained
    again = copy.deepcopy(model)
    tune("fe-tuning", again, data)
    assert torch.equal(classifier_head(again.model).weight, head)  # seeded
    assert any(not torch.equal(p, q) for p, q in zip(head_and_backbone(clf.model)[1], backbone_before))


def test_fst_reinitialises_the_head_pushes_it_from_the_old_one_and_keeps_its_norm(source):
    data, model = source
    original = classifier_head(model.model).weight.detach().clone()
    norm = original.norm().item()
    runs = {}
    for alpha in (0.0, 5.0):
        clf = copy.deepcopy(model)
        tune("fst", clf, data, {"alpha": alpha})
        runs[alpha] = classifier_head(clf.model).weight.detach()
        assert runs[alpha].norm().item() == pytest.approx(norm, rel=1e-5)
    alignment = {alpha: float((head * original).sum()) for alpha, head in runs.items()}
    assert alignment[5.0] < alignment[0.0]  # the feature-shift term moves the new head away from the backdoored one
    assert alignment[0.0] < float((original * original).sum()) * 0.9  # re-initialised, not the old head tuned


def test_super_ft_lr_rises_to_its_peak_then_falls():
    lr = super_ft_lr(base_lr=1e-3, max_lr=0.1, final_lr=1e-4, rise_fraction=0.25)
    assert (
        lr(0, 100) == pytest.approx(1e-3) and lr(25, 100) == pytest.approx(0.1) and lr(100, 100) == pytest.approx(1e-4)
    )
    assert lr(10, 100) == pytest.approx(1e-3 + (0.1 - 1e-3) * 10 / 25)  # linear within each phase
    assert lr(60, 100) == pytest.approx(0.1 + (1e-4 - 0.1) * 35 / 75)


def test_super_ft_trains_with_its_schedule_not_finetune_lr(source):
    data, model = source
    runs = [copy.deepcopy(model) for _ in range(2)]
    for clf, lr in zip(runs, (0.01, 0.5)):
        tune("super-ft", clf, data, lr=lr)
    for a, b in zip(*(r.model.parameters() for r in runs)):  # finetune.lr only scales internally: same updates
        assert torch.allclose(a, b, atol=1e-6)


def test_fine_pruning_masks_the_least_active_channels_and_stops_at_the_relative_accuracy_drop(faint_source):
    data, model = faint_source
    clf = copy.deepcopy(model)
    tuning = Tuning(
        clf,
        data.train.images,
        data.train.labels,
        FinetuneConfig(epochs=1, batch_size=16, lr=1e-9, crop_padding=0, flip=False),
        seed=0,
        data=data,
        progress=False,
    )
    features = head_inputs(tuning, data.train.images)
    order = torch.argsort(features.mean(dim=0), stable=True)
    head = classifier_head(clf.model)
    weight, bias = head.weight.detach().clone(), head.bias.detach().clone()

    def accuracy(pruned: int) -> float:
        mask = torch.ones_like(weight)
        mask[:, order[:pruned]] = 0
        return ((features @ (weight * mask).T + bias).argmax(1) == data.train.labels).float().mean().item()

    ratio = 0.03
    record = build_method("fine-pruning", {"acc_ratio": ratio})(tuning)
    pruned = record["pruned_channels"]
    zeroed = (classifier_head(clf.model).weight == 0).all(dim=0)
    assert torch.equal(zeroed.nonzero().flatten().sort().values, order[:pruned].sort().values)  # least active first
    start = accuracy(0)
    assert record["prune_accuracy_before"] == pytest.approx(start)
    # the first step (0, 1, 3, 5 ... channels: fp.py's off-by-one) whose accuracy fell by the ratio: its mask is kept
    first = next(
        max(0, n - 1) for n in pruning_steps(128, 0.01) if abs(accuracy(max(0, n - 1)) - start) / start >= ratio
    )
    assert pruned == first > 0
    assert "weight_orig" not in dict(clf.model.named_parameters()) and record["pruned_layer"] == "stages.2"


def test_fine_pruning_can_judge_on_the_test_set_as_backdoorbench(source):
    data, model = source
    runs = {
        stop: tune("fine-pruning", copy.deepcopy(model), data, {"stop_on": stop}, lr=1e-9) for stop in ("clean", "test")
    }
    assert runs["test"]["prune_stop_on"] == "test" and runs["clean"]["prune_stop_on"] == "clean"


def test_finetune_model_evaluates_every_n_epochs_and_records_steps(monkeypatch, source):
    from backdoor import finetuning

    data, model = source
    monkeypatch.setattr(finetuning, "clean_finetune_indices", lambda exp, poisoned: torch.arange(64))
    monkeypatch.setattr(
        finetuning, "evaluate", lambda clf, data, poisoned: {"clean_acc": 0.5, "asr": 0.5, "robust_acc": 0.5}
    )
    exp = make_experiment(finetune={"epochs": 5, "batch_size": 16, "eval_every": 2, "method": "fine-pruning"})
    curve = finetuning.finetune_model(exp, copy.deepcopy(model), data, poisoned=None, progress=False)
    assert [(p["epoch"], p["steps"]) for p in curve] == [(0, 0), (2, 8), (4, 16), (5, 20)]
    assert "pruned_channels" in curve[-1]


def test_a_frozen_backbone_keeps_every_weight_and_statistic_of_the_source(source, tmp_path):
    from backdoor.training import train_model

    data, model = source
    model.save(tmp_path / "source.pt")
    for freeze in ("backbone", "none"):
        exp = make_experiment(
            poison_rate=0.0,
            seed=1,
            train={
                "epochs": 1,
                "batch_size": 16,
                "crop_padding": 0,
                "flip": False,
                "init": str(tmp_path / "source.pt"),
                "freeze": freeze,
                "eval_every_epoch": False,
            },
        )
        clf = train_model(exp, data, None, progress=False)
        heads = head_names(clf.model)
        moved = {
            k
            for k, v in clf.model.state_dict().items()
            if k not in heads and not torch.equal(v, model.model.state_dict()[k])
        }
        if freeze == "backbone":
            assert moved == set()  # weights and BatchNorm statistics: the source's, bit for bit
        else:
            assert moved  # trained from the source's weights
        assert clf.init_from is not None
    wrong = make_experiment(
        arch="resnet6-cpu",
        poison_rate=0.0,
        seed=1,
        train={"epochs": 1, "batch_size": 16, "init": str(tmp_path / "source.pt")},
    )
    with pytest.raises(ConfigError, match="train.init: .* is a small-cnn on 1 channels; this model is a resnet6-cpu"):
        train_model(wrong, data, None, progress=False)
