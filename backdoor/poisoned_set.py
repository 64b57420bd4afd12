"""The poisoned training set as stored: a delta to the clean training set, the training pool it lives in,
and the triggered test set. Loaded by every stage after poisoning; made by ``backdoor.poisoning``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from .errors import ConfigError
from .files import load_tensors, manifest_sha256, read_json
from .seeding import generator


def training_pool(num_train: int, subset: int | None, seed: int) -> torch.Tensor:
    """Positions of the training images a model trains on: all of them, or a seeded ``subset`` (sorted).

    Poisons are drawn inside this pool, so a rate is a fraction of what the model sees."""
    if subset is None or subset >= num_train:
        return torch.arange(num_train)
    return torch.randperm(num_train, generator=generator(seed, "train-subset"))[:subset].sort().values


@dataclass
class PoisonedSet:
    """The delta to the clean training set, plus the triggered test set used for ASR and RA."""

    pool: torch.Tensor  # int64 (M,), sorted positions of the training images the model trains on
    indices: torch.Tensor  # int64 (P,), positions in the training set, all inside ``pool``
    images: torch.Tensor  # uint8 (P, C, H, W), triggered pixels
    labels: torch.Tensor  # int64 (P,), labels after poisoning
    test_indices: torch.Tensor  # int64 (T,), positions in the test set
    test_images: torch.Tensor  # uint8 (T, C, H, W), triggered test images
    test_labels: torch.Tensor  # int64 (T,), their true labels
    test_targets: torch.Tensor  # int64 (T,), the label the attack wants for each
    # int64 (X,), the entries of ``indices`` that keep their true label: images carrying a form of the trigger that
    # the model should not learn as the backdoor (WaNet's noise-mode "cross" images, the adaptive attacks' "cover"
    # images); empty for the plain attacks
    cover_indices: torch.Tensor

    @property
    def num_poisoned(self) -> int:
        """Poisoned training images the model trains on (cover images excluded)."""
        return len(self.indices) - len(self.cover_indices)

    @property
    def num_cover(self) -> int:
        return len(self.cover_indices)

    def to_dict(self) -> dict[str, torch.Tensor]:
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, tensors: dict[str, torch.Tensor]) -> PoisonedSet:
        missing = sorted(set(cls.__dataclass_fields__) - set(tensors))
        if missing:
            raise ConfigError(f"poisoned set: missing {', '.join(missing)}; re-run its poison stage (dvc repro)")
        return cls(**{name: tensors[name] for name in cls.__dataclass_fields__})

    def training_set(self, images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """What the model trains on: the pool of the clean training set, with the delta written in."""
        images, labels = images.clone(), labels.clone()
        images[self.indices] = self.images
        labels[self.indices] = self.labels
        return images[self.pool], labels[self.pool]


def load_poisoned(folder: str | Path, raw: str | Path | None = None) -> PoisonedSet:
    """Load a poisoned set (checksummed). With ``raw``, also check it was built from that stored dataset:
    grid stages depend on the poisoned set's manifest alone, which pins the dataset by this digest."""
    manifest = read_json(Path(folder) / "manifest.json")
    if raw is not None and manifest.get("raw_manifest_sha256") != manifest_sha256(raw):
        raise ConfigError(f"{folder} was not built from the dataset in {raw}: re-run its poison stage (dvc repro)")
    return PoisonedSet.from_dict(load_tensors(Path(folder) / "poison.pt", manifest["sha256"]["poison.pt"]))
