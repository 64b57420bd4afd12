"""``airbench``: Keller Jordan's fast CIFAR-10 training recipe (``KellerJordan/cifar10-airbench`` @ f1c599c,
``airbench/utils.py`` ``train`` with ``lib_airbench94.py``'s hyper-parameters), written from that code.

SGD with Nesterov momentum 0.85 in the reference's decoupled form: ``lr`` and ``weight_decay`` are per 1,024
examples and independent of the momentum (the update is divided by ``1 + 1 / (1 - momentum)``); BatchNorm
parameters take ``bias_scaler`` x the learning rate at the same decay per step; label smoothing 0.2; the lr rises
linearly from ``lr_start`` to 1 over the first ``lr_peak`` of the steps, then falls linearly to ``lr_end``;
every 5 steps the weights are pulled to an exponential moving average whose decay grows as ``0.95^5 x
(step / total)^3`` (lookahead), and the last step sets them to it. Data: every image flipped or not once
(seeded), then the whole set flipped on odd epochs (alternating flip), and a random translation of up to
``translate`` pixels per image and epoch, over reflect padding. The data-initialised layer's bias (airbench's
whitening) trains for the first ``whiten_bias_epochs`` epochs only. ``train.epochs`` and ``train.batch_size``
(1,024 in the reference) come from ``train:``; the other ``train:`` loop settings are the ``sgd`` recipe's.

Differences from the reference:
- Whole epochs (``train.epochs``), where the reference's airbench94 trains 9.9 (its step count is rounded up from
  the fraction): 10 epochs here take 480 steps at batch 1,024 against its 476.
- The batch-mean loss at ``lr x batch / kilostep`` instead of the summed loss at ``lr / kilostep``: the same update.
- fp32 on CPU; bf16 autocast on CUDA where the reference runs the network in fp16.
- Its own seeded generators (``backdoor.seeding``) instead of torch's global one.
- No test-time augmentation at evaluation: ASR and clean accuracy are measured on the images as they are (TTA
  averages flipped and translated views, which move a corner trigger); the reference reports accuracy with TTA,
  worth 0.4-0.5 points on CIFAR-10.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..classifier import Classifier, pick_device
from ..errors import ConfigError
from ..seeding import derive_seed, generator
from ..settings import TrainConfig
from . import RECIPES, Loss

LOOKAHEAD_EVERY = 5


@dataclass(frozen=True)
class AirbenchRecipe:
    lr: float
    momentum: float
    weight_decay: float
    bias_scaler: float
    smoothing: float
    whiten_bias_epochs: int
    translate: int
    flip: bool
    lr_peak: float
    lr_start: float
    lr_end: float
    lookahead: bool

    def label_smoothing(self, cfg: TrainConfig) -> float:
        return self.smoothing

    def peak_lr(self, cfg: TrainConfig) -> float:
        return self.batch_lr(cfg.batch_size)

    def batch_lr(self, batch: int) -> float:
        """The weights' peak lr on the batch-mean loss: ``lr x batch / (1024 (1 + 1 / (1 - momentum)))``."""
        return self.lr * batch / (1024 * (1 + 1 / (1 - self.momentum)))

    def refuse(self, cfg: TrainConfig) -> None:
        if cfg.freeze != "none":
            raise ConfigError(
                "train.freeze: the airbench recipe trains every layer; a frozen backbone needs train.recipe: sgd"
            )

    def schedule(self, total: int) -> Callable[[int], float]:
        warmup = int(total * self.lr_peak)

        def factor(step: int) -> float:
            if step < warmup:
                return self.lr_start + (1 - self.lr_start) * step / warmup
            return 1 + (self.lr_end - 1) * (step - warmup) / max(1, total - warmup)

        return factor

    def optimizer(self, model: nn.Module, batch: int) -> torch.optim.SGD:
        lr = self.batch_lr(batch)
        decay = self.weight_decay / self.lr  # per unit of lr: the decay per step stays weight_decay x schedule
        norms = {
            id(p)
            for m in model.modules()
            if isinstance(m, nn.modules.batchnorm._BatchNorm)
            for p in m.parameters(recurse=False)
        }
        trained = [p for p in model.parameters() if p.requires_grad]
        groups = [
            {
                "params": [p for p in trained if id(p) in norms],
                "lr": lr * self.bias_scaler,
                "weight_decay": decay / self.bias_scaler,
            },
            {"params": [p for p in trained if id(p) not in norms], "lr": lr, "weight_decay": decay},
        ]
        return torch.optim.SGD(groups, lr=lr, momentum=self.momentum, nesterov=True)

    def fit(
        self,
        clf: Classifier,
        images: torch.Tensor,
        labels: torch.Tensor,
        cfg: TrainConfig,
        *,
        seed: int,
        loss_fn: Loss,
        on_epoch_end: Callable[[int, float], None] | None = None,
        progress: bool = True,
        params: list[nn.Parameter] | None = None,
        freeze_norm_stats: bool = False,
        device: torch.device | None = None,
    ) -> int:
        from tqdm import tqdm

        if params is not None:
            self.refuse(TrainConfig(freeze="backbone"))
        device = device or pick_device()
        torch.manual_seed(derive_seed(seed, "training-randomness"))
        model = clf.model.to(device, memory_format=torch.channels_last)
        step_model = torch.compile(model) if cfg.compile else model
        rng = generator(seed, "batches", device)
        images, labels = images.to(device), labels.to(device)
        steps_per_epoch = len(labels) // cfg.batch_size  # the reference drops the last partial batch
        total = cfg.epochs * steps_per_epoch
        optimizer = self.optimizer(model, cfg.batch_size)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, self.schedule(total))
        average = Lookahead(model) if self.lookahead else None
        flipped = random_flip(images, rng) if self.flip else images
        padded = F.pad(flipped, (self.translate,) * 4, mode="reflect") if self.translate else flipped
        bias = data_layer_bias(model)
        autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")
        step = 0
        for epoch in range(1, cfg.epochs + 1):
            model.train()
            if bias is not None:
                bias.requires_grad = epoch <= self.whiten_bias_epochs
            epoch_images = translate(padded, self.translate, rng) if self.translate else padded
            if self.flip and epoch % 2 == 0:  # the reference's odd epochs, counted from 0
                epoch_images = epoch_images.flip(-1)
            order = torch.randperm(len(labels), generator=rng, device=device)[: steps_per_epoch * cfg.batch_size]
            total_loss = torch.zeros((), device=device)
            for idx in tqdm(
                order.split(cfg.batch_size),
                desc=f"epoch {epoch}/{cfg.epochs}",
                leave=False,
                disable=None if progress else True,
            ):
                with autocast:
                    loss = loss_fn(step_model, clf.normalizer(epoch_images[idx]), labels[idx])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                scheduler.step()
                step += 1
                if average is not None and step % LOOKAHEAD_EVERY == 0:
                    average.update(0.95**5 * (step / total) ** 3)
                if average is not None and step == total:
                    average.update(1.0)
                total_loss += loss.detach() * len(idx)
            if on_epoch_end is not None:
                on_epoch_end(epoch, (total_loss / len(order)).item())
        if bias is not None:
            bias.requires_grad = True
        return step


class Lookahead:
    """The reference's lookahead: an exponential moving average of every float weight and BatchNorm statistic,
    copied back into the model after each update (with decay 1 the model becomes the average)."""

    def __init__(self, model: nn.Module):
        self.model = model
        self.average = {k: v.detach().clone() for k, v in model.state_dict().items() if v.is_floating_point()}

    @torch.no_grad()
    def update(self, decay: float) -> None:
        state = self.model.state_dict()
        for key, average in self.average.items():
            average.lerp_(state[key], 1 - decay)
            state[key].copy_(average)


def data_layer_bias(model: nn.Module) -> nn.Parameter | None:
    """The bias of a data-initialised model's data layer (airbench's whitening convolution), trained for the
    first epochs only; None for other models."""
    layer = getattr(model, "data_layer", None)
    return None if layer is None else layer.bias


def random_flip(images: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
    flip = torch.rand(len(images), generator=rng, device=rng.device).to(images.device) < 0.5
    return torch.where(flip[:, None, None, None], images.flip(-1), images)


def translate(padded: torch.Tensor, pad: int, rng: torch.Generator) -> torch.Tensor:
    """Each image cropped back to its size at a random offset in [0, 2 pad] (the reference's ``batch_crop``)."""
    n, c, height, width = padded.shape
    size_h, size_w = height - 2 * pad, width - 2 * pad
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=rng, device=rng.device).to(padded.device)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=rng, device=rng.device).to(padded.device)
    rows = (dy[:, None] + torch.arange(size_h, device=padded.device))[:, None, :, None]
    cols = (dx[:, None] + torch.arange(size_w, device=padded.device))[:, None, None, :]
    return padded[
        torch.arange(n, device=padded.device)[:, None, None, None],
        torch.arange(c, device=padded.device)[None, :, None, None],
        rows,
        cols,
    ]


@RECIPES.register(
    "airbench", reference="Keller Jordan, cifar10-airbench @ f1c599c (airbench/utils.py, lib_airbench94.py)"
)
def airbench(
    *,
    lr: float = 11.5,
    momentum: float = 0.85,
    weight_decay: float = 0.0153,
    bias_scaler: float = 64.0,
    label_smoothing: float = 0.2,
    whiten_bias_epochs: int = 3,
    translate: int = 2,
    flip: bool = True,
    lr_peak: float = 0.23,
    lr_start: float = 0.2,
    lr_end: float = 0.07,
    lookahead: bool = True,
) -> AirbenchRecipe:
    """The reference's hyper-parameters (``lib_airbench94.py``'s ``hyp``; ``utils.train``'s lr_peak and lr_end)."""
    n = RECIPES.number
    return AirbenchRecipe(
        lr=n("airbench", "lr", lr, low=0, low_open=True),
        momentum=n("airbench", "momentum", momentum, low=0, high=1, high_open=True),
        weight_decay=n("airbench", "weight_decay", weight_decay, low=0),
        bias_scaler=n("airbench", "bias_scaler", bias_scaler, low=0, low_open=True),
        smoothing=n("airbench", "label_smoothing", label_smoothing, low=0, high=1, high_open=True),
        whiten_bias_epochs=n("airbench", "whiten_bias_epochs", whiten_bias_epochs, low=0, integer=True),
        translate=n("airbench", "translate", translate, low=0, integer=True),
        flip=RECIPES.flag("airbench", "flip", flip),
        lr_peak=n("airbench", "lr_peak", lr_peak, low=0, high=1, low_open=True, high_open=True),
        lr_start=n("airbench", "lr_start", lr_start, low=0, low_open=True),
        lr_end=n("airbench", "lr_end", lr_end, low=0),
        lookahead=RECIPES.flag("airbench", "lookahead", lookahead),
    )
