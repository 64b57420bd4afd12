"""Detectors: each on a case with a known answer (planted poison clusters, a toy model with analytic
entropies, a tiny backdoored MLP), the metrics on hand counts, and settings validation. CPU, one thread."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from backdoor.detectors import (
    DETECTORS,
    auroc,
    build_detector,
    check_detector,
    detection_counts,
    detector_defaults,
    detector_variants,
)
from backdoor.detectors.neural_cleanse import CostSchedule, anomaly_index, flag_classes
from backdoor.detectors.spectral import spectral_scores, top_singular_vector
from backdoor.detectors.strip import rejection_threshold, softmax_entropy
from backdoor.errors import ConfigError


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ---------------------------------------------------------------- registry and settings


def fails_in_one_line(name: str, settings: dict, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        build_detector(name, **settings)
    assert str(err.value).startswith(message)
    assert "\n" not in str(err.value)


def test_every_detector_builds_with_its_defaults():
    for name in DETECTORS:
        check_detector(name, {})
        check_detector(name, detector_defaults(name))


def test_unknown_detector_lists_the_registered_ones():
    fails_in_one_line("nope", {}, f"detector: unknown value 'nope'; valid choices: {', '.join(sorted(DETECTORS))}")


@pytest.fixture
def dummy():
    """A detector registered as a module would register it, gone after the test."""

    @DETECTORS.register("dummy")
    def factory(*, zeta: int = 1, alpha: float = 0.5):
        return lambda: (zeta, alpha)

    yield "dummy"
    DETECTORS.remove("dummy")


def test_valid_keys_come_from_the_factory_signature(dummy):
    assert detector_defaults(dummy) == {"zeta": 1, "alpha": 0.5}
    assert build_detector(dummy, zeta=3)() == (3, 0.5)
    with pytest.raises(ConfigError, match=r"^detectors\.dummy\.beta: unknown setting; valid keys: alpha, zeta$"):
        build_detector(dummy, beta=1)
    built = build_detector(dummy)  # a training-data detector by default, reported as configured, on pooled features
    assert DETECTORS.get(dummy).kind == "training-data"
    assert detector_variants(dummy, built) == {"configured": (built, "pooled")}


def test_a_kind_outside_the_three_fails_at_registration():
    with pytest.raises(ValueError, match="detector 'typo': fact kind must be one of .*training-data"):
        DETECTORS.add("typo", lambda: None, kind="input")
    assert "typo" not in DETECTORS


# ---------------------------------------------------------------- metrics


def test_detection_counts_by_hand():
    flagged = torch.tensor([True, True, False, False, True])
    truth = torch.tensor([True, False, True, False, False])
    assert detection_counts(flagged, truth) == (1, 2, 1, 1, 0.5, 2 / 3, 1 / 3, 0.4)
    counts = detection_counts(torch.zeros(3, dtype=torch.bool), torch.zeros(3, dtype=torch.bool))
    assert counts[:4] == (0, 0, 3, 0) and counts.fpr == 0.0
    assert math.isnan(counts.tpr) and math.isnan(counts.precision) and math.isnan(counts.f1)
    with pytest.raises(ValueError, match="flagged must be a 1-D bool tensor of length 5"):
        detection_counts(torch.ones(4, dtype=torch.bool), truth)


def test_auroc_by_hand():
    truth = torch.tensor([True, False, True, False])
    assert auroc(torch.tensor([0.9, 0.3, 0.5, 0.1]), truth) == 1.0
    assert auroc(torch.tensor([0.9, 0.3, 0.2, 0.4]), truth) == 0.5  # 2 of 4 pairs in order
    assert auroc(torch.tensor([0.5, 0.5]), torch.tensor([True, False])) == 0.5  # a tie counts one half
    assert math.isnan(auroc(torch.tensor([0.1, 0.2]), torch.tensor([False, False])))


# ---------------------------------------------------------------- feature detectors


def test_feature_detector_defaults_are_the_references():
    assert detector_defaults("spectral") == {"eps_multiplier": 1.5, "expected_rate": 0.1, "score": "paper"}
    assert detector_defaults("activation-clustering") == {
        "nb_dims": 10,
        "reduce": "FastICA",
        "cluster_analysis": "smaller",
        "size_threshold": 0.35,
    }


@pytest.mark.parametrize(
    "name, settings, message",
    [
        ("spectral", {"eps_multiplier": -1}, "detectors.spectral.eps_multiplier: must be a number in [0, inf), got -1"),
        (
            "spectral",
            {"eps_multiplier": math.nan},
            "detectors.spectral.eps_multiplier: must be a number in [0, inf), got nan",
        ),
        (
            "spectral",
            {"eps": 1.5},
            "detectors.spectral.eps: unknown setting; valid keys: eps_multiplier, expected_rate",
        ),
        ("activation-clustering", {"nb_dims": True}, "detectors.activation-clustering.nb_dims: must be an integer"),
        (
            "activation-clustering",
            {"reduce": "TSNE"},
            "detectors.activation-clustering.reduce: unknown value 'TSNE'; valid choices: FastICA, PCA",
        ),
        (
            "activation-clustering",
            {"cluster_analysis": "distance"},
            "detectors.activation-clustering.cluster_analysis: unknown value 'distance'; valid choices: smaller, "
            "relative-size",
        ),
        (
            "activation-clustering",
            {"size_threshold": 0.6},
            "detectors.activation-clustering.size_threshold: must be a number in (0, 0.5], got 0.6",
        ),
    ],
)
def test_feature_detector_bad_settings(name, settings, message):
    fails_in_one_line(name, settings, message)


def planted(
    shift: float,
    n_per_class: int = 200,
    classes: int = 3,
    dim: int = 32,
    poisoned: int = 30,
    target: int = 2,
    seed: int = 0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Gaussian features per class (unit variance around a random mean); the first ``poisoned`` images
    of class ``target`` moved by ``shift`` along one random direction. Returns features, labels, truth."""
    g = gen(seed)
    labels = torch.arange(classes).repeat_interleave(n_per_class)
    means = 3 * torch.randn(classes, dim, generator=g)
    features = means[labels] + torch.randn(len(labels), dim, generator=g)
    truth = torch.zeros(len(labels), dtype=torch.bool)
    truth[target * n_per_class : target * n_per_class + poisoned] = True
    direction = F.normalize(torch.randn(dim, generator=g), dim=0)
    features[truth] += shift * direction
    return features, labels, truth


def test_spectral_scores_are_centred_and_squared():
    points = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, 0.5], [0.0, -0.5]])
    # An offset changes ART's uncentred |R . v| (11, 9, 10, 10) but not the paper's score.
    assert torch.allclose(spectral_scores(points + 10), torch.tensor([1.0, 1.0, 0.0, 0.0], dtype=torch.float64))


@pytest.mark.parametrize("shape", [(300, 40), (40, 300), (2, 5), (500, 1)])
def test_the_top_singular_vector_is_the_full_svds_on_tall_wide_and_centred_matrices(shape):
    """ARPACK's vector equals the full SVD's up to sign, centred or not (a centred matrix's columns sum to 0: a
    fixed all-ones start would stall there); a side of 1 falls back to the full SVD."""
    matrix = torch.randn(*shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64) + 3.0
    for m in (matrix, matrix - matrix.mean(dim=0, keepdim=True)):
        expected = torch.linalg.svd(m, full_matrices=False)[2][0]
        got = top_singular_vector(m)
        assert min((got - expected).abs().max(), (got + expected).abs().max()) < 1e-10
    assert abs(float(top_singular_vector(torch.zeros(4, 3, dtype=torch.float64)).norm()) - 1) < 1e-12  # rank 0


def test_spectral_flags_exactly_the_planted_cluster():
    features, labels, truth = planted(shift=10.0)
    result = build_detector("spectral", eps_multiplier=1.0)(features, labels, torch.tensor([0, 0, 30]))
    assert torch.equal(result.flagged, truth)
    assert result.budgets == {0: 0, 1: 0, 2: 30}
    target = labels == 2
    assert auroc(result.scores[target], truth[target]) == 1.0
    assert auroc(result.scores, truth) > 0.99  # a few clean outliers of other classes outrank weak poison
    # The default 1.5 x 30 flags all 30 and the next 15 of class 2, nothing elsewhere.
    wider = build_detector("spectral")(features, labels, torch.tensor([0, 0, 30]))
    assert int(wider.flagged.sum()) == 45 and bool(wider.flagged[truth].all())
    assert not bool(wider.flagged[labels != 2].any())


def test_spectral_spreads_a_total_over_classes_by_size():
    features, labels, truth = planted(shift=10.0)
    result = build_detector("spectral")(features, labels, 20)  # 20/3 per class, x 1.5 -> 10
    assert result.budgets == {0: 10, 1: 10, 2: 10}
    assert bool(truth[result.flagged & (labels == 2)].all())  # class 2's 10 are poisoned


def test_spectral_on_clean_features_flags_its_budget_at_chance():
    features, labels, _ = planted(shift=0.0)
    arbitrary = torch.rand(len(labels), generator=gen(1)) < 0.1  # a "truth" unrelated to the features
    result = build_detector("spectral")(features, labels, 60)
    assert result.budgets == {0: 30, 1: 30, 2: 30} and int(result.flagged.sum()) == 90
    assert abs(auroc(result.scores, arbitrary) - 0.5) < 0.1
    assert not bool(build_detector("spectral")(features, labels, 0).flagged.any())


# FastICA warns that it did not converge on Gaussian classes: there are no independent components to find.
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("reduce", ["FastICA", "PCA"])
def test_activation_clustering_flags_exactly_the_planted_cluster(reduce):
    features, labels, truth = planted(shift=10.0)
    detector = build_detector("activation-clustering", reduce=reduce, cluster_analysis="relative-size")
    result = detector(features, labels, gen())
    assert torch.equal(result.flagged, truth)
    assert result.poisoned_classes == (2,)
    assert result.shares[2] == 30 / 200
    assert auroc(result.scores, truth) == 1.0
    # "smaller" (ART's default analysis) also flags the smaller half of each clean class.
    smaller = build_detector("activation-clustering", reduce=reduce)(features, labels, gen())
    assert torch.equal(smaller.flagged[labels == 2], truth[labels == 2])
    assert torch.equal(smaller.flagged, smaller.smaller == 1)
    assert smaller.poisoned_classes == (2,)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_activation_clustering_on_clean_features_calls_no_class_poisoned():
    features, labels, _ = planted(shift=0.0)
    result = build_detector("activation-clustering", cluster_analysis="relative-size")(features, labels, gen())
    assert result.poisoned_classes == () and not bool(result.flagged.any())
    assert all(0.35 <= share <= 0.5 for share in result.shares.values())
    again = build_detector("activation-clustering", cluster_analysis="relative-size")(features, labels, gen())
    assert torch.equal(again.scores, result.scores)  # deterministic given the generator


def test_feature_detectors_reject_bad_inputs():
    features, labels, _ = planted(shift=0.0, n_per_class=5)
    with pytest.raises(ValueError, match="labels must be an int64 tensor"):
        build_detector("spectral")(features, labels.int(), 1)
    with pytest.raises(ValueError, match="expected_poison must be in"):
        build_detector("spectral")(features, labels, 16)


# ---------------------------------------------------------------- STRIP


def test_strip_defaults_are_the_references():
    assert detector_defaults("strip") == {
        "superimpose": "sum",
        "num_blends": 64,
        "alpha": 0.5,
        "false_rejection_rate": 0.05,
        "batch_size": 256,
        "num_inputs": 500,
        "num_clean": 1000,
    }


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"num_blends": 1}, "detectors.strip.num_blends: must be an integer in [2, inf), got 1"),
        ({"num_blends": 64.0}, "detectors.strip.num_blends: must be an integer in [2, inf), got 64.0"),
        ({"alpha": 0.0}, "detectors.strip.alpha: must be a number in (0, 1), got 0.0"),
        ({"alpha": 1}, "detectors.strip.alpha: must be a number in (0, 1), got 1"),
        ({"alpha": "0.5"}, "detectors.strip.alpha: must be a number in (0, 1), got '0.5'"),
        ({"false_rejection_rate": 1.0}, "detectors.strip.false_rejection_rate: must be a number in [0, 1)"),
        (
            {"N": 64, "blend": 0.5},
            "detectors.strip.N, detectors.strip.blend: unknown setting; valid keys: alpha, "
            "batch_size, false_rejection_rate, num_blends, num_clean, num_inputs",
        ),
    ],
)
def test_strip_bad_settings(settings, message):
    fails_in_one_line("strip", settings, message)


SCALE = 8.0  # the toy's logit slope


def toy_logits(images: torch.Tensor) -> torch.Tensor:
    """Four logits (SCALE * v, 0, 0, 0) from the top-left pixel v in [0, 1]: uniform at v = 0,
    nearly one-hot at v = 1; the rest of the image is ignored."""
    assert images.dtype == torch.float32 and 0 <= float(images.min()) and float(images.max()) <= 1
    v = images[:, 0, 0, 0]
    return torch.stack([SCALE * v, 0 * v, 0 * v, 0 * v], dim=1)


def entropy_at(v: float) -> float:
    """Entropy (nats) of softmax(SCALE * v, 0, 0, 0), written out."""
    z = math.exp(SCALE * v) + 3
    p, q = math.exp(SCALE * v) / z, 1 / z
    return -(p * math.log(p) + 3 * q * math.log(q))


def images_with_corner(values: list[int], seed: int) -> torch.Tensor:
    """uint8 (n, 1, 6, 6) random images whose top-left pixel is ``values[i]``."""
    out = torch.randint(0, 256, (len(values), 1, 6, 6), generator=gen(seed), dtype=torch.uint8)
    out[:, 0, 0, 0] = torch.tensor(values, dtype=torch.uint8)
    return out


def test_softmax_entropy_uniform_and_one_hot():
    assert torch.allclose(softmax_entropy(torch.zeros(1, 4)), torch.tensor([math.log(4)], dtype=torch.float64))
    assert float(softmax_entropy(torch.tensor([[1000.0, 0.0, 0.0]]))) == 0.0


def test_strip_entropies_and_threshold_are_analytic():
    alpha, corner = 0.25, 40  # every pool image has top-left pixel 40, so each blend's v is known
    pool = images_with_corner([corner] * 32, seed=1)
    clean = images_with_corner(list(range(100)), seed=2)  # v grows with the index: entropy falls
    inputs = images_with_corner([0, 255, 10, 94, 95], seed=3)
    result = build_detector("strip", alpha=alpha, superimpose="convex")(toy_logits, inputs, pool, gen(), clean=clean)

    def expected(x: int) -> float:
        return entropy_at((1 - alpha) * x / 255 + alpha * corner / 255)

    def expected_all(xs) -> torch.Tensor:
        return torch.tensor([expected(x) for x in xs], dtype=torch.float64)

    assert torch.allclose(result.clean_entropy, expected_all(range(100)))
    assert torch.allclose(result.entropy, expected_all([0, 255, 10, 94, 95]))
    assert torch.equal(result.scores, -result.entropy)
    # 5 % of 100 clean inputs rejected: the threshold is the 6th lowest entropy, that of x = 94.
    assert result.threshold == pytest.approx(expected(94))
    assert int((result.clean_entropy < result.threshold).sum()) == 5
    assert result.flagged.tolist() == [False, True, False, False, True]  # x = 94 sits on it: not below


def test_strip_averages_entropy_over_the_blends():
    pool = images_with_corner([0, 255] * 8, seed=1)  # blends are either uniform-ish or confident
    inputs = images_with_corner([0] * 20, seed=2)
    strip = build_detector("strip", num_blends=2, alpha=0.5, superimpose="convex")
    result = strip(toy_logits, inputs, pool, gen())
    low, high = entropy_at(0.5), entropy_at(0.0)  # blend with a 255 or a 0 corner
    possible = torch.tensor([high, (low + high) / 2, low], dtype=torch.float64)
    distance = (result.entropy[:, None] - possible[None, :]).abs().min(dim=1).values
    assert float(distance.max()) < 1e-9  # every input's entropy is the mean of its two blends
    assert len(set(result.entropy.round(decimals=9).tolist())) == 3
    assert torch.equal(strip(toy_logits, inputs, pool, gen()).entropy, result.entropy)


def test_strip_threshold_order_statistic_and_bad_inputs():
    assert rejection_threshold(torch.arange(20.0), 0.05) == 1.0  # floor(0.05 * 20) = 1: one below
    assert rejection_threshold(torch.arange(100.0), 0.07) == 7.0
    assert rejection_threshold(torch.arange(20.0), 0.0) == 0.0
    pool = images_with_corner([0] * 4, seed=1)
    with pytest.raises(ValueError, match="inputs must be a uint8 tensor"):
        build_detector("strip", superimpose="convex")(toy_logits, pool.float() / 255, pool, gen())


# ---------------------------------------------------------------- Neural Cleanse


def test_neural_cleanse_defaults_are_the_references():
    defaults = detector_defaults("neural-cleanse")
    assert {
        k: defaults[k] for k in ("lr", "init_cost", "cost_multiplier", "patience", "success_threshold", "batch_size")
    } == {
        "lr": 0.1,
        "init_cost": 1e-3,
        "cost_multiplier": 2.0,
        "patience": 5,
        "success_threshold": 0.99,
        "batch_size": 32,
    }


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"steps": 0}, "detectors.neural-cleanse.steps: must be an integer in [1, inf), got 0"),
        ({"lr": 0}, "detectors.neural-cleanse.lr: must be a number in (0, inf), got 0"),
        ({"cost_multiplier": 1.0}, "detectors.neural-cleanse.cost_multiplier: must be a number in (1, inf)"),
        ({"success_threshold": 1.5}, "detectors.neural-cleanse.success_threshold: must be a number in (0, 1], got 1.5"),
        (
            {"lambda": 1e-3},
            "detectors.neural-cleanse.lambda: unknown setting; valid keys: batch_size, cost_multiplier, "
            "init_cost, lr, num_images, patience, steps, success_threshold",
        ),
    ],
)
def test_neural_cleanse_bad_settings(settings, message):
    fails_in_one_line("neural-cleanse", settings, message)


def test_mad_anomaly_index_by_hand():
    norms = torch.tensor([1.0, 10, 11, 9, 10, 12, 30])  # median 10, median |deviation| 1
    index = anomaly_index(norms)
    assert torch.allclose(index, torch.tensor([9, 0, 1, 1, 0, 2, 20], dtype=torch.float64) / 1.4826)
    assert flag_classes(norms, index) == (0,)  # 30 is an outlier too, but above the median
    even = anomaly_index(torch.tensor([1.0, 2, 3, 4]))  # median 2.5 (numpy's), not 2 (torch.median's)
    assert torch.allclose(even, torch.tensor([1.5, 0.5, 0.5, 1.5], dtype=torch.float64) / 1.4826)
    flat = anomaly_index(torch.tensor([5.0, 5, 5, 1]))
    assert flat.tolist() == [0.0, 0.0, 0.0, math.inf]


def test_cost_schedule_follows_the_original():
    schedule = CostSchedule(init_cost=1e-3, multiplier=2.0, patience=5)
    for _ in range(4):
        schedule.update(True, math.inf)
    assert schedule.cost == 0.0
    schedule.update(True, math.inf)  # 5 successes at cost 0: start at init_cost
    assert schedule.cost == 1e-3
    for _ in range(5):
        schedule.update(True, math.inf)
    assert schedule.cost == 2e-3
    for _ in range(5):
        schedule.update(False, math.inf)
    assert schedule.cost == pytest.approx(2e-3 / 2**1.5)
    # Up and down both happened: 25 steps without a 1 % better norm stop it.
    stops = [schedule.update(True, 1.0) for _ in range(26)]
    assert stops.index(True) == 25


SIZE, CLASSES = 8, 8


def stamp(images: torch.Tensor) -> torch.Tensor:
    out = images.clone()
    out[:, :, -2:, -2:] = 255  # the 2x2 white patch, bottom right
    return out


def toy_images(n: int, templates: torch.Tensor, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Class k: half-bright random binary template k plus noise, never above 0.8 (the patch is 1.0)."""
    labels = torch.randint(CLASSES, (n,), generator=g)
    images = 0.5 * templates[labels] + 0.3 * torch.rand(n, 1, SIZE, SIZE, generator=g)
    return (images * 255).round().to(torch.uint8), labels


@pytest.fixture(scope="module")
def backdoored_mlp() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """An MLP trained in ~3 s on 8x8 images, 10 % of them stamped and labelled 0; clean test images."""
    g = gen(0)
    templates = (torch.rand(CLASSES, 1, SIZE, SIZE, generator=g) < 0.5).float()
    images, labels = toy_images(2000, templates, g)
    images[:200], labels[:200] = stamp(images[:200]), 0
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(SIZE * SIZE, 64), nn.ReLU(), nn.Linear(64, CLASSES))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(10):
        for batch in torch.randperm(len(images), generator=g).split(100):
            loss = F.cross_entropy(model(images[batch].float() / 255), labels[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    model.zero_grad(set_to_none=True)
    model.eval().requires_grad_(False)
    test_images, test_labels = toy_images(500, templates, g)
    with torch.no_grad():
        assert float((model(test_images.float() / 255).argmax(1) == test_labels).float().mean()) > 0.95
        assert float((model(stamp(test_images).float() / 255).argmax(1) == 0).float().mean()) > 0.95
    return model, test_images, test_labels


def test_neural_cleanse_recovers_the_planted_target(backdoored_mlp):
    model, images, labels = backdoored_mlp
    result = build_detector("neural-cleanse", num_images=200)(model, images, labels, CLASSES, gen(1))
    assert result.flagged_classes == (0,)
    assert float(result.anomaly_index[0]) > 2
    assert int(result.norms.argmin()) == 0
    assert result.masks.shape == (CLASSES, SIZE, SIZE) and result.patterns.shape == (CLASSES, 1, SIZE, SIZE)
    assert 0 <= float(result.masks.min()) and float(result.masks.max()) <= 1
    # The reversed trigger sits on the patch: its 4 largest mask entries, with a bright pattern.
    top = set(result.masks[0].flatten().topk(4).indices.tolist())
    assert top == {SIZE * r + c for r in (SIZE - 2, SIZE - 1) for c in (SIZE - 2, SIZE - 1)}
    assert float(result.patterns[0, 0, -2:, -2:].min()) > 0.8
    assert bool((result.success >= 0.99).all())
    assert result.summary()["flagged_classes"] == [0]


def test_neural_cleanse_is_deterministic_and_leaves_the_model_alone(backdoored_mlp):
    model, images, labels = backdoored_mlp
    before = [p.clone() for p in model.parameters()]
    short = build_detector("neural-cleanse", steps=2, num_images=40)
    model.requires_grad_(True)  # even so, the detector must not fill the parameters' .grad
    try:
        first = short(model, images, labels, CLASSES, gen(5))
    finally:
        model.requires_grad_(False)
    assert torch.equal(first.masks, short(model, images, labels, CLASSES, gen(5)).masks)
    assert all(torch.equal(a, b) and b.grad is None for a, b in zip(before, model.parameters()))
    assert first.steps.tolist() == [2] * CLASSES


def test_neural_cleanse_optimizes_each_class_on_the_other_classes_images():
    labels = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 2, 3])
    images = torch.zeros(len(labels), 1, 4, 4, dtype=torch.uint8)
    seen = []
    weight = torch.randn(16, 4, generator=gen())

    def predict_logits(x: torch.Tensor) -> torch.Tensor:
        seen.append(len(x))
        return x.flatten(1) @ weight

    detector = build_detector("neural-cleanse", steps=1, num_images=10, batch_size=10)
    result = detector(predict_logits, images, labels, 4, gen())
    assert seen == [7, 8, 6, 9]  # class t is reversed on the images not labelled t
    assert result.steps.tolist() == [1] * 4


def test_spectral_assumed_rate_sets_each_class_budget():
    """Without an expected count, the defender's ``expected_rate`` of every class, times 1.5, is flagged."""
    gen = torch.Generator().manual_seed(0)
    features = torch.randn(300, 4, generator=gen)
    labels = torch.arange(300) % 3
    result = build_detector("spectral", expected_rate=0.2)(features, labels)
    assert int(result.flagged.sum()) == 3 * 30  # round(1.5 x 0.2 x 100) per class
    assert int(build_detector("spectral")(features, labels).flagged.sum()) == 3 * 15


# ---------------------------------------------------------------- metrics from kept scores (backdoor.detection)


def test_spectral_reference_score_projects_the_uncentred_rows():
    """MadryLab's, ART's and BackdoorBench's score |R_i . v|; the paper's (R_i - mean) . v squared. A class half
    poisoned: centred, both halves score alike; uncentred, they split by side."""
    points = torch.tensor([[1.0, 0.0], [1.0, 0.0], [3.0, 0.0], [3.0, 0.0]])
    assert torch.allclose(spectral_scores(points, "paper"), torch.ones(4, dtype=torch.float64))
    assert torch.allclose(spectral_scores(points, "reference"), torch.tensor([1.0, 1.0, 3.0, 3.0], dtype=torch.float64))


def test_spectral_and_clustering_report_each_sources_form_beside_the_configured_one():
    spectral = detector_variants("spectral", build_detector("spectral"))
    assert list(spectral) == ["paper-pooled", "paper-block", "reference-pooled", "reference-block"]
    assert spectral["reference-block"][0].score == "reference" and spectral["reference-block"][1] == "block"
    clustering = detector_variants("activation-clustering", build_detector("activation-clustering"))
    assert list(clustering) == ["configured", "art-smaller", "art-relative-size", "backdoorbench"]
    assert clustering["art-smaller"][0].reduce == "PCA"
    assert clustering["backdoorbench"][0].cluster_analysis == "relative-size"


def test_oracle_budget_is_one_and_a_half_times_each_classes_true_poison_count():
    from backdoor.detection import oracle_flags

    scores = torch.tensor([9.0, 8.0, 7.0, 6.0, 5.0, 1.0, 2.0, 3.0])
    labels = torch.tensor([0, 0, 0, 0, 0, 1, 1, 1])
    truth = torch.tensor([True, True, False, False, False, False, False, False])  # class 0: 2 poisons -> 3 flags
    assert oracle_flags(scores, truth, labels).tolist() == [True, True, True, False, False, False, False, False]


def test_image_metrics_rank_within_the_target_class_and_give_its_poisoned_share():
    from backdoor.detection import image_metrics

    labels = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])
    truth = torch.tensor([True, True, False, False, False, False, False, False])
    # within class 0 the poisons score highest (AUROC 1); class 1's scores sit above them all (pooled AUROC < 1)
    scores = torch.tensor([5.0, 4.0, 1.0, 0.0, 9.0, 8.0, 7.0, 6.0])
    flagged = torch.tensor([True, False, False, False, True, False, False, False])
    metrics = image_metrics(scores, flagged, truth, labels, target=0)
    assert metrics["auroc_target"] == 1.0 and metrics["auroc"] == pytest.approx(4 / 12)
    assert metrics["target_poisoned_share"] == 0.5 and (metrics["tp"], metrics["fp"]) == (1, 1)
    assert metrics["oracle_tpr"] == 1.0 and metrics["oracle_fpr"] == pytest.approx(1 / 6)  # 3 flags in class 0


def test_input_metrics_count_a_trigger_the_model_ignores_apart():
    from backdoor.detection import input_metrics

    truth = torch.tensor([True, True, True, False, False])
    fires = torch.tensor([True, True, False, False, False])  # the third triggered input does not fire
    scores = torch.tensor([0.9, 0.8, 0.1, 0.2, 0.3])
    flagged = scores > 0.5
    metrics = input_metrics(scores, flagged, truth, fires)
    assert metrics["tpr"] == pytest.approx(2 / 3) and metrics["tpr_firing"] == 1.0 and metrics["firing_inputs"] == 2
    assert metrics["auroc"] == pytest.approx(4 / 6) and metrics["auroc_firing"] == 1.0


# ---------------------------------------------------------------- STRIP's two superpositions


def corner_logits(images: torch.Tensor) -> torch.Tensor:
    """The toy above on the top-left pixel v, here in [0, 2] (a sum of two images in [0, 1] reaches 2)."""
    assert 0 <= float(images.min()) and float(images.max()) <= 2
    v = images[:, 0, 0, 0]
    return torch.stack([SCALE * v, 0 * v, 0 * v, 0 * v], dim=1)


def test_strip_superimposes_as_its_source_by_sum_and_as_before_convexly():
    from backdoor.detectors.strip import superimposed

    x, b = torch.tensor([0.2, 1.0]), torch.tensor([0.9, 1.0])
    assert torch.allclose(superimposed(x, b, "sum", 0.5), torch.tensor([1.1, 2.0]))  # unclipped, as cv2 on floats
    assert torch.allclose(superimposed(x, b, "convex", 0.5), torch.tensor([0.55, 1.0]))  # 0.5 x + 0.5 b
    corner = 40
    pool = images_with_corner([corner] * 16, seed=1)
    inputs = images_with_corner([0, 100, 255], seed=2)
    summed = build_detector("strip")(corner_logits, inputs, pool, gen(), clean=pool)
    expected = [entropy_at(v / 255 + corner / 255) for v in (0, 100, 255)]
    assert torch.allclose(summed.entropy, torch.tensor(expected, dtype=torch.float64))
    convex = build_detector("strip", superimpose="convex")(corner_logits, inputs, pool, gen(), clean=pool)
    expected = [entropy_at(0.5 * v / 255 + 0.5 * corner / 255) for v in (0, 100, 255)]
    assert torch.allclose(convex.entropy, torch.tensor(expected, dtype=torch.float64))
    fails_in_one_line("strip", {"superimpose": "max"}, "detectors.strip.superimpose: unknown value 'max'")


def test_strip_reports_the_other_superposition_as_a_variant_on_the_same_draws():
    from backdoor.classifier import Classifier
    from backdoor.datasets import Dataset, Split
    from backdoor.detection import detect

    variants = detector_variants("strip", build_detector("strip"))
    assert list(variants) == ["configured", "convex"] and variants["convex"][0].superimpose == "convex"
    assert list(detector_variants("strip", build_detector("strip", superimpose="convex"))) == ["configured", "sum"]

    images = torch.randint(0, 256, (40, 1, 8, 8), generator=gen(), dtype=torch.uint8)
    labels = torch.arange(40) % 4
    data = Dataset("tiny", ("a", "b", "c", "d"), Split(images, labels), Split(images[:12], labels[:12]))
    clf = Classifier.create("small-cnn", images, 4, seed=0)
    small = {"num_blends": 4, "num_inputs": 6, "num_clean": 8}

    def run(settings):
        triggered = images[:12].clone()
        triggered[:, :, :2, :2] = 255
        return detect(
            "strip", {**small, **settings}, clf, data, pool=torch.arange(40), poisoned=torch.tensor([0, 4]),
            triggered=triggered, triggered_targets=torch.zeros(12, dtype=torch.int64), backdoored=True, target=0,
            seed=0,
        )  # fmt: skip

    record, scores = run({})
    assert [row["variant"] for row in record["rows"]] == ["configured", "convex"]
    assert record["threshold"] == record["rows"][0]["threshold"]
    assert list(scores.columns) == [
        "triggered",
        "fires",
        "class",
        "entropy",
        "flagged",
        "entropy_convex",
        "flagged_convex",
    ]
    as_before, before_scores = run({"superimpose": "convex"})  # today's form configured: its numbers, same draws
    assert as_before["rows"][0] | {"variant": "convex"} == record["rows"][1]
    assert (before_scores["entropy"] == scores["entropy_convex"]).all()


# ---------------------------------------------------------------- activation clustering's balanced accuracy


def test_activation_clustering_names_its_two_valued_ranking_a_balanced_accuracy():
    from backdoor.detection import image_metrics

    assert DETECTORS.get("activation-clustering").ranking == "balanced_accuracy"
    assert DETECTORS.get("spectral").ranking == "auroc"
    labels = torch.zeros(8, dtype=torch.int64)
    truth = torch.tensor([True, True, True, False, False, False, False, False])
    smaller = torch.tensor([True, True, False, True, False, False, False, False])  # 3 of 8 in the smaller cluster
    scores = torch.where(smaller, 5 / 8, 3 / 8).double()
    metrics = image_metrics(scores, smaller, truth, labels, target=0, ranking="balanced_accuracy")
    assert "auroc_target" not in metrics and "auroc" not in metrics
    tpr, tnr = 2 / 3, 4 / 5
    assert metrics["balanced_accuracy_target"] == pytest.approx((tpr + tnr) / 2)  # the AUROC of the two values
    assert metrics["balanced_accuracy"] == pytest.approx((tpr + tnr) / 2)


# ---------------------------------------------------------------- the detection tables and the kept scores


def test_strip_and_neural_cleanse_count_working_backdoors_and_list_the_others_apart():
    import pandas as pd

    from backdoor.tables import detection_table

    rows = []
    for seed, asr in ((0, 0.95), (1, 0.2), (2, 0.8)):
        common = {"trigger": "wanet", "poison_rate": 0.01, "seed": seed, "asr": asr, "variant": "configured"}
        common |= {"dataset": "d", "arch": "a", "regularizer": "none"}
        rows.append({**common, "detector": "spectral", "auroc_target": 0.7, "tpr": 0.5, "fpr": 0.1, "oracle_tpr": 0.6})
        rows.append({**common, "detector": "strip", "auroc": asr, "tpr": asr, "fpr": 0.05, "tpr_firing": asr})
        flagged = "0" if asr > 0.5 else ""
        rows.append({**common, "detector": "neural-cleanse", "anomaly_index": 3.0, "flagged_classes": flagged,
                     "target_flagged": asr > 0.5})  # fmt: skip
    lines = detection_table(pd.DataFrame(rows)).splitlines()
    # spectral counts the three models; STRIP and Neural Cleanse the two whose backdoor works, the third apart
    assert lines[2] == (
        "| wanet | 1 % | 0.70 · 0.50 · 0.10 · 0.60 | 0.80-0.95 · 0.80-0.95 · 0.05 · firing 0.80-0.95 "
        "| 3.00 · 2/2 flagged, target 2/2 |"
    )
    assert (
        lines[3]
        == "| wanet (ASR < 0.5) | 1 % | - | 0.20 · 0.20 · 0.05 · firing 0.20 | 3.00 · 0/1 flagged, target 0/1 |"
    )
    assert len(lines) == 4


def test_the_detector_runs_kept_in_git_keep_their_scores():
    """Every committed detector run's per-image scores are tracked: no .gitignore under reports/presets hides them."""
    import subprocess
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    for run in sorted(p.parent for p in (root / "reports" / "presets").glob("*/detection.csv")):
        for detector in DETECTORS:
            path = run / "detection" / detector / "model.scores.csv.gz"
            ignored = subprocess.run(["git", "check-ignore", "-q", str(path)], cwd=root).returncode == 0
            assert not ignored, f"{path.relative_to(root)} would be ignored"
    for rules in (root / "reports" / "presets").rglob(".gitignore"):
        assert "scores.csv.gz" not in rules.read_text(), f"{rules.relative_to(root)} ignores kept scores"
