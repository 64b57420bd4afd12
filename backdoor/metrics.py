"""The three numbers every result reports, defined once.

CA: clean test images classified as their label.
ASR: triggered test images (only those whose true label differs from the attack's target for that
     image) classified as that target.
RA: the same triggered images classified as their true label.
"""

from __future__ import annotations

import torch


def _mean(hits: torch.Tensor) -> float:
    if hits.numel() == 0:
        raise ValueError("cannot compute a rate over zero images")
    return hits.float().mean().item()


def clean_accuracy(preds: torch.Tensor, labels: torch.Tensor) -> float:
    return _mean(preds == labels)


def attack_success_rate(preds: torch.Tensor, true_labels: torch.Tensor, targets: torch.Tensor) -> float:
    counted = true_labels != targets
    return _mean(preds[counted] == targets[counted])


def robust_accuracy(preds: torch.Tensor, true_labels: torch.Tensor, targets: torch.Tensor) -> float:
    counted = true_labels != targets
    return _mean(preds[counted] == true_labels[counted])


def backdoor_metrics(
    clean_preds: torch.Tensor,
    clean_labels: torch.Tensor,
    triggered_preds: torch.Tensor,
    true_labels: torch.Tensor,
    targets: torch.Tensor,
) -> dict[str, float]:
    return {
        "clean_acc": clean_accuracy(clean_preds, clean_labels),
        "asr": attack_success_rate(triggered_preds, true_labels, targets),
        "robust_acc": robust_accuracy(triggered_preds, true_labels, targets),
    }
