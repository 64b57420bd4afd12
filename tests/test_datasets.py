"""Every dataset source, on tiny files written here in its real format: no network, a second or two each."""

from __future__ import annotations

import base64
import gzip
import hashlib
import struct
import subprocess
import tarfile
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch

from backdoor.datasets import cifar10, fashion_mnist, flowers102, images, load_dataset, photos
from backdoor.datasets.registry import DATASETS, dataset_spec, prepare_dataset
from backdoor.errors import ConfigError

OFFLINE = "http://127.0.0.1:9/"  # nothing listens on the discard port: connection refused at once


# ---------------------------------------------------------------- helpers


def jpeg(path: Path, size: tuple[int, int], color: tuple[int, int, int]) -> Path:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path, format="JPEG", quality=95)
    return path


def tar_dir(src: Path, archive: Path, arcname: str, mode: str = "w:gz") -> Path:
    with tarfile.open(archive, mode) as tar:
        tar.add(src, arcname=arcname)
    return archive


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def mat_file(
    path: Path, arrays: dict[str, np.ndarray], *, order: str = "<", compress: bool = True, storage: str = "u1"
) -> Path:
    """A MAT v5 file as MATLAB writes it: double arrays whose payload uses a smaller integer type."""
    codes = {"u1": 2, "u2": 4, "i4": 5, "f8": 9}

    def element(mtype: int, payload: bytes, pad: bool = True) -> bytes:
        return struct.pack(order + "II", mtype, len(payload)) + payload + (b"\0" * (-len(payload) % 8) if pad else b"")

    body = b""
    for name, values in arrays.items():
        values = np.atleast_2d(np.asarray(values))
        matrix = (
            element(6, struct.pack(order + "II", 6, 0))  # array flags: mxDOUBLE_CLASS
            + element(5, np.asarray(values.shape, dtype=order + "i4").tobytes())
            + element(1, name.encode())
            + element(codes[storage], values.astype(order + storage).tobytes(order="F"))
        )
        matrix = element(14, matrix)
        body += element(15, zlib.compress(matrix), pad=False) if compress else matrix
    version = struct.pack(order + "H", 0x0100)
    mark = b"IM" if order == "<" else b"MI"
    path.write_bytes(b"MATLAB 5.0 MAT-file, written by a test".ljust(116, b" ") + b"\0" * 8 + version + mark + body)
    return path


# savemat output of scipy 1.17 (another writer than ours): labels = [[1, 2, 102, 1, 2, 102]] as float64,
# compressed; setid with trnid float64 [[1, 4]], valid uint16 [[2]] (a small data element), tstid int32
# [[3, 5, 6]] and a char variable, uncompressed.
SCIPY_LABELS = (
    "TUFUTEFCIDUuMCBNQVQtZmlsZSBQbGF0Zm9ybTogcG9zaXgsIENyZWF0ZWQgb246IFRodSBOb3YgMjYgMDA6MjA6MDIgMjAyNgAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAABSU0PAAAANgAAAHic42NgYMgAYjYg5oDSIMAK5TNCxWB0TmJSak4x"
    "AwMnkG3AAAMf7KEMBzDZEOmASxwAVRYIYg=="
)
SCIPY_SETID = (
    "TUFUTEFCIDUuMCBNQVQtZmlsZSBQbGF0Zm9ybTogcG9zaXgsIENyZWF0ZWQgb246IFRodSBOb3YgMjYgMDA6MjA6MDIgMjAyNgAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAABSU0OAAAASAAAAAYAAAAIAAAABgAAAAAAAAAFAAAACAAAAAEAAAAC"
    "AAAAAQAAAAUAAAB0cm5pZAAAAAkAAAAQAAAAAAAAAAAA8D8AAAAAAAAQQA4AAAA4AAAABgAAAAgAAAALAAAAAAAAAAUAAAAIAAAAAQAAAAEAAA"
    "ABAAAABQAAAHZhbGlkAAAABAACAAIAAAAOAAAASAAAAAYAAAAIAAAADAAAAAAAAAAFAAAACAAAAAEAAAADAAAAAQAAAAUAAAB0c3RpZAAAAAUA"
    "AAAMAAAAAwAAAAUAAAAGAAAAAAAAAA4AAAAwAAAABgAAAAgAAAAEAAAAAAAAAAUAAAAIAAAAAQAAAAQAAAABAAQAbm90ZRAABAB0ZXh0"
)


# ---------------------------------------------------------------- dataset_spec and image_size


def test_dataset_spec_image_size():
    assert dataset_spec("cifar10").image_size == 32
    assert dataset_spec("cifar10", 32).image_size == 32
    assert dataset_spec("fashion-mnist", None).image_size == 28
    assert dataset_spec("flowers").image_size == 224
    flowers = dataset_spec("flowers", 64)
    assert (flowers.image_size, flowers.num_classes, flowers.channels) == (64, 5, 3)
    assert dataset_spec("flowers102", 96).num_classes == 102 and len(dataset_spec("flowers102").classes) == 102
    assert DATASETS.get("flowers").factory.image_size == 224  # the registry entry is not changed
    with pytest.raises(ConfigError, match="image_size: cifar10 is stored at its native 32 px"):
        dataset_spec("cifar10", 224)
    for bad in (0, -3, "64", 64.0, True):
        with pytest.raises(ConfigError, match="image_size: must be a positive integer"):
            dataset_spec("flowers", bad)
    with pytest.raises(ConfigError, match=r"dataset: unknown value 'imagenet'; valid choices: .*, folder:<path>"):
        dataset_spec("imagenet")


# ---------------------------------------------------------------- CIFAR-10 binary batches


def test_cifar10_from_binary_batches(tmp_path):
    rng = np.random.default_rng(0)
    batches = tmp_path / "downloads" / "cifar-10-batches-bin"
    batches.mkdir(parents=True)
    written = {}
    for name, n in [(f"data_batch_{i}.bin", 2) for i in range(1, 6)] + [("test_batch.bin", 3)]:
        records = rng.integers(0, 256, size=(n, cifar10.RECORD), dtype=np.uint8)
        records[:, 0] = rng.integers(0, 10, size=n)
        (batches / name).write_bytes(records.tobytes())
        written[name] = records
    prepare_dataset("cifar10", tmp_path / "raw", tmp_path / "downloads", image_size=32)
    ds = load_dataset(tmp_path / "raw")
    train = np.concatenate([written[f"data_batch_{i}.bin"] for i in range(1, 6)])
    assert ds.name == "cifar10" and ds.train.images.shape == (10, 3, 32, 32) and ds.test.images.shape == (3, 3, 32, 32)
    assert torch.equal(ds.train.labels, torch.from_numpy(train[:, 0].astype(np.int64)))
    assert torch.equal(ds.train.images, torch.from_numpy(train[:, 1:].reshape(-1, 3, 32, 32)))  # R, G, B planes
    assert torch.equal(ds.test.images, torch.from_numpy(written["test_batch.bin"][:, 1:].reshape(-1, 3, 32, 32)))

    (batches / "test_batch.bin").write_bytes(b"\0" * 100)  # not a multiple of the record size
    with pytest.raises(ConfigError, match="not a CIFAR-10 binary batch"):
        prepare_dataset("cifar10", tmp_path / "raw2", tmp_path / "downloads")
    with pytest.raises(ConfigError, match="image_size: cifar10"):
        prepare_dataset("cifar10", tmp_path / "raw3", tmp_path / "downloads", image_size=64)


def test_corrupted_stored_file_is_rejected(tmp_path):
    batches = tmp_path / "dl" / "cifar-10-batches-bin"
    batches.mkdir(parents=True)
    for name in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
        (batches / name).write_bytes(bytes(cifar10.RECORD))
    prepare_dataset("cifar10", tmp_path / "raw", tmp_path / "dl")
    load_dataset(tmp_path / "raw")
    stored = tmp_path / "raw" / "train.pt"
    raw = bytearray(stored.read_bytes())
    raw[len(raw) // 2] ^= 0xFF  # one flipped byte
    stored.write_bytes(bytes(raw))
    with pytest.raises(ConfigError, match=r"corrupt file .*train\.pt: sha256 does not match its manifest"):
        load_dataset(tmp_path / "raw")


# ---------------------------------------------------------------- flowers (flower_photos.tgz)

COLORS = {
    "daisy": (250, 250, 250),
    "dandelion": (250, 220, 0),
    "roses": (200, 0, 30),
    "sunflowers": (240, 160, 0),
    "tulips": (180, 0, 160),
}


@pytest.fixture
def flower_archive(tmp_path, monkeypatch):
    """A flower_photos.tgz laid out like TensorFlow's (5 class folders + LICENSE.txt), 5 JPEGs per class."""
    src = tmp_path / "src" / "flower_photos"
    sizes = [(40, 30), (30, 44), (33, 33), (64, 20), (20, 64)]
    for name, color in COLORS.items():
        for i, size in enumerate(sizes):
            jpeg(src / name / f"{i}_{name}.jpg", size, color)
    (src / "LICENSE.txt").write_text("CC-BY\n")
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    archive = tar_dir(src, downloads / "flower_photos.tgz", "flower_photos")
    monkeypatch.setattr(photos, "FLOWERS_MD5", md5(archive))
    monkeypatch.setattr(photos, "FLOWERS_SHA256", sha256(archive))
    monkeypatch.setattr(photos, "FLOWERS_URLS", [OFFLINE + "flower_photos.tgz"])
    return archive


def test_flowers_from_archive(tmp_path, flower_archive):
    prepare_dataset("flowers", tmp_path / "raw", flower_archive.parent, image_size=16)
    ds = load_dataset(tmp_path / "raw")
    assert ds.name == "flowers" and ds.classes == photos.FLOWERS_CLASSES
    assert ds.train.images.shape == (20, 3, 16, 16) and ds.test.images.shape == (5, 3, 16, 16)
    assert ds.train.images.dtype == torch.uint8
    # stratified: round(0.2 x 5) = 1 test image per class
    assert torch.equal(torch.bincount(ds.test.labels, minlength=5), torch.ones(5, dtype=torch.int64))
    for split_images, labels in ((ds.train.images, ds.train.labels), (ds.test.images, ds.test.labels)):
        for image, label in zip(
            split_images, labels
        ):  # every image is its class's flat color (JPEG: within a few levels)
            expected = torch.tensor(COLORS[photos.FLOWERS_CLASSES[label]]).view(3, 1, 1)
            assert (image.int() - expected).abs().max() <= 8
    assert (flower_archive.parent / "flower_photos" / "daisy").is_dir()  # extracted next to the archive
    assert not list(flower_archive.parent.glob(".flower_photos.*"))  # no temporary folder left behind

    # rebuilt from the extracted folder: the same split and pixels (the seed is fixed)
    flower_archive.unlink()
    prepare_dataset("flowers", tmp_path / "raw2", flower_archive.parent, image_size=16)
    again = load_dataset(tmp_path / "raw2")
    assert torch.equal(again.train.images, ds.train.images) and torch.equal(again.test.labels, ds.test.labels)


def test_flowers_corrupt_archive_and_offline(tmp_path, flower_archive):
    flower_archive.write_bytes(flower_archive.read_bytes()[:-10])  # truncated download
    with pytest.raises(ConfigError, match="corrupt download .*flower_photos.tgz: md5 differs"):
        prepare_dataset("flowers", tmp_path / "raw", flower_archive.parent, image_size=16)
    flower_archive.unlink()
    with pytest.raises(ConfigError) as info:
        prepare_dataset("flowers", tmp_path / "raw", flower_archive.parent, image_size=16)
    message = str(info.value)
    assert message.startswith("could not download flower_photos.tgz (no internet access?); place the file (md5 ")
    assert str(flower_archive) in message and not (tmp_path / "raw").exists()


def test_flowers_wrong_sha256_is_rejected(tmp_path, flower_archive, monkeypatch):
    monkeypatch.setattr(photos, "FLOWERS_SHA256", "0" * 64)
    with pytest.raises(ConfigError, match="corrupt download .*: sha256 differs"):
        prepare_dataset("flowers", tmp_path / "raw", flower_archive.parent, image_size=16)


def test_load_image_resizes_shorter_side_then_center_crops(tmp_path):
    from PIL import Image

    img = Image.new("RGB", (80, 40), (255, 0, 0))  # red, with a green 40x40 square in the middle
    img.paste((0, 255, 0), (20, 0, 60, 40))
    img.save(tmp_path / "wide.png")
    out = images.load_image(tmp_path / "wide.png", 10)  # 80x40 -> 20x10 -> center 10x10: the green square
    assert out.shape == (3, 10, 10) and out.dtype == np.uint8
    assert out[1, :, 1:-1].min() > 200 and out[0, :, 1:-1].max() < 60
    Image.new("L", (8, 12), 77).save(tmp_path / "gray.png")  # grayscale becomes RGB; upscaled when smaller
    gray = images.load_image(tmp_path / "gray.png", 16)
    assert gray.shape == (3, 16, 16) and int(gray.min()) == int(gray.max()) == 77
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(ConfigError, match="unreadable image"):
        images.load_image(tmp_path / "broken.jpg", 16)


# ---------------------------------------------------------------- flowers102 (.tgz + .mat files)


def flowers102_files(base: Path, monkeypatch, *, scipy_written: bool, **mat_kwargs) -> None:
    """A 6-image Oxford 102 layout: trnid [1, 4], valid [2], tstid [3, 5, 6]; labels 1, 2, 102, 1, 2, 102."""
    src = base.parent / "src"
    for i in range(1, 7):
        jpeg(src / "jpg" / f"image_{i:05d}.jpg", (50 + i, 40), (i * 40, 0, 0))
    base.mkdir(parents=True)
    archive = tar_dir(src / "jpg", base / "102flowers.tgz", "jpg", mode="w")  # like the real one: plain tar
    if scipy_written:
        (base / "imagelabels.mat").write_bytes(base64.b64decode(SCIPY_LABELS))
        (base / "setid.mat").write_bytes(base64.b64decode(SCIPY_SETID))
    else:
        mat_file(base / "imagelabels.mat", {"labels": [1, 2, 102, 1, 2, 102]}, **mat_kwargs)
        mat_file(base / "setid.mat", {"trnid": [1, 4], "valid": [2], "tstid": [3, 5, 6]}, **mat_kwargs)
    monkeypatch.setattr(
        flowers102, "FILES", {name: md5(base / name) for name in (archive.name, "imagelabels.mat", "setid.mat")}
    )
    monkeypatch.setattr(flowers102, "URL", OFFLINE)


@pytest.mark.parametrize("mat", ["scipy", "matlab-compressed", "big-endian-uncompressed"])
def test_flowers102_official_split(tmp_path, monkeypatch, mat):
    kwargs = {
        "scipy": dict(scipy_written=True),
        "matlab-compressed": dict(scipy_written=False, storage="u1"),
        "big-endian-uncompressed": dict(scipy_written=False, order=">", compress=False, storage="u2"),
    }[mat]
    downloads = tmp_path / "downloads"
    flowers102_files(downloads / "flowers-102", monkeypatch, **kwargs)
    prepare_dataset("flowers102", tmp_path / "raw", downloads, image_size=12)
    ds = load_dataset(tmp_path / "raw")
    assert ds.name == "flowers102" and len(ds.classes) == 102 and ds.classes[101] == "blackberry lily"
    assert ds.train.labels.tolist() == [0, 0, 1]  # trnid 1, 4 then valid 2
    assert ds.test.labels.tolist() == [101, 1, 101]  # tstid 3, 5, 6
    assert ds.train.images.shape == (3, 3, 12, 12) and ds.test.images.shape == (3, 3, 12, 12)
    reds = [int(ds.train.images[i, 0].float().mean().round()) for i in range(3)]
    assert [abs(r - e) <= 4 for r, e in zip(reds, (40, 160, 80))] == [True] * 3  # image_00001, 00004, 00002


def test_flowers102_offline_and_missing_images(tmp_path, monkeypatch):
    downloads = tmp_path / "downloads"
    flowers102_files(downloads / "flowers-102", monkeypatch, scipy_written=False)
    (downloads / "flowers-102" / "setid.mat").unlink()
    with pytest.raises(ConfigError, match=r"^could not download setid.mat \(no internet access\?\)"):
        prepare_dataset("flowers102", tmp_path / "raw", downloads, image_size=12)
    mat_file(downloads / "flowers-102" / "setid.mat", {"trnid": [1, 4], "valid": [2], "tstid": [3, 5, 9]})
    monkeypatch.setitem(flowers102.FILES, "setid.mat", md5(downloads / "flowers-102" / "setid.mat"))
    with pytest.raises(ConfigError, match="image ids outside 1..6"):
        prepare_dataset("flowers102", tmp_path / "raw", downloads, image_size=12)


def test_read_ints_takes_named_variables_and_rejects_garbage(tmp_path):
    (tmp_path / "setid.mat").write_bytes(base64.b64decode(SCIPY_SETID))
    ids = flowers102.read_ints(tmp_path / "setid.mat", ("trnid", "valid", "tstid"))  # a char variable is beside them
    assert {k: v.tolist() for k, v in ids.items()} == {"trnid": [1, 4], "valid": [2], "tstid": [3, 5, 6]}
    with pytest.raises(ConfigError, match="setid.mat: no variable 'labels'"):
        flowers102.read_ints(tmp_path / "setid.mat", ("labels",))
    mat_file(tmp_path / "half.mat", {"labels": np.array([1.5, 2.0])}, storage="f8")
    with pytest.raises(ConfigError, match="'labels' holds non-integers"):
        flowers102.read_ints(tmp_path / "half.mat", ("labels",))
    for garbage in (b"MATLAB 7.3 MAT-file" + bytes(200), b"\x89HDF" + bytes(200), base64.b64decode(SCIPY_LABELS)[:-20]):
        (tmp_path / "bad.mat").write_bytes(garbage)
        with pytest.raises(ConfigError, match="bad.mat: not a readable MAT-file"):
            flowers102.read_ints(tmp_path / "bad.mat", ("labels",))


# ---------------------------------------------------------------- Fashion-MNIST (IDX files)


def idx_file(path: Path, array: np.ndarray, gz: bool = True) -> Path:
    """An IDX file as LeCun's format defines it: 0, 0, type 0x08 (ubyte), ndim, big-endian dims, data."""
    raw = bytes([0, 0, 8, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(raw) if gz else raw)
    return path


def test_read_idx_on_hand_written_files(tmp_path):
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    for gz in (True, False):
        path = idx_file(tmp_path / ("x.gz" if gz else "x"), images, gz)
        assert np.array_equal(fashion_mnist.read_idx(path), images)
    labels = idx_file(tmp_path / "y.gz", np.array([7, 0, 9]))
    assert fashion_mnist.read_idx(labels).tolist() == [7, 0, 9]
    raw = gzip.decompress(labels.read_bytes())
    assert fashion_mnist.read_idx(labels, sha256=hashlib.sha256(raw).hexdigest()).tolist() == [7, 0, 9]
    with pytest.raises(ConfigError, match="y.gz: its content's sha256 differs from the published data"):
        fashion_mnist.read_idx(labels, sha256="0" * 64)
    (tmp_path / "short").write_bytes(raw[:-1])
    with pytest.raises(ConfigError, match="short: truncated IDX file"):
        fashion_mnist.read_idx(tmp_path / "short")
    (tmp_path / "float").write_bytes(bytes([0, 0, 0x0D, 1]) + struct.pack(">I", 1) + b"\0\0\0\0")
    with pytest.raises(ConfigError, match="float: not an unsigned-byte IDX file"):
        fashion_mnist.read_idx(tmp_path / "float")


# ---------------------------------------------------------------- folder:<path>


def test_folder_with_seeded_split(tmp_path):
    root = tmp_path / "pets"
    for name, color in (("cat", (10, 10, 10)), ("dog", (200, 200, 200))):
        for i in range(10):
            jpeg(root / name / ("nested" if i % 2 else "") / f"{i}.jpg", (24, 18), color)
    (root / "cat" / "notes.txt").write_text("not an image")
    (root / ".cache").mkdir()  # hidden folders are not classes
    spec = dataset_spec(f"folder:{root}", 8)
    assert spec.classes == ("cat", "dog") and spec.num_classes == 2 and spec.image_size == 8
    prepare_dataset(f"folder:{root}", tmp_path / "raw", tmp_path / "dl", image_size=8)
    ds = load_dataset(tmp_path / "raw")
    assert ds.name == f"folder:{root}" and ds.classes == ("cat", "dog")
    assert ds.train.images.shape == (16, 3, 8, 8) and ds.test.images.shape == (4, 3, 8, 8)
    assert torch.bincount(ds.test.labels).tolist() == [2, 2]
    brightness = [ds.train.images[ds.train.labels == label].float().mean() for label in (0, 1)]
    assert brightness[0] < 40 and brightness[1] > 170


def test_folder_with_train_and_test(tmp_path):
    root = tmp_path / "tree"
    for split, n in (("train", 3), ("test", 2)):
        for name in ("a", "b", "c"):
            for i in range(n):
                jpeg(root / split / name / f"{i}.jpg", (16, 16), (0, 0, 255))
    prepare_dataset(f"folder:{root}", tmp_path / "raw", tmp_path / "dl", image_size=16)
    ds = load_dataset(tmp_path / "raw")
    assert ds.classes == ("a", "b", "c") and len(ds.train) == 9 and len(ds.test) == 6
    assert ds.test.labels.tolist() == [0, 0, 1, 1, 2, 2]
    jpeg(root / "test" / "zebra" / "0.jpg", (16, 16), (0, 0, 0))
    with pytest.raises(ConfigError, match="test class folder.*zebra.*not in train"):
        prepare_dataset(f"folder:{root}", tmp_path / "raw", tmp_path / "dl", image_size=16)


def test_folder_errors(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        dataset_spec(f"folder:{tmp_path / 'missing'}")
    with pytest.raises(ConfigError, match="needs a path"):
        dataset_spec("folder:")
    jpeg(tmp_path / "one" / "only" / "0.jpg", (8, 8), (1, 2, 3))
    with pytest.raises(ConfigError, match="at least two class folders"):
        dataset_spec(f"folder:{tmp_path / 'one'}")
    (tmp_path / "empty" / "a").mkdir(parents=True)
    (tmp_path / "empty" / "b").mkdir()
    with pytest.raises(ConfigError, match=r"class folder .*empty/a holds no image \(.jpg"):
        dataset_spec(f"folder:{tmp_path / 'empty'}")


def test_a_class_folder_without_images_is_refused_before_any_decoding(tmp_path):
    """An empty class would be a class nobody trains (its output never learned, CA over the others)."""
    root = tmp_path / "pets"
    for i in range(3):
        jpeg(root / "cat" / f"{i}.jpg", (8, 8), (1, 2, 3))
    (root / "dog").mkdir()
    (root / "dog" / "readme.txt").write_text("no pictures yet")
    jpeg(root / "dog" / ".thumbnail.jpg", (8, 8), (1, 2, 3))  # hidden files and folders hold no image of the class
    jpeg(root / "dog" / ".cache" / "0.jpg", (8, 8), (1, 2, 3))
    with pytest.raises(ConfigError) as err:
        prepare_dataset(f"folder:{root}", tmp_path / "raw", tmp_path / "dl", image_size=8)
    assert str(err.value) == (
        f"dataset: 'folder:{root}': class folder {root / 'dog'} holds no image "
        "(.jpg, .jpeg, .png, .bmp, .gif, .webp, .tif, .tiff, .ppm, .pgm)"
    )
    assert not (tmp_path / "raw").exists()


def test_an_image_over_pils_size_limit_is_refused_in_one_line(tmp_path, monkeypatch):
    from PIL import Image

    from backdoor.datasets.images import load_image

    jpeg(tmp_path / "huge.jpg", (64, 64), (1, 2, 3))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # 64 x 64 is then over twice the limit: a "bomb"
    with pytest.raises(ConfigError) as err:
        load_image(tmp_path / "huge.jpg", 8)
    assert str(err.value).startswith(f"image {tmp_path / 'huge.jpg'} is larger than PIL allows (")
    assert "\n" not in str(err.value)


def test_make_external_data_checks_the_sha256_then_extracts_once(tmp_path):
    """`make external-data` (the real copies in ../shared/data): a tarball whose sha256 differs is not
    extracted; a matching one lands whole under data/external/<name>; a second call leaves it alone."""
    root = Path(__file__).resolve().parents[1]
    shared, work = tmp_path / "shared", tmp_path / "work"
    (shared / "data").mkdir(parents=True)
    work.mkdir()
    (tmp_path / "tiny" / "train" / "cat").mkdir(parents=True)
    (tmp_path / "tiny" / "train" / "cat" / "0.jpg").write_bytes(b"jpeg")
    with tarfile.open(shared / "data" / "tiny.tar.gz", "w:gz") as tar:
        tar.add(tmp_path / "tiny", arcname="tiny")
    digest = hashlib.sha256((shared / "data" / "tiny.tar.gz").read_bytes()).hexdigest()

    def make(sha256: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [
                "make",
                "-s",
                "-f",
                str(root / "Makefile"),
                "external-data",
                f"SHARED={shared}",
                f"EXTERNAL_SHA256=tiny={sha256}",
            ],
            cwd=work,
            capture_output=True,
            text=True,
        )

    refused = make("0" * 64)
    assert refused.returncode != 0 and "sha256 mismatch, not extracted" in refused.stdout
    assert list((work / "data" / "external").iterdir()) == []
    assert make(digest).stdout.strip() == "data/external/tiny: extracted"
    assert (work / "data" / "external" / "tiny" / "train" / "cat" / "0.jpg").read_bytes() == b"jpeg"
    assert make(digest).stdout.strip() == "data/external/tiny: already there"
    missing = subprocess.run(
        ["make", "-s", "-f", str(root / "Makefile"), "external-data", f"SHARED={tmp_path}/none"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert missing.returncode != 0 and "set SHARED to the folder holding" in missing.stdout
