"""Verdicts from ASR and robust accuracy together, re-learning on a copy, and the fine-tuning lr as a multiple of the
training run's peak lr (the issue: verdicts the evidence carries)."""

from __future__ import annotations

import copy

import pandas as pd
import pytest
import torch

from backdoor.classifier import Classifier
from backdoor.datasets import Dataset, Split
from backdoor.defence_settings import FinetuneConfig, RelearnConfig
from backdoor.errors import ConfigError
from backdoor.plots import plot_defence_vs_convergence
from backdoor.poisoning import build_strategy, make_poisoned_set
from backdoor.relearning import relearn, relearn_poisons
from backdoor.report import add_verdicts, seed_summary, verdict
from backdoor.tables import verdicts_table
from backdoor.triggers import build_trigger
from tests.conftest import make_experiment

torch.set_num_threads(1)


@pytest.mark.parametrize(
    "ft_asr, ft_ra, clean_ra, expected",
    [
        (0.05, 0.62, 0.67, "removed"),  # RA within 10 points of the clean model's
        (0.131, 0.179, 0.67, "redirected"),  # the blend 10 % row the issue names: triggered images go elsewhere
        (0.05, 0.57, 0.67, "removed"),  # exactly 10 points: recovered
        (0.05, 0.56, 0.67, "redirected"),
        (0.20, 0.66, 0.67, "kept"),  # ASR 0.2 is not below 0.2
        (0.95, 0.02, 0.67, "kept"),
        (0.05, 0.60, None, None),  # no clean model in the grid: no verdict on removal
        (None, 0.60, 0.67, None),  # a diverged model
    ],
)
def test_the_verdict_rule_on_hand_made_rows(ft_asr, ft_ra, clean_ra, expected):
    assert verdict(ft_asr, ft_ra, clean_ra) == expected


def summary_rows() -> pd.DataFrame:
    """Two seeds of a clean model and a backdoored one, fine-tuned by one defence."""
    base = dict(
        dataset="d",
        arch="a",
        strategy="all-to-one",
        regularizer="none",
        init="scratch",
        train_epochs=5,
        ft_lr="1x",
        ft_clean_size=0.05,
        ft_method="ft",
        trigger="square",
    )
    rows = []
    for seed, (clean_ra, ft_asr, ft_ra) in enumerate([(0.67, 0.10, 0.65), (0.70, 0.12, 0.30)]):
        rows.append(
            {
                **base,
                "seed": seed,
                "poison_rate": 0.0,
                "clean_acc": 0.8,
                "asr": 0.05,
                "robust_acc": clean_ra,
                "ft_clean_acc": 0.8,
                "ft_asr": 0.05,
                "ft_robust_acc": clean_ra,
            }
        )
        rows.append(
            {
                **base,
                "seed": seed,
                "poison_rate": 0.1,
                "clean_acc": 0.79,
                "asr": 0.95,
                "robust_acc": 0.04,
                "ft_clean_acc": 0.78,
                "ft_asr": ft_asr,
                "ft_robust_acc": ft_ra,
                "relearn_asr": 0.9,
                "clean_model_relearn_asr": 0.1,
            }
        )
    table = pd.DataFrame(rows)
    table["clean_acc_gap"] = 0.0
    return table


def test_each_poisoned_cell_is_judged_against_the_clean_model_of_its_seed_and_the_seeds_are_counted(tmp_path):
    table = add_verdicts(summary_rows())
    poisoned = table[table["poison_rate"] > 0]
    assert list(poisoned["verdict"]) == ["removed", "redirected"]
    assert list(poisoned["clean_model_ft_robust_acc"]) == [0.67, 0.70]
    assert table[table["poison_rate"] == 0]["verdict"].isna().all()
    seeds = seed_summary(table)
    row = seeds[seeds["poison_rate"] > 0].iloc[0]
    assert (row["verdict_removed"], row["verdict_redirected"], row["verdict_kept"]) == (1, 1, 0)
    text = verdicts_table(table)
    assert "removed 1 · redirected 1 · kept 0" in text and "0.900 / 0.100" in text and "(n=2)" in text
    plot_defence_vs_convergence(table, tmp_path / "figure.png")
    assert (tmp_path / "figure.png").stat().st_size > 1000


def tiny_poisoned():
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (120, 1, 8, 8), dtype=torch.uint8, generator=g)
    labels = torch.arange(120) % 4
    data = Dataset("tiny", ("a", "b", "c", "d"), Split(images, labels), Split(images[:40], labels[:40]))
    poisoned = make_poisoned_set(
        images,
        labels,
        images[:40],
        labels[:40],
        build_trigger("square", (1, 8, 8)),
        build_strategy("all-to-one", 0, None, 4),
        0.1,
        seed=0,
    )
    return data, poisoned


def test_relearning_retunes_a_copy_and_leaves_the_defended_model_untouched(tmp_path):
    data, poisoned = tiny_poisoned()
    clf = Classifier.create("small-cnn", data.train.images, 4, seed=0)
    clf.training = {"peak_lr": 0.05}
    clf.save(tmp_path / "defended.pt")
    before = (tmp_path / "defended.pt").read_bytes()
    weights = copy.deepcopy(clf.model.state_dict())
    images, labels = relearn_poisons(poisoned, 5, seed=0)
    assert len(images) == 5 and (labels == 0).all()  # the attacker's poisons, with the labels it gave them
    cfg = RelearnConfig(epochs=2, batch_size=8, lr="1x")
    record = relearn(
        clf,
        torch.cat([data.train.images[:40], images]),
        torch.cat([data.train.labels[:40], labels]),
        cfg,
        data,
        poisoned,
        seed=0,
    )
    assert set(record) == {"relearn_clean_acc", "relearn_asr", "relearn_robust_acc"}
    assert all(torch.equal(weights[k], v) for k, v in clf.model.state_dict().items())  # the original, unchanged
    assert (tmp_path / "defended.pt").read_bytes() == before
    with pytest.raises(ConfigError, match="relearn.poisons: 500 asked"):
        relearn_poisons(poisoned, 500, seed=0)


def test_the_lr_multiple_resolves_against_the_training_runs_peak_lr():
    assert FinetuneConfig(lr="0.1x").resolve(0.1).lr == pytest.approx(0.01)
    assert FinetuneConfig(lr="1x").resolve(1.5).lr == pytest.approx(1.5)  # airbench's peak at batch 1,024
    assert FinetuneConfig(lr=0.02).resolve(1.5).lr == 0.02  # a number stays a number
    with pytest.raises(ConfigError, match="records no training peak lr"):
        FinetuneConfig(lr="1x").resolve(None)
    exp = make_experiment(finetune={"lr": "0.5x"})
    assert exp.finetune.lr == "0.5x" and exp.ft_lr == "0.5x"
    for bad in ("x", "-1x", "0x", "tenx"):
        with pytest.raises(ConfigError, match="finetune.lr: must be a number in \\(0, inf\\) or a multiple"):
            make_experiment(finetune={"lr": bad}).finetune  # noqa: B018  (reading it checks it)
