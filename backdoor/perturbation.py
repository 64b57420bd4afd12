"""Label-consistent poisoning's first step (Turner, Tsipras and Madry 2019): the images a strategy may poison made
hard to classify by an L-inf PGD attack on a model trained on clean data, before the trigger is added.

PGD on the 0-255 pixel scale, as ``LinfPGDAttack`` of MadryLab/cifar10_challenge @ f15682d (``pgd_attack.py``,
``config.json``): from ``x_nat`` plus uniform noise in [-eps, eps] (``random_start``), clipped to [0, 255], take
``steps`` steps ``x += step_size * sign(grad_x CE(model(x), y))`` on the true labels ``y`` (untargeted: the loss
goes up), each followed by clipping to the eps-ball around ``x_nat`` and to [0, 255]; the result is rounded to
uint8 inside the ball. Defaults: eps 8 (8/255 of the [0, 1] range, the paper's smaller L-inf bound on CIFAR-10),
10 steps of 2, random start: that config's.

Sources read: the paper (arXiv 1912.02771); MadryLab/label-consistent-backdoor-code @ b18d8ab, which ships the
perturbed CIFAR-10 training sets (``fully_poisoned_training_datasets/inf_*.npy``) and not the code that made them,
so the attack follows the lab's cifar10_challenge PGD; THUYimingLi/BackdoorBox @ 0c2a083,
``core/attacks/LabelConsistent.py`` (eps 8, step 1.5, 100 steps, no random start: set ``steps``, ``step_size`` and
``random_start`` to run it). Differences:

* the source model is the grid cell's clean baseline (the same dataset, architecture, regularizer, seed and
  training, trained with no poison), not a separately trained model of their own;
* only the strategy's eligible images of the training pool are perturbed (label-consistent: the target class;
  they perturb the whole training set and then pick), once per clean model: every poison rate and trigger of the
  cell reads the same perturbed images;
* the random start is drawn from ``generator(seed, "perturb-start")``, ``BATCH`` images at a time; the model runs
  in eval mode (BatchNorm statistics fixed).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from .errors import ConfigError
from .files import load_tensors, manifest_sha256, read_json
from .seeding import generator

BATCH = 256  # images per attack batch: fixed, as the random start is drawn per batch
Logits = Callable[[torch.Tensor], torch.Tensor]  # float images in [0, 1] -> logits, differentiable


@dataclass(frozen=True)
class PGD:
    """L-inf PGD on the 0-255 scale (see the module doc)."""

    eps: float = 8.0
    steps: int = 10
    step_size: float = 2.0
    random_start: bool = True


def pgd_attack(
    logits: Logits,
    images: torch.Tensor,
    labels: torch.Tensor,
    pgd: PGD,
    generator: torch.Generator,
    device: torch.device | None = None,
) -> torch.Tensor:
    """uint8 ``images`` moved by PGD to raise the loss of their ``labels``, within ``pgd.eps`` of each pixel;
    ``logits`` runs on ``device`` (default: the images')."""
    parts = []
    for start in range(0, len(images), BATCH):
        x_nat = images[start : start + BATCH].to(device or images.device, torch.float32)
        y = labels[start : start + BATCH].to(x_nat.device)
        parts.append(_attack_batch(logits, x_nat, y, pgd, generator).cpu())
    return torch.cat(parts) if parts else images.clone()


def _attack_batch(
    logits: Logits, x_nat: torch.Tensor, y: torch.Tensor, pgd: PGD, generator: torch.Generator
) -> torch.Tensor:
    low, high = (x_nat - pgd.eps).clamp(0, 255), (x_nat + pgd.eps).clamp(0, 255)
    x = x_nat
    if pgd.random_start:
        noise = torch.rand(x_nat.shape, generator=generator) * 2 - 1  # drawn on the CPU: the same on any device
        x = (x_nat + pgd.eps * noise.to(x_nat.device)).clamp(0, 255)
    for _ in range(pgd.steps):
        x = x.detach().requires_grad_(True)
        loss = F.cross_entropy(logits(x / 255), y, reduction="sum")
        (grad,) = torch.autograd.grad(loss, x)
        x = torch.maximum(torch.minimum(x.detach() + pgd.step_size * grad.sign(), high), low)
    # rounding could step past a fractional eps: clamp to the whole pixels inside the ball
    whole = float(int(pgd.eps))
    return x.detach().round().clamp_(x_nat - whole, x_nat + whole).clamp_(0, 255).to(torch.uint8)


@torch.no_grad()
def loss_and_accuracy(
    logits: Logits, images: torch.Tensor, labels: torch.Tensor, device: torch.device | None = None
) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of uint8 ``images`` (what the perturbation's record reports)."""
    total_loss, correct = 0.0, 0
    for start in range(0, len(images), BATCH):
        x = images[start : start + BATCH].to(device or images.device).float() / 255
        y = labels[start : start + BATCH].to(x.device)
        out = logits(x)
        total_loss += float(F.cross_entropy(out, y, reduction="sum"))
        correct += int((out.argmax(1) == y).sum())
    count = max(len(images), 1)
    return total_loss / count, correct / count


def perturb_images(
    logits: Logits,
    images: torch.Tensor,
    labels: torch.Tensor,
    positions: torch.Tensor,
    pgd: PGD,
    seed: int,
    device: torch.device | None = None,
) -> tuple[PerturbedSet, dict[str, float]]:
    """The training images at ``positions`` (sorted) perturbed by ``pgd`` against ``logits``, and the clean model's
    loss and accuracy on them before and after (its loss goes up: what the attack is for)."""
    clean, true = images[positions], labels[positions]
    perturbed = pgd_attack(logits, clean, true, pgd, generator(seed, "perturb-start"), device)
    (loss_before, acc_before), (loss_after, acc_after) = (
        loss_and_accuracy(logits, x, true, device) for x in (clean, perturbed)
    )
    stats = {"loss_before": loss_before, "loss_after": loss_after, "acc_before": acc_before, "acc_after": acc_after}
    return PerturbedSet(positions, perturbed), stats


# ---------------------------------------------------------------- the stored perturbed images


@dataclass
class PerturbedSet:
    """Perturbed copies of some training images: ``indices`` int64 (P,) sorted positions in the training set,
    ``images`` uint8 (P, C, H, W)."""

    indices: torch.Tensor
    images: torch.Tensor

    def images_for(self, positions: torch.Tensor) -> torch.Tensor:
        """The perturbed images of these training positions (each must be among ``indices``)."""
        where = torch.searchsorted(self.indices, positions).clamp_(max=max(len(self.indices) - 1, 0))
        found = len(self.indices) > 0 and bool((self.indices[where] == positions).all())
        if len(positions) and not found:
            raise ConfigError(
                "perturbed set: it lacks images the poison stage draws (another pool, target or strategy): "
                "re-run its perturb stage (dvc repro)"
            )
        return self.images[where] if len(positions) else self.images[:0].clone()

    def to_dict(self) -> dict[str, torch.Tensor]:
        return {"indices": self.indices, "images": self.images}


def load_perturbed(folder: str | Path, raw: str | Path) -> tuple[PerturbedSet, dict]:
    """A perturb stage's output (checksummed) and its manifest, checked to come from the stored dataset ``raw``."""
    manifest = read_json(Path(folder) / "manifest.json")
    if manifest.get("raw_manifest_sha256") != manifest_sha256(raw):
        raise ConfigError(f"{folder} was not built from the dataset in {raw}: re-run its perturb stage (dvc repro)")
    tensors = load_tensors(Path(folder) / "perturbed.pt", manifest["sha256"]["perturbed.pt"])
    return PerturbedSet(tensors["indices"], tensors["images"]), manifest
