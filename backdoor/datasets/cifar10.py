"""CIFAR-10 (Krizhevsky 2009), the binary version: parsed as bytes, no pickle."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..errors import ConfigError
from .base import DatasetSpec, Splits, extract_archive, fetch, register_dataset

URL = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"
MD5 = "c32a1d4ab5d03f1284b67883e8d87530"
RECORD = 1 + 3 * 32 * 32  # label byte, then R, G, B planes
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def read_batch(path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    raw = np.frombuffer(path.read_bytes(), dtype=np.uint8)
    if raw.size == 0 or raw.size % RECORD:
        raise ConfigError(f"{path}: not a CIFAR-10 binary batch ({raw.size} bytes is not a multiple of {RECORD})")
    records = raw.reshape(-1, RECORD)
    images = torch.from_numpy(records[:, 1:].reshape(-1, 3, 32, 32).copy())
    labels = torch.from_numpy(records[:, 0].astype(np.int64))
    return images, labels


def build(download_dir: Path) -> Splits:
    batches = download_dir / "cifar-10-batches-bin"
    if not batches.is_dir():
        archive = fetch([URL], download_dir / "cifar-10-binary.tar.gz", MD5)
        batches = extract_archive(archive, download_dir, "cifar-10-batches-bin")
    train = [read_batch(batches / f"data_batch_{i}.bin") for i in range(1, 6)]
    test_x, test_y = read_batch(batches / "test_batch.bin")
    return torch.cat([x for x, _ in train]), torch.cat([y for _, y in train]), test_x, test_y


register_dataset(
    DatasetSpec("cifar10", 10, 3, 32, CLASSES, build, num_train=50000, class_counts=(5000,) * 10),
    reference="Krizhevsky 2009, the CIFAR-10 binary release (cs.toronto.edu/~kriz)",
)
