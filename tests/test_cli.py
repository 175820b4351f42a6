"""The command line's own behaviour: its options, its success paths and its one-line errors."""

import json
from pathlib import Path

import pytest

from prm_lib.cli import main as cli
from prm_lib.model import ProcessRewardModel

FIXTURES = Path(__file__).parent / "fixtures"


def test_score_prints_the_models_step_probabilities_on_the_device_asked(capsys):
    steps = ["2 + 3 = 5.", "5 × 2 = 10.", "The answer is 10."]
    assert cli(["score", "--backbone", "tiny-qwen2", "--device", "cpu", "--problem", "What is (2 + 3) × 2?",
                *[a for step in steps for a in ("--step", step)]]) == 0
    printed = json.loads(capsys.readouterr().out)["step_probabilities"]
    expected = ProcessRewardModel.from_backbone("tiny-qwen2", device="cpu").score("What is (2 + 3) × 2?", steps)
    assert printed == expected and len(printed) == 3


def test_score_loads_a_checkpoint_on_the_device_asked(tmp_path, capsys, tiny_prm):
    tiny_prm.save(tmp_path)
    assert cli(["score", "--checkpoint", str(tmp_path), "--device", "cpu", "--problem", "P?", "--step", "a."]) == 0
    assert json.loads(capsys.readouterr().out)["step_probabilities"] == tiny_prm.score("P?", ["a."])


def test_neutral_is_an_error_for_a_source_other_than_prm800k(tmp_path, capsys):
    out = tmp_path / "o.jsonl"
    assert cli(["convert", str(FIXTURES / "math_shepherd.jsonl"), str(out), "--from", "math-shepherd", "--to", "trl",
                "--neutral", "negative"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --neutral") and "math-shepherd" in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_a_runtime_error_is_one_line_not_a_traceback(tmp_path, capsys, monkeypatch):
    from prm_lib import synthetic, training_data

    def exhausted(config):  # what generating more distinct problems than a split holds raises
        synthetic._check_attempts(10**9, 5000, 12, "train", 1.0)

    monkeypatch.setattr(training_data, "build_data", exhausted)
    assert cli(["export", "--preset", "tiny", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: could not find 5000 distinct train problems") and len(err.strip().splitlines()) == 1


def test_a_missing_optional_package_is_one_line_that_names_it(tmp_path, capsys, monkeypatch):
    from prm_lib import data

    def convert(*args, **kwargs):
        raise ModuleNotFoundError("No module named 'pyarrow'", name="pyarrow")

    monkeypatch.setattr(data, "convert", convert)
    assert cli(["convert", str(FIXTURES / "math_shepherd.jsonl"), str(tmp_path / "o.jsonl"), "--from", "math-shepherd",
                "--to", "trl"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "'pyarrow'" in err and "not installed" in err
    assert len(err.strip().splitlines()) == 1


def test_objective_lists_its_choices_and_refuses_others(capsys):
    with pytest.raises(SystemExit):
        cli(["train", "--help"])
    assert "--objective {prm,orm}" in " ".join(capsys.readouterr().out.split())
    with pytest.raises(SystemExit) as exit_:
        cli(["train", "--preset", "tiny", "--objective", "dpo", "--out", "/tmp/prm-lib-never-written"])
    assert exit_.value.code == 2
    assert "invalid choice: 'dpo'" in capsys.readouterr().err
