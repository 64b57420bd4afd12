"""The airbench network and recipe (backdoor/models/airbench.py, backdoor/recipes/airbench.py): one test per defining
step of the reference (KellerJordan/cifar10-airbench)."""

from __future__ import annotations

import copy

import pytest
import torch
import yaml

from backdoor.checks import validate_params
from backdoor.classifier import Classifier
from backdoor.errors import ConfigError
from backdoor.models.airbench import WHITENING_CHUNK, WHITENING_EPS
from backdoor.recipes import build_recipe
from backdoor.recipes.airbench import translate
from backdoor.regularizers import build_regularizer
from backdoor.settings import TrainConfig
from tests.test_checks import ROOT

torch.set_num_threads(1)


def images(n: int = 96, seed: int = 0, size: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=g), torch.arange(n) % 10


def airbench(x: torch.Tensor, widths=(8, 16, 16)) -> Classifier:
    return Classifier.create("airbench", x, 10, seed=0, widths=widths)


def test_the_whitening_weights_are_the_eigenvectors_of_every_training_patch(monkeypatch):
    x, _ = images()
    clf = airbench(x)
    patches = clf.normalizer(x).float().unfold(2, 2, 1).unfold(3, 2, 1)
    patches = patches.transpose(1, 3).reshape(-1, 12).double()
    eigenvalues, eigenvectors = torch.linalg.eigh(patches.T @ patches / len(patches))
    filters = (eigenvectors.T / torch.sqrt(eigenvalues + WHITENING_EPS)[:, None]).flip(0).float()
    weight = clf.model.whiten.weight.detach().reshape(24, 12)
    assert torch.allclose(weight[:12].abs(), filters.abs(), atol=1e-4)  # each eigenvector, up to its sign
    assert torch.equal(weight[12:], -weight[:12])  # and its negative
    other = airbench(images(seed=1)[0])
    assert not torch.equal(other.model.whiten.weight, clf.model.whiten.weight)  # from the data, not from the seed
    # every image, in any order and any chunking: a class-sorted folder gives the whitening a shuffled one does
    monkeypatch.setattr("backdoor.models.airbench.WHITENING_CHUNK", 7)
    shuffled = airbench(x[torch.randperm(len(x), generator=torch.Generator().manual_seed(3))])
    assert WHITENING_CHUNK != 7 and torch.allclose(
        shuffled.model.whiten.weight.abs(), weight.abs().view(24, 3, 2, 2), atol=1e-4
    )


def test_whiten_eps_bounds_the_scale_of_directions_the_data_barely_spans():
    # grey images: every colour direction of a 2x2 patch has zero variance (a JPEG copy's 4:2:0 chroma comes
    # close), where 1 / sqrt(eigenvalue + eps) is 1 / sqrt(eps) and a float32 eigenvalue may come out negative
    x, _ = images(size=16)
    grey = x[:, :1].expand(-1, 3, -1, -1).contiguous()

    def filter_norms(eps: float) -> torch.Tensor:
        clf = Classifier.create("airbench", grey, 10, seed=0, widths=(8, 16, 16), whiten_eps=eps)
        return clf.model.whiten.weight.reshape(24, 12).norm(dim=1)

    reference, damped = filter_norms(WHITENING_EPS), filter_norms(1e-2)
    assert torch.isfinite(reference).all()
    assert torch.allclose(reference.max(), torch.tensor(WHITENING_EPS**-0.5), rtol=1e-3)
    assert torch.allclose(damped.max(), torch.tensor(1e-2**-0.5), rtol=1e-3)
    assert torch.allclose(reference[0], damped[0], rtol=1e-2)  # the leading direction barely moves


def fit(clf: Classifier, x: torch.Tensor, y: torch.Tensor, epochs: int, **settings) -> int:
    recipe = build_recipe("airbench", **settings)
    cfg = TrainConfig(recipe="airbench", epochs=epochs, batch_size=16)
    loss = build_regularizer("none", clf.model, recipe.label_smoothing(cfg))
    return recipe.fit(clf, x, y, cfg, seed=0, loss_fn=loss, progress=False)


def test_the_whitening_layer_stays_frozen_and_its_bias_trains_for_the_first_epochs_only():
    x, y = images()
    clf = airbench(x)
    weight = clf.model.whiten.weight.detach().clone()
    after_one = copy.deepcopy(clf)
    fit(after_one, x, y, epochs=1, whiten_bias_epochs=1, lookahead=False)
    assert torch.equal(after_one.model.whiten.weight, weight)
    assert not torch.equal(after_one.model.whiten.bias, clf.model.whiten.bias)  # trained in epoch 1
    frozen = copy.deepcopy(clf)
    fit(frozen, x, y, epochs=1, whiten_bias_epochs=0, lookahead=False)
    assert torch.equal(frozen.model.whiten.bias, clf.model.whiten.bias) and frozen.model.whiten.bias.requires_grad


def test_widths_change_the_network_and_epochs_the_schedule():
    x, y = images()
    small, wide = airbench(x, (8, 16, 16)), airbench(x, (8, 32, 32))
    assert sum(p.numel() for p in wide.model.parameters()) > sum(p.numel() for p in small.model.parameters())
    assert wide.model.head.in_features == 32 and [i["num_chs"] for i in wide.model.feature_info] == [8, 32, 32]
    assert fit(copy.deepcopy(small), x, y, epochs=2) == 2 * (96 // 16)  # the last partial batch dropped
    recipe = build_recipe("airbench")
    for total in (60, 600):  # the same shape at every length: the peak at 23 % of the steps
        factor = recipe.schedule(total)
        peak = int(total * 0.23)
        assert factor(0) == pytest.approx(0.2) and factor(peak) == pytest.approx(1.0)
        assert factor(total) == pytest.approx(0.07) and factor(peak // 2) < 1 and factor(peak + 1) < 1
    assert recipe.peak_lr(TrainConfig(batch_size=1024)) == pytest.approx(1.5)  # 11.5 / (1 + 1 / 0.15)


def test_the_last_step_leaves_the_lookahead_average():
    x, y = images()
    clf = airbench(x)
    with_average, without = copy.deepcopy(clf), copy.deepcopy(clf)
    fit(with_average, x, y, epochs=1)
    fit(without, x, y, epochs=1, lookahead=False)
    assert not torch.equal(with_average.model.head.weight, without.model.head.weight)


def test_translation_moves_each_image_within_its_padding():
    x, _ = images(n=8, size=8)
    padded = torch.nn.functional.pad(x, (2,) * 4, mode="reflect")
    moved = translate(padded, 2, torch.Generator().manual_seed(0))
    assert moved.shape == x.shape
    for image, shifted in zip(padded, moved):
        assert any(torch.equal(image[:, dy : dy + 8, dx : dx + 8], shifted) for dy in range(5) for dx in range(5))


@pytest.mark.parametrize(
    "change, message",
    [
        ({"models": {"airbench": {"widths": [64, 128]}}}, "models.airbench.widths: 3 integers of at least 1"),
        ({"models": {"airbench": {"depth": 4}}}, "models.airbench.depth: unknown setting"),
        ({"models": {"airbench": {"whiten_eps": 0}}}, "models.airbench.whiten_eps: must be a number in (0"),
        ({"recipes": {"airbench": {"momentum": 1.5}}}, "recipes.airbench.momentum: must be a number in [0, 1)"),
        ({"recipes": {"airbench": {"lookahead": "yes"}}}, "recipes.airbench.lookahead: must be true or false"),
        ({"train": {"recipe": "airbnb"}}, "train.recipe: unknown value 'airbnb'; valid choices: airbench, sgd"),
    ],
)
def test_a_bad_airbench_setting_is_refused_by_the_check_in_one_line(change, message):
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["arch"] = "airbench"
    for key, value in change.items():
        params[key] = {**(params.get(key) or {}), **value}
    with pytest.raises(ConfigError) as error:
        validate_params(params)
    assert str(error.value).startswith(message) and "\n" not in str(error.value)
