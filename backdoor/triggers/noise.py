"""``noise``: a fixed random uint8 patch, drawn once from the seed."""

from __future__ import annotations


from . import PatchTrigger, Trigger, _check_patch, _keys, random_pattern, register_trigger


@register_trigger("noise", patch=True)
def noise(shape, *, seed, size, location, **settings) -> Trigger:
    """A fixed uniform-noise patch, independent per channel, drawn once from the seed."""
    _keys("noise", settings)
    _check_patch(shape, size)
    return PatchTrigger(random_pattern(seed, (shape[0], size, size)), location)
