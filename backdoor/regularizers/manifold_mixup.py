"""``manifold-mixup``: Verma et al. 2019, as their code mixes (input or after block 1 or 2, BCE)."""

from __future__ import annotations

import random

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import ConfigError
from ..hooks import INPUT, Layers, layer_names, replace_output, unwrap
from ..models import block_layers
from ..validation import check_choice
from . import REGULARIZERS, Loss, fp32, number

MIXUP_LOSSES = ("bce", "ce")


def mixup_loss(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    layer: str,
    lam: float,
    perm: torch.Tensor,
    label_smoothing: float = 0.0,
    kind: str = "bce",
) -> torch.Tensor:
    """One manifold-mixup step with its draws given: mix at ``layer`` (``"input"``: the batch itself).

    ``h -> lam * h + (1 - lam) * h[perm]`` at that layer's output, and the one-hot targets mixed the same
    way, ``t = lam * onehot(y) + (1 - lam) * onehot(y[perm])`` (label smoothing applied to the one-hots).
    ``kind="bce"``: binary cross-entropy of the softmax output against ``t``, averaged over the batch and
    the classes, as the reference code trains (supervised/main.py: ``bce_loss(softmax(output),
    reweighted_target)``); ``kind="ce"``: cross-entropy against ``t``, i.e. ``lam * CE(out, y) + (1 - lam)
    * CE(out, y[perm])`` (the usual mixup loss).
    """

    def mix(h: torch.Tensor) -> torch.Tensor:
        return lam * h + (1 - lam) * h[perm]

    if layer == INPUT:
        out = model(mix(x))
    else:
        with replace_output(model, layer, mix):
            out = model(x)
    classes = out.shape[1]
    onehot = F.one_hot(y, classes).float() * (1 - label_smoothing) + label_smoothing / classes
    target = lam * onehot + (1 - lam) * onehot[perm]
    with fp32(out):
        if kind == "ce":
            return -(target * out.float().log_softmax(dim=1)).sum(dim=1).mean()
        return F.binary_cross_entropy(out.float().softmax(dim=1), target)


class ManifoldMixup:
    """Verma et al. (2019): per batch, a uniformly drawn layer of ``layers``, lam ~ Beta(alpha, alpha)
    (lam = 1 when alpha = 0, as in the reference code's get_lambda), and a random pairing of the batch.

    The draws come from ``generator`` (a CPU ``torch.Generator``), or from torch's global RNG, which
    ``fit`` seeds, when it is None.
    """

    def __init__(
        self, alpha: float, layers: Layers, label_smoothing: float, kind: str, generator: torch.Generator | None = None
    ):
        self.alpha, self.layers, self.label_smoothing, self.kind = alpha, layers, label_smoothing, kind
        self.generator = generator

    def sample(self, n: int, layers: list[str]) -> tuple[str, float, torch.Tensor]:
        """(layer, lam, permutation of range(n)) for one batch."""
        rng = random.Random(int(torch.randint(0, 2**62, (1,), generator=self.generator)))
        layer = layers[rng.randrange(len(layers))]
        lam = rng.betavariate(self.alpha, self.alpha) if self.alpha > 0 else 1.0
        return layer, lam, torch.randperm(n, generator=self.generator)

    def __call__(self, net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        model = unwrap(net)
        layer, lam, perm = self.sample(len(y), self.layers.for_model(model))
        return mixup_loss(model, x, y, layer, lam, perm.to(x.device), self.label_smoothing, self.kind)


def reference_mixup_layers(model: nn.Module) -> list[str]:
    """The reference code's mixing points: the input and the outputs of the first two blocks
    (``layer_mix = random.randint(0, 2)`` in PreActResNet.forward: input, after layer1, after layer2)."""
    return [INPUT, *block_layers(model)[:2]]


@REGULARIZERS.register("manifold-mixup", reference="Verma et al. 2019, github.com/vikasverma1077/manifold_mixup")
def manifold_mixup(
    *,
    model=None,
    label_smoothing: float = 0.0,
    generator: torch.Generator | None = None,
    alpha: float = 2.0,
    layers: list[str] | None = None,
    loss: str = "bce",
) -> Loss:
    """Manifold mixup (Verma et al. 2019) as in vikasverma1077/manifold_mixup (supervised/).

    alpha 2.0 is --mixup_alpha of the supervised manifold-mixup command (supervised/README.md, CIFAR-10
    PreActResNet). ``layers`` (None): the input and the first two blocks, as the reference draws them; any
    list of ``input`` and the model's hidden layers can be given. ``loss``: ``bce`` as the reference trains,
    or ``ce`` (see ``mixup_loss``).
    """
    alpha = number("manifold-mixup", "alpha", alpha, low=0)
    names = layer_names("manifold-mixup", layers, allow_input=True)
    kind = check_choice("regularizers.manifold-mixup.loss", loss, MIXUP_LOSSES)
    if generator is not None and not isinstance(generator, torch.Generator):
        raise ConfigError(f"regularizers.manifold-mixup.generator: must be a torch.Generator, got {generator!r}")
    resolved = Layers("manifold-mixup", names, model, allow_input=True, default=reference_mixup_layers)
    return ManifoldMixup(alpha, resolved, label_smoothing, kind, generator)
