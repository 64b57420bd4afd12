"""Grid stage: label-consistent poisoning's perturbation (backdoor/perturbation.py). The images the cell's strategy
may poison in its training pool (label-consistent: the target class) moved by L-inf PGD against the cell's clean
baseline model (poison rate 0, same dataset, arch, regularizer, seed and training); every poison rate and trigger
of the cell reads them (the poison stage's ``--perturbed``)."""

from dataclasses import asdict
from pathlib import Path

from backdoor.classifier import Classifier, load_trained, pick_device
from backdoor.cli import experiment, run, stage_parser, use_threads
from backdoor.datasets import load_dataset, read_manifest
from backdoor.errors import ConfigError
from backdoor.files import atomic_dir, manifest_sha256, save_tensors, sha256_file, write_json
from backdoor.perturbation import perturb_images
from backdoor.poisoned_set import training_pool
from backdoor.strategies import STRATEGIES, build_strategy


def main(args) -> None:
    exp = experiment(args)
    use_threads(exp)
    manifest = read_manifest(args.raw)
    settings = exp.method_block("strategies", exp.strategy)
    strategy = build_strategy(exp.strategy, exp.target, exp.source, len(manifest["classes"]), **settings)
    if strategy.perturbation is None:
        names = ", ".join(STRATEGIES.names(perturbed=True))
        raise ConfigError(f"perturb: strategy {exp.strategy} perturbs nothing (only {names} do)")
    if Classifier.load(args.model).trained_on.get("poisoned"):
        raise ConfigError(f"perturb: {args.model} was trained on poisoned data; the source must be a clean baseline")
    clf = load_trained(args.model, args.raw, None)
    data = load_dataset(args.raw)
    pool = training_pool(len(data.train), exp.subset, exp.seed)
    positions = pool[strategy.train_mask(data.train.labels[pool])]
    device = pick_device()
    model = clf.model.to(device).eval().requires_grad_(False)
    perturbed, stats = perturb_images(
        lambda x: model(clf.normalizer(x)),
        data.train.images,
        data.train.labels,
        positions,
        strategy.perturbation,
        exp.seed,
        device,
    )
    with atomic_dir(args.out) as tmp:
        digest = save_tensors(Path(tmp) / "perturbed.pt", perturbed.to_dict())
        write_json(
            Path(tmp) / "manifest.json",
            {
                "sha256": {"perturbed.pt": digest},
                "raw_manifest_sha256": manifest_sha256(args.raw),
                "model_sha256": sha256_file(args.model),  # the clean model the images were perturbed against
                "strategy": exp.strategy,
                "target": exp.target,
                "pgd": asdict(strategy.perturbation),
                "num_perturbed": len(positions),
                "num_train": len(pool),
                **{key: round(value, 6) for key, value in stats.items()},
            },
        )
    print(
        f"perturbed {len(positions)} images: the clean model's loss {stats['loss_before']:.3f} -> "
        f"{stats['loss_after']:.3f}, accuracy {stats['acc_before']:.3f} -> {stats['acc_after']:.3f}"
    )


if __name__ == "__main__":
    parser = stage_parser(__doc__)
    parser.add_argument("--raw", required=True, help="stored dataset folder (download stage output)")
    parser.add_argument("--model", required=True, help="the cell's clean baseline model.pt")
    parser.add_argument("--out", required=True, help="output folder for perturbed.pt and manifest.json")
    run(main, parser)
