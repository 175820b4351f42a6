"""Finding the first mistake in a trace, scored the way BIG-Bench Mistake scores it (chapter 9).

Tyen et al. (2024) count a prediction right when it names a trace's first mistaken step exactly, or says
"no mistake" of a trace without one, and report the accuracy over all traces of a task. A PRM predicts the
first step whose P(correct) falls below a threshold (``metrics.predicted_first_errors``); the threshold is
fitted on other traces than the ones it is measured on. ProcessBench's first-error F1 (``metrics``), which
weighs traces with and without a mistake equally, is given beside it, and every figure has a bootstrap
interval: a task's test split holds about 90 traces, so one trace moves the accuracy by about a point.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from .data import PRMSample
from .metrics import THRESHOLD_GRID, first_error_f1, paired_bootstrap, predicted_first_errors


@dataclass
class ScoredTraces:
    """A scorer's step probabilities for a set of traces, with the traces' true first mistakes (-1: none).
    ``probs[i]`` is None for a trace the scorer could not score at all (longer than its ``max_length``):
    such a trace counts as a miss, and ``n_unscored`` says how many there were."""

    probs: list[list[float] | None]
    first_errors: np.ndarray
    tasks: list[str] = field(default_factory=list)

    @property
    def n_unscored(self) -> int:
        return sum(p is None for p in self.probs)

    def predictions(self, thresholds: Sequence[float]) -> np.ndarray:
        """(traces, thresholds) predicted first mistakes, -1 for none and -2 for an unscored trace. Steps cut
        by ``max_length`` (NaN) are taken as not mistaken: the prediction is the first scored step below."""
        t = np.asarray(thresholds, dtype=np.float64)
        out = np.full((len(self.probs), t.size), -2, dtype=np.int64)
        for i, p in enumerate(self.probs):
            if p is not None:
                p = np.asarray(p, dtype=np.float64)
                out[i] = predicted_first_errors([np.nan_to_num(p, nan=1.0)], t)[0]
        return out

    def take(self, start: int, stop: int | None = None) -> "ScoredTraces":
        """The traces ``start:stop`` (e.g. the validation part of traces scored together with training ones)."""
        return ScoredTraces(self.probs[start:stop], self.first_errors[start:stop], self.tasks[start:stop])

    def best_accuracy(self, grid: Sequence[float] = THRESHOLD_GRID) -> float:
        """The accuracy at the threshold best for these very traces: an upper bound, not a measurement (the
        threshold is fitted on what it is measured on)."""
        return float(self.hits(grid).mean(axis=0).max())

    def hits(self, threshold: float | Sequence[float]) -> np.ndarray:
        """Whether each trace's prediction is right (traces,), or (traces, thresholds) for several."""
        many = np.ndim(threshold) > 0
        hit = self.predictions(np.atleast_1d(threshold)) == self.first_errors[:, None]
        return hit if many else hit[:, 0]


def score_traces(scorer: Any, samples: Sequence[PRMSample]) -> ScoredTraces:
    """Score whole traces with a PRM (anything with ``score_batch``, such as ``ProcessRewardModel``)."""
    with_nan = scorer.score_batch([(s.problem, s.steps) for s in samples])
    probs = [None if np.isnan(p).all() else list(p) for p in with_nan]
    return ScoredTraces(probs, np.array([s.first_error for s in samples], dtype=np.int64),
                        [s.meta.get("task", "") for s in samples])


def fit_threshold(traces: ScoredTraces, grid: Sequence[float] = THRESHOLD_GRID) -> float:
    """The threshold with the best accuracy on these (training or validation) traces; ties go to the one
    nearest 0.5."""
    acc = traces.hits(grid).mean(axis=0)
    best = np.flatnonzero(acc == acc.max())
    return float(np.asarray(grid)[best[np.argmin(np.abs(np.asarray(grid)[best] - 0.5))]])


def interval(values: np.ndarray, n_boot: int = 2000, seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """Bootstrap percentile interval of the mean of per-trace values (traces resampled)."""
    v = np.asarray(values, dtype=np.float64)
    lo, hi = paired_bootstrap(lambda idx: v[idx].mean(), v.size, n_boot, seed, level)
    return float(lo), float(hi)


def f1_of(hit: np.ndarray, first_errors: np.ndarray) -> float | None:
    """ProcessBench's first-error F1 from per-trace hits; None if the traces are all of one kind."""
    erroneous = np.asarray(first_errors) >= 0
    if erroneous.all() or not erroneous.any():
        return None
    return float(first_error_f1(np.asarray(hit), erroneous)[0])


def summary(hit: np.ndarray, first_errors: np.ndarray, n_boot: int = 2000, seed: int = 0) -> dict[str, Any]:
    """Accuracy (the paper's metric) and F1 in percent, each with its 95% bootstrap interval."""
    hit = np.asarray(hit, dtype=bool)
    truth = np.asarray(first_errors)
    lo, hi = interval(hit, n_boot, seed)
    out: dict[str, Any] = {"n": int(hit.size), "accuracy": 100 * float(hit.mean()), "low": 100 * lo, "high": 100 * hi}
    f1 = f1_of(hit, truth)
    out["f1"] = None if f1 is None else 100 * f1
    if f1 is not None:
        rng = np.random.default_rng(seed)
        boots = [f1_of(hit[idx], truth[idx]) for idx in (rng.integers(0, hit.size, hit.size) for _ in range(n_boot))]
        boots = [b for b in boots if b is not None]
        out["f1_low"], out["f1_high"] = (100 * float(q) for q in np.quantile(boots, [0.025, 0.975]))
    return out


def most_common_position(samples: Sequence[PRMSample]) -> int:
    """The first-mistake position seen most often in these (training) traces, -1 for "no mistake": the
    prediction of a reader who never looks at the trace, the floor any method has to clear. Ties go to the
    earliest position, "no mistake" first."""
    counts = Counter(s.first_error for s in samples)
    return max(counts, key=lambda k: (counts[k], -k))


def position_hits(position: int, samples: Sequence[PRMSample]) -> np.ndarray:
    """Whether naming ``position`` for every trace is right, trace by trace."""
    return np.array([s.first_error == position for s in samples], dtype=bool)
