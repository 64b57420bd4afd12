"""Defensive regularizers: hand-computed values on tiny batches, gradients, a training step on
small-cnn and a timm ResNet, and validation errors. CPU only (conftest sets one thread), a few images per batch."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from backdoor.errors import ConfigError
from backdoor.hooks import capture_outputs, replace_output, unwrap
from backdoor.models import create_model, hidden_layers
from backdoor.regularizers import REGULARIZERS, build_regularizer, check_regularizer, regularizer_defaults
from backdoor.regularizers.contrastive import contrastive_loss
from backdoor.regularizers.manifold_mixup import mixup_loss, reference_mixup_layers
from backdoor.regularizers.snnl import SNNL_EPS, soft_nearest_neighbor_loss

DEFENSES = ["contrastive", "logit-squeeze", "manifold-mixup", "snnl"]


class Tiny(nn.Module):
    """x (n, 2) -> hidden (identity Linear) -> fc (fixed weights) -> 3 logits; timm's interface."""

    FC_W = [[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0]]
    FC_B = [0.0, 0.5, 0.0]

    def __init__(self):
        super().__init__()
        self.hidden = nn.Linear(2, 2)
        self.fc = nn.Linear(2, 3)
        with torch.no_grad():
            self.hidden.weight.copy_(torch.eye(2))
            self.hidden.bias.zero_()
            self.fc.weight.copy_(torch.tensor(self.FC_W))
            self.fc.bias.copy_(torch.tensor(self.FC_B))
        self.feature_info = [{"module": "hidden", "num_chs": 2, "reduction": 1}]

    def forward_features(self, x):
        return self.hidden(x)

    def forward_head(self, x, pre_logits=False):
        return x if pre_logits else self.fc(x)

    def forward(self, x):
        return self.forward_head(self.forward_features(x))


X = [[2.0, 0.0], [0.6, 0.8], [0.0, -1.0], [-1.0, 0.5]]
Y = [0, 0, 1, 2]


def batch():
    return torch.tensor(X), torch.tensor(Y)


# -- plain-python references ------------------------------------------------------------------


def fc_by_hand(v):
    return [sum(w * a for w, a in zip(row, v)) + b for row, b in zip(Tiny.FC_W, Tiny.FC_B)]


def ce_by_hand(logits, label):
    return math.log(sum(math.exp(v) for v in logits)) - logits[label]


def mean_ce_by_hand(points, labels):
    return sum(ce_by_hand(fc_by_hand(p), c) for p, c in zip(points, labels)) / len(points)


def sqdist(a, b):
    return sum((u - v) ** 2 for u, v in zip(a, b))


def snnl_cleverhans(points, labels, temperature):
    """cleverhans SNNLCrossEntropy.SNNL written out literally (no rescaling)."""
    n, total = len(points), 0.0
    for i in range(n):
        f = [0.0 if j == i else math.exp(-sqdist(points[i], points[j]) / temperature) for j in range(n)]
        row = sum(f)
        same = sum(f[j] / (SNNL_EPS + row) for j in range(n) if labels[j] == labels[i])
        total += -math.log(SNNL_EPS + same)
    return total / n


def cleverhans_snnl(x, y, temp):
    """SNNLCrossEntropy.SNNL (cleverhans v3.1.0 loss.py) transcribed op for op in float64 torch."""
    batch = x.shape[0]
    sqr_norm_a = (x**2).sum(1).reshape(1, batch)
    sqr_norm_b = (x**2).sum(1).reshape(batch, 1)
    distance = sqr_norm_a.tile(batch, 1) + sqr_norm_b.tile(1, batch) - 2 * (x @ x.T)  # pairwise_euclid_distance
    f = torch.exp(-(distance / temp)) - torch.eye(batch, dtype=x.dtype)  # fits(x, x) - eye
    pick = f / (SNNL_EPS + f.sum(1).unsqueeze(1))  # pick_probability
    mask = (y == y.unsqueeze(1)).to(x.dtype)  # same_label_mask
    return (-torch.log(SNNL_EPS + (pick * mask).sum(1))).mean()


def cleverhans_optimized_snnl(x, y, initial_temp, t):
    """optimized_temp_SNNL: t <- t - 0.1 * dSNNL(initial_temp / t)/dt, then SNNL at initial_temp / t (no gradient
    through the assignment). Returns the loss and the new t."""
    t = torch.tensor(t, dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(cleverhans_snnl(x.detach(), y, initial_temp / t), t)
    updated = float(t.detach() - 0.1 * grad)
    return cleverhans_snnl(x, y, initial_temp / updated), updated


def grads_finite(model):
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    return bool(grads) and all(torch.isfinite(g).all() for g in grads)


# -- values by hand -----------------------------------------------------------------------------


def test_logit_squeeze_by_hand():
    x, y = batch()
    model = Tiny()
    loss = build_regularizer("logit-squeeze", model, weight=0.5)(model, x, y)
    norms = [math.sqrt(sum(v * v for v in fc_by_hand(p))) for p in X]
    expected = mean_ce_by_hand(X, Y) + 0.5 * sum(norms) / len(norms)
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_contrastive_by_hand():
    x, y = batch()
    model = Tiny()
    margin, weight = 1.5, 2.0
    loss = build_regularizer("contrastive", model, weight=weight, margin=margin)(model, x, y)
    unit = [[v / math.sqrt(sum(u * u for u in p)) for v in p] for p in X]
    pairs = []
    for i in range(len(X)):
        for j in range(i + 1, len(X)):
            d = math.sqrt(sqdist(unit[i], unit[j]))
            pairs.append(0.5 * (d * d if Y[i] == Y[j] else max(0.0, margin - d) ** 2))
    expected = mean_ce_by_hand(X, Y) + weight * sum(pairs) / len(pairs)
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_contrastive_margin_only_pushes_close_pairs():
    e = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    # different labels sqrt(2) apart: no loss at margin 1; same labels at distance 0: no loss either
    assert contrastive_loss(e, torch.tensor([0, 1, 0]), margin=1.0).item() == pytest.approx(0.0, abs=1e-6)
    assert contrastive_loss(e, torch.tensor([0, 1, 0]), margin=2.0).item() > 0


def test_snnl_by_hand():
    x, y = batch()
    model = Tiny()
    loss = build_regularizer("snnl", model, temperature=2.0, factor=-3.0, optimize_temperature=False)(model, x, y)
    expected = mean_ce_by_hand(X, Y) - 3.0 * snnl_cleverhans(X, Y, 2.0)
    assert loss.item() == pytest.approx(expected, rel=1e-5)


def test_snnl_with_optimized_temperature_matches_cleverhans_value_and_gradient():
    """cleverhans' default: a persistent t per layer, one gradient step on it per evaluation; two steps in a
    row, comparing the loss and its gradient with respect to the hidden activations (here, the inputs)."""
    torch.manual_seed(0)
    x64 = torch.randn(6, 2, dtype=torch.float64)
    y = torch.tensor([0, 1, 0, 1, 2, 2])
    model = Tiny()
    loss_fn = build_regularizer("snnl", model, temperature=3.0, factor=-2.0)
    t = 1.0
    for step in range(2):
        x = x64.float().requires_grad_()
        loss = loss_fn(model, x, y)
        loss.backward()
        ref_x = x64.clone().requires_grad_()
        term, t = cleverhans_optimized_snnl(ref_x, y, 3.0, t)
        reference = (
            F.cross_entropy(
                ref_x @ torch.tensor(Tiny.FC_W, dtype=torch.float64).T + torch.tensor(Tiny.FC_B, dtype=torch.float64), y
            )
            - 2.0 * term
        )
        reference.backward()
        assert loss.item() == pytest.approx(reference.item(), rel=1e-5), step
        assert torch.allclose(x.grad.double(), ref_x.grad, rtol=1e-4, atol=1e-6), step
        assert loss_fn.t["hidden"] == pytest.approx(t, rel=1e-5), step
    assert t != 1.0  # the temperature moved


def test_snnl_matches_cleverhans_on_random_activations():
    torch.manual_seed(0)
    h = 0.5 * torch.randn(6, 2, 3)
    y = torch.tensor([0, 1, 0, 1, 2, 2])
    points = h.flatten(1).tolist()
    for temperature in (0.5, 2.0, 100.0):
        got = soft_nearest_neighbor_loss(h, y, temperature).item()
        assert got == pytest.approx(snnl_cleverhans(points, y.tolist(), temperature), rel=1e-4)


def test_snnl_lower_for_separated_classes():
    torch.manual_seed(0)
    centres = torch.tensor([[3.0, 0.0], [-3.0, 0.0]])
    points = centres.repeat_interleave(4, 0) + 0.3 * torch.randn(8, 2)
    by_cluster = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])
    mixed = torch.tensor([0, 1, 0, 1, 0, 1, 0, 1])
    assert soft_nearest_neighbor_loss(points, by_cluster, 1.0) < soft_nearest_neighbor_loss(points, mixed, 1.0)


def test_snnl_stabilized_keeps_range_and_gradient_for_far_apart_activations():
    # squared distances of ~1e5 (raw conv activations): exp(-d/T) underflows in cleverhans' form, which then
    # sits at -log(eps) whatever the labels; the stabilized variant (not the default) does not
    torch.manual_seed(0)
    centres = torch.zeros(2, 50)
    centres[0, 0], centres[1, 0] = 150.0, -150.0
    points = (centres.repeat_interleave(3, 0) + 20 * torch.randn(6, 50)).requires_grad_()
    separated = torch.tensor([0, 0, 0, 1, 1, 1])
    mixed = torch.tensor([0, 1, 0, 1, 0, 1])
    assert snnl_cleverhans(points.tolist(), mixed.tolist(), 100.0) == pytest.approx(-math.log(SNNL_EPS), rel=1e-3)
    stuck = [soft_nearest_neighbor_loss(points, labels, 100.0).item() for labels in (separated, mixed)]
    assert stuck[0] == stuck[1]  # the reference form sees no labels here: only float32 noise on the diagonal
    low = soft_nearest_neighbor_loss(points, separated, 100.0, stabilized=True)
    high = soft_nearest_neighbor_loss(points, mixed, 100.0, stabilized=True)
    assert low.item() < 1e-3 < high.item() < -math.log(SNNL_EPS) - 1
    high.backward()
    assert torch.isfinite(points.grad).all() and points.grad.abs().max() > 0


def bce_by_hand(points, targets):
    """Mean over samples and classes of the binary cross-entropy of softmax(logits) against soft targets."""
    total = 0.0
    for p, t in zip(points, targets):
        logits = fc_by_hand(p)
        z = sum(math.exp(v) for v in logits)
        probs = [math.exp(v) / z for v in logits]
        total += sum(-(ti * math.log(pi) + (1 - ti) * math.log(1 - pi)) for pi, ti in zip(probs, t))
    return total / (len(points) * 3)


def test_mixup_by_hand():
    x, y = batch()
    lam, perm = 0.3, [1, 0, 3, 2]
    mixed = [[lam * a + (1 - lam) * b for a, b in zip(X[i], X[perm[i]])] for i in range(len(X))]
    onehot = [[1.0 if k == c else 0.0 for k in range(3)] for c in Y]
    targets = [[lam * a + (1 - lam) * b for a, b in zip(onehot[i], onehot[perm[i]])] for i in range(len(X))]
    ce = lam * mean_ce_by_hand(mixed, Y) + (1 - lam) * mean_ce_by_hand(mixed, [Y[p] for p in perm])
    bce = bce_by_hand(mixed, targets)  # the reference's bce_loss(softmax(output), reweighted_target)
    for kind, expected in (("ce", ce), ("bce", bce)):
        assert mixup_loss(Tiny(), x, y, "hidden", lam, torch.tensor(perm), kind=kind).item() == pytest.approx(
            expected, rel=1e-6
        ), kind
        # the identity hidden layer makes input mixup the same computation
        assert mixup_loss(Tiny(), x, y, "input", lam, torch.tensor(perm), kind=kind).item() == pytest.approx(
            expected, rel=1e-6
        ), kind
    assert mixup_loss(Tiny(), x, y, "hidden", lam, torch.tensor(perm)).item() == pytest.approx(bce, rel=1e-6)


def test_mixup_hook_is_removed_after_the_step():
    x, y = batch()
    model = Tiny()
    mixup_loss(model, x, y, "hidden", 0.3, torch.tensor([1, 0, 3, 2]))
    assert not model.hidden._forward_hooks
    assert torch.equal(model(x), Tiny()(x))


# -- manifold mixup with lambda = 1 is cross-entropy ------------------------------------------------


@pytest.mark.parametrize(
    "arch, shape, labels",
    [
        ("small-cnn", (8, 1, 28, 28), [0, 1, 2, 3, 4, 5, 6, 7]),
        ("resnet18", (4, 3, 32, 32), [0, 0, 1, 2]),
    ],
)
def test_mixup_with_lambda_one_is_cross_entropy(arch, shape, labels):
    torch.manual_seed(0)
    model = create_model(arch, num_classes=10, in_chans=shape[1], image_size=shape[-1])
    x, y = torch.randn(shape), torch.tensor(labels)
    perm = torch.randperm(len(y))
    with torch.no_grad():
        logits = model(x)
        plain = {
            "ce": F.cross_entropy(logits, y).item(),
            "bce": F.binary_cross_entropy(logits.softmax(1), F.one_hot(y, 10).float()).item(),
        }
        for kind in ("ce", "bce"):
            for layer in ["input"] + hidden_layers(model):
                assert mixup_loss(model, x, y, layer, 1.0, perm, kind=kind).item() == pytest.approx(
                    plain[kind], rel=1e-6
                ), layer
            alpha_zero = build_regularizer("manifold-mixup", model, alpha=0, loss=kind)  # lam = 1 when alpha = 0
            for _ in range(3):
                assert alpha_zero(model, x, y).item() == pytest.approx(plain[kind], rel=1e-6)


@pytest.mark.parametrize(
    "arch, expected", [("small-cnn", ["input", "stages.0", "stages.1"]), ("resnet18", ["input", "layer1", "layer2"])]
)
def test_mixup_default_layers_are_the_references(arch, expected):
    """Verma et al.'s code mixes at random.randint(0, 2): the input, after layer1 or after layer2 (not the stem,
    not the last stages)."""
    model = create_model(arch, num_classes=10, in_chans=3, image_size=32)
    assert reference_mixup_layers(model) == expected
    loss = build_regularizer("manifold-mixup", model, generator=torch.Generator().manual_seed(0))
    assert {loss.sample(4, loss.layers.for_model(model))[0] for _ in range(60)} == set(expected)


def test_mixup_draws_are_seeded_and_cover_the_layers():
    model = create_model("small-cnn", num_classes=10, in_chans=1, image_size=28)
    layers = ["input"] + hidden_layers(model)

    def draws(loss):
        return [loss.sample(8, layers) for _ in range(40)]

    first = draws(build_regularizer("manifold-mixup", model, generator=torch.Generator().manual_seed(1)))
    again = draws(build_regularizer("manifold-mixup", model, generator=torch.Generator().manual_seed(1)))
    assert [(k, lam, p.tolist()) for k, lam, p in first] == [(k, lam, p.tolist()) for k, lam, p in again]
    assert {k for k, _, _ in first} == set(layers)
    assert all(0 < lam < 1 for _, lam, _ in first)
    assert all(sorted(p.tolist()) == list(range(8)) for _, _, p in first)
    # without a generator: torch's global RNG, which fit seeds
    torch.manual_seed(3)
    a = draws(build_regularizer("manifold-mixup", model))
    torch.manual_seed(3)
    b = draws(build_regularizer("manifold-mixup", model))
    assert [(k, lam) for k, lam, _ in a] == [(k, lam) for k, lam, _ in b]


# -- a training step on real models -----------------------------------------------------------------


@pytest.mark.parametrize("name", DEFENSES)
@pytest.mark.parametrize(
    "arch, shape, labels",
    [
        ("small-cnn", (8, 1, 28, 28), [0, 0, 1, 1, 2, 2, 3, 3]),
        ("resnet18", (4, 3, 32, 32), [0, 0, 1, 2]),
    ],
)
def test_training_step(name, arch, shape, labels):
    torch.manual_seed(0)
    model = create_model(arch, num_classes=10, in_chans=shape[1], image_size=shape[-1])
    model.train()
    x, y = torch.randn(shape), torch.tensor(labels)
    loss_fn = build_regularizer(name, model)
    before = [p.detach().clone() for p in model.parameters()]
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    loss = loss_fn(model, x, y)
    assert loss.ndim == 0 and torch.isfinite(loss)
    optimizer.zero_grad()
    loss.backward()
    assert grads_finite(model)
    optimizer.step()
    assert any(not torch.equal(b, p) for b, p in zip(before, model.parameters()))
    assert all(not m._forward_hooks for m in model.modules())
    assert torch.isfinite(loss_fn(model, x, y))


@pytest.mark.parametrize("name", DEFENSES)
def test_gradients_finite_on_tiny_model(name):
    x, y = batch()
    model = Tiny()
    build_regularizer(name, model)(model, x, y).backward()
    assert grads_finite(model)


def test_contrastive_gradient_finite_for_identical_embeddings():
    e = torch.ones(4, 3, requires_grad=True)
    contrastive_loss(e, torch.tensor([0, 1, 0, 1]), margin=1.0).backward()
    assert torch.isfinite(e.grad).all()


@pytest.mark.parametrize("name", ["manifold-mixup", "snnl"])
def test_fit_runs_and_is_seeded(name):
    from backdoor.classifier import Classifier
    from backdoor.loop import fit
    from backdoor.settings import LoopConfig

    gen = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (8, 1, 28, 28), dtype=torch.uint8, generator=gen)
    labels = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    cfg = LoopConfig(epochs=1, batch_size=8, warmup_epochs=0)

    def train():
        torch.manual_seed(0)
        clf = Classifier.create("small-cnn", images, 10)
        losses = []
        fit(
            clf,
            images,
            labels,
            cfg,
            seed=0,
            loss_fn=build_regularizer(name, clf.model),
            on_epoch_end=lambda epoch, loss: losses.append(loss),
            device=torch.device("cpu"),
            progress=False,
        )
        return losses, clf.model.state_dict()

    (loss_a, state_a), (loss_b, state_b) = train(), train()
    assert math.isfinite(loss_a[0]) and loss_a == loss_b
    assert all(torch.equal(state_a[k], state_b[k]) for k in state_a)


def test_hook_based_losses_use_the_eager_model_behind_a_compiled_wrapper():
    torch.manual_seed(0)
    model = create_model("small-cnn", num_classes=10, in_chans=1, image_size=28)
    compiled = torch.compile(model)  # lazy: compiles only if called, which these losses must not do
    assert unwrap(compiled) is model
    x, y = torch.randn(8, 1, 28, 28), torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    with torch.no_grad():
        for name in ("snnl", "contrastive"):  # a fresh loss each: SNNL's temperature is state
            assert build_regularizer(name, model)(compiled, x, y).item() == pytest.approx(
                build_regularizer(name, model)(model, x, y).item(), rel=1e-6
            )
        mixup = build_regularizer("manifold-mixup", model, alpha=0, loss="ce")
        assert mixup(compiled, x, y).item() == pytest.approx(F.cross_entropy(model(x), y).item(), rel=1e-6)


# -- hooks ------------------------------------------------------------------------------------------


def test_capture_and_replace_outputs():
    x, _ = batch()
    model = Tiny()
    with capture_outputs(model, ["hidden"]) as out:
        logits = model(x)
    assert torch.equal(out["hidden"], x) and torch.equal(logits, model.fc(x))
    with replace_output(model, "hidden", lambda h: 2 * h):
        assert torch.allclose(model(x), model.fc(2 * x))
    assert not model.hidden._forward_hooks and torch.equal(model(x), logits)


def test_capture_rejects_a_module_run_twice_and_outputs_changed_in_place():
    shared = nn.ReLU()
    twice = nn.Sequential(shared, shared)
    with pytest.raises(RuntimeError, match="more than once"):
        with capture_outputs(twice, ["0"]):
            twice(torch.randn(2, 3))
    inplace = nn.Sequential(nn.Linear(3, 3), nn.ReLU(inplace=True))
    with pytest.raises(RuntimeError, match="in place"):
        with capture_outputs(inplace, ["0"]):
            inplace(torch.randn(2, 3))
    assert not inplace[0]._forward_hooks


# -- validation -------------------------------------------------------------------------------------


def test_registry_and_defaults():
    assert set(DEFENSES) | {"none"} == set(REGULARIZERS)
    assert regularizer_defaults("snnl") == {
        "temperature": 100.0,
        "factor": -10.0,
        "layers": None,
        "optimize_temperature": True,
        "cos_distance": False,
        "stabilized": False,
    }
    assert regularizer_defaults("manifold-mixup") == {"alpha": 2.0, "layers": None, "loss": "bce"}
    assert regularizer_defaults("none") == {}
    for name in REGULARIZERS:
        check_regularizer(name, {})  # model=None: everything but layer names
    check_regularizer("snnl", {"layers": ["not.a.layer"]})
    check_regularizer("manifold-mixup", {"layers": ["input", "whatever"], "alpha": 0.4})


def test_unknown_regularizer_lists_valid_ones():
    with pytest.raises(
        ConfigError,
        match="regularizer: unknown value 'nope'; valid choices: "
        "contrastive, logit-squeeze, manifold-mixup, none, snnl",
    ):
        build_regularizer("nope")


@pytest.mark.parametrize(
    "name, settings, message",
    [
        ("contrastive", {"weight": -1}, r"regularizers\.contrastive\.weight: must be a number in \[0, inf\), got -1"),
        ("contrastive", {"margin": 0}, r"regularizers\.contrastive\.margin: must be a number in \(0, inf\), got 0"),
        ("logit-squeeze", {"weight": -0.1}, r"regularizers\.logit-squeeze\.weight: must be a number in \[0, inf\)"),
        ("logit-squeeze", {"weight": "0.5"}, r"regularizers\.logit-squeeze\.weight: must be a number in .*got '0.5'"),
        ("logit-squeeze", {"weight": True}, r"regularizers\.logit-squeeze\.weight: must be a number in .*got True"),
        ("manifold-mixup", {"alpha": -2}, r"regularizers\.manifold-mixup\.alpha: must be a number in \[0, inf\)"),
        ("manifold-mixup", {"layers": "input"}, r"regularizers\.manifold-mixup\.layers: must be a non-empty list"),
        ("manifold-mixup", {"layers": []}, r"regularizers\.manifold-mixup\.layers: must be a non-empty list"),
        ("manifold-mixup", {"layers": ["input", "input"]}, r"regularizers\.manifold-mixup\.layers: a layer is listed"),
        (
            "manifold-mixup",
            {"loss": "mse"},
            r"regularizers\.manifold-mixup\.loss: unknown value 'mse'; valid choices: "
            r"bce, ce",
        ),
        ("snnl", {"temperature": -1}, r"regularizers\.snnl\.temperature: must be a number in \(0, inf\)"),
        ("snnl", {"temperature": 0}, r"regularizers\.snnl\.temperature: must be a number in \(0, inf\)"),
        ("snnl", {"factor": float("nan")}, r"regularizers\.snnl\.factor: must be a number in \(-inf, inf\), got nan"),
        ("snnl", {"layers": ["input"]}, r"regularizers\.snnl\.layers: 'input' is not a hidden layer"),
        ("snnl", {"optimize_temperature": "yes"}, r"regularizers\.snnl\.optimize_temperature: must be true or false"),
        (
            "snnl",
            {"temprature": 1},
            r"regularizers\.snnl\.temprature: unknown setting; valid keys: cos_distance, "
            r"factor, layers, optimize_temperature, stabilized, temperature$",
        ),
        ("contrastive", {"alpha": 1}, r"regularizers\.contrastive\.alpha: unknown setting; valid keys: margin, weight"),
        ("none", {"weight": 1}, r"regularizers\.none\.weight: unknown setting; it takes none"),
    ],
)
def test_bad_settings(name, settings, message):
    with pytest.raises(ConfigError, match=message):
        check_regularizer(name, settings)


def test_snnl_accepts_any_sign_of_factor():
    check_regularizer("snnl", {"factor": 10})
    check_regularizer("snnl", {"factor": -10, "temperature": 1})


@pytest.mark.parametrize("name", ["manifold-mixup", "snnl"])
def test_unknown_layer_with_a_model_lists_valid_layers(name):
    model = create_model("small-cnn", num_classes=10, in_chans=1, image_size=28)
    valid = ("input, " if name == "manifold-mixup" else "") + "stages.0, stages.1, stages.2"
    with pytest.raises(
        ConfigError,
        match=rf"regularizers\.{name}\.layers: unknown layer 'layer9' for SmallCNN; "
        rf"valid layers: {valid}$",
    ):
        build_regularizer(name, model, layers=["stages.0", "layer9"])
    build_regularizer(name, model, layers=["stages.1"])


def test_unknown_layer_found_on_first_call_when_built_without_a_model():
    loss = build_regularizer("snnl", None, layers=["layer9"])
    model = Tiny()
    with pytest.raises(ConfigError, match=r"unknown layer 'layer9' for Tiny; valid layers: hidden"):
        loss(model, *batch())
