"""Grid stage: a trained model's penultimate features of its training set, the labels it was trained on, and
which images were poisoned (the truth the training-data detectors are scored against)."""

from pathlib import Path

import torch

from backdoor.classifier import load_trained
from backdoor.cli import experiment, run, stage_parser, use_threads
from backdoor.datasets import load_dataset
from backdoor.detection import training_features
from backdoor.files import atomic_dir, save_tensors, write_json
from backdoor.poisoned_set import load_poisoned, training_pool


def main(args) -> None:
    exp = experiment(args)
    use_threads(exp)
    data = load_dataset(args.raw)
    clf = load_trained(args.model, args.raw, args.poisoned)
    if args.poisoned:
        poisoned = load_poisoned(args.poisoned, args.raw)
        images, labels = poisoned.training_set(data.train.images, data.train.labels)
        trojans = poisoned.indices[~torch.isin(poisoned.indices, poisoned.cover_indices)]  # not the cross images
        truth = torch.isin(poisoned.pool, trojans)
    else:  # a clean baseline: its pool, nothing poisoned
        pool = training_pool(len(data.train), exp.subset, exp.seed)
        images, labels, truth = (
            data.train.images[pool],
            data.train.labels[pool],
            torch.zeros(len(pool), dtype=torch.bool),
        )
    features = training_features(clf, images)
    with atomic_dir(args.out) as tmp:
        digest = save_tensors(Path(tmp) / "features.pt", {"features": features, "labels": labels, "poisoned": truth})
        write_json(
            Path(tmp) / "manifest.json",
            {"sha256": {"features.pt": digest}, "shape": list(features.shape), "num_poisoned": int(truth.sum())},
        )
    print(f"features {tuple(features.shape)} of {int(truth.sum())} poisoned and {int((~truth).sum())} clean images")


if __name__ == "__main__":
    parser = stage_parser(__doc__)
    parser.add_argument("--raw", required=True)
    parser.add_argument("--poisoned", help="the poisoned set the model was trained on; without it, a clean baseline")
    parser.add_argument("--model", required=True)
    parser.add_argument("--out", required=True, help="output folder: features.pt, manifest.json")
    run(main, parser)
