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


def step_bce_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    step_mask: torch.Tensor,
    pos_weight: float | None = None,
    mask_after_first_error: bool = False,
    later_step_weight: float = 0.0,
) -> torch.Tensor:
    """Weighted mean over real steps of BCE-with-logits against (possibly soft) targets."""
    if logits.shape != targets.shape or logits.shape != step_mask.shape:
        raise ValueError(f"shapes differ: logits {tuple(logits.shape)}, targets {tuple(targets.shape)}, mask {tuple(step_mask.shape)}")
    mask = first_error_mask(targets, step_mask) if mask_after_first_error else step_mask
    pw = None if pos_weight is None else torch.tensor(pos_weight, device=logits.device, dtype=torch.float32)
    per_step = F.binary_cross_entropy_with_logits(logits.float(), targets.float(), pos_weight=pw, reduction="none")
    weights = step_weights(mask, later_step_weight)
    total = weights.sum()
    if total == 0:
        return logits.sum() * 0.0  # keeps the graph; a batch with no real step adds nothing
    return (per_step * weights).sum() / total


def pairwise_ranking_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    step_mask: torch.Tensor,
    margin: float = 0.0,
) -> torch.Tensor:
    """Mean of ``softplus(margin - (logit_correct - logit_incorrect))`` over all (correct, incorrect)
    step pairs of the same solution; 0 for a batch without such pairs."""
    bad = is_wrong(targets) & step_mask  # (B, S)
    good = ~is_wrong(targets) & step_mask
    diff = logits.float().unsqueeze(2) - logits.float().unsqueeze(1)  # (B, S, S): logit_i - logit_j
    pairs = good.unsqueeze(2) & bad.unsqueeze(1)  # i correct, j incorrect
    n = pairs.sum()
    if n == 0:
        return logits.sum() * 0.0
    return (F.softplus(margin - diff) * pairs).sum() / n


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
    loss = step_bce_loss(logits, targets, step_mask, pos_weight, mask_after_first_error, later_step_weight)
    if ranking_weight:
        loss = loss + ranking_weight * pairwise_ranking_loss(logits, targets, step_mask, ranking_margin)
    return loss
