"""Grid stage: one detector on one trained model (backdoor/detection.py): a JSON record, and for a model-level
detector (Neural Cleanse) the reversed trigger as a PNG beside it."""

import time
from pathlib import Path

import torch

from backdoor.classifier import load_trained
from backdoor.cli import experiment, run, stage_parser
from backdoor.config import read_params
from backdoor.datasets import load_dataset
from backdoor.detection import detect
from backdoor.detectors import KINDS, check_detector
from backdoor.errors import ConfigError
from backdoor.io import load_tensors, read_json, write_json
from backdoor.poisoned_set import load_poisoned, training_pool


def main(args) -> None:
    exp = experiment(args)
    settings = (read_params(args.params).get("detectors") or {}).get(args.detector) or {}
    check_detector(args.detector, settings)
    if KINDS[args.detector] == "training-data" and not args.features:
        raise ConfigError(f"detect: {args.detector} needs --features (the features stage's output)")
    data = load_dataset(args.raw)
    clf = load_trained(args.model, args.raw, args.poisoned)
    if args.poisoned:
        poisoned = load_poisoned(args.poisoned, args.raw)
        pool, trojans, triggered = poisoned.pool, poisoned.indices, poisoned.test_images
    else:  # a clean baseline judged without triggered inputs: its own pool
        pool = training_pool(len(data.train), exp.train.subset, exp.seed)
        trojans, triggered = torch.zeros(0, dtype=torch.int64), None
    if KINDS[args.detector] == "inputs" and triggered is None:
        raise ConfigError(f"detect: {args.detector} scores triggered inputs: give --poisoned")
    features = None
    if args.features:
        manifest = read_json(Path(args.features) / "manifest.json")
        features = load_tensors(Path(args.features) / "features.pt", manifest["sha256"]["features.pt"])
    start = time.perf_counter()
    backdoored = exp.poison_rate > 0
    target = exp.target if exp.strategy != "all-to-all" else None
    record = detect(args.detector, settings, clf, data, pool=pool, poisoned=trojans, triggered=triggered,
                    backdoored=backdoored, target=target, seed=exp.seed, features=features)
    reversed_trigger = record.pop("reversed", None)
    if reversed_trigger is not None:
        from backdoor.plots import plot_reversed_trigger  # matplotlib costs every other detector 0.6 s of start-up

        plot_reversed_trigger(reversed_trigger["mask"], reversed_trigger["pattern"], Path(args.out).with_suffix(".png"),
                              f"{args.detector}: class {record['norms'].index(min(record['norms']))}, "
                              f"index {record['anomaly_index']:.2f}")
    write_json(args.out, record)
    print(f"{args.detector}: TPR {record['tpr']}  FPR {record['fpr']}  ({time.perf_counter() - start:.1f} s)")


if __name__ == "__main__":
    parser = stage_parser(__doc__)
    parser.add_argument("--detector", required=True)
    parser.add_argument("--raw", required=True)
    parser.add_argument("--poisoned", help="the model's poisoned set; for a clean baseline, a trigger's rate-0 set "
                                           "for detectors that score triggered inputs, else nothing")
    parser.add_argument("--model", required=True)
    parser.add_argument("--features", help="the features stage's folder (spectral, activation clustering)")
    parser.add_argument("--out", required=True, help="the record (JSON); a PNG beside it for Neural Cleanse")
    run(main, parser)
