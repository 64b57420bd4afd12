"""Every parameter is validated before heavy work, with a message naming it and the valid choices."""

import copy
from pathlib import Path

import pytest

from backdoor.config import cell_experiment, focus_experiment, parse_cell, read_params
from backdoor.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
PARAMS = read_params(ROOT / "params.yaml")


def focus(**changes):
    params = copy.deepcopy(PARAMS)
    for key, value in changes.items():
        section, _, name = key.partition("__")
        if name:
            params[section][name] = value
        else:
            params[key] = value
    return focus_experiment(params)


def test_default_params_are_valid():
    exp = focus()
    assert exp.dataset == "fashion-mnist" and exp.trigger == "checker" and exp.poison_rate == 0.05


@pytest.mark.parametrize("key, value, expected", [
    ("dataset", "mnist", "dataset: unknown value 'mnist'; valid choices: cifar10, fashion-mnist"),
    ("trigger", "chekcer", "trigger: unknown value 'chekcer'; valid choices: blend, checker"),
    ("strategy", "some-to-one", "strategy: unknown value 'some-to-one'; valid choices: all-to-all, all-to-one"),
    ("trigger_location", "middle", "trigger_location: unknown value 'middle'; valid choices: bottom-right"),
    ("regularizer", "dropout", "regularizer: unknown value 'dropout'; valid choices:"),
    ("arch", "resnet-9000", "arch: unknown value 'resnet-9000'; valid choices:"),
])
def test_unknown_names_list_valid_choices(key, value, expected):
    with pytest.raises(ConfigError) as err:
        focus(**{key: value})
    assert str(err.value).startswith(expected)


@pytest.mark.parametrize("rate", [-0.1, 1.5, "half", True])
def test_poison_rate_outside_unit_interval(rate):
    with pytest.raises(ConfigError, match="poison_rate: must be"):
        focus(poison_rate=rate)


@pytest.mark.parametrize("target", [10, -1])
def test_target_outside_classes(target):
    with pytest.raises(ConfigError, match=r"target: class .* outside this dataset's classes 0\.\.9"):
        focus(target=target)


def test_trigger_larger_than_image():
    with pytest.raises(ConfigError, match="trigger_size: 29 px is larger than the 28x28 image"):
        focus(trigger_size=29)


def test_unknown_and_invalid_training_settings():
    with pytest.raises(ConfigError, match="train: unknown key.*epoch;"):
        focus(train__epoch=3)
    with pytest.raises(ConfigError, match="train.lr: must be positive"):
        focus(train__lr=0)
    with pytest.raises(ConfigError, match="finetune.clean_size: must be > 0"):
        focus(finetune__clean_size=0)
    with pytest.raises(ConfigError, match="train.subset: must be a positive"):
        focus(train__subset=0)


def test_missing_key():
    params = copy.deepcopy(PARAMS)
    del params["target"]
    with pytest.raises(ConfigError, match="missing key.*target"):
        focus_experiment(params)


def test_grid_cell_uses_grid_settings_not_focus_scalars():
    params = copy.deepcopy(PARAMS)
    params["trigger_size"] = 5
    params["grid"]["settings"]["trigger_size"] = 4
    exp = cell_experiment(params, parse_cell(["dataset=fashion-mnist", "trigger=square", "poison_rate=0.1", "seed=1"]))
    assert (exp.trigger_size, exp.trigger, exp.poison_rate, exp.seed, exp.arch) == (4, "square", 0.1, 1, None)
    assert exp.train.epochs == params["grid"]["settings"]["train"]["epochs"]


def test_parse_cell_rejects_unknown_axis():
    with pytest.raises(ConfigError, match="--cell: expected AXIS=VALUE"):
        parse_cell(["colour=red"])
