"""``ft``: vanilla fine-tuning, every layer trained on the defender's clean images.

Source: BackdoorBench ``defense/ft.py`` with ``config/defense/ft/cifar10.yaml`` (SCLBD/BackdoorBench @ f02e353):
5 % of the training data, SGD momentum 0.9, lr 0.01, weight decay 5e-4, ``CosineAnnealingLR`` over 100 epochs,
batch 256, random crop and flip, the last epoch kept. ``presets/persistence-cifar10-cpu.yaml`` runs exactly that
budget (1,000 steps on CIFAR-10); the shared ``finetune:`` block holds the settings.

Differences: the cosine decays per optimizer step, not per epoch (over 100 epochs the two differ by under 1 % of
the lr at any step); no warm-up unless ``finetune.warmup_epochs`` asks; BatchNorm weights and biases get no weight
decay (BackdoorBench decays every parameter); fp32 on a CPU where BackdoorBench uses AMP on a GPU.
"""

from __future__ import annotations

from . import METHODS, Method, Tuning


@METHODS.register("ft", reference="BackdoorBench defense/ft.py (SCLBD/BackdoorBench @ f02e353)")
def ft() -> Method:
    def run(tuning: Tuning) -> dict:
        return {"steps": tuning.fit()}

    return run
