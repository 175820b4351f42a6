"""How good is a PRM? Step AUROC, step accuracy, first-error accuracy.

Chapters 5-7 of the course. All functions take plain Python/numpy data: per-
solution lists of step probabilities and of targets (1 correct, 0 incorrect),
so they work on any model's output. NaN probabilities (steps cut by
``max_length``) are left out and counted, never silently scored.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


def auroc(scores: Sequence[float], labels: Sequence[float]) -> float:
    """Area under the ROC curve: P(a random positive scores above a random negative), ties count half.

    Computed from average ranks (the Mann-Whitney U statistic), O(n log n).
    """
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64) >= 0.5
    if s.shape != y.shape:
        raise ValueError(f"{s.size} scores for {y.size} labels")
    if np.isnan(s).any():
        raise ValueError("scores contain NaN; drop unscored steps first (see flatten_steps)")
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError(f"AUROC needs both classes; got {n_pos} positive and {n_neg} negative")
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s), dtype=np.float64)
    sorted_s = s[order]
    # average rank within ties
    boundaries = np.flatnonzero(np.diff(sorted_s)) + 1
    starts = np.concatenate([[0], boundaries])
    ends = np.concatenate([boundaries, [len(s)]])
    for a, b in zip(starts, ends):
        ranks[order[a:b]] = (a + b + 1) / 2.0  # ranks are 1-based
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def flatten_steps(probs: Sequence[Sequence[float]], targets: Sequence[Sequence[float]]) -> tuple[np.ndarray, np.ndarray, int]:
    """All scored steps of all solutions as flat arrays, and how many unscored (NaN) steps were left out."""
    if len(probs) != len(targets):
        raise ValueError(f"{len(probs)} scored solutions for {len(targets)} labelled ones")
    p_all, t_all, skipped = [], [], 0
    for i, (p, t) in enumerate(zip(probs, targets)):
        if len(p) != len(t):
            raise ValueError(f"solution {i}: {len(p)} scores for {len(t)} labels")
        for a, b in zip(p, t):
            if np.isnan(a):
                skipped += 1
            else:
                p_all.append(a)
                t_all.append(b)
    return np.asarray(p_all), np.asarray(t_all), skipped


def predicted_first_error(probs: Sequence[float], threshold: float = 0.5) -> int:
    """Index of the first step with P(correct) below ``threshold``, or -1 if none."""
    for i, p in enumerate(probs):
        if p < threshold:
            return i
    return -1


def true_first_error(targets: Sequence[float]) -> int:
    for i, t in enumerate(targets):
        if t < 0.5:
            return i
    return -1


def step_metrics(
    probs: Sequence[Sequence[float]],
    targets: Sequence[Sequence[float]],
    threshold: float = 0.5,
) -> dict[str, float]:
    """Step AUROC, step accuracy at ``threshold``, and first-error accuracy (exact index, -1 for none)."""
    p, t, skipped = flatten_steps(probs, targets)
    y = t >= 0.5
    first_hits = [
        predicted_first_error(pi, threshold) == true_first_error(ti) for pi, ti in zip(probs, targets)
    ]
    return {
        "step_auroc": auroc(p, y),
        "step_accuracy": float(((p >= threshold) == y).mean()),
        "first_error_accuracy": float(np.mean(first_hits)),
        "n_solutions": len(probs),
        "n_steps": int(len(p)),
        "n_unscored_steps": skipped,
    }
