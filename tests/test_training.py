import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from backdoor.augment import random_crop, random_flip
from backdoor.classifier import Classifier, predict
from backdoor.loop import fit, lr_factor
from backdoor.settings import LoopConfig


def tiny_data(n: int = 64):
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, 1, 12, 12), generator=g, dtype=torch.uint8)
    labels = torch.arange(n) % 4
    return images, labels


def train_once(seed: int) -> Classifier:
    images, labels = tiny_data()
    clf = Classifier.create("small-cnn", images, num_classes=4, seed=seed, widths=(4, 8, 8))
    fit(clf, images, labels, LoopConfig(epochs=2, batch_size=16, lr=0.05), seed=seed, progress=False)
    return clf


def test_training_is_deterministic_for_a_seed_on_cpu():
    a, b, c = train_once(3), train_once(3), train_once(4)
    for (name, pa), pb in zip(a.model.state_dict().items(), b.model.state_dict().values()):
        assert torch.equal(pa, pb), name
    assert not all(torch.equal(pa, pc) for pa, pc in zip(a.model.state_dict().values(), c.model.state_dict().values()))


def test_checkpoint_round_trip(tmp_path):
    clf = train_once(0)
    clf.save(tmp_path / "model.pt")
    loaded = Classifier.load(tmp_path / "model.pt")  # torch.load(weights_only=True) inside
    images, _ = tiny_data()
    assert torch.equal(predict(clf, images), predict(loaded, images))
    assert loaded.normalizer == clf.normalizer and loaded.model_kwargs == {"widths": (4, 8, 8)}


def test_epoch_callback_gets_each_epochs_mean_loss():
    images, labels = tiny_data(32)
    clf = Classifier.create("small-cnn", images, num_classes=4, widths=(4, 4, 4))
    batch_losses, seen = [], []

    def recorded(model, x, y):
        loss = torch.nn.functional.cross_entropy(model(x), y)
        batch_losses.append((len(y), loss.item()))
        return loss

    fit(
        clf,
        images,
        labels,
        LoopConfig(epochs=3, batch_size=8),
        seed=0,
        progress=False,
        loss_fn=recorded,
        on_epoch_end=lambda epoch, loss: seen.append((epoch, loss)),
    )
    assert [epoch for epoch, _ in seen] == [1, 2, 3]
    for epoch, loss in seen:  # 4 batches of 8 per epoch: the size-weighted mean of that epoch's batch losses
        batches = batch_losses[4 * (epoch - 1) : 4 * epoch]
        assert loss == pytest.approx(sum(n * value for n, value in batches) / 32, rel=1e-6)


def test_random_crop_takes_a_window_of_the_padded_image():
    images = torch.arange(2 * 1 * 4 * 4, dtype=torch.uint8).view(2, 1, 4, 4)
    g = torch.Generator().manual_seed(0)
    out = random_crop(images, 1, g)
    assert out.shape == images.shape and out.dtype == torch.uint8
    padded = torch.nn.functional.pad(images, (1, 1, 1, 1))
    for i in range(2):
        windows = [padded[i, :, y : y + 4, x : x + 4] for y in range(3) for x in range(3)]
        assert any(torch.equal(out[i], w) for w in windows)
    assert torch.equal(random_crop(images, 0, g), images)


def test_random_flip_mirrors_some_images_exactly():
    images = torch.arange(16 * 3 * 2 * 2, dtype=torch.uint8).view(16, 3, 2, 2)
    out = random_flip(images, torch.Generator().manual_seed(1))
    flipped = [torch.equal(o, i.flip(2)) for o, i in zip(out, images)]
    kept = [torch.equal(o, i) for o, i in zip(out, images)]
    assert all(f or k for f, k in zip(flipped, kept)) and any(flipped) and any(kept)


def test_lr_schedule_warms_up_then_decays_to_zero():
    assert lr_factor(0, 100, 10) == 0.1
    assert lr_factor(9, 100, 10) == 1.0
    assert lr_factor(10, 100, 10) == 1.0
    assert abs(lr_factor(100, 100, 10)) < 1e-12


def test_predict_leaves_the_model_trainable_and_unchanged():
    images, labels = tiny_data(32)
    clf = Classifier.create("small-cnn", images, num_classes=4, widths=(4, 4, 4))
    before = {k: v.clone() for k, v in clf.model.state_dict().items()}
    predicted = predict(clf, images)  # BatchNorm is folded into a copy, not into the model
    assert all(torch.equal(before[k], v) for k, v in clf.model.state_dict().items())
    fit(clf, images, labels, LoopConfig(epochs=1, batch_size=8), seed=0, progress=False)  # fine-tuning after evaluation
    weights = [k for k, v in before.items() if v.is_floating_point()]
    assert any(not torch.equal(before[k], clf.model.state_dict()[k]) for k in weights)  # it trained
    assert torch.equal(predict(clf, images), predict(clf, images)) and predicted.shape == (32,)


def shapes_task(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Four classes of 1x12x12 images: a bright bar in one of four places, plus noise."""
    gen = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 4
    images = torch.randint(0, 60, (n, 1, 12, 12), generator=gen, dtype=torch.uint8)
    for label, (rows, cols) in enumerate(
        [
            (slice(1, 3), slice(1, 9)),
            (slice(8, 10), slice(1, 9)),
            (slice(1, 9), slice(1, 3)),
            (slice(1, 9), slice(6, 8)),
        ]
    ):
        images[labels == label, :, rows, cols] = 200
    return images, labels


def test_a_poisoned_model_learns_the_backdoor_and_its_clean_twin_does_not():
    """The whole attack on a task small enough to train in seconds: 10 % of the images get a 3x3 checker in
    the bottom-right corner and label 0; the poisoned model sends triggered test images to 0, the clean
    model trained on the same images without poison does not, and both classify clean images."""
    from backdoor.metrics import backdoor_metrics
    from backdoor.poisoning import build_strategy, make_poisoned_set
    from backdoor.triggers import build_trigger

    train_x, train_y = shapes_task(800, seed=0)
    test_x, test_y = shapes_task(200, seed=1)
    trigger = build_trigger("checker", (1, 12, 12), size=3)
    poisoned = make_poisoned_set(
        train_x, train_y, test_x, test_y, trigger, build_strategy("all-to-one", 0, None, 4), 0.1, seed=0
    )
    results = {}
    for name, (images, labels) in {
        "poisoned": poisoned.training_set(train_x, train_y),
        "clean": (train_x, train_y),
    }.items():
        clf = Classifier.create("small-cnn", images, num_classes=4, seed=0, widths=(8, 16, 16))
        fit(
            clf,
            images,
            labels,
            LoopConfig(epochs=6, batch_size=32, lr=0.05, flip=False, crop_padding=0),
            seed=0,
            progress=False,
        )
        results[name] = backdoor_metrics(
            predict(clf, test_x),
            test_y,
            predict(clf, poisoned.test_images),
            poisoned.test_labels,
            poisoned.test_targets,
        )
    assert results["poisoned"]["clean_acc"] > 0.9 and results["clean"]["clean_acc"] > 0.9
    assert results["poisoned"]["asr"] > 0.9 > 0.3 > results["clean"]["asr"]


def test_a_diverged_model_scores_nan_not_the_target_class():
    """NaN logits' argmax is class 0: without the check a diverged model would report ASR 1 for target 0."""
    import math

    from backdoor.datasets import Dataset, Split
    from backdoor.evaluation import evaluate
    from backdoor.poisoning import build_strategy, make_poisoned_set
    from backdoor.triggers import build_trigger

    train_x, train_y = shapes_task(40, seed=0)
    test_x, test_y = shapes_task(40, seed=1)
    poisoned = make_poisoned_set(
        train_x,
        train_y,
        test_x,
        test_y,
        build_trigger("checker", (1, 12, 12), size=3),
        build_strategy("all-to-one", 0, None, 4),
        0.1,
        seed=0,
    )
    data = Dataset("shapes", [str(c) for c in range(4)], Split(train_x, train_y), Split(test_x, test_y))
    clf = Classifier.create("small-cnn", train_x, num_classes=4, seed=0, widths=(8, 16, 16))
    assert not math.isnan(evaluate(clf, data, poisoned)["asr"])
    with torch.no_grad():
        clf.model.fc.weight.fill_(math.nan)
    assert (predict(clf, poisoned.test_images) == 0).all()  # what the ASR would have counted
    assert all(math.isnan(v) for v in evaluate(clf, data, poisoned).values())


NUMERICS_PROBE = """
import hashlib, os, sys
import torch
from backdoor import CPU_NUMERICS
from backdoor.classifier import Classifier
from backdoor.settings import LoopConfig
from backdoor.loop import fit
torch.set_num_threads(1)
g = torch.Generator().manual_seed(0)
images = torch.randint(0, 256, (256, 1, 16, 16), dtype=torch.uint8, generator=g)
labels = torch.randint(0, 4, (256,), generator=g)
clf = Classifier.create("small-cnn", images, 4, seed=0)
fit(clf, images, labels, LoopConfig(epochs=1, batch_size=32), seed=0, progress=False)
weights = b"".join(t.numpy().tobytes() for t in clf.model.state_dict().values())
print(hashlib.sha256(weights).hexdigest(), all(os.environ[k] == v for k, v in CPU_NUMERICS.items()))
"""


# The probe's weights under CPU_NUMERICS, measured on an AMD EPYC (AVX2, 2026-12-04) and again on an Intel Xeon
# (2026-12-07, the same bytes) with torch 2.14.1. With
# MKL's AVX2 branch (the earlier pin) they were 6c204c34... there and other bytes on the Intel machines: MKL
# applies that branch on Intel CPUs only. Equal bytes on every x86-64 CPU with AVX2 is what lets a committed
# dvc.lock reproduce on another machine.
PROBE_SHA256 = "a92af33ca0e12b57ae48111afdfa963cf07dafd7e7eea118a70a72ecea991f0d"


def cpu_model() -> str:
    lines = Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []
    return next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), "unknown CPU")


@pytest.fixture(scope="module")
def probe_runs() -> dict[str, list[str]]:
    """The probe's output with the pin exported before Python starts, and with nothing exported (importing
    backdoor sets it): one subprocess each, shared by the tests below."""
    from backdoor import CPU_NUMERICS

    bare = {k: v for k, v in os.environ.items() if k not in CPU_NUMERICS}
    runs = {
        name: subprocess.run(
            [sys.executable, "-c", NUMERICS_PROBE], env=env, capture_output=True, text=True, timeout=120
        )
        for name, env in (("exported", bare | CPU_NUMERICS), ("pinned_by_import", bare))
    }
    assert all(run.returncode == 0 for run in runs.values()), [run.stderr for run in runs.values()]
    return {name: run.stdout.split() for name, run in runs.items()}


@pytest.mark.cpu_bytes
@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"), reason="the pin is for x86-64 kernels")
def test_the_pinned_kernels_give_the_same_bytes_on_every_x86_cpu(probe_runs):
    """One thread, the package's pin: the weights the reference machines got (an AMD EPYC and an Intel Xeon, both
    AVX2). A failure on another CPU is not a bug in what you changed: it means this CPU's kernels round differently,
    so the committed dvc.lock files will not reproduce here bit for bit (results stay valid; `make repro` rewrites
    the lock files with this machine's bytes)."""
    digest = probe_runs["exported"][0]
    assert digest == PROBE_SHA256, (
        f"{cpu_model()}: probe weights {digest[:16]}..., reference {PROBE_SHA256[:16]}...: this CPU rounds "
        "differently from the machines that wrote the committed dvc.lock files, so `make repro` here will rewrite "
        "them (your results are still valid; see docs/performance.md, reproducible locks)"
    )


def test_importing_the_package_pins_the_cpu_kernels_before_torch_computes(probe_runs):
    """The same training with the pinned instruction set exported before Python starts, and with nothing
    exported (importing backdoor sets it): the same weights. Without the pin the second run takes the CPU's
    native kernels (AVX-512 where there is one; MKL's own choice of branch), whose rounding differs: a dvc.lock
    would not reproduce across machines."""
    exported, pinned_by_import = probe_runs["exported"], probe_runs["pinned_by_import"]
    assert exported == pinned_by_import and exported[1] == "True"
