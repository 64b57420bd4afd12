"""``lp``: linear probing, the head alone trained; every other parameter keeps its value.

Source: FST's code (AISafety-HKUST/stable_backdoor_purification @ 37d2ef5, ``fine_tune/ft.py``,
``--ft_mode lp``): the head is not re-initialised; only its parameters get ``requires_grad``; the model stays in
train mode (BatchNorm statistics of the frozen layers still follow the clean data); SGD momentum 0.9, no weight
decay, cosine over the epochs; after every step the head's weight is rescaled to its norm before tuning (the code
does this in every mode).

Differences: the cosine decays per step, not per epoch; the loop settings come from ``finetune:`` (FST's
default lr 0.01, 10 epochs on 2 % of the data: set them there; ``weight_decay: 0.0`` in this block by default).
"""

from __future__ import annotations

from . import METHODS, Method, Tuning, head_and_backbone, keep_head_norm


@METHODS.register(
    "lp",
    reference="Min et al. NeurIPS 2023 code, --ft_mode lp (github.com/AISafety-HKUST/stable_backdoor_purification)",
    loop={"weight_decay": 0.0},
)
def lp() -> Method:
    def run(tuning: Tuning) -> dict:
        head, _ = head_and_backbone(tuning.clf.model)
        return {"steps": tuning.fit(params=head, after_step=keep_head_norm(tuning.clf.model))}

    return run
