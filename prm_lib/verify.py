"""Verification: score and rank whole solutions, and pick one of N candidates.

Chapter 7 of the course. ``PRMVerifier`` turns a PRM's step probabilities into
a solution score (any aggregation from ``prm_lib.aggregate``) and names the
weakest step; an ORM plugs into the same class and is read with ``aggregation="last"``,
because its one trained score sits on the final step (``prm_lib.objectives``).

Best-of-N selection works on precomputed candidates (final answers and scores),
so one scoring pass serves every N and every selector:

* ``select_best``: the answer of the highest-scoring candidate (PRM best, ORM best).
* ``weighted_vote``: the answer whose candidates' scores sum highest (search-and-learn's
  weighted best-of-N).
* ``majority_vote``: the most frequent answer (self-consistency), no verifier at all.
* ``pass_at_n``: whether any candidate is right; the oracle ceiling of every selector.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from .aggregate import AGGREGATIONS, aggregate_many
from .answers import extract_final_answer, normalize_answer
from .objectives import objective_of


@dataclass
class ScoredSolution:
    """One solution as a verifier sees it."""

    index: int  # position among the solutions given
    steps: list[str]
    step_probs: list[float]
    score: float
    weakest_step: int  # 0-based index of the lowest-scoring step
    weakest_prob: float
    final_answer: str | None  # normalised (see prm_lib.answers)


class PRMVerifier:
    """Scores solutions with a ``ProcessRewardModel`` and an aggregation; ranks candidates.

    Identical (problem, steps) pairs are scored once: sampled candidates repeat a lot.

    ``aggregation`` defaults to ``min`` for a PRM and to the only one an ORM allows, ``last``:
    an ORM's other step scores were never trained, so any other aggregation is an error rather
    than a silently meaningless ranking.
    """

    def __init__(self, prm: Any, aggregation: str | None = None, decay: float = 0.8) -> None:
        kind = objective_of(prm)
        required = kind.aggregation
        if aggregation is None:
            aggregation = required or "min"
        if aggregation not in AGGREGATIONS:
            raise ValueError(f"unknown aggregation {aggregation!r}; known: {', '.join(AGGREGATIONS)}")
        if required is not None and aggregation != required:
            raise ValueError(f"this model is an {kind.name.upper()}: only its {required} step's score was trained, "
                             f"so aggregation {aggregation!r} would rank solutions by untrained scores; "
                             f"use aggregation={required!r} (the default for it)")
        self.prm, self.aggregation, self.decay = prm, aggregation, decay

    def step_probabilities(self, items: Sequence[tuple[str, Sequence[str]]], progress: bool = False) -> list[list[float]]:
        """P(step correct) for every step of every item; duplicates are scored once."""
        keys = [(problem, tuple(steps)) for problem, steps in items]
        unique = list(dict.fromkeys(keys))
        probs = self.prm.score_batch([(p, list(s)) for p, s in unique], progress=progress)
        by_key = dict(zip(unique, probs))
        return [list(by_key[k]) for k in keys]

    def score_solutions(self, items: Sequence[tuple[str, Sequence[str]]], progress: bool = False) -> list[ScoredSolution]:
        step_probs = self.step_probabilities(items, progress)
        return self.from_step_probabilities([steps for _, steps in items], step_probs)

    def from_step_probabilities(self, solutions: Sequence[Sequence[str]], step_probs: Sequence[Sequence[float]]) -> list[ScoredSolution]:
        """Aggregate already-computed step probabilities (e.g. from ``step_probabilities``); none in, none out
        (a sampler that returned nothing has nothing to rank)."""
        if not solutions:
            return []
        scores = aggregate_many(step_probs, self.aggregation, self.decay)
        out = []
        for i, (steps, probs, score) in enumerate(zip(solutions, step_probs, scores)):
            weakest = int(np.argmin(probs))
            out.append(ScoredSolution(i, list(steps), list(probs), float(score), weakest, float(probs[weakest]),
                                      extract_final_answer(list(steps))))
        return out

    def score_solution(self, problem: str, steps: Sequence[str]) -> ScoredSolution:
        """Step probabilities, the solution's score and its weakest step."""
        return self.score_solutions([(problem, steps)])[0]

    def rank_solutions(self, problem: str, solutions: Sequence[Sequence[str]]) -> list[ScoredSolution]:
        """The solutions, best first (ties keep the given order); ``.index`` says where each came from."""
        scored = self.score_solutions([(problem, s) for s in solutions])
        return sorted(scored, key=lambda s: -s.score)


# -- selectors: one problem, N candidates ---------------------------------------------------------
def select_best(scores: Sequence[float], answers: Sequence[str | None]) -> str | None:
    """The answer of the highest-scoring candidate (the first of equals)."""
    if len(scores) != len(answers):
        raise ValueError(f"{len(scores)} scores for {len(answers)} answers")
    if not scores:
        return None
    return answers[int(np.argmax(scores))]


def weighted_vote(scores: Sequence[float], answers: Sequence[str | None]) -> str | None:
    """The answer with the largest total score over its candidates; candidates without an answer don't vote."""
    if len(scores) != len(answers):
        raise ValueError(f"{len(scores)} scores for {len(answers)} answers")
    totals: dict[str, float] = {}
    for s, a in zip(scores, answers):
        if a is not None:
            totals[a] = totals.get(a, 0.0) + float(s)
    return max(totals, key=totals.__getitem__) if totals else None  # first of equals: dicts keep order


def majority_vote(answers: Sequence[str | None]) -> str | None:
    """The most frequent answer (the first to reach that count among equals); None if no candidate answers."""
    counts = Counter(a for a in answers if a is not None)
    return counts.most_common(1)[0][0] if counts else None


def pass_at_n(answers: Sequence[str | None], gold: str | int) -> bool:
    """Oracle: is any candidate's answer the gold one?"""
    target = normalize_answer(str(gold))
    return any(a == target for a in answers)


# -- best-of-N curves -------------------------------------------------------------------------
@dataclass
class Selector:
    """How a method picks an answer: ``kind`` is best, weighted_vote, majority or pass; ``scores``
    are per problem, per candidate (None for majority and pass)."""

    kind: str
    scores: Sequence[Sequence[float]] | None = None


_PICK: dict[str, Callable[..., Any]] = {"best": select_best, "weighted_vote": weighted_vote}


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
        if sel.kind not in ("best", "weighted_vote", "majority", "pass"):
            raise ValueError(f"{name}: unknown selector kind {sel.kind!r}")
        if sel.kind in _PICK:
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
        for j, n in enumerate(ns):
            if not 1 <= n <= m:
                raise ValueError(f"N={n} but problem {p} has {m} candidates")
            for _ in range(trials):
                idx = rng.permutation(m)[:n]
                sub_answers = [answers[p][i] for i in idx]
                for name, sel in selectors.items():
                    if sel.kind == "majority":
                        hit = majority_vote(sub_answers) == target
                    elif sel.kind == "pass":
                        hit = target in sub_answers
                    else:
                        hit = _PICK[sel.kind]([sel.scores[p][i] for i in idx], sub_answers) == target
                    out[name][p, j] += hit
    return {name: acc / trials for name, acc in out.items()}


def bootstrap_gap(a: Sequence[float], b: Sequence[float], n_boot: int = 2000, seed: int = 0, level: float = 0.95) -> dict[str, float]:
    """Mean of ``a - b`` over problems and a bootstrap confidence interval (problems resampled, paired)."""
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    if d.ndim != 1 or d.size == 0:
        raise ValueError("need two equal-length, non-empty per-problem sequences")
    rng = np.random.default_rng(seed)
    means = d[rng.integers(0, d.size, size=(n_boot, d.size))].mean(axis=1)
    lo, hi = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return {"gap": float(d.mean()), "low": float(lo), "high": float(hi), "level": level, "n_problems": int(d.size)}


# -- ProcessBench-style evaluation of a checkpoint (``python -m prm_lib eval``) ----------------------
def evaluate_processbench(
    prm: Any,
    path: str,
    threshold: float | None = None,
    fit_path: str | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """First-error F1 of ``prm`` on a ProcessBench-style jsonl file (``problem``, ``steps``, ``label``).

    The threshold is ``threshold`` if given, else fitted for F1 on ``fit_path`` (a validation
    file), else on the evaluated file itself, which overstates F1, and the result says so.
    Records that cannot be scored (malformed, a step the model cannot encode, longer than the
    model's ``max_length``) are left out, counted and listed in ``skipped``, never dropped silently.
    A model whose objective scores only whole solutions (an ORM) is refused: first-error F1 reads
    every step's score, and an ORM's are untrained below its last step.
    """
    kind = objective_of(prm)
    if not kind.scores_steps:
        raise ValueError(f"this checkpoint is an {kind.name.upper()} (trained on one outcome label per solution, "
                         "read at its last step): first-error F1 needs a trained score for every step, which it "
                         "does not have. Evaluate a PRM checkpoint instead, or compare the ORM on whole solutions "
                         "(PRMVerifier(orm, 'last'), best-of-N; chapter 7)")
    import warnings

    from .data import read_processbench
    from .metrics import first_error_scores, fit_threshold
    from .steps import validate_solution

    def scored(file: str) -> tuple[list[list[float]], list[int], list[dict[str, str]], int]:
        skipped: list[tuple[str, str]] = []
        samples = read_processbench(file, skipped=skipped)
        n_records = len(samples) + len(skipped)
        usable = []
        for s in samples:
            try:
                validate_solution(s.problem, s.steps, None, prm.separator)
                usable.append(s)
            except (ValueError, TypeError) as err:
                skipped.append((f"{file}:{s.meta['source_line']}", str(err)))
        with warnings.catch_warnings():  # an over-long record is reported in `skipped` instead
            warnings.simplefilter("ignore")
            encoded = prm.encode([s.as_item() for s in usable]) if usable else []
        kept = []
        for s, e in zip(usable, encoded):
            if e.truncated:
                skipped.append((f"{file}:{s.meta['source_line']}", f"longer than the model's max_length "
                                f"({prm.max_length} tokens): only {e.n_scored} of {e.n_steps} steps fit"))
            else:
                kept.append((s, e))
        probs = prm.score_encoded([e for _, e in kept], progress=progress) if kept else []
        skipped.sort(key=lambda x: int(x[0].rsplit(":", 1)[1]))
        return probs, [s.first_error for s, _ in kept], [{"where": w, "reason": r} for w, r in skipped], n_records

    probs, first_errors, skipped, n_records = scored(path)
    if not probs:
        raise ValueError(f"{path}: no record could be scored ({len(skipped)} skipped; first: "
                         f"{skipped[0]['reason'] if skipped else 'the file is empty'})")
    if threshold is not None:
        result = first_error_scores(probs, first_errors, threshold)
        fitted_on = None
    elif fit_path is not None:
        fit_probs, fit_errors, fit_skipped, _ = scored(fit_path)
        if not fit_probs:
            raise ValueError(f"{fit_path}: no record could be scored to fit a threshold")
        result = first_error_scores(probs, first_errors, fit_threshold(fit_probs, fit_errors)["threshold"])
        fitted_on = fit_path
        result["n_skipped_fit"] = len(fit_skipped)
    else:
        result = fit_threshold(probs, first_errors)
        fitted_on = path
    result.update(threshold_fitted_on=fitted_on, n_records=n_records, n_skipped=len(skipped), skipped=skipped)
    return result
