"""``fe-tuning``: the head re-initialised and frozen, every other layer trained (feature-extractor tuning).

Source: FST's code (AISafety-HKUST/stable_backdoor_purification @ 37d2ef5, ``fine_tune/ft.py``,
``--ft_mode fe-tuning``): weight and bias drawn uniform in +-1/sqrt(fan_in); only the other parameters get
``requires_grad``; SGD momentum 0.9, no weight decay, cosine over the epochs; the head's norm rescaled after
every step (a no-op here: the head does not move).

Differences: the cosine decays per step, not per epoch; the re-initialisation is seeded from the cell's seed.
"""

from __future__ import annotations

from . import METHODS, Method, Tuning, head_and_backbone, reinit_head


@METHODS.register(
    "fe-tuning",
    reference="Min et al. NeurIPS 2023 code, --ft_mode fe-tuning "
    "(github.com/AISafety-HKUST/stable_backdoor_purification)",
    loop={"weight_decay": 0.0},
)
def fe_tuning() -> Method:
    def run(tuning: Tuning) -> dict:
        reinit_head(tuning.clf.model, tuning.seed)
        _, backbone = head_and_backbone(tuning.clf.model)
        return {"steps": tuning.fit(params=backbone)}

    return run
