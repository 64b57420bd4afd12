"""The sources by name: ``dataset_spec(name, image_size)`` and ``prepare_dataset`` (build and store).

Fixed-size sources (fashion-mnist 28 px, cifar10 32 px) are stored at their native size. Photo sources
(flowers, flowers102, ``folder:<path>``) are decoded once, at build time, and stored at ``image_size``
(default 224): shorter side resized to it (bicubic, antialiased), then center-cropped to a square.
A source registers itself with ``register_dataset`` (``base.py``, which the sources import: no module imports
back up); importing the sources, below, registers them.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from ..errors import ConfigError, choices_error
from . import cifar10, fashion_mnist, flowers102, photos  # noqa: F401  (the sources register themselves)
from .base import DATASETS, DEFAULT_IMAGE_SIZE, FOLDER_PREFIX, DatasetSpec, register_dataset, store_dataset

__all__ = ["DATASETS", "DEFAULT_IMAGE_SIZE", "FOLDER_PREFIX", "dataset_spec", "prepare_dataset", "register_dataset"]


def dataset_spec(name: str, image_size: int | None = None) -> DatasetSpec:
    """The spec of ``name`` at ``image_size`` (None: the dataset's default size).

    Resizable datasets (flowers, flowers102, folder:<path>) take any positive size; fixed-size ones
    (fashion-mnist, cifar10) accept only their native size.
    """
    if isinstance(name, str) and name.startswith(FOLDER_PREFIX):
        spec = photos.folder_spec(name)
    elif name not in DATASETS:
        raise choices_error("dataset", name, DATASETS.names() + [f"{FOLDER_PREFIX}<path>"])
    else:
        spec = DATASETS.get(name).factory
    if image_size is None:
        return spec
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1:
        raise ConfigError(f"image_size: must be a positive integer, got {image_size!r}")
    if spec.resizable:
        return replace(spec, image_size=image_size)
    if image_size != spec.image_size:
        raise ConfigError(
            f"image_size: {name} is stored at its native {spec.image_size} px, got {image_size}; "
            f"only photo datasets (flowers, flowers102, {FOLDER_PREFIX}<path>) are resized"
        )
    return spec


def prepare_dataset(name: str, out_dir: str | Path, download_dir: str | Path, image_size: int | None = None) -> None:
    """Build a dataset from its source (downloading if needed) and store it checksummed at ``image_size``."""
    spec = dataset_spec(name, image_size)
    download_dir = Path(download_dir)
    download_dir.mkdir(parents=True, exist_ok=True)
    splits = spec.build_splits(download_dir)
    for split, labels in (("train", splits[1]), ("test", splits[3])):
        if len(labels) == 0:
            raise ConfigError(f"dataset {name}: no {split} images found")
    store_dataset(spec, splits, out_dir, source=name)
