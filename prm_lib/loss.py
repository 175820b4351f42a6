"""Losses for step-level supervision over padded batches.

Chapter 4 of the course. Every function takes step logits ``(B, S)``, targets
``(B, S)`` in [0, 1] (``+1 -> 1``, ``-1 -> 0``, soft Monte Carlo labels as they
are) and a boolean ``step_mask`` ``(B, S)`` that is False on padding. Padding
never contributes: masked entries are excluded from sums and counts, not set to
zero and averaged in.

Variants, all optional and composable in ``prm_loss``:

* ``pos_weight``: weight of the positive (correct-step) term, as in
  ``BCEWithLogitsLoss``; > 1 when correct steps are rare, < 1 when errors are.
* ``mask_after_first_error``: drop every step after the first incorrect one
  (PRM800K stops labelling there; later steps' labels say little of their own).
* ``later_step_weight``: weight ``1 + later_step_weight * i`` for step ``i`` (from 0),
  so late steps, where errors compound, count more.
* ``ranking_weight``: adds a pairwise loss within each solution that pushes every
  correct step's logit above every incorrect step's.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F

from .data import is_wrong


def first_error_mask(targets: torch.Tensor, step_mask: torch.Tensor) -> torch.Tensor:
    """``step_mask`` with every step after the first incorrect one (``data.is_wrong``: target < 0.5) turned off."""
    wrong = is_wrong(targets) & step_mask
    errors_before = torch.cumsum(wrong.int(), dim=1) - wrong.int()  # errors strictly before each step
    return step_mask & (errors_before == 0)


def step_weights(step_mask: torch.Tensor, later_step_weight: float) -> torch.Tensor:
    """``1 + later_step_weight * i`` for step index ``i``, zero on padding."""
    index = torch.arange(step_mask.shape[1], device=step_mask.device, dtype=torch.float32)
    return (1.0 + later_step_weight * index).expand_as(step_mask) * step_mask


class LossTerm(NamedTuple):
    """One averaged term of a loss: ``coefficient * total / weight``.

    Kept apart so that a trainer can divide by the weight of the *whole* global batch (every process, every
    accumulated micro-batch) instead of each piece's own: averages of averages are not the average when the
    pieces weigh differently (``prm_lib.train``)."""

    total: torch.Tensor  # summed loss over the term's entries (keeps the graph)
    weight: torch.Tensor  # what the total is averaged over (a count, or a sum of step weights)
    coefficient: float = 1.0

    def mean(self, weight: torch.Tensor | float | None = None) -> torch.Tensor:
        """``coefficient * total / weight`` (own weight by default); 0 with the graph kept when the weight is 0."""
        weight = self.weight if weight is None else weight
        if float(weight) == 0:
            return self.total * 0.0  # keeps the graph; a batch with nothing to average adds nothing
        value = self.total / weight
        return value if self.coefficient == 1.0 else self.coefficient * value


def bce_term(
    logits: torch.Tensor,
    targets: torch.Tensor,
    step_mask: torch.Tensor,
    pos_weight: float | None = None,
    mask_after_first_error: bool = False,
    later_step_weight: float = 0.0,
) -> LossTerm:
    """Summed, weighted BCE-with-logits over real steps against (possibly soft) targets, and its weight."""
    if logits.shape != targets.shape or logits.shape != step_mask.shape:
        raise ValueError(f"shapes differ: logits {tuple(logits.shape)}, targets {tuple(targets.shape)}, mask {tuple(step_mask.shape)}")
    mask = first_error_mask(targets, step_mask) if mask_after_first_error else step_mask
    pw = None if pos_weight is None else torch.tensor(pos_weight, device=logits.device, dtype=torch.float32)
    per_step = F.binary_cross_entropy_with_logits(logits.float(), targets.float(), pos_weight=pw, reduction="none")
    weights = step_weights(mask, later_step_weight)
    return LossTerm((per_step * weights).sum(), weights.sum())


def ranking_term(logits: torch.Tensor, targets: torch.Tensor, step_mask: torch.Tensor, margin: float = 0.0,
                 coefficient: float = 1.0) -> LossTerm:
    """Summed ``softplus(margin - (logit_correct - logit_incorrect))`` over all (correct, incorrect) step pairs
    of the same solution, and the number of pairs."""
    bad = is_wrong(targets) & step_mask  # (B, S)
    good = ~is_wrong(targets) & step_mask
    diff = logits.float().unsqueeze(2) - logits.float().unsqueeze(1)  # (B, S, S): logit_i - logit_j
    pairs = good.unsqueeze(2) & bad.unsqueeze(1)  # i correct, j incorrect
    return LossTerm((F.softplus(margin - diff) * pairs).sum(), pairs.sum().float(), coefficient)


def step_bce_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    step_mask: torch.Tensor,
    pos_weight: float | None = None,
    mask_after_first_error: bool = False,
    later_step_weight: float = 0.0,
) -> torch.Tensor:
    """Weighted mean over real steps of BCE-with-logits against (possibly soft) targets."""
    return bce_term(logits, targets, step_mask, pos_weight, mask_after_first_error, later_step_weight).mean()


def pairwise_ranking_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    step_mask: torch.Tensor,
    margin: float = 0.0,
) -> torch.Tensor:
    """Mean of ``softplus(margin - (logit_correct - logit_incorrect))`` over all (correct, incorrect)
    step pairs of the same solution; 0 for a batch without such pairs."""
    return ranking_term(logits, targets, step_mask, margin).mean()


def prm_loss_terms(
    logits: torch.Tensor,
    targets: torch.Tensor,
    step_mask: torch.Tensor,
    pos_weight: float | None = None,
    mask_after_first_error: bool = False,
    later_step_weight: float = 0.0,
    ranking_weight: float = 0.0,
    ranking_margin: float = 0.0,
) -> list[LossTerm]:
    """The terms of ``prm_loss``: BCE over steps (with the chosen variants), and the ranking term if weighted."""
    terms = [bce_term(logits, targets, step_mask, pos_weight, mask_after_first_error, later_step_weight)]
    if ranking_weight:
        terms.append(ranking_term(logits, targets, step_mask, ranking_margin, ranking_weight))
    return terms


def combine(terms: list[LossTerm], weights: list[torch.Tensor | float] | None = None) -> torch.Tensor:
    """The loss: the sum of each term's mean, over its own weight or over the given ``weights``."""
    loss = terms[0].mean(None if weights is None else weights[0])
    for i, term in enumerate(terms[1:], start=1):
        loss = loss + term.mean(None if weights is None else weights[i])
    return loss


def prm_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    step_mask: torch.Tensor,
    pos_weight: float | None = None,
    mask_after_first_error: bool = False,
    later_step_weight: float = 0.0,
    ranking_weight: float = 0.0,
    ranking_margin: float = 0.0,
) -> torch.Tensor:
    """BCE over steps (with the chosen variants), plus ``ranking_weight`` times the ranking loss."""
    return combine(prm_loss_terms(logits, targets, step_mask, pos_weight, mask_after_first_error, later_step_weight,
                                  ranking_weight, ranking_margin))
