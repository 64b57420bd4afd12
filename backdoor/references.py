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


# BackdoorBench's clean accuracy without defence, the same leaderboard cells: (attack, rate) -> CA
BACKDOORBENCH_CIFAR10_CA: dict[str, dict[float, float]] = {
    "square": {0.005: 0.9376, 0.01: 0.9314, 0.05: 0.9264, 0.1: 0.9132},
    "blend": {0.005: 0.9368, 0.01: 0.9376, 0.05: 0.9367, 0.1: 0.9347},
}

# BackdoorBench's post-training defences on the same leaderboard (CA, ASR), PreAct-ResNet18, 5 % clean data each
# (docs/results.md names every protocol difference): trigger here -> rate -> defence -> (CA, ASR).
BACKDOORBENCH_CIFAR10_DEFENCES: dict[str, dict[float, dict[str, tuple[float, float]]]] = {
    "square": {
        0.1: {
            "ft": (0.8996, 0.0148),
            "fine-pruning": (0.9131, 0.5713),
            "nad": (0.8987, 0.0214),
            "anp": (0.8417, 0.0073),
            "i-bau": (0.8916, 0.0129),
        },
        0.01: {
            "ft": (0.9307, 0.1036),
            "fine-pruning": (0.9298, 0.2018),
            "nad": (0.9252, 0.0833),
            "anp": (0.8467, 0.0029),
            "i-bau": (0.8763, 0.0362),
        },
    },
    "blend": {
        0.1: {
            "ft": (0.9278, 0.9611),
            "fine-pruning": (0.9317, 0.9926),
            "nad": (0.9217, 0.9769),
            "anp": (0.8658, 0.0219),
            "i-bau": (0.8700, 0.5053),
        },
        0.01: {
            "ft": (0.9353, 0.9196),
            "fine-pruning": (0.9348, 0.9414),
            "nad": (0.9334, 0.9207),
            "anp": (0.8692, 0.3701),
            "i-bau": (0.8970, 0.3036),
        },
    },
}


def backdoorbench_no_defence(trigger: str, rate: float) -> dict[str, tuple[float, float]]:
    """BackdoorBench's no-defence cell as a defence named ``none``: {"none": (CA, ASR)}, or {} where it has none."""
    ca, asr = (
        BACKDOORBENCH_CIFAR10_CA.get(trigger, {}).get(rate),
        BACKDOORBENCH_CIFAR10_ASR.get(trigger, ("", {}))[1].get(rate),
    )
    return {} if ca is None or asr is None else {"none": (ca, asr)}
