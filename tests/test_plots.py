import argparse
import math

import pandas as pd
import pytest

from backdoor.plots import detection_grids, plot_detection


def _detection() -> pd.DataFrame:
    """Two seeds of checker at 1 % and 10 % for spectral and Neural Cleanse; clean baselines for spectral only."""
    rows = []
    for rate, poisons, tp in ((0.01, 40, [10, 30]), (0.1, 2000, [150, 250])):
        for seed, hits in enumerate(tp):
            rows.append(
                dict(
                    detector="spectral",
                    trigger="checker",
                    poison_rate=rate,
                    seed=seed,
                    tp=hits,
                    fn=poisons - hits,
                    fp=5,
                    tn=95,
                )
            )
            rows.append(
                dict(
                    detector="neural-cleanse",
                    trigger="checker",
                    poison_rate=rate,
                    seed=seed,
                    tp=seed,
                    fn=1 - seed,
                    fp=0,
                    tn=0,
                )
            )
    rows.append(dict(detector="spectral", trigger="checker", poison_rate=0.0, seed=0, tp=0, fn=0, fp=15, tn=85))
    return pd.DataFrame(rows)


def test_detection_grids_keep_rates_apart_and_align_the_clean_panel():
    tpr, false_alarms = detection_grids(_detection())
    assert list(tpr.columns) == ["checker 1 %", "checker 10 %"]  # not averaged over rates
    assert list(tpr.index) == list(false_alarms.index) == ["neural-cleanse", "spectral"]
    assert tpr.loc["spectral", "checker 1 %"] == (10 / 40 + 30 / 40) / 2
    assert tpr.loc["spectral", "checker 10 %"] == (150 / 2000 + 250 / 2000) / 2
    assert tpr.loc["neural-cleanse", "checker 10 %"] == 0.5  # one of two models' targets flagged
    assert false_alarms.loc["spectral", "clean"] == 0.15
    assert math.isnan(false_alarms.loc["neural-cleanse", "clean"])  # no clean model for it: a gap, not a shift


def test_one_rate_labels_columns_by_trigger_and_the_figure_is_written(tmp_path):
    table = _detection()
    tpr, _ = detection_grids(table[table["poison_rate"] != 0.01])
    assert list(tpr.columns) == ["checker"]
    plot_detection(table, tmp_path / "detection.png")
    assert (tmp_path / "detection.png").stat().st_size > 0


def test_recovery_keeps_poison_rates_apart(tmp_path, monkeypatch):
    """A backdoor removed at 10 % and kept at 1 % is two lines, not one at half: the persistence figure's question."""
    import backdoor.plots as plots

    figures = []
    monkeypatch.setattr(plots, "save_figure", lambda fig, path: figures.append(fig))
    rows = [
        dict(
            trigger="blend",
            poison_rate=rate,
            ft_method="ft",
            ft_lr=0.01,
            ft_clean_size=0.05,
            seed=0,
            steps=step,
            asr=asr,
            clean_acc=0.8,
        )
        for rate, end in ((0.01, 0.9), (0.1, 0.1))
        for step, asr in ((0, 1.0), (1000, end))
    ]
    plots.plot_recovery(pd.DataFrame(rows), tmp_path / "recovery.png")
    asr_lines = {
        line.get_label(): list(line.get_ydata())
        for line in figures[0].axes[0].get_lines()
        if line.get_label().endswith("ASR")
    }
    assert asr_lines == {"blend 1% ASR": [1.0, 0.9], "blend 10% ASR": [1.0, 0.1]}


def _rates() -> pd.DataFrame:
    """Two seeds of square at 0.1 % and 1 % (each seed with two regularizers), and a clean model."""
    rows = [
        dict(
            dataset="cifar10",
            arch="resnet6-cpu",
            trigger="square",
            poison_rate=rate,
            seed=seed,
            regularizer=reg,
            asr=asr,
        )
        for rate, seed, reg, asr in (
            (0.001, 0, "none", 0.1),
            (0.001, 0, "mixup", 0.3),
            (0.001, 1, "none", 0.4),
            (0.001, 1, "mixup", 0.4),
            (0.01, 0, "none", 0.9),
            (0.01, 1, "none", 1.0),
        )
    ]
    rows.append(
        dict(
            dataset="cifar10",
            arch="resnet6-cpu",
            trigger="square",
            poison_rate=0.0,
            seed=0,
            regularizer="none",
            asr=0.05,
        )
    )
    return pd.DataFrame(rows)


def test_asr_by_rate_bands_the_seeds_after_averaging_the_other_axes():
    from backdoor.plots import asr_by_rate

    band = asr_by_rate(_rates()).set_index("poison_rate")
    assert list(band.index) == [0.001, 0.01]  # the clean model is not a rate on a log axis
    assert band.loc[0.001, ["mean", "min", "max"]].tolist() == pytest.approx([0.3, 0.2, 0.4])  # seed 0: (0.1+0.3)/2
    assert band.loc[0.01, ["min", "max"]].tolist() == [0.9, 1.0]


def test_asr_vs_rate_is_log_scaled_with_the_clean_level_and_only_present_references(tmp_path, monkeypatch):
    import backdoor.plots as plots
    from backdoor.references import BACKDOORBENCH_CIFAR10_ASR

    figures = []
    monkeypatch.setattr(plots, "save_figure", lambda fig, path: figures.append(fig))
    plots.plot_asr_vs_rate(_rates(), tmp_path / "asr.png", BACKDOORBENCH_CIFAR10_ASR)
    ax = figures[0].axes[0]
    assert ax.get_xscale() == "log"
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert set(lines) == {"square", "BackdoorBench BadNets", "clean model"}  # no Blended: the grid has no blend
    assert list(lines["BackdoorBench BadNets"].get_ydata()) == [0.5006, 0.7473, 0.8874, 0.9503]
    assert list(lines["clean model"].get_ydata()) == [0.05, 0.05]


def test_asr_by_arch_draws_a_bar_per_arch_and_group(tmp_path):
    from backdoor.plots import plot_asr_by_arch

    table = pd.concat([_rates(), _rates().assign(arch="small-cnn")])
    plot_asr_by_arch(table, tmp_path / "arch.png")
    assert (tmp_path / "arch.png").stat().st_size > 0


def test_references_recognise_cifar10_copies_only():
    from backdoor.references import is_cifar10

    assert is_cifar10("cifar10") and is_cifar10("folder:data/external/cifar10-jpeg")
    assert not is_cifar10("fashion-mnist") and not is_cifar10("folder:data/external/flowers-160")


def test_redraw_writes_the_report_figures_from_a_folder_of_csvs(tmp_path):
    from backdoor.errors import ConfigError
    from tools.redraw import main

    table = _rates().assign(clean_acc=0.8)
    table.to_csv(tmp_path / "summary.csv", index=False)
    curves = table.assign(ft_method="ft", ft_lr=0.01, ft_clean_size=0.05, steps=0)
    curves.to_csv(tmp_path / "recovery.csv", index=False)
    main(argparse.Namespace(folder=str(tmp_path)))
    assert {p.name for p in (tmp_path / "figures").iterdir()} >= {"asr_vs_rate.png", "recovery.png"}
    (tmp_path / "recovery.csv").unlink()
    with pytest.raises(ConfigError, match="no recovery.csv"):
        main(argparse.Namespace(folder=str(tmp_path)))
