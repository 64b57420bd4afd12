"""Stage 2: materialize the poisoned training set as a delta, plus the triggered test set."""

from pathlib import Path

from backdoor.cli import experiment, run, stage_parser
from backdoor.data import load_dataset
from backdoor.experiment import poison_dataset
from backdoor.io import atomic_dir, manifest_sha256, save_tensors, write_json


def main(args) -> None:
    exp = experiment(args)
    data = load_dataset(args.raw)
    poisoned = poison_dataset(exp, data)
    with atomic_dir(args.out) as tmp:
        digest = save_tensors(Path(tmp) / "poison.pt", poisoned.to_dict())
        write_json(Path(tmp) / "manifest.json", {
            "sha256": {"poison.pt": digest},
            "raw_manifest_sha256": manifest_sha256(args.raw),  # the dataset it was built from
            "num_poisoned": poisoned.num_poisoned,
            "num_cross": poisoned.num_cross,
            "num_train": len(data.train),
            "num_triggered_test": len(poisoned.test_indices),
            "experiment": {k: v for k, v in exp.to_dict().items() if k not in ("train", "finetune")},
        })
    print(f"poisoned {poisoned.num_poisoned} of {len(data.train)} training images; "
          f"{len(poisoned.test_indices)} triggered test images")


if __name__ == "__main__":
    parser = stage_parser(__doc__)
    parser.add_argument("--raw", required=True, help="stored dataset folder (download stage output)")
    parser.add_argument("--out", required=True, help="output folder for poison.pt and manifest.json")
    run(main, parser)
