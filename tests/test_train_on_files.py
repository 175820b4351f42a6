"""Training on a user's file: the CLI and the API, the held-out share, max_length, and every bad input named."""

import json
from pathlib import Path

import pytest

from prm_lib.cli import main as cli
from prm_lib.data import FormatError, write
from prm_lib.model import ProcessRewardModel
from prm_lib.train import TrainConfig, train
from prm_lib.training_data import FileData, SyntheticData, guess_format, read_training_file
from prm_lib.zoo import config_hash, preset

FIXTURES = Path(__file__).parent / "fixtures"
QUICK = ["--backbone", "tiny-qwen2", "--n-layers", "none", "--max-steps", "4", "--eval-every", "2", "--batch-size", "8",
         "--no-progress"]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """The tiny preset's synthetic data written as TRL and Math-Shepherd files, and a ProcessBench file to eval on."""
    root = tmp_path_factory.mktemp("data")
    train_set, val_set, _ = SyntheticData(n_train=120, n_val=30, seed=4).build()
    for fmt in ("trl", "math-shepherd"):
        write(train_set, root / f"train.{fmt}.jsonl", fmt)
        write(val_set, root / f"val.{fmt}.jsonl", fmt)
    write(val_set, root / "val.processbench.jsonl", "processbench")
    return root


@pytest.mark.parametrize("fmt", ["trl", "math-shepherd"])
def test_cli_trains_tiny_qwen2_from_a_file_and_eval_reads_the_result(fmt, files, tmp_path, capsys):
    out = tmp_path / "run"
    assert cli(["train", "--train-file", str(files / f"train.{fmt}.jsonl"), "--format", fmt, *QUICK, "--out", str(out)]) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed["n_solutions"] == 6  # 5% of 120 held out, seeded
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["config"]["data"] == {"train_file": str(files / f"train.{fmt}.jsonl"), "format": fmt, "val_file": None,
                                         "val_fraction": 0.05, "seed": 0, "neutral": "positive",
                                         "alternatives": False, "kind": "file"}
    data = metrics["data"]
    assert (data["n_train"], data["n_val"], data["n_skipped"], data["n_truncated"]) == (114, 6, 0, 0)
    assert "6 of 120 solutions" in data["validation"] and "held out by problem (6 of 120 problems" in data["validation"]
    assert (data["n_read"], data["n_solutions"], data["n_left_out"], data["left_out"]) == (120, 120, 0, [])
    assert ProcessRewardModel.load(out, device="cpu").separator == "\n\n"
    assert cli(["eval", "--checkpoint", str(out), "--data", str(files / "val.processbench.jsonl")]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["n"] == 30 and result["n_skipped"] == 0 and 0.0 <= result["f1"] <= 1.0


def test_the_api_trains_on_a_file_with_a_validation_file_and_the_same_records_give_the_same_run(files):
    data = FileData(str(files / "train.trl.jsonl"), "trl", val_file=str(files / "val.trl.jsonl"))
    config = preset("tiny").replace(data=data, max_steps=3, eval_every=3)
    from_file = train(config, progress=False)
    assert from_file.final["n_solutions"] == 30
    # the same solutions in memory: the same losses (a file adds nothing and loses nothing)
    synthetic = preset("tiny").replace(data=SyntheticData(n_train=120, n_val=30, seed=4), max_steps=3, eval_every=3)
    in_memory = train(synthetic, progress=False)
    assert [h["loss"] for h in from_file.history] == [h["loss"] for h in in_memory.history]
    assert from_file.final["step_auroc"] == in_memory.final["step_auroc"]


def test_the_held_out_share_is_seeded_and_disjoint(files):
    a_train, a_val, report = FileData(str(files / "train.trl.jsonl"), "trl", val_fraction=0.1, seed=1).build()
    b_train, b_val, _ = FileData(str(files / "train.trl.jsonl"), "trl", val_fraction=0.1, seed=1).build()
    c_train, c_val, _ = FileData(str(files / "train.trl.jsonl"), "trl", val_fraction=0.1, seed=2).build()
    assert [s.steps for s in a_val] == [s.steps for s in b_val] != [s.steps for s in c_val]
    assert len(a_val) == 12 and len(a_train) == 108 and report.n_train == 108
    keys = {(s.problem, tuple(s.steps)) for s in a_train}
    assert not keys & {(s.problem, tuple(s.steps)) for s in a_val}
    assert all(s.meta["source"].startswith(str(files / "train.trl.jsonl") + ":") for s in a_train + a_val)


def test_the_cache_key_follows_a_data_files_contents(files, tmp_path):
    copy = tmp_path / "train.jsonl"
    copy.write_text((files / "train.trl.jsonl").read_text())
    config = TrainConfig(data=FileData(str(copy), "trl"))
    before = config_hash(config)
    copy.write_text("\n".join(copy.read_text().splitlines()[:-1]) + "\n")  # one record fewer, same name
    assert config_hash(config) != before
    assert config_hash(TrainConfig()) != config_hash(TrainConfig(data=SyntheticData(n_train=3001)))


def test_max_length_cuts_by_whole_steps_and_the_run_counts_what_it_cut_and_left_out(files, tmp_path):
    lines = (files / "train.trl.jsonl").read_text().splitlines()[:40]
    long_problem = {"prompt": "Tell me " + "very " * 200 + "much. What is 2 + 2?", "completions": ["2 + 2 = 4."],
                    "labels": [True]}
    src = tmp_path / "train.jsonl"
    src.write_text("\n".join(lines[:20] + [json.dumps(long_problem)] + lines[20:]) + "\n")
    config = preset("tiny").replace(data=FileData(str(src), "trl", val_file=str(files / "val.trl.jsonl")),
                                    max_length=64, max_steps=2, eval_every=2)
    with pytest.warns(UserWarning, match="cut by whole steps"):
        train(config, out_dir=tmp_path / "run", progress=False)
    data = json.loads((tmp_path / "run" / "metrics.json").read_text())["data"]
    skipped = {split: [r["where"] for r in data["skipped"] if r["split"] == split] for split in ("training", "validation")}
    assert f"{src}:21" in skipped["training"]  # the long problem, named by its line
    assert all(w.startswith(f"{src}:") for w in skipped["training"])
    # nothing lost without a count: every record is trained on, or validated on, or named as left out
    assert data["n_train"] + len(skipped["training"]) == 41 and data["n_val"] + len(skipped["validation"]) == 30
    assert data["n_skipped"] == len(data["skipped"]) and data["n_truncated"] > 0
    assert ProcessRewardModel.load(tmp_path / "run", device="cpu").max_length == 64


# ---- bad input: a clear error that names the file (and line) ---------------------------------------------------
def run_cli(args, capsys):
    code = cli(["train", *args, *QUICK, "--out", "/tmp/prm-lib-never-written"])
    return code, capsys.readouterr().err


def test_an_empty_file_is_named(tmp_path, capsys):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n")
    code, err = run_cli(["--train-file", str(empty), "--format", "trl"], capsys)
    assert code == 2 and f"{empty} is empty" in err


def test_a_missing_file_is_named(tmp_path, capsys):
    code, err = run_cli(["--train-file", str(tmp_path / "nope.jsonl"), "--format", "trl"], capsys)
    assert code == 2 and "no such data file" in err and "nope.jsonl" in err


def test_a_file_in_another_format_is_named_with_the_format_it_looks_like(files, capsys):
    code, err = run_cli(["--train-file", str(files / "train.math-shepherd.jsonl"), "--format", "trl"], capsys)
    assert code == 2 and "train.math-shepherd.jsonl:1: not a trl record (it looks like math-shepherd)" in err
    assert guess_format({"problem": "p", "steps": [], "label": -1}) == "processbench"


def test_a_validation_file_in_another_format_is_named(files, capsys):
    code, err = run_cli(["--train-file", str(files / "train.trl.jsonl"), "--format", "trl",
                         "--val-file", str(files / "val.math-shepherd.jsonl")], capsys)
    assert code == 2 and "val.math-shepherd.jsonl:1: not a trl record (it looks like math-shepherd)" in err


def test_labels_that_do_not_match_the_steps_are_named_with_their_line(files, tmp_path, capsys):
    lines = (files / "train.trl.jsonl").read_text().splitlines()[:5]
    bad = json.loads(lines[3])
    bad["labels"] = bad["labels"] + [True]
    src = tmp_path / "bad.jsonl"
    src.write_text("\n".join(lines[:3] + [json.dumps(bad)] + lines[4:]) + "\n")
    code, err = run_cli(["--train-file", str(src), "--format", "trl"], capsys)
    assert code == 2 and f"{src}:4:" in err and "label" in err
    with pytest.raises(FormatError, match=f"{src}:4:"):
        read_training_file(src, "trl")


def test_a_backbone_that_cannot_be_loaded_offline_is_named(files, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    code = cli(["train", "--train-file", str(files / "train.trl.jsonl"), "--format", "trl", "--backbone",
                "no-such-org/no-such-model", "--max-steps", "1", "--no-progress", "--out", "/tmp/prm-lib-never-written"])
    err = capsys.readouterr().err
    assert code == 2 and "could not load backbone 'no-such-org/no-such-model'" in err


def test_an_unknown_preset_lists_the_presets(capsys):
    with pytest.raises(SystemExit):
        cli(["train", "--preset", "gpu", "--out", "x"])
    err = capsys.readouterr().err
    assert "invalid choice: 'gpu'" in err and "cpu-reader" in err and "tiny" in err


def test_synthetic_settings_with_a_file_and_a_file_without_format_are_errors(files, capsys):
    code, err = run_cli(["--train-file", str(files / "train.trl.jsonl"), "--format", "trl", "--n-train", "10"], capsys)
    assert code == 2 and "--n-train" in err and "--train-file replaces" in err
    code, err = run_cli(["--train-file", str(files / "train.trl.jsonl")], capsys)
    assert code == 2 and "--train-file needs --format" in err
    with pytest.raises(ValueError, match="set the synthetic generator"):
        TrainConfig(data=FileData(str(files / "train.trl.jsonl"), "trl")).replace(n_train=5)
