"""Chapter 9's further runs on BIG-Bench Mistake: what transfers between tasks, and what would lift ``cpu-real``.

Each run is the ``cpu-real`` preset with one thing changed, so a difference from it is that change's:

* ``cpu-real-without-<task>``, one a human-labelled task: trained on the other tasks (Dyck languages included),
  measured on the left-out task's test traces, the way Tyen et al. (2024, Table 7) trained PaLM 2 Otter on four
  tasks and read it on the fifth. Its threshold is fitted on the validation traces of the tasks it trained on:
  nothing of the left-out task is seen before its test traces are read.
* ``cpu-real-surprise``: reading the whole frozen SmolLM2-135M's per-token surprise (chapter 5's reader).
* ``cpu-real-whole``: the whole backbone, all 30 layers, instead of its first 8.
* ``cpu-real-180-steps``: twice the optimizer steps (about two passes over the training traces).

``benchmarks/real_data_runs.py`` trains them (each once, cached by the zoo) and records what the chapter shows.
"""

from __future__ import annotations

import dataclasses

from ..datasets import HUMAN_LABELLED, TASKS
from ..train import TrainConfig
from ..training_data import ShippedData
from ..zoo import preset

BASE = "cpu-real"


def left_out_name(task: str) -> str:
    """The zoo name of the run trained without ``task``."""
    return f"{BASE}-without-{task}"


def _runs() -> dict[str, TrainConfig]:
    base = preset(BASE)
    runs = {left_out_name(task): dataclasses.replace(base, data=ShippedData(tuple(t for t in TASKS if t != task)))
            for task in HUMAN_LABELLED}
    steps = 2 * base.max_steps
    runs[f"{BASE}-surprise"] = dataclasses.replace(base, surprise=True)
    runs[f"{BASE}-{steps}-steps"] = dataclasses.replace(base, max_steps=steps, eval_every=steps)
    runs[f"{BASE}-whole"] = dataclasses.replace(base, n_layers=None)
    return runs


# name -> config, in the order the benchmark trains them
RUNS: dict[str, TrainConfig] = _runs()
LEFT_OUT = {task: left_out_name(task) for task in HUMAN_LABELLED}
# the in-domain runs: same data as cpu-real, one setting changed
CHANGED = tuple(name for name in RUNS if name not in LEFT_OUT.values())


def run_config(name: str) -> tuple[str, TrainConfig]:
    """(zoo name, config) of one run, for ``load_or_train(*run_config(name))``."""
    if name not in RUNS:
        raise ValueError(f"unknown chapter 9 run {name!r}; known: {', '.join(RUNS)}")
    return name, dataclasses.replace(RUNS[name])


def changed_settings(name: str) -> dict[str, tuple[object, object]]:
    """What a run changes of ``cpu-real``: setting -> (cpu-real's value, the run's)."""
    base, run = preset(BASE).to_dict(), run_config(name)[1].to_dict()
    return {k: (base[k], run[k]) for k in run if run[k] != base.get(k)}
