import os

import pytest
import torch

torch.set_num_threads(1)  # tests run beside each other's processes on 2 cores
os.environ.setdefault("DVC_NO_ANALYTICS", "1")


@pytest.fixture
def tiny_images() -> torch.Tensor:
    """8 grey 1x8x8 images with distinct values, and 8 labels 0..3 twice."""
    return torch.arange(8, dtype=torch.uint8).view(8, 1, 1, 1).expand(8, 1, 8, 8).clone() * 10


def make_experiment(**values):
    """A focus experiment from a few values (the rest: a small default), read as the stages read it."""
    from backdoor.defence_settings import DefenceExperiment

    params = {
        "dataset": "fashion-mnist",
        "arch": "small-cnn",
        "trigger": "checker",
        "trigger_size": 3,
        "trigger_location": "bottom-right",
        "strategy": "all-to-one",
        "target": 0,
        "source": None,
        "poison_rate": 0.1,
        "regularizer": "none",
        "seed": 0,
        "train": {},
        "finetune": {},
        **values,
    }
    return DefenceExperiment(params)


# the natural-image presets read copies extracted by `make external-data`; a fresh clone checks them as the originals
EXTERNAL_ORIGINALS = {"folder:data/external/cifar10-jpeg": "cifar10", "folder:data/external/flowers-160": "flowers"}


def preset_params_as_originals(preset: str) -> dict:
    """params.yaml with a preset laid on it, its extracted copies named as the datasets they copy."""
    from pathlib import Path

    from backdoor.presets import preset_params

    params = preset_params(preset, Path(__file__).parents[1])
    params["dataset"] = EXTERNAL_ORIGINALS.get(params["dataset"], params["dataset"])
    params["grid"]["dataset"] = [EXTERNAL_ORIGINALS.get(name, name) for name in params["grid"]["dataset"]]
    return params
