"""A picture of the trigger zoo: what each trigger does to a clean image.

One row per trigger: the clean sample, the triggered sample, and the absolute difference
amplified (x5 by default, clipped to 255) so that faint triggers (blend, sig, wanet) show.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .files import atomic_path
from .params import Experiment
from .seeding import generator
from .triggers import TRIGGERS, Trigger, build_trigger


def trigger_zoo(
    exp: Experiment, shape: tuple[int, int, int], settings: dict[str, dict], names: list[str] | None = None
) -> dict[str, Trigger]:
    """Every registered trigger (or ``names``) with the experiment's size, location and settings.

    Triggers with a fixed place take no location: they get the default corner instead of ``random``.
    """
    zoo = {}
    for name in names or sorted(TRIGGERS):
        location = exp.trigger_location if name in TRIGGERS.names(patch=True) else "bottom-right"
        zoo[name] = build_trigger(
            name, shape, seed=exp.seed, size=exp.trigger_size, location=location, **(settings.get(name) or {})
        )
    return zoo


def _to_display(image: torch.Tensor) -> tuple[np.ndarray, str | None]:
    """uint8 (C, H, W) -> array for imshow and its colormap (gray for one channel)."""
    if image.shape[0] == 1:
        return image[0].cpu().numpy(), "gray"
    if image.shape[0] == 3:
        return image.permute(1, 2, 0).cpu().numpy(), None
    raise ValueError(f"trigger_gallery: images must have 1 or 3 channels, got {image.shape[0]}")


def trigger_gallery(
    images: torch.Tensor, triggers: dict[str, Trigger], path: str | Path, seed: int = 0, amplify: float = 5.0
) -> Path:
    """Write a PNG to ``path`` (atomically): row i shows ``triggers``' i-th entry on ``images[i % N]``.

    ``images`` are clean uint8 (N, C, H, W) samples with 1 or 3 channels. Random choices (random
    patch locations) come from ``generator(seed, "gallery")``, so the picture is reproducible.
    Returns ``path``.
    """
    if images.dim() != 4 or images.dtype != torch.uint8 or len(images) == 0:
        raise ValueError(
            f"trigger_gallery: expected a non-empty uint8 (N, C, H, W) batch, got {images.dtype} {tuple(images.shape)}"
        )
    if not triggers:
        raise ValueError("trigger_gallery: no triggers to show")
    path = Path(path)
    rng = generator(seed, "gallery")
    rows = len(triggers)
    fig = Figure(figsize=(3 * 2.0, rows * 2.0), dpi=100)
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, 3, squeeze=False)
    titles = ("clean", "triggered", f"|difference| x{amplify:g}")
    for row, (name, trigger) in enumerate(triggers.items()):
        clean = images[row % len(images)].unsqueeze(0)
        triggered = trigger(clean, rng)
        diff = ((triggered.int() - clean.int()).abs().float() * amplify).clamp(0, 255).to(torch.uint8)
        for col, picture in enumerate((clean[0], triggered[0], diff[0])):
            array, cmap = _to_display(picture)
            ax = axes[row][col]
            ax.imshow(array, cmap=cmap, vmin=0, vmax=255, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(titles[col], fontsize=9)
        axes[row][0].set_ylabel(name, fontsize=10)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    return path
