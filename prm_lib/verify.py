"""Verification: score and rank whole solutions, and score N candidates per problem for best-of-N.

Chapter 7 of the course. ``PRMVerifier`` turns a PRM's step probabilities into
a solution score (any aggregation from ``prm_lib.aggregate``) and names the
weakest step; an ORM plugs into the same class and is read with ``aggregation="last"``,
because its one trained score sits on the final step (``prm_lib.objectives``).

Step probabilities stay a padded tensor with its mask (``StepScores``) from the model through
aggregation: ``score_grid`` scores P problems × N candidates in one batched pass and returns
(P, N) arrays of scores and answers, which the selectors of ``prm_lib.selection`` read.

Best-of-N selection and its statistics are ``prm_lib.selection``'s; ProcessBench evaluation is
``prm_lib.processbench``'s.
"""

from __future__ import annotations

import inspect
import math
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import torch

from .aggregate import AGGREGATIONS, StepScores, aggregate, pad_scores
from .answers import extract_final_answer
from .batching import TOO_LONG
from .objectives import objective_of

__all__ = ["PRMVerifier", "ScoredSolution", "CandidateScores"]


def _takes(function: Callable[..., Any], name: str) -> bool:
    """Whether ``function`` has a parameter ``name`` (a scorer from elsewhere may not)."""
    try:
        return name in inspect.signature(function).parameters
    except (TypeError, ValueError):
        return False


@dataclass
class ScoredSolution:
    """One solution as a verifier sees it."""

    index: int  # position among the solutions given
    steps: list[str]
    step_probs: list[float]
    score: float
    weakest_step: int  # 0-based index of the lowest-scoring step (-1 if no step could be scored)
    weakest_prob: float
    final_answer: str | None  # normalised (see prm_lib.answers)


@dataclass
class CandidateScores:
    """P problems × N candidates as best-of-N reads them (``PRMVerifier.score_grid``)."""

    scores: np.ndarray  # (P, N): each candidate's solution score under the verifier's aggregation
    answers: list[list[str | None]]  # (P, N): each candidate's normalised final answer
    steps: StepScores  # the P * N candidates' step probabilities, padded, row p * N + n
    verifier: PRMVerifier = field(repr=False)

    def aggregate(self, how: str) -> np.ndarray:
        """(P, N) scores of the same candidates under another aggregation, without scoring them again
        (the model's rule still holds: an ORM allows only ``last``)."""
        other = PRMVerifier(self.verifier.prm, how, self.verifier.decay)
        return other.solution_scores(self.steps).reshape(self.scores.shape)


class PRMVerifier:
    """Scores solutions with a ``ProcessRewardModel`` and an aggregation; ranks candidates.

    Identical (problem, steps) pairs are scored once: sampled candidates repeat a lot, and search asks again
    for what an earlier round, run or problem already scored. A verifier remembers the step scores of the last
    ``memo`` distinct pairs it scored (0: none) and forgets them all when the model's parameters change in place
    (an optimizer step); ``memo_stats`` counts what the memo saved.

    A solution that cannot be scored whole (longer than the model's ``max_length``: cut, or not even its first
    step fits) gets the score NaN, with a warning that names it, and the others are scored as usual; best-of-N
    never picks a NaN candidate (``prm_lib.selection``). ``too_long="error"`` refuses such a solution instead.

    ``aggregation`` defaults to ``min`` for a PRM and to the only one an ORM allows, ``last``:
    an ORM's other step scores were never trained, so any other aggregation is an error rather
    than a silently meaningless ranking.

    The model is anything with ``score_padded(items, progress=...)`` returning ``StepScores``
    (``ProcessRewardModel``, the adapters of ``prm_lib.scorers``, ``prm_lib.surprise.LikelihoodScorer``),
    or with only ``score_batch(items, progress=...)`` returning one list per item.
    """

    def __init__(self, prm: Any, aggregation: str | None = None, decay: float = 0.8, too_long: str = "skip",
                 memo: int = 65536) -> None:
        if memo < 0:
            raise ValueError(f"memo is how many scored solutions to remember (0: none), not {memo}")
        if too_long not in TOO_LONG:
            raise ValueError(f"too_long must be one of {', '.join(TOO_LONG)}, not {too_long!r}")
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
        self.prm, self.aggregation, self.decay, self.too_long = prm, aggregation, decay, too_long
        self.memo = memo
        self._memo: dict[tuple[str, tuple[str, ...]], tuple[torch.Tensor, torch.Tensor]] = {}
        self._memo_state: Any = None
        self._requested = self._scored_items = 0

    # -- the memo -----------------------------------------------------------------------------------
    @property
    def memo_stats(self) -> dict[str, float]:
        """Solutions asked for, solutions the model scored, and the share served without the model
        (duplicates within a call and solutions remembered from earlier calls)."""
        saved = 1 - self._scored_items / self._requested if self._requested else 0.0
        return {"requested": self._requested, "scored": self._scored_items, "hit_rate": saved, "remembered": len(self._memo)}

    def clear_memo(self) -> None:
        """Forget every remembered score (the counts stay)."""
        self._memo.clear()

    def _model_state(self) -> Any:
        """Changes whenever the model's parameters change in place: a memo of the old model's scores is stale."""
        parameters = getattr(self.prm, "parameters", None)
        if not callable(parameters):
            return None
        return (id(self.prm), tuple(getattr(p, "_version", 0) for p in parameters()))

    # -- step probabilities, padded ---------------------------------------------------------------
    def step_scores(self, items: Sequence[tuple[str, Sequence[str]]], progress: bool = False) -> StepScores:
        """P(step correct) for every step of every item as one padded (B, S) tensor and its mask;
        duplicates are scored once and copied back to each of their places."""
        keys = [(problem, tuple(steps)) for problem, steps in items]
        unique = list(dict.fromkeys(keys))
        if not unique:
            return StepScores(torch.zeros(0, 0, dtype=torch.float64), torch.zeros(0, 0, dtype=torch.bool))
        state = self._model_state()
        if state != self._memo_state:  # trained since (or another model): nothing remembered holds
            self._memo.clear()
            self._memo_state = state
        new = [k for k in unique if k not in self._memo]
        self._requested += len(keys)
        self._scored_items += len(new)
        rows = dict(self._rows(new, progress)) if new else {}
        if self.memo:
            for key, row in rows.items():
                self._memo[key] = row
            if len(self._memo) > self.memo:  # the oldest go first
                for stale in list(self._memo)[: len(self._memo) - self.memo]:
                    del self._memo[stale]
        probs, masks = zip(*(rows[k] if k in rows else self._memo[k] for k in keys))
        width = max(len(p) for p in probs)
        out = StepScores(torch.zeros(len(keys), width, dtype=torch.float64), torch.zeros(len(keys), width, dtype=torch.bool))
        for i, (p, m) in enumerate(zip(probs, masks)):
            out.probs[i, : len(p)] = p
            out.mask[i, : len(m)] = m
        return out

    def _rows(self, keys: list[tuple[str, tuple[str, ...]]], progress: bool) -> list[tuple[Any, tuple[torch.Tensor, torch.Tensor]]]:
        """The model's step scores of ``keys`` in one batched pass, one (probs, mask) row per key, cut to its
        steps."""
        batch = [(p, list(s)) for p, s in keys]
        if hasattr(self.prm, "score_padded"):
            kwargs = {"too_long": self.too_long} if _takes(self.prm.score_padded, "too_long") else {}
            scored = self.prm.score_padded(batch, progress=progress, **kwargs)
        else:  # any model with the list-of-lists score_batch plugs in too
            scored = pad_scores(self.prm.score_batch(batch, progress=progress))
        probs, mask = scored.probs.detach().to("cpu", torch.float64), scored.mask.detach().to("cpu")
        return [(k, (probs[i, : max(len(k[1]), 1)].clone(), mask[i, : max(len(k[1]), 1)].clone()))
                for i, k in enumerate(keys)]

    def step_probabilities(self, items: Sequence[tuple[str, Sequence[str]]], progress: bool = False) -> list[list[float]]:
        """``step_scores`` as one list per item; duplicates are scored once."""
        return self.step_scores(items, progress).rows()

    def solution_scores(self, steps: StepScores) -> np.ndarray:
        """One score per solution (B,) from padded step probabilities, by this verifier's aggregation; NaN for
        a solution with an unscored step (cut by max_length), named in a warning (``too_long="error"``: raised)."""
        if len(steps.probs) == 0:
            return np.zeros(0)
        whole = ~(torch.isnan(steps.probs) & steps.mask).any(dim=1) & steps.mask.any(dim=1)
        if bool(whole.all()):
            return aggregate(steps.probs, steps.mask, self.aggregation, self.decay).numpy()
        partial = (~whole).nonzero().flatten().tolist()
        message = (f"{len(partial)} of {len(whole)} solutions are longer than the model's max_length (solution(s) "
                   f"{partial[:10]}{', ...' if len(partial) > 10 else ''}): a solution scored in part cannot be "
                   "ranked as if it were whole")
        if self.too_long == "error":
            raise ValueError(message)
        warnings.warn(message + "; they score NaN and are never picked", stacklevel=2)
        out = np.full(len(whole), np.nan)
        if bool(whole.any()):
            out[whole.numpy()] = aggregate(steps.probs[whole], steps.mask[whole], self.aggregation, self.decay).numpy()
        return out

    # -- P problems × N candidates --------------------------------------------------------------
    def score_grid(self, problems: Sequence[str], candidates: Sequence[Sequence[Sequence[str]]],
                   progress: bool = False) -> CandidateScores:
        """Score N candidate solutions (lists of steps) for each of P problems in one batched pass
        (identical solutions once) and return (P, N) scores and answers, ready for ``prm_lib.selection``."""
        if len(problems) != len(candidates):
            raise ValueError(f"{len(problems)} problems but candidates for {len(candidates)}")
        sizes = sorted({len(c) for c in candidates})
        if len(sizes) > 1:
            raise ValueError(f"every problem needs the same number of candidates for a (P, N) grid; got {sizes}")
        shape = (len(problems), sizes[0] if sizes else 0)
        steps = self.step_scores([(p, c) for p, cands in zip(problems, candidates) for c in cands], progress)
        answers = [[extract_final_answer(list(c)) for c in cands] for cands in candidates]
        return CandidateScores(self.solution_scores(steps).reshape(shape), answers, steps, self)

    # -- solutions one by one: scores, weakest steps, ranking -------------------------------------------
    def score_solutions(self, items: Sequence[tuple[str, Sequence[str]]], progress: bool = False) -> list[ScoredSolution]:
        if not items:
            return []
        return self._scored([steps for _, steps in items], self.step_scores(items, progress))

    def _scored(self, solutions: Sequence[Sequence[str]], steps: StepScores) -> list[ScoredSolution]:
        out = []
        for i, (sol, probs, score) in enumerate(zip(solutions, steps.rows(), self.solution_scores(steps).tolist())):
            scored = [p for p in probs if not math.isnan(p)]
            weakest = probs.index(min(scored)) if scored else -1  # -1: no step could be scored
            out.append(ScoredSolution(i, list(sol), probs, float(score), weakest,
                                      float(probs[weakest]) if scored else math.nan,
                                      extract_final_answer(list(sol))))
        return out

    def score_solution(self, problem: str, steps: Sequence[str]) -> ScoredSolution:
        """Step probabilities, the solution's score and its weakest step."""
        return self.score_solutions([(problem, steps)])[0]

    def rank_solutions(self, problem: str, solutions: Sequence[Sequence[str]]) -> list[ScoredSolution]:
        """The solutions, best first (ties keep the given order); ``.index`` says where each came from."""
        scored = self.score_solutions([(problem, s) for s in solutions])
        return sorted(scored, key=lambda s: -s.score if not math.isnan(s.score) else math.inf)  # NaN: last
