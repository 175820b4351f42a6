"""Aggregations: hand-computed values (the naive tutorial's example), masks, batching, bad input."""

import math

import pytest
import torch

from prm_lib.aggregate import AGGREGATIONS, StepScores, aggregate, aggregate_many, aggregate_one, pad_scores

SEED = [0.95, 0.90, 0.30, 0.85]


@pytest.mark.parametrize("how, expected", [("min", 0.300), ("prod", 0.218), ("last", 0.850), ("mean", 0.750)])
def test_seed_example(how, expected):
    assert aggregate_one(SEED, how) == pytest.approx(expected, abs=5e-4)


def test_weighted_and_geometric_by_hand():
    w = [1.0, 0.5, 0.25, 0.125]
    expected = sum(p * x for p, x in zip(SEED, w)) / sum(w)
    assert aggregate_one(SEED, "weighted_mean", decay=0.5) == pytest.approx(expected)
    assert aggregate_one(SEED, "weighted_mean", decay=1.0) == pytest.approx(0.75)
    assert aggregate_one(SEED, "geometric_mean") == pytest.approx((0.95 * 0.9 * 0.3 * 0.85) ** 0.25)


def test_batched_with_padding_matches_one_at_a_time():
    sols = [SEED, [0.2], [0.6, 0.99, 0.7], [1.0, 1.0, 1.0, 1.0, 0.01]]
    probs, mask = pad_scores(sols)
    assert probs.shape == (4, 5) and mask.sum().item() == 13
    for how in AGGREGATIONS:
        batched = aggregate(probs, mask, how).tolist()
        single = [aggregate_one(s, how) for s in sols]
        assert batched == pytest.approx(single), how
    # padding values never leak in, whatever they are
    junk = probs.masked_fill(~mask, 0.0001)
    for how in AGGREGATIONS:
        assert aggregate(junk, mask, how).tolist() == pytest.approx(aggregate(probs, mask, how).tolist())


def test_last_is_the_last_real_step_wherever_the_padding_is():
    probs = torch.tensor([[0.0, 0.2, 0.9], [0.4, 0.7, 0.0]], dtype=torch.float64)
    mask = torch.tensor([[False, True, True], [True, True, False]])
    assert aggregate(probs, mask, "last").tolist() == [0.9, 0.7]
    assert aggregate(probs, mask, "min").tolist() == [0.2, 0.4]


def test_prod_penalises_length_geometric_mean_does_not():
    short, long = [0.9] * 2, [0.9] * 10
    assert aggregate_one(long, "prod") < aggregate_one(short, "prod")
    assert aggregate_one(long, "geometric_mean") == pytest.approx(aggregate_one(short, "geometric_mean"))
    assert aggregate_one([0.0, 1.0], "prod") == pytest.approx(0.0, abs=1e-9) and math.isfinite(aggregate_one([0.0], "geometric_mean"))


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="unknown aggregation 'max'"):
        aggregate_one(SEED, "max")
    with pytest.raises(ValueError, match="no steps"):
        aggregate_one([], "min")
    with pytest.raises(ValueError, match="NaN"):
        aggregate_many([[0.5, float("nan")]], "mean")
    with pytest.raises(ValueError, match=r"solution\(s\) \[1\] have no scored step"):
        aggregate(torch.ones(2, 2), torch.tensor([[True, True], [False, False]]), "min")
    with pytest.raises(ValueError, match="batch, steps"):
        aggregate(torch.ones(2, 2), torch.ones(2, 3, dtype=torch.bool), "min")


def test_step_scores_rows_and_take():
    sols = [SEED, [0.2], [0.6, 0.99, 0.7]]
    steps = pad_scores(sols)
    assert isinstance(steps, StepScores) and steps.rows() == sols
    probs, mask = steps  # still unpacks as the (probs, mask) pair it always was
    assert probs is steps.probs and mask is steps.mask
    again = steps.take([2, 0, 2])
    assert again.rows() == [sols[2], SEED, sols[2]] and again.probs.shape == (3, 4)
    for how in AGGREGATIONS:
        assert aggregate(*again, how).tolist() == [aggregate_many(sols, how)[i] for i in (2, 0, 2)], how
    # rows reads the mask, wherever the padding sits
    left = StepScores(torch.tensor([[0.0, 0.25, 0.75], [0.5, 0.125, 0.0]]),
                      torch.tensor([[False, True, True], [True, True, False]]))
    assert left.rows() == [[0.25, 0.75], [0.5, 0.125]]
