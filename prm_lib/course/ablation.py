"""The loss variants of chapter 4, each trained once and measured on held-out solutions.

A loss is chosen for what it does to the trained model, not for its value on a batch:
losses of different objectives are not on one scale. ``LOSS_VARIANTS`` names the
variants, ``variant_config`` gives each one a ``TrainConfig`` that differs from the
others only in its loss settings, ``load_or_train`` (the zoo) trains each at most once,
and ``evaluate`` reads every model on the same validation and test sets
(``train.test_set``) with the measures the later chapters use:

* step AUROC over every step (chapter 5), and over the steps up to each solution's first error only
  (the steps that first-error labels such as PRM800K's and ProcessBench's mark);
* first-error F1 with the threshold fitted on validation (chapter 7, ProcessBench's metric);
* solution AUROC against "every step right", folding the steps with ``min`` and with
  ``last`` (chapter 6).

``gap_to`` puts a paired bootstrap interval (test solutions resampled) on each
difference from a reference variant, so a reader can tell a measured effect from noise.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import numpy as np

from ..aggregate import aggregate_many
from ..metrics import auroc, first_error_f1, fit_threshold, flatten_steps, paired_bootstrap, predicted_first_errors
from ..train import TrainConfig
from ..training_data import test_set
from ..zoo import load_or_train, preset

# The cpu preset (SmolLM2-135M cut to 8 layers, reading no surprise) at a quarter of its steps: five runs of it
# train in about 5 minutes on two CPU cores. Only the loss settings differ between the variants.
ABLATION_BASE = dataclasses.replace(preset("cpu"), max_steps=140, eval_every=70)

# name -> TrainConfig loss settings. pos_weight 0.5: about the ratio of incorrect to correct steps in the
# base config's training data (chapter 4 prints it: 0.50).
LOSS_VARIANTS: dict[str, dict[str, Any]] = {
    "BCE": {},
    "pos_weight 0.5": {"pos_weight": 0.5},
    "mask after first error": {"mask_after_first_error": True},
    "later steps 1 + 0.5 i": {"later_step_weight": 0.5},
    "BCE + 0.5 ranking": {"ranking_weight": 0.5},
}

MEASURES = ("step_auroc", "step_auroc_to_first_error", "first_error_f1", "solution_auroc_min", "solution_auroc_last")


def variant_config(variant: str, base: TrainConfig = ABLATION_BASE) -> tuple[str, TrainConfig]:
    """(zoo name, config) of one loss variant: ``base`` with that variant's loss settings."""
    if variant not in LOSS_VARIANTS:
        raise ValueError(f"unknown loss variant {variant!r}; known: {', '.join(LOSS_VARIANTS)}")
    slug = "-".join("".join(ch if ch.isalnum() or ch == "." else " " for ch in variant).split())
    return f"loss-{slug}", dataclasses.replace(base, **LOSS_VARIANTS[variant])


def evaluate(model: Any, test: Sequence[Any], validation: Sequence[Any]) -> dict[str, Any]:
    """The measures of one model on ``test``, with the first-error threshold fitted on ``validation``,
    and what ``gap_to`` needs to resample them (``per_solution``)."""
    fit = fit_threshold(model.score_batch([s.as_item() for s in validation]), [s.first_error for s in validation])
    per_solution = _per_solution(model.score_batch([s.as_item() for s in test]), test, fit["threshold"])
    return {**_measures(per_solution, np.arange(len(test))), "threshold": fit["threshold"], "per_solution": per_solution}


def _per_solution(probs: Sequence[Sequence[float]], test: Sequence[Any], threshold: float) -> dict[str, Any]:
    """Everything the measures read, per test solution, computed once so a bootstrap only indexes it."""
    p, t, unscored = flatten_steps(probs, [s.targets for s in test])
    if unscored:
        raise ValueError(f"{unscored} test steps were not scored (longer than the model's max_length)")
    truth = np.array([s.first_error for s in test])
    to_first_error = [i <= s.first_error or s.first_error < 0 for s in test for i in range(len(s.steps))]
    return {
        "step_probs": p, "step_targets": t, "to_first_error": np.array(to_first_error),
        "step_offsets": np.concatenate([[0], np.cumsum([len(x) for x in probs])]),
        "first_error_hit": predicted_first_errors(probs, [threshold])[:, 0] == truth,
        "erroneous": truth >= 0,
        "every_step_right": np.array([int(s.is_correct) for s in test]),
        "min": np.asarray(aggregate_many(probs, "min")), "last": np.asarray(aggregate_many(probs, "last")),
    }


def _measures(d: dict[str, Any], idx: np.ndarray) -> dict[str, float]:
    """The measures on the test solutions ``idx`` (a bootstrap resample, or all of them)."""
    off = d["step_offsets"]
    steps = np.concatenate([np.arange(off[i], off[i + 1]) for i in idx])
    first = steps[d["to_first_error"][steps]]
    f1 = first_error_f1(d["first_error_hit"][idx], d["erroneous"][idx])[0]
    return {
        "step_auroc": auroc(d["step_probs"][steps], d["step_targets"][steps]),
        "step_auroc_to_first_error": auroc(d["step_probs"][first], d["step_targets"][first]),
        "first_error_f1": float(f1),
        "solution_auroc_min": auroc(d["min"][idx], d["every_step_right"][idx]),
        "solution_auroc_last": auroc(d["last"][idx], d["every_step_right"][idx]),
    }


def gap_to(reference: dict[str, Any], other: dict[str, Any], n_boot: int = 1000, seed: int = 0) -> dict[str, dict[str, float]]:
    """Per measure: ``other - reference`` on the test set and its 95% paired bootstrap interval.

    Each model keeps the threshold it fitted on validation; only the test solutions are resampled."""
    a, b = reference["per_solution"], other["per_solution"]
    if len(a["every_step_right"]) != len(b["every_step_right"]):
        raise ValueError("the two models were evaluated on test sets of different sizes")

    def diff(idx: np.ndarray) -> np.ndarray:
        ma, mb = _measures(a, idx), _measures(b, idx)
        return np.array([mb[m] - ma[m] for m in MEASURES])

    # both models are read on the same resampled solutions: the interval is of their paired difference
    lo, hi = paired_bootstrap(diff, len(a["every_step_right"]), n_boot, seed)
    return {m: {"gap": float(other[m] - reference[m]), "low": float(lo[j]), "high": float(hi[j])}
            for j, m in enumerate(MEASURES)}


def run(variants: Sequence[str] = tuple(LOSS_VARIANTS), base: TrainConfig = ABLATION_BASE, n_test: int = 400,
        progress: bool = True) -> dict[str, dict[str, Any]]:
    """Train (or load from the zoo) every variant and evaluate it on the same held-out sets."""
    test, validation = test_set(base, n_test), test_set(base, n_test, split="validation")
    results = {}
    for v in variants:
        model, metrics = load_or_train(*variant_config(v, base), progress=progress)
        results[v] = {**evaluate(model, test, validation), "train_seconds": metrics.get("train_seconds")}
    return results
