"""A trained model with what it needs to be rebuilt and fed, saved as a plain state dict, and inference."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn as nn

from .errors import ConfigError
from .files import atomic_path, manifest_sha256, torch_save
from .models import create_model, is_data_initialised
from .seeding import derive_seed


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


@dataclass
class Normalizer:
    """Per-channel mean/std of the training images; uint8 in, float out."""

    mean: list[float]
    std: list[float]

    @classmethod
    def fit(cls, images: torch.Tensor) -> Normalizer:
        x = images.float().div_(255)
        return cls(x.mean(dim=(0, 2, 3)).tolist(), x.std(dim=(0, 2, 3)).clamp_min(1e-3).tolist())

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 images, or floats already in [0, 1] (differentiable: detectors optimise inputs through it)."""
        mean = torch.tensor(self.mean, device=images.device).view(1, -1, 1, 1)
        std = torch.tensor(self.std, device=images.device).view(1, -1, 1, 1)
        if images.dtype == torch.uint8:
            x = images.float().div_(255).sub_(mean).div_(std)
        else:
            x = (images - mean) / std
        return x.contiguous(memory_format=torch.channels_last)  # faster on CPU too (measured: 1.4x)


@dataclass
class Classifier:
    """A model with its arch, shapes and input normalization, and what it was trained on (the sha256 of the
    dataset's and the poisoned set's manifests, see ``training_data_digests``)."""

    model: nn.Module
    arch: str
    num_classes: int
    in_chans: int
    image_size: int
    normalizer: Normalizer
    model_kwargs: dict = field(default_factory=dict)
    trained_on: dict = field(default_factory=dict)
    init_from: str | None = None  # the sha256 of the model.pt it started from (train.init), if any
    training: dict = field(default_factory=dict)  # how it was trained: recipe, epochs, steps, peak_lr, label_smoothing

    @classmethod
    def create(
        cls,
        arch: str,
        train_images: torch.Tensor,
        num_classes: int,
        pretrained: bool = False,
        seed: int = 0,
        **model_kwargs,
    ) -> Classifier:
        in_chans, image_size = train_images.shape[1], train_images.shape[-1]
        torch.manual_seed(derive_seed(seed, "model-init"))  # initial weights depend on the seed alone
        model = create_model(
            arch,
            num_classes=num_classes,
            in_chans=in_chans,
            image_size=image_size,
            pretrained=pretrained,
            **model_kwargs,
        )
        normalizer = Normalizer.fit(train_images)
        if is_data_initialised(arch):  # airbench's whitening layer, from the images this model trains on
            model.init_from_data(train_images, normalizer)
        return cls(model, arch, num_classes, in_chans, image_size, normalizer, model_kwargs)

    def save(self, path: str | Path) -> None:
        state = {k: v.detach().cpu() for k, v in self.model.state_dict().items()}
        meta = {
            "arch": self.arch,
            "num_classes": self.num_classes,
            "in_chans": self.in_chans,
            "image_size": self.image_size,
            "normalizer": asdict(self.normalizer),
            "model_kwargs": self.model_kwargs,
            "trained_on": self.trained_on,
            "training": self.training,
            **({"init_from": self.init_from} if self.init_from else {}),
        }
        with atomic_path(path) as tmp:
            torch_save({"state_dict": state, "meta": meta}, tmp)

    @classmethod
    def load(cls, path: str | Path) -> Classifier:
        if not Path(path).is_file():
            raise ConfigError(f"missing model {path}: run the stage that trains it (dvc repro)")
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        meta = checkpoint["meta"]
        model = create_model(
            meta["arch"],
            num_classes=meta["num_classes"],
            in_chans=meta["in_chans"],
            image_size=meta["image_size"],
            **meta["model_kwargs"],
        )
        model.load_state_dict(checkpoint["state_dict"])
        return cls(
            model,
            meta["arch"],
            meta["num_classes"],
            meta["in_chans"],
            meta["image_size"],
            Normalizer(**meta["normalizer"]),
            meta["model_kwargs"],
            meta.get("trained_on") or {},
            meta.get("init_from"),
            meta.get("training") or {},
        )


def training_data_digests(raw: str | Path, poisoned: str | Path | None) -> dict[str, str | None]:
    """What a model is trained on, by the sha256 of the manifests (each pins its files): saved in model.pt, so
    a model's bytes change whenever its training data do, and a stage that reads a model can depend on
    model.pt instead of also on the data it was trained on."""
    return {"dataset": manifest_sha256(raw), "poisoned": manifest_sha256(poisoned) if poisoned is not None else None}


def load_trained(model: str | Path, raw: str | Path, poisoned: str | Path) -> Classifier:
    """A trained model, checked to come from this dataset and, unless it is a clean baseline, from this
    poisoned set (whose triggered test set evaluates it)."""
    clf = Classifier.load(model)
    expected = training_data_digests(raw, poisoned if clf.trained_on.get("poisoned") else None)
    if clf.trained_on != expected:
        raise ConfigError(f"{model} was not trained on {raw} and {poisoned}: re-run its train stage (dvc repro)")
    return clf


def inference_model(model: nn.Module) -> nn.Module:
    """An eval-mode copy with BatchNorm folded into the preceding convs (1.4x faster on CPU, same
    predictions); the model itself when torch.fx cannot trace it."""
    from torch.fx.experimental.optimization import fuse

    try:
        return fuse(model.eval())
    except Exception:  # noqa: BLE001 - any untraceable model simply runs unfused
        return model.eval()


# Inference batch: 1024 images on a GPU; 128 on a CPU, where a batch's activations then fit in the cache (small-cnn
# and resnet6-cpu predict 1.6x faster than at 1024 on 2 cores: docs/performance.md).
INFERENCE_BATCH = {"cuda": 1024, "cpu": 128}


def inference_batch(device: torch.device) -> int:
    return INFERENCE_BATCH.get(device.type, INFERENCE_BATCH["cuda"])


def predict(
    clf: Classifier, images: torch.Tensor, batch_size: int | None = None, device: torch.device | None = None
) -> torch.Tensor:
    return predict_sets(clf, [images], batch_size, device)[0]


def predict_sets(
    clf: Classifier, image_sets: list[torch.Tensor], batch_size: int | None = None, device: torch.device | None = None
) -> list[torch.Tensor]:
    """Class predictions for several image sets with one fused inference copy of the model."""
    device = device or pick_device()
    batch_size = batch_size or inference_batch(device)
    was_training = clf.model.training
    # Move the model outside inference mode: its parameters must stay usable for training.
    model = inference_model(clf.model.to(device, memory_format=torch.channels_last))
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")
    results = []
    with torch.inference_mode():
        for images in image_sets:
            preds = []
            for batch in images.split(batch_size):
                with autocast:
                    preds.append(model(clf.normalizer(batch.to(device))).argmax(dim=1).cpu())
            results.append(torch.cat(preds) if preds else torch.empty(0, dtype=torch.int64))
    clf.model.train(was_training)
    return results
