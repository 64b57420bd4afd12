"""Stage 2: materialize the poisoned training set as a delta inside the training pool, plus the triggered test set."""

from pathlib import Path

from backdoor.cli import experiment, run, stage_parser
from backdoor.datasets import load_dataset, read_manifest
from backdoor.files import atomic_dir, manifest_sha256, save_tensors, write_json
from backdoor.poisoning import attack_record, build_attack, poison_dataset
from backdoor.settings import pool_size


def main(args) -> None:
    exp = experiment(args)
    manifest = read_manifest(args.raw)
    build_attack(exp, tuple(manifest["shape"]), len(manifest["classes"]))  # bad settings fail before loading
    pool_size(exp.subset, manifest["num_train"])
    data = load_dataset(args.raw)
    poisoned = poison_dataset(exp, data)
    with atomic_dir(args.out) as tmp:
        digest = save_tensors(Path(tmp) / "poison.pt", poisoned.to_dict())
        write_json(
            Path(tmp) / "manifest.json",
            {
                "sha256": {"poison.pt": digest},
                "raw_manifest_sha256": manifest_sha256(args.raw),  # the dataset it was built from
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
    )


if __name__ == "__main__":
    parser = stage_parser(__doc__)
    parser.add_argument("--raw", required=True, help="stored dataset folder (download stage output)")
    parser.add_argument("--out", required=True, help="output folder for poison.pt and manifest.json")
    run(main, parser)
