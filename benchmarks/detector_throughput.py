"""Images per second of the input- and model-level detectors against the training loop's, in one run.

    python benchmarks/detector_throughput.py            # small-cnn, Fashion-MNIST shape, synthetic images

The training loop (``backdoor.loop.fit``: forward, backward, SGD step, batch 128) sets the pace a detector is
measured against. STRIP's images are its blended inputs, each one forward pass of the folded inference model
(``backdoor.detection.inference_logits``); Neural Cleanse's are its masked images, each a forward and a backward
pass to the mask and pattern (batches of 32, the reference's). Prints each rate and its ratio to the loop's.
"""

from __future__ import annotations

import argparse
import time

import torch

from backdoor.classifier import Classifier
from backdoor.detection import inference_logits, model_logits
from backdoor.detectors import build_detector
from backdoor.loop import fit
from backdoor.settings import LoopConfig


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="small-cnn")
    parser.add_argument("--images", type=int, default=6000, help="training images for the loop's timing")
    parser.add_argument("--inputs", type=int, default=200, help="STRIP inputs (64 blends each)")
    parser.add_argument("--nc-images", type=int, default=256, help="Neural Cleanse's clean images")
    parser.add_argument("--smoke", action="store_true", help="a tiny run that checks the script works")
    args = parser.parse_args(argv)
    if args.smoke:
        args.images, args.inputs, args.nc_images = 512, 8, 64
    g = torch.Generator().manual_seed(0)
    images = torch.randint(
        0, 256, (max(args.images, 2 * args.inputs + args.nc_images), 1, 28, 28), dtype=torch.uint8, generator=g
    )
    labels = torch.randint(0, 10, (len(images),), generator=g)
    clf = Classifier.create(args.arch, images, 10, seed=0)
    print(f"{args.arch}, 1x28x28, {torch.get_num_threads()} torch threads")

    start = time.perf_counter()
    fit(
        clf,
        images[: args.images],
        labels[: args.images],
        LoopConfig(epochs=1, batch_size=128, crop_padding=0, flip=False),
        seed=0,
        progress=False,
    )
    loop = args.images / (time.perf_counter() - start)
    print(f"training loop: {loop:,.0f} images/s")

    strip = build_detector("strip", num_blends=64)
    start = time.perf_counter()
    strip(
        inference_logits(clf),
        images[: args.inputs],
        images[args.inputs : 2 * args.inputs],
        g,
        clean=images[2 * args.inputs : 3 * args.inputs],
    )
    blended = 2 * args.inputs * strip.num_blends  # the held-out clean inputs and the scored ones
    strip_rate = blended / (time.perf_counter() - start)
    print(f"STRIP: {strip_rate:,.0f} blended images/s = {strip_rate / loop:.2f}x the loop")

    nc = build_detector("neural-cleanse", steps=2, num_images=args.nc_images)
    start = time.perf_counter()
    result = nc(model_logits(clf), images[: args.nc_images], labels[: args.nc_images], 10, g)
    seen = int((result.updates.double() * nc.batch_size).sum())  # full batches: an upper bound by < 1 batch per step
    nc_rate = seen / (time.perf_counter() - start)
    print(f"Neural Cleanse: {nc_rate:,.0f} masked images/s (forward and backward) = {nc_rate / loop:.2f}x the loop")
    return {"loop": loop, "strip": strip_rate, "neural_cleanse": nc_rate}


if __name__ == "__main__":
    main()
