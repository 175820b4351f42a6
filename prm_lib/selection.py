"""Picking one answer from N candidates, and measuring how often the pick is right.

Chapter 7 of the course (chapter 8 reads search results with the same selectors).
Every method is a kind of ``select(kind, scores, answers, gold)``, one problem at a time:

* ``best``: the answer of the highest-scoring candidate (PRM best, ORM best).
* ``weighted_vote``: the answer whose candidates' scores sum highest (search-and-learn's
  weighted best-of-N).
* ``majority``: the most frequent answer (self-consistency), no verifier at all.
* ``pass``: the gold answer if any candidate has it; the oracle ceiling of every selector.

Ties go to the candidate or answer seen first, so a pick never depends on anything but the order
given. A candidate scored NaN (one ``PRMVerifier`` could not score whole: longer than the model's
``max_length``) is never picked and casts no weighted vote. ``select_best``, ``weighted_vote``, ``majority_vote`` and ``pass_at_n`` are the same picks
by name. Selection works on precomputed candidates (answers and scores, e.g. a
``PRMVerifier.score_grid``), so one scoring pass serves every N and every selector:
``best_of_n_accuracy`` draws subsets of N candidates, ``bootstrap_gap`` says whether one
method's lead over another holds up across problems.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from .answers import normalize_answer
from .metrics import paired_bootstrap

Scores = Sequence[float] | np.ndarray
Answers = Sequence[str | None]


def _best(scores: Scores, answers: Answers, gold: Any) -> str | None:
    values = np.asarray(scores, dtype=float)
    if not len(answers) or np.isnan(values).all():  # NaN: a candidate that could not be scored is never picked
        return None
    return answers[int(np.argmax(np.where(np.isnan(values), -np.inf, values)))]  # argmax: the first of equals


def _weighted_vote(scores: Scores, answers: Answers, gold: Any) -> str | None:
    totals: dict[str, float] = {}
    for s, a in zip(scores, answers):
        if a is not None and not np.isnan(s):  # a candidate without an answer (or a score) doesn't vote
            totals[a] = totals.get(a, 0.0) + float(s)
    return max(totals, key=totals.__getitem__) if totals else None  # first of equals: dicts keep order


def _majority(scores: Scores | None, answers: Answers, gold: Any) -> str | None:
    counts = Counter(a for a in answers if a is not None)
    return counts.most_common(1)[0][0] if counts else None  # the first to reach the top count


def _pass(scores: Scores | None, answers: Answers, gold: str | int) -> str | None:
    target = normalize_answer(str(gold))
    return target if target in list(answers) else None


# kind -> (pick, whether it reads scores)
SELECTORS: dict[str, tuple[Callable[..., str | None], bool]] = {
    "best": (_best, True),
    "weighted_vote": (_weighted_vote, True),
    "majority": (_majority, False),
    "pass": (_pass, False),
}


def select(kind: str, scores: Scores | None, answers: Answers, gold: str | int | None = None) -> str | None:
    """The answer that method ``kind`` picks from one problem's candidates (None if it picks none).

    ``scores`` (one per candidate) are read by ``best`` and ``weighted_vote`` and ignored by the
    others; ``gold`` is needed by ``pass`` only.
    """
    if kind not in SELECTORS:
        raise ValueError(f"unknown selector kind {kind!r}; known: {', '.join(SELECTORS)}")
    pick, reads_scores = SELECTORS[kind]
    if reads_scores:
        if scores is None:
            raise ValueError(f"selector {kind!r} needs a score per candidate")
        if len(scores) != len(answers):
            raise ValueError(f"{len(scores)} scores for {len(answers)} answers")
    if kind == "pass" and gold is None:
        raise ValueError("selector 'pass' needs the gold answer")
    return pick(scores, answers, gold)


def select_best(scores: Scores, answers: Answers) -> str | None:
    """The answer of the highest-scoring candidate (the first of equals)."""
    return select("best", scores, answers)


def weighted_vote(scores: Scores, answers: Answers) -> str | None:
    """The answer with the largest total score over its candidates; candidates without an answer don't vote."""
    return select("weighted_vote", scores, answers)


def majority_vote(answers: Answers) -> str | None:
    """The most frequent answer (the first to reach that count among equals); None if no candidate answers."""
    return select("majority", None, answers)


def pass_at_n(answers: Answers, gold: str | int) -> bool:
    """Oracle: is any candidate's answer the gold one?"""
    return select("pass", None, answers, gold) == normalize_answer(str(gold))


# -- best-of-N curves -------------------------------------------------------------------------
@dataclass
class Selector:
    """How a method picks an answer: ``kind`` is one of ``SELECTORS``; ``scores`` are per problem, per
    candidate (a (P, N) array, e.g. ``CandidateScores.scores``, or lists; None for majority and pass)."""

    kind: str
    scores: Sequence[Sequence[float]] | np.ndarray | None = None


def best_of_n_accuracy(
    answers: Sequence[Sequence[str | None]],
    gold: Sequence[str | int],
    selectors: Mapping[str, Selector],
    ns: Sequence[int],
    trials: int = 16,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Per method, a (problems, len(ns)) array: how often the answer picked from N candidates is right.

    For each problem and N, ``trials`` random subsets of N of its candidates are drawn (the same
    subsets for every method, so methods are compared on equal draws) and the hits averaged.
    """
    n_problems = len(answers)
    if len(gold) != n_problems:
        raise ValueError(f"{n_problems} candidate sets for {len(gold)} gold answers")
    for name, sel in selectors.items():
        if sel.kind not in SELECTORS:
            raise ValueError(f"{name}: unknown selector kind {sel.kind!r}")
        if SELECTORS[sel.kind][1]:
            if sel.scores is None or len(sel.scores) != n_problems:
                raise ValueError(f"{name}: needs scores for each of the {n_problems} problems")
            bad = [i for i, (s, a) in enumerate(zip(sel.scores, answers)) if len(s) != len(a)]
            if bad:
                raise ValueError(f"{name}: problem {bad[0]} has {len(sel.scores[bad[0]])} scores for {len(answers[bad[0]])} candidates")
    rng = np.random.default_rng(seed)
    out = {name: np.zeros((n_problems, len(ns))) for name in selectors}
    for p in range(n_problems):
        m = len(answers[p])
        target = normalize_answer(str(gold[p]))
        row = {name: None if sel.scores is None else np.asarray(sel.scores[p], dtype=np.float64)
               for name, sel in selectors.items()}
        for j, n in enumerate(ns):
            if not 1 <= n <= m:
                raise ValueError(f"N={n} but problem {p} has {m} candidates")
            for _ in range(trials):
                idx = rng.permutation(m)[:n]
                sub_answers = [answers[p][i] for i in idx]
                for name, sel in selectors.items():
                    scores = None if row[name] is None else row[name][idx]
                    out[name][p, j] += select(sel.kind, scores, sub_answers, gold[p]) == target
    return {name: acc / trials for name, acc in out.items()}


def bootstrap_curve(per_problem: np.ndarray, n_boot: int = 2000, seed: int = 0,
                    level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """(low, high) bootstrap bounds of the mean accuracy at each N, from a (problems, Ns) array of
    ``best_of_n_accuracy``: problems resampled, the same resamples for every N."""
    acc = np.asarray(per_problem, dtype=np.float64)
    if acc.ndim != 2 or acc.shape[0] == 0:
        raise ValueError(f"need a (problems, Ns) array with at least one problem, not shape {acc.shape}")
    low, high = paired_bootstrap(lambda idx: acc[idx].mean(axis=0), acc.shape[0], n_boot, seed, level)
    return low, high


def bootstrap_gap(a: Sequence[float], b: Sequence[float], n_boot: int = 2000, seed: int = 0, level: float = 0.95) -> dict[str, float]:
    """Mean of ``a - b`` over problems and a bootstrap confidence interval (problems resampled, paired)."""
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    if d.ndim != 1 or d.size == 0:
        raise ValueError("need two equal-length, non-empty per-problem sequences")
    lo, hi = paired_bootstrap(lambda idx: d[idx].mean(), d.size, n_boot, seed, level)
    return {"gap": float(d.mean()), "low": float(lo), "high": float(hi), "level": level, "n_problems": int(d.size)}
