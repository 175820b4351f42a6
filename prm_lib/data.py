"""Step-labelled solutions: the ``PRMSample`` every chapter passes around.

Chapter 3 of the course. Labels follow the seed: +1 (correct) / -1 (incorrect)
per step, or soft values in [0, 1] (Monte Carlo estimates, chapter 3).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

from .steps import DEFAULT_SEPARATOR, validate_solution


def label_to_target(label: float) -> float:
    """Map a label to a BCE target in [0, 1]: +1 -> 1, -1 -> 0, soft values stay."""
    if label == 1 or label == -1:
        return (float(label) + 1.0) / 2.0
    if 0.0 <= label <= 1.0:
        return float(label)
    raise ValueError(f"label {label!r} is neither +1/-1 nor a probability in [0, 1]")


@dataclass
class PRMSample:
    """One solution: the problem, its steps, and a label per step (+1/-1 or soft in [0, 1])."""

    problem: str
    steps: list[str]
    labels: list[float]
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        validate_solution(self.problem, self.steps, self.labels, separator=DEFAULT_SEPARATOR)
        for i, lab in enumerate(self.labels):
            try:
                label_to_target(lab)
            except ValueError as err:
                raise ValueError(f"step {i + 1}: {err}") from None

    @property
    def targets(self) -> list[float]:
        """Labels as probabilities of 'correct' (what the loss compares against)."""
        return [label_to_target(lab) for lab in self.labels]

    @property
    def first_error(self) -> int:
        """Index of the first step whose target is below 0.5, or -1 if every step is correct."""
        for i, t in enumerate(self.targets):
            if t < 0.5:
                return i
        return -1

    @property
    def is_correct(self) -> bool:
        return self.first_error == -1

    def as_item(self) -> tuple[str, list[str]]:
        return self.problem, self.steps


def items_and_labels(samples: Sequence[PRMSample]) -> tuple[list[tuple[str, list[str]]], list[list[float]]]:
    """Split samples into the ``(problem, steps)`` items and target lists that the model encodes."""
    return [s.as_item() for s in samples], [s.targets for s in samples]
