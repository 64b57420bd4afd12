"""Fine-tuning methods: how the defender fine-tunes a model on its clean images (``finetune.method``, grid axis
``ft_method``).

Adding a method is one module with a factory under ``@METHODS.register(name, reference=...)`` and its import at
the bottom of this file. A factory takes the method's own settings (``params.yaml: finetune_methods.<name>``) as
keyword-only arguments with defaults (the one place a default lives), validates them (``METHODS.number``,
``METHODS.choice``) and returns ``run(tuning) -> record``: it fine-tunes ``tuning.clf`` in place and returns at
least ``steps``, the optimizer updates it took (the budget to compare methods by). A method's settings block may
also override the shared loop settings of ``finetune:``; the values its source uses are its ``loop`` fact
(``weight_decay: 0.0`` for FST, whose code has none), which params.yaml's block carries.

=================  ==================  =====================================================================
name               module              source
=================  ==================  =====================================================================
``ft``             ``ft.py``           vanilla fine-tuning of every layer (BackdoorBench ``defense/ft.py``)
``lp``             ``lp.py``           linear probing: the head alone (FST's code, ``--ft_mode lp``)
``fe-tuning``      ``fe_tuning.py``    head re-initialised and frozen, the rest trained (FST, ``fe-tuning``)
``fst``            ``fst.py``          feature-shift tuning (Min et al., NeurIPS 2023, ``--ft_mode fst``)
``super-ft``       ``super_ft.py``     super-fine-tuning's two-phase lr schedule (Sha et al. 2022)
``fine-pruning``   ``fine_pruning.py`` prune the least active channels, then fine-tune (BackdoorBench ``fp.py``)
``nad``            ``nad.py``          attention distillation from a fine-tuned teacher (BackdoorBench ``nad.py``)
``anp``            ``anp.py``          prune norm-layer units by masks learned under adversarial neuron noise
``i-bau``          ``i_bau.py``        unlearn a universal perturbation by implicit hypergradient (``i-bau.py``)
``ft-sam``         ``ft_sam.py``       fine-tuning with sharpness-aware minimisation (BackdoorBench ``ft-sam.py``)
=================  ==================  =====================================================================

Each module's docstring names its reference code and every difference from it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from types import MappingProxyType
from typing import Any

import torch
import torch.nn as nn

from ..classifier import Classifier
from ..datasets import Dataset
from ..defence_settings import FinetuneConfig
from ..loop import fit
from ..models import classifier_head
from ..poisoned_set import PoisonedSet
from ..registry import Registry
from ..seeding import derive_seed

LOOP_KEYS = tuple(f.name for f in fields(FinetuneConfig) if f.name not in ("clean_size", "method", "eval_every"))


@dataclass
class Tuning:
    """What a method works with: the model (changed in place), the defender's clean images and labels, the loop
    settings, the seed, the per-epoch callback, the dataset (whose test split only fine-pruning's ``stop_on: test``
    and ANP's reported BackdoorBench rule read, as BackdoorBench's rules do) and the poisoned set."""

    clf: Classifier
    images: torch.Tensor
    labels: torch.Tensor
    cfg: FinetuneConfig
    seed: int
    data: Dataset
    on_epoch_end: Callable[[int, float], None] | None = None
    progress: bool = True
    # the attacker's triggered test set: read by ANP alone, to report BackdoorBench's selection rule beside its own
    # (never to choose the model the pipeline keeps); None where the caller has none
    poisoned: PoisonedSet | None = None

    def fit(self, **options: Any) -> int:
        """``backdoor.loop.fit`` on the clean images with these settings; returns the optimizer steps."""
        return fit(
            self.clf,
            self.images,
            self.labels,
            self.cfg,
            seed=self.seed,
            on_epoch_end=self.on_epoch_end,
            progress=self.progress,
            **options,
        )


Method = Callable[[Tuning], dict[str, Any]]
MethodFactory = Callable[..., Method]
METHODS: Registry[MethodFactory] = Registry(
    "finetune.method",
    section="finetune_methods",
    facts={
        # the shared loop settings (finetune:) its source sets otherwise, which params.yaml's block for it carries; the
        # loop itself applies what the block holds (a block without them runs with finetune:'s values)
        "loop": MappingProxyType({}),
    },
)


def method_defaults(name: str) -> dict[str, Any]:
    """The method's own settings and their defaults, from its factory's signature."""
    return METHODS.defaults(name)


def split_settings(name: str, settings: dict[str, Any] | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """``finetune_methods.<name>`` checked, split into the method's own settings and overrides of the loop's."""
    settings = dict(settings or {})
    METHODS.check_keys(name, settings, extra=LOOP_KEYS)
    return (
        {k: v for k, v in settings.items() if k not in LOOP_KEYS},
        {k: v for k, v in settings.items() if k in LOOP_KEYS},
    )


def tuning_config(cfg: FinetuneConfig, name: str, settings: dict[str, Any] | None) -> FinetuneConfig:
    """The loop settings a method runs with: ``finetune:`` with its block's overrides, validated."""
    _, overrides = split_settings(name, settings)
    tuned = replace(cfg, **overrides)
    tuned.validate(METHODS.where(name))
    return tuned


def build_method(name: str, settings: dict[str, Any] | None = None) -> Method:
    own, _ = split_settings(name, settings)
    return METHODS.build(name, **own)


def check_method(name: str, settings: dict[str, Any] | None, cfg: FinetuneConfig | None = None) -> None:
    """Raise ``ConfigError`` for an unknown method or a bad setting, before any work."""
    build_method(name, settings)
    tuning_config(cfg or FinetuneConfig(), name, settings)


# ------------------------------------------------------------- the head: what LP, FE-tuning, FST and FP work on


def head_and_backbone(model: nn.Module) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    head = set(map(id, classifier_head(model).parameters()))
    params = list(model.parameters())
    return [p for p in params if id(p) in head], [p for p in params if id(p) not in head]


def reinit_head(model: nn.Module, seed: int) -> None:
    """FST's re-initialisation: weight and bias uniform in +-1/sqrt(fan_in) (nn.Linear's own reset draws the
    same distributions), seeded."""
    head = classifier_head(model)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(seed, "head-reinit"))
        bound = 1 / math.sqrt(head.in_features)
        nn.init.uniform_(head.weight, -bound, bound)
        if head.bias is not None:
            nn.init.uniform_(head.bias, -bound, bound)


def keep_head_norm(model: nn.Module) -> Callable[[], None]:
    """FST's code, in every mode: after each step the head's weight is rescaled to its Frobenius norm before
    fine-tuning (taken before any re-initialisation)."""
    head = classifier_head(model)
    norm = head.weight.detach().norm()

    @torch.no_grad()
    def rescale() -> None:
        head.weight.mul_(norm.to(head.weight.device) / head.weight.norm())

    return rescale


from . import (  # noqa: E402,F401  (register the methods)
    anp,
    fe_tuning,
    fine_pruning,
    fst,
    ft,
    ft_sam,
    i_bau,
    lp,
    nad,
    super_ft,
)

__all__ = [
    "LOOP_KEYS",
    "METHODS",
    "Method",
    "Tuning",
    "build_method",
    "check_method",
    "head_and_backbone",
    "keep_head_norm",
    "method_defaults",
    "reinit_head",
    "split_settings",
    "tuning_config",
]
