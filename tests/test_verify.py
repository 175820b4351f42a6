"""Verification: selectors, best-of-N curves, bootstrap, the verifier, first-error F1 and the eval CLI."""

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from prm_lib.answers import extract_final_answer
from prm_lib.cli import main as cli
from prm_lib.metrics import calibration_bins, first_error_scores, fit_threshold, predicted_first_error, predicted_first_errors
from prm_lib.verify import (PRMVerifier, Selector, best_of_n_accuracy, bootstrap_gap, evaluate_processbench,
                            majority_vote, pass_at_n, select_best, weighted_vote)

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.mark.parametrize("text", ["12", "12.0", "$12$", "The answer is 12.", "So the answer is: $12$.", "\\boxed{12}",
                                  "Thus 3 × 4 = 12.", "the answer is 12.00"])
def test_messy_final_answers_normalise_alike(text):
    assert extract_final_answer([text]) == "12"


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
    with pytest.raises(ValueError, match="need erroneous and correct"):
        first_error_scores(probs, [-1, -1, -1, -1])


def test_calibration_bins_by_hand():
    table = calibration_bins([0.05, 0.15, 0.95, 0.9], [0, 1, 1, 1], n_bins=10)
    assert table["count"].tolist() == [1, 1, 0, 0, 0, 0, 0, 0, 0, 2]
    assert table["ece"] == pytest.approx((0.05 + 0.85 + (1 - 0.925) * 2) / 4)


def test_verifier_ranks_and_dedups(tiny_prm):
    calls = []
    real = tiny_prm.score_batch

    def counting(items, **kw):
        calls.append(len(items))
        return real(items, **kw)

    v = PRMVerifier(tiny_prm, "min")
    sols = [["a.", "The answer is 1."], ["b.", "The answer is 2."], ["a.", "The answer is 1."]]
    tiny_prm.score_batch = counting
    try:
        ranked = v.rank_solutions("P?", sols)
    finally:
        del tiny_prm.score_batch
    assert calls == [2]  # the repeated solution was scored once
    assert [r.score for r in ranked] == sorted([r.score for r in ranked], reverse=True)
    assert sorted(r.index for r in ranked) == [0, 1, 2] and ranked[0].final_answer in ("1", "2")
    one = v.score_solution("P?", sols[1])
    assert one.score == pytest.approx(min(one.step_probs)) and one.step_probs[one.weakest_step] == one.weakest_prob
    assert one.step_probs == pytest.approx(tiny_prm.score("P?", sols[1]))
    with pytest.raises(ValueError, match="unknown aggregation"):
        PRMVerifier(tiny_prm, "median")


def test_evaluate_long_competition_prose_matches_direct_scoring(tiny_prm):
    path = FIXTURES / "processbench_long.jsonl"
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert max(len(r["steps"]) for r in records) >= 20
    result = evaluate_processbench(tiny_prm, str(path), threshold=0.5)
    probs = tiny_prm.score_batch([(r["problem"], r["steps"]) for r in records])
    expected = first_error_scores(probs, [r["label"] for r in records], 0.5)
    assert result["n"] == 5 and result["n_skipped"] == 0 and result["threshold_fitted_on"] is None
    for key in ("f1", "acc_erroneous", "acc_correct"):
        assert result[key] == pytest.approx(expected[key])


def test_eval_cli_counts_and_names_what_it_cannot_score(tmp_path, capsys, tiny_prm):
    ckpt = tmp_path / "ckpt"
    tiny_prm.save(ckpt)
    assert cli(["eval", "--checkpoint", str(ckpt), "--data", str(FIXTURES / "processbench_bad.jsonl")]) == 0
    captured = capsys.readouterr()
    out = json.loads(captured.out)
    assert out["n"] == 2 and out["n_records"] == 7 and out["n_skipped"] == 5
    assert {"f1", "acc_erroneous", "acc_correct", "threshold", "n"} <= out.keys()
    reasons = " | ".join(s["reason"] for s in out["skipped"])
    for needle in ("label 3 is not -1 or a step index below 1", "empty or whitespace-only", "separator",
                   "missing field 'steps'", "not valid JSON"):
        assert needle in reasons, needle
    assert [s["where"].rsplit(":", 1)[1] for s in out["skipped"]] == ["2", "3", "4", "5", "6"]
    assert "5 of 7 records could not be scored" in captured.err
    assert out["threshold_fitted_on"].endswith("processbench_bad.jsonl")


def test_eval_cli_fixed_threshold_and_over_long_records(tmp_path, capsys):
    from prm_lib.model import ProcessRewardModel

    short = ProcessRewardModel.from_backbone("tiny-qwen2", device="cpu", max_length=128)
    ckpt = tmp_path / "short"
    short.save(ckpt)
    assert cli(["eval", "--checkpoint", str(ckpt), "--data", str(FIXTURES / "processbench_long.jsonl"), "--threshold", "0.4"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["threshold"] == 0.4 and out["n"] == 2 and out["n_skipped"] == 3
    assert all("longer than the model's max_length (128 tokens)" in s["reason"] for s in out["skipped"])
    assert cli(["eval", "--checkpoint", str(ckpt), "--data", str(FIXTURES / "processbench_long.jsonl"), "--threshold", "1.5"]) == 2
    assert "not a probability" in capsys.readouterr().err


class ScriptedPRM:
    """Stands in for a loaded checkpoint: each step's P(correct) is written in the step ("... p=0.8.")."""

    separator, max_length, objective = "\n\n", 10**6, "prm"

    def encode(self, items):
        return [SimpleNamespace(truncated=False, n_scored=len(steps), n_steps=len(steps), steps=steps)
                for _, steps in items]

    def score_encoded(self, encoded, progress=False):
        return [[float(step.rsplit("p=", 1)[1].rstrip(".")) for step in e.steps] for e in encoded]


def test_eval_cli_fits_the_threshold_on_fit_data_and_applies_it_to_data(tmp_path, capsys, monkeypatch):
    from prm_lib.model import ProcessRewardModel

    monkeypatch.setattr(ProcessRewardModel, "load", classmethod(lambda cls, *args, **kwargs: ScriptedPRM()))

    def write(name, rows):
        path = tmp_path / name
        path.write_text("".join(json.dumps({"problem": "P?", "steps": [f"Step p={p}." for p in probs], "label": label})
                                + "\n" for probs, label in rows))
        return str(path)

    # the fit file's best threshold lies in (0.75, 0.85]; the evaluated file's in (0.2, 0.35]
    fit = write("fit.jsonl", [([0.9, 0.85], -1), ([0.9, 0.75], 1)])
    data = write("data.jsonl", [([0.4, 0.35], -1), ([0.4, 0.2], 1)])
    assert cli(["eval", "--checkpoint", str(tmp_path), "--data", data, "--fit-data", fit]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["threshold_fitted_on"] == fit and out["n_skipped_fit"] == 0 and out["n"] == 2
    assert 0.75 < out["threshold"] <= 0.85
    # applied to the evaluated file, that threshold flags both solutions at their first step
    assert (out["acc_erroneous"], out["acc_correct"], out["f1"]) == (0.0, 0.0, 0.0)
    assert cli(["eval", "--checkpoint", str(tmp_path), "--data", data]) == 0  # fitted on the file itself
    own = json.loads(capsys.readouterr().out)
    assert own["threshold_fitted_on"] == data and 0.2 < own["threshold"] <= 0.35 and own["f1"] == 1.0
