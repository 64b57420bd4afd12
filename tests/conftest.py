import os

import pytest
import torch

torch.set_num_threads(1)  # tests run beside each other's processes on 2 cores
os.environ.setdefault("DVC_NO_ANALYTICS", "1")


@pytest.fixture
def tiny_images() -> torch.Tensor:
    """8 grey 1x8x8 images with distinct values, and 8 labels 0..3 twice."""
    return torch.arange(8, dtype=torch.uint8).view(8, 1, 1, 1).expand(8, 1, 8, 8).clone() * 10
