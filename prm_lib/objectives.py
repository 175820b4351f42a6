"""What a model is trained to predict: the PRM's step labels or the ORM's one outcome label.

The one place that maps an objective's name to its training targets, the steps its loss
reads, how it is evaluated, and how a verifier must read its scores. The trainer, the zoo,
``PRMVerifier`` and ``python -m prm_lib eval`` all ask here instead of testing the name.

* ``prm``: a label per step (is this step right?), a loss on every step, step AUROC;
  every step's score is meaningful, so any aggregation applies (chapter 6).
* ``orm``: one label per solution (is its final answer right?, Cobbe et al., 2021), a loss
  on the last step only, outcome AUROC; only the last step's score was trained, so a
  verifier reads it with the ``last`` aggregation (Lightman et al., 2023, compare both this way).

What makes a solution's outcome right is a parameter of the ORM (``objective("orm", outcome=...)``): by
default the course's synthetic solutions' own record of it (``synthetic_outcome``); ProcessBench's prose
records, say, carry ``meta["final_answer_correct"]`` instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any, Callable, Mapping, Sequence

import torch

from .data import PRMSample
from .metrics import auroc_or_missing, step_metrics
from .steps import EncodedSolution


Outcome = Callable[[PRMSample], float]  # a solution -> 1.0 if its outcome is right, else 0.0


def synthetic_outcome(sample: PRMSample) -> float:
    """The course's synthetic solutions: 1 if the final answer is the gold one (``meta['answer']`` vs
    ``meta['final_answer']``, as ``prm_lib.synthetic`` records them), else 0; a sample without those fields:
    1 if every step is correct."""
    if "answer" in sample.meta and "final_answer" in sample.meta:
        return 1.0 if sample.meta["answer"] == sample.meta["final_answer"] else 0.0
    return 1.0 if sample.is_correct else 0.0


def outcome_targets(samples: Sequence[PRMSample], outcome: Outcome = synthetic_outcome) -> list[float]:
    """ORM labels: ``outcome`` of each solution (default ``synthetic_outcome``)."""
    return [float(outcome(s)) for s in samples]


def last_step_mask(step_mask: torch.Tensor) -> torch.Tensor:
    """Only the last real step of each row (where an ORM reads its one score)."""
    last = step_mask.sum(dim=1, keepdim=True) - 1
    return torch.zeros_like(step_mask).scatter_(1, last.clamp(min=0), True) & step_mask


def _step_targets(samples: Sequence[PRMSample]) -> list[list[float]]:
    return [list(s.targets) for s in samples]


def _outcome_step_targets(samples: Sequence[PRMSample], outcome: Outcome = synthetic_outcome) -> list[list[float]]:
    """The outcome label on every step (the loss mask keeps only the last)."""
    return [[o] * len(s.steps) for o, s in zip(outcome_targets(samples, outcome), samples)]


def _every_step(step_mask: torch.Tensor) -> torch.Tensor:
    return step_mask


def _evaluate_steps(probs: Sequence[Sequence[float]], encoded: Sequence[EncodedSolution],
                    samples: Sequence[PRMSample]) -> dict[str, Any]:
    return step_metrics(probs, [s.targets for s in samples])


def _evaluate_outcomes(probs: Sequence[Sequence[float]], encoded: Sequence[EncodedSolution],
                       samples: Sequence[PRMSample], outcome: Outcome = synthetic_outcome) -> dict[str, Any]:
    last = [p[e.n_scored - 1] for p, e in zip(probs, encoded)]
    return {**auroc_or_missing(last, outcome_targets(samples, outcome), "outcome_auroc"), "n_solutions": len(last)}


def _orm(outcome: Outcome) -> Objective:
    return Objective("orm", partial(_outcome_step_targets, outcome=outcome), last_step_mask,
                     partial(_evaluate_outcomes, outcome=outcome), "outcome_auroc", "last", False)


@dataclass(frozen=True)
class Objective:
    """How one objective is trained, evaluated and read."""

    name: str
    targets: Callable[[Sequence[PRMSample]], list[list[float]]]  # a label per step of each sample
    loss_mask: Callable[[torch.Tensor], torch.Tensor]  # (B, S) step mask -> the steps the loss reads
    evaluate: Callable[[Sequence[Sequence[float]], Sequence[EncodedSolution], Sequence[PRMSample]], dict[str, Any]]
    metric: str  # the headline key of ``evaluate``'s result
    aggregation: str | None  # the one aggregation its scores allow (None: any)
    scores_steps: bool  # is every step's score trained (first-error evaluation needs that)?


OBJECTIVES: Mapping[str, Objective] = {
    "prm": Objective("prm", _step_targets, _every_step, _evaluate_steps, "step_auroc", None, True),
    "orm": _orm(synthetic_outcome),
}


def objective(name: str, outcome: Outcome | None = None) -> Objective:
    """The named objective; an unknown name is an error that lists the known ones. ``outcome`` (the ORM's
    only) says which solutions are right, in place of ``synthetic_outcome``."""
    if name not in OBJECTIVES:
        raise ValueError(f"objective must be {' or '.join(repr(k) for k in OBJECTIVES)}, not {name!r}")
    if outcome is None:
        return OBJECTIVES[name]
    if name != "orm":
        raise ValueError(f"outcome is the ORM's setting; the {name!r} objective reads every step's label")
    return _orm(outcome)


def objective_of(model: Any) -> Objective:
    """The objective a model was trained for (``model.objective``; anything without one reads as a PRM)."""
    return objective(getattr(model, "objective", "prm"))
