"""Recipe pieces: warm-up + poly schedule, the x10 head group with decoupled decay, losses, option checks."""

from __future__ import annotations

import pytest

try:  # dev-only (requirements-dev.txt): absent on robots, skipped there
    import torch
except ImportError:
    pytest.skip('torch is not installed', allow_module_level=True)

from rtformer_ros.model import build_rtformer
from rtformer_ros.train.config import TrainConfig, TrainConfigError, default_warmup
from rtformer_ros.train.losses import SegLoss, cross_entropy, ohem_cross_entropy
from rtformer_ros.train.schedule import HEAD_PREFIXES, WarmupPoly, param_groups

SCHEDULE = WarmupPoly(base_lr=4e-4, iters=110, warmup_iters=10, warmup_start_lr=1e-6, end_lr=1e-6, power=1.0)


@pytest.mark.parametrize(('iteration', 'lr'), [
    (0, 1e-6),  # warm-up starts at warmup_start_lr
    (5, 1e-6 + (4e-4 - 1e-6) * 0.5),  # linear half way
    (10, 4e-4),  # base lr when warm-up ends
    (60, (4e-4 - 1e-6) * 0.5 + 1e-6),  # poly power 1 over the remaining 100 iterations: half way
    (109, (4e-4 - 1e-6) * 0.01 + 1e-6),  # last update
    (110, 1e-6),  # end_lr
    (500, 1e-6),  # held after the end
])
def test_warmup_then_poly_values(iteration: int, lr: float) -> None:
    assert SCHEDULE.lr(iteration) == pytest.approx(lr, rel=1e-12)


def test_poly_power_two_decays_quadratically() -> None:
    sched = WarmupPoly(1.0, iters=100, warmup_iters=0, end_lr=0.0, power=2.0)
    assert sched.lr(50) == pytest.approx(0.25)


def test_default_warmup_is_1500_or_5_percent() -> None:
    assert default_warmup(120_000) == 1500
    assert default_warmup(10_000) == 500
    assert default_warmup(300) == 15
    assert TrainConfig(iters=300).resolved().warmup_iters == 15


def test_config_rejects_values_that_cannot_train() -> None:
    with pytest.raises(TrainConfigError, match='--batch-size 1'):
        TrainConfig(batch_size=1).resolved()
    with pytest.raises(TrainConfigError, match='--crop 32x480'):
        TrainConfig(crop=(32, 480)).resolved()
    with pytest.raises(TrainConfigError, match='--val-scale 0'):
        TrainConfig(val_scale=0).resolved()


def test_head_group_trains_at_ten_times_the_rate_and_decays_ten_times_faster() -> None:
    model = build_rtformer('slim', num_classes=11)
    groups = param_groups(model, lr=4e-4, head_lr_mult=10)
    names = {id(p): n for n, p in model.named_parameters()}
    head_names = {names[id(p)] for p in groups[1]['params']}
    assert head_names == {n for n in names.values() if n.startswith(HEAD_PREFIXES)}
    assert {n.split('.')[0] for n in head_names} == {'spp', 'seghead', 'seghead_extra'}
    assert len(groups[0]['params']) + len(groups[1]['params']) == len(list(model.parameters()))

    optimizer = torch.optim.AdamW(groups, lr=4e-4, weight_decay=0.0125)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, SCHEDULE)
    assert [g['lr'] for g in optimizer.param_groups] == pytest.approx([1e-6, 1e-5])
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    for _ in range(10):  # through the warm-up
        optimizer.step()
        scheduler.step()
    assert [g['lr'] for g in optimizer.param_groups] == pytest.approx([4e-4, 4e-3])

    # With zero gradients AdamW only applies its decoupled decay p <- p * (1 - lr * wd), per group.
    backbone, head = model.conv1[0].weight, model.seghead.conv1.weight
    before = backbone.detach().clone(), head.detach().clone()
    optimizer.step()
    torch.testing.assert_close(backbone, before[0] * (1 - 4e-4 * 0.0125))
    torch.testing.assert_close(head, before[1] * (1 - 4e-3 * 0.0125))


def test_cross_entropy_ignores_255_and_averages_over_counted_pixels() -> None:
    logits = torch.randn(2, 4, 3, 5)
    target = torch.randint(0, 4, (2, 3, 5))
    target[0, 0] = 255
    expected = torch.nn.functional.cross_entropy(logits, target, ignore_index=255)
    torch.testing.assert_close(cross_entropy(logits, target), expected)
    assert cross_entropy(logits, torch.full_like(target, 255)).item() == 0.0  # no NaN on an all-void crop


def test_ohem_keeps_only_hard_pixels_unless_min_kept_needs_more() -> None:
    # True-class (class 0) probabilities 0.9, 0.6, 0.3, 0.2 and one void pixel.
    probs = torch.tensor([0.9, 0.6, 0.3, 0.2, 0.5])
    logits = torch.stack([probs.log(), (1 - probs).log()]).reshape(1, 2, 1, 5)
    target = torch.tensor([[[0, 0, 0, 0, 255]]])

    def ce_over(*cols: int) -> torch.Tensor:
        return cross_entropy(logits[..., list(cols)], target[..., list(cols)])

    torch.testing.assert_close(ohem_cross_entropy(logits, target, thresh=0.7, min_kept=1), ce_over(1, 2, 3))
    torch.testing.assert_close(ohem_cross_entropy(logits, target, thresh=0.25, min_kept=1), ce_over(3))
    # min_kept=3 lifts the threshold to the 3rd lowest probability (0.6); PaddleSeg keeps those strictly below.
    torch.testing.assert_close(ohem_cross_entropy(logits, target, thresh=0.25, min_kept=3), ce_over(2, 3))
    # min_kept >= valid pixels: plain cross-entropy.
    torch.testing.assert_close(ohem_cross_entropy(logits, target, thresh=0.25, min_kept=4), ce_over(0, 1, 2, 3))
    loss, aux = SegLoss(aux_weight=0.4)((logits, logits), target)
    torch.testing.assert_close(loss, 1.4 * cross_entropy(logits, target))
    torch.testing.assert_close(aux, cross_entropy(logits, target))
