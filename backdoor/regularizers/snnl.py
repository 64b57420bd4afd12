"""``snnl``: Frosst, Papernot and Hinton 2019's soft nearest neighbour loss, as cleverhans' SNNLCrossEntropy."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..hooks import Layers, capture_outputs, layer_names, unwrap
from ..models import hidden_layers
from ..validation import check_bool
from . import REGULARIZERS, Loss, fp32, number

SNNL_EPS = 1e-5  # cleverhans SNNLCrossEntropy.STABILITY_EPS
SNNL_TEMPERATURE_STEP = 0.1  # cleverhans optimized_temp_SNNL: t <- t - 0.1 * dSNNL/dt


def soft_nearest_neighbor_loss(
    hidden: torch.Tensor,
    labels: torch.Tensor,
    temperature: float | torch.Tensor,
    cos_distance: bool = False,
    stabilized: bool = False,
) -> torch.Tensor:
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
    with fp32(hidden):
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
        return (-torch.log(SNNL_EPS + (pick * same).sum(dim=1)).mean()).to(
            hidden.dtype if hidden.is_floating_point() else torch.float32
        )


class SoftNearestNeighbourLoss:
    """CE + factor * sum over ``layers`` of the SNNL of their flattened outputs (cleverhans SNNLCrossEntropy).

    With ``optimize_temperature`` (cleverhans' default), each layer keeps a variable ``t``, starting at 1,
    across training steps; every step first updates it by one gradient step on that layer's SNNL,
    ``t <- t - 0.1 * dSNNL(T / t)/dt``, then uses the temperature ``T / t`` (cleverhans'
    ``optimized_temp_SNNL``: a ``tf.Variable`` updated by ``tf.assign`` on each evaluation; no gradient
    flows into the model through the update, as TF's Assign op has none).
    """

    def __init__(
        self,
        temperature: float,
        factor: float,
        layers: Layers,
        optimize_temperature: bool,
        cos_distance: bool,
        stabilized: bool,
        label_smoothing: float,
    ):
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
            probe = soft_nearest_neighbor_loss(
                hidden.detach(), y, self.temperature / t, self.cos_distance, self.stabilized
            )
            (grad,) = torch.autograd.grad(probe, t)
        self.t[name] = float(t.detach() - SNNL_TEMPERATURE_STEP * grad)
        return soft_nearest_neighbor_loss(
            hidden, y, self.temperature / self.t[name], self.cos_distance, self.stabilized
        )

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


@REGULARIZERS.register("snnl", reference="Frosst, Papernot and Hinton 2019, cleverhans SNNLCrossEntropy")
def snnl(
    *,
    model=None,
    label_smoothing: float = 0.0,
    temperature: float = 100.0,
    factor: float = -10.0,
    layers: list[str] | None = None,
    optimize_temperature: bool = True,
    cos_distance: bool = False,
    stabilized: bool = False,
) -> Loss:
    """Soft nearest neighbour loss (Frosst, Papernot & Hinton 2019) as cleverhans' ``SNNLCrossEntropy``:
    temperature 100, factor -10 (SNNL maximized: classes entangled in the hidden layers), optimized
    temperature and Euclidean distance are its defaults.

    One difference: cleverhans' default ``layer_names`` is every layer of its model but the logits; here
    ``layers`` (None) is the model's hidden stages (timm's feature_info), e.g. the three conv stages of
    small-cnn. ``stabilized`` is not in the reference (see ``soft_nearest_neighbor_loss``).
    """
    temperature = number("snnl", "temperature", temperature, low=0, low_open=True)
    factor = number("snnl", "factor", factor)
    names = layer_names("snnl", layers, allow_input=False)
    for key, value in (
        ("optimize_temperature", optimize_temperature),
        ("cos_distance", cos_distance),
        ("stabilized", stabilized),
    ):
        check_bool(f"regularizers.snnl.{key}", value)
    resolved = Layers("snnl", names, model, allow_input=False, default=hidden_layers)
    return SoftNearestNeighbourLoss(
        temperature, factor, resolved, optimize_temperature, cos_distance, stabilized, label_smoothing
    )
