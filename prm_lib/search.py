"""PRM-guided search: step-level beam search, and best-of-N at the same token budget.

Chapter 8 of the course (the algorithm follows Hugging Face's search-and-learn).
Best-of-N writes N whole solutions and lets the verifier pick one at the end;
beam search asks the PRM after *every step* which partial solutions deserve more
compute:

1. Each of ``n_beams`` partial solutions gets one next step from the policy.
2. The PRM scores every new step in one batched call (``PRMVerifier``).
3. Finished solutions (an answer line) leave the beam; of the rest, the best
   ``n_beams // beam_width`` by their score so far survive, and each is copied
   ``beam_width`` times so the next round again extends ``n_beams`` of them
   (``select_survivors``, also the reference of exercise 8.3).
4. Stop when ``n_beams`` solutions are finished, or after ``max_depth`` rounds.

Which steps finish a solution is ``is_final``'s rule, a parameter of ``beam_search``: by default a step
that states the answer (the course's step language, or a ``\\boxed{}`` answer).

Compute is counted as generated tokens (every proposed step, kept or pruned), so
the two methods can be compared at equal budget. The finished candidates are read
with the selectors of ``prm_lib.selection``.
"""

from __future__ import annotations

import math

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from .answers import extract_final_answer, states_answer
from .policies import END_OF_SOLUTION, Policy
from .selection import select
from .verify import PRMVerifier

StepPolicy = Policy  # beam search asks a policy only for next_steps; chapter 8 prints beam_search's source with this name


def is_final(step: str, ends_solution: Callable[[str], bool] = states_answer) -> bool:
    """A policy with nothing more to write ends a solution, and so does a step that ``ends_solution``: by
    default one that states the answer (``prm_lib.answers.states_answer``: "the answer is", or a LaTeX
    ``\\boxed{}`` answer). Prose whose last step says neither passes its own rule."""
    return step == END_OF_SOLUTION or ends_solution(step)


@dataclass
class SearchResult:
    """What one search (or best-of-N run) produced for one problem."""

    solutions: list[list[str]]  # finished candidates (unfinished ones if none finished)
    scores: list[float]  # the verifier's score of each
    answers: list[str | None]  # normalised final answers
    generated_tokens: int  # every generated step, kept or pruned
    rounds: int = 0
    # per round: counts, every proposed step with its score ("scored"), and the steps that survived ("kept")
    history: list[dict[str, Any]] = field(default_factory=list)

    def best_answer(self) -> str | None:
        return select("best", self.scores, self.answers)

    def weighted_answer(self) -> str | None:
        return select("weighted_vote", self.scores, self.answers)


def _descending(score: float) -> float:
    """Sort key, highest score first; NaN (a beam the verifier could not score whole) goes last."""
    return math.inf if math.isnan(score) else -score


def select_survivors(scores: Sequence[float], keep: int, n_beams: int | None = None) -> list[int]:
    """Indices of the ``keep`` highest scores, best first; the sort is stable, so among equal scores the
    earlier beam survives and a rerun keeps the same ones. With ``n_beams``, the survivors in turn until
    ``n_beams`` places are filled: the next round's beams, each survivor ``n_beams // keep`` times when
    enough are open (more when fewer are)."""
    if keep < 1:
        raise ValueError(f"keep must be at least 1, not {keep}")
    best = sorted(range(len(scores)), key=lambda i: _descending(scores[i]))[:keep]
    if n_beams is None or not best:
        return best
    return [best[j % len(best)] for j in range(n_beams)]


def beam_search(
    problem: str,
    policy: StepPolicy,
    verifier: PRMVerifier,
    count_tokens: Callable[[str], int],
    n_beams: int = 8,
    beam_width: int = 2,
    max_depth: int = 10,
    is_final: Callable[[str], bool] = is_final,
) -> SearchResult:
    """Step-level beam search guided by ``verifier`` (see the module docstring)."""
    if n_beams < 1 or beam_width < 1 or n_beams % beam_width:
        raise ValueError(f"n_beams ({n_beams}) must be a positive multiple of beam_width ({beam_width})")
    if max_depth < 1:
        raise ValueError("max_depth must be at least 1")
    keep = n_beams // beam_width
    beams: list[list[str]] = [[] for _ in range(n_beams)]
    finished: list[tuple[list[str], float]] = []
    tokens, history = 0, []
    rounds = 0
    for rounds in range(1, max_depth + 1):
        # one proposal per beam: identical prefixes are asked together, so the policy can batch them
        by_prefix: dict[tuple[str, ...], list[int]] = {}
        for i, b in enumerate(beams):
            by_prefix.setdefault(tuple(b), []).append(i)
        extended: list[list[str]] = [[] for _ in beams]
        for prefix, idx in by_prefix.items():
            for i, step in zip(idx, policy.next_steps(problem, list(prefix), len(idx))):
                extended[i] = list(prefix) + [step]
                tokens += count_tokens(step)
        scored = verifier.score_solutions([(problem, s) for s in extended])
        still_open = []
        for s in scored:
            if is_final(s.steps[-1]):
                finished.append((s.steps, s.score))
            else:
                still_open.append(s)
        round_log = {"round": rounds, "proposals": len(extended), "finished": len(finished), "open": len(still_open),
                     "scored": [(s.steps[-1], s.score) for s in scored], "kept": []}
        history.append(round_log)
        if len(finished) >= n_beams or not still_open:
            break
        # the best `keep` (the earlier of equal scores), each copied beam_width times
        order = select_survivors([s.score for s in still_open], keep, n_beams)
        round_log["kept"] = [still_open[i].steps[-1] for i in dict.fromkeys(order)]
        beams = [list(still_open[i].steps) for i in order]
    if finished:
        solutions = [s for s, _ in finished]
        scores = [sc for _, sc in finished]
    else:  # nothing finished within max_depth: report the open beams, scored and best first, rather than nothing
        still_open.sort(key=lambda s: _descending(s.score))  # stable, as select_survivors ranks them
        solutions = [s.steps for s in still_open]
        scores = [s.score for s in still_open]
    return SearchResult(solutions, scores, [extract_final_answer(s) for s in solutions], tokens, rounds, history)


def best_of_n(
    problem: str,
    sample: Callable[[str, int], list[list[str]]],
    verifier: PRMVerifier,
    count_tokens: Callable[[str], int],
    n: int,
) -> SearchResult:
    """``n`` whole solutions from ``sample(problem, n)``, all scored by ``verifier``; an empty sample stays a
    candidate (a placeholder step with no answer) but adds no tokens: only what the policy wrote counts."""
    samples = list(sample(problem, n))
    solutions = [s if s else ["(no answer)"] for s in samples]
    scored = verifier.score_solutions([(problem, s) for s in solutions])
    tokens = sum(count_tokens(step) for s in samples for step in s)
    return SearchResult(solutions, [s.score for s in scored], [s.final_answer for s in scored], tokens)
