"""How good is a PRM? Step AUROC, step accuracy, first-error accuracy and F1, calibration.

Chapters 5-7 of the course. All functions take plain Python/numpy data: per-
solution lists of step probabilities and of targets (1 correct, 0 incorrect),
so they work on any model's output. NaN probabilities (steps cut by
``max_length``) are left out and counted, never silently scored.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from .data import first_error


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
    # average 1-based rank of each distinct score: a tie group starting at position a with c members
    # covers ranks a + 1 .. a + c, whose mean is a + (c + 1) / 2
    _, group, counts = np.unique(s, return_inverse=True, return_counts=True)
    starts = np.cumsum(counts) - counts
    ranks = (starts + (counts + 1) / 2.0)[group.reshape(-1)]
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def auroc_or_missing(scores: Sequence[float], labels: Sequence[float], name: str) -> dict[str, Any]:
    """``{name: AUROC}``, or, where the labels hold one class only (a validation set with every step correct,
    or every wrong step cut by max_length), ``{name: None, name + "_missing": why}``: a run that evaluates on
    such a set records the gap and goes on, instead of stopping before it saves anything."""
    try:
        return {name: auroc(scores, labels)}
    except ValueError as err:
        if "both classes" not in str(err):
            raise
        return {name: None, f"{name}_missing": str(err)}


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


def auroc_by_error_kind(probs: Sequence[Sequence[float]], samples: Sequence[Any], kinds: Sequence[str]) -> dict[str, float]:
    """Which errors does a PRM see? For each kind, its first wrong steps against every correct step (AUROC).

    ``samples`` are ``PRMSample``s whose ``meta["error_kind"]`` names the planted error (chapter 3's
    generator). The extra entry ``"inherited (after the first error)"`` scores the wrong steps that
    only build on an earlier error. A kind with no wrong step in the data is left out.
    """
    if len(probs) != len(samples):
        raise ValueError(f"{len(probs)} scored solutions for {len(samples)} samples")
    correct = [p for pr, s in zip(probs, samples) for p, t in zip(pr, s.targets) if t == 1]
    first: dict[str, list[float]] = {kind: [] for kind in kinds}
    inherited: list[float] = []
    for pr, s in zip(probs, samples):
        if s.first_error < 0:
            continue
        if s.meta.get("error_kind") in first:
            first[s.meta["error_kind"]].append(pr[s.first_error])
        inherited.extend(p for p, t in zip(pr[s.first_error + 1:], s.targets[s.first_error + 1:]) if t == 0)
    groups = {**first, "inherited (after the first error)": inherited}
    return {kind: auroc(correct + wrong, [1] * len(correct) + [0] * len(wrong)) for kind, wrong in groups.items() if wrong}


def predicted_first_error(probs: Sequence[float], threshold: float = 0.5) -> int:
    """Index of the first step with P(correct) below ``threshold``, or -1 if none."""
    return first_error(probs, threshold)


def true_first_error(targets: Sequence[float]) -> int:
    """Index of the first step whose target is below 0.5 (``data.first_error``), or -1 if none."""
    return first_error(targets)


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
        **auroc_or_missing(p, y, "step_auroc"),
        "step_accuracy": float(((p >= threshold) == y).mean()),
        "first_error_accuracy": float(np.mean(first_hits)),
        "n_solutions": len(probs),
        "n_steps": int(len(p)),
        "n_unscored_steps": skipped,
    }


# -- ProcessBench-style first-error evaluation (chapter 7) ---------------------------------------
def predicted_first_errors(probs: Sequence[Sequence[float]], thresholds: Sequence[float]) -> np.ndarray:
    """(solutions, thresholds) array of predicted first errors, -1 for none, for many thresholds at once.

    The first step below t is the first place where the running minimum of the step
    probabilities drops below t; the running minimum never rises, so a binary search finds it.
    """
    t = np.asarray(thresholds, dtype=np.float64)
    out = np.empty((len(probs), t.size), dtype=np.int64)
    for i, p in enumerate(probs):
        p = np.asarray(p, dtype=np.float64)
        if p.size == 0:
            raise ValueError(f"solution {i} has no steps")
        if np.isnan(p).any():
            raise ValueError(f"solution {i} has unscored (NaN) steps; its first error cannot be predicted")
        running_min = np.minimum.accumulate(p)
        # number of steps whose running minimum is >= t = index of the first step below t
        k = p.size - np.searchsorted(running_min[::-1], t, side="left")
        out[i] = np.where(k < p.size, k, -1)
    return out


def first_error_scores(
    probs: Sequence[Sequence[float]],
    first_errors: Sequence[int],
    threshold: float | Sequence[float] = 0.5,
) -> dict[str, float]:
    """ProcessBench's metric: accuracy on erroneous solutions (exact first-error index), on correct
    ones (predicts no error), and F1, their harmonic mean. ``first_errors`` holds -1 for correct."""
    scores = _first_error_table(probs, first_errors, [float(threshold)])
    return {k: (float(v[0]) if isinstance(v, np.ndarray) else v) for k, v in scores.items()}


def first_error_f1(hit: np.ndarray, erroneous: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ProcessBench's F1 from each solution's hit (its predicted first error is the true one; shape (N,), or
    (N, T) for T thresholds) and whether it is erroneous (N,): (f1, acc_erroneous, acc_correct), F1 being
    the harmonic mean of the accuracies on erroneous and on correct solutions (0 where both are 0)."""
    acc_err, acc_ok = hit[erroneous].mean(axis=0), hit[~erroneous].mean(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.where(acc_err + acc_ok > 0, 2 * acc_err * acc_ok / (acc_err + acc_ok), 0.0)
    return f1, acc_err, acc_ok


def _first_error_table(probs, first_errors, thresholds) -> dict[str, Any]:
    truth = np.asarray(first_errors, dtype=np.int64)
    if len(probs) != truth.size:
        raise ValueError(f"{len(probs)} scored solutions for {truth.size} first-error labels")
    for i, (p, e) in enumerate(zip(probs, truth)):
        if not -1 <= e < len(p):
            raise ValueError(f"solution {i}: first error {e} is not -1 or a step index below {len(p)}")
    erroneous, correct = truth >= 0, truth < 0
    if truth.size == 0:
        raise ValueError("no scored solutions")
    pred = predicted_first_errors(probs, thresholds)
    counts = {"n": int(truth.size), "n_erroneous": int(erroneous.sum()), "n_correct": int(correct.sum())}
    t = np.asarray(thresholds, dtype=np.float64)
    if not erroneous.any() or not correct.any():  # one class: its accuracy is measurable, F1 is not
        hit = (pred == truth[:, None]).mean(axis=0)
        return {"f1": None, "acc_erroneous": hit if erroneous.any() else None,
                "acc_correct": hit if correct.any() else None, "threshold": t, **counts,
                "f1_missing": f"F1 needs erroneous and correct solutions; got {counts['n_erroneous']} erroneous and "
                              f"{counts['n_correct']} correct, so only the accuracy on the "
                              f"{'erroneous' if erroneous.any() else 'correct'} ones is measured"}
    f1, acc_err, acc_ok = first_error_f1(pred == truth[:, None], erroneous)
    return {"f1": f1, "acc_erroneous": acc_err, "acc_correct": acc_ok, "threshold": t, **counts}


THRESHOLD_GRID = tuple(round(0.005 * k, 3) for k in range(1, 200))  # 0.005 .. 0.995


def fit_threshold(
    probs: Sequence[Sequence[float]],
    first_errors: Sequence[int],
    grid: Sequence[float] = THRESHOLD_GRID,
) -> dict[str, float]:
    """The threshold with the best first-error F1 on these (validation) solutions, and its scores.

    Ties go to the threshold nearest 0.5. Fit on a validation split and report on a test split:
    fitting on the test data itself overstates F1 (ProcessBench fits on a validation set too).
    """
    table = _first_error_table(probs, first_errors, grid)
    if table["f1"] is None:  # on one class any threshold at an extreme is "best": nothing to fit
        raise ValueError(f"cannot fit a threshold: {table['f1_missing']}; give a threshold, or fit it on a "
                         "validation set that has both")
    f1 = table["f1"]
    best = np.flatnonzero(f1 == f1.max())
    j = best[np.argmin(np.abs(np.asarray(grid)[best] - 0.5))]
    return {k: (float(v[j]) if isinstance(v, np.ndarray) else v) for k, v in table.items()}


def calibration_bins(probs: Sequence[float], targets: Sequence[float], n_bins: int = 10) -> dict[str, Any]:
    """Reliability table: per equal-width probability bin, the mean prediction, the observed rate
    of correct steps and the count; plus the expected calibration error (count-weighted gap)."""
    p = np.asarray(probs, dtype=np.float64)
    y = (np.asarray(targets, dtype=np.float64) >= 0.5).astype(np.float64)
    if p.shape != y.shape or p.size == 0:
        raise ValueError(f"{p.size} probabilities for {y.size} targets")
    if np.isnan(p).any():
        raise ValueError("probabilities contain NaN; drop unscored steps first (see flatten_steps)")
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    which = np.clip(np.digitize(p, edges[1:-1]), 0, n_bins - 1)
    count = np.bincount(which, minlength=n_bins)
    with np.errstate(invalid="ignore"):
        mean_p = np.bincount(which, weights=p, minlength=n_bins) / count
        rate = np.bincount(which, weights=y, minlength=n_bins) / count
    filled = count > 0
    ece = float(np.sum(count[filled] * np.abs(mean_p[filled] - rate[filled])) / p.size)
    return {"edges": edges, "mean_prob": mean_p, "observed": rate, "count": count, "ece": ece}


# -- bootstrap intervals (chapters 4, 7, 8) ---------------------------------------------------------------
def paired_bootstrap(statistic: Callable[[np.ndarray], np.ndarray | float], n: int, n_boot: int = 1000,
                     seed: int = 0, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Percentile interval of ``statistic(indices)`` (a number or an array) over ``n_boot`` resamples of
    ``range(n)`` with replacement. A statistic that reads two models (or methods) on the same resampled
    indices gives the interval of their paired difference."""
    rng = np.random.default_rng(seed)
    values = np.array([statistic(rng.integers(0, n, size=n)) for _ in range(n_boot)])
    lo, hi = np.quantile(values, [(1 - level) / 2, (1 + level) / 2], axis=0)
    return lo, hi
