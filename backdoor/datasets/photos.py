"""Photo sources: TensorFlow's flower_photos (``flowers``) and any ImageFolder tree (``folder:<path>``)."""

from __future__ import annotations

from pathlib import Path

from ..errors import ConfigError
from .base import DEFAULT_IMAGE_SIZE, FOLDER_PREFIX, DatasetSpec, Splits, extract_archive, fetch, register_dataset
from .images import IMAGE_EXTENSIONS, build_from_files, class_folders, has_image, image_files, seeded_split

# ---------------------------------------------------------------- flowers (TensorFlow's flower_photos)

# 3,670 Flickr photos (CC-BY) in five class folders, no official split: a seeded 80/20 stratified split.
# md5 and sha256 of the archive as published (TFDS tf_flowers checksums: 228,813,984 bytes).
FLOWERS_URLS = [
    "https://storage.googleapis.com/download.tensorflow.org/example_images/flower_photos.tgz",
    "http://download.tensorflow.org/example_images/flower_photos.tgz",
]
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
        raise ConfigError(
            f"{root}: expected class folders {', '.join(FLOWERS_CLASSES)}, found "
            f"{', '.join(class_folders(root)) or 'none'}; delete it and re-run"
        )
    files = [image_files(root / name) for name in FLOWERS_CLASSES]
    return build_from_files(*seeded_split(files, "flowers"), image_size)


register_dataset(
    DatasetSpec("flowers", 5, 3, DEFAULT_IMAGE_SIZE, FLOWERS_CLASSES, build_flowers, resizable=True),
    reference="TensorFlow's flower_photos (5 classes, Flickr, CC-BY)",
)


# ---------------------------------------------------------------- folder:<path> (any ImageFolder tree)


def folder_spec(name: str) -> DatasetSpec:
    """``folder:<path>``: class subfolders of <path>, or of <path>/train and <path>/test if both exist
    (else a seeded 80/20 stratified split, as for flowers). Classes are the train folder names, sorted."""
    if not name[len(FOLDER_PREFIX) :]:
        raise ConfigError(f"dataset: {FOLDER_PREFIX} needs a path, e.g. {FOLDER_PREFIX}data/my-images")
    root = Path(name[len(FOLDER_PREFIX) :]).expanduser()  # relative paths: to the working directory
    if not root.is_dir():
        raise ConfigError(f"dataset: {name!r}: folder {root} does not exist")
    presplit = (root / "train").is_dir() and (root / "test").is_dir()
    classes = tuple(class_folders(root / "train" if presplit else root))
    if len(classes) < 2:
        raise ConfigError(
            f"dataset: {name!r}: expected at least two class folders in "
            f"{root / 'train' if presplit else root}, found {len(classes)}"
        )
    for folder in ((root / "train" if presplit else root) / c for c in classes):
        if not has_image(folder):  # a class with no image: an output nobody trains, and CA over the others
            raise ConfigError(
                f"dataset: {name!r}: class folder {folder} holds no image ({', '.join(IMAGE_EXTENSIONS)})"
            )

    def build(download_dir: Path, image_size: int) -> Splits:
        if not presplit:
            files = [image_files(root / c) for c in classes]
            return build_from_files(*seeded_split(files, name), image_size)
        unknown = sorted(set(class_folders(root / "test")) - set(classes))
        if unknown:
            raise ConfigError(f"dataset: {name!r}: test class folder(s) {', '.join(unknown)} not in train/")
        splits = []
        for split in ("train", "test"):
            files = [
                (p, label)
                for label, c in enumerate(classes)
                if (root / split / c).is_dir()
                for p in image_files(root / split / c)
            ]
            splits += [[p for p, _ in files], [label for _, label in files]]
        return build_from_files(*splits, image_size)

    return DatasetSpec(name, len(classes), 3, DEFAULT_IMAGE_SIZE, classes, build, resizable=True)
