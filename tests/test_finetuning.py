"""The defender's clean fine-tuning set: inside the training pool, never a poisoned or cross image, its size a
fraction of the pool or a count."""

import torch

from backdoor.finetuning import clean_finetune_indices
from backdoor.poisoned_set import training_pool
from backdoor.poisoning import build_strategy, make_poisoned_set
from backdoor.triggers import build_trigger
from tests.conftest import make_experiment


def poisoned_set(clean_size: float):
    n = 400
    gen = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, 1, 8, 8), generator=gen, dtype=torch.uint8)
    labels = torch.arange(n) % 4
    trigger = build_trigger("wanet", (1, 8, 8), noise_mode=True, cross_ratio=2)  # poisoned and cross images
    pool = training_pool(n, 200, seed=0)
    poisoned = make_poisoned_set(
        images,
        labels,
        images[:20],
        labels[:20],
        trigger,
        build_strategy("all-to-one", 0, None, 4),
        0.1,
        seed=0,
        pool=pool,
    )
    exp = make_experiment(trigger="wanet", finetune={"clean_size": clean_size})
    return exp, poisoned


def test_the_clean_set_is_disjoint_from_poisoned_and_cross_images_and_inside_the_pool():
    exp, poisoned = poisoned_set(0.5)
    assert poisoned.num_poisoned == 20 and poisoned.num_cover == 40
    keep = clean_finetune_indices(exp, poisoned)
    assert len(keep) == 100  # half of the 200-image pool
    assert torch.isin(keep, poisoned.pool).all()
    assert not torch.isin(keep, poisoned.indices).any()  # neither poisoned nor cross images
    assert torch.equal(keep, clean_finetune_indices(exp, poisoned))  # seeded


def test_clean_size_is_a_fraction_of_the_pool_below_one_else_a_count():
    assert len(clean_finetune_indices(poisoned_set(0.05)[0], poisoned_set(0.05)[1])) == 10  # 5 % of 200
    assert len(clean_finetune_indices(*poisoned_set(17))) == 17
