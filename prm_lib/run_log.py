"""What a running training reports while it runs: a ``metrics.jsonl`` line per logging step (a notebook
can read it while the run goes on) and, when asked, TensorBoard or W&B through accelerate's trackers.

``metrics.json`` is written at the end; a 10-hour run is watched through these instead."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

REPORT_TO = ("none", "tensorboard", "wandb")
LOG_FILE = "metrics.jsonl"
TRACKER_DIR = "runs"  # out_dir/runs/<project>/: TensorBoard's event files
PROJECT = "prm_lib"
# the package each tracker needs, and the install line an error names
_PACKAGES = {"tensorboard": ("tensorboard", "pip install tensorboard"), "wandb": ("wandb", "pip install wandb")}


def peak_memory_gib(device: torch.device) -> float:
    """This process's peak memory so far: CUDA's allocated peak on a GPU, the process's peak RSS elsewhere."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def _hparams(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """A flat dict of scalars and strings, as TensorBoard's hparams take them."""
    flat: dict[str, Any] = {}
    for k, v in values.items():
        if isinstance(v, dict):
            flat.update(_hparams(v, f"{prefix}{k}."))
        else:
            flat[prefix + k] = v if isinstance(v, (int, float, str, bool)) else str(v)
    return flat


class RunLog:
    """The log of one run, written by the main process only; ``out_dir`` None writes no file."""

    def __init__(self, out_dir: Path | None, report_to: str, config: dict[str, Any], accelerator: Any,
                 resumed_at: int = 0) -> None:
        if report_to not in REPORT_TO:
            raise ValueError(f"unknown report_to {report_to!r}; known: {', '.join(REPORT_TO)}")
        self.accelerator, self.is_main = accelerator, accelerator.is_main_process
        self.path = out_dir / LOG_FILE if out_dir is not None else None
        self.tracking = report_to != "none"
        if self.path is not None and self.is_main:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            _keep_lines_up_to(self.path, resumed_at)  # a resumed run rewrites the steps after its checkpoint
        if self.tracking:
            self._start_tracker(report_to, out_dir, config)

    def _start_tracker(self, report_to: str, out_dir: Path | None, config: dict[str, Any]) -> None:
        package, install = _PACKAGES[report_to]
        try:
            __import__(package)
        except ImportError:
            raise ModuleNotFoundError(f"report_to={report_to!r} needs the {package} package: {install} "
                              f"(or pip install 'prm_lib[{report_to}]')") from None
        from accelerate.tracking import TensorBoardTracker, WandBTracker

        if report_to == "tensorboard":
            if out_dir is None:
                raise ValueError("report_to='tensorboard' writes its event files under out_dir: give an out_dir")
            tracker = TensorBoardTracker(PROJECT, str(out_dir / TRACKER_DIR))
        else:  # WANDB_MODE=offline writes the run under out_dir/wandb/ without a network
            tracker = WandBTracker(PROJECT, **({"dir": str(out_dir)} if out_dir is not None else {}))
        self.accelerator.log_with = [tracker]
        self.accelerator.init_trackers(PROJECT, config=_hparams(config))

    def log(self, entry: dict[str, Any]) -> None:
        """One line of metrics.jsonl, flushed to disk, and the same values to the tracker."""
        if not self.is_main:
            return
        if self.path is not None:
            with self.path.open("a") as f:
                f.write(json.dumps(entry) + "\n")
                f.flush()
                os.fsync(f.fileno())
        if self.tracking:
            values = {f"train/{k}": v for k, v in entry.items() if k != "step" and isinstance(v, (int, float))}
            self.accelerator.log(values, step=entry["step"])

    def log_eval(self, metrics: dict[str, Any]) -> None:
        """An evaluation's numbers to the tracker (metrics.json keeps them all at the end)."""
        if self.tracking and self.is_main:
            values = {f"eval/{k}": v for k, v in metrics.items() if k != "step" and isinstance(v, (int, float))}
            self.accelerator.log(values, step=metrics["step"])

    def close(self) -> None:
        if self.tracking:
            self.accelerator.end_training()
            self.accelerator.log_with, self.tracking = [], False


def _keep_lines_up_to(path: Path, step: int) -> None:
    if not path.exists():
        return
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    kept = [line for line in lines if json.loads(line).get("step", 0) <= step]
    path.write_text("".join(line + "\n" for line in kept))


def read_log(out_dir: str | Path) -> list[dict[str, Any]]:
    """The lines of a run's metrics.jsonl so far (a notebook can plot a run that is still going)."""
    path = Path(out_dir) / LOG_FILE
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []
