"""``noise``: a fixed random uint8 patch, drawn once from the seed."""

from __future__ import annotations

from . import TRIGGERS, PatchTrigger, Trigger, check_patch, random_pattern


@TRIGGERS.register("noise", patch=True, reference="a BadNets-style patch (Gu et al. 2017) of seeded uniform noise")
def noise(shape: tuple[int, int, int], *, seed: int, size: int, location: str) -> Trigger:
    """A fixed uniform-noise patch, independent per channel, drawn once from the seed."""
    check_patch(shape, size)
    return PatchTrigger(random_pattern(seed, (shape[0], size, size)), location)
