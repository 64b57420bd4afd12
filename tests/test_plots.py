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
    main(argparse.Namespace(folder=[str(tmp_path)], out=None))
    assert {p.name for p in (tmp_path / "figures").iterdir()} >= {"asr_vs_rate.png", "recovery.png"}
    (tmp_path / "recovery.csv").unlink()
    with pytest.raises(ConfigError, match="no recovery.csv"):
        main(argparse.Namespace(folder=[str(tmp_path)], out=None))


def _convergence() -> pd.DataFrame:
    """The square at 1 % and the clean model, two seeds, trained 3 and 11 epochs; two fine-tunings of each (one row
    each, the model before them the same)."""
    rows = []
    for epochs, ca, asr in ((3, 0.70, 0.10), (11, 0.88, 0.60)):
        for seed in (0, 1):
            for ft_lr in ("0.1x", "1x"):
                base = dict(arch="airbench", trigger="square", train_epochs=epochs, seed=seed, ft_lr=ft_lr)
                rows.append(base | dict(poison_rate=0.01, clean_acc=ca + 0.01 * seed, asr=asr + 0.1 * seed))
                rows.append(base | dict(poison_rate=0.0, clean_acc=ca + 0.02, asr=0.01))
    return pd.DataFrame(rows)


def test_convergence_curve_puts_the_clean_model_apart_and_bands_the_seeds():
    from backdoor.plots import convergence_curve

    curve = convergence_curve(_convergence()).set_index(["trigger", "train_epochs"])
    assert list(curve.index) == [("clean", 3), ("clean", 11), ("square", 3), ("square", 11)]
    assert curve.loc[("square", 11), ["asr_mean", "asr_min", "asr_max"]].tolist() == pytest.approx([0.65, 0.6, 0.7])
    assert curve.loc[("clean", 3), "clean_acc_mean"] == pytest.approx(0.72)


def test_the_convergence_figure_is_drawn_when_an_arch_trains_for_several_lengths(tmp_path, monkeypatch):
    import backdoor.plots as plots

    drawn = []
    monkeypatch.setattr(plots, "plot_convergence", lambda table, path: drawn.append(path.name))
    monkeypatch.setattr(plots, "plot_defence_vs_convergence", lambda table, path: drawn.append(path.name))
    table = _convergence().assign(dataset="cifar10", regularizer="none", ft_method="ft")
    curves = table.assign(ft_clean_size=0.05, steps=0)
    plots.grid_figures(table, curves, pd.DataFrame(), tmp_path)
    assert drawn == ["convergence.png", "defence_vs_convergence.png"]
    drawn.clear()
    one_length = table[table["train_epochs"] == 11]
    plots.grid_figures(pd.concat([one_length, one_length.assign(arch="resnet6-cpu")]), curves, pd.DataFrame(), tmp_path)
    assert drawn == ["defence_vs_convergence.png"]  # two archs at one length: no curve, but two accuracies


def test_convergence_figure_draws_asr_and_ca_per_line_and_the_clean_models_ca(tmp_path, monkeypatch):
    import backdoor.plots as plots

    figures = []
    monkeypatch.setattr(plots, "save_figure", lambda fig, path: figures.append(fig))
    plots.plot_convergence(_convergence(), tmp_path / "convergence.png")
    lines = figures[0].axes[0].get_lines()
    assert [line.get_linestyle() for line in lines] == ["--", "-", "--"]  # the clean model's CA; the cell's ASR, CA
    assert [line.get_label() for line in lines][:2] == ["clean model", "square 1 %"]  # one legend entry per cell
    assert list(lines[1].get_xdata()) == [3, 11] and list(lines[1].get_ydata()) == pytest.approx([0.15, 0.65])


def test_redraw_joins_several_runs_counting_a_shared_cell_once(tmp_path, monkeypatch):
    """The core's resnet6-cpu cells and the reference model's airbench cells live in two runs (no one grid holds
    both recipes); drawn together, the clean model both runs fine-tuned is one row."""
    import tools.redraw as redraw
    from backdoor.errors import ConfigError

    table = _convergence().assign(dataset="cifar10", regularizer="none", ft_method="ft")
    table["cell"] = table.apply(
        lambda r: f"{r.arch}_{r.trigger}_r{r.poison_rate}_s{r.seed}_e{r.train_epochs}_{r.ft_lr}", 1
    )
    core = table.assign(arch="resnet6-cpu", cell="core_" + table["cell"])
    for name, rows in (("core", core), ("reference", table[table["train_epochs"] == 11]), ("curve", table)):
        (tmp_path / name).mkdir()
        rows.to_csv(tmp_path / name / "summary.csv", index=False)
        rows.assign(steps=0, ft_clean_size=0.05).to_csv(tmp_path / name / "recovery.csv", index=False)
    drawn = []
    monkeypatch.setattr(redraw, "grid_figures", lambda summary, recovery, detection, out: drawn.append(summary))
    folders = [str(tmp_path / name) for name in ("core", "reference", "curve")]
    redraw.main(argparse.Namespace(folder=folders, out=str(tmp_path / "joined")))
    assert len(drawn[0]) == 2 * len(table)  # the reference run's cells are the curve's: counted once
    with pytest.raises(ConfigError, match="--out: required with several folders"):
        redraw.main(argparse.Namespace(folder=folders, out=None))
