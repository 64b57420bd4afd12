"""README's tables from a run's CSV files: the numbers they print are the ones in the file."""

import math

import pandas as pd

from backdoor.tables import detection_table, persistence_table, spread


def test_spread_is_mean_min_max_over_seeds():
    assert spread(pd.Series([0.5, 0.7, 0.9])) == "0.7000 [0.5000, 0.9000]"
    assert spread(pd.Series([0.25]), 2) == "0.25" and spread(pd.Series([math.nan])) == "-"


def test_persistence_rows_name_the_setting_and_each_seeds_first_epoch_below_0_2():
    summary = pd.DataFrame({
        "trigger": ["blend"] * 2, "ft_lr": [0.05] * 2, "ft_clean_size": [0.05] * 2, "poison_rate": [0.1] * 2,
        "seed": [1, 0], "num_train": [20000] * 2, "asr": [0.99, 0.98], "ft_asr": [0.1, 0.3],
        "clean_acc": [0.88, 0.89], "ft_clean_acc": [0.87, 0.86], "ft_epoch_asr_below_0.2": [3, None]})
    row = persistence_table(summary).splitlines()[2]
    assert row == ("| blend | 0.05 | 0.05 (1000) | 0.985 [0.980, 0.990] | 0.200 [0.100, 0.300] | 0.885 [0.880, 0.890] "
                   "| 0.865 [0.860, 0.870] | -, 3 |")  # seed 0 never fell below 0.2, seed 1 at epoch 3


def test_detection_rows_for_data_and_model_detectors():
    detection = pd.DataFrame({
        "detector": ["spectral", "spectral", "neural-cleanse", "neural-cleanse"], "trigger": ["checker"] * 4,
        "poison_rate": [0.1, 0.1, 0.1, 0.1], "tpr": [0.5, 0.7, math.nan, math.nan], "fpr": [0.1, 0.1, math.nan, math.nan],
        "auroc": [0.9, 0.8, math.nan, math.nan], "anomaly_index": [math.nan, math.nan, 3.0, 1.0],
        "tp": [0, 0, 1, 0], "fp": [0, 0, 0, 0], "target_flagged": [None, None, True, False]})
    lines = detection_table(detection).splitlines()
    assert lines[2] == "| spectral | checker, 10 % | 0.600 [0.500, 0.700] | 0.100 [0.100, 0.100] | 0.850 [0.800, 0.900] | - | - |"
    assert lines[3] == "| neural-cleanse | checker, 10 % | - | - | - | 2.00 [1.00, 3.00] | 1 of 2 flagged, target in 1 |"
