"""From step scores to one solution score: min, prod, last, mean, weighted mean, geometric mean.

Chapter 6 of the course. A verifier ranks whole solutions, so the PRM's per-step
probabilities must be folded into one number, and the fold is a modelling choice:

* ``min``: a solution is as good as its weakest step (Math-Shepherd, Wang et al. 2023).
* ``prod``: the probability that every step is right, if steps erred independently
  (Let's Verify Step by Step, Lightman et al. 2023); it falls with length, so long
  solutions lose to short ones.
* ``last``: the score of the final step, which under the "everything after the first
  error is wrong" labelling already estimates whether the solution holds up.
* ``mean``: forgiving; one bad step among many barely moves it.
* ``weighted_mean``: step ``i`` weighs ``decay ** i``, so early steps, whose errors
  every later step inherits, count more (``decay > 1`` reverses that).
* ``geometric_mean``: ``prod`` without the length penalty.

Everything works on padded batches: ``probs`` of shape (B, S) with a boolean
``mask`` of the real steps (``StepScores``), as ``ProcessRewardModel.score_padded`` and
``PRMVerifier.step_scores`` produce them. The list-of-lists helpers
(``aggregate_many``, ``aggregate_one``) pad and call the same ``aggregate``.
"""

from __future__ import annotations

import math
import sys
from typing import NamedTuple, Sequence

import torch

from .modules import CallableModule

AGGREGATIONS = ("min", "prod", "last", "mean", "weighted_mean", "geometric_mean")
_EPS = 1e-12  # log(0) guard for prod and geometric_mean


class StepScores(NamedTuple):
    """Step probabilities of B solutions kept padded, so scoring, aggregation and selection never go
    through ragged lists: ``probs`` (B, S) and ``mask`` (B, S), True at each solution's steps.
    A tuple, so ``probs, mask = scores`` and ``aggregate(*scores, how)`` work."""

    probs: torch.Tensor
    mask: torch.Tensor

    def rows(self) -> list[list[float]]:
        """One list per solution of its masked-in probabilities: the list-of-lists form."""
        return [[p for p, m in zip(probs, mask) if m] for probs, mask in zip(self.probs.tolist(), self.mask.tolist())]

    def take(self, index: Sequence[int] | torch.Tensor) -> "StepScores":
        """The rows at ``index``, in its order (repeats allowed): how duplicates scored once are spread back."""
        index = torch.as_tensor(index, dtype=torch.long)
        return StepScores(self.probs[index], self.mask[index])


def _check(probs: torch.Tensor, mask: torch.Tensor) -> None:
    if probs.shape != mask.shape or probs.dim() != 2:
        raise ValueError(f"probs and mask must both be (batch, steps); got {tuple(probs.shape)} and {tuple(mask.shape)}")
    empty = (~mask).all(dim=1)
    if empty.any():
        raise ValueError(f"solution(s) {empty.nonzero().flatten().tolist()} have no scored step to aggregate")
    if torch.isnan(probs[mask]).any():
        rows = (torch.isnan(probs) & mask).any(dim=1).nonzero().flatten().tolist()
        raise ValueError(f"solution(s) {rows} have NaN (unscored) steps inside the mask: a solution cut by "
                         "max_length cannot be aggregated as if it were whole")


def aggregate(probs: torch.Tensor, mask: torch.Tensor, how: str = "min", decay: float = 0.8) -> torch.Tensor:
    """One score per solution from (B, S) step probabilities and a (B, S) boolean mask of real steps."""
    if how not in AGGREGATIONS:
        raise ValueError(f"unknown aggregation {how!r}; known: {', '.join(AGGREGATIONS)}")
    mask = mask.bool()
    _check(probs, mask)
    p = probs.double()
    counts = mask.sum(dim=1)
    if how == "min":
        return p.masked_fill(~mask, math.inf).amin(dim=1)
    if how == "last":
        position = torch.arange(p.shape[1], device=p.device).expand_as(mask)
        last = position.masked_fill(~mask, -1).amax(dim=1)  # the last real step, wherever padding sits
        return p.gather(1, last.unsqueeze(1)).squeeze(1)
    if how == "mean":
        return p.masked_fill(~mask, 0.0).sum(dim=1) / counts
    if how == "weighted_mean":
        w = decay ** torch.arange(p.shape[1], dtype=p.dtype, device=p.device)
        w = w.unsqueeze(0) * mask
        return (p.masked_fill(~mask, 0.0) * w).sum(dim=1) / w.sum(dim=1)
    log_p = p.clamp_min(_EPS).log().masked_fill(~mask, 0.0).sum(dim=1)
    if how == "prod":
        return log_p.exp()
    return (log_p / counts).exp()  # geometric_mean


def pad_scores(step_probs: Sequence[Sequence[float]]) -> StepScores:
    """Ragged per-solution step probabilities as a (B, S) tensor and its mask of real steps."""
    if not step_probs:
        raise ValueError("no solutions to pad")
    width = max(len(p) for p in step_probs)
    probs = torch.zeros(len(step_probs), max(width, 1), dtype=torch.float64)
    mask = torch.zeros_like(probs, dtype=torch.bool)
    for i, p in enumerate(step_probs):
        probs[i, : len(p)] = torch.tensor(list(p), dtype=torch.float64)
        mask[i, : len(p)] = True
    return StepScores(probs, mask)


def aggregate_many(step_probs: Sequence[Sequence[float]], how: str = "min", decay: float = 0.8) -> list[float]:
    """``aggregate`` over ragged Python lists: one score per solution."""
    return aggregate(*pad_scores(step_probs), how, decay).tolist()


def aggregate_one(step_probs: Sequence[float], how: str = "min", decay: float = 0.8) -> float:
    """The score of one solution from its step probabilities."""
    if len(step_probs) == 0:
        raise ValueError("a solution with no steps has no score")
    return aggregate_many([step_probs], how, decay)[0]


# ``prm_lib.aggregate(...)`` calls ``aggregate`` (prm_lib.modules)
sys.modules[__name__].__class__ = CallableModule
