"""Monte Carlo step labels (Math-Shepherd): does a policy that continues from this step reach the answer?

Chapter 3 of the course. For each prefix ``steps[:i+1]`` a policy writes ``k``
continuations; the step's **soft** label is the fraction whose final answer is
the gold answer, its **hard** label is +1 if any of them is (Wang et al., 2023).
No human looks at a step. The price is noise: a wrong step can still lead to the
right answer (the policy recovers, or errors cancel) and a right step can fail to
(the policy errs later), and how often depends on the policy and on ``k``.

The policies are ``prm_lib.policies``'s (``SimulatedPolicy``, ``LMPolicy``, the ``Policy`` interface).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from .answers import extract_final_answer, normalize_answer
from .policies import Policy

__all__ = ["MCLabels", "monte_carlo_labels"]


@dataclass
class MCLabels:
    """Monte Carlo labels of one solution's steps, and the rollouts' final answers behind them."""

    soft: list[float]  # fraction of rollouts from each step that reach the gold answer
    hard: list[int]  # +1 if any rollout from the step reaches it, else -1
    answers: list[list[str | None]]  # per step, the k rollouts' normalised final answers
    k: int


def monte_carlo_labels(problem: str, steps: Sequence[str], gold: str | int, policy: Policy, k: int) -> MCLabels:
    """Label each step by rolling out ``k`` continuations from it with ``policy``."""
    if k < 1:
        raise ValueError("k must be at least 1")
    target = normalize_answer(str(gold))
    soft, hard, answers = [], [], []
    for i in range(len(steps)):
        prefix = list(steps[: i + 1])
        finals = [extract_final_answer(prefix + cont) for cont in policy.complete(problem, prefix, k)]
        hits = sum(a == target for a in finals)
        soft.append(hits / k)
        hard.append(1 if hits else -1)
        answers.append(finals)
    return MCLabels(soft, hard, answers, k)

