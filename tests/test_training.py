import torch

from backdoor.augment import random_crop, random_flip
from backdoor.classifier import Classifier, predict
from backdoor.config import LoopConfig
from backdoor.loop import fit, lr_factor


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


def test_epoch_callback_sees_every_epoch():
    images, labels = tiny_data(32)
    clf = Classifier.create("small-cnn", images, num_classes=4, widths=(4, 4, 4))
    seen = []
    fit(clf, images, labels, LoopConfig(epochs=3, batch_size=8), seed=0, progress=False,
        on_epoch_end=lambda epoch, loss: seen.append((epoch, loss > 0)))
    assert seen == [(1, True), (2, True), (3, True)]


def test_random_crop_takes_a_window_of_the_padded_image():
    images = torch.arange(2 * 1 * 4 * 4, dtype=torch.uint8).view(2, 1, 4, 4)
    g = torch.Generator().manual_seed(0)
    out = random_crop(images, 1, g)
    assert out.shape == images.shape and out.dtype == torch.uint8
    padded = torch.nn.functional.pad(images, (1, 1, 1, 1))
    for i in range(2):
        windows = [padded[i, :, y:y + 4, x:x + 4] for y in range(3) for x in range(3)]
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
    predict(clf, images)  # BatchNorm is folded into a copy, not into the model
    assert all(torch.equal(before[k], v) for k, v in clf.model.state_dict().items())
    fit(clf, images, labels, LoopConfig(epochs=1, batch_size=8), seed=0, progress=False)  # fine-tuning after evaluation
