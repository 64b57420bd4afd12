"""The check stage refuses every bad setting before any other stage runs: each leaf of params.yaml with a value of
the wrong type or range, the settings that only make sense together, and what only the stored data can judge."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
import yaml

from backdoor.checks import validate_params
from backdoor.datasets.base import store_dataset
from backdoor.datasets.registry import dataset_spec
from backdoor.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
NEGATIVE_IS_VALID = {"regularizers.snnl.factor"}  # SNNL's factor: its sign says whether to pull or push apart


def params() -> dict:
    return yaml.safe_load((ROOT / "params.yaml").read_text())


def leaves(node: object, path: tuple = ()):
    if isinstance(node, dict):
        for key, value in node.items():
            yield from leaves(value, (*path, key))
    else:
        yield path, node


def bad_values(key: str, value: object) -> list:
    """Values of the wrong type, and a negative number where the setting takes none."""
    if isinstance(value, bool):
        return ["maybe"]
    if isinstance(value, (int, float)):
        return ["abc"] + ([] if key in NEGATIVE_IS_VALID else [-1])
    if isinstance(value, list):
        return [["zzz-nonsense"]]
    return ["zzz-nonsense"]  # names, and settings that are null by default


def with_value(base: dict, path: tuple, value: object) -> dict:
    changed = copy.deepcopy(base)
    node = changed
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return changed


def test_every_setting_with_a_bad_value_is_refused():
    base = params()
    cases = [(path, bad) for path, value in leaves(base) for bad in bad_values(".".join(map(str, path)), value)]
    assert len(cases) > 200
    accepted = []
    for path, bad in cases:
        try:
            validate_params(with_value(base, path, bad))
        except ConfigError as exc:
            assert "\n" not in str(exc)  # one line
        else:
            accepted.append((".".join(map(str, path)), bad))
    assert accepted == []


@pytest.mark.parametrize(
    "change, message",
    [
        ({"train": {"freeze": "backbone"}}, "train.freeze: backbone needs a trained backbone to freeze"),
        ({"train": {"recipe": "airbench", "freeze": "backbone"}}, "train.freeze: backbone needs a trained backbone"),
        ({"arch": "small-cnn", "train": {"pretrained": True}}, "train.pretrained: small-cnn has no pretrained weights"),
        ({"strategy": "all-to-one", "source": 3}, "source: only used by one-to-one"),
        ({"trigger": "blend", "trigger_location": "random"}, "trigger_location: random is only for patch triggers"),
        ({"models": {"small-cnn": {"depth": 3}}}, "models.small-cnn.depth: unknown setting"),
        ({"recipes": {"airbench": {"lr": -1}}}, "recipes.airbench.lr: must be a number"),
        ({"finetune": {"lr": "tenx"}}, "finetune.lr: must be a number in (0, inf) or a multiple"),
    ],
)
def test_settings_that_only_work_together_are_refused_apart(change, message):
    base = params()
    for key, value in change.items():
        base[key] = {**base[key], **value} if isinstance(value, dict) and isinstance(base.get(key), dict) else value
    with pytest.raises(ConfigError) as error:
        validate_params(base)
    assert str(error.value).startswith(message)


def stored_fashion_mnist(folder: Path, n: int = 600) -> None:
    """A Fashion-MNIST-shaped stored dataset whose classes are 0 and 1 only: under all-to-one (target 0), half the
    training images are eligible, whatever the pool."""
    labels = torch.arange(n) % 2
    images = torch.zeros(n, 1, 28, 28, dtype=torch.uint8)
    store_dataset(
        dataset_spec("fashion-mnist"), (images, labels, images[:20], labels[:20]), folder, source="fashion-mnist"
    )


def test_what_only_the_stored_data_can_judge_is_judged_where_it_is_stored(tmp_path):
    base = params()
    base.update(poison_rate=0.6)  # 60 % of a pool of which half is eligible
    base["train"].update(subset=200, batch_size=32)
    base["finetune"].update(clean_size=20, batch_size=8)
    validate_params(base, focus_raw=tmp_path / "not-stored-yet")  # deferred: the poison stage judges it
    stored_fashion_mnist(tmp_path / "raw")
    with pytest.raises(ConfigError, match=r"poison_rate: 0.6 asks for 120 poisoned images but only \d+ of the 200"):
        validate_params(base, focus_raw=tmp_path / "raw")
    base.update(poison_rate=0.3)
    validate_params(base, focus_raw=tmp_path / "raw")
