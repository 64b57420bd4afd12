"""Stage 1: store a dataset's splits as checksummed uint8 tensors (data/raw/focus/, data/grid/raw/<dataset>/)."""

from backdoor.cli import experiment, run, stage_parser
from backdoor.datasets.registry import prepare_dataset


def main(args) -> None:
    exp = experiment(args)
    prepare_dataset(exp.dataset, args.out, args.downloads, image_size=exp.image_size)  # checks the name first
    print(f"stored {exp.dataset} in {args.out}")


if __name__ == "__main__":
    parser = stage_parser(__doc__)
    parser.add_argument("--out", required=True, help="output folder, e.g. data/raw/focus")
    parser.add_argument("--downloads", default="data/downloads", help="where source archives are cached")
    run(main, parser)
