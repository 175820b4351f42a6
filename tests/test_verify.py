"""Verification: final answers, first-error F1 and calibration by hand, the verifier, its padded step scores
and its grid of problems × candidates. (Selection: test_selection.py; ProcessBench and ``eval``:
test_processbench.py.)"""

import pytest
import torch

from prm_lib.aggregate import aggregate, aggregate_many
from prm_lib.answers import extract_final_answer
from prm_lib.metrics import calibration_bins, first_error_scores, fit_threshold, predicted_first_error, predicted_first_errors
from prm_lib.verify import PRMVerifier


@pytest.mark.parametrize("text", ["12", "12.0", "$12$", "The answer is 12.", "So the answer is: $12$.", "\\boxed{12}",
                                  "Thus 3 × 4 = 12.", "the answer is 12.00"])
def test_messy_final_answers_normalise_alike(text):
    assert extract_final_answer([text]) == "12"


def test_first_error_f1_by_hand():
    probs = [[0.9, 0.3, 0.6], [0.9, 0.8], [0.2, 0.9], [0.7, 0.6, 0.1]]
    truth = [1, -1, -1, 2]
    s = first_error_scores(probs, truth, 0.5)
    # erroneous: #0 predicted 1 (hit), #3 predicted 2 (hit); correct: #1 none (hit), #2 predicted 0 (miss)
    assert (s["acc_erroneous"], s["acc_correct"]) == (1.0, 0.5) and s["f1"] == pytest.approx(2 / 3)
    grid = [0.1, 0.25, 0.5, 0.65, 0.95]
    many = predicted_first_errors(probs, grid)
    for i, p in enumerate(probs):
        assert many[i].tolist() == [predicted_first_error(p, t) for t in grid]
    fit = fit_threshold(probs, truth)
    assert fit["f1"] >= s["f1"] and fit["threshold"] == pytest.approx(0.5)  # ties go to the threshold nearest 0.5
    with pytest.raises(ValueError, match="first error 5"):
        first_error_scores(probs, [5, -1, -1, 2])
    # one class: its accuracy is measured, F1 is not (and no threshold can be fitted on it)
    one = first_error_scores(probs, [-1, -1, -1, -1])
    assert one["f1"] is None and one["acc_erroneous"] is None and "F1 needs erroneous and correct" in one["f1_missing"]
    assert one["acc_correct"] == pytest.approx(1 / 4)  # only [0.9, 0.8] stays above 0.5 throughout
    with pytest.raises(ValueError, match="cannot fit a threshold: F1 needs erroneous and correct"):
        fit_threshold(probs, [-1, -1, -1, -1])


def test_calibration_bins_by_hand():
    table = calibration_bins([0.05, 0.15, 0.95, 0.9], [0, 1, 1, 1], n_bins=10)
    assert table["count"].tolist() == [1, 1, 0, 0, 0, 0, 0, 0, 0, 2]
    assert table["ece"] == pytest.approx((0.05 + 0.85 + (1 - 0.925) * 2) / 4)


def test_verifier_ranks_and_dedups(tiny_prm):
    calls = []
    real = tiny_prm.score_padded

    def counting(items, **kw):
        calls.append(len(items))
        return real(items, **kw)

    v = PRMVerifier(tiny_prm, "min")
    sols = [["a.", "The answer is 1."], ["b.", "The answer is 2."], ["a.", "The answer is 1."]]
    tiny_prm.score_padded = counting
    try:
        ranked = v.rank_solutions("P?", sols)
    finally:
        del tiny_prm.score_padded
    assert calls == [2]  # the repeated solution was scored once
    assert [r.score for r in ranked] == sorted([r.score for r in ranked], reverse=True)
    assert sorted(r.index for r in ranked) == [0, 1, 2] and ranked[0].final_answer in ("1", "2")
    one = v.score_solution("P?", sols[1])
    assert one.score == pytest.approx(min(one.step_probs)) and one.step_probs[one.weakest_step] == one.weakest_prob
    assert one.step_probs == pytest.approx(tiny_prm.score("P?", sols[1]))
    with pytest.raises(ValueError, match="unknown aggregation"):
        PRMVerifier(tiny_prm, "median")


ITEMS = [("What is 2 + 3?", ["2 + 3 = 5.", "The answer is 5."]),
         ("What is 7 × 8?", ["I need to multiply 7 by 8.", "7 × 8 = 54.", "Wait: 7 × 8 = 56.", "The answer is 56."]),
         ("P?", ["Only one step, the answer is 1."])]


def test_padded_step_scores_are_the_lists(tiny_prm):
    steps = tiny_prm.score_padded(ITEMS)
    assert steps.probs.shape == steps.mask.shape == (3, 4) and steps.probs.dtype == torch.float64
    assert steps.mask.sum(dim=1).tolist() == [2, 4, 1] and torch.isnan(steps.probs[~steps.mask]).all()
    assert steps.rows() == tiny_prm.score_batch(ITEMS)  # one path: the lists are the tensor's rows
    for row, (problem, sol) in zip(steps.rows(), ITEMS):  # and they are each solution's own scores
        assert row == pytest.approx(tiny_prm.score(problem, sol), abs=1e-6)
    for how in ("min", "last", "prod", "weighted_mean"):
        assert aggregate(*steps, how).tolist() == aggregate_many(steps.rows(), how), how
    steps.probs[0, 0] = 0.5  # ordinary tensors, not inference-mode ones: the caller may change them


def test_padded_step_scores_of_a_cut_solution_keep_its_nan_inside_the_mask():
    from prm_lib.model import ProcessRewardModel

    short = ProcessRewardModel.from_backbone("tiny-qwen2", device="cpu", max_length=40)
    long = ("What is 1 + 1?", [f"Step {i}: 1 + 1 = 2, and this step is written out at some length." for i in range(6)])
    with pytest.warns(UserWarning):
        steps = short.score_padded([long, ITEMS[0]])
    assert steps.mask.sum(dim=1).tolist() == [6, 2]
    cut = torch.isnan(steps.probs[0])
    assert cut.any() and not cut[0] and cut[-1]  # cut from the end, whole steps
    with pytest.raises(ValueError, match="NaN"):
        aggregate(*steps, "min")  # as aggregate_many refuses the lists


def test_verifier_step_scores_spread_duplicates_back(tiny_prm):
    v = PRMVerifier(tiny_prm)
    items = [ITEMS[1], ITEMS[0], ITEMS[1], ITEMS[2], ITEMS[0]]
    steps = v.step_scores(items)
    assert steps.probs.shape == (5, 4)
    assert torch.equal(steps.mask.sum(dim=1), torch.tensor([4, 2, 4, 1, 2]))
    assert v.step_probabilities(items) == steps.rows() == [tiny_prm.score_batch(ITEMS)[i] for i in (1, 0, 1, 2, 0)]
    assert v.solution_scores(steps).tolist() == aggregate_many(steps.rows(), "min")
    assert v.step_scores([]).probs.shape == (0, 0) and v.score_solutions([]) == []


def test_score_grid_shapes_dedup_and_re_aggregation(tiny_prm):
    calls = []
    real = tiny_prm.score_padded

    def counting(items, **kw):
        calls.append(len(items))
        return real(items, **kw)

    a, b, c = ["1 + 1 = 2.", "The answer is 2."], ["1 + 1 = 3.", "The answer is 3."], ["The answer is 2."]
    problems = ["What is 1 + 1?", "What is 2 + 0?"]
    candidates = [[a, b, a], [a, c, c]]  # a repeats within and across problems, but not as the same (problem, steps)
    v = PRMVerifier(tiny_prm, "min")
    tiny_prm.score_padded = counting
    try:
        grid = v.score_grid(problems, candidates)
    finally:
        del tiny_prm.score_padded
    assert calls == [4]  # 6 candidates, 4 distinct (problem, steps) pairs, one batched call
    assert grid.scores.shape == (2, 3) and grid.answers == [["2", "3", "2"], ["2", "2", "2"]]
    assert grid.steps.probs.shape[0] == 6
    by_hand = [[s.score for s in v.score_solutions([(p, sol) for sol in cands])] for p, cands in zip(problems, candidates)]
    assert grid.scores.tolist() == by_hand
    assert grid.scores[0, 0] == grid.scores[0, 2] and grid.scores[1, 1] == grid.scores[1, 2]
    assert grid.aggregate("last").tolist() == PRMVerifier(tiny_prm, "last").score_grid(problems, candidates).scores.tolist()
    assert grid.aggregate("min").tolist() == grid.scores.tolist()
    with pytest.raises(ValueError, match="same number of candidates"):
        v.score_grid(problems, [[a, b], [a]])
    with pytest.raises(ValueError, match="2 problems but candidates for 1"):
        v.score_grid(problems, [[a]])
    assert v.score_grid([], []).scores.shape == (0, 0)


def test_an_orm_grid_refuses_another_aggregation():
    from prm_lib.model import ProcessRewardModel

    orm = ProcessRewardModel.from_backbone("tiny-qwen2", device="cpu", objective="orm")
    grid = PRMVerifier(orm).score_grid(["What is 2 + 3?"], [[ITEMS[0][1], ["The answer is 6."]]])
    assert grid.scores.shape == (1, 2) and grid.aggregate("last").tolist() == grid.scores.tolist()
    with pytest.raises(ValueError, match="ORM"):
        grid.aggregate("min")


def test_a_model_with_only_the_list_score_batch_still_plugs_into_the_verifier():
    class Lists:
        objective = "prm"

        def score_batch(self, items, progress=False):
            return [[0.9] * (len(steps) - 1) + [0.2 if "7" in steps[-1] else 0.8] for _, steps in items]

    verifier = PRMVerifier(Lists())
    scored = verifier.score_solutions([("p", ["a", "The answer is 7."]), ("p", ["a", "b", "The answer is 8."])])
    assert [s.score for s in scored] == pytest.approx([0.2, 0.8])
    grid = verifier.score_grid(["p"], [[["a", "The answer is 7."], ["The answer is 8."]]])
    assert grid.scores.shape == (1, 2) and grid.scores[0].tolist() == pytest.approx([0.2, 0.8])
    assert grid.answers == [["7", "8"]]


def _counting(model):
    """Record how many items each call sends to the model's ``score_padded``."""
    calls, real = [], model.score_padded

    def counting(items, *args, **kw):
        calls.append([p for p, _ in items])
        return real(items, *args, **kw)

    model.score_padded = counting
    return calls


def test_the_memo_scores_each_solution_once_across_calls(tiny_prm):
    calls = _counting(tiny_prm)
    try:
        v = PRMVerifier(tiny_prm, "min")
        first = v.step_scores(ITEMS[:2])
        again = v.step_scores([ITEMS[1], ITEMS[2], ITEMS[0], ITEMS[1]])  # two remembered, one new, one repeat
        assert calls == [[ITEMS[0][0], ITEMS[1][0]], [ITEMS[2][0]]]  # only the new problem reached the model
        assert again.rows()[0] == first.rows()[1] and again.rows()[2] == first.rows()[0]
        assert again.rows()[3] == again.rows()[0]
        assert again.rows()[1] == pytest.approx(tiny_prm.score(*ITEMS[2]), abs=1e-6)
        assert v.memo_stats == {"requested": 6, "scored": 3, "hit_rate": 0.5, "remembered": 3}
        # the same grid from a verifier without a memo: the same scores, every call reaching the model
        calls.clear()
        plain = PRMVerifier(tiny_prm, "min", memo=0)
        plain.step_scores(ITEMS[:2])
        fresh = plain.step_scores([ITEMS[1], ITEMS[2], ITEMS[0], ITEMS[1]])
        assert [len(c) for c in calls] == [2, 3] and plain.memo_stats["remembered"] == 0
        for a, b in zip(fresh.rows(), again.rows()):
            assert a == pytest.approx(b, abs=1e-6)
        assert (fresh.mask == again.mask).all() and fresh.probs.shape == again.probs.shape
    finally:
        del tiny_prm.score_padded


def test_the_memo_keeps_the_newest_and_forgets_a_trained_model():
    from prm_lib.model import ProcessRewardModel

    prm = ProcessRewardModel.from_backbone("tiny-qwen2", device="cpu")
    calls = _counting(prm)
    v = PRMVerifier(prm, "min", memo=2)
    for item in ITEMS:
        v.step_scores([item])
    v.step_scores([ITEMS[0]])  # the oldest of three was forgotten: scored again
    v.step_scores([ITEMS[2]])  # still remembered
    assert [c[0] for c in calls] == [ITEMS[0][0], ITEMS[1][0], ITEMS[2][0], ITEMS[0][0]]
    before = v.step_scores([ITEMS[1]]).probs.clone()
    calls.clear()
    with torch.no_grad():  # an optimizer step changes the parameters in place: the memo must not serve old scores
        prm.value_head.bias.add_(2.0)
    after = v.step_scores([ITEMS[1]])
    assert len(calls) == 1 and not torch.allclose(after.probs, before)
    with pytest.raises(ValueError, match="memo is how many"):
        PRMVerifier(prm, "min", memo=-1)
