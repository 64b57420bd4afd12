import pytest
import torch

from backdoor.metrics import attack_success_rate, backdoor_metrics, clean_accuracy, robust_accuracy


def test_metrics_on_hand_computed_predictions():
    clean_preds = torch.tensor([0, 1, 2, 3, 0])
    clean_labels = torch.tensor([0, 1, 2, 0, 1])  # 3 of 5 right
    true = torch.tensor([1, 2, 3, 4, 0])
    targets = torch.tensor([0, 0, 0, 0, 0])  # the last image is already of the target class: not counted
    triggered = torch.tensor([0, 0, 3, 1, 0])  # counted: 0,0,3,1 -> 2 hit target, 1 keeps its label (3)
    assert clean_accuracy(clean_preds, clean_labels) == pytest.approx(0.6)
    assert attack_success_rate(triggered, true, targets) == pytest.approx(0.5)
    assert robust_accuracy(triggered, true, targets) == pytest.approx(0.25)
    assert backdoor_metrics(clean_preds, clean_labels, triggered, true, targets) == pytest.approx(
        {"clean_acc": 0.6, "asr": 0.5, "robust_acc": 0.25}
    )


def test_per_image_targets_all_to_all():
    true = torch.tensor([0, 1, 2])
    targets = (true + 1) % 3
    assert attack_success_rate(torch.tensor([1, 2, 2]), true, targets) == pytest.approx(2 / 3)


def test_empty_set_is_an_error():
    with pytest.raises(ValueError):
        clean_accuracy(torch.tensor([], dtype=torch.long), torch.tensor([], dtype=torch.long))
