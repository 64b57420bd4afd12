"""Triggers: exact pixels on hand-made images, determinism, validation, and the gallery picture."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from backdoor import triggers as T
from backdoor.errors import ConfigError
from backdoor.gallery import trigger_gallery
from backdoor.seeding import generator
from backdoor.triggers import LOCATIONS, TRIGGERS, PatchTrigger, build_trigger
from backdoor.triggers.blend import BlendTrigger
from backdoor.triggers.sig import AdditiveTrigger, sig_signal
from backdoor.triggers.wanet import WarpTrigger, wanet_grid

torch.set_num_threads(1)

FULL_IMAGE = ("blend", "sig", "wanet", "adaptive-blend")
FIXED_PLACE = ("art-pattern", "four-corner", "adaptive-patch", *FULL_IMAGE)  # no trigger_size, no trigger_location
CORNERS = ("top-left", "top-right", "bottom-left", "bottom-right")


def gen(seed: int = 0) -> torch.Generator:
    return generator(seed, "test")


def zeros(n: int, c: int, h: int, w: int) -> torch.Tensor:
    return torch.zeros((n, c, h, w), dtype=torch.uint8)


def random_images(n: int, shape: tuple[int, int, int], seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (n, *shape), generator=generator(seed, "images"), dtype=torch.uint8)


def corner_slices(location: str, h: int, w: int, s: int) -> tuple[slice, slice]:
    top = 0 if location.startswith("top") else h - s
    left = 0 if location.endswith("left") else w - s
    return slice(top, top + s), slice(left, left + s)


# ---------------------------------------------------------------- every trigger


def test_zoo_is_registered():
    assert set(TRIGGERS) == {
        "checker",
        "art-pattern",
        "square",
        "noise",
        "blend",
        "sig",
        "wanet",
        "four-corner",
        "adaptive-blend",
        "adaptive-patch",
    }
    assert TRIGGERS.names(patch=True) == ["checker", "noise", "square"]
    assert all(TRIGGERS.get(name).reference for name in TRIGGERS), "every trigger names its source"


def test_settings_and_defaults_come_from_the_factory_signature():
    assert TRIGGERS.defaults("wanet") == {"cross_ratio": 2, "grid_size": 4, "noise_mode": False, "strength": 0.5}
    assert TRIGGERS.defaults("checker") == {}
    assert TRIGGERS.where("blend", "alpha") == "triggers.blend.alpha"


@pytest.mark.parametrize("name", sorted(TRIGGERS))
@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32), (3, 224, 224), (3, 7, 11)])
def test_keeps_uint8_shape_and_input_and_is_deterministic(name, shape):
    images = random_images(2, shape)
    before = images.clone()
    outs = [build_trigger(name, shape, seed=3, size=3)(images, gen(1)) for _ in range(2)]
    assert outs[0].dtype == torch.uint8 and outs[0].shape == images.shape
    assert torch.equal(outs[0], outs[1])
    assert torch.equal(images, before), "the input batch must not be modified"
    assert not torch.equal(outs[0], images), "a trigger must change the image"


@pytest.mark.parametrize("name", ["noise", "blend", "wanet"])
def test_seeded_patterns_are_fixed_per_seed_and_differ_across_seeds(name):
    shape = (3, 12, 12)
    images = random_images(3, shape)
    same = [build_trigger(name, shape, seed=5, size=4)(images, gen()) for _ in range(2)]
    other = build_trigger(name, shape, seed=6, size=4)(images, gen())
    assert torch.equal(same[0], same[1])
    assert not torch.equal(same[0], other)


@pytest.mark.parametrize("name", ["checker", "square", "sig"])
def test_unseeded_triggers_do_not_depend_on_the_seed(name):
    shape = (3, 12, 12)
    images = random_images(3, shape)
    assert torch.equal(
        build_trigger(name, shape, seed=1, size=4)(images, gen()),
        build_trigger(name, shape, seed=2, size=4)(images, gen()),
    )


@pytest.mark.parametrize("name", sorted(TRIGGERS))
def test_unknown_setting_names_the_key_and_valid_keys(name):
    with pytest.raises(ConfigError) as err:
        build_trigger(name, (3, 32, 32), size=3, bogus=1)
    message = str(err.value)
    assert f"triggers.{name}.bogus" in message
    valid = {
        "checker": [],
        "art-pattern": ["distance", "pixel_value"],
        "square": ["value"],
        "noise": [],
        "blend": ["alpha"],
        "sig": ["amplitude", "frequency"],
        "wanet": ["strength", "grid_size", "noise_mode", "cross_ratio"],
        "four-corner": ["amplitude"],
        "adaptive-blend": ["train_alpha", "test_alpha", "pieces", "mask_rate", "cover_rate"],
        "adaptive-patch": ["train_alphas", "test_alpha", "cover_rate"],
    }[name]
    if valid:
        assert "valid keys: " + ", ".join(sorted(valid)) in message
    else:
        assert message.endswith("unknown setting; it takes none")


def test_unknown_trigger_and_location():
    with pytest.raises(
        ConfigError,
        match="trigger: unknown value 'nope'; valid choices: adaptive-blend, adaptive-patch, art-pattern, blend, "
        "checker",
    ):
        build_trigger("nope", (1, 28, 28))
    with pytest.raises(ConfigError, match="trigger_location: unknown value 'middle'"):
        build_trigger("checker", (1, 28, 28), location="middle")


@pytest.mark.parametrize("name", FIXED_PLACE)
def test_fixed_place_triggers_reject_random_location(name):
    with pytest.raises(
        ConfigError,
        match=r"trigger_location: random is only for patch triggers "
        r"\(checker, noise, square\); the others have a fixed place",
    ):
        build_trigger(name, (3, 32, 32), location="random")


@pytest.mark.parametrize("name", FIXED_PLACE)
def test_fixed_place_triggers_ignore_size_and_corner(name):
    images = random_images(2, (1, 8, 8))
    outs = [
        build_trigger(name, (1, 8, 8), seed=0, size=size, location=location)(images, gen())
        for size, location in [(3, "bottom-right"), (100, "top-left"), (1, "bottom-left")]
    ]
    assert torch.equal(outs[0], outs[1]) and torch.equal(outs[0], outs[2])


@pytest.mark.parametrize("name", FIXED_PLACE)
def test_fixed_place_triggers_reject_a_batch_of_another_shape(name):
    trigger = build_trigger(name, (1, 8, 8))
    with pytest.raises(ValueError, match="built for images of shape"):
        trigger(zeros(1, 1, 8, 9), gen())


@pytest.mark.parametrize("name", FULL_IMAGE)
def test_full_image_triggers_give_the_same_result_whatever_the_chunking(name, monkeypatch):
    images = random_images(5, (3, 9, 9))
    trigger = build_trigger(name, (3, 9, 9), seed=2)
    whole = trigger(images, gen())
    monkeypatch.setattr(T, "CHUNK", 2)
    assert torch.equal(trigger(images, gen()), whole)


@pytest.mark.parametrize("name", sorted(TRIGGERS))
def test_empty_batch(name):
    out = build_trigger(name, (1, 8, 8), size=2)(zeros(0, 1, 8, 8), gen())
    assert out.shape == (0, 1, 8, 8) and out.dtype == torch.uint8


# ---------------------------------------------------------------- patch triggers


@pytest.mark.parametrize("channels", [1, 3])
def test_art_pattern_sets_exactly_arts_four_pixels(channels):
    """ART's add_pattern_bd with distance 2 on an H x W image: (H-2, W-2), (H-3, W-3), (H-2, W-4), (H-4, W-2)."""
    images = random_images(2, (channels, 9, 12))
    images[:, :, 3:, 5:] = 0  # no chosen pixel is already 255, so a missing one would show
    out = build_trigger("art-pattern", (channels, 9, 12))(images, gen())
    expected = images.clone()
    for row, col in [(7, 10), (6, 9), (7, 8), (5, 10)]:  # 9 and 12 minus (2, 2), (3, 3), (2, 4), (4, 2)
        expected[:, :, row, col] = 255
    assert torch.equal(out, expected)
    changed = (out != images).any(dim=1)
    assert changed.sum().item() == 2 * 4  # four pixels per image, on every channel, nothing else


def test_art_pattern_distance_and_value():
    out = build_trigger("art-pattern", (1, 8, 8), distance=3, pixel_value=9)(zeros(1, 1, 8, 8), gen())
    assert sorted(map(tuple, out[0, 0].nonzero().tolist())) == [(3, 5), (4, 4), (5, 3), (5, 5)]
    assert set(out[out > 0].tolist()) == {9}
    with pytest.raises(ConfigError, match=r"triggers.art-pattern.distance: must be an integer in \[1, 6\], got 7"):
        build_trigger("art-pattern", (1, 8, 8), distance=7)
    with pytest.raises(ConfigError, match=r"triggers.art-pattern.pixel_value: must be an integer in \[0, 255\]"):
        build_trigger("art-pattern", (1, 8, 8), pixel_value=256)


@pytest.mark.parametrize("location", CORNERS)
@pytest.mark.parametrize("channels", [1, 3])
def test_checker_exact_pixels_at_each_corner(location, channels):
    out = build_trigger("checker", (channels, 5, 6), size=3, location=location)(zeros(2, channels, 5, 6), gen())
    expected = zeros(2, channels, 5, 6)
    rows, cols = corner_slices(location, 5, 6, 3)
    expected[:, :, rows, cols] = torch.tensor([[255, 0, 255], [0, 255, 0], [255, 0, 255]], dtype=torch.uint8)
    assert torch.equal(out, expected)


@pytest.mark.parametrize("location", CORNERS)
def test_square_value_over_a_non_blank_image(location):
    images = torch.arange(2 * 3 * 4 * 5, dtype=torch.uint8).reshape(2, 3, 4, 5)
    out = build_trigger("square", (3, 4, 5), size=2, location=location, value=7)(images, gen())
    expected = images.clone()
    rows, cols = corner_slices(location, 4, 5, 2)
    expected[:, :, rows, cols] = 7
    assert torch.equal(out, expected)


def test_square_default_is_white():
    out = build_trigger("square", (1, 3, 3), size=1)(zeros(1, 1, 3, 3), gen())
    assert out[0, 0].tolist() == [[0, 0, 0], [0, 0, 0], [0, 0, 255]]


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("location", CORNERS)
def test_noise_patch_is_its_pattern_at_the_corner(channels, location):
    trigger = build_trigger("noise", (channels, 6, 7), seed=4, size=3, location=location)
    assert trigger.pattern.shape == (channels, 3, 3) and trigger.pattern.dtype == torch.uint8
    images = torch.full((2, channels, 6, 7), 9, dtype=torch.uint8)
    expected = images.clone()
    rows, cols = corner_slices(location, 6, 7, 3)
    expected[:, :, rows, cols] = trigger.pattern
    assert torch.equal(trigger(images, gen()), expected)


def test_noise_pattern_is_seeded_uniform_noise():
    pattern = build_trigger("noise", (3, 32, 32), seed=0, size=16).pattern
    assert torch.equal(pattern, T.random_pattern(0, (3, 16, 16)))
    assert torch.equal(pattern, build_trigger("noise", (3, 32, 32), seed=0, size=16).pattern)
    assert not torch.equal(pattern, build_trigger("noise", (3, 32, 32), seed=1, size=16).pattern)
    assert not torch.equal(pattern[0], pattern[1]), "channels are drawn independently"
    assert pattern.min() < 30 and pattern.max() > 225  # spans the range (768 draws)


@pytest.mark.parametrize("name", ["checker", "square", "noise"])
@pytest.mark.parametrize("channels", [1, 3])
def test_random_location_is_in_bounds_seeded_and_varies(name, channels):
    height, width, size, n = 5, 7, 2, 60
    trigger = build_trigger(name, (channels, height, width), seed=1, size=size, location="random")
    # Paint the patch on two backgrounds: pixels that change on either are exactly the patch.
    images_a = zeros(n, channels, height, width)
    images_b = torch.full((n, channels, height, width), 255, dtype=torch.uint8)
    out_a, out_b = trigger(images_a, gen(8)), trigger(images_b, gen(8))
    assert torch.equal(out_a, trigger(images_a, gen(8)))
    assert not torch.equal(out_a, trigger(images_a, gen(9)))
    changed = ((out_a != images_a) | (out_b != images_b)).any(dim=1)  # (N, H, W)
    positions = set()
    for i in range(n):
        rows, cols = torch.nonzero(changed[i], as_tuple=True)
        top, left = rows.min().item(), cols.min().item()
        assert 0 <= top <= height - size and 0 <= left <= width - size
        assert changed[i].sum() == size * size and changed[i, top : top + size, left : left + size].all()
        patch = out_a[i, :, top : top + size, left : left + size]
        assert torch.equal(patch, trigger.pattern)
        positions.add((top, left))
    assert len(positions) > 5
    tops = {p[0] for p in positions}
    lefts = {p[1] for p in positions}
    assert tops == set(range(height - size + 1)) and lefts == set(range(width - size + 1))


@pytest.mark.parametrize("name", ["checker", "square", "noise"])
def test_patch_larger_than_image(name):
    with pytest.raises(ConfigError, match="trigger_size: 6 px is larger than the 5x8 image"):
        build_trigger(name, (1, 5, 8), size=6)
    with pytest.raises(ConfigError, match="trigger_size: must be a positive integer"):
        build_trigger(name, (1, 5, 8), size=0)


def test_patch_as_large_as_the_image():
    out = build_trigger("square", (1, 4, 4), size=4, location="random")(zeros(3, 1, 4, 4), gen())
    assert (out == 255).all()


@pytest.mark.parametrize("value", [-1, 256, 2.5, True, "white"])
def test_square_value_validation(value):
    with pytest.raises(ConfigError, match="triggers.square.value"):
        build_trigger("square", (1, 8, 8), value=value)


# ---------------------------------------------------------------- blend


def test_blend_exact_pixels_hand_made_pattern():
    pattern = torch.tensor([[[255, 50, 1], [0, 200, 100]]], dtype=torch.uint8)  # (1, 2, 3)
    images = torch.tensor([[[[0, 100, 255], [0, 201, 100]]]], dtype=torch.uint8)
    out = BlendTrigger(pattern, 0.5)(images, gen())
    # 127.5 -> 128 and 128.0, 75.0 -> 75, 0, 200.5 -> 200 (half to even), 100
    assert out.tolist() == [[[[128, 75, 128], [0, 200, 100]]]]
    out = BlendTrigger(pattern, 0.25)(images, gen())
    # 0.75 x + 0.25 p: 63.75, 87.5, 191.5, 0, 200.75, 100
    assert out.tolist() == [[[[64, 88, 192], [0, 201, 100]]]]


@pytest.mark.parametrize("channels", [1, 3])
def test_blend_default_alpha_and_formula(channels):
    trigger = build_trigger("blend", (channels, 6, 5), seed=2)
    assert trigger.alpha == 0.2
    assert trigger.pattern.shape == (channels, 6, 5) and trigger.pattern.dtype == torch.uint8
    assert torch.equal(trigger.pattern, T.random_pattern(2, (channels, 6, 5)))
    images = random_images(4, (channels, 6, 5))
    # 0.8 x + 0.2 p = (4 x + p) / 5 is never a tie, so float64 and the float32 of the trigger agree.
    expected = ((4 * images.long() + trigger.pattern.long()) / 5).round().to(torch.uint8)
    assert torch.equal(trigger(images, gen()), expected)


def test_blend_alpha_one_is_the_pattern():
    trigger = build_trigger("blend", (3, 4, 4), seed=1, alpha=1.0)
    assert torch.equal(trigger(random_images(2, (3, 4, 4)), gen()), trigger.pattern.expand(2, 3, 4, 4))


@pytest.mark.parametrize("alpha", [0, 0.0, -0.1, 1.0001, 2, True, "0.2", None, math.nan])
def test_blend_alpha_outside_zero_one(alpha):
    with pytest.raises(ConfigError, match=r"triggers\.blend\.alpha: must be"):
        build_trigger("blend", (3, 32, 32), alpha=alpha)


# ---------------------------------------------------------------- sig


def test_sig_exact_pixels():
    # W = 4, one period: sin(2 pi j / 4) = 0, 1, 0, -1
    trigger = build_trigger("sig", (3, 2, 4), amplitude=20, frequency=1)
    images = torch.tensor([10, 250], dtype=torch.uint8).reshape(2, 1, 1, 1).expand(2, 3, 2, 4).clone()
    out = trigger(images, gen())
    assert torch.equal(out[0], torch.tensor([10, 30, 10, 0], dtype=torch.uint8).expand(3, 2, 4))
    assert torch.equal(out[1], torch.tensor([250, 255, 250, 230], dtype=torch.uint8).expand(3, 2, 4))


def test_sig_defaults_same_on_every_row_and_channel():
    trigger = build_trigger("sig", (1, 28, 28))
    expected = [round(20 * math.sin(2 * math.pi * j * 6 / 28)) for j in range(28)]
    assert trigger.signal.tolist() == expected
    assert sig_signal(28, 20.0, 6.0).tolist() == expected
    out = trigger(torch.full((1, 1, 28, 28), 128, dtype=torch.uint8), gen())
    assert torch.equal(out[0, 0], (torch.tensor(expected) + 128).to(torch.uint8).expand(28, 28))
    rgb = build_trigger("sig", (3, 5, 28))(torch.full((1, 3, 5, 28), 128, dtype=torch.uint8), gen())
    assert torch.equal(rgb[0], out[0, 0, :1].expand(3, 5, 28))


@pytest.mark.parametrize(
    "key,value",
    [
        ("amplitude", 0),
        ("amplitude", -5),
        ("amplitude", 300),
        ("amplitude", "big"),
        ("frequency", 0),
        ("frequency", -1),
        ("frequency", False),
    ],
)
def test_sig_validation(key, value):
    with pytest.raises(ConfigError, match=rf"triggers\.sig\.{key}: must be"):
        build_trigger("sig", (1, 28, 28), **{key: value})


def test_additive_trigger_saturates():
    trigger = AdditiveTrigger(torch.tensor([-300, 300], dtype=torch.int16), (1, 1, 2))
    assert trigger(torch.tensor([[[[5, 5]]]], dtype=torch.uint8), gen()).tolist() == [[[[0, 255]]]]


# ---------------------------------------------------------------- wanet


def paper_grid(seed: int, size: int, s: float, k: int) -> torch.Tensor:
    """The grid as written in the WaNet authors' code (square images), with our seeded draw."""
    ins = torch.rand((1, 2, k, k), generator=generator(seed, "trigger-pattern")) * 2 - 1
    ins = ins / torch.mean(torch.abs(ins))
    noise_grid = F.interpolate(ins, size=size, mode="bicubic", align_corners=True).permute(0, 2, 3, 1)
    array1d = torch.linspace(-1, 1, steps=size)
    x, y = torch.meshgrid(array1d, array1d, indexing="ij")
    identity_grid = torch.stack((y, x), 2)[None, ...]
    return torch.clamp(identity_grid + s * noise_grid / size, -1, 1)[0]


@pytest.mark.parametrize("size,s,k", [(32, 0.5, 4), (28, 1.0, 8), (9, 0.5, 4)])
def test_wanet_grid_matches_the_papers_code(size, s, k):
    trigger = build_trigger("wanet", (3, size, size), seed=7, strength=s, grid_size=k)
    assert trigger.grid.shape == (size, size, 2) and trigger.grid.dtype == torch.float32
    assert torch.allclose(trigger.grid, paper_grid(7, size, s, k), atol=1e-6)


def test_wanet_grid_is_a_small_displacement_within_bounds():
    grid = wanet_grid(0, 12, 20, 0.5, 4)
    assert grid.shape == (12, 20, 2)
    assert grid.abs().max() <= 1
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, 12), torch.linspace(-1, 1, 20), indexing="ij")
    shift = grid - torch.stack((xs, ys), dim=-1)
    assert shift.abs().max() > 0
    # the field after normalisation is a few units at most; the shift is strength / size times it
    assert shift[..., 0].abs().max() < 10 * 0.5 / 20 and shift[..., 1].abs().max() < 10 * 0.5 / 12


@pytest.mark.parametrize("channels", [1, 3])
def test_wanet_exact_pixels_on_ramps(channels):
    # Bilinear sampling of a linear ramp returns the ramp at the sampled coordinate, so every output
    # pixel is known from the grid: round(10 * ((g + 1) / 2) * (size - 1)).
    h, w = 12, 20
    trigger = build_trigger("wanet", (channels, h, w), seed=3, strength=4.0)
    cols = (torch.arange(w) * 10).to(torch.uint8).expand(1, channels, h, w)
    rows = (torch.arange(h) * 10).to(torch.uint8)[:, None].expand(1, channels, h, w)
    for image, g, n in [(cols, trigger.grid[..., 0], w), (rows, trigger.grid[..., 1], h)]:
        out = trigger(image.clone(), gen())
        exact = 10 * (g.double() + 1) / 2 * (n - 1)
        assert (out[0].double() - exact).abs().max() <= 0.5 + 1e-3
        assert (out[0] == out[0, :1]).all(), "the same warp in every channel"
        assert not torch.equal(out, image)


def test_wanet_constant_image_is_unchanged_and_tiny_strength_is_identity():
    trigger = build_trigger("wanet", (3, 16, 16), seed=0)
    flat = torch.full((2, 3, 16, 16), 77, dtype=torch.uint8)
    assert torch.equal(trigger(flat, gen()), flat)
    images = random_images(2, (3, 16, 16))
    assert torch.equal(build_trigger("wanet", (3, 16, 16), strength=1e-9)(images, gen()), images)


def test_wanet_noise_mode_and_cross_images():
    shape = (3, 10, 10)
    plain = build_trigger("wanet", shape, seed=1)
    assert plain.cross_ratio == 0.0 and plain.noise_mode is False
    trigger = build_trigger("wanet", shape, seed=1, noise_mode=True, cross_ratio=1.5)
    assert trigger.cross_ratio == 1.5 and torch.equal(trigger.grid, plain.grid)
    images = random_images(4, shape)
    warped = trigger(images, gen())
    assert torch.equal(warped, plain(images, gen())), "noise mode does not change the trigger itself"
    cross = trigger.cross(images, gen(2))
    assert cross.dtype == torch.uint8 and cross.shape == images.shape
    assert torch.equal(cross, trigger.cross(images, gen(2)))
    assert not torch.equal(cross, trigger.cross(images, gen(3)))
    assert not torch.equal(cross, warped)
    assert torch.equal(images, random_images(4, shape))
    assert trigger.cross(zeros(0, *shape), gen()).shape == (0, *shape)


def test_wanet_defaults():
    trigger = build_trigger("wanet", (1, 28, 28))
    assert (trigger.noise_mode, trigger.ratio) == (False, 2.0)
    assert torch.allclose(trigger.grid, paper_grid(0, 28, 0.5, 4), atol=1e-6)


@pytest.mark.parametrize(
    "key,value",
    [
        ("strength", 0),
        ("strength", -1),
        ("grid_size", 0),
        ("grid_size", 2.5),
        ("grid_size", True),
        ("noise_mode", "yes"),
        ("noise_mode", 1),
        ("cross_ratio", 0),
        ("cross_ratio", -2),
    ],
)
def test_wanet_validation(key, value):
    with pytest.raises(ConfigError, match=rf"triggers\.wanet\.{key}: must be"):
        build_trigger("wanet", (3, 32, 32), **{key: value})


def test_warp_trigger_checks_spatial_size():
    trigger = WarpTrigger(wanet_grid(0, 8, 8, 0.5, 4))
    with pytest.raises(ValueError, match="built for images of shape"):
        trigger(zeros(1, 3, 8, 9), gen())


def test_patch_trigger_is_exported():
    assert isinstance(build_trigger("checker", (1, 8, 8)), PatchTrigger)
    assert "random" in LOCATIONS


# ---------------------------------------------------------------- gallery

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("channels", [1, 3])
def test_gallery_writes_a_png(tmp_path, channels):
    import matplotlib.image

    shape = (channels, 12, 12)
    zoo = {name: build_trigger(name, shape, seed=0, size=3) for name in sorted(TRIGGERS)}
    path = tmp_path / "sub" / "gallery.png"
    assert trigger_gallery(random_images(2, shape), zoo, path, seed=0) == path
    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE)
    picture = matplotlib.image.imread(path)
    assert picture.ndim == 3 and picture.shape[0] > picture.shape[1]  # six rows, three columns
    assert [p.name for p in path.parent.iterdir()] == ["gallery.png"], "no temporary file left behind"
    trigger_gallery(random_images(2, shape), zoo, path, seed=0)
    assert path.read_bytes() == data, "same inputs, same picture"


def test_gallery_rejects_bad_input(tmp_path):
    zoo = {"checker": build_trigger("checker", (1, 8, 8))}
    with pytest.raises(ValueError, match="uint8"):
        trigger_gallery(torch.zeros(1, 1, 8, 8), zoo, tmp_path / "g.png")
    with pytest.raises(ValueError, match="1 or 3 channels"):
        trigger_gallery(zeros(1, 2, 8, 8), {"checker": build_trigger("checker", (2, 8, 8))}, tmp_path / "g.png")
    with pytest.raises(ValueError, match="no triggers"):
        trigger_gallery(zeros(1, 1, 8, 8), {}, tmp_path / "g.png")
    assert not (tmp_path / "g.png").exists()
