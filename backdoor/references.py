"""Published numbers the figures draw beside ours, each with its source and protocol.

BackdoorBench's CIFAR-10 leaderboard (backdoorbench.github.io, ``leaderboard-cifar10.html`` @ b98eab4; the same
values in its ``static/data/results.csv``): PreAct-ResNet18, 100 epochs SGD lr 0.01 cosine, batch 128, wd 5e-4,
crop and flip, all-to-one to class 0, one run per cell, no defence. Its BadNets is a 3x3 white patch in the
bottom-right corner (our ``square``); its Blended blends Hello Kitty at alpha 0.2 (our ``blend`` blends a seeded
random pattern, so that curve is a neighbour, not a replica). Rates: the leaderboard's 0.5, 1, 5 and 10 % tabs.
"""

from __future__ import annotations

BACKDOORBENCH_CIFAR10_SOURCE = "BackdoorBench, PreAct-ResNet18, 100 epochs"

# trigger here -> (the label naming its attack there, {poison rate: ASR without defence})
BACKDOORBENCH_CIFAR10_ASR: dict[str, tuple[str, dict[float, float]]] = {
    "square": ("BackdoorBench BadNets", {0.005: 0.5006, 0.01: 0.7473, 0.05: 0.8874, 0.1: 0.9503}),
    "blend": ("BackdoorBench Blended", {0.005: 0.9330, 0.01: 0.9488, 0.05: 0.9961, 0.1: 0.9992}),
}


def is_cifar10(dataset: str) -> bool:
    """The original release (``cifar10``) or a folder copy of it (``folder:data/external/cifar10-jpeg``)."""
    return dataset == "cifar10" or "cifar10" in dataset.rsplit("/", 1)[-1]
