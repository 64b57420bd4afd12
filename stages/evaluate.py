"""Stage 5: CA, ASR and RA of the poisoned model before and after clean fine-tuning -> metrics.json."""

from backdoor.classifier import load_trained
from backdoor.cli import experiment, run, stage_parser
from backdoor.datasets import load_dataset
from backdoor.evaluation import before_after, evaluate
from backdoor.io import write_json
from backdoor.poisoned_set import load_poisoned


def main(args) -> None:
    exp = experiment(args)
    data, poisoned = load_dataset(args.raw), load_poisoned(args.poisoned, args.raw)
    before = evaluate(load_trained(args.model, args.raw, args.poisoned), data, poisoned)
    after = evaluate(load_trained(args.finetuned, args.raw, args.poisoned), data, poisoned)
    write_json(args.out, {**before_after(before, after, poisoned), "experiment": exp.summary()})
    print(f"CA {before['clean_acc']:.4f}  ASR {before['asr']:.4f}  RA {before['robust_acc']:.4f}  | after fine-tuning: "
          f"CA {after['clean_acc']:.4f}  ASR {after['asr']:.4f}  RA {after['robust_acc']:.4f}")


if __name__ == "__main__":
    parser = stage_parser(__doc__)
    parser.add_argument("--raw", required=True)
    parser.add_argument("--poisoned", required=True)
    parser.add_argument("--model", required=True, help="poisoned model.pt")
    parser.add_argument("--finetuned", required=True, help="fine-tuned model.pt")
    parser.add_argument("--out", required=True, help="metrics JSON to write")
    run(main, parser)
