"""``contrastive``: Hadsell, Chopra and LeCun's contrastive loss on L2-normalised penultimate embeddings."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import REGULARIZERS, Loss, fp32, number


def contrastive_loss(embeddings: torch.Tensor, labels: torch.Tensor, margin: float) -> torch.Tensor:
    """Hadsell, Chopra & LeCun (2006) over all pairs of the batch, on L2-normalized embeddings.

    Same label: ``d^2 / 2``; different labels: ``max(0, margin - d)^2 / 2``; averaged over the
    ``n(n-1)/2`` pairs. Zero for a batch of one.
    """
    n = len(labels)
    if n < 2:
        return embeddings.sum() * 0.0
    with fp32(embeddings):
        e = F.normalize(embeddings.flatten(1).float(), dim=1)
        sq = (e * e).sum(1)
        d2 = (sq[:, None] + sq[None, :] - 2 * e @ e.T).clamp_min(0)
        d = d2.clamp_min(1e-12).sqrt()  # the clamp keeps the gradient finite at d = 0
        same = labels[:, None] == labels[None, :]
        pair = 0.5 * torch.where(same, d2, (margin - d).clamp_min(0) ** 2)
        off_diagonal = ~torch.eye(n, dtype=torch.bool, device=e.device)
        return pair[off_diagonal].mean()  # each unordered pair twice: the same mean


@REGULARIZERS.register(
    "contrastive", reference="Hadsell, Chopra and LeCun 2006 (on L2-normalised penultimate embeddings)"
)
def contrastive(*, model=None, label_smoothing: float = 0.0, weight: float = 1.0, margin: float = 1.0) -> Loss:
    """CE + weight * contrastive loss on the penultimate embedding (``forward_head(..., pre_logits=True)``).

    Hadsell, Chopra & LeCun (2006) give the loss but no margin for a classifier's embedding. The embedding
    is L2-normalized here (its scale is otherwise arbitrary, so a fixed margin would mean nothing), and 1.0
    is the margin that goes with unit-norm embeddings in TensorFlow's
    tf.contrib.losses.metric_learning.contrastive_loss and pytorch-metric-learning's ContrastiveLoss
    (neg_margin=1.0). Weight 1.0: CE and the contrastive term counted equally (no published value).
    """
    weight = number("contrastive", "weight", weight, low=0)
    margin = number("contrastive", "margin", margin, low=0, low_open=True)

    def loss(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        features = net.forward_features(x)
        logits = net.forward_head(features)
        embeddings = net.forward_head(features, pre_logits=True)
        return F.cross_entropy(logits, y, label_smoothing=label_smoothing) + weight * contrastive_loss(
            embeddings, y, margin
        )

    return loss
