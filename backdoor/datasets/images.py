"""Decoding photos into stored tensors: shared by the photo sources (flowers, folder:<path>, flowers102).

Photos are decoded once, at build time: RGB, shorter side resized to ``image_size`` (bicubic,
antialiased), center-cropped to a square. Without an official split, a seeded 80/20 split per class.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import torch

from ..errors import ConfigError
from ..seeding import generator
from .base import Splits

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm")
SPLIT_SEED = 0  # the seeded train/test split of datasets without an official one; changing it changes the data
TEST_FRACTION = 0.2


def load_image(path: Path, size: int) -> np.ndarray:
    """Decode an image as RGB, resize its shorter side to ``size`` (bicubic), center-crop: uint8 (3, size, size)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img = img.convert("RGB")
    except Image.DecompressionBombError as exc:  # not an OSError: PIL's guard against images that fill the memory
        raise ConfigError(f"image {path} is larger than PIL allows ({exc}); shrink it or remove it") from exc
    except (UnidentifiedImageError, OSError) as exc:
        raise ConfigError(f"unreadable image {path}: {exc}") from exc
    width, height = img.size
    scale = size / min(width, height)
    new_w, new_h = max(size, round(width * scale)), max(size, round(height * scale))
    if (new_w, new_h) != (width, height):
        img = img.resize((new_w, new_h), Image.Resampling.BICUBIC, reducing_gap=None)  # antialiased when shrinking
    left, top = (new_w - size) // 2, (new_h - size) // 2
    img = img.crop((left, top, left + size, top + size))
    return np.asarray(img, dtype=np.uint8).transpose(2, 0, 1)


def load_images(paths: list[Path], size: int) -> torch.Tensor:
    out = np.empty((len(paths), 3, size, size), dtype=np.uint8)
    for i, path in enumerate(paths):
        out[i] = load_image(path, size)
    return torch.from_numpy(out)


def _visible_images(folder: Path):
    """Relative posix paths of the image files under ``folder``, skipping hidden files and folders, in walk order."""
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for name in filenames:
            path = os.path.join(dirpath, name)
            if (
                not name.startswith(".")
                and os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS
                and os.path.isfile(path)
            ):
                yield Path(os.path.relpath(path, folder)).as_posix()


def image_files(folder: Path) -> list[Path]:
    """Image files under ``folder`` (recursively), sorted by relative path so the order is filesystem-independent."""
    return [folder / relative for relative in sorted(_visible_images(folder))]


def has_image(folder: Path) -> bool:
    """Whether ``folder`` holds an image file: stops at the first (a dataset check must not list 60,000 files)."""
    return next(_visible_images(folder), None) is not None


def class_folders(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def seeded_split(files_by_class: list[list[Path]], name: str) -> tuple[list[Path], list[int], list[Path], list[int]]:
    """Stratified split: per class, round(TEST_FRACTION x n) files go to test, chosen by a permutation
    seeded with (SPLIT_SEED, dataset name, class index) -- one class's files never shift another's split."""
    train_files, train_labels, test_files, test_labels = [], [], [], []
    for label, files in enumerate(files_by_class):
        n_test = math.floor(TEST_FRACTION * len(files) + 0.5)
        perm = torch.randperm(len(files), generator=generator(SPLIT_SEED, f"test-split:{name}:{label}")).tolist()
        test = set(perm[:n_test])
        for i, path in enumerate(files):
            (test_files if i in test else train_files).append(path)
            (test_labels if i in test else train_labels).append(label)
    return train_files, train_labels, test_files, test_labels


def build_from_files(
    train_files: list[Path], train_labels: list[int], test_files: list[Path], test_labels: list[int], image_size: int
) -> Splits:
    return (
        load_images(train_files, image_size),
        torch.tensor(train_labels, dtype=torch.int64),
        load_images(test_files, image_size),
        torch.tensor(test_labels, dtype=torch.int64),
    )
