"""Strategies: who is poisoned, their labels, the ASR set, and ASR on hand-made predictions."""

from __future__ import annotations

import pytest
import torch

from backdoor.errors import ConfigError
from backdoor.metrics import attack_success_rate, backdoor_metrics
from backdoor.poisoned_set import PoisonedSet, training_pool
from backdoor.poisoning import STRATEGIES, build_strategy, make_poisoned_set
from backdoor.seeding import generator
from backdoor.settings import poison_count
from backdoor.triggers import build_trigger

torch.set_num_threads(1)

K = 4
SHAPE = (1, 6, 6)


def train_set(n: int = 40) -> tuple[torch.Tensor, torch.Tensor]:
    """Image i is filled with the value i (so a stored image shows where it came from); label i mod 4."""
    images = torch.arange(n, dtype=torch.uint8).reshape(n, 1, 1, 1).expand(n, *SHAPE).clone()
    return images, torch.arange(n) % K


def clean_test_set(n: int = 12) -> tuple[torch.Tensor, torch.Tensor]:
    images = (100 + torch.arange(n, dtype=torch.uint8)).reshape(n, 1, 1, 1).expand(n, *SHAPE).clone()
    return images, torch.arange(n) % K


def square():
    return build_trigger("square", SHAPE, size=2, location="top-left", value=255)


def poison(
    strategy: str, rate: float, target: int = 0, source: int | None = None, seed: int = 0, trigger=None
) -> PoisonedSet:
    train_x, train_y = train_set()
    test_x, test_y = clean_test_set()
    return make_poisoned_set(
        train_x, train_y, test_x, test_y, trigger or square(), build_strategy(strategy, target, source, K), rate, seed
    )


def check_images(images: torch.Tensor, indices: torch.Tensor, base: int = 0) -> None:
    """Each stored image is the original image ``base + index`` with the white 2x2 patch."""
    for image, index in zip(images, indices.tolist()):
        expected = torch.full(SHAPE, base + index, dtype=torch.uint8)
        expected[:, :2, :2] = 255
        assert torch.equal(image, expected)


def test_registered_strategies():
    assert set(STRATEGIES) == {"all-to-one", "one-to-one", "all-to-all", "clean-label", "label-consistent"}
    assert STRATEGIES.names(uses_source=True) == ["one-to-one"]
    assert STRATEGIES.names(perturbed=True) == ["label-consistent"]
    assert STRATEGIES.names(single_target=False) == ["all-to-all"]
    assert all(STRATEGIES.get(name).reference for name in STRATEGIES), "every strategy names its source"


# ---------------------------------------------------------------- label mappings and counts


def test_all_to_one():
    p = poison("all-to-one", rate=0.25, target=2)
    assert len(p.indices) == poison_count(40, 0.25) == 10
    assert torch.equal(p.indices, p.indices.sort().values) and len(p.indices.unique()) == 10
    assert (p.indices % K != 2).all(), "no target-class image is poisoned"
    assert (p.labels == 2).all()
    check_images(p.images, p.indices)
    assert p.test_indices.tolist() == [i for i in range(12) if i % K != 2]
    assert p.test_labels.tolist() == [i % K for i in range(12) if i % K != 2]
    assert (p.test_targets == 2).all()
    check_images(p.test_images, p.test_indices, base=100)
    assert p.num_poisoned == 10 and p.num_cover == 0


def test_all_to_one_can_poison_every_non_target_image():
    p = poison("all-to-one", rate=0.75, target=0)
    assert p.indices.tolist() == [i for i in range(40) if i % K != 0]


def test_one_to_one():
    p = poison("one-to-one", rate=0.2, target=0, source=3)
    assert len(p.indices) == 8
    assert (p.indices % K == 3).all()
    assert (p.labels == 0).all()
    check_images(p.images, p.indices)
    assert p.test_indices.tolist() == [3, 7, 11]
    assert p.test_labels.tolist() == [3, 3, 3] and p.test_targets.tolist() == [0, 0, 0]


def test_all_to_all():
    p = poison("all-to-all", rate=0.5, target=0)
    assert len(p.indices) == 20
    assert torch.equal(p.labels, (p.indices % K + 1) % K)
    assert set((p.indices % K).tolist()) == {0, 1, 2, 3}, "any class may be poisoned"
    check_images(p.images, p.indices)
    assert p.test_indices.tolist() == list(range(12))
    assert p.test_labels.tolist() == [0, 1, 2, 3] * 3
    assert p.test_targets.tolist() == [1, 2, 3, 0] * 3


def test_clean_label():
    p = poison("clean-label", rate=0.2, target=1)
    assert len(p.indices) == 8
    assert (p.indices % K == 1).all(), "only target-class images carry the trigger"
    assert (p.labels == 1).all(), "labels are unchanged"
    check_images(p.images, p.indices)
    assert p.test_indices.tolist() == [i for i in range(12) if i % K != 1]
    assert (p.test_targets == 1).all()


@pytest.mark.parametrize(
    "strategy,source,eligible", [("all-to-one", None, 30), ("one-to-one", 1, 10), ("clean-label", None, 10)]
)
def test_rate_above_the_eligible_images(strategy, source, eligible):
    rate = (eligible + 1) / 40
    with pytest.raises(ConfigError, match=rf"poison_rate: .* only {eligible} of the 40 training images are eligible"):
        poison(strategy, rate=rate, target=0, source=source)
    assert len(poison(strategy, rate=eligible / 40, target=0, source=source).indices) == eligible


@pytest.mark.parametrize("rate", [-0.1, 1.5])
def test_rate_outside_zero_one(rate):
    with pytest.raises(ConfigError, match=r"poison_rate: must be a number in \[0, 1\], got "):
        poison("all-to-one", rate=rate)


@pytest.mark.parametrize("trigger", ["square", "blend", "wanet"])
def test_rate_zero_is_an_empty_delta(trigger):
    t = build_trigger(trigger, SHAPE, size=2)
    p = poison("all-to-one", rate=0.0, trigger=t)
    assert len(p.indices) == 0 and p.images.shape == (0, *SHAPE) and len(p.labels) == 0
    assert len(p.test_indices) == 9


def test_seeded_draw():
    a, b = poison("all-to-one", 0.25, seed=1), poison("all-to-one", 0.25, seed=1)
    for key, value in a.to_dict().items():
        assert torch.equal(value, b.to_dict()[key]), key
    assert not torch.equal(a.indices, poison("all-to-one", 0.25, seed=2).indices)


def test_training_set_writes_the_delta():
    p = poison("all-to-all", rate=0.25)
    train_x, train_y = train_set()
    images, labels = p.training_set(train_x, train_y)
    assert torch.equal(train_x, train_set()[0]), "training_set copies"
    poisoned = torch.zeros(40, dtype=torch.bool)
    poisoned[p.indices] = True
    assert torch.equal(images[~poisoned], train_x[~poisoned]) and torch.equal(labels[~poisoned], train_y[~poisoned])
    assert torch.equal(images[p.indices], p.images) and torch.equal(labels[p.indices], (train_y[p.indices] + 1) % K)


def test_poison_is_drawn_inside_the_training_pool():
    """With train.subset, the rate is a fraction of the pool and every poisoned image is in it: the model
    trains on exactly num_poisoned triggered images."""
    train_x, train_y = train_set(400)
    test_x, test_y = clean_test_set()
    pool = training_pool(400, 100, seed=3)
    assert len(pool) == 100 and torch.equal(pool, pool.sort().values) and len(pool.unique()) == 100
    assert torch.equal(pool, training_pool(400, 100, seed=3)) and not torch.equal(pool, training_pool(400, 100, 4))
    assert torch.equal(training_pool(400, None, seed=3), torch.arange(400))
    p = make_poisoned_set(
        train_x, train_y, test_x, test_y, square(), build_strategy("all-to-one", 0, None, K), 0.05, seed=0, pool=pool
    )
    assert p.num_poisoned == 5 == poison_count(100, 0.05)  # not round(0.05 x 400) = 20
    assert torch.isin(p.indices, pool).all()
    images, labels = p.training_set(train_x, train_y)
    assert len(labels) == 100
    chosen = torch.isin(pool, p.indices)
    assert torch.equal(images[chosen], p.images) and (labels[chosen] == 0).all()
    assert torch.equal(images[~chosen], train_x[pool[~chosen]]) and torch.equal(labels[~chosen], train_y[pool[~chosen]])


def test_to_dict_round_trip_and_incomplete_files():
    p = poison("one-to-one", 0.1, target=2, source=0)
    q = PoisonedSet.from_dict(p.to_dict())
    for key, value in p.to_dict().items():
        assert torch.equal(value, getattr(q, key))
    old = {k: v for k, v in p.to_dict().items() if k != "pool"}
    with pytest.raises(ConfigError, match="poisoned set: missing pool; re-run its poison stage"):
        PoisonedSet.from_dict(old)


# ---------------------------------------------------------------- validation


def test_one_to_one_needs_a_source():
    with pytest.raises(ConfigError, match="source: one-to-one needs a source class"):
        build_strategy("one-to-one", 0, None, K)


def test_one_to_one_source_must_differ_from_target():
    with pytest.raises(ConfigError, match="source: must differ from target for one-to-one, both are 2"):
        build_strategy("one-to-one", 2, 2, K)


@pytest.mark.parametrize("strategy", ["all-to-one", "all-to-all", "clean-label"])
def test_source_is_only_for_one_to_one(strategy):
    with pytest.raises(ConfigError, match="source: only used by one-to-one; set it to null"):
        build_strategy(strategy, 0, 1, K)


@pytest.mark.parametrize(
    "target,source,message",
    [
        (4, None, "target: class 4 is outside this dataset's classes 0..3"),
        (-1, None, "target: class -1"),
        (0, 4, "source: class 4 is outside"),
        (0, -1, "source: class -1 is outside"),
    ],
)
def test_classes_in_range(target, source, message):
    with pytest.raises(ConfigError, match=message):
        build_strategy("one-to-one", target, source, K)


def test_unknown_strategy_and_one_class():
    with pytest.raises(ConfigError, match="strategy: unknown value 'some-to-some'; valid choices: all-to-all"):
        build_strategy("some-to-some", 0, None, K)
    with pytest.raises(ConfigError, match="at least 2 classes"):
        build_strategy("all-to-all", 0, None, 1)


# ---------------------------------------------------------------- ASR with make_poisoned_set's targets


def test_asr_all_to_one():
    p = poison("all-to-one", 0.25, target=0)  # test labels 1 2 3 1 2 3 1 2 3
    preds = torch.tensor([0, 0, 0, 1, 2, 0, 0, 3, 3])
    assert attack_success_rate(preds, p.test_labels, p.test_targets) == pytest.approx(5 / 9)


def test_asr_one_to_one():
    p = poison("one-to-one", 0.25, target=2, source=1)  # test labels 1 1 1
    assert attack_success_rate(torch.tensor([2, 1, 2]), p.test_labels, p.test_targets) == pytest.approx(2 / 3)
    assert attack_success_rate(torch.tensor([0, 3, 1]), p.test_labels, p.test_targets) == 0.0


def test_asr_all_to_all():
    p = poison("all-to-all", 0.25)  # test labels 0 1 2 3 x3, targets 1 2 3 0 x3
    preds = torch.tensor(
        [
            1,
            2,
            3,
            0,  # all hit
            0,
            1,
            2,
            3,  # true labels: no hit
            1,
            1,
            1,
            1,
        ]
    )  # hits label 0 only
    assert attack_success_rate(preds, p.test_labels, p.test_targets) == pytest.approx(5 / 12)
    all_to_one_guess = torch.zeros(12, dtype=torch.int64)  # "always class 0" only hits the 3 images of label 3
    assert attack_success_rate(all_to_one_guess, p.test_labels, p.test_targets) == pytest.approx(3 / 12)


def test_asr_clean_label():
    p = poison("clean-label", 0.2, target=3)  # test labels 0 1 2 0 1 2 0 1 2
    preds = torch.tensor([3, 3, 3, 3, 3, 3, 0, 1, 2])
    metrics = backdoor_metrics(torch.arange(12) % K, torch.arange(12) % K, preds, p.test_labels, p.test_targets)
    assert metrics == {"clean_acc": 1.0, "asr": pytest.approx(6 / 9), "robust_acc": pytest.approx(3 / 9)}


# ---------------------------------------------------------------- WaNet noise mode: cross images


def wanet_poison(rate: float, cross_ratio: float = 2, noise_mode: bool = True, seed: int = 0) -> tuple:
    n = 40
    train_x = torch.randint(0, 256, (n, 1, 8, 8), generator=generator(0, "images"), dtype=torch.uint8)
    train_y = torch.arange(n) % K
    test_x = torch.randint(0, 256, (8, 1, 8, 8), generator=generator(1, "images"), dtype=torch.uint8)
    trigger = build_trigger("wanet", (1, 8, 8), seed=seed, noise_mode=noise_mode, cross_ratio=cross_ratio)
    p = make_poisoned_set(
        train_x, train_y, test_x, torch.arange(8) % K, trigger, build_strategy("all-to-one", 0, None, K), rate, seed
    )
    return p, trigger, train_x, train_y


def test_wanet_noise_mode_adds_cross_images_with_true_labels():
    p, trigger, train_x, train_y = wanet_poison(rate=0.1, cross_ratio=2)
    test_x = torch.randint(0, 256, (8, 1, 8, 8), generator=generator(1, "images"), dtype=torch.uint8)
    assert p.num_poisoned == 4 and p.num_cover == 8 and len(p.indices) == 12
    assert torch.equal(p.indices, p.indices.sort().values) and len(p.indices.unique()) == 12
    is_cross = torch.isin(p.indices, p.cover_indices)
    assert is_cross.sum() == 8
    poisoned = p.indices[~is_cross]
    assert (train_y[poisoned] != 0).all() and (p.labels[~is_cross] == 0).all()
    assert torch.equal(p.labels[is_cross], train_y[p.cover_indices]), "cross images keep their labels"
    assert torch.equal(p.images[~is_cross], trigger(train_x[poisoned], generator(0, "unused")))
    warped = trigger(train_x[p.cover_indices], generator(0, "unused"))
    assert not torch.equal(p.images[is_cross], warped), "cross images carry extra noise"
    assert torch.equal(p.images[is_cross], trigger.cross(train_x[p.cover_indices], generator(0, "trigger-cross")))
    assert p.test_indices.tolist() == [1, 2, 3, 5, 6, 7]
    assert torch.equal(p.test_images, trigger(test_x[p.test_indices], generator(0, "unused"))), "no noise at test"
    again = wanet_poison(rate=0.1, cross_ratio=2)[0]
    assert torch.equal(again.indices, p.indices) and torch.equal(again.images, p.images)


def test_wanet_cross_ratio_rounds_and_without_noise_mode_adds_none():
    assert wanet_poison(rate=0.1, cross_ratio=0.6)[0].num_cover == 2  # round(0.6 x 4) = 2
    p = wanet_poison(rate=0.1, noise_mode=False)[0]
    assert p.num_poisoned == 4 and p.num_cover == 0 and len(p.cover_indices) == 0


def test_wanet_too_many_cross_images():
    with pytest.raises(
        ConfigError,
        match=r"triggers\.wanet\.cross_ratio: 2 x 16 poisoned asks for 32 cross images "
        r"but only 24 training images are unpoisoned",
    ):
        wanet_poison(rate=0.4, cross_ratio=2)


@pytest.mark.parametrize(
    "strategy, source", [("all-to-one", None), ("one-to-one", 1), ("all-to-all", None), ("clean-label", None)]
)
def test_the_check_before_download_counts_eligible_images_as_poisoning_does(strategy, source):
    """One rule, the strategy's train_mask: the check stage's count from class counts and the poison stage's count
    on the labels agree (the check once kept its own table per strategy)."""
    from backdoor.poisoning import build_strategy, eligible_count

    labels = torch.tensor([0] * 7 + [1] * 5 + [2] * 9 + [3] * 3)
    built = build_strategy(strategy, 0, source, 4)
    assert eligible_count(built, (7, 5, 9, 3)) == int(built.train_mask(labels).sum())
