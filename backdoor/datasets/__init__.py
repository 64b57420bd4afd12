"""Datasets: each split stored once as uint8 (N, C, H, W) + int64 labels, every file checksummed.

``base``: the spec of a source and the stored format (write, load, verify), imported by every stage
that reads data. ``registry``: the sources by name (``dataset_spec``, ``prepare_dataset``); each source
is one module that registers itself there: ``fashion_mnist``, ``cifar10``, ``photos`` (flowers and
``folder:<path>``), ``flowers102``. Only the download and check stages import the registry, so editing a
source's reader re-runs its download and nothing that merely loads stored data.
"""

from .base import Dataset, DatasetSpec, Split, load_dataset, read_manifest, store_dataset, validation_split

__all__ = ["Dataset", "DatasetSpec", "Split", "load_dataset", "read_manifest", "store_dataset", "validation_split"]
