"""Loss variants against hand-computed values."""

import math

import pytest
import torch

from prm_lib.data import label_to_target
from prm_lib.loss import first_error_mask, pairwise_ranking_loss, prm_loss, step_bce_loss


def softplus(x):
    return math.log1p(math.exp(x))


def bce(logit, target):  # -[t log s(x) + (1-t) log(1-s(x))]
    return target * softplus(-logit) + (1 - target) * softplus(logit)


def tensors(logits, labels):
    lg = torch.tensor([logits])
    tg = torch.tensor([[label_to_target(l) for l in labels]])
    return lg, tg, torch.ones_like(lg, dtype=torch.bool)


def test_seed_example_gives_0_4665():
    lg, tg, m = tensors([0.5, -0.3, 0.8], [1, -1, 1])
    assert step_bce_loss(lg, tg, m).item() == pytest.approx(0.4665, abs=5e-5)
    assert step_bce_loss(lg, tg, m).item() == pytest.approx((bce(0.5, 1) + bce(-0.3, 0) + bce(0.8, 1)) / 3, rel=1e-6)


def test_padding_never_counts():
    lg = torch.tensor([[0.5, -0.3, 0.8], [2.0, 99.0, -99.0]])
    tg = torch.tensor([[1.0, 0.0, 1.0], [1.0, 0.0, 1.0]])
    m = torch.tensor([[True, True, True], [True, False, False]])
    expected = (bce(0.5, 1) + bce(-0.3, 0) + bce(0.8, 1) + bce(2.0, 1)) / 4
    assert step_bce_loss(lg, tg, m).item() == pytest.approx(expected, rel=1e-6)


def test_pos_weight_scales_only_correct_steps():
    lg, tg, m = tensors([0.5, -0.3, 0.8], [1, -1, 1])
    expected = (2 * softplus(-0.5) + softplus(-0.3) + 2 * softplus(-0.8)) / 3
    assert step_bce_loss(lg, tg, m, pos_weight=2.0).item() == pytest.approx(expected, rel=1e-6)


def test_mask_after_first_error_keeps_the_error_itself():
    lg, tg, m = tensors([0.5, -0.3, 0.8, 1.2], [1, -1, -1, 1])
    assert first_error_mask(tg, m).tolist() == [[True, True, False, False]]
    expected = (bce(0.5, 1) + bce(-0.3, 0)) / 2
    assert step_bce_loss(lg, tg, m, mask_after_first_error=True).item() == pytest.approx(expected, rel=1e-6)


def test_later_steps_weigh_more():
    lg, tg, m = tensors([0.5, -0.3, 0.8], [1, -1, 1])
    w = [1.0, 1.5, 2.0]  # 1 + 0.5 * i
    expected = (w[0] * bce(0.5, 1) + w[1] * bce(-0.3, 0) + w[2] * bce(0.8, 1)) / sum(w)
    assert step_bce_loss(lg, tg, m, later_step_weight=0.5).item() == pytest.approx(expected, rel=1e-6)


def test_soft_labels():
    lg, tg, m = tensors([0.5, -0.3], [0.75, 0.25])
    expected = (bce(0.5, 0.75) + bce(-0.3, 0.25)) / 2
    assert step_bce_loss(lg, tg, m).item() == pytest.approx(expected, rel=1e-6)


def test_ranking_loss_over_correct_incorrect_pairs():
    lg, tg, m = tensors([0.5, -0.3, 0.8], [1, -1, 1])
    expected = (softplus(-(0.5 + 0.3)) + softplus(-(0.8 + 0.3))) / 2
    assert pairwise_ranking_loss(lg, tg, m).item() == pytest.approx(expected, rel=1e-6)
    combined = prm_loss(lg, tg, m, ranking_weight=0.5).item()
    assert combined == pytest.approx(0.4665 + 0.5 * expected, abs=5e-5)


def test_ranking_loss_pairs_stay_within_a_solution():
    lg = torch.tensor([[3.0, 0.0], [0.0, -3.0]])
    tg = torch.tensor([[1.0, 1.0], [0.0, 0.0]])  # no solution has both kinds
    m = torch.ones_like(lg, dtype=torch.bool)
    assert pairwise_ranking_loss(lg, tg, m).item() == 0.0


def test_gradients_flow_and_shapes_are_checked():
    lg = torch.tensor([[0.5, -0.3, 0.8]], requires_grad=True)
    _, tg, m = tensors([0.5, -0.3, 0.8], [1, -1, 1])
    prm_loss(lg, tg, m, ranking_weight=1.0).backward()
    assert lg.grad is not None and lg.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="shapes differ"):
        step_bce_loss(lg, tg[:, :2], m)


def test_bad_labels_are_named():
    with pytest.raises(ValueError, match="neither"):
        label_to_target(2)
