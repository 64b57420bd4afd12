"""Stage 6: training curves, the fine-tuning recovery curve and clean-vs-triggered samples."""

from pathlib import Path

import pandas as pd

from backdoor.cli import experiment, run, stage_parser
from backdoor.datasets import load_dataset
from backdoor.files import write_csv
from backdoor.gallery import trigger_gallery, trigger_zoo
from backdoor.plots import long_curve, plot_curves, plot_samples, read_dvclive
from backdoor.poisoned_set import load_poisoned

SAMPLES = 8


def main(args) -> None:
    exp = experiment(args)
    out, figures = Path(args.out), Path(args.figures)
    train = read_dvclive(Path(args.train) / "live")
    finetune = long_curve(pd.read_csv(Path(args.finetune) / "curve.csv"))
    write_csv(train, out / "train.csv")
    write_csv(finetune, out / "finetune.csv")
    plot_curves(train, "training on the poisoned set", figures / "training.png")
    plot_curves(finetune, "clean fine-tuning (epoch 0 = before)", figures / "finetune.png", "fine-tune epoch")

    data, poisoned = load_dataset(args.raw), load_poisoned(args.poisoned, args.raw)
    picks = poisoned.test_indices[:SAMPLES]
    names = [
        f"{data.classes[int(t)]}→{data.classes[int(g)]}"
        for t, g in zip(poisoned.test_labels[:SAMPLES], poisoned.test_targets[:SAMPLES])
    ]
    plot_samples(data.test.images[picks], poisoned.test_images[:SAMPLES], names, figures / "samples.png")
    zoo = trigger_zoo(exp, tuple(data.test.images.shape[1:]), exp.all_methods("triggers"))
    trigger_gallery(data.test.images[: len(zoo)], zoo, figures / "triggers.png", seed=exp.seed)


if __name__ == "__main__":
    parser = stage_parser(__doc__)
    parser.add_argument("--raw", required=True)
    parser.add_argument("--poisoned", required=True)
    parser.add_argument("--train", required=True, help="train stage output folder (live/)")
    parser.add_argument("--finetune", required=True, help="finetune stage output folder (curve.csv)")
    parser.add_argument("--out", required=True, help="folder for the plot tables")
    parser.add_argument("--figures", required=True, help="folder for the PNG figures")
    run(main, parser)
