"""Each experiment's changed parameters with its focus CA, ASR and fine-tuned ASR, in about 120 columns.

    python tools/exp_table.py        # or: make exp

`dvc exp show` has a column per parameter and dependency hash (unreadable even at 200 columns); this
keeps the rows of `dvc exp show --csv` (the workspace, the commit, its experiments) and only the columns a
reader compares: the parameters that differ between rows, and the focus experiment's metrics.
"""

import argparse
import io
import subprocess
import sys

import pandas as pd

from backdoor.params import read_params

METRICS = {"clean_acc": "CA", "asr": "ASR", "finetuned.clean_acc": "ft CA", "finetuned.asr": "ft ASR"}


def flat_keys(params: dict, prefix: str = "") -> list[str]:
    keys = []
    for key, value in params.items():
        name = f"{prefix}{key}"
        keys += flat_keys(value, f"{name}.") if isinstance(value, dict) and value else [name]
    return keys


def experiment_table(csv_text: str, param_keys: list[str], width: int = 30) -> pd.DataFrame:
    """The rows of `dvc exp show --csv` with the parameters that vary and the focus metrics."""
    table = pd.read_csv(io.StringIO(csv_text), dtype=str, keep_default_na=False)
    names = table["Experiment"].where(table["Experiment"] != "", table["rev"])
    params = [k for k in param_keys if k in table.columns and table[k].nunique() > 1]
    shown = table[params].apply(lambda column: column.str.slice(0, width))
    metrics = table[[m for m in METRICS if m in table.columns]].apply(pd.to_numeric, errors="coerce")
    return pd.concat([names.rename("experiment"), shown, metrics.round(3).rename(columns=METRICS)], axis=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args()
    shown = subprocess.run(["dvc", "exp", "show", "--csv"], capture_output=True, text=True)
    if shown.returncode:
        sys.exit(f"exp: dvc exp show failed: {shown.stderr.strip().splitlines()[-1] if shown.stderr else ''}")
    table = experiment_table(shown.stdout, flat_keys(read_params(args.params)))
    print(table.to_string(index=False, na_rep="-"))


if __name__ == "__main__":
    main()
