"""A preset run kept in parts (tools/keep_run.py --part) and joined (tools/join_parts.py) gives the tables one run of
all the cells would have written."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from backdoor.errors import ConfigError
from backdoor.files import write_csv
from backdoor.joined_runs import join_parts
from backdoor.report import FLOAT_FORMAT, seed_summary, with_cross_cell_columns


def collected(seeds=(0, 1, 2)) -> pd.DataFrame:
    """``collect``'s table for a clean model and the square and blend at 10 %, fine-tuned by ft, over ``seeds``:
    the ft results vary with the seed so that verdicts and intervals differ from row to row."""
    rows = []
    for seed in seeds:
        for trigger in ("square", "blend"):
            for rate in (0.0, 0.1):
                backdoored = rate > 0
                rows.append(
                    dict(
                        cell=f"{trigger}_r{rate:g}_s{seed}",
                        dataset="cifar10",
                        arch="airbench",
                        trigger=trigger,
                        strategy="all-to-one",
                        poison_rate=rate,
                        regularizer="none",
                        seed=seed,
                        init="scratch",
                        train_epochs=11,
                        ft_lr="1x",
                        ft_clean_size=0.05,
                        ft_method="ft",
                        clean_acc=0.882 - 0.004 * rate * 10 + 0.001 * seed,
                        asr=0.96 if backdoored else 0.01,
                        robust_acc=0.03 if backdoored else 0.137 + 0.01 * seed,
                        ft_clean_acc=0.85,
                        ft_asr=(0.05 + 0.1 * seed) if backdoored else 0.01,
                        ft_robust_acc=(0.60 - 0.2 * seed) if backdoored else 0.65,
                        num_test=10_000,
                    )
                )
    return pd.DataFrame(rows)


def write_part(folder: Path, table: pd.DataFrame) -> Path:
    """What the report stage writes for ``table``'s cells (and keep_run's record)."""
    folder.mkdir(parents=True)
    summary = with_cross_cell_columns(table)
    write_csv(summary, folder / "summary.csv", FLOAT_FORMAT)
    write_csv(seed_summary(summary), folder / "seeds.csv", FLOAT_FORMAT)
    write_csv(table.assign(steps=0, epoch=0), folder / "recovery.csv", FLOAT_FORMAT)
    pd.DataFrame({"stage": ["train"], "seconds": [60.0]}).to_csv(folder / "stage_times.csv", index=False)
    (folder / "run.json").write_text(json.dumps({"commit": "abc", "seeds": sorted(table["seed"].unique().tolist())}))
    return folder


def csv_text(table: pd.DataFrame, path: Path) -> str:
    write_csv(table, path, FLOAT_FORMAT)
    return path.read_text()


@pytest.mark.parametrize("split", ["seed", "poison_rate"])
def test_parts_join_to_the_tables_of_one_run_even_with_the_clean_model_in_another_part(tmp_path, split):
    whole = write_part(tmp_path / "whole", collected())
    parts = [write_part(tmp_path / f"part-{value}", rows) for value, rows in collected().groupby(split)]
    joined = join_parts(parts)
    order = pd.read_csv(whole / "summary.csv")["cell"]
    summary = joined["summary.csv"].set_index("cell").loc[order].reset_index()
    assert csv_text(summary, tmp_path / "s.csv") == (whole / "summary.csv").read_text()
    seeds = joined["seeds.csv"]
    keys = ["trigger", "poison_rate"]  # the axes that vary: the rows come in the parts' order
    expected = pd.read_csv(whole / "seeds.csv").sort_values(keys, ignore_index=True)
    got = seeds.sort_values(keys, ignore_index=True)
    assert csv_text(got, tmp_path / "m.csv") == csv_text(expected, tmp_path / "e.csv")
    assert set(summary["verdict"].dropna()) == {"removed", "redirected", "kept"}  # the clean model: any part
    assert (seeds["n_seeds"] == 3).all() and len(joined["recovery.csv"]) == len(summary)


def test_a_cell_two_parts_hold_must_agree(tmp_path):
    table = collected(seeds=(0,))
    same = [write_part(tmp_path / "a", table), write_part(tmp_path / "b", table)]
    assert len(join_parts(same)["summary.csv"]) == len(table)  # the same run kept twice: counted once
    other = write_part(tmp_path / "c", table.assign(asr=table["asr"] - 0.01))
    with pytest.raises(ConfigError, match="cell square_r0_s0 differs between the parts"):
        join_parts([same[0], other])


def test_join_preset_writes_the_run_from_its_parts_and_refuses_a_preset_without_parts(tmp_path):
    from tools.join_parts import join_preset

    preset = tmp_path / "reference"
    for seed in (0, 1):
        part = write_part(preset / "parts" / f"seed-{seed}", collected(seeds=(seed,)))
        (part / "figures").mkdir()
        (part / "figures" / "triggers-cifar10.png").write_bytes(b"gallery")
    written = join_preset(preset)
    assert {"summary.csv", "seeds.csv", "stage_times.csv", "run.json"} <= set(written)
    assert list(pd.read_csv(preset / "stage_times.csv")["part"]) == ["seed-0", "seed-1"]
    record = json.loads((preset / "run.json").read_text())
    assert record["seeds"] == [0, 1] and list(record["parts"]) == ["seed-0", "seed-1"]
    assert (preset / "figures" / "triggers-cifar10.png").read_bytes() == b"gallery"
    assert (preset / "figures" / "asr_vs_rate.png").stat().st_size > 0
    with pytest.raises(ConfigError, match="no parts under"):
        join_preset(tmp_path / "other")
