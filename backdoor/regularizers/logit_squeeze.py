"""``logit-squeeze``: Kannan et al. 2018, cross-entropy plus weight x the logits' norm."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import REGULARIZERS, Loss, number


@REGULARIZERS.register(
    "logit-squeeze", reference="Kannan, Kurakin and Goodfellow 2018; weight from Mosbach et al. 2018's code"
)
def logit_squeeze(*, model=None, label_smoothing: float = 0.0, weight: float = 0.5) -> Loss:
    """CE + weight * mean over the batch of the logits' L2 norm (Kannan, Kurakin & Goodfellow 2018).

    0.5 is lsq_lambda in the MNIST/CIFAR-10 code of Mosbach et al. (2018), "Logit pairing methods can fool
    gradient-based attacks" (uds-lsv/evaluating-logit-pairing-methods, mnist_cifar10/train.py); their
    Tiny-ImageNet code (after Kannan et al.'s tensorflow/models release) uses 0.05.
    """
    weight = number("logit-squeeze", "weight", weight, low=0)

    def loss(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        logits = net(x)
        squeeze = logits.float().norm(dim=1).mean()
        return F.cross_entropy(logits, y, label_smoothing=label_smoothing) + weight * squeeze

    return loss
