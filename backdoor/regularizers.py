"""Regularizer registry: each turns (model, inputs, labels) into the training loss.

``none`` is plain cross-entropy. The defensive regularizers of the paper are added here, each one
factory plus one registry entry; their settings come from ``params.yaml: regularizers.<name>``.

A factory is called as ``factory(model=..., label_smoothing=..., **settings)``; its settings are its
other keyword-only arguments, whose defaults come from the method's source (cited at each factory; the
paper gives no hyper-parameters). It validates them (a :class:`ConfigError` naming
``regularizers.<name>.<key>``) and returns ``loss(model, x, y) -> scalar tensor`` for a normalized float
batch ``x`` and int64 labels ``y``. With ``model=None`` (``check_regularizer``, used before any model
exists) everything but layer names is checked; the names are then checked on the first call.

Hidden layers are reached one way for every model: forward hooks (``backdoor.hooks``) on the modules
named by ``backdoor.models.hidden_layers`` / ``block_layers``. ``manifold-mixup`` and ``snnl`` therefore
run the eager model even when ``train.compile`` is on (hooks added per call are invisible to a compiled
graph); ``contrastive`` calls ``forward_features``/``forward_head``, which a compiled wrapper also
forwards to the eager model. Only ``none`` and ``logit-squeeze`` use the compiled forward.

A loss may also have ``epoch_terms() -> dict``: the mean of its parts since the last call (SNNL reports
cross-entropy and its own term), which the training stage logs per epoch.
"""

from __future__ import annotations

import random
from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from .errors import ConfigError, choices_error
from .hooks import INPUT, Layers, capture_outputs, layer_names, replace_output, unwrap
from .models import block_layers, hidden_layers
from .validation import check_bool, check_choice, check_keys, check_number, setting_names

Loss = Callable[[nn.Module, "torch.Tensor", "torch.Tensor"], "torch.Tensor"]
RegularizerFactory = Callable[..., Loss]
REGULARIZERS: dict[str, RegularizerFactory] = {}

BUILT_IN = ("model", "label_smoothing", "generator")  # passed by the caller, not settings
SNNL_EPS = 1e-5  # cleverhans SNNLCrossEntropy.STABILITY_EPS
SNNL_TEMPERATURE_STEP = 0.1  # cleverhans optimized_temp_SNNL: t <- t - 0.1 * dSNNL/dt


def register_regularizer(name: str) -> Callable[[RegularizerFactory], RegularizerFactory]:
    def add(factory: RegularizerFactory) -> RegularizerFactory:
        REGULARIZERS[name] = factory
        return factory
    return add


def build_regularizer(name: str, model: nn.Module | None = None, label_smoothing: float = 0.0, **settings) -> Loss:
    """Validate ``settings`` and return the loss. ``model`` lets a factory check layer names."""
    if name not in REGULARIZERS:
        raise choices_error("regularizer", name, sorted(REGULARIZERS))
    check_keys(f"regularizers.{name}", {k: v for k, v in settings.items() if k not in BUILT_IN},
               setting_names(REGULARIZERS[name], BUILT_IN))
    return REGULARIZERS[name](model=model, label_smoothing=label_smoothing, **settings)


def check_regularizer(name: str, settings: dict) -> None:
    build_regularizer(name, None, **settings)


def regularizer_defaults(name: str) -> dict:
    """A regularizer's settings with their defaults (its factory's keyword-only arguments)."""
    import inspect

    params = inspect.signature(REGULARIZERS[name]).parameters
    return {key: params[key].default for key in setting_names(REGULARIZERS[name], BUILT_IN)}


# ---------------------------------------------------------------- settings validation

def _number(name: str, key: str, value: object, **bounds) -> float:
    return float(check_number(f"regularizers.{name}.{key}", value, **bounds))


def _fp32(tensor: torch.Tensor) -> torch.autocast:
    """A region where matmuls stay float32 even inside the training loop's bf16 autocast."""
    return torch.autocast(device_type=tensor.device.type, enabled=False)


# ---------------------------------------------------------------- none

@register_regularizer("none")
def no_regularizer(*, model=None, label_smoothing: float = 0.0) -> Loss:
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
def contrastive(*, model=None, label_smoothing: float = 0.0, weight: float = 1.0, margin: float = 1.0) -> Loss:
    """CE + weight * contrastive loss on the penultimate embedding (``forward_head(..., pre_logits=True)``).

    Hadsell, Chopra & LeCun (2006) give the loss but no margin for a classifier's embedding. The embedding
    is L2-normalized here (its scale is otherwise arbitrary, so a fixed margin would mean nothing), and 1.0
    is the margin that goes with unit-norm embeddings in TensorFlow's
    tf.contrib.losses.metric_learning.contrastive_loss and pytorch-metric-learning's ContrastiveLoss
    (neg_margin=1.0). Weight 1.0: CE and the contrastive term counted equally (no published value).
    """
    weight = _number("contrastive", "weight", weight, low=0)
    margin = _number("contrastive", "margin", margin, low=0, low_open=True)

    def loss(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        features = net.forward_features(x)
        logits = net.forward_head(features)
        embeddings = net.forward_head(features, pre_logits=True)
        return F.cross_entropy(logits, y, label_smoothing=label_smoothing) + weight * contrastive_loss(
            embeddings, y, margin)
    return loss


# ---------------------------------------------------------------- logit squeezing

@register_regularizer("logit-squeeze")
def logit_squeeze(*, model=None, label_smoothing: float = 0.0, weight: float = 0.5) -> Loss:
    """CE + weight * mean over the batch of the logits' L2 norm (Kannan, Kurakin & Goodfellow 2018).

    0.5 is lsq_lambda in the MNIST/CIFAR-10 code of Mosbach et al. (2018), "Logit pairing methods can fool
    gradient-based attacks" (uds-lsv/evaluating-logit-pairing-methods, mnist_cifar10/train.py); their
    Tiny-ImageNet code (after Kannan et al.'s tensorflow/models release) uses 0.05.
    """
    weight = _number("logit-squeeze", "weight", weight, low=0)

    def loss(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        logits = net(x)
        squeeze = logits.float().norm(dim=1).mean()
        return F.cross_entropy(logits, y, label_smoothing=label_smoothing) + weight * squeeze
    return loss


# ---------------------------------------------------------------- manifold mixup

MIXUP_LOSSES = ("bce", "ce")


def mixup_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, layer: str, lam: float,
               perm: torch.Tensor, label_smoothing: float = 0.0, kind: str = "bce") -> torch.Tensor:
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
    with _fp32(out):
        if kind == "ce":
            return -(target * out.float().log_softmax(dim=1)).sum(dim=1).mean()
        return F.binary_cross_entropy(out.float().softmax(dim=1), target)


class ManifoldMixup:
    """Verma et al. (2019): per batch, a uniformly drawn layer of ``layers``, lam ~ Beta(alpha, alpha)
    (lam = 1 when alpha = 0, as in the reference code's get_lambda), and a random pairing of the batch.

    The draws come from ``generator`` (a CPU ``torch.Generator``), or from torch's global RNG, which
    ``fit`` seeds, when it is None.
    """

    def __init__(self, alpha: float, layers: Layers, label_smoothing: float, kind: str,
                 generator: torch.Generator | None = None):
        self.alpha, self.layers, self.label_smoothing, self.kind = alpha, layers, label_smoothing, kind
        self.generator = generator

    def sample(self, n: int, layers: list[str]) -> tuple[str, float, torch.Tensor]:
        """(layer, lam, permutation of range(n)) for one batch."""
        rng = random.Random(int(torch.randint(0, 2 ** 62, (1,), generator=self.generator)))
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


@register_regularizer("manifold-mixup")
def manifold_mixup(*, model=None, label_smoothing: float = 0.0, generator: torch.Generator | None = None,
                   alpha: float = 2.0, layers: list[str] | None = None, loss: str = "bce") -> Loss:
    """Manifold mixup (Verma et al. 2019) as in vikasverma1077/manifold_mixup (supervised/).

    alpha 2.0 is --mixup_alpha of the supervised manifold-mixup command (supervised/README.md, CIFAR-10
    PreActResNet). ``layers`` (None): the input and the first two blocks, as the reference draws them; any
    list of ``input`` and the model's hidden layers can be given. ``loss``: ``bce`` as the reference trains,
    or ``ce`` (see ``mixup_loss``).
    """
    alpha = _number("manifold-mixup", "alpha", alpha, low=0)
    names = layer_names("manifold-mixup", layers, allow_input=True)
    kind = check_choice("regularizers.manifold-mixup.loss", loss, MIXUP_LOSSES)
    if generator is not None and not isinstance(generator, torch.Generator):
        raise ConfigError(f"regularizers.manifold-mixup.generator: must be a torch.Generator, got {generator!r}")
    resolved = Layers("manifold-mixup", names, model, allow_input=True, default=reference_mixup_layers)
    return ManifoldMixup(alpha, resolved, label_smoothing, kind, generator)


# ---------------------------------------------------------------- soft nearest neighbour loss

def soft_nearest_neighbor_loss(hidden: torch.Tensor, labels: torch.Tensor, temperature: float | torch.Tensor,
                               cos_distance: bool = False, stabilized: bool = False) -> torch.Tensor:
    """SNNL of Frosst, Papernot & Hinton (2019) as cleverhans' ``SNNLCrossEntropy.SNNL``.

    On flattened activations ``h``: distances ``d_ij = |h_j|^2 + |h_i|^2 - 2 h_i.h_j`` (or ``1 - cos``);
    ``f = exp(-d / T) - I``; ``p_ij = f_ij / (eps + sum_k f_ik)``; ``SNNL = mean_i -log(eps + sum_{j: y_j =
    y_i} p_ij)``.

    The same formula as cleverhans, evaluated in float64 where cleverhans uses float32: for activations of
    squared norm ~1e4 (small-cnn's stages), float32 rounding leaves ``d_ii`` around 1e-3 instead of 0, so
    ``exp(-d_ii/T) - 1`` is noise of the size of ``eps`` and the loss turns NaN; in float64 the self-pair
    term is what the formula means (about 0).

    ``stabilized`` (not the reference): the self-pair is excluded exactly and each row of ``f`` is scaled so
    its nearest neighbour has weight 1. The ratio ``p`` is unchanged; only the ``eps`` terms' relative size
    differs. With raw activations, whose squared distances run into the thousands, the reference's
    ``exp(-d/T)`` falls far below ``eps``: its loss then sits near ``-log(eps)`` with almost no gradient,
    and this form does not. Zero for a batch of one.
    """
    n = len(labels)
    if n < 2:
        return hidden.sum() * 0.0
    with _fp32(hidden):
        h = hidden.flatten(1).double()
        if cos_distance:
            unit = F.normalize(h, dim=1)
            d = 1 - unit @ unit.T
        else:
            sq = (h * h).sum(1)
            d = sq[None, :] + sq[:, None] - 2 * h @ h.T
        eye = torch.eye(n, device=h.device, dtype=h.dtype)
        if stabilized:
            logits = (-d / temperature).masked_fill(eye.bool(), float("-inf"))
            f = torch.exp(logits - logits.max(dim=1, keepdim=True).values)
        else:
            f = torch.exp(-d / temperature) - eye
        pick = f / (SNNL_EPS + f.sum(dim=1, keepdim=True))
        same = (labels[:, None] == labels[None, :]).to(h.dtype)
        return (-torch.log(SNNL_EPS + (pick * same).sum(dim=1)).mean()).to(hidden.dtype if hidden.is_floating_point()
                                                                            else torch.float32)


class SoftNearestNeighbourLoss:
    """CE + factor * sum over ``layers`` of the SNNL of their flattened outputs (cleverhans SNNLCrossEntropy).

    With ``optimize_temperature`` (cleverhans' default), each layer keeps a variable ``t``, starting at 1,
    across training steps; every step first updates it by one gradient step on that layer's SNNL,
    ``t <- t - 0.1 * dSNNL(T / t)/dt``, then uses the temperature ``T / t`` (cleverhans'
    ``optimized_temp_SNNL``: a ``tf.Variable`` updated by ``tf.assign`` on each evaluation; no gradient
    flows into the model through the update, as TF's Assign op has none).
    """

    def __init__(self, temperature: float, factor: float, layers: Layers, optimize_temperature: bool,
                 cos_distance: bool, stabilized: bool, label_smoothing: float):
        self.temperature, self.factor, self.layers = temperature, factor, layers
        self.optimize_temperature, self.cos_distance, self.stabilized = optimize_temperature, cos_distance, stabilized
        self.label_smoothing = label_smoothing
        self.t: dict[str, float] = {}  # per layer: the inverse-temperature variable of optimized_temp_SNNL
        self._sums = {"ce": 0.0, "snnl_term": 0.0, "steps": 0}

    def layer_snnl(self, name: str, hidden: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if not self.optimize_temperature:
            return soft_nearest_neighbor_loss(hidden, y, self.temperature, self.cos_distance, self.stabilized)
        with torch.enable_grad():  # the update needs dSNNL/dt even where the caller computes no gradients
            t = torch.tensor(self.t.get(name, 1.0), device=hidden.device, requires_grad=True)
            probe = soft_nearest_neighbor_loss(hidden.detach(), y, self.temperature / t, self.cos_distance,
                                               self.stabilized)
            (grad,) = torch.autograd.grad(probe, t)
        self.t[name] = float(t.detach() - SNNL_TEMPERATURE_STEP * grad)
        return soft_nearest_neighbor_loss(hidden, y, self.temperature / self.t[name], self.cos_distance, self.stabilized)

    def terms(self, net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Cross-entropy and ``factor * sum of SNNL`` (one temperature step per layer, as in training)."""
        module = unwrap(net)
        names = self.layers.for_model(module)
        with capture_outputs(module, names) as hidden:
            logits = module(x)
        missing = [name for name in names if name not in hidden]
        if missing:
            raise RuntimeError(f"regularizers.snnl.layers: {', '.join(missing)} did not run in the forward pass")
        ce = F.cross_entropy(logits, y, label_smoothing=self.label_smoothing)
        return ce, self.factor * sum(self.layer_snnl(name, hidden[name], y) for name in names)

    def __call__(self, net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        ce, term = self.terms(net, x, y)
        self._sums["ce"] += float(ce.detach())
        self._sums["snnl_term"] += float(term.detach())
        self._sums["steps"] += 1
        return ce + term

    def epoch_terms(self) -> dict[str, float]:
        """Mean cross-entropy and mean ``factor * SNNL`` over the steps since the last call, and each layer's
        current temperature ``T / t``."""
        steps = max(1, self._sums.pop("steps"))
        means = {key: value / steps for key, value in self._sums.items()}
        self._sums = {"ce": 0.0, "snnl_term": 0.0, "steps": 0}
        return means | {f"temperature_{name}": self.temperature / t for name, t in self.t.items()}


@register_regularizer("snnl")
def snnl(*, model=None, label_smoothing: float = 0.0, temperature: float = 100.0, factor: float = -10.0,
         layers: list[str] | None = None, optimize_temperature: bool = True, cos_distance: bool = False,
         stabilized: bool = False) -> Loss:
    """Soft nearest neighbour loss (Frosst, Papernot & Hinton 2019) as cleverhans' ``SNNLCrossEntropy``:
    temperature 100, factor -10 (SNNL maximized: classes entangled in the hidden layers), optimized
    temperature and Euclidean distance are its defaults.

    One difference: cleverhans' default ``layer_names`` is every layer of its model but the logits; here
    ``layers`` (None) is the model's hidden stages (timm's feature_info), e.g. the three conv stages of
    small-cnn. ``stabilized`` is not in the reference (see ``soft_nearest_neighbor_loss``).
    """
    temperature = _number("snnl", "temperature", temperature, low=0, low_open=True)
    factor = _number("snnl", "factor", factor)
    names = layer_names("snnl", layers, allow_input=False)
    for key, value in (("optimize_temperature", optimize_temperature), ("cos_distance", cos_distance),
                       ("stabilized", stabilized)):
        check_bool(f"regularizers.snnl.{key}", value)
    resolved = Layers("snnl", names, model, allow_input=False, default=hidden_layers)
    return SoftNearestNeighbourLoss(temperature, factor, resolved, optimize_temperature, cos_distance, stabilized,
                                    label_smoothing)
