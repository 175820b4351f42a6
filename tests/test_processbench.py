"""ProcessBench-style evaluation: ``evaluate_processbench`` and the ``eval`` command that prints it."""

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from prm_lib.cli import main as cli
from prm_lib.metrics import first_error_scores
from prm_lib.processbench import evaluate_processbench

FIXTURES = Path(__file__).parent / "fixtures"


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
