"""AUROC and step metrics against hand-computed values."""

import math

import numpy as np
import pytest

from prm_lib.data import PRMSample
from prm_lib.metrics import auroc, auroc_by_error_kind, flatten_steps, predicted_first_error, step_metrics


def brute_auroc(s, y):
    pos = [a for a, b in zip(s, y) if b]
    neg = [a for a, b in zip(s, y) if not b]
    return sum((p > n) + 0.5 * (p == n) for p in pos for n in neg) / (len(pos) * len(neg))


def test_auroc_perfect_inverted_and_ties():
    assert auroc([0.9, 0.8, 0.1], [1, 1, 0]) == 1.0
    assert auroc([0.1, 0.2, 0.9], [1, 1, 0]) == 0.0
    assert auroc([0.5, 0.5], [1, 0]) == 0.5


def test_auroc_matches_brute_force():
    rng = np.random.default_rng(0)
    s = rng.integers(0, 5, size=200) / 4  # many ties
    y = rng.random(200) < 0.4
    assert auroc(s, y) == pytest.approx(brute_auroc(s, y))


def test_auroc_needs_both_classes_and_no_nan():
    with pytest.raises(ValueError, match="both classes"):
        auroc([0.1, 0.2], [1, 1])
    with pytest.raises(ValueError, match="NaN"):
        auroc([0.1, math.nan], [1, 0])


def test_step_metrics_by_hand():
    probs = [[0.9, 0.2, 0.1], [0.8, 0.7], [0.6, 0.4]]
    targets = [[1, 0, 0], [1, 1], [1, 1]]
    m = step_metrics(probs, targets)
    assert m["step_accuracy"] == pytest.approx(6 / 7)
    assert m["first_error_accuracy"] == pytest.approx(2 / 3)  # third predicts an error at step 2
    assert m["step_auroc"] == pytest.approx(brute_auroc([0.9, 0.2, 0.1, 0.8, 0.7, 0.6, 0.4], [1, 0, 0, 1, 1, 1, 1]))


def test_unscored_steps_are_counted_not_scored():
    p, t, skipped = flatten_steps([[0.9, math.nan]], [[1, 0]])
    assert skipped == 1 and list(p) == [0.9]
    with pytest.raises(ValueError, match="2 scores for 3 labels"):
        flatten_steps([[0.1, 0.2]], [[1, 1, 0]])


def test_predicted_first_error():
    assert predicted_first_error([0.9, 0.4, 0.2]) == 1
    assert predicted_first_error([0.9, 0.8]) == -1
    assert predicted_first_error([0.9, 0.8], threshold=0.85) == 1


def test_auroc_by_error_kind_by_hand():
    samples = [
        PRMSample("p", ["a", "b", "c"], [1, -1, -1], {"error_kind": "slip"}),   # first error at 1, inherited at 2
        PRMSample("q", ["a", "b"], [-1, -1], {"error_kind": "wrong_operation"}),
        PRMSample("r", ["a", "b"], [1, 1], {"error_kind": None}),
    ]
    probs = [[0.9, 0.7, 0.2], [0.1, 0.95], [0.8, 0.6]]
    rows = auroc_by_error_kind(probs, samples, ["slip", "wrong_operation", "inconsistent_answer"])
    correct = [0.9, 0.8, 0.6]
    assert rows["slip"] == pytest.approx(brute_auroc(correct + [0.7], [1, 1, 1, 0]))  # 0.7 beats 0.6 only: 2/3
    assert rows["slip"] == pytest.approx(2 / 3)
    assert rows["wrong_operation"] == 1.0
    assert rows["inherited (after the first error)"] == pytest.approx(brute_auroc(correct + [0.2, 0.95], [1, 1, 1, 0, 0]))
    assert "inconsistent_answer" not in rows  # no such error in the data
    with pytest.raises(ValueError, match="2 scored solutions for 3"):
        auroc_by_error_kind(probs[:2], samples, ["slip"])
