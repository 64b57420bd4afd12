"""Grid stage: one detector on one trained model (backdoor/detection.py): a JSON record (metrics per variant: the
training-data detectors' forms, STRIP's two superpositions), the scores with the truth beside them
(``<record>.scores.csv.gz``, kept in git with a preset's run), and for a model-level detector (Neural Cleanse) the
reversed trigger as a PNG."""

import time
from pathlib import Path

import torch

from backdoor.classifier import load_trained
from backdoor.cli import experiment, run, stage_parser, use_threads
from backdoor.datasets import load_dataset
from backdoor.detection import block_features, detect, detection_scores_file, reversed_trigger_file
from backdoor.detectors import DETECTORS, build_detector, detector_variants
from backdoor.errors import ConfigError
from backdoor.files import load_tensors, read_json, write_csv, write_json
from backdoor.params import read_params
from backdoor.poisoned_set import load_poisoned, training_pool


def main(args) -> None:
    exp = experiment(args)
    use_threads(exp)
    settings = (read_params(args.params).get("detectors") or {}).get(args.detector) or {}
    detector = build_detector(args.detector, **settings)  # bad settings fail before loading
    kind = DETECTORS.get(args.detector).kind
    if kind == "training-data" and not args.features:
        raise ConfigError(f"detect: {args.detector} needs --features (the features stage's output)")
    data = load_dataset(args.raw)
    clf = load_trained(args.model, args.raw, args.poisoned)
    poisoned = load_poisoned(args.poisoned, args.raw) if args.poisoned else None
    if poisoned is not None:
        pool, trojans = poisoned.pool, poisoned.indices
    else:  # a clean baseline judged without triggered inputs: its own pool
        pool, trojans = training_pool(len(data.train), exp.subset, exp.seed), torch.zeros(0, dtype=torch.int64)
    if kind == "inputs" and poisoned is None:
        raise ConfigError(f"detect: {args.detector} scores triggered inputs: give --poisoned")
    features = None
    if args.features:
        manifest = read_json(Path(args.features) / "manifest.json")
        saved = load_tensors(Path(args.features) / "features.pt", manifest["sha256"]["features.pt"])
        features = {"pooled": saved["features"], "labels": saved["labels"], "poisoned": saved["poisoned"]}
        if any(layer == "block" for _, layer in detector_variants(args.detector, detector).values()):
            images = (
                poisoned.training_set(data.train.images, data.train.labels)[0]
                if poisoned is not None
                else data.train.images[pool]
            )
            features["block"] = block_features(clf, images)
    start = time.perf_counter()
    record, scores = detect(
        args.detector,
        settings,
        clf,
        data,
        pool=pool,
        poisoned=trojans,
        triggered=poisoned.test_images if poisoned is not None else None,
        triggered_targets=poisoned.test_targets if poisoned is not None else None,
        backdoored=exp.poison_rate > 0,
        target=exp.target if exp.strategy != "all-to-all" else None,
        seed=exp.seed,
        features=features,
    )
    seconds = time.perf_counter() - start
    reversed_trigger = record.pop("reversed", None)
    if reversed_trigger is not None:
        from backdoor.plots import plot_reversed_trigger  # matplotlib costs every other detector 0.6 s of start-up

        row = record["rows"][0]
        plot_reversed_trigger(
            reversed_trigger["mask"],
            reversed_trigger["pattern"],
            reversed_trigger_file(args.out),
            f"{args.detector}: class {row['smallest_norm_class']}, index {row['anomaly_index']:.2f}",
        )
    write_json(args.out, record)
    write_csv(scores, detection_scores_file(args.out), float_format="%.6g")
    first, ranking = record["rows"][0], DETECTORS.get(args.detector).ranking
    print(f"{args.detector}: TPR {first['tpr']}  FPR {first['fpr']}  {ranking} {first.get(ranking)}  ({seconds:.1f} s)")


if __name__ == "__main__":
    parser = stage_parser(__doc__)
    parser.add_argument("--detector", required=True)
    parser.add_argument("--raw", required=True)
    parser.add_argument(
        "--poisoned",
        help="the model's poisoned set; for a clean baseline, a trigger's rate-0 set "
        "for detectors that score triggered inputs, else nothing",
    )
    parser.add_argument("--model", required=True)
    parser.add_argument("--features", help="the features stage's folder (spectral, activation clustering)")
    parser.add_argument(
        "--out", required=True, help="the record (JSON); scores and, for Neural Cleanse, a PNG beside it"
    )
    run(main, parser)
