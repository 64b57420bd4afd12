"""The post-training defences among the fine-tuning methods (nad, anp, i-bau, ft-sam): each test checks the step that
defines its method, so a variant without it fails; the step budget the pipeline checks against its curve; the
settings' checks."""

from __future__ import annotations

import copy
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from backdoor.defence_settings import FinetuneConfig
from backdoor.errors import ConfigError
from backdoor.finetune_methods import Tuning, build_method, check_method
from backdoor.finetune_methods import anp as anp_module
from backdoor.finetune_methods.anp import Pruner, learn_masks, norm_layers, thresholds
from backdoor.finetune_methods.ft_sam import ascent
from backdoor.finetune_methods.i_bau import hypergradient, universal_perturbation
from backdoor.finetune_methods.nad import attention_layers, attention_map, nad_loss
from backdoor.models import create_model
from backdoor.poisoned_set import PoisonedSet
from tests.conftest import make_experiment
from tests.test_finetune_methods import tiny_data, trained

torch.set_num_threads(1)

DEFENCES = ("nad", "anp", "i-bau", "ft-sam")


@pytest.fixture(scope="module")
def source():
    data = tiny_data()
    return data, trained(data)


def tuning_for(clf, data, **loop) -> Tuning:
    cfg = FinetuneConfig(**{"epochs": 2, "batch_size": 16, "lr": 0.05, "crop_padding": 0, "flip": False, **loop})
    return Tuning(clf, data.train.images, data.train.labels, cfg, seed=0, data=data, progress=False)


@pytest.mark.parametrize(
    "name, key, value",
    [("nad", "teacher_share", 1.0), ("anp", "eps", -0.1), ("i-bau", "fixed_point_iterations", 0), ("ft-sam", "rho", 0)],
)
def test_each_defence_refuses_a_bad_setting_naming_it(name, key, value):
    with pytest.raises(ConfigError, match=rf"finetune_methods\.{name}\.{key}: must be"):
        check_method(name, {key: value})


@pytest.mark.parametrize(
    "name, epochs", [("nad", [0, 3, 4]), ("anp", [0, 4]), ("i-bau", [0, 1, 2, 3, 4]), ("ft-sam", [0, 1, 2, 3, 4])]
)
def test_each_defence_takes_the_loops_steps_and_the_pipeline_counts_them(monkeypatch, source, name, epochs):
    from backdoor import finetuning

    data, model = source
    monkeypatch.setattr(finetuning, "clean_finetune_indices", lambda exp, poisoned: torch.arange(64))
    monkeypatch.setattr(finetuning, "evaluate", lambda *args: {"clean_acc": 0.5, "asr": 0.5, "robust_acc": 0.5})
    exp = make_experiment(finetune={"epochs": 4, "batch_size": 16, "method": name})
    curve = finetuning.finetune_model(exp, copy.deepcopy(model), data, poisoned=None, progress=False)
    # 64 images in batches of 16 for 4 epochs; finetune_model raises if the record's steps and the curve disagree
    assert [(p["epoch"], p["steps"]) for p in curve] == [(e, 4 * e) for e in epochs]


@pytest.mark.parametrize("arch", ["airbench", "resnet6-cpu"])
@pytest.mark.parametrize("name", [*DEFENCES, "ft", "fst", "fine-pruning"])
def test_each_defence_runs_on_the_cifar10_presets_models(monkeypatch, arch, name):
    """The reference-model and core presets run every defence on these families for hours: each must reach the end
    of its loop on them (norm layers to mask, attention layers, a last conv block to prune)."""
    from backdoor import finetuning
    from backdoor.classifier import Classifier
    from backdoor.datasets import Dataset
    from backdoor.datasets.base import Split

    labels = torch.arange(48) % 4
    images = torch.randint(0, 256, (48, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    data = Dataset("tiny", ("0", "1", "2", "3"), Split(images, labels), Split(images[:16], labels[:16]))
    widths = {"widths": (8, 16, 16)} if arch == "airbench" else {}
    clf = Classifier.create(arch, images, 4, seed=0, **widths)
    monkeypatch.setattr(finetuning, "clean_finetune_indices", lambda exp, poisoned: torch.arange(32))
    monkeypatch.setattr(finetuning, "evaluate", lambda *args: {"clean_acc": 0.5, "asr": 0.5, "robust_acc": 0.5})
    exp = make_experiment(arch=arch, finetune={"epochs": 2, "batch_size": 16, "method": name})
    curve = finetuning.finetune_model(exp, clf, data, poisoned=None, progress=False)
    assert curve[-1]["steps"] == 4 and all(torch.isfinite(p).all() for p in clf.model.parameters())


# ------------------------------------------------------------------------------------------------------------ nad


def test_nad_distils_the_last_three_hidden_stages_of_each_family():
    small = create_model("small-cnn", num_classes=4, in_chans=1, image_size=16)
    airbench = create_model("airbench", num_classes=4, in_chans=3, image_size=32, widths=(8, 8, 8))
    assert attention_layers(small) == ["stages.0", "stages.1", "stages.2"]
    assert attention_layers(airbench) == ["groups.0", "groups.1", "groups.2"]


def test_nad_attention_maps_are_unit_rows_of_channel_energy():
    features = torch.randn(2, 5, 4, 4)
    maps = attention_map(features, 2.0)
    energy = features.pow(2).sum(dim=1).flatten(1)
    assert torch.allclose(maps, energy / energy.norm(dim=1, keepdim=True), atol=1e-5)


def test_nad_loss_adds_the_attention_term_which_vanishes_when_teacher_equals_student(source):
    data, model = source
    student = copy.deepcopy(model.model).eval()
    x, y = model.normalizer(data.train.images[:32]), data.train.labels[:32]
    layers, betas = attention_layers(student), [500.0, 1000.0, 1000.0]
    ce = F.cross_entropy(student(x), y)
    same = nad_loss(copy.deepcopy(student), layers, betas, 2.0, 0.0)(student, x, y)
    assert same.item() == pytest.approx(ce.item(), abs=1e-6)
    teacher = copy.deepcopy(student)
    with torch.no_grad():
        for p in teacher.parameters():
            p.add_(0.1 * torch.randn_like(p))
    other = nad_loss(teacher, layers, betas, 2.0, 0.0)(student, x, y)
    assert other.item() > ce.item() + 1e-4
    (other - ce).backward()  # the attention term alone pulls the student's weights
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in student.parameters())


# ------------------------------------------------------------------------------------------------------------ anp


def test_anp_masks_move_under_adversarial_neuron_perturbation(source):
    data, model = source
    runs = {}
    for eps in (0.0, 0.4):
        runs[eps], steps, _ = learn_masks(tuning_for(copy.deepcopy(model), data, epochs=3, lr=0.2), eps, 1, 0.2)
        assert steps == 18
    masks = torch.cat([m.flatten() for m in runs[0.4].values()])
    assert masks.min() < 0.9 and masks.max() <= 1.0 and masks.min() >= 0.0  # learned and clipped to [0, 1]
    assert any(not torch.allclose(runs[0.4][k], runs[0.0][k]) for k in runs[0.4])  # the noise changes them
    assert set(runs[0.4]) == set(norm_layers(model.model))


def test_anp_pruning_zeroes_the_scales_of_the_lowest_mask_units_and_keeps_their_biases(source):
    _, model = source
    net = copy.deepcopy(model.model)
    layers = norm_layers(net)
    before = {name: (m.weight.detach().clone(), m.bias.detach().clone()) for name, m in layers.items()}
    masks = {name: torch.rand(m.weight.shape, generator=torch.Generator().manual_seed(1)) for name, m in layers.items()}
    prune = Pruner(net, masks)
    pruned = prune(0.3)
    for name, m in layers.items():
        low = masks[name] <= 0.3
        assert torch.all(m.weight[low] == 0) and torch.equal(m.weight[~low], before[name][0][~low])
        assert torch.equal(m.bias, before[name][1])
    assert pruned == sum(int((m <= 0.3).sum()) for m in masks.values())
    assert prune(None) == 0 and all(torch.equal(m.weight, before[n][0]) for n, m in layers.items())
    assert thresholds(0.9, 0.05) == [round(0.05 * i, 10) for i in range(19)]


def fake_predictions(levels: dict, current: list, triggered, labels, targets):
    """``predict`` as ANP calls it, giving the clean accuracy and ASR that ``levels`` lists for the pruning
    threshold last set (20 images each, so rates are multiples of 0.05)."""

    def predict(clf, images):
        acc, asr = levels[current[0]]
        if images is triggered:
            hit = torch.arange(len(targets)) < round(asr * len(targets))
            return torch.where(hit, targets, labels)
        right = torch.arange(len(labels)) < round(acc * len(labels))
        return torch.where(right, labels, (labels + 1) % 4)

    return predict


def test_anp_reports_backdoorbenchs_rule_and_keeps_the_defenders(monkeypatch, source):
    data, model = source
    labels, targets = torch.arange(20) % 4 + 1, torch.zeros(20, dtype=torch.long)
    images = torch.zeros(20, 1, 16, 16, dtype=torch.uint8)
    test, triggered = images.clone(), images.clone() + 1
    empty = torch.empty(0, dtype=torch.long)
    poisoned = PoisonedSet(
        torch.arange(96), empty, images[:0], empty, torch.arange(20), triggered, labels, targets, empty
    )
    data = replace(data, test=replace(data.test, images=test, labels=labels))
    tuning = replace(tuning_for(model, data), images=test, labels=labels, poisoned=poisoned)
    # (clean accuracy, ASR) by threshold: the clean rule stops before 0.10, the first 10 % drop (0.15 passes again);
    # BackdoorBench's takes the lowest ASR within the drop, at 0.15
    levels = {None: (1.0, 0.9), 0.0: (1.0, 0.9), 0.05: (0.95, 0.5), 0.1: (0.85, 0.0), 0.15: (0.95, 0.2)}
    current = [None]
    monkeypatch.setattr(anp_module, "predict", fake_predictions(levels, current, triggered, labels, targets))

    def prune(level):
        current[0] = level
        return 0 if level is None else int(level * 100)

    scan = [0.0, 0.05, 0.1, 0.15]
    attacker = anp_module.attacker_rule(tuning, prune, scan, 0.1)
    assert attacker == pytest.approx({"threshold": 0.15, "pruned": 15, "clean_acc": 0.95, "asr": 0.2})
    prune(None)
    assert anp_module.defender_rule(tuning, prune, scan, 0.1) == pytest.approx((0.05, 0.95))


def test_anp_prunes_the_model_it_keeps_by_the_clean_set_rule(source):
    data, model = source
    clf = copy.deepcopy(model)
    record = build_method("anp", {"acc_ratio": 0.5})(tuning_for(clf, data, epochs=3, lr=0.2))
    zeros = sum(int((m.weight == 0).sum()) for m in norm_layers(clf.model).values())
    assert record["anp_pruned"] == zeros and record["anp_threshold"] is not None
    assert record["anp_attacker_rule_asr"] is None  # no triggered test set at hand: not reported
    assert "parametrizations" not in dict(clf.model.named_modules())  # the kept model is a plain one


# ---------------------------------------------------------------------------------------------------------- i-bau


def test_i_bau_perturbation_is_one_tensor_added_to_every_image_and_raises_the_loss(source):
    data, model = source
    net = copy.deepcopy(model.model).eval()
    x = model.normalizer(data.train.images)
    batches = [(x[i : i + 16], None) for i in range(0, 96, 16)]
    delta = universal_perturbation(net, iter(batches), (1, *x.shape[1:]), lr=10.0, penalty=0.001)
    assert delta.shape == (1, 1, 16, 16) and delta.abs().sum() > 0
    own = net(x).argmax(dim=1)
    assert F.cross_entropy(net(x + delta), own) > F.cross_entropy(net(x), own)


def test_i_bau_hypergradient_is_the_implicit_gradient_of_a_fixed_point():
    # inner: 1/2 ||d - theta||^2, fixed point d* = theta; outer: 1/2 ||d||^2. One step d - lr (d - theta) has Jacobian
    # (1 - lr) I in d and lr I in theta, so K iterations give grad = lr * sum_{k<K} (1 - lr)^k d = (1 - (1 - lr)^K) d
    theta = torch.nn.Parameter(torch.tensor([1.0, -2.0, 0.5]))
    delta = theta.detach().clone()
    for k in (1, 5, 50):
        theta.grad = None
        hypergradient(
            [theta],
            delta,
            inner=lambda d: 0.5 * (d - theta).pow(2).sum(),
            outer=lambda d: 0.5 * d.pow(2).sum(),
            iterations=k,
            inner_lr=0.1,
        )
        assert torch.allclose(theta.grad, (1 - 0.9**k) * delta, atol=1e-6), k


# --------------------------------------------------------------------------------------------------------- ft-sam


@pytest.mark.parametrize("adaptive", [False, True])
def test_ft_sam_steps_along_the_gradient_at_the_ascended_weights(source, adaptive):
    data, model = source
    rho, lr = 0.5, 0.1
    reference = copy.deepcopy(model.model).train()
    x, y = model.normalizer(data.train.images), data.train.labels
    params = list(reference.parameters())
    F.cross_entropy(reference(x), y).backward()
    plain = [p.grad.clone() for p in params]
    stats = {k: v.clone() for k, v in reference.state_dict().items() if "running" in k}  # after the first pass only
    with torch.no_grad():
        for p, e in zip(params, ascent(params, rho, adaptive)):
            p.add_(e)
    at_ascent = torch.autograd.grad(F.cross_entropy(reference(x), y), params)
    clf = copy.deepcopy(model)
    before = [p.detach().clone() for p in clf.model.parameters()]
    one_step = {"epochs": 1, "batch_size": 96, "lr": lr, "momentum": 0.0, "weight_decay": 0.0}
    record = build_method("ft-sam", {"rho": rho, "adaptive": adaptive})(tuning_for(clf, data, **one_step))
    assert record["steps"] == 1
    for p, w, g in zip(clf.model.parameters(), before, at_ascent):
        assert torch.allclose(p.detach(), w - lr * g, atol=1e-5)  # SGD on the ascended point's gradient, from w
    assert any(not torch.allclose(g, g_plain, atol=1e-4) for g, g_plain in zip(at_ascent, plain))
    state = clf.model.state_dict()
    assert all(torch.allclose(state[k], v, atol=1e-6) for k, v in stats.items())  # the second pass moves no stats
