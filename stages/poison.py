"""Stage 2: materialize the poisoned training set as a delta inside the training pool, plus the triggered test set.

A strategy that perturbs its images first (label-consistent, grid only) reads them from the perturb stage's
output (``--perturbed``), whose manifest pins the clean model they were perturbed against."""

from pathlib import Path

from backdoor.cli import experiment, run, stage_parser
from backdoor.datasets import load_dataset, read_manifest
from backdoor.errors import ConfigError
from backdoor.files import atomic_dir, manifest_sha256, save_tensors, write_json
from backdoor.perturbation import load_perturbed
from backdoor.poisoning import attack_record, build_attack, poison_dataset
from backdoor.settings import pool_size


def main(args) -> None:
    exp = experiment(args)
    manifest = read_manifest(args.raw)
    _, strategy = build_attack(exp, tuple(manifest["shape"]), len(manifest["classes"]))  # bad settings fail first
    pool_size(exp.subset, manifest["num_train"])
    perturbed = None
    if args.perturbed:
        if strategy.perturbation is None:
            raise ConfigError(f"poison: --perturbed given, but strategy {exp.strategy} perturbs nothing")
        perturbed, record = load_perturbed(args.perturbed, args.raw)
        if record["target"] != exp.target or record["strategy"] != exp.strategy:
            raise ConfigError(
                f"{args.perturbed} was perturbed for another target or strategy: re-run its perturb stage"
            )
    data = load_dataset(args.raw)
    poisoned = poison_dataset(exp, data, perturbed)
    with atomic_dir(args.out) as tmp:
        digest = save_tensors(Path(tmp) / "poison.pt", poisoned.to_dict())
        write_json(
            Path(tmp) / "manifest.json",
            {
                "sha256": {"poison.pt": digest},
                "raw_manifest_sha256": manifest_sha256(args.raw),  # the dataset it was built from
                # the perturbed images it used, which pin the clean model (a key only where there are some)
                **({"perturbed_manifest_sha256": manifest_sha256(args.perturbed)} if args.perturbed else {}),
                "num_poisoned": poisoned.num_poisoned,  # inside the pool: what the model trains on
                "num_cover": poisoned.num_cover,
                "num_train": len(poisoned.pool),  # the training pool (train.subset, or the whole set)
                "num_dataset_train": len(data.train),
                "num_triggered_test": len(poisoned.test_indices),
                "experiment": attack_record(exp),
            },
        )
    print(
        f"poisoned {poisoned.num_poisoned} of the {len(poisoned.pool)} training images the model trains on; "
        f"{len(poisoned.test_indices)} triggered test images"
        + (f"; {poisoned.num_cover} cover images keep their labels" if poisoned.num_cover else "")
    )


if __name__ == "__main__":
    parser = stage_parser(__doc__)
    parser.add_argument("--raw", required=True, help="stored dataset folder (download stage output)")
    parser.add_argument("--perturbed", help="the perturb stage's output (label-consistent cells of the grid)")
    parser.add_argument("--out", required=True, help="output folder for poison.pt and manifest.json")
    run(main, parser)
