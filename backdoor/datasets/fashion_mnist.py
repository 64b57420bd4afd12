"""Fashion-MNIST (Xiao et al. 2017): the original IDX files, from Debian's dataset-fashion-mnist or a download."""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import numpy as np
import torch

from ..errors import ConfigError
from .base import DatasetSpec, Splits, fetch, register_dataset

# name -> (md5 of the published .gz, as torchvision checks it; sha256 of the decompressed IDX bytes).
# Debian recompresses the files, so the decompressed sha256 is what identifies the data from either source.
FILES = {
    "train-images-idx3-ubyte.gz": (
        "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    ),
    "train-labels-idx1-ubyte.gz": (
        "25c81989df183df01b3e8a0aad5dffbe",
        "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    ),
    "t10k-images-idx3-ubyte.gz": (
        "bef4ecab320f06d8554ea6380940ec79",
        "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    ),
    "t10k-labels-idx1-ubyte.gz": (
        "bb300cfdad3c16e7a12a480ee83cd310",
        "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    ),
}
URLS = [
    "https://ossci-datasets.s3.amazonaws.com/mnist/fashion/",  # torchvision's mirrors
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
]
DEBIAN = Path("/usr/share/datasets/fashion-mnist")
CLASSES = ("t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle-boot")


def read_idx(path: Path, sha256: str | None = None) -> np.ndarray:
    """Parse an IDX file (optionally gzipped): big-endian magic, dims, then raw uint8 data."""
    raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    if sha256 is not None and hashlib.sha256(raw).hexdigest() != sha256:
        raise ConfigError(f"corrupt file {path}: its content's sha256 differs from the published data")
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise ConfigError(f"{path}: not an unsigned-byte IDX file")
    ndim = raw[3]
    if len(raw) < 4 + 4 * ndim:
        raise ConfigError(f"{path}: truncated IDX header")
    dims = np.frombuffer(raw, dtype=">u4", count=ndim, offset=4).astype(int)
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise ConfigError(f"{path}: truncated IDX file ({data.size} bytes for dims {tuple(dims)})")
    return data.reshape(tuple(dims))


def _file(name: str, download_dir: Path) -> Path:
    for folder in (download_dir, DEBIAN):
        if (folder / name).is_file():
            return folder / name
    return fetch([u + name for u in URLS], download_dir / name, FILES[name][0])


def build(download_dir: Path) -> Splits:
    """From files in ``download_dir``, else Debian's dataset-fashion-mnist, else a checksummed download."""
    arrays = {name: read_idx(_file(name, download_dir), sha) for name, (_, sha) in FILES.items()}
    train_x = torch.from_numpy(arrays["train-images-idx3-ubyte.gz"].copy()).unsqueeze(1)
    test_x = torch.from_numpy(arrays["t10k-images-idx3-ubyte.gz"].copy()).unsqueeze(1)
    train_y = torch.from_numpy(arrays["train-labels-idx1-ubyte.gz"].astype(np.int64))
    test_y = torch.from_numpy(arrays["t10k-labels-idx1-ubyte.gz"].astype(np.int64))
    return train_x, train_y, test_x, test_y


register_dataset(
    DatasetSpec("fashion-mnist", 10, 1, 28, CLASSES, build, num_train=60000, class_counts=(6000,) * 10),
    reference="Xiao, Rasul and Vollgraf 2017 (zalandoresearch/fashion-mnist; Debian's dataset-fashion-mnist)",
)
