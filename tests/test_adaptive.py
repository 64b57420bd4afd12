"""The attacks aimed at the detectors: two-form triggers and cover images (Qi et al. 2023's adaptive-blend and
adaptive-patch), Turner et al.'s label-consistent poisoning (the PGD perturbation, its stage, how the grid plans it
from the cell's clean baseline) and their four-corner trigger."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from backdoor.classifier import Classifier, training_data_digests
from backdoor.datasets.base import store_dataset
from backdoor.datasets.registry import dataset_spec
from backdoor.errors import ConfigError
from backdoor.files import load_tensors, read_json
from backdoor.grid import grid_cells
from backdoor.perturbation import PGD, PerturbedSet, load_perturbed, loss_and_accuracy, pgd_attack
from backdoor.pipeline.declared import covered, declared_params
from backdoor.pipeline.plan import SETTINGS, grid_stages, perturbed_dir, poisoned_dir, source_cell
from backdoor.poisoned_set import load_poisoned, training_pool
from backdoor.poisoning import build_strategy, make_poisoned_set
from backdoor.seeding import generator
from backdoor.strategies import check_focus_strategy
from backdoor.triggers import build_trigger, random_pattern, to_uint8, train_form
from backdoor.triggers.adaptive_blend import piece_map

torch.set_num_threads(1)

ROOT = Path(__file__).resolve().parents[1]
SHAPE = (3, 16, 16)
K = 4


def gen(seed: int = 0) -> torch.Generator:
    return generator(seed, "test")


def random_images(n: int, shape: tuple[int, int, int] = SHAPE, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (n, *shape), generator=generator(seed, "images"), dtype=torch.uint8)


def data(n: int = 200, shape: tuple[int, int, int] = SHAPE) -> tuple[torch.Tensor, ...]:
    """Random training and test images, labels i mod 4."""
    return random_images(n, shape), torch.arange(n) % K, random_images(20, shape, seed=1), torch.arange(20) % K


# ---------------------------------------------------------------- two forms of one trigger


def test_adaptive_blend_poisons_with_half_its_pieces_at_a_lower_opacity_and_tests_with_the_whole_pattern():
    trigger = build_trigger("adaptive-blend", SHAPE, seed=1)
    images = random_images(6)
    x, pattern = images.float(), random_pattern(1, SHAPE).float()
    assert torch.equal(trigger(images, gen()), to_uint8(x * 0.8 + pattern * 0.2))  # the whole blend at test_alpha
    train = train_form(trigger)(images, gen())
    blended = to_uint8(x + 0.15 * (pattern - x))  # train_alpha
    pieces = piece_map(16, 16, 4)
    masked_sets = []
    for i in range(len(images)):
        untouched = {p for p in range(16) if torch.equal(train[i][:, pieces == p], images[i][:, pieces == p])}
        carried = {p for p in range(16) if torch.equal(train[i][:, pieces == p], blended[i][:, pieces == p])}
        assert len(untouched) == 8 and carried == set(range(16)) - untouched  # 8 of 16 pieces masked out
        masked_sets.append(frozenset(untouched))
    assert len(set(masked_sets)) > 1, "the masked pieces are drawn per image"
    assert torch.equal(train_form(trigger)(images, gen()), train), "the draw comes from the generator"


def test_adaptive_blend_pieces_cover_any_image_size():
    assert piece_map(7, 11, 4).unique().tolist() == list(range(16))
    assert piece_map(32, 32, 4)[7, 8].item() == 0 * 4 + 1 and piece_map(32, 32, 4)[8, 7].item() == 1 * 4 + 0


def test_adaptive_patch_gives_each_quarter_of_the_poisoned_images_one_patch_and_tests_with_two_at_full_opacity():
    shape = (3, 32, 32)
    trigger = build_trigger("adaptive-patch", shape, seed=0)
    images = random_images(8, shape)
    train = train_form(trigger)(images, gen())
    boxes = [  # the reference's boxes at 32 x 32 (rows, columns)
        [(slice(27, 32), slice(27, 32))],
        [(slice(1, 14), slice(18, 31))],
        [(r, c) for r in (slice(0, 3), slice(29, 32)) for c in (slice(0, 3), slice(29, 32))],
        [(slice(21, 29), slice(21, 29))],
    ]
    for i in range(8):
        inside = torch.zeros(32, 32, dtype=torch.bool)
        for rows, columns in boxes[i * 4 // 8]:
            inside[rows, columns] = True
        changed = (train[i] != images[i]).any(dim=0)
        assert changed.any() and not (changed & ~inside).any(), f"image {i} carries patch {i * 4 // 8} alone"
    test = trigger(images, gen())
    changed = (test != images).any(dim=(0, 1))
    bottom_corners = torch.zeros(32, 32, dtype=torch.bool)
    bottom_corners[27:, :5] = bottom_corners[27:, 27:] = True
    x_corners = torch.zeros(32, 32, dtype=torch.bool)
    x_corners[:3, :3] = x_corners[:3, 29:] = x_corners[29:, :3] = x_corners[29:, 29:] = True
    assert not (changed & ~(bottom_corners | x_corners)).any()
    assert torch.equal(test[:, :, 27:29, :5], test[:, :, 27:29, 27:])  # one corner patch in both bottom corners
    assert test[0, 0, :3, :3].div(255).tolist() == [[1, 0, 1], [0, 1, 0], [1, 0, 0]]  # badnet_patch4, stamped
    assert test[0, 0, 29:, 29:].div(255).tolist() == [[0, 0, 1], [0, 1, 0], [1, 0, 1]]
    assert not torch.equal(train, test)


def test_adaptive_patch_opacities_are_checked():
    with pytest.raises(ConfigError, match=r"triggers\.adaptive-patch\.train_alphas: must be a list of 4 opacities"):
        build_trigger("adaptive-patch", SHAPE, train_alphas=[0.5, 0.5])
    with pytest.raises(ConfigError, match=r"triggers\.adaptive-patch\.train_alphas: must be a number in \(0, 1\]"):
        build_trigger("adaptive-patch", SHAPE, train_alphas=[0.5, 0.5, 0.5, 0])
    with pytest.raises(ConfigError, match=r"triggers\.adaptive-blend\.pieces: must be a square"):
        build_trigger("adaptive-blend", SHAPE, pieces=8)


def test_four_corner_is_turners_all_corners_pattern():
    """A few (row, column, sign) entries written out from their poison_attack.py's all-corners list."""
    theirs = [((0, 0), 1), ((0, 1), -1), ((2, 2), 1), ((-1, 0), 1), ((-3, 2), -1), ((-3, 0), 1)]
    theirs += [((0, -1), 1), ((0, -3), -1), ((2, -3), 1), ((-1, -1), 1), ((-1, -3), 1), ((-3, -3), -1)]
    grey = torch.full((1, 1, 32, 32), 128, dtype=torch.uint8)
    stamped = build_trigger("four-corner", (1, 32, 32))(grey, gen())[0, 0]
    faint = build_trigger("four-corner", (1, 32, 32), amplitude=16)(grey, gen())[0, 0]
    for (row, column), sign in theirs:
        assert stamped[row, column] == (255 if sign > 0 else 0)
        assert faint[row, column] == 128 + 16 * sign
    assert int((stamped != 128).sum()) == 36 and stamped[3:-3].eq(128).all()


# ---------------------------------------------------------------- cover images


def test_cover_images_keep_their_labels_carry_the_training_form_and_are_apart_from_the_poisoned():
    train_x, train_y, test_x, test_y = data()
    trigger = build_trigger("adaptive-blend", SHAPE, seed=0, cover_rate=0.05)
    poisoned = make_poisoned_set(
        train_x, train_y, test_x, test_y, trigger, build_strategy("all-to-one", 0, None, K), 0.05, 0
    )
    is_cover = torch.isin(poisoned.indices, poisoned.cover_indices)
    cover, trojans = poisoned.cover_indices, poisoned.indices[~is_cover]
    assert len(cover) == 10 and len(trojans) == 10 and not torch.isin(cover, trojans).any()
    assert poisoned.num_poisoned == 10 and poisoned.num_cover == 10
    assert torch.equal(poisoned.labels[is_cover], train_y[cover]), "cover images keep their labels"
    assert len(set(train_y[cover].tolist())) > 1, "cover images come from every class"
    assert (poisoned.labels[~is_cover] == 0).all() and (train_y[trojans] != 0).all()
    form = train_form(trigger)
    assert torch.equal(poisoned.images[is_cover], form(train_x[cover], generator(0, "trigger-cover")))
    assert torch.equal(poisoned.images[~is_cover], form(train_x[trojans], generator(0, "trigger-train")))
    full = trigger(test_x[poisoned.test_indices], generator(0, "trigger-test"))
    assert torch.equal(poisoned.test_images, full), "the test set carries the whole trigger"
    assert not torch.equal(poisoned.images[~is_cover], trigger(train_x[trojans], generator(0, "trigger-train")))


def test_no_cover_images_without_poison_and_too_many_are_named():
    train_x, train_y, test_x, test_y = data()
    strategy = build_strategy("all-to-one", 0, None, K)
    trigger = build_trigger("adaptive-patch", SHAPE, seed=0)
    assert make_poisoned_set(train_x, train_y, test_x, test_y, trigger, strategy, 0.0, 0).num_cover == 0
    with pytest.raises(ConfigError, match="cover_rate: 0.96 asks for 192 cover images but only 190"):
        greedy = build_trigger("adaptive-patch", SHAPE, seed=0, cover_rate=0.96)
        make_poisoned_set(train_x, train_y, test_x, test_y, greedy, strategy, 0.05, 0)


def test_adaptive_patch_defaults_are_the_references_rates():
    train_x, train_y, test_x, test_y = data(1000, (1, 8, 8))
    trigger = build_trigger("adaptive-patch", (1, 8, 8), seed=0)
    poisoned = make_poisoned_set(
        train_x, train_y, test_x, test_y, trigger, build_strategy("all-to-one", 0, None, K), 0.003, 0
    )
    assert (poisoned.num_poisoned, poisoned.num_cover) == (3, 6)  # 0.3 % poisoned, 0.6 % cover


# ---------------------------------------------------------------- the PGD perturbation


def linear_logits(shape: tuple[int, int, int] = (1, 6, 6)):
    torch.manual_seed(0)
    layer = torch.nn.Linear(shape[0] * shape[1] * shape[2], K)
    return lambda x: layer(x.flatten(1))


def test_pgd_stays_within_its_bound_and_raises_the_clean_models_loss():
    logits, images, labels = linear_logits(), random_images(40, (1, 6, 6)), torch.arange(40) % K
    pgd = PGD(eps=8, steps=10, step_size=2)
    out = pgd_attack(logits, images, labels, pgd, gen())
    assert out.dtype == torch.uint8 and out.shape == images.shape
    assert int((out.int() - images.int()).abs().max()) == 8
    (loss_before, acc_before), (loss_after, acc_after) = (loss_and_accuracy(logits, x, labels) for x in (images, out))
    assert loss_after > loss_before and acc_after <= acc_before
    assert torch.equal(pgd_attack(logits, images, labels, pgd, gen()), out), "seeded"
    assert not torch.equal(pgd_attack(logits, images, labels, pgd, gen(1)), out), "the random start is drawn"
    fixed_start = PGD(eps=2.5, steps=3, step_size=1, random_start=False)
    once = pgd_attack(logits, images, labels, fixed_start, gen())
    assert int((once.int() - images.int()).abs().max()) <= 2  # a fractional bound, whole pixels inside it
    assert torch.equal(pgd_attack(logits, images, labels, fixed_start, gen(1)), once)


def test_perturbed_images_are_looked_up_by_position_and_a_missing_one_is_named():
    perturbed = PerturbedSet(torch.tensor([2, 5, 9]), random_images(3, (1, 6, 6)))
    assert torch.equal(perturbed.images_for(torch.tensor([5, 9])), perturbed.images[1:])
    with pytest.raises(ConfigError, match="lacks images the poison stage draws"):
        perturbed.images_for(torch.tensor([4]))


def test_label_consistent_triggers_the_perturbed_images_and_refuses_without_them():
    train_x, train_y, test_x, test_y = data()
    strategy = build_strategy("label-consistent", 0, None, K)
    assert strategy.perturbation == PGD(eps=8, steps=10, step_size=2, random_start=True)
    positions = (train_y == 0).nonzero().flatten()
    perturbed = PerturbedSet(positions, 255 - train_x[positions])
    trigger = build_trigger("four-corner", SHAPE)
    poisoned = make_poisoned_set(train_x, train_y, test_x, test_y, trigger, strategy, 0.1, 0, perturbed=perturbed)
    assert (train_y[poisoned.indices] == 0).all() and torch.equal(poisoned.labels, train_y[poisoned.indices])
    expected = trigger(255 - train_x[poisoned.indices], generator(0, "trigger-train"))
    assert torch.equal(poisoned.images, expected), "the trigger goes on the perturbed image"
    with pytest.raises(ConfigError, match="needs --perturbed"):
        make_poisoned_set(train_x, train_y, test_x, test_y, trigger, strategy, 0.1, 0)
    assert make_poisoned_set(train_x, train_y, test_x, test_y, trigger, strategy, 0.0, 0).num_poisoned == 0


def test_label_consistent_settings_are_checked_by_name():
    with pytest.raises(ConfigError, match=r"strategies\.label-consistent\.eps: must be a number in \(0, 255\]"):
        build_strategy("label-consistent", 0, None, K, eps=0)
    with pytest.raises(ConfigError, match=r"strategies\.label-consistent\.radius: unknown setting"):
        build_strategy("label-consistent", 0, None, K, radius=8)


def test_the_focus_experiment_refuses_label_consistent_in_one_line():
    with pytest.raises(ConfigError) as err:
        check_focus_strategy("label-consistent")
    assert "use it in the grid" in str(err.value) and "\n" not in str(err.value)
    check_focus_strategy("clean-label")


# ---------------------------------------------------------------- the grid


def grid_params(**lists) -> dict:
    axes = dict(
        dataset=["fashion-mnist"],
        arch=["small-cnn"],
        trigger=["four-corner"],
        strategy=["label-consistent"],
        poison_rate=[0.05, 0.1],
        regularizer=["none"],
        seed=[0],
        train_epochs=[3],
        ft_lr=[0.01],
        ft_clean_size=[0.05],
        detectors=[],
    )
    return {
        "grid": {**axes, **lists, "settings": {"train": {"recipe": "sgd"}}},
        "triggers": {},
        "strategies": {"label-consistent": {"steps": 2}},
    }


def test_the_grid_perturbs_against_the_cells_clean_baseline_and_poisons_from_it():
    params = grid_params(arch=["small-cnn", "resnet6-cpu"])
    stages = grid_stages(grid_cells(params), params)
    for cell in (c for c in grid_cells(params) if c.poison_rate == 0.05):
        baseline = source_cell(cell)
        model = f"models/grid/train/{baseline.train_key}/model.pt"
        assert f"train-{baseline.train_key}" in stages, "the source model is trained though rate 0 is not in the grid"
        perturb = stages[f"perturb-{Path(perturbed_dir(cell)).name}"]
        assert perturb["deps"] == ["data/code/perturb.sha256", model] and f"--model {model}" in perturb["cmd"]
        assert perturb["params"] == [
            {
                SETTINGS: [
                    "grid.settings.target",
                    "grid.settings.source",
                    "grid.settings.train.subset",
                    "grid.settings.threads",
                    "strategies.label-consistent",
                ]
            }
        ]
        poison = stages[f"poison-{Path(poisoned_dir(cell)).name}"]
        assert poisoned_dir(cell).endswith(f"_from_{baseline.train_key}")
        assert f"--perturbed {perturbed_dir(cell)}" in poison["cmd"]
        assert f"{perturbed_dir(cell)}/manifest.json" in poison["deps"]
        assert f"{poisoned_dir(cell)}/manifest.json" in stages[f"train-{cell.train_key}"]["deps"]
    perturbs = [name for name in stages if name.startswith("perturb-")]
    assert len(perturbs) == 2, "one perturbation per clean model, shared by the poison rates"


def test_the_other_strategies_keep_their_stages():
    params = grid_params(strategy=["all-to-one"], poison_rate=[0, 0.05])
    stages = grid_stages(grid_cells(params), params)
    assert not any(name.startswith("perturb-") for name in stages)
    cell = next(c for c in grid_cells(params) if c.poison_rate)
    assert poisoned_dir(cell) == f"data/grid/poisoned/{cell.poison_key}" and f"poison-{cell.poison_key}" in stages


# ---------------------------------------------------------------- the perturb and poison stages


def run_stage(cwd: Path, script: str, *args: str, reads: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", **({"BACKDOOR_PARAMS_READ": str(reads)} if reads else {})}
    command = [sys.executable, str(ROOT / "stages" / script), *args]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_the_perturb_stage_feeds_the_poison_stage(tmp_path):
    spec = dataset_spec("fashion-mnist")
    g = torch.Generator().manual_seed(0)
    train_x = torch.randint(0, 256, (300, 1, 28, 28), generator=g, dtype=torch.uint8)
    train_y, test_y = torch.arange(300) % 10, torch.arange(40) % 10
    raw = tmp_path / "raw"
    store_dataset(spec, (train_x, train_y, train_x[:40].clone(), test_y), raw, "synthetic")
    clf = Classifier.create("small-cnn", train_x, 10, seed=0)
    clf.trained_on = training_data_digests(raw, None)
    clf.save(tmp_path / "model.pt")
    settings = {"threads": 1, "target": 0, "source": None, "trigger_size": 3, "trigger_location": "bottom-right"}
    params = grid_params()
    params["grid"]["settings"] = {**settings, "train": {"subset": 200}}
    (tmp_path / "settings.json").write_text(json.dumps(params))
    cell = "dataset=fashion-mnist arch=small-cnn poison_rate=0 regularizer=none seed=0 train_epochs=3"
    common = ["--params", "settings.json", "--raw", "raw"]
    reads = tmp_path / "reads"
    reads.mkdir()
    done = run_stage(
        tmp_path, "perturb.py", *common, "--cell", *cell.split(), "strategy=label-consistent",
        "--model", "model.pt", "--out", "perturbed", reads=reads,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    perturbed, manifest = load_perturbed(tmp_path / "perturbed", raw)
    pool = training_pool(300, 200, 0)
    assert torch.equal(perturbed.indices, pool[train_y[pool] == 0]) and manifest["pgd"]["steps"] == 2
    assert int((perturbed.images.int() - train_x[perturbed.indices].int()).abs().max()) <= 8
    assert manifest["loss_after"] > manifest["loss_before"]
    planned = grid_stages(grid_cells(params), params)
    declared = declared_params(next(s for n, s in planned.items() if n.startswith("perturb-")))[SETTINGS]
    (record,) = [json.loads(f.read_text()) for f in reads.glob("*.json")]
    assert all(covered(key, declared) for key in record["reads"]), record["reads"]

    attack = ["--cell", "dataset=fashion-mnist", "trigger=four-corner", "strategy=label-consistent"]
    attack += ["poison_rate=0.05", "seed=0"]
    done = run_stage(tmp_path, "poison.py", *common, *attack, "--perturbed", "perturbed", "--out", "poisoned")
    assert done.returncode == 0, done.stderr
    poisoned = load_poisoned(tmp_path / "poisoned", raw)
    trigger = build_trigger("four-corner", (1, 28, 28))
    expected = trigger(perturbed.images_for(poisoned.indices), generator(0, "trigger-train"))
    assert poisoned.num_poisoned == 10 and torch.equal(poisoned.images, expected)
    assert "perturbed_manifest_sha256" in read_json(tmp_path / "poisoned" / "manifest.json")
    refused = run_stage(tmp_path, "poison.py", *common, *attack, "--out", "unperturbed")
    assert refused.returncode == 2 and "needs --perturbed" in refused.stderr and not (tmp_path / "unperturbed").exists()
    assert load_tensors(tmp_path / "perturbed" / "perturbed.pt")["images"].dtype == torch.uint8
