"""Datasets: a registry of sources, stored once per split as uint8 (N, C, H, W) + int64 labels.

Every stored file has a sha256 in ``manifest.json`` that each load verifies.
A source is one function that returns the four tensors; registering it is one entry.

Fixed-size sources (fashion-mnist 28 px, cifar10 32 px) are stored at their native size. Photo
sources (flowers, flowers102, ``folder:<path>``) are decoded once, at build time, and stored at
``image_size`` (default 224): shorter side resized to it (bicubic, antialiased), then center-cropped
to a square. ``dataset_spec(name, image_size)`` returns the spec at the requested size.
"""

from __future__ import annotations

import gzip
import hashlib
import math
import os
import shutil
import struct
import tarfile
import tempfile
import urllib.error
import zlib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from .errors import ConfigError, choices_error
from .io import atomic_dir, load_tensors, read_json, save_tensors, sha256_file, write_json
from .seeding import generator

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

    def build_splits(self, download_dir: Path) -> Splits:
        return self.build(download_dir, self.image_size) if self.resizable else self.build(download_dir)


DATASETS: dict[str, DatasetSpec] = {}
FOLDER_PREFIX = "folder:"  # folder:<path> -- any ImageFolder tree, see folder_spec
DEFAULT_IMAGE_SIZE = 224


def register_dataset(spec: DatasetSpec) -> DatasetSpec:
    DATASETS[spec.name] = spec
    return spec


def dataset_spec(name: str, image_size: int | None = None) -> DatasetSpec:
    """The spec of ``name`` at ``image_size`` (None: the dataset's default size).

    Resizable datasets (flowers, flowers102, folder:<path>) take any positive size; fixed-size ones
    (fashion-mnist, cifar10) accept only their native size.
    """
    if isinstance(name, str) and name.startswith(FOLDER_PREFIX):
        spec = folder_spec(name)
    elif name not in DATASETS:
        raise choices_error("dataset", name, sorted(DATASETS) + [f"{FOLDER_PREFIX}<path>"])
    else:
        spec = DATASETS[name]
    if image_size is None:
        return spec
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1:
        raise ConfigError(f"image_size: must be a positive integer, got {image_size!r}")
    if spec.resizable:
        return replace(spec, image_size=image_size)
    if image_size != spec.image_size:
        raise ConfigError(f"image_size: {name} is stored at its native {spec.image_size} px, got {image_size}; "
                          f"only photo datasets (flowers, flowers102, {FOLDER_PREFIX}<path>) are resized")
    return spec


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


def md5_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def fetch(urls: list[str], dest: Path, md5: str, sha256: str | None = None) -> Path:
    """Return ``dest`` if it exists with the right md5 (and sha256, if given), else download it
    from the first working url."""
    if dest.is_file():
        if md5_file(dest) != md5:
            raise ConfigError(f"corrupt download {dest}: md5 differs from {md5}; delete it and re-run")
        if sha256 is not None and sha256_file(dest) != sha256:
            raise ConfigError(f"corrupt download {dest}: sha256 differs from {sha256}; delete it and re-run")
        return dest
    from torchvision.datasets.utils import download_url

    errors = []
    for url in urls:
        try:
            download_url(url, str(dest.parent), filename=dest.name, md5=md5)
            if dest.is_file() and md5_file(dest) == md5:
                if sha256 is not None and sha256_file(dest) != sha256:
                    raise ConfigError(f"corrupt download {dest}: md5 matches but sha256 differs from {sha256}; "
                                      f"delete it and re-run")
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


# ---------------------------------------------------------------- photos: decode, resize, split

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm")
SPLIT_SEED = 0  # the seeded train/test split of datasets without an official one; changing it changes the data
TEST_FRACTION = 0.2


def load_image(path: Path, size: int) -> np.ndarray:
    """Decode an image as RGB, resize its shorter side to ``size`` (bicubic), center-crop: uint8 (3, size, size)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img = img.convert("RGB")
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


def image_files(folder: Path) -> list[Path]:
    """Image files under ``folder`` (recursively), sorted by relative path so the order is filesystem-independent."""
    files = [p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()
             and not any(part.startswith(".") for part in p.relative_to(folder).parts)]
    return sorted(files, key=lambda p: p.relative_to(folder).as_posix())


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


def build_from_files(train_files: list[Path], train_labels: list[int], test_files: list[Path],
                     test_labels: list[int], image_size: int) -> Splits:
    return (load_images(train_files, image_size), torch.tensor(train_labels, dtype=torch.int64),
            load_images(test_files, image_size), torch.tensor(test_labels, dtype=torch.int64))


def extract_archive(archive: Path, dest_parent: Path, top: str) -> Path:
    """Extract ``archive``, whose members lie under ``top/``, into ``dest_parent`` and return dest_parent/top.

    An existing dest_parent/top is used as is. Extraction goes to a temporary sibling first, so an
    interrupted run never leaves a half-extracted folder that would be taken as complete.
    """
    dest = dest_parent / top
    if dest.is_dir():
        return dest
    dest_parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=dest_parent, prefix=f".{top}.", suffix=".tmp"))
    try:
        try:
            with tarfile.open(archive) as tar:  # any compression; 102flowers.tgz is in fact an uncompressed tar
                tar.extractall(tmp, filter="data")
        except (tarfile.TarError, OSError) as exc:
            raise ConfigError(f"{archive}: not a readable tar archive ({exc}); delete it and re-run") from exc
        if not (tmp / top).is_dir():
            raise ConfigError(f"{archive}: expected a folder {top}/ inside the archive")
        os.replace(tmp / top, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


# ---------------------------------------------------------------- flowers (TensorFlow's flower_photos)

# 3,670 Flickr photos (CC-BY) in five class folders, no official split: a seeded 80/20 stratified split.
# md5 and sha256 of the archive as published (TFDS tf_flowers checksums: 228,813,984 bytes).
FLOWERS_URLS = ["https://storage.googleapis.com/download.tensorflow.org/example_images/flower_photos.tgz",
                "http://download.tensorflow.org/example_images/flower_photos.tgz"]
FLOWERS_MD5 = "6f87fb78e9cc9ab41eff2015b380011d"
FLOWERS_SHA256 = "4c54ace7911aaffe13a365c34f650e71dd5bf1be0a58b464e5a7183e3e595d9c"
FLOWERS_CLASSES = ("daisy", "dandelion", "roses", "sunflowers", "tulips")


def build_flowers(download_dir: Path, image_size: int) -> Splits:
    """From download_dir/flower_photos/ if present, else the checksummed flower_photos.tgz (downloaded if needed)."""
    root = download_dir / "flower_photos"
    if not root.is_dir():
        archive = fetch(FLOWERS_URLS, download_dir / "flower_photos.tgz", FLOWERS_MD5, FLOWERS_SHA256)
        root = extract_archive(archive, download_dir, "flower_photos")
    if tuple(class_folders(root)) != FLOWERS_CLASSES:
        raise ConfigError(f"{root}: expected class folders {', '.join(FLOWERS_CLASSES)}, found "
                          f"{', '.join(class_folders(root)) or 'none'}; delete it and re-run")
    files = [image_files(root / name) for name in FLOWERS_CLASSES]
    return build_from_files(*seeded_split(files, "flowers"), image_size)


register_dataset(DatasetSpec("flowers", 5, 3, DEFAULT_IMAGE_SIZE, FLOWERS_CLASSES, build_flowers, resizable=True))

# ---------------------------------------------------------------- Oxford 102 Flowers (official split)

# The files and md5s torchvision.datasets.Flowers102 uses; labels and split ids are MATLAB .mat files.
FLOWERS102_URL = "https://www.robots.ox.ac.uk/~vgg/data/flowers/102/"
FLOWERS102_FILES = {
    "102flowers.tgz": "52808999861908f626f3c1f4e79d11fa",
    "imagelabels.mat": "e0620be6f572b9609742df49c70aed4d",
    "setid.mat": "a5357ecc9cb78c4bef273ce3793fc85c",
}
# Class names in label order (1..102), as TFDS's oxford_flowers102 lists them; the .mat files have numbers only.
FLOWERS102_CLASSES = (
    "pink primrose", "hard-leaved pocket orchid", "canterbury bells", "sweet pea", "english marigold",
    "tiger lily", "moon orchid", "bird of paradise", "monkshood", "globe thistle", "snapdragon", "colt's foot",
    "king protea", "spear thistle", "yellow iris", "globe-flower", "purple coneflower", "peruvian lily",
    "balloon flower", "giant white arum lily", "fire lily", "pincushion flower", "fritillary", "red ginger",
    "grape hyacinth", "corn poppy", "prince of wales feathers", "stemless gentian", "artichoke", "sweet william",
    "carnation", "garden phlox", "love in the mist", "mexican aster", "alpine sea holly", "ruby-lipped cattleya",
    "cape flower", "great masterwort", "siam tulip", "lenten rose", "barbeton daisy", "daffodil", "sword lily",
    "poinsettia", "bolero deep blue", "wallflower", "marigold", "buttercup", "oxeye daisy", "common dandelion",
    "petunia", "wild pansy", "primula", "sunflower", "pelargonium", "bishop of llandaff", "gaura", "geranium",
    "orange dahlia", "pink-yellow dahlia?", "cautleya spicata", "japanese anemone", "black-eyed susan",
    "silverbush", "californian poppy", "osteospermum", "spring crocus", "bearded iris", "windflower",
    "tree poppy", "gazania", "azalea", "water lily", "rose", "thorn apple", "morning glory", "passion flower",
    "lotus", "toad lily", "anthurium", "frangipani", "clematis", "hibiscus", "columbine", "desert-rose",
    "tree mallow", "magnolia", "cyclamen", "watercress", "canna lily", "hippeastrum", "bee balm", "ball moss",
    "foxglove", "bougainvillea", "camellia", "mallow", "mexican petunia", "bromelia", "blanket flower",
    "trumpet creeper", "blackberry lily",
)

# MAT-file v5 (what MATLAB writes by default): numeric arrays only, compressed or not, either byte order.
MAT_TYPES = {1: "i1", 2: "u1", 3: "i2", 4: "u2", 5: "i4", 6: "u4", 7: "f4", 9: "f8", 12: "i8", 13: "u8"}
MI_MATRIX, MI_COMPRESSED = 14, 15
MX_NUMERIC = range(6, 16)  # double, single, int8 .. uint64 (cell, struct, char, sparse are skipped)


def _mat_elements(buf: bytes, pos: int, order: str, path: Path):
    """Yield (type, payload) of each data element in ``buf`` from ``pos``."""
    while pos + 8 <= len(buf):
        mtype, nbytes = struct.unpack_from(order + "II", buf, pos)
        if mtype >> 16:  # small data element: size and type share one word, payload in the next 4 bytes
            mtype, nbytes = mtype & 0xFFFF, mtype >> 16
            yield mtype, buf[pos + 4:pos + 4 + nbytes]
            pos += 8
            continue
        start = pos + 8
        if start + nbytes > len(buf):
            raise ConfigError(f"{path}: truncated MAT file; delete it and re-run")
        yield mtype, buf[start:start + nbytes]
        pos = start + nbytes + (0 if mtype == MI_COMPRESSED else -nbytes % 8)  # padded to 8 bytes


def _mat_matrix(buf: bytes, order: str, path: Path) -> tuple[str, np.ndarray | None]:
    parts = list(_mat_elements(buf, 0, order, path))
    if len(parts) < 3:
        raise ConfigError(f"{path}: malformed MAT array")
    flags = struct.unpack_from(order + "I", parts[0][1])[0]
    dims = np.frombuffer(parts[1][1], dtype=order + "i4")
    name = parts[2][1].decode("latin-1")
    if (flags & 0xFF) not in MX_NUMERIC or flags & 0x800 or len(parts) < 4:  # non-numeric or complex: skip
        return name, None
    dtype, payload = parts[3]
    if dtype not in MAT_TYPES:
        raise ConfigError(f"{path}: unsupported MAT data type {dtype} in {name!r}")
    # MATLAB stores a double array of small integers with a smaller integer type: the payload's type decides.
    data = np.frombuffer(payload, dtype=order + MAT_TYPES[dtype])
    if data.size != int(np.prod(dims)):
        raise ConfigError(f"{path}: {name!r} has {data.size} values for dims {tuple(dims)}")
    return name, data.reshape(tuple(dims), order="F")


def read_mat(path: Path) -> dict[str, np.ndarray]:
    """The numeric arrays of a MATLAB v5 MAT-file (no scipy needed), by variable name."""
    raw = path.read_bytes()
    if len(raw) < 128 or not raw.startswith(b"MATLAB"):
        raise ConfigError(f"{path}: not a MATLAB 5 MAT-file; delete it and re-run")
    if raw.startswith(b"MATLAB 7.3"):
        raise ConfigError(f"{path}: MATLAB 7.3 (HDF5) MAT-files are not supported")
    order = {b"IM": "<", b"MI": ">"}.get(raw[126:128])
    if order is None:
        raise ConfigError(f"{path}: not a MATLAB 5 MAT-file (bad byte-order mark)")
    arrays = {}
    for mtype, payload in _mat_elements(raw, 128, order, path):
        if mtype == MI_COMPRESSED:
            try:
                payload = zlib.decompress(payload)
            except zlib.error as exc:
                raise ConfigError(f"{path}: corrupt compressed MAT data ({exc}); delete it and re-run") from exc
            mtype, payload = next(_mat_elements(payload, 0, order, path), (None, b""))
        if mtype == MI_MATRIX:
            name, array = _mat_matrix(payload, order, path)
            if array is not None:
                arrays[name] = array
    return arrays


def _mat_ints(arrays: dict[str, np.ndarray], name: str, path: Path) -> np.ndarray:
    if name not in arrays:
        raise ConfigError(f"{path}: no variable {name!r}")
    values = arrays[name].ravel()
    if not np.array_equal(values, np.round(values)):
        raise ConfigError(f"{path}: {name!r} holds non-integers")
    return values.astype(np.int64)


def build_flowers102(download_dir: Path, image_size: int) -> Splits:
    """Official split: train + val (10 + 10 per class) as train, test (6,149) as test. Files under
    download_dir/flowers-102/ (torchvision's layout: jpg/, imagelabels.mat, setid.mat), downloaded if missing."""
    base = download_dir / "flowers-102"
    base.mkdir(parents=True, exist_ok=True)
    paths = {name: base / name for name in FLOWERS102_FILES}
    for name in ("imagelabels.mat", "setid.mat"):
        fetch([FLOWERS102_URL + name], paths[name], FLOWERS102_FILES[name])
    jpg = base / "jpg"
    if not jpg.is_dir():
        name = "102flowers.tgz"
        archive = fetch([FLOWERS102_URL + name], paths[name], FLOWERS102_FILES[name])
        jpg = extract_archive(archive, base, "jpg")
    labels = _mat_ints(read_mat(paths["imagelabels.mat"]), "labels", paths["imagelabels.mat"]) - 1
    if len(labels) == 0 or labels.min() < 0 or labels.max() >= len(FLOWERS102_CLASSES):
        raise ConfigError(f"{paths['imagelabels.mat']}: labels outside 1..{len(FLOWERS102_CLASSES)}")
    setid = read_mat(paths["setid.mat"])
    splits = {}
    for split, names in (("train", ("trnid", "valid")), ("test", ("tstid",))):
        ids = np.concatenate([_mat_ints(setid, n, paths["setid.mat"]) for n in names])
        if len(ids) and (ids.min() < 1 or ids.max() > len(labels)):
            raise ConfigError(f"{paths['setid.mat']}: image ids outside 1..{len(labels)}")
        splits[split] = ([jpg / f"image_{i:05d}.jpg" for i in ids], labels[ids - 1].tolist())
    missing = [p for files, _ in splits.values() for p in files if not p.is_file()]
    if missing:
        raise ConfigError(f"{jpg}: {len(missing)} image(s) missing, e.g. {missing[0].name}; "
                          f"delete the folder and re-run")
    return build_from_files(*splits["train"], *splits["test"], image_size)


register_dataset(DatasetSpec("flowers102", len(FLOWERS102_CLASSES), 3, DEFAULT_IMAGE_SIZE, FLOWERS102_CLASSES,
                             build_flowers102, resizable=True))

# ---------------------------------------------------------------- folder:<path> (any ImageFolder tree)


def folder_spec(name: str) -> DatasetSpec:
    """``folder:<path>``: class subfolders of <path>, or of <path>/train and <path>/test if both exist
    (else a seeded 80/20 stratified split, as for flowers). Classes are the train folder names, sorted."""
    if not name[len(FOLDER_PREFIX):]:
        raise ConfigError(f"dataset: {FOLDER_PREFIX} needs a path, e.g. {FOLDER_PREFIX}data/my-images")
    root = Path(name[len(FOLDER_PREFIX):]).expanduser()  # relative paths: to the working directory
    if not root.is_dir():
        raise ConfigError(f"dataset: {name!r}: folder {root} does not exist")
    presplit = (root / "train").is_dir() and (root / "test").is_dir()
    classes = tuple(class_folders(root / "train" if presplit else root))
    if len(classes) < 2:
        raise ConfigError(f"dataset: {name!r}: expected at least two class folders in "
                          f"{root / 'train' if presplit else root}, found {len(classes)}")

    def build(download_dir: Path, image_size: int) -> Splits:
        if not presplit:
            files = [image_files(root / c) for c in classes]
            return build_from_files(*seeded_split(files, name), image_size)
        unknown = sorted(set(class_folders(root / "test")) - set(classes))
        if unknown:
            raise ConfigError(f"dataset: {name!r}: test class folder(s) {', '.join(unknown)} not in train/")
        splits = []
        for split in ("train", "test"):
            files = [(p, label) for label, c in enumerate(classes) if (root / split / c).is_dir()
                     for p in image_files(root / split / c)]
            splits += [[p for p, _ in files], [label for _, label in files]]
        return build_from_files(*splits, image_size)

    return DatasetSpec(name, len(classes), 3, DEFAULT_IMAGE_SIZE, classes, build, resizable=True)


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
