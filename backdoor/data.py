"""Datasets: a registry of sources, stored once per split as uint8 (N, C, H, W) + int64 labels.

Every stored file has a sha256 in ``manifest.json`` that each load verifies.
A source is one function that returns the four tensors; registering it is one entry.
"""

from __future__ import annotations

import gzip
import hashlib
import tarfile
import urllib.error
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from .errors import ConfigError, choices_error
from .io import atomic_dir, load_tensors, read_json, save_tensors, write_json

Splits = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]  # train x, y, test x, y


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    num_classes: int
    channels: int
    image_size: int
    classes: tuple[str, ...]
    build: Callable[[Path], Splits] = field(repr=False)


DATASETS: dict[str, DatasetSpec] = {}


def register_dataset(spec: DatasetSpec) -> DatasetSpec:
    DATASETS[spec.name] = spec
    return spec


def dataset_spec(name: str) -> DatasetSpec:
    if name not in DATASETS:
        raise choices_error("dataset", name, sorted(DATASETS))
    return DATASETS[name]


@dataclass
class Split:
    images: torch.Tensor  # uint8 (N, C, H, W)
    labels: torch.Tensor  # int64 (N,)

    def __len__(self) -> int:
        return len(self.labels)


@dataclass
class Dataset:
    name: str
    classes: tuple[str, ...]
    train: Split
    test: Split

    @property
    def num_classes(self) -> int:
        return len(self.classes)


# ---------------------------------------------------------------- storing and loading


def store_dataset(spec: DatasetSpec, splits: Splits, out_dir: str | Path, source: str) -> None:
    """Write train.pt, test.pt and manifest.json into ``out_dir`` atomically."""
    train_x, train_y, test_x, test_y = splits
    _check_split(spec, train_x, train_y, "train")
    _check_split(spec, test_x, test_y, "test")
    with atomic_dir(out_dir) as tmp:
        digests = {
            "train.pt": save_tensors(tmp / "train.pt", {"images": train_x, "labels": train_y}),
            "test.pt": save_tensors(tmp / "test.pt", {"images": test_x, "labels": test_y}),
        }
        write_json(tmp / "manifest.json", {
            "dataset": spec.name,
            "classes": list(spec.classes),
            "shape": list(train_x.shape[1:]),
            "num_train": len(train_y),
            "num_test": len(test_y),
            "source": source,
            "sha256": digests,
        })


def load_dataset(raw_dir: str | Path) -> Dataset:
    """Load a stored dataset, verifying every file against its manifest."""
    raw_dir = Path(raw_dir)
    manifest_path = raw_dir / "manifest.json"
    if not manifest_path.is_file():
        raise ConfigError(f"missing dataset manifest {manifest_path}: run the download stage (dvc repro)")
    manifest = read_json(manifest_path)
    splits = {}
    for split in ("train", "test"):
        tensors = load_tensors(raw_dir / f"{split}.pt", manifest["sha256"][f"{split}.pt"])
        splits[split] = Split(tensors["images"], tensors["labels"])
    return Dataset(manifest["dataset"], tuple(manifest["classes"]), splits["train"], splits["test"])


def _check_split(spec: DatasetSpec, x: torch.Tensor, y: torch.Tensor, split: str) -> None:
    expected = (spec.channels, spec.image_size, spec.image_size)
    if x.dtype != torch.uint8 or tuple(x.shape[1:]) != expected or x.ndim != 4:
        raise ConfigError(f"{spec.name} {split}: expected uint8 images of shape (N, {expected}), got {x.dtype} {tuple(x.shape)}")
    if y.dtype != torch.int64 or len(y) != len(x):
        raise ConfigError(f"{spec.name} {split}: expected {len(x)} int64 labels, got {y.dtype} {tuple(y.shape)}")
    if len(y) and (int(y.min()) < 0 or int(y.max()) >= spec.num_classes):
        raise ConfigError(f"{spec.name} {split}: labels outside 0..{spec.num_classes - 1}")


# ---------------------------------------------------------------- downloads


def md5_file(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def fetch(urls: list[str], dest: Path, md5: str) -> Path:
    """Return ``dest`` if it exists with the right md5, else download it from the first working url."""
    if dest.is_file():
        if md5_file(dest) == md5:
            return dest
        raise ConfigError(f"corrupt download {dest}: md5 differs from {md5}; delete it and re-run")
    from torchvision.datasets.utils import download_url

    errors = []
    for url in urls:
        try:
            download_url(url, str(dest.parent), filename=dest.name, md5=md5)
            if dest.is_file() and md5_file(dest) == md5:
                return dest
        except (urllib.error.URLError, OSError, RuntimeError) as exc:  # offline, refused, bad md5
            errors.append(f"{url}: {exc}")
    raise ConfigError(
        f"could not download {dest.name} (no internet access?); place the file (md5 {md5}) at {dest} and re-run. "
        f"Tried: {'; '.join(errors) or ', '.join(urls)}"
    )


# ---------------------------------------------------------------- Fashion-MNIST (IDX files)

# name -> (md5 of the published .gz, as torchvision checks it; sha256 of the decompressed IDX bytes).
# Debian recompresses the files, so the decompressed sha256 is what identifies the data from either source.
FASHION_MNIST_FILES = {
    "train-images-idx3-ubyte.gz": ("8d4fb7e6c68d591d4c3dfef9ec88bf0d", "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888"),
    "train-labels-idx1-ubyte.gz": ("25c81989df183df01b3e8a0aad5dffbe", "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9"),
    "t10k-images-idx3-ubyte.gz": ("bef4ecab320f06d8554ea6380940ec79", "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b"),
    "t10k-labels-idx1-ubyte.gz": ("bb300cfdad3c16e7a12a480ee83cd310", "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34"),
}
FASHION_MNIST_URLS = ["https://ossci-datasets.s3.amazonaws.com/mnist/fashion/",  # torchvision's mirrors
                      "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"]
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")


def read_idx(path: Path, sha256: str | None = None) -> np.ndarray:
    """Parse an IDX file (optionally gzipped): big-endian magic, dims, then raw uint8 data."""
    raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    if sha256 is not None and hashlib.sha256(raw).hexdigest() != sha256:
        raise ConfigError(f"corrupt file {path}: its content's sha256 differs from the published data")
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise ConfigError(f"{path}: not an unsigned-byte IDX file")
    ndim = raw[3]
    dims = np.frombuffer(raw, dtype=">u4", count=ndim, offset=4).astype(int)
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise ConfigError(f"{path}: truncated IDX file ({data.size} bytes for dims {tuple(dims)})")
    return data.reshape(tuple(dims))


def _fashion_mnist_file(name: str, download_dir: Path) -> Path:
    for folder in (download_dir, DEBIAN_FASHION_MNIST):
        if (folder / name).is_file():
            return folder / name
    return fetch([u + name for u in FASHION_MNIST_URLS], download_dir / name, FASHION_MNIST_FILES[name][0])


def build_fashion_mnist(download_dir: Path) -> Splits:
    """From files in ``download_dir``, else Debian's dataset-fashion-mnist, else a checksummed download."""
    arrays = {name: read_idx(_fashion_mnist_file(name, download_dir), sha)
              for name, (_, sha) in FASHION_MNIST_FILES.items()}
    train_x = torch.from_numpy(arrays["train-images-idx3-ubyte.gz"].copy()).unsqueeze(1)
    test_x = torch.from_numpy(arrays["t10k-images-idx3-ubyte.gz"].copy()).unsqueeze(1)
    train_y = torch.from_numpy(arrays["train-labels-idx1-ubyte.gz"].astype(np.int64))
    test_y = torch.from_numpy(arrays["t10k-labels-idx1-ubyte.gz"].astype(np.int64))
    return train_x, train_y, test_x, test_y


register_dataset(DatasetSpec(
    "fashion-mnist", 10, 1, 28,
    ("t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle-boot"),
    build_fashion_mnist,
))

# ---------------------------------------------------------------- CIFAR-10 (binary version: no pickle)

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"
CIFAR10_MD5 = "c32a1d4ab5d03f1284b67883e8d87530"
CIFAR10_RECORD = 1 + 3 * 32 * 32  # label byte, then R, G, B planes


def read_cifar_bin(path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    raw = np.frombuffer(path.read_bytes(), dtype=np.uint8)
    if raw.size == 0 or raw.size % CIFAR10_RECORD:
        raise ConfigError(f"{path}: not a CIFAR-10 binary batch ({raw.size} bytes is not a multiple of {CIFAR10_RECORD})")
    records = raw.reshape(-1, CIFAR10_RECORD)
    images = torch.from_numpy(records[:, 1:].reshape(-1, 3, 32, 32).copy())
    labels = torch.from_numpy(records[:, 0].astype(np.int64))
    return images, labels


def build_cifar10(download_dir: Path) -> Splits:
    batches = download_dir / "cifar-10-batches-bin"
    if not batches.is_dir():
        archive = fetch([CIFAR10_URL], download_dir / "cifar-10-binary.tar.gz", CIFAR10_MD5)
        with tarfile.open(archive) as tar:
            tar.extractall(download_dir, filter="data")
    train = [read_cifar_bin(batches / f"data_batch_{i}.bin") for i in range(1, 6)]
    test_x, test_y = read_cifar_bin(batches / "test_batch.bin")
    return torch.cat([x for x, _ in train]), torch.cat([y for _, y in train]), test_x, test_y


register_dataset(DatasetSpec(
    "cifar10", 10, 3, 32,
    ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"),
    build_cifar10,
))


def prepare_dataset(name: str, out_dir: str | Path, download_dir: str | Path) -> None:
    """Build a dataset from its source (downloading if needed) and store it checksummed."""
    spec = dataset_spec(name)
    download_dir = Path(download_dir)
    download_dir.mkdir(parents=True, exist_ok=True)
    store_dataset(spec, spec.build(download_dir), out_dir, source=name)
