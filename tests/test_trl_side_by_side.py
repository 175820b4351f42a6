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
    for tool in ("prm_lib", "trl"):
        assert "error" not in out[tool], out[tool]
        side = out[tool]
        assert side["tokens"] > 0 and side["train_seconds"] > 0 and 0 <= side["test_step_auroc"] <= 1, side
    assert out["speed_ratio_prm_lib_over_trl"] == round(out["prm_lib"]["tokens_per_second"] / out["trl"]["tokens_per_second"], 2)
    lo, hi = out["auroc_gap_95ci"]
    assert lo <= out["auroc_gap_prm_lib_minus_trl"] <= hi, out
