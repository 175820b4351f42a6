"""What a user brings is taken as given: their backbone whole, their released file, their odd records.

Each test here is one way a new user's first run used to fail or mislead: a backbone cut to the course
preset's 8 layers without a word, a validation set of one class that killed the run before it saved, one
over-long record that aborted a whole evaluation or best-of-N, a non-ASCII separator saved garbled, an
error naming "solution 47" for line 51, accelerate's accumulation setting shrinking every gradient, a
damaged newest checkpoint ending a resume.
"""

import json
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from prm_lib.cli import main as cli
from prm_lib.data import PRMSample, write
from prm_lib.model import ProcessRewardModel
from prm_lib.train import TrainConfig, Trainer, complete_checkpoints, train
from prm_lib.training_data import SyntheticData
from prm_lib.verify import PRMVerifier
from prm_lib.zoo import preset

RELEASED = Path(__file__).parent / "fixtures" / "released"


@pytest.fixture(scope="module")
def trl_file(tmp_path_factory):
    root = tmp_path_factory.mktemp("user")
    train_set, _, _ = SyntheticData(n_train=60, n_val=2, seed=7).build()
    write(train_set, root / "train.jsonl", "trl")
    return root / "train.jsonl"


def _layers(model: ProcessRewardModel) -> int:
    return len(model.backbone.layers)


def test_a_file_run_with_no_other_option_trains_the_whole_backbone_and_says_so(trl_file, tmp_path, capsys):
    out = tmp_path / "run"
    assert cli(["train", "--train-file", str(trl_file), "--format", "trl", "--backbone", "tiny-qwen2",
                "--out", str(out), "--no-progress"]) == 0
    err = capsys.readouterr().err
    # every setting printed first, the one given marked, the defaults meant for a user's own backbone
    assert "settings (* given; the rest from the defaults for your own backbone)" in err
    assert "* backbone                 tiny-qwen2" in err
    assert "  n_layers                 None  (the whole backbone)" in err
    assert "  lr                       2e-05" in err and "  freeze_embeddings        False" in err
    assert "  max_length               2048" in err
    assert "backbone tiny-qwen2: all 2 layers" in err
    assert "read 60 records of" in err and "left out nothing" in err
    saved = json.loads((out / "metrics.json").read_text())["config"]
    assert (saved["n_layers"], saved["freeze_embeddings"], saved["lr"]) == (None, False, 2e-5)
    model = ProcessRewardModel.load(out, device="cpu")
    assert _layers(model) == 2
    # the embeddings were trained: they differ from the untrained backbone's
    fresh = ProcessRewardModel.from_backbone("tiny-qwen2", device="cpu")
    assert not torch.equal(model.backbone.get_input_embeddings().weight, fresh.backbone.get_input_embeddings().weight)


def test_a_layer_cut_is_always_printed(trl_file, tmp_path, capsys):
    assert cli(["train", "--train-file", str(trl_file), "--format", "trl", "--backbone", "tiny-qwen2", "--n-layers", "1",
                "--max-steps", "2", "--out", str(tmp_path / "cut"), "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert "* n_layers                 1  (the backbone is cut to its first 1 layers)" in err
    assert "backbone tiny-qwen2: cut to its first 1 of 2 layers (n_layers=1)" in err


def test_the_course_presets_keep_their_settings(trl_file, tmp_path, capsys):
    assert preset("cpu").n_layers == 8 and preset("cpu").freeze_embeddings and preset("cpu").max_length is None
    assert cli(["train", "--train-file", str(trl_file), "--format", "trl", "--preset", "tiny", "--max-steps", "2",
                "--out", str(tmp_path / "p"), "--no-progress"]) == 0
    assert "the rest from preset tiny" in capsys.readouterr().err


def test_prm800k_as_released_trains_and_reports_what_it_left_out(tmp_path, capsys):
    out = tmp_path / "prm800k"
    assert cli(["train", "--train-file", str(RELEASED / "prm800k.jsonl"), "--format", "prm800k", "--neutral", "negative",
                "--backbone", "tiny-qwen2", "--max-steps", "2", "--separator", "\\n", "--out", str(out),
                "--no-progress"]) == 0
    err = capsys.readouterr().err
    line = next(x for x in err.splitlines() if x.startswith("prm_lib.train: read "))
    assert "(prm800k)" in line and "left out 3" in line and "prm800k.jsonl:3" in line
    report = json.loads((out / "metrics.json").read_text())["data"]
    assert report["n_left_out"] == 3 and all(":" in e["where"] for e in report["left_out"])
    assert json.loads((out / "metrics.json").read_text())["config"]["data"]["neutral"] == "negative"


def test_neutral_and_alternatives_go_with_a_prm800k_file(trl_file, tmp_path, capsys):
    assert cli(["train", "--train-file", str(trl_file), "--format", "trl", "--neutral", "negative",
                "--out", str(tmp_path / "x")]) == 2
    assert "prm800k" in capsys.readouterr().err
    assert cli(["train", "--alternatives", "--out", str(tmp_path / "y")]) == 2
    assert "--alternatives go(es) with --train-file" in capsys.readouterr().err


def test_a_non_ascii_separator_round_trips(trl_file, tmp_path):
    out = tmp_path / "ki"
    assert cli(["train", "--train-file", str(trl_file), "--format", "trl", "--backbone", "tiny-qwen2",
                "--separator", " ки", "--max-steps", "1", "--out", str(out), "--no-progress"]) == 0
    assert ProcessRewardModel.load(out, device="cpu").separator == " ки"
    assert json.loads((out / "metrics.json").read_text())["config"]["separator"] == " ки"


def test_a_step_with_the_separator_is_named_by_file_and_line(tmp_path, capsys):
    records = [{"prompt": f"What is {i} + 1?", "completions": [f"{i} + 1 = {i + 1}.", "Done."], "labels": [True, True]}
               for i in range(6)]
    records[3]["completions"][0] = "First part.\n\nSecond part."
    path = tmp_path / "sep.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in records[:2]) + "\n\n" +  # a blank line: line numbers shift
                    "\n".join(json.dumps(r) for r in records[2:]) + "\n")
    code = cli(["train", "--train-file", str(path), "--format", "trl", "--backbone", "tiny-qwen2", "--val-file",
                str(path), "--max-steps", "1", "--out", str(tmp_path / "o"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and f"{path}:5: step 1 contains the step separator" in err


def test_a_validation_set_of_one_class_is_recorded_missing_and_the_run_saves(tmp_path):
    all_right = [PRMSample(f"What is {i} + 2?", [f"{i} + 2 = {i + 2}.", f"The answer is {i + 2}."], [1, 1])
                 for i in range(4)]
    train_set, _, _ = SyntheticData(n_train=24, n_val=2).build()
    config = preset("tiny").replace(max_steps=2, eval_every=1)
    result = train(config, out_dir=tmp_path / "run", progress=False, train_data=train_set, val_data=all_right)
    assert result.final["step_auroc"] is None and "both classes" in result.final["step_auroc_missing"]
    assert (tmp_path / "run" / "metrics.json").exists()
    ProcessRewardModel.load(tmp_path / "run", device="cpu")


@pytest.fixture(scope="module")
def short_prm(tmp_path_factory):
    """The tiny preset trained briefly with a max_length that long records exceed."""
    out = tmp_path_factory.mktemp("short") / "run"
    train(preset("tiny").replace(max_steps=2, eval_every=2, max_length=64), out_dir=out, progress=False)
    return out


def _long_problem() -> str:
    return "Add these numbers: " + " + ".join(str(i) for i in range(60)) + "?"


def _long_step() -> str:
    return "Adding them: " + " + ".join(str(i) for i in range(60)) + " = 1770."


def test_eval_leaves_out_an_over_long_record_by_file_and_line_and_scores_the_rest(short_prm, tmp_path, capsys):
    records = [{"problem": "What is 2 + 2?", "steps": ["2 + 2 = 4.", "The answer is 4."], "label": -1},
               {"problem": "What is 3 + 3?", "steps": ["3 + 3 = 7.", "The answer is 7."], "label": 0},
               {"problem": _long_problem(), "steps": ["It is 1770."], "label": -1}]
    path = tmp_path / "pb.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    assert cli(["eval", "--checkpoint", str(short_prm), "--data", str(path), "--threshold", "0.5"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["n"] == 2 and result["n_skipped"] == 1
    assert result["skipped"][0]["where"] == f"{path}:3" and "max_length" in result["skipped"][0]["reason"]


def test_eval_on_a_file_of_wrong_solutions_only_reports_the_accuracy_it_can(short_prm, tmp_path, capsys):
    records = [{"problem": f"What is {i} + 3?", "steps": [f"{i} + 3 = {i + 4}.", f"The answer is {i + 4}."], "label": 0}
               for i in range(5)]
    path = tmp_path / "wrong.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    assert cli(["eval", "--checkpoint", str(short_prm), "--data", str(path)]) == 0
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    assert result["f1"] is None and result["acc_correct"] is None and 0.0 <= result["acc_erroneous"] <= 1.0
    assert result["n_erroneous"] == 5 and "F1 needs erroneous and correct" in result["f1_missing"]
    assert result["threshold"] == 0.5 and "one class" in result["threshold_note"]
    assert "F1 needs erroneous and correct" in captured.err


def test_one_over_long_item_leaves_the_rest_of_a_batch_and_of_best_of_n_scored(short_prm):
    prm = ProcessRewardModel.load(short_prm, device="cpu")
    good = [("What is 2 + 2?", ["2 + 2 = 4.", "The answer is 4."]), ("What is 5 + 1?", ["5 + 1 = 6.", "The answer is 6."])]
    long_item = ("What is the sum?", [_long_step(), "The answer is 1770."])
    alone = prm.score_batch(good)
    with pytest.warns(UserWarning, match=r"1 of 3 solutions not scored.*item\(s\) \[1\]"):
        mixed = prm.score_batch([good[0], long_item, good[1]])
    assert mixed[0] == alone[0] and mixed[2] == alone[1]
    assert len(mixed[1]) == 2 and all(math.isnan(p) for p in mixed[1])
    with pytest.raises(ValueError, match="solution 1: the problem and its first step take"):
        prm.score_batch([good[0], long_item], too_long="error")
    # the verifier: NaN for the over-long candidate, never picked; the others as scored alone
    verifier = PRMVerifier(prm, "min")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        grid = verifier.score_grid(["What is 2 + 2?"], [[long_item[1], good[0][1]]])
        ranked = verifier.rank_solutions("What is 2 + 2?", [long_item[1], good[0][1]])
    assert math.isnan(grid.scores[0, 0]) and grid.scores[0, 1] == pytest.approx(min(alone[0]))
    assert ranked[0].index == 1 and math.isnan(ranked[-1].score) and ranked[-1].weakest_step == -1
    from prm_lib.selection import select

    assert select("best", grid.scores[0], ["1770", "4"]) == "4"
    assert select("weighted_vote", grid.scores[0], ["1770", "4"]) == "4"
    with pytest.raises(ValueError, match="solution 0: the problem and its first step take .* max_length=64"):
        PRMVerifier(prm, "min", too_long="error").score_grid(["p"], [[long_item[1], good[0][1]]])


def _tiny_trainer(monkeypatch, grad_accum: int, env: str | None) -> Trainer:
    from accelerate.state import AcceleratorState, GradientState

    if env is None:
        monkeypatch.delenv("ACCELERATE_GRADIENT_ACCUMULATION_STEPS", raising=False)
    else:
        monkeypatch.setenv("ACCELERATE_GRADIENT_ACCUMULATION_STEPS", env)
    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()
    config = preset("tiny").replace(grad_accum=grad_accum, batch_size=4)
    train_set, val_set, _ = config.data.build()
    torch.manual_seed(0)
    model = ProcessRewardModel.from_backbone("tiny-qwen2", device="cpu")
    return Trainer(model, train_set[:16], val_set[:4], config, progress=False)


def test_accelerates_accumulation_setting_is_refused_or_taken_never_a_silent_shrink(monkeypatch):
    with pytest.raises(ValueError, match="gradient_accumulation_steps=4.*--grad-accum 4"):
        _tiny_trainer(monkeypatch, 1, "4")
    grads = []
    for env in (None, "4"):
        trainer = _tiny_trainer(monkeypatch, 4, env)
        assert trainer.accelerator.gradient_accumulation_steps == 1
        batches = [trainer.model.collate([trainer.train_enc[i] for i in trainer.batch_at(j)]) for j in range(4)]
        trainer.backward(batches)
        grads.append(torch.cat([p.grad.flatten() for p in trainer.model.parameters() if p.grad is not None]))
    assert torch.allclose(grads[0], grads[1]) and grads[0].norm() > 0
    monkeypatch.delenv("ACCELERATE_GRADIENT_ACCUMULATION_STEPS")
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()


def test_resume_passes_over_a_damaged_newest_checkpoint_and_checkpoints_are_synced(tmp_path, monkeypatch):
    import os

    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd)))
    config = preset("tiny").replace(max_steps=4, eval_every=2, save_every=2, keep_checkpoints=3)
    train(config, out_dir=tmp_path, progress=False)
    assert synced, "checkpoint files were not fsync'd before the rename"
    found = complete_checkpoints(tmp_path)
    assert [p.name for p in found] == ["step-0000002", "step-0000004"]
    (found[-1] / "trainer_state.pt").write_bytes(b"not a checkpoint")
    with pytest.warns(UserWarning, match="step-0000004 does not load.*resuming from the one before it"):
        result = train(config, out_dir=tmp_path, progress=False)
    # steps 1-2 from the checkpoint at step 2, steps 3-4 trained again
    assert [h["step"] for h in result.history] == [1, 2, 3, 4]


def test_resume_with_no_checkpoint_that_loads_is_an_error(tmp_path):
    config = preset("tiny").replace(max_steps=2, eval_every=2)
    train(config, out_dir=tmp_path, progress=False)
    for ckpt in complete_checkpoints(tmp_path):
        (ckpt / "trainer_state.pt").write_bytes(b"garbage")
    with pytest.warns(UserWarning), pytest.raises(ValueError, match="no checkpoint under .* loads"):
        train(config, out_dir=tmp_path, progress=False)


def test_the_python_api_takes_a_model_you_built_and_samples_in_memory_or_a_dataset(tmp_path):
    import prm_lib
    from prm_lib import FileData, PRMSample as Exported, Trainer as ExportedTrainer

    assert Exported is PRMSample and ExportedTrainer is Trainer and FileData.__name__ == "FileData"
    train_set, _, _ = SyntheticData(n_train=40, n_val=2).build()
    model = ProcessRewardModel.from_backbone("tiny-qwen2", device="cpu", n_layers=1)
    config = TrainConfig(backbone="tiny-qwen2", max_steps=2, eval_every=2, batch_size=4)
    result = prm_lib.train(config, progress=False, model=model, train_data=train_set)
    assert result.model is model and _layers(result.model) == 1 and len(result.history) == 2
    # the held-out share of in-memory samples is grouped by problem too
    from datasets import Dataset

    rows = [{"prompt": s.problem, "completions": s.steps, "labels": [t >= 0.5 for t in s.targets]} for s in train_set]
    result = train(config, progress=False, train_data=Dataset.from_list(rows))
    assert result.final["n_solutions"] >= 1 and _layers(result.model) == 2
    with pytest.raises(TypeError, match="train_data row 0: expected a PRMSample or a record with TRL's columns"):
        train(config, progress=False, train_data=[{"question": "x"}])
    with pytest.raises(ValueError, match="train_data row 1: 2 labels for 1 steps"):
        train(config, progress=False, train_data=[rows[0], {"prompt": "p", "completions": ["a."], "labels": [True, False]}])


def test_a_cut_solution_is_counted_in_the_report_a_file_run_prints(tmp_path, capsys):
    records = [{"prompt": f"Sum {i}: " + " + ".join(["1"] * 20), "completions": ["Adding.", "It is 20."] * 6,
                "labels": [True] * 12} for i in range(8)]
    path = tmp_path / "long.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    assert cli(["train", "--train-file", str(path), "--format", "trl", "--backbone", "tiny-qwen2", "--max-length", "80",
                "--max-steps", "1", "--out", str(tmp_path / "o"), "--no-progress"]) == 0
    line = next(x for x in capsys.readouterr().err.splitlines() if x.startswith("prm_lib.train: read "))
    report = json.loads((tmp_path / "o" / "metrics.json").read_text())["data"]
    assert report["n_truncated"] > 0 and f"{report['n_truncated']} cut by whole steps" in line
