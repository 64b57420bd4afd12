"""``fst``: feature-shift tuning (Min, Qin, Hong, Wang, Ding, Kwok, NeurIPS 2023).

Source: their code (AISafety-HKUST/stable_backdoor_purification @ 37d2ef5, ``fine_tune/ft.py``,
``--ft_mode fst``): the head is re-initialised (uniform +-1/sqrt(fan_in)), every layer is trained, and the loss
adds ``alpha * sum(W * W_orig)``, the inner product of the head's weight with its weight before tuning, which
pushes the new head away from the backdoored one; after every step the head's weight is rescaled to its norm
before tuning. SGD momentum 0.9, no weight decay, cosine over the epochs. ``alpha`` defaults to the code's 0.2
(the paper's CIFAR-10 value; the README's example uses 0.1); the paper tunes 10 epochs at lr 0.01 on 2 % of the
training data.

Differences: the cosine decays per step, not per epoch; the re-initialisation is seeded from the cell's seed;
label smoothing, when ``finetune.label_smoothing`` sets it, applies to the cross-entropy term (their code then
drops the FST term, a branch the paper does not use).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..models import classifier_head
from . import METHODS, Method, Tuning, keep_head_norm, reinit_head


@METHODS.register(
    "fst",
    reference="Min et al. NeurIPS 2023, github.com/AISafety-HKUST/stable_backdoor_purification",
    loop={"weight_decay": 0.0},
)
def fst(*, alpha: float = 0.2) -> Method:
    alpha = float(METHODS.number("fst", "alpha", alpha, low=0.0))

    def run(tuning: Tuning) -> dict:
        model = tuning.clf.model
        head = classifier_head(model)
        original = head.weight.detach().clone()
        rescale = keep_head_norm(model)  # the norm before re-initialisation, as the code takes it
        reinit_head(model, tuning.seed)
        smoothing = tuning.cfg.label_smoothing

        def loss(net: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            shift = (head.weight * original.to(head.weight.device)).sum()
            return F.cross_entropy(net(x), y, label_smoothing=smoothing) + alpha * shift

        return {"steps": tuning.fit(loss_fn=loss, after_step=rescale)}

    return run
