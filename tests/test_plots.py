import math

import pandas as pd

from backdoor.plots import detection_grids, plot_detection


def _detection() -> pd.DataFrame:
    """Two seeds of checker at 1 % and 10 % for spectral and Neural Cleanse; clean baselines for spectral only."""
    rows = []
    for rate, poisons, tp in ((0.01, 40, [10, 30]), (0.1, 2000, [150, 250])):
        for seed, hits in enumerate(tp):
            rows.append(dict(detector="spectral", trigger="checker", poison_rate=rate, seed=seed, tp=hits,
                             fn=poisons - hits, fp=5, tn=95))
            rows.append(dict(detector="neural-cleanse", trigger="checker", poison_rate=rate, seed=seed,
                             tp=seed, fn=1 - seed, fp=0, tn=0))
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
    rows = [dict(trigger="blend", poison_rate=rate, ft_method="ft", ft_lr=0.01, ft_clean_size=0.05, seed=0,
                 steps=step, asr=asr, clean_acc=0.8)
            for rate, end in ((0.01, 0.9), (0.1, 0.1)) for step, asr in ((0, 1.0), (1000, end))]
    plots.plot_recovery(pd.DataFrame(rows), tmp_path / "recovery.png")
    asr_lines = {line.get_label(): list(line.get_ydata()) for line in figures[0].axes[0].get_lines()
                 if line.get_label().endswith("ASR")}
    assert asr_lines == {"blend 1% ASR": [1.0, 0.9], "blend 10% ASR": [1.0, 0.1]}
