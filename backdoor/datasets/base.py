"""A source's spec, the stored format, and checksummed downloads.

A stored dataset is a folder with ``train.pt`` and ``test.pt`` (uint8 images (N, C, H, W), int64 labels)
and ``manifest.json``, which holds the sha256 of both; every load verifies them.
"""

from __future__ import annotations

import os
import tarfile
import urllib.error
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..errors import ConfigError
from ..files import atomic_dir, file_digest, load_tensors, read_json, save_tensors, scratch_dir, sha256_file, write_json
from ..registry import Registry
from ..seeding import generator

Splits = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]  # train x, y, test x, y


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    num_classes: int
    channels: int
    image_size: int
    classes: tuple[str, ...]
    build: Callable[..., Splits] = field(repr=False)  # build(download_dir), or (download_dir, image_size) if resizable
    resizable: bool = False  # stored at any image_size (photos); image_size above is then the default
    num_train: int | None = None  # training images, when known before building (fixed-size sources)
    class_counts: tuple[int, ...] | None = None  # training images per class, when known before building

    def build_splits(self, download_dir: Path) -> Splits:
        return self.build(download_dir, self.image_size) if self.resizable else self.build(download_dir)


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


DATASETS: Registry[DatasetSpec] = Registry("dataset")  # the sources by name (backdoor.datasets.registry imports them)
FOLDER_PREFIX = "folder:"  # folder:<path> -- any ImageFolder tree, see photos.folder_spec
DEFAULT_IMAGE_SIZE = 224


def register_dataset(spec: DatasetSpec, reference: str = "") -> DatasetSpec:
    """A source's module registers its spec under the spec's name (one line at its end)."""
    return DATASETS.add(spec.name, spec, reference=reference)


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
        write_json(
            tmp / "manifest.json",
            {
                "dataset": spec.name,
                "classes": list(spec.classes),
                "shape": list(train_x.shape[1:]),
                "num_train": len(train_y),
                "num_test": len(test_y),
                "source": source,
                "sha256": digests,
            },
        )


def read_manifest(raw_dir: str | Path) -> dict:
    """A stored dataset's manifest: name, classes, image shape and sizes, without loading the tensors."""
    path = Path(raw_dir) / "manifest.json"
    if not path.is_file():
        raise ConfigError(f"missing dataset manifest {path}: run the download stage (dvc repro)")
    return read_json(path)


def load_dataset(raw_dir: str | Path) -> Dataset:
    """Load a stored dataset, verifying every file against its manifest."""
    manifest = read_manifest(raw_dir)
    splits = {}
    for split in ("train", "test"):
        tensors = load_tensors(Path(raw_dir) / f"{split}.pt", manifest["sha256"][f"{split}.pt"])
        splits[split] = Split(tensors["images"], tensors["labels"])
    return Dataset(manifest["dataset"], tuple(manifest["classes"]), splits["train"], splits["test"])


def _check_split(spec: DatasetSpec, x: torch.Tensor, y: torch.Tensor, split: str) -> None:
    expected = (spec.channels, spec.image_size, spec.image_size)
    if x.dtype != torch.uint8 or tuple(x.shape[1:]) != expected or x.ndim != 4:
        raise ConfigError(
            f"{spec.name} {split}: expected uint8 images of shape (N, {expected}), got {x.dtype} {tuple(x.shape)}"
        )
    if y.dtype != torch.int64 or len(y) != len(x):
        raise ConfigError(f"{spec.name} {split}: expected {len(x)} int64 labels, got {y.dtype} {tuple(y.shape)}")
    if len(y) and (int(y.min()) < 0 or int(y.max()) >= spec.num_classes):
        raise ConfigError(f"{spec.name} {split}: labels outside 0..{spec.num_classes - 1}")


def fetch(urls: list[str], dest: Path, md5: str, sha256: str | None = None) -> Path:
    """``dest`` if it exists with the right md5 (and sha256, if given), else downloaded from the first
    working url and checked the same way."""
    if dest.is_file():
        _check_download(dest, md5, sha256)
        return dest
    from torchvision.datasets.utils import download_url

    errors = []
    for url in urls:
        try:
            download_url(url, str(dest.parent), filename=dest.name, md5=md5)
        except (urllib.error.URLError, OSError, RuntimeError) as exc:  # offline, refused, bad md5
            errors.append(f"{url}: {exc}")
            continue
        if dest.is_file():
            _check_download(dest, md5, sha256)
            return dest
    raise ConfigError(
        f"could not download {dest.name} (no internet access?); place the file (md5 {md5}) at {dest} and re-run. "
        f"Tried: {'; '.join(errors) or ', '.join(urls)}"
    )


def _check_download(path: Path, md5: str, sha256: str | None) -> None:
    if file_digest(path, "md5") != md5:
        raise ConfigError(f"corrupt download {path}: md5 differs from {md5}; delete it and re-run")
    if sha256 is not None and sha256_file(path) != sha256:
        raise ConfigError(f"corrupt download {path}: sha256 differs from {sha256}; delete it and re-run")


def extract_archive(archive: Path, dest_parent: Path, top: str) -> Path:
    """Extract ``archive``, whose members lie under ``top/``, into ``dest_parent`` and return dest_parent/top.

    An existing dest_parent/top is used as is. Extraction goes to a temporary sibling first, so an
    interrupted run never leaves a half-extracted folder that would be taken as complete.
    """
    dest = dest_parent / top
    if dest.is_dir():
        return dest
    with scratch_dir(dest) as tmp:
        try:
            with tarfile.open(archive) as tar:  # any compression; 102flowers.tgz is in fact an uncompressed tar
                tar.extractall(tmp, filter="data")
        except (tarfile.TarError, OSError) as exc:
            raise ConfigError(f"{archive}: not a readable tar archive ({exc}); delete it and re-run") from exc
        if not (tmp / top).is_dir():
            raise ConfigError(f"{archive}: expected a folder {top}/ inside the archive")
        os.replace(tmp / top, dest)
    return dest


def validation_split(data: Dataset, size: int, seed: int) -> Dataset:
    """Train on all but ``size`` seeded training images; the held-out ones play the test set."""
    if not 0 < size < len(data.train):
        raise ConfigError(f"--validation: must be between 1 and {len(data.train) - 1} images, got {size}")
    order = torch.randperm(len(data.train), generator=generator(seed, "validation-split"))
    held, kept = order[:size].sort().values, order[size:].sort().values
    pick = lambda idx: Split(data.train.images[idx], data.train.labels[idx])  # noqa: E731
    return Dataset(data.name, data.classes, pick(kept), pick(held))
