"""Best-of-N selection: ``select`` and the named selectors by hand, best-of-N curves, the bootstrap."""

import numpy as np
import pytest

from prm_lib.selection import (SELECTORS, Selector, best_of_n_accuracy, bootstrap_gap, majority_vote, pass_at_n, select,
                               select_best, weighted_vote)


def test_selectors_by_hand():
    answers = ["5", "7", "7", None, "5", "5"]
    scores = [0.9, 0.8, 0.8, 0.99, 0.1, 0.1]
    assert majority_vote(answers) == "5"  # 3 votes against 2
    assert select_best(scores, answers) is None  # the top candidate gave no answer
    assert select_best(scores[:3], answers[:3]) == "5"
    assert weighted_vote(scores, answers) == "7"  # 1.6 against 1.1
    assert pass_at_n(answers, 7) and not pass_at_n(answers, 6)
    assert majority_vote(["3", "4"]) == "3" and weighted_vote([0.5, 0.5], ["4", "3"]) == "4"  # ties: first seen
    with pytest.raises(ValueError, match="2 scores for 3 answers"):
        select_best([0.1, 0.2], ["1", "2", "3"])


def test_best_of_n_curves_by_hand():
    # problem 0: gold 4; only candidate 2 is right, and the scores point at it
    answers = [["3", "3", "4", "5"]]
    sel = {"prm": Selector("best", [[0.1, 0.2, 0.9, 0.3]]), "maj": Selector("majority"), "pass": Selector("pass"),
           "anti": Selector("best", [[0.9, 0.9, 0.0, 0.9]])}
    acc = best_of_n_accuracy(answers, [4], sel, ns=[1, 4], trials=400, seed=0)
    assert acc["prm"][0, 1] == 1.0 and acc["maj"][0, 1] == 0.0 and acc["pass"][0, 1] == 1.0 and acc["anti"][0, 1] == 0.0
    assert acc["prm"][0, 0] == pytest.approx(0.25, abs=0.06)  # N=1 is one random candidate, whoever picks
    assert acc["prm"][0, 0] == acc["maj"][0, 0] == acc["pass"][0, 0]  # the same draws for every method
    with pytest.raises(ValueError, match="N=5 but problem 0 has 4 candidates"):
        best_of_n_accuracy(answers, [4], sel, ns=[5])
    with pytest.raises(ValueError, match="prm: problem 0 has 3 scores for 4 candidates"):
        best_of_n_accuracy(answers, [4], {"prm": Selector("best", [[0.1, 0.2, 0.3]])}, ns=[1])


def test_bootstrap_gap():
    a, b = np.ones(100), np.r_[np.ones(80), np.zeros(20)]
    gap = bootstrap_gap(a, b, seed=1)
    assert gap["gap"] == pytest.approx(0.2) and gap["low"] < 0.2 < gap["high"] and gap["low"] > 0.1
    same = bootstrap_gap(a, a)
    assert same["gap"] == same["low"] == same["high"] == 0.0


def test_select_each_kind_by_hand():
    answers = ["5", "7", "7", None, "5", "5"]
    scores = [0.9, 0.8, 0.8, 0.99, 0.1, 0.1]
    assert select("best", scores, answers) is None  # the top candidate gave no answer
    assert select("best", scores[:3], answers[:3]) == "5"
    assert select("weighted_vote", scores, answers) == "7"  # 1.6 against 1.1
    assert select("majority", None, answers) == "5" and select("majority", scores, answers) == "5"  # scores unread
    assert select("pass", None, answers, gold=7) == "7" and select("pass", None, answers, gold="7.0") == "7"
    assert select("pass", None, answers, gold=6) is None
    # ties go to the first candidate or answer seen
    assert select("best", [0.5, 0.5], ["4", "3"]) == "4" and select("weighted_vote", [0.5, 0.5], ["4", "3"]) == "4"
    assert select("majority", None, ["4", "3", "3", "4"]) == "4"
    # nothing to pick from, or nothing that answers
    for kind in ("best", "weighted_vote", "majority"):
        assert select(kind, [], []) is None
    assert select("weighted_vote", [0.9], [None]) is None and select("majority", None, [None, None]) is None
    # a (P, N) array's row reads like a list
    row = np.array([[0.1, 0.7, 0.3]])[0]
    assert select("best", row, ["1", "2", "3"]) == "2" and select("weighted_vote", row, ["1", "3", "3"]) == "3"


def test_select_refuses_what_it_cannot_read():
    with pytest.raises(ValueError, match="unknown selector kind 'median'; known: best, weighted_vote, majority, pass"):
        select("median", [0.1], ["1"])
    with pytest.raises(ValueError, match="'best' needs a score per candidate"):
        select("best", None, ["1"])
    with pytest.raises(ValueError, match="2 scores for 3 answers"):
        select("weighted_vote", [0.1, 0.2], ["1", "2", "3"])
    with pytest.raises(ValueError, match="needs the gold answer"):
        select("pass", None, ["1"])


def test_named_selectors_are_select():
    rng = np.random.default_rng(3)
    for _ in range(200):
        n = int(rng.integers(0, 7))
        answers = [None if x == 3 else str(x) for x in rng.integers(0, 4, size=n)]
        scores = rng.choice([0.1, 0.5, 0.9], size=n).tolist()  # coarse, so ties happen
        assert select_best(scores, answers) == select("best", scores, answers)
        assert weighted_vote(scores, answers) == select("weighted_vote", scores, answers)
        assert majority_vote(answers) == select("majority", None, answers)
        assert pass_at_n(answers, 2) == (select("pass", None, answers, 2) == "2") == ("2" in answers)


def test_best_of_n_reads_arrays_as_lists_and_matches_select():
    rng = np.random.default_rng(0)
    answers = [[str(x) for x in rng.integers(0, 3, size=6)] for _ in range(5)]
    gold = [0, 1, 2, 0, 1]
    scores = rng.random((5, 6))
    kinds = {kind: Selector(kind, scores if SELECTORS[kind][1] else None) for kind in SELECTORS}
    as_arrays = best_of_n_accuracy(answers, gold, kinds, [1, 3, 6], trials=8, seed=2)
    as_lists = best_of_n_accuracy(answers, gold, {k: Selector(s.kind, None if s.scores is None else s.scores.tolist())
                                                  for k, s in kinds.items()}, [1, 3, 6], trials=8, seed=2)
    for kind in SELECTORS:
        assert as_arrays[kind].tolist() == as_lists[kind].tolist(), kind
        # with all N candidates every draw holds them all: the accuracy is select's pick on the whole row
        whole = [select(kind, scores[p], answers[p], gold[p]) == str(gold[p]) for p in range(5)]
        assert as_arrays[kind][:, 2].tolist() == [float(w) for w in whole], kind
    with pytest.raises(ValueError, match="vote: unknown selector kind"):
        best_of_n_accuracy(answers, gold, {"vote": Selector("vote", scores)}, [1])
    with pytest.raises(ValueError, match="w: needs scores for each of the 5 problems"):
        best_of_n_accuracy(answers, gold, {"w": Selector("weighted_vote")}, [1])



def test_bootstrap_curve_brackets_each_columns_mean_and_narrows_with_more_problems():
    from prm_lib.selection import bootstrap_curve

    rng = np.random.default_rng(0)
    small = (rng.random((40, 3)) < [0.2, 0.5, 0.9]).astype(float)
    large = (rng.random((4000, 3)) < [0.2, 0.5, 0.9]).astype(float)
    low, high = bootstrap_curve(small, seed=0)
    assert np.all(low <= small.mean(axis=0)) and np.all(small.mean(axis=0) <= high)
    low_l, high_l = bootstrap_curve(large, seed=0)
    assert np.all(high_l - low_l < (high - low) / 4)
    constant = np.ones((10, 2))
    assert np.array_equal(bootstrap_curve(constant)[0], [1.0, 1.0])
    with pytest.raises(ValueError, match="problems"):
        bootstrap_curve(np.zeros(5))
