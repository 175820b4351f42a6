"""The trainer under `accelerate launch` with 2 CPU processes: data parallel, same update as one process."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from prm_lib.model import ProcessRewardModel

ACCELERATE = Path(sys.executable).with_name("accelerate")
ARGS = ["train", "--preset", "tiny", "--max-steps", "8", "--eval-every", "8", "--no-progress"]


@pytest.mark.skipif(not ACCELERATE.exists() and not shutil.which("accelerate"), reason="accelerate is not installed")
def test_two_processes_under_accelerate_match_one_process(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"}
    single = subprocess.run([sys.executable, "-m", "prm_lib", *ARGS, "--out", str(tmp_path / "single")],
                            env=env, capture_output=True, text=True, timeout=300)
    assert single.returncode == 0, single.stderr[-2000:]
    launcher = str(ACCELERATE) if ACCELERATE.exists() else shutil.which("accelerate")
    multi = subprocess.run([launcher, "launch", "--multi_gpu", "--num_processes", "2", "--main_process_port", "29533",
                            "-m", "prm_lib", *ARGS, "--out", str(tmp_path / "multi")],
                           env=env, capture_output=True, text=True, timeout=300)
    assert multi.returncode == 0, multi.stderr[-3000:]
    assert len([line for line in multi.stdout.splitlines() if line.startswith("{")]) == 1  # rank 0 alone reports

    metrics = json.loads((tmp_path / "multi" / "metrics.json").read_text())
    assert metrics["world_size"] == 2
    one = json.loads((tmp_path / "single" / "metrics.json").read_text())
    assert one["world_size"] == 1 and one["train_tokens"] == metrics["train_tokens"]  # the same data, split in two
    # each global batch split across 2 processes, gradients all-reduced: the same updates as one process
    for a, b in zip(one["history"], metrics["history"]):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-4, abs=1e-5)
    p1 = ProcessRewardModel.load(tmp_path / "single", device="cpu")
    p2 = ProcessRewardModel.load(tmp_path / "multi", device="cpu")
    for (name, x), (_, y) in zip(p1.state_dict().items(), p2.state_dict().items()):
        torch.testing.assert_close(x, y, rtol=1e-4, atol=2e-5, msg=f"{name} differs between 1 and 2 processes")
    start = ProcessRewardModel.from_backbone("tiny-qwen2", device="cpu")  # and training moved them
    assert not torch.allclose(next(start.value_head.parameters()), next(p2.value_head.parameters()))


def test_export_writes_trl_stepwise_supervision_files(tmp_path):
    from prm_lib.data import read_trl
    from prm_lib.train import build_data
    from prm_lib.zoo import preset

    out = subprocess.run([sys.executable, "-m", "prm_lib", "export", "--preset", "tiny", "--out", str(tmp_path)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    train_set, val_set = build_data(preset("tiny"))
    assert summary["train"] == len(train_set) and summary["validation"] == len(val_set)
    first = json.loads((tmp_path / "train.jsonl").read_text().splitlines()[0])
    assert set(first) == {"prompt", "completions", "labels"}  # TRL's stepwise-supervision columns
    assert all(isinstance(x, bool) for x in first["labels"]) and len(first["labels"]) == len(first["completions"])
    back = read_trl(tmp_path / "train.jsonl")
    assert [(s.problem, s.steps, s.first_error) for s in back] == [(s.problem, s.steps, s.first_error) for s in train_set]
