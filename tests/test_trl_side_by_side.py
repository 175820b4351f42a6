"""The TRL side-by-side benchmark's smoke run: both trainers run on the same files and are scored on the
same test steps (the full run is on purpose, not here: a few minutes of CPU)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("trl")

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "trl_side_by_side.py"


def test_smoke_run_reports_both_trainers_and_the_gap_interval():
    done = subprocess.run([sys.executable, str(SCRIPT), "--smoke"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    for tool in ("prm_lib", "prm_lib_embeddings_trained", "trl"):
        assert "error" not in out[tool], out[tool]
        side = out[tool]
        assert side["tokens"] > 0 and side["train_seconds"] > 0 and 0 <= side["test_step_auroc"] <= 1, side
    assert out["prm_lib"]["settings"]["frozen_embeddings"] and not out["prm_lib_embeddings_trained"]["settings"]["frozen_embeddings"]
    # the same batches' real tokens: the same data, batch size and steps (the samplers order them differently)
    assert out["prm_lib"]["tokens"] == out["prm_lib_embeddings_trained"]["tokens"]
    assert out["speed_ratio_prm_lib_over_trl"] == round(out["prm_lib"]["tokens_per_second"] / out["trl"]["tokens_per_second"], 2)
    assert out["repeats"] == 1 and len(out["speed_ratio_by_round"]) == len(out["trl"]["tokens_per_second_by_round"]) == 1
    lo, hi = out["auroc_gap_95ci"]
    assert -1 <= lo <= hi <= 1, out


def test_adamw_benchmark_smoke_times_both_optimizers_for_both_settings():
    script = SCRIPT.parent / "adamw_cpu.py"
    done = subprocess.run([sys.executable, str(script), "--smoke"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    frozen, trained = out["embeddings_frozen"], out["embeddings_trained"]
    # freezing the table leaves out exactly its parameters
    assert 0 < frozen["params_millions"] < trained["params_millions"], out
    for side in (frozen, trained):
        assert side["unfused_seconds_per_step"] > 0 and side["fused_seconds_per_step"] > 0, side
        ratio = side["unfused_seconds_per_step"] / side["fused_seconds_per_step"]
        assert side["unfused_over_fused"] == pytest.approx(ratio, rel=0.02), side
