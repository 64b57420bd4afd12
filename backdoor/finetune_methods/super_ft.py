"""``super-ft``: super-fine-tuning (Sha, He, Berrang, Humbert, Zhang, arXiv 2212.09067): every layer fine-tuned
under a two-phase learning-rate schedule that borrows super-convergence's large peak.

Source: the paper's description only; it publishes no code, and its exact schedule was not at hand. Its reviews
(ICLR 2024) describe two phases with the lr linear within each; a third-party guide gives 3e-4 rising to 0.1,
then 0.001. This module's schedule, in optimizer steps: phase 1 (``rise_fraction`` of the steps) rises linearly
from ``base_lr`` to ``max_lr``; phase 2 falls linearly from ``max_lr`` to ``final_lr``. ``finetune.lr`` is not
used. The defaults are that guide's numbers, not the authors'; compare the schedule before trusting a match.
"""

from __future__ import annotations

from collections.abc import Callable

from . import METHODS, Method, Tuning


def super_ft_lr(base_lr: float, max_lr: float, final_lr: float, rise_fraction: float) -> Callable[[int, int], float]:
    """The lr at optimizer step ``step`` of ``total`` (absolute, not a factor)."""

    def lr(step: int, total: int) -> float:
        rise = max(1, round(rise_fraction * total))
        if step < rise:
            return base_lr + (max_lr - base_lr) * step / rise
        return max_lr + (final_lr - max_lr) * (step - rise) / max(1, total - rise)

    return lr


@METHODS.register("super-ft", reference="Sha et al. 2022, arXiv 2212.09067 (no code published)")
def super_ft(
    *, base_lr: float = 3e-4, max_lr: float = 0.1, final_lr: float = 1e-3, rise_fraction: float = 0.5
) -> Method:
    lrs = {
        key: float(METHODS.number("super-ft", key, value, low=0.0, low_open=True))
        for key, value in (("base_lr", base_lr), ("max_lr", max_lr), ("final_lr", final_lr))
    }
    rise = float(METHODS.number("super-ft", "rise_fraction", rise_fraction, low=0.0, high=1.0, low_open=True))
    schedule = super_ft_lr(lrs["base_lr"], lrs["max_lr"], lrs["final_lr"], rise)

    def run(tuning: Tuning) -> dict:
        base = tuning.cfg.lr  # LambdaLR scales the optimizer's lr: give it the absolute lr as a factor of it
        return {"steps": tuning.fit(schedule=lambda step, total: schedule(step, total) / base)}

    return run
