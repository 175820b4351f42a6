"""Final answers: pull one out of a solution and normalise it so equal answers compare equal.

Used by Monte Carlo labelling (chapter 3: did a rollout reach the gold answer?)
and by verification (chapter 7: majority vote and weighted vote group solutions
by final answer). "12", "12.0", "$12$", "\\boxed{12}" and "The answer is 12."
all normalise to "12".

This module reads an answer out of any text, leniently ("answer: 12", "answer = 12" too), and
says whether a step *states* its answer (``states_answer``), which ends a solution for the
policies, for the synthetic step language and for search.
"""

from __future__ import annotations

import re
from fractions import Fraction
from typing import Sequence

_ANSWER_PATTERNS = [
    re.compile(r"\\boxed\{((?:[^{}]|\{[^{}]*\})*)\}"),
    re.compile(r"answer\s*(?:is|:|=)\s*:?\s*(.+?)(?:\.\s*$|\.\s+|$)", re.IGNORECASE | re.MULTILINE),
]
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?(?:/\d+)?")

ANSWER_PHRASE = "answer is"  # what marks a step that states the answer, in any case ("So the answer is 12")
_ANSWER_PHRASE = re.compile(re.escape(ANSWER_PHRASE), re.IGNORECASE)


def states_answer(step: str, boxed: bool = True) -> bool:
    """Whether a step states the solution's answer: it says ``ANSWER_PHRASE`` in any case (the course's step
    language ends with "The answer is N.", and a language model shown it writes "So the answer is 12"), or,
    with ``boxed``, it gives a LaTeX ``\\boxed{}`` answer, as prose solutions do. The policies, which write
    the step language, read the phrase only (``boxed=False``)."""
    return _ANSWER_PHRASE.search(step) is not None or (boxed and "\\boxed{" in step)


def normalize_answer(text: str | None) -> str | None:
    """Canonical form of an answer: numbers as reduced integers/fractions/decimals; else trimmed lower-case text."""
    if text is None:
        return None
    t = text.strip()
    t = re.sub(r"^\$+|\$+$", "", t).strip()  # $12$
    t = re.sub(r"\\boxed\{(.*)\}", r"\1", t)
    t = re.sub(r"\\(?:text|mathrm)\{([^}]*)\}", r"\1", t)
    t = re.sub(r"\\[dt]?frac\{(-?\d+)\}\{(\d+)\}", r"\1/\2", t)
    t = t.rstrip(".").strip()
    m = _NUMBER.fullmatch(t.replace(" ", ""))
    if m:
        try:
            value = Fraction(m.group(0).replace(",", ""))
        except (ValueError, ZeroDivisionError):
            return t.lower()
        if value.denominator == 1:
            return str(value.numerator)
        return f"{value.numerator}/{value.denominator}"
    return t.lower() or None


def extract_final_answer(solution: str | Sequence[str]) -> str | None:
    """The normalised final answer of a solution (text or list of steps), or None if it states none.

    Looks for \\boxed{...}, then "the answer is ...", in the last step that has either;
    falls back to the last number of the last step.
    """
    steps = [solution] if isinstance(solution, str) else list(solution)
    for step in reversed(steps):
        for pattern in _ANSWER_PATTERNS:
            found = pattern.findall(step)
            if found:
                return normalize_answer(found[-1])
    if steps:
        numbers = _NUMBER.findall(steps[-1])
        if numbers:
            return normalize_answer(numbers[-1])
    return None
