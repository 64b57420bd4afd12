"""Re-learning (Min et al., NeurIPS 2024, "Towards Understanding the Superficial Safety of Backdoor Defense"): is a
purified model only superficially clean?

A copy of the defended model is re-tuned on the defender's clean set plus a handful of the attacker's poisoned
images (their setting: 5 epochs, 5 poisons); so is a copy of the clean model of the same cell (trained on clean data,
never poisoned) on the same images. A purification that removed the backdoor leaves a model that learns it back no
faster than the clean one; a superficial one brings it back at once. The originals are never changed.

Reference: ``fine_tune/ft_poison.py`` beside FST's code (Min et al.'s repository). Differences: the re-tuning runs
this project's loop (``backdoor.loop.fit``) with ``relearn:``'s settings, and the clean set is the defender's own
(``backdoor.finetuning.clean_finetune_indices``), so the two models see exactly the images the defence saw plus the
poisons.
"""

from __future__ import annotations

import copy

import torch

from .classifier import Classifier
from .datasets import Dataset
from .defence_settings import DefenceExperiment, RelearnConfig
from .errors import ConfigError
from .evaluation import evaluate
from .finetuning import clean_finetune_indices
from .loop import fit
from .poisoned_set import PoisonedSet
from .seeding import generator

RELEARN_KEYS = ("relearn_clean_acc", "relearn_asr", "relearn_robust_acc")


def relearn_poisons(poisoned: PoisonedSet, count: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``count`` of the attacker's poisoned training images (a seeded draw, cover images excluded) with the labels
    the attacker gave them."""
    payload = ~torch.isin(poisoned.indices, poisoned.cover_indices)
    images, labels = poisoned.images[payload], poisoned.labels[payload]
    if count > len(labels):
        raise ConfigError(f"relearn.poisons: {count} asked, but the poisoned set has {len(labels)} poisoned images")
    pick = torch.randperm(len(labels), generator=generator(seed, "relearn-poisons"))[:count].sort().values
    return images[pick], labels[pick]


def relearn_set(
    exp: DefenceExperiment, data: Dataset, poisoned: PoisonedSet, cfg: RelearnConfig
) -> tuple[torch.Tensor, torch.Tensor]:
    """The defender's clean set (as the defence had it) with ``cfg.poisons`` poisoned images appended."""
    keep = clean_finetune_indices(exp, poisoned)
    images, labels = relearn_poisons(poisoned, cfg.poisons, exp.seed)
    return torch.cat([data.train.images[keep], images]), torch.cat([data.train.labels[keep], labels])


def relearn(
    clf: Classifier,
    images: torch.Tensor,
    labels: torch.Tensor,
    cfg: RelearnConfig,
    data: Dataset,
    poisoned: PoisonedSet,
    seed: int,
    progress: bool = False,
) -> dict[str, float]:
    """Re-tune a copy of ``clf`` (its lr resolved against the model's own training peak lr when written as
    ``"<m>x"``); CA, ASR and RA of the copy. ``clf`` is left as it was."""
    model = copy.deepcopy(clf)
    fit(model, images, labels, cfg.resolve(clf.training.get("peak_lr")), seed=seed, progress=progress)
    return {f"relearn_{k}": v for k, v in evaluate(model, data, poisoned).items()}
