"""Every registered architecture at every dataset shape: one training step, the timm interface, sizes."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from backdoor.classifier import Classifier, predict
from backdoor.errors import ConfigError
from backdoor.loop import fit
from backdoor.models import MODELS, create_model, hidden_layers
from backdoor.models.nasnet import NASNetA
from backdoor.settings import LoopConfig

# every registered family (a new one is tested without editing a list) and one timm model for all of timm's;
# nasnet-large is nasnet-mobile's class at 21x the cost: slow
ARCHS = [pytest.param(arch, marks=pytest.mark.slow) if arch == "nasnet-large" else arch for arch in sorted(MODELS)]
ARCHS.append("resnet18")
SHAPES = [(1, 28), (3, 32)]  # fashion-mnist, cifar10
LARGE = [(3, 224)]  # flowers, flowers102 (the cheaper architectures only: this runs on 2 CPU cores)


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def train_step(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> None:
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    loss = F.cross_entropy(model(x), y)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    assert torch.isfinite(loss)
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters() if p.requires_grad)
    assert any(not torch.equal(before[n], p) for n, p in model.named_parameters())


def check_interface(model: nn.Module, x: torch.Tensor, num_classes: int, reductions: bool = True) -> None:
    """forward == forward_head(forward_features), pre_logits, and every feature_info module hooked
    with the channels (and, if ``reductions``, the stride, +-1 px) that feature_info states."""
    model.eval()
    names = hidden_layers(model)
    assert len(names) >= 3
    seen = {}
    hooks = [
        model.get_submodule(n).register_forward_hook(lambda m, i, o, n=n: seen.__setitem__(n, o.shape)) for n in names
    ]
    with torch.no_grad():
        features = model.forward_features(x)
        logits = model.forward_head(features)
        pooled = model.forward_head(features, pre_logits=True)
        assert torch.allclose(model(x), logits, atol=1e-5)
    for hook in hooks:
        hook.remove()
    assert logits.shape == (len(x), num_classes) and pooled.shape == (len(x), model.num_features)
    assert set(seen) == set(names)
    info = model.feature_info if isinstance(model.feature_info, list) else model.feature_info.info
    for entry in info:
        shape = seen[entry["module"]]
        assert shape[1] == entry["num_chs"], entry
        if reductions:
            assert abs(shape[-1] - x.shape[-1] / entry["reduction"]) <= 1, (entry, shape)


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("chans,size", SHAPES)
def test_training_step_at_dataset_shape(arch, chans, size):
    torch.manual_seed(0)
    model = create_model(arch, num_classes=10, in_chans=chans, image_size=size)
    x, y = torch.randn(2, chans, size, size), torch.tensor([0, 9])
    # timm's resnet feature_info keeps ImageNet strides after the small-image stem (it's only names we use)
    check_interface(model, x, 10, reductions=not arch.startswith("resnet"))
    train_step(model, x, y)


@pytest.mark.parametrize("arch", ["resnet18", "nasnet-mobile"])
@pytest.mark.parametrize("chans,size", LARGE)
def test_training_step_at_224(arch, chans, size):
    torch.manual_seed(0)
    model = create_model(arch, num_classes=102, in_chans=chans, image_size=size)
    x, y = torch.randn(2, chans, size, size), torch.tensor([0, 101])
    check_interface(model, x, 102)
    train_step(model, x, y)


def test_registry_names():
    assert {"small-cnn", "resnet6-cpu", "nasnet-mobile", "nasnet-large"} <= set(MODELS)
    with pytest.raises(ConfigError, match="arch: unknown value 'nasnet-tiny'"):
        create_model("nasnet-tiny", num_classes=10, in_chans=3, image_size=32)


def test_resnet_stem_adapted_to_small_images():
    for arch in ("resnet18", "resnet50"):
        small = create_model(arch, num_classes=10, in_chans=1, image_size=28)
        assert small.conv1.kernel_size == (3, 3) and small.conv1.stride == (1, 1) and small.conv1.in_channels == 1
        assert isinstance(small.maxpool, nn.Identity)
    big = create_model("resnet18", num_classes=10, in_chans=3, image_size=224)
    assert big.conv1.kernel_size == (7, 7) and big.conv1.stride == (2, 2)
    assert isinstance(big.maxpool, nn.MaxPool2d)


@pytest.mark.parametrize("arch", ["small-cnn", "resnet6-cpu"])
def test_block_layers_name_the_stages_shallow_to_deep(arch):
    model = create_model(arch, num_classes=10, in_chans=3, image_size=32)
    assert model.block_layers == ["stages.0", "stages.1", "stages.2"] == hidden_layers(model)
    for name in model.block_layers:
        model.get_submodule(name)


def test_resnet6_cpu_size_shapes_and_flops():
    from torch.utils.flop_counter import FlopCounterMode

    model = create_model("resnet6-cpu", num_classes=10, in_chans=3, image_size=32).eval()
    assert sum(p.numel() for p in model.parameters()) == 390_186
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad(), FlopCounterMode(display=False) as flops:
        features = model.forward_features(x)
    assert features.shape == (2, 128, 4, 4)
    assert round(flops.get_total_flops() / len(x) / 1e6, 1) == 30.1  # the docstring's MFLOPs/image
    assert model.forward_head(features, pre_logits=True).shape == (2, 128)
    assert model.forward_head(features).shape == (2, 10)
    with torch.no_grad():  # flowers at image_size 64: same layers, 8x8 features
        assert model.forward_features(torch.randn(1, 3, 64, 64)).shape == (1, 128, 8, 8)
    with pytest.raises(ConfigError, match="resnet6-cpu has no pretrained weights"):
        create_model("resnet6-cpu", num_classes=10, in_chans=3, image_size=32, pretrained=True)


def test_nasnet_stem_adapted_to_small_images():
    small = create_model("nasnet-mobile", num_classes=10, in_chans=1, image_size=32)
    assert small.conv0.conv.stride == (1, 1) and small.conv0.conv.padding == (1, 1)
    assert small.conv0.conv.in_channels == 1
    assert [e["reduction"] for e in small.feature_info] == [1, 2, 4, 8, 16]
    with torch.no_grad():  # 32 -> 32 (stem conv) -> 16, 8 (stem cells) -> 4, 2 (reduction cells)
        assert small.eval().forward_features(torch.randn(1, 1, 32, 32)).shape == (1, 1056, 2, 2)
    big = create_model("nasnet-mobile", num_classes=10, in_chans=3, image_size=224)
    assert big.conv0.conv.stride == (2, 2) and big.conv0.conv.padding == (0, 0)
    assert [e["reduction"] for e in big.feature_info] == [2, 4, 8, 16, 32]
    with torch.no_grad():  # unadapted, 32 px still gives valid shapes: 32 -> 15 -> 8 -> 4 -> 2 -> 1
        assert big.eval().forward_features(torch.randn(1, 3, 32, 32)).shape == (1, 1056, 1, 1)


def test_nasnet_mobile_size():
    model = create_model("nasnet-mobile", num_classes=1000, in_chans=3, image_size=224)
    params = sum(p.numel() for p in model.parameters())
    assert params == 5_289_978  # Keras NASNetMobile's trainable parameters (its 5,326,716 adds BN statistics)
    assert abs(params - 5.3e6) / 5.3e6 < 0.03
    assert model.num_features == 1056 and model.conv0.conv.out_channels == 32
    assert [n for n in model.layer_names if n.startswith("cell_")] == [f"cell_{i}" for i in range(12)]  # N = 4
    with pytest.raises(ConfigError, match="nasnet-mobile has no pretrained weights"):
        create_model("nasnet-mobile", num_classes=10, in_chans=3, image_size=32, pretrained=True)


def test_nasnet_large_size_and_our_builder_matches_timm():
    large = create_model("nasnet-large", num_classes=1000, in_chans=3, image_size=331)
    assert sum(p.numel() for p in large.parameters()) == 88_753_150  # timm: 88.8M
    ours = NASNetA(1000, 3, cells_per_stage=6, num_features=4032, stem_size=96)  # the Mobile code at Large widths
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in large.state_dict().items()}
    ours.load_state_dict(large.state_dict())
    x = torch.randn(1, 3, 40, 40)
    with torch.no_grad():
        assert torch.allclose(ours.eval()(x), large.eval()(x), atol=1e-5)


def test_nasnet_large_pretrained_offline_is_a_config_error(monkeypatch, tmp_path):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(ConfigError, match="train.pretrained: could not load ImageNet weights for nasnetalarge"):
        create_model("nasnet-large", num_classes=10, in_chans=3, image_size=32, pretrained=True)


def test_nasnet_mobile_through_the_training_loop(tmp_path):
    images = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)
    labels = torch.tensor([0, 1, 2, 3])
    clf = Classifier.create("nasnet-mobile", images, num_classes=4)
    fit(
        clf,
        images,
        labels,
        LoopConfig(epochs=1, batch_size=2, warmup_epochs=0),
        seed=0,
        device=torch.device("cpu"),
        progress=False,
    )
    clf.save(tmp_path / "model.pt")
    loaded = Classifier.load(tmp_path / "model.pt")
    assert torch.equal(
        predict(loaded, images, device=torch.device("cpu")), predict(clf, images, device=torch.device("cpu"))
    )
