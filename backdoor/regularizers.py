"""Regularizer registry: each turns (model, inputs, labels) into the training loss.

``none`` is plain cross-entropy. The defensive regularizers of the paper are added here, each one
factory plus one registry entry; their settings come from ``params.yaml: regularizers.<name>``.

A factory is called as ``factory(model=..., label_smoothing=..., **settings)``. It validates the
settings (a :class:`ConfigError` naming ``regularizers.<name>.<key>``) and returns
``loss(model, x, y) -> scalar tensor`` for a normalized float batch ``x`` and int64 labels ``y``.
With ``model=None`` (``check_regularizer``, used by ``Experiment.validate`` before any model exists)
everything but layer names is checked; the names are then checked on the first call.

The paper gives no hyper-parameters: each default below comes from the method's original source,
cited where it is defined (``DEFAULTS`` collects them).

Hidden layers are reached one way for every model: forward hooks (``backdoor.hooks``) on the modules
named by ``backdoor.models.hidden_layers(model)``. ``manifold-mixup`` and ``snnl`` therefore run the
eager model even when ``train.compile`` is on (hooks added per call are invisible to a compiled
graph); ``contrastive`` calls ``forward_features``/``forward_head``, which a compiled wrapper also
forwards to the eager model. Only ``none`` and ``logit-squeeze`` use the compiled forward.
"""

from __future__ import annotations

import math
import random
from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from .errors import ConfigError, choices_error
from .hooks import capture_outputs, replace_output, unwrap
from .models import hidden_layers

Loss = Callable[[nn.Module, "torch.Tensor", "torch.Tensor"], "torch.Tensor"]
RegularizerFactory = Callable[..., Loss]
REGULARIZERS: dict[str, RegularizerFactory] = {}

INPUT = "input"  # manifold mixup's layer 0: mix the input batch itself

# Defaults of each regularizer's settings; ``layers: None`` means the model's hidden stages.
DEFAULTS: dict[str, dict] = {
    # Hadsell, Chopra & LeCun (2006) give the loss but no margin for a classifier's embedding. The
    # embedding is L2-normalized here (its scale is otherwise arbitrary, so a fixed margin would mean
    # nothing), and 1.0 is the margin that goes with unit-norm embeddings in TensorFlow's
    # tf.contrib.losses.metric_learning.contrastive_loss and pytorch-metric-learning's ContrastiveLoss
    # (neg_margin=1.0). Weight 1.0: CE and the contrastive term counted equally (no published value).
    "contrastive": {"weight": 1.0, "margin": 1.0},
    # Kannan, Kurakin & Goodfellow (2018) logit squeezing, lambda * mean_i ||logits_i||_2: 0.5 is
    # lsq_lambda in the MNIST/CIFAR-10 code of Mosbach et al. (2018), "Logit pairing methods can fool
    # gradient-based attacks" (uds-lsv/evaluating-logit-pairing-methods, mnist_cifar10/train.py); their
    # Tiny-ImageNet code (after Kannan et al.'s tensorflow/models release) uses 0.05.
    "logit-squeeze": {"weight": 0.5},
    # Verma et al. (2019): alpha 2.0 is --mixup_alpha of the supervised manifold-mixup command in
    # vikasverma1077/manifold_mixup (supervised/README.md, CIFAR-10 PreActResNet).
    "manifold-mixup": {"alpha": 2.0, "layers": None},
    # Frosst, Papernot & Hinton (2019): temperature 100 and factor -10 (SNNL maximized: hidden
    # representations of classes entangled) are the defaults of cleverhans' SNNLCrossEntropy.
    "snnl": {"temperature": 100.0, "factor": -10.0, "layers": None},
}

SNNL_EPS = 1e-5  # cleverhans SNNLCrossEntropy.STABILITY_EPS


def register_regularizer(name: str) -> Callable[[RegularizerFactory], RegularizerFactory]:
    def add(factory: RegularizerFactory) -> RegularizerFactory:
        REGULARIZERS[name] = factory
        return factory
    return add


def build_regularizer(name: str, model: nn.Module | None = None, label_smoothing: float = 0.0, **settings) -> Loss:
    """Validate ``settings`` and return the loss. ``model`` lets a factory check layer names."""
    if name not in REGULARIZERS:
        raise choices_error("regularizer", name, sorted(REGULARIZERS))
    return REGULARIZERS[name](model=model, label_smoothing=label_smoothing, **settings)


def check_regularizer(name: str, settings: dict) -> None:
    build_regularizer(name, None, **settings)


# ---------------------------------------------------------------- settings validation

def _settings(name: str, settings: dict) -> dict:
    """``settings`` over the defaults; an unknown key names itself and lists the valid ones."""
    defaults = DEFAULTS[name]
    for key in sorted(settings):
        if key not in defaults:
            raise ConfigError(f"regularizers.{name}.{key}: unknown setting; valid settings: "
                              f"{', '.join(sorted(defaults))}")
    return {**defaults, **settings}


def _number(name: str, key: str, value: object, *, minimum: float | None = None, strict: bool = False) -> float:
    where = f"regularizers.{name}.{key}"
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{where}: must be a finite number, got {value!r}")
    if minimum is not None and (value <= minimum if strict else value < minimum):
        raise ConfigError(f"{where}: must be {'>' if strict else '>='} {minimum:g}, got {value!r}")
    return float(value)


def _layer_names(name: str, value: object, *, allow_input: bool) -> list[str] | None:
    """Check the form of a ``layers`` setting (None: the model's hidden stages)."""
    if value is None:
        return None
    where = f"regularizers.{name}.layers"
    if isinstance(value, str) or not isinstance(value, (list, tuple)) or not value:
        raise ConfigError(f"{where}: must be a non-empty list of layer names, got {value!r}")
    for layer in value:
        if not isinstance(layer, str) or not layer:
            raise ConfigError(f"{where}: layer names must be non-empty strings, got {layer!r}")
        if layer == INPUT and not allow_input:
            raise ConfigError(f"{where}: {INPUT!r} is not a hidden layer; list hidden layers only")
    if len(set(value)) != len(value):
        raise ConfigError(f"{where}: a layer is listed twice in {list(value)}")
    return list(value)


def _resolve_layers(name: str, layers: list[str] | None, model: nn.Module, *, allow_input: bool) -> list[str]:
    """The layer list for ``model``: the given names, checked against its hidden stages, or all of them."""
    hidden = hidden_layers(model)
    valid = ([INPUT] if allow_input else []) + hidden
    if layers is None:
        if not hidden:
            raise ConfigError(f"regularizers.{name}.layers: {type(model).__name__} exposes no hidden layers "
                              f"(no feature_info); list the layers explicitly")
        return valid
    for layer in layers:
        if layer not in valid:
            raise ConfigError(f"regularizers.{name}.layers: unknown layer {layer!r} for {type(model).__name__}; "
                              f"valid layers: {', '.join(valid)}")
    return layers


class _Layers:
    """Layer names resolved against the model: at build time when it is known, else on first use."""

    def __init__(self, name: str, layers: list[str] | None, model: nn.Module | None, *, allow_input: bool):
        self.name, self.layers, self.allow_input = name, layers, allow_input
        self.model: nn.Module | None = None
        self.resolved: list[str] = []
        if model is not None:
            self.for_model(model)

    def for_model(self, model: nn.Module) -> list[str]:
        model = unwrap(model)
        if model is not self.model:
            self.resolved = _resolve_layers(self.name, self.layers, model, allow_input=self.allow_input)
            self.model = model
        return self.resolved


def _fp32(tensor: torch.Tensor) -> torch.autocast:
    """A region where matmuls stay float32 even inside the training loop's bf16 autocast."""
    return torch.autocast(device_type=tensor.device.type, enabled=False)


# ---------------------------------------------------------------- none

@register_regularizer("none")
def no_regularizer(*, model=None, label_smoothing: float = 0.0, **settings) -> Loss:
    if settings:
        raise ConfigError(f"regularizers.none: unknown setting(s) {', '.join(sorted(settings))}; it takes none")
    return lambda net, x, y: F.cross_entropy(net(x), y, label_smoothing=label_smoothing)


# ---------------------------------------------------------------- contrastive

def contrastive_loss(embeddings: torch.Tensor, labels: torch.Tensor, margin: float) -> torch.Tensor:
    """Hadsell, Chopra & LeCun (2006) over all pairs of the batch, on L2-normalized embeddings.

    Same label: ``d^2 / 2``; different labels: ``max(0, margin - d)^2 / 2``; averaged over the
    ``n(n-1)/2`` pairs. Zero for a batch of one.
    """
    n = len(labels)
    if n < 2:
        return embeddings.sum() * 0.0
    with _fp32(embeddings):
        e = F.normalize(embeddings.flatten(1).float(), dim=1)
        sq = (e * e).sum(1)
        d2 = (sq[:, None] + sq[None, :] - 2 * e @ e.T).clamp_min(0)
        d = d2.clamp_min(1e-12).sqrt()  # the clamp keeps the gradient finite at d = 0
        same = labels[:, None] == labels[None, :]
        pair = 0.5 * torch.where(same, d2, (margin - d).clamp_min(0) ** 2)
        off_diagonal = ~torch.eye(n, dtype=torch.bool, device=e.device)
        return pair[off_diagonal].mean()  # each unordered pair twice: the same mean


@register_regularizer("contrastive")
def contrastive(*, model=None, label_smoothing: float = 0.0, **settings) -> Loss:
    """CE + weight * contrastive loss on the penultimate embedding (``forward_head(..., pre_logits=True)``)."""
    values = _settings("contrastive", settings)
    weight = _number("contrastive", "weight", values["weight"], minimum=0.0)
    margin = _number("contrastive", "margin", values["margin"], minimum=0.0, strict=True)

    def loss(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        features = net.forward_features(x)
        logits = net.forward_head(features)
        embeddings = net.forward_head(features, pre_logits=True)
        return F.cross_entropy(logits, y, label_smoothing=label_smoothing) + weight * contrastive_loss(
            embeddings, y, margin)
    return loss


# ---------------------------------------------------------------- logit squeezing

@register_regularizer("logit-squeeze")
def logit_squeeze(*, model=None, label_smoothing: float = 0.0, **settings) -> Loss:
    """CE + weight * mean over the batch of the logits' L2 norm (Kannan et al. 2018)."""
    values = _settings("logit-squeeze", settings)
    weight = _number("logit-squeeze", "weight", values["weight"], minimum=0.0)

    def loss(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        logits = net(x)
        squeeze = logits.float().norm(dim=1).mean()
        return F.cross_entropy(logits, y, label_smoothing=label_smoothing) + weight * squeeze
    return loss


# ---------------------------------------------------------------- manifold mixup

def mixup_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, layer: str, lam: float,
               perm: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
    """One manifold-mixup step with its draws given: mix at ``layer`` (``"input"``: the batch itself).

    ``lam * CE(out, y) + (1 - lam) * CE(out, y[perm])`` where ``out`` is the model's output after
    ``h -> lam * h + (1 - lam) * h[perm]`` at that layer's output.
    """
    def mix(h: torch.Tensor) -> torch.Tensor:
        return lam * h + (1 - lam) * h[perm]

    if layer == INPUT:
        out = model(mix(x))
    else:
        with replace_output(model, layer, mix):
            out = model(x)
    return (lam * F.cross_entropy(out, y, label_smoothing=label_smoothing)
            + (1 - lam) * F.cross_entropy(out, y[perm], label_smoothing=label_smoothing))


class ManifoldMixup:
    """Verma et al. (2019): per batch, a uniformly drawn layer of ``layers``, lam ~ Beta(alpha, alpha)
    (lam = 1 when alpha = 0, as in the reference code's get_lambda), and a random pairing of the batch.

    The draws come from ``generator`` (a CPU ``torch.Generator``), or from torch's global RNG, which
    ``fit`` seeds, when it is None.
    """

    def __init__(self, alpha: float, layers: _Layers, label_smoothing: float,
                 generator: torch.Generator | None = None):
        self.alpha, self.layers, self.label_smoothing, self.generator = alpha, layers, label_smoothing, generator

    def sample(self, n: int, layers: list[str]) -> tuple[str, float, torch.Tensor]:
        """(layer, lam, permutation of range(n)) for one batch."""
        rng = random.Random(int(torch.randint(0, 2 ** 62, (1,), generator=self.generator)))
        layer = layers[rng.randrange(len(layers))]
        lam = rng.betavariate(self.alpha, self.alpha) if self.alpha > 0 else 1.0
        return layer, lam, torch.randperm(n, generator=self.generator)

    def __call__(self, net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        model = unwrap(net)
        layer, lam, perm = self.sample(len(y), self.layers.for_model(model))
        return mixup_loss(model, x, y, layer, lam, perm.to(x.device), self.label_smoothing)


@register_regularizer("manifold-mixup")
def manifold_mixup(*, model=None, label_smoothing: float = 0.0, generator: torch.Generator | None = None,
                   **settings) -> Loss:
    """Mixup of hidden states at a random layer; ``layers`` default: ``input`` and the model's hidden stages."""
    values = _settings("manifold-mixup", settings)
    alpha = _number("manifold-mixup", "alpha", values["alpha"], minimum=0.0)
    layers = _layer_names("manifold-mixup", values["layers"], allow_input=True)
    if generator is not None and not isinstance(generator, torch.Generator):
        raise ConfigError(f"regularizers.manifold-mixup.generator: must be a torch.Generator, got {generator!r}")
    return ManifoldMixup(alpha, _Layers("manifold-mixup", layers, model, allow_input=True), label_smoothing,
                         generator)


# ---------------------------------------------------------------- soft nearest neighbour loss

def soft_nearest_neighbor_loss(hidden: torch.Tensor, labels: torch.Tensor, temperature: float) -> torch.Tensor:
    """SNNL of Frosst, Papernot & Hinton (2019) as in cleverhans' SNNLCrossEntropy.SNNL.

    On flattened activations ``h``: ``f_ij = exp(-||h_i - h_j||^2 / T)`` for ``j != i``;
    ``p_ij = f_ij / (eps + sum_k f_ik)``; ``SNNL = mean_i -log(eps + sum_{j: y_j = y_i} p_ij)``.

    One change for numerical range: each row of ``f`` is scaled by ``exp(min_j d_ij / T)`` (its
    nearest neighbour gets weight 1). The ratio is unchanged; only the ``eps`` terms' relative size
    differs, so the value equals cleverhans' whenever its kernel sums are much larger than ``eps``.
    Raw activations have squared distances in the thousands, where cleverhans' ``exp(-d/T)`` falls
    below ``eps`` and its loss sticks at ``-log(eps)`` with no useful gradient; this one does not.
    Distances are computed in float32 on batch-centred activations. Zero for a batch of one.
    """
    n = len(labels)
    if n < 2:
        return hidden.sum() * 0.0
    with _fp32(hidden):
        h = hidden.flatten(1).float()
        h = h - h.mean(0, keepdim=True)  # distances are shift-invariant; smaller norms, less cancellation
        sq = (h * h).sum(1)
        d = (sq[:, None] + sq[None, :] - 2 * h @ h.T).clamp_min(0)
        self_pair = torch.eye(n, dtype=torch.bool, device=h.device)
        logits = (-d / temperature).masked_fill(self_pair, float("-inf"))  # exclude self
        f = torch.exp(logits - logits.max(dim=1, keepdim=True).values)
        pick = f / (SNNL_EPS + f.sum(dim=1, keepdim=True))
        same = labels[:, None] == labels[None, :]
        return -torch.log(SNNL_EPS + (pick * same).sum(dim=1)).mean()


@register_regularizer("snnl")
def snnl(*, model=None, label_smoothing: float = 0.0, **settings) -> Loss:
    """CE + factor * sum over ``layers`` of the SNNL of their flattened outputs (cleverhans SNNLCrossEntropy).

    A negative factor maximizes SNNL (entangles the classes' hidden representations). The
    temperature is fixed; cleverhans' optional one-step temperature optimization is not done.
    """
    values = _settings("snnl", settings)
    temperature = _number("snnl", "temperature", values["temperature"], minimum=0.0, strict=True)
    factor = _number("snnl", "factor", values["factor"])
    layers = _Layers("snnl", _layer_names("snnl", values["layers"], allow_input=False), model, allow_input=False)

    def loss(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        module = unwrap(net)
        names = layers.for_model(module)
        with capture_outputs(module, names) as hidden:
            logits = module(x)
        missing = [name for name in names if name not in hidden]
        if missing:
            raise RuntimeError(f"regularizers.snnl.layers: {', '.join(missing)} did not run in the forward pass")
        total = sum(soft_nearest_neighbor_loss(hidden[name], y, temperature) for name in names)
        return F.cross_entropy(logits, y, label_smoothing=label_smoothing) + factor * total
    return loss
