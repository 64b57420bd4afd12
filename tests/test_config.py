"""Every parameter is validated before any work, one line naming it and what is valid.

The suite applies each bad value the way ``dvc exp run -S key=value`` does (the value parsed as YAML,
written at its dotted key) and runs the check stage's entry point, ``backdoor.checks.validate_params``;
tests/test_e2e.py sends a sample through the real ``dvc exp run -S``.
"""

import copy
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from backdoor.checks import validate_params
from backdoor.defence_settings import DefenceExperiment, FinetuneConfig
from backdoor.errors import ConfigError
from backdoor.naming import parse_cell
from backdoor.params import read_params

ROOT = Path(__file__).resolve().parents[1]
PARAMS = read_params(ROOT / "params.yaml")
POOL = PARAMS["train"]["subset"] or 60_000  # the focus experiment's training pool (all of Fashion-MNIST's by default)
CLEAN = round(PARAMS["finetune"]["clean_size"] * POOL)


def with_overrides(*pairs: str) -> dict:
    """params.yaml with ``key=value`` overrides, as ``dvc exp run -S`` writes them (YAML values)."""
    params = copy.deepcopy(PARAMS)
    for pair in pairs:
        key, _, value = pair.partition("=")
        *parents, leaf = key.split(".")
        node = params
        for part in parents:
            node = node[part]
        node[leaf] = yaml.safe_load(value)
    return params


BAD = [
    # names
    (
        "trigger=chekcer",
        "trigger: unknown value 'chekcer'; valid choices: adaptive-blend, adaptive-patch, art-pattern, blend, checker, "
        "four-corner, noise, sig, square, wanet",
    ),
    ("trigger=''", "trigger: must be a non-empty name, got ''"),
    ("trigger=3", "trigger: must be a non-empty name, got 3"),
    (
        "dataset=mnist",
        "dataset: unknown value 'mnist'; valid choices: cifar10, fashion-mnist, flowers, flowers102, folder:<path>",
    ),
    ("dataset='folder:'", "dataset: folder: needs a path"),
    ("dataset=folder:", "dataset: must be a non-empty name, got {'folder': None}"),  # YAML reads a mapping
    ("dataset=folder:/no/such/tree", "dataset: 'folder:/no/such/tree': folder /no/such/tree does not exist"),
    ("arch=resnet-9000", "arch: unknown value 'resnet-9000'; valid choices:"),
    ("strategy=some-to-one", "strategy: unknown value 'some-to-one'; valid choices: all-to-all, all-to-one"),
    ("strategy=one-to-one", "source: one-to-one needs a source class"),
    ("source=3", "source: only used by one-to-one; set it to null for strategy all-to-one (got 3)"),
    ("regularizer=dropout", "regularizer: unknown value 'dropout'; valid choices: contrastive, logit-squeeze"),
    ("trigger_location=middle", "trigger_location: unknown value 'middle'; valid choices: bottom-right"),
    # numbers: types, ranges, NaN and inf, lists for scalars
    ("target=10", "target: class 10 is outside this dataset's classes 0..9"),
    ("target=-1", "target: must be an integer in [0, inf), got -1"),
    ("target=1.5", "target: must be an integer in [0, inf), got 1.5"),
    ("poison_rate=2", "poison_rate: must be a number in [0, 1], got 2"),
    ("poison_rate=-0.1", "poison_rate: must be a number in [0, 1], got -0.1"),
    ("poison_rate=.nan", "poison_rate: must be a number in [0, 1], got nan"),
    ("poison_rate=.inf", "poison_rate: must be a number in [0, 1], got inf"),
    ("poison_rate=half", "poison_rate: must be a number in [0, 1], got 'half'"),
    ("poison_rate=[0.1]", "poison_rate: must be a number in [0, 1], got [0.1]"),
    ("poison_rate=true", "poison_rate: must be a number in [0, 1], got True"),
    ("poison_rate=1", "poison_rate: 1 asks for 60000 poisoned images but only 54000 training images are eligible"),
    ("trigger_size=40", "trigger_size: 40 px is larger than the 28x28 image"),
    ("trigger_size=0", "trigger_size: must be an integer in [1, inf), got 0"),
    ("seed=-1", "seed: must be an integer in [0, inf), got -1"),
    ("seed=abc", "seed: must be an integer in [0, inf), got 'abc'"),
    ("image_size=64", "image_size: fashion-mnist is stored at its native 28 px, got 64"),
    ("image_size=0", "image_size: must be an integer in [1, inf), got 0"),
    # training and fine-tuning settings
    ("train.lr=abc", "train.lr: must be a number in (0, inf), got 'abc'"),
    ("train.lr=0", "train.lr: must be a number in (0, inf), got 0"),
    ("train.lr=.nan", "train.lr: must be a number in (0, inf), got nan"),
    ("train.momentum=2", "train.momentum: must be a number in [0, 1), got 2"),
    ("train.momentum=1", "train.momentum: must be a number in [0, 1), got 1"),
    ("train.epochs=0", "train.epochs: must be an integer in [1, inf), got 0"),
    ("train.epochs=2.5", "train.epochs: must be an integer in [1, inf), got 2.5"),
    ("train.batch_size=0", "train.batch_size: must be an integer in [1, inf), got 0"),
    ("train.batch_size=100000", f"train.batch_size: 100000 is more than the {POOL} training images"),
    ("train.warmup_epochs=10", "train.warmup_epochs: must be a number in [0, 3], got 10"),
    ("train.label_smoothing=1", "train.label_smoothing: must be a number in [0, 1), got 1"),
    ("train.weight_decay=-1", "train.weight_decay: must be a number in [0, inf), got -1"),
    ("train.crop_padding=-2", "train.crop_padding: must be an integer in [0, inf), got -2"),
    ("train.flip=maybe", "train.flip: must be true or false, got 'maybe'"),
    ("train.subset=0", "train.subset: must be an integer in [1, inf), got 0"),
    ("train.subset=70000", "train.subset: 70000 is more than the 60000 training images"),
    ("train.unknown_key=1", "train.unknown_key: unknown setting; valid keys: batch_size, compile, crop_padding"),
    ("train=3", "train: must be a mapping of settings, got 3"),
    ("finetune.clean_size=0", "finetune.clean_size: must be a number in (0, inf), got 0"),
    (
        "finetune.clean_size=0.99",
        f"finetune.clean_size: asks for {round(0.99 * POOL)} clean images but only "
        f"{POOL - round(PARAMS['poison_rate'] * POOL)} of the {POOL} training images are unpoisoned",
    ),
    ("finetune.clean_size=2.5", "finetune.clean_size: 1 or more means a number of images and must be whole, got 2.5"),
    ("finetune.epochs=-1", "finetune.epochs: must be an integer in [0, inf), got -1"),
    ("finetune.batch_size=5000", f"finetune.batch_size: 5000 is more than the {CLEAN} clean images"),
    # method settings, used by the focus experiment or not
    ("triggers.blend.alpha=0", "triggers.blend.alpha: must be a number in (0, 1], got 0"),
    ("triggers.blend.alpha=abc", "triggers.blend.alpha: must be a number in (0, 1], got 'abc'"),
    ("triggers.sig.amplitude=300", "triggers.sig.amplitude: must be a number in (0, 255], got 300"),
    ("triggers.wanet.noise_mode=maybe", "triggers.wanet.noise_mode: must be true or false, got 'maybe'"),
    ("triggers.wanet.grid_size=0", "triggers.wanet.grid_size: must be an integer in [1, inf), got 0"),
    ("triggers.blend.beta=1", "triggers.blend.beta: unknown setting; valid keys: alpha"),
    ("triggers.art-pattern.distance=30", "triggers.art-pattern.distance: must be an integer in [1, 26], got 30"),
    (
        "triggers.stamp={}",
        "triggers: unknown value 'stamp'; valid choices: adaptive-blend, adaptive-patch, art-pattern",
    ),
    ("regularizers.snnl.temperature=0", "regularizers.snnl.temperature: must be a number in (0, inf), got 0"),
    ("regularizers.snnl.factor=abc", "regularizers.snnl.factor: must be a number in (-inf, inf), got 'abc'"),
    ("regularizers.snnl.optimize_temperature=2", "regularizers.snnl.optimize_temperature: must be true or false"),
    (
        "regularizers.manifold-mixup.loss=mse",
        "regularizers.manifold-mixup.loss: unknown value 'mse'; valid choices: bce, ce",
    ),
    ("regularizers.contrastive.margin=-1", "regularizers.contrastive.margin: must be a number in (0, inf), got -1"),
    # the grid
    ("grid.trigger=[checker, chekcer]", "grid.trigger: value 'chekcer' is invalid: trigger: unknown value 'chekcer'"),
    ("grid.poison_rate=[]", "grid.poison_rate: must be a non-empty list, got []"),
    ("grid.seed=0", "grid.seed: must be a non-empty list, got 0"),
    ("grid.seed=[0, 0]", "grid.seed: duplicated value(s) 0"),
    (
        "grid.ft_lr=[0.01, abc]",
        "grid.ft_lr: value 'abc' is invalid: ft_lr: must be a number in (0, inf) or a multiple of the training run's "
        "peak lr written as '<m>x'",
    ),
    ("grid.ft_clean_size=[2.5]", "grid.ft_clean_size: value 2.5 is invalid: ft_clean_size: 1 or more means a number"),
    ("grid.settings.train.lr=abc", "grid.settings.train.lr: must be a number in (0, inf), got 'abc'"),
    ("grid.settings.train.momentum=2", "grid.settings.train.momentum: must be a number in [0, 1), got 2"),
    ("grid.settings.target=12", "grid.dataset: value 'fashion-mnist' is invalid: target: class 12 is outside"),
    ("grid.settings.finetune.lr=0.1", "grid.settings.finetune.lr: set by the grid axis grid.ft_lr (a list)"),
    ("grid.settings.colour=red", "grid.settings.colour: unknown setting; valid keys: finetune, image_size"),
    ("grid.shards=0", "grid.shards: must be an integer in [1, inf), got 0"),
    ("grid.detectors=[spectral, magic]", "grid.detectors: unknown value 'magic'; valid choices: activation-clustering"),
    ("grid.detectors=spectral", "grid.detectors: must be a list of detector names (empty for none), got 'spectral'"),
    ("detectors.strip.alpha=1", "detectors.strip.alpha: must be a number in (0, 1), got 1"),
    ("detectors.strip.num_blends=1", "detectors.strip.num_blends: must be an integer in [2, inf), got 1"),
    ("detectors.spectral.expected_rate=2", "detectors.spectral.expected_rate: must be a number in [0, 1], got 2"),
    ("detectors.neural-cleanse.lambda=1", "detectors.neural-cleanse.lambda: unknown setting; valid keys:"),
]


@pytest.mark.parametrize("pair, message", BAD, ids=[pair for pair, _ in BAD])
def test_bad_value_fails_with_one_line_naming_it(pair, message):
    with pytest.raises(ConfigError) as err:
        validate_params(with_overrides(pair))
    text = str(err.value)
    assert text.startswith(message), text
    assert "\n" not in text


def test_the_suite_is_large_and_the_defaults_pass():
    assert len(BAD) >= 40
    cells = validate_params(PARAMS)
    assert len(cells) == 2 * 2  # the default grid: checker and square at rates 0 and 0.05


@pytest.mark.parametrize(
    "pairs, message",
    [
        (("trigger=blend", "trigger_location=random"), "trigger_location: random is only for patch triggers"),
        (("strategy=one-to-one", "source=0"), "source: must differ from target for one-to-one, both are 0"),
        (
            ("train.subset=1000", "train.batch_size=2000"),
            "train.batch_size: 2000 is more than the 1000 training images",
        ),
        (
            ("train.subset=null", "poison_rate=1"),
            "poison_rate: 1 asks for 60000 poisoned images but only 54000 training images are eligible",
        ),
    ],
)
def test_impossible_combinations(pairs, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        validate_params(with_overrides(*pairs))


def test_a_stale_plan_is_refused():
    plan = {"cells": [{"name": "some-other-grid"}]}
    with pytest.raises(ConfigError, match=r"grid/ is out of date with params.yaml .*: run `make grid`"):
        validate_params(PARAMS, plan, {})


def test_grid_cell_uses_grid_settings_and_its_fine_tuning_axes_not_focus_scalars():
    params = copy.deepcopy(PARAMS)
    params["trigger_size"] = 5
    params["grid"]["settings"]["trigger_size"] = 4
    exp = DefenceExperiment(
        params,
        parse_cell(
            ["dataset=fashion-mnist", "trigger=square", "poison_rate=0.1", "seed=1", "ft_lr=0.05", "ft_clean_size=300"]
        ),
    )
    assert (exp.trigger_size, exp.trigger, exp.poison_rate, exp.seed, exp.arch) == (4, "square", 0.1, 1, None)
    assert (exp.finetune.lr, exp.finetune.clean_size) == (0.05, 300)
    assert exp.train.subset == params["grid"]["settings"]["train"]["subset"] != params["train"]["subset"]


def test_clean_size_is_a_fraction_of_the_pool_or_a_count():
    assert FinetuneConfig(clean_size=0.05).clean_count(20000) == 1000
    assert FinetuneConfig(clean_size=0.015).clean_count(1000) == 15
    assert FinetuneConfig(clean_size=300).clean_count(20000) == 300
    assert FinetuneConfig(clean_size=1).clean_count(20000) == 1  # 1 is a count, not 100 %


def test_parse_cell_rejects_unknown_axis():
    with pytest.raises(ConfigError, match="--cell: expected AXIS=VALUE"):
        parse_cell(["colour=red"])


def test_focus_experiment_reads_each_scalar():
    exp = DefenceExperiment(with_overrides("trigger=square", "poison_rate=0.2", "seed=7", "train.lr=0.3"))
    assert (exp.trigger, exp.poison_rate, exp.seed, exp.train.lr) == ("square", 0.2, 7, 0.3)


@pytest.mark.parametrize("section", ["triggers", "regularizers", "detectors"])
def test_a_missing_methods_section_is_refused_at_the_check(section):
    params = {key: value for key, value in PARAMS.items() if key != section}
    with pytest.raises(ConfigError, match=f"^{section}: missing section"):
        validate_params(params)


@pytest.mark.parametrize("preset", sorted(p.stem for p in (Path(__file__).parents[1] / "presets").glob("*.yaml")))
def test_every_preset_is_a_short_overlay_that_merges_into_valid_params(preset):
    from backdoor.presets import read_overlay
    from tests.conftest import preset_params_as_originals

    root = Path(__file__).parents[1]
    assert len((root / "presets" / f"{preset}.yaml").read_text().splitlines()) <= 60
    overlay = read_overlay(preset, root)
    assert overlay and all(key in PARAMS for key in overlay)  # only keys it changes
    validate_params(preset_params_as_originals(preset))


def test_a_preset_lays_its_keys_on_params_yaml_keeping_its_comments(tmp_path):
    from backdoor.presets import apply_preset

    root = Path(__file__).parents[1]
    (tmp_path / "presets").mkdir()
    (tmp_path / "params.yaml").write_text((root / "params.yaml").read_text())
    (tmp_path / "presets" / "mine.yaml").write_text("trigger: blend\ngrid:\n  seed:\n    - 0\n    - 3\n")
    apply_preset("mine", tmp_path)
    text = (tmp_path / "params.yaml").read_text()
    params = read_params(tmp_path / "params.yaml")
    assert params["trigger"] == "blend" and params["grid"]["seed"] == [0, 3] and params["arch"] == PARAMS["arch"]
    assert "# adaptive-blend | adaptive-patch | art-pattern" in text and "    - 3" in text  # comments kept, block lists
    (tmp_path / "presets" / "typo.yaml").write_text("trigerr: blend\n")
    with pytest.raises(ConfigError, match="preset: trigerr is not a key of params.yaml"):
        apply_preset("typo", tmp_path)
    with pytest.raises(ConfigError, match="PRESET: no .*nothing.yaml; valid choices: mine, typo"):
        apply_preset("nothing", tmp_path)


def test_a_preset_restricted_to_some_of_its_seeds_runs_those_only_and_refuses_another(tmp_path):
    from backdoor.presets import apply_preset

    root = Path(__file__).parents[1]
    (tmp_path / "presets").mkdir()
    default = (root / "params.yaml").read_text()
    (tmp_path / "params.yaml").write_text(default)
    (tmp_path / "presets" / "mine.yaml").write_text("trigger: blend\ngrid:\n  seed:\n    - 0\n    - 3\n")
    apply_preset("mine", tmp_path, seeds=[3])
    params = read_params(tmp_path / "params.yaml")
    assert params["grid"]["seed"] == [3] and params["trigger"] == "blend"
    assert "seeds 3 only" in (tmp_path / "params.yaml").read_text().splitlines()[0]
    (tmp_path / "params.yaml").write_text(default)
    refused = r"SEEDS: \[1\] not in presets/mine.yaml's grid.seed; valid choices: \[0, 3\]"
    with pytest.raises(ConfigError, match=refused):
        apply_preset("mine", tmp_path, seeds=[1, 3])
    assert (tmp_path / "params.yaml").read_text() == default  # nothing written


def test_the_choice_lists_in_params_yaml_and_docs_are_the_registries():
    """tools/parameters_doc.py writes them: a method registered without re-running it fails here."""
    result = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "parameters_doc.py"), "--check"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


def test_the_choice_lists_follow_a_newly_registered_method():
    from backdoor import triggers
    from tools.parameters_doc import choices, params_comments

    triggers.TRIGGERS.add("zigzag", triggers.TRIGGERS.get("checker").factory, patch=True)
    try:
        names = choices()
    finally:
        triggers.TRIGGERS.remove("zigzag")
    assert "zigzag" in names["trigger"]
    text = params_comments((ROOT / "params.yaml").read_text(), names)
    assert (
        "trigger: checker            # adaptive-blend | adaptive-patch | art-pattern | blend | checker | four-corner | "
        "noise | sig | square | wanet | zigzag\n" in text
    )
