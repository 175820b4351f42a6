"""Chapter 9's further runs (``prm_lib.course.real_data_runs``), measured as the chapter measures ``cpu-real``.

    python benchmarks/real_data_runs.py                       # every run: about 75 min on 2 CPU cores
    python benchmarks/real_data_runs.py --run cpu-real-surprise

Each run trains once (the zoo caches it), then is read on the test traces of BIG-Bench Mistake's human-labelled
tasks with the paper's first-mistake accuracy and first-error F1, each with a 95% bootstrap interval, and a
paired bootstrap of its difference from ``cpu-real`` (read in the same process) on the same traces:

* a run with ``cpu-real``'s data and one setting changed: each task's threshold fitted on that task's
  training and validation traces, as the chapter fits ``cpu-real``'s;
* a run trained without a task: only that task is read, at the threshold fitted on the validation traces of
  the tasks it trained on (nothing of the left-out task is seen before its test traces).

One JSON line per run goes to ``results/cpu_real_data_runs.jsonl`` (a run measured again replaces its line), and
to standard output.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

from prm_lib import first_mistake as fm
from prm_lib.course.real_data_runs import BASE, LEFT_OUT, RUNS, changed_settings, run_config
from prm_lib.datasets import HUMAN_LABELLED, shipped
from prm_lib.selection import bootstrap_gap
from prm_lib.zoo import load_or_train

OUT = Path(__file__).parent / "results" / "cpu_real_data_runs.jsonl"


def measured(model, task: str, fit_samples) -> dict:
    """The chapter's measures of ``model`` on ``task``'s test traces, at the threshold fitted on ``fit_samples``."""
    fit = fm.score_traces(model, fit_samples)
    test = fm.score_traces(model, shipped(task, "test"))
    threshold = fm.fit_threshold(fit)
    hits = test.hits(threshold)
    return {"threshold": threshold, "hits": hits, **fm.summary(hits, test.first_errors),
            "best_threshold_accuracy": 100 * test.best_accuracy(), "n_unscored": test.n_unscored}


def in_domain(model, task: str) -> dict:
    return measured(model, task, shipped(task, "train") + shipped(task, "validation"))


def gap(a: np.ndarray, b: np.ndarray) -> list[float]:
    g = bootstrap_gap(a.astype(float), b.astype(float))
    return [100 * g["gap"], 100 * g["low"], 100 * g["high"]]


def write(lines: list[dict]) -> None:
    """Each run's line into OUT, replacing an earlier line of the same run, in the order of RUNS."""
    kept = {}
    if OUT.exists():
        kept = {json.loads(l)["run"]: l for l in OUT.read_text().splitlines() if l.strip()}
    for l in lines:
        kept[l["run"]] = json.dumps(l)
    OUT.write_text("".join(kept[name] + "\n" for name in [BASE, *RUNS] if name in kept))


def line(name: str, metrics: dict, tasks: dict, base_hits: dict) -> dict:
    changed = {k: [v.get("sets", v) if isinstance(v, dict) else v for v in pair]
               for k, pair in changed_settings(name).items()} if name != BASE else {}
    out = {"run": name, "changed": changed,
           "train_seconds": metrics["train_seconds"], "setup_seconds": metrics.get("setup_seconds"),
           "step_auroc": metrics["final"]["step_auroc"], "n_train": metrics["data"]["n_train"],
           "machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads",
           "date": time.strftime("%Y-%m-%d"),
           "command": "python benchmarks/real_data_runs.py --run " + name, "tasks": {}}
    for task, r in tasks.items():
        hits = r.pop("hits")
        out["tasks"][task] = {**r, "minus_cpu_real": gap(hits, base_hits[task])} if name != BASE else r
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", nargs="+", choices=list(RUNS), default=list(RUNS))
    args = parser.parse_args(argv)
    start = time.perf_counter()
    base, base_metrics = load_or_train(BASE)
    base_tasks = {task: in_domain(base, task) for task in HUMAN_LABELLED}
    base_hits = {task: r["hits"] for task, r in base_tasks.items()}
    lines = [line(BASE, base_metrics, base_tasks, dict(base_hits))]
    print(json.dumps(lines[0]), flush=True)
    for name in args.run:
        model, metrics = load_or_train(*run_config(name))
        left_out = next((task for task, run in LEFT_OUT.items() if run == name), None)
        if left_out is None:
            tasks = {task: in_domain(model, task) for task in HUMAN_LABELLED}
        else:
            trained_on = RUNS[name].data.sets
            tasks = {left_out: measured(model, left_out, [s for t in trained_on for s in shipped(t, "validation")])}
        lines.append(line(name, metrics, tasks, base_hits))
        print(json.dumps(lines[-1]), flush=True)
        write(lines)  # after each run: an interrupted benchmark keeps what it measured
        del model
    print(f"{len(lines)} runs measured in {(time.perf_counter() - start) / 60:.1f} min; written to {OUT}",
          file=sys.stderr)


if __name__ == "__main__":
    main()
