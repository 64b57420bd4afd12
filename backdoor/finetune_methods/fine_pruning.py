"""``fine-pruning``: prune the channels least active on clean data, then fine-tune (Liu, Dolan-Gavitt, Garg, RAID
2018), as BackdoorBench implements it.

Source: BackdoorBench ``defense/fp.py`` with ``config/defense/fp/cifar10.yaml`` (SCLBD/BackdoorBench @ f02e353):

- the pruned layer is the input of the model's last child, the linear head: here ``models.prunable_layer``, the
  last hidden stage, whose channels averaged over the image are the head's inputs (every family here, timm's
  included, ends in that pooling and one linear layer);
- channels are ranked by their mean activation over the defender's clean images, lowest first;
- ``num_pruned`` runs over 0, s, 2s, ... with s = ceil(channels x ``once_prune_ratio``); at each, the lowest
  ``num_pruned - 1`` channels are masked (the code's off-by-one, kept: 5, 11, 17 ... of 512 at 1 %) by masking
  the head's weight columns (``torch.nn.utils.prune.custom_from_mask``), and accuracy is measured;
- pruning stops at the first step whose accuracy has dropped by ``acc_ratio`` (relative) or more from the
  unpruned model's, and that step's mask is kept (the code keeps the failing step's: the model it fine-tunes is
  the one it just pruned);
- then every layer is fine-tuned with the mask held (the loop settings of ``finetune:``).

Difference: BackdoorBench measures the stopping accuracy on the clean *test* set; by default this module measures
it on the defender's own clean images (``stop_on: clean``), so no test label steers the defence. ``stop_on:
test`` reproduces the source's rule. Liu et al.'s own code prunes a fixed count of conv filters (48 of 60 in
``face/``) without a stopping rule.
"""

from __future__ import annotations

import math

import torch
import torch.nn.utils.prune as prune

from ..models import classifier_head, prunable_layer
from . import METHODS, Method, Tuning


@torch.inference_mode()
def head_inputs(tuning: Tuning, images: torch.Tensor) -> torch.Tensor:
    """The head's input features (the pooled last stage) of uint8 images, in batches, on the model's device."""
    from ..classifier import inference_batch

    model = tuning.clf.model.eval()
    device = next(model.parameters()).device
    parts = [
        model.forward_head(model.forward_features(tuning.clf.normalizer(batch.to(device))), pre_logits=True)
        for batch in images.split(inference_batch(device))
    ]
    return torch.cat(parts).float()


def pruning_steps(channels: int, once_prune_ratio: float) -> range:
    return range(0, channels, math.ceil(channels * once_prune_ratio))


def prune_mask(order: torch.Tensor, num_pruned: int, shape: torch.Size) -> torch.Tensor:
    """The head weight's mask with the ``num_pruned - 1`` least active channels (columns) zeroed, as fp.py does."""
    mask = torch.ones(shape)
    if num_pruned:
        mask[:, order[: num_pruned - 1]] = 0
    return mask


@METHODS.register("fine-pruning", reference="Liu, Dolan-Gavitt, Garg, RAID 2018; BackdoorBench defense/fp.py")
def fine_pruning(*, acc_ratio: float = 0.1, once_prune_ratio: float = 0.01, stop_on: str = "clean") -> Method:
    name = "fine-pruning"
    acc_ratio = float(METHODS.number(name, "acc_ratio", acc_ratio, low=0.0, high=1.0, low_open=True))
    once = float(METHODS.number(name, "once_prune_ratio", once_prune_ratio, low=0.0, high=1.0, low_open=True))
    stop_on = METHODS.choice(name, "stop_on", stop_on, ("clean", "test"))

    def run(tuning: Tuning) -> dict:
        model = tuning.clf.model
        head = classifier_head(model)
        layer, channels = prunable_layer(model)
        order = torch.argsort(head_inputs(tuning, tuning.images).mean(dim=0), stable=True)
        judged = (
            (tuning.images, tuning.labels) if stop_on == "clean" else (tuning.data.test.images, tuning.data.test.labels)
        )
        features, labels = head_inputs(tuning, judged[0]), judged[1].to(head.weight.device)
        weight, bias = head.weight.detach(), head.bias.detach() if head.bias is not None else 0

        def accuracy(mask: torch.Tensor) -> float:
            logits = features @ (weight * mask.to(weight.device)).T + bias
            return (logits.argmax(dim=1) == labels).float().mean().item()

        start = accuracy(torch.ones_like(weight))
        mask, pruned, reached = torch.ones_like(weight), 0, start
        for num_pruned in pruning_steps(channels, once):
            mask, pruned = prune_mask(order, num_pruned, weight.shape), max(0, num_pruned - 1)
            reached = accuracy(mask)
            if start == 0 or abs(reached - start) / start >= acc_ratio:
                break
        prune.custom_from_mask(head, "weight", mask.to(weight.device))
        steps = tuning.fit()
        prune.remove(head, "weight")  # the mask baked into the weight: a plain state dict again
        return {
            "steps": steps,
            "pruned_layer": layer,
            "pruned_channels": pruned,
            "channels": channels,
            "prune_stop_on": stop_on,
            "prune_accuracy_before": start,
            "prune_accuracy_after": reached,
        }

    return run
