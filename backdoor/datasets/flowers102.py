"""Oxford 102 Flowers (Nilsback and Zisserman 2008), the official split, from torchvision's files.

Labels and split ids are MATLAB files, read with ``scipy.io.loadmat`` as torchvision's own
Flowers102 does.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import ConfigError
from .base import DEFAULT_IMAGE_SIZE, DatasetSpec, Splits, extract_archive, fetch, register_dataset
from .images import build_from_files

URL = "https://www.robots.ox.ac.uk/~vgg/data/flowers/102/"
FILES = {  # md5s as torchvision.datasets.Flowers102 checks them
    "102flowers.tgz": "52808999861908f626f3c1f4e79d11fa",
    "imagelabels.mat": "e0620be6f572b9609742df49c70aed4d",
    "setid.mat": "a5357ecc9cb78c4bef273ce3793fc85c",
}
# Class names in label order (1..102), as TFDS's oxford_flowers102 lists them; the .mat files have numbers only.
CLASSES = (
    "pink primrose",
    "hard-leaved pocket orchid",
    "canterbury bells",
    "sweet pea",
    "english marigold",
    "tiger lily",
    "moon orchid",
    "bird of paradise",
    "monkshood",
    "globe thistle",
    "snapdragon",
    "colt's foot",
    "king protea",
    "spear thistle",
    "yellow iris",
    "globe-flower",
    "purple coneflower",
    "peruvian lily",
    "balloon flower",
    "giant white arum lily",
    "fire lily",
    "pincushion flower",
    "fritillary",
    "red ginger",
    "grape hyacinth",
    "corn poppy",
    "prince of wales feathers",
    "stemless gentian",
    "artichoke",
    "sweet william",
    "carnation",
    "garden phlox",
    "love in the mist",
    "mexican aster",
    "alpine sea holly",
    "ruby-lipped cattleya",
    "cape flower",
    "great masterwort",
    "siam tulip",
    "lenten rose",
    "barbeton daisy",
    "daffodil",
    "sword lily",
    "poinsettia",
    "bolero deep blue",
    "wallflower",
    "marigold",
    "buttercup",
    "oxeye daisy",
    "common dandelion",
    "petunia",
    "wild pansy",
    "primula",
    "sunflower",
    "pelargonium",
    "bishop of llandaff",
    "gaura",
    "geranium",
    "orange dahlia",
    "pink-yellow dahlia?",
    "cautleya spicata",
    "japanese anemone",
    "black-eyed susan",
    "silverbush",
    "californian poppy",
    "osteospermum",
    "spring crocus",
    "bearded iris",
    "windflower",
    "tree poppy",
    "gazania",
    "azalea",
    "water lily",
    "rose",
    "thorn apple",
    "morning glory",
    "passion flower",
    "lotus",
    "toad lily",
    "anthurium",
    "frangipani",
    "clematis",
    "hibiscus",
    "columbine",
    "desert-rose",
    "tree mallow",
    "magnolia",
    "cyclamen",
    "watercress",
    "canna lily",
    "hippeastrum",
    "bee balm",
    "ball moss",
    "foxglove",
    "bougainvillea",
    "camellia",
    "mallow",
    "mexican petunia",
    "bromelia",
    "blanket flower",
    "trumpet creeper",
    "blackberry lily",
)


def read_ints(path: Path, names: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Integer vectors ``names`` of a MAT-file (MATLAB stores them as doubles)."""
    from scipy.io import loadmat

    try:
        arrays = loadmat(path)
    except (ValueError, TypeError, OSError, NotImplementedError) as exc:  # not a MAT-file, truncated, v7.3 (HDF5)
        raise ConfigError(f"{path}: not a readable MAT-file ({exc}); delete it and re-run") from exc
    values = {}
    for name in names:
        if name not in arrays:
            raise ConfigError(f"{path}: no variable {name!r}")
        data = np.asarray(arrays[name]).ravel()
        if data.dtype.kind not in "iuf" or not np.array_equal(data, np.round(data)):
            raise ConfigError(f"{path}: {name!r} holds non-integers")
        values[name] = data.astype(np.int64)
    return values


def build(download_dir: Path, image_size: int) -> Splits:
    """Official split: train + val (10 + 10 per class) as train, test (6,149) as test. Files under
    download_dir/flowers-102/ (torchvision's layout: jpg/, imagelabels.mat, setid.mat), downloaded if missing."""
    base = download_dir / "flowers-102"
    base.mkdir(parents=True, exist_ok=True)
    paths = {name: base / name for name in FILES}
    for name in ("imagelabels.mat", "setid.mat"):
        fetch([URL + name], paths[name], FILES[name])
    jpg = base / "jpg"
    if not jpg.is_dir():
        archive = fetch([URL + "102flowers.tgz"], paths["102flowers.tgz"], FILES["102flowers.tgz"])
        jpg = extract_archive(archive, base, "jpg")
    labels = read_ints(paths["imagelabels.mat"], ("labels",))["labels"] - 1
    if len(labels) == 0 or labels.min() < 0 or labels.max() >= len(CLASSES):
        raise ConfigError(f"{paths['imagelabels.mat']}: labels outside 1..{len(CLASSES)}")
    setid = read_ints(paths["setid.mat"], ("trnid", "valid", "tstid"))
    splits = {}
    for split, names in (("train", ("trnid", "valid")), ("test", ("tstid",))):
        ids = np.concatenate([setid[n] for n in names])
        if len(ids) and (ids.min() < 1 or ids.max() > len(labels)):
            raise ConfigError(f"{paths['setid.mat']}: image ids outside 1..{len(labels)}")
        splits[split] = ([jpg / f"image_{i:05d}.jpg" for i in ids], labels[ids - 1].tolist())
    missing = [p for files, _ in splits.values() for p in files if not p.is_file()]
    if missing:
        raise ConfigError(
            f"{jpg}: {len(missing)} image(s) missing, e.g. {missing[0].name}; delete the folder and re-run"
        )
    return build_from_files(*splits["train"], *splits["test"], image_size)


register_dataset(
    DatasetSpec("flowers102", len(CLASSES), 3, DEFAULT_IMAGE_SIZE, CLASSES, build, resizable=True),
    reference="Nilsback and Zisserman 2008, Oxford 102 Flowers",
)
