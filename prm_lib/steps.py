"""Turning (problem, steps) into token ids and the positions where each step ends.

Chapter 2 of the course. The naive tutorial joined the solution into one string
and then searched the ids for the token of "\\n". With a byte-level BPE such as
Qwen2's, punctuation merges with the newline after it (".\\n" is one token), so
that search misses almost every step end. Here the alignment is correct by
construction: the problem and every step are tokenized *separately*, the
separator's own ids are appended after each step, and the position of a step
is the last token of its separator. Nothing is searched for, so nothing can be
missed, and the same function builds training inputs and scoring inputs.

Layout of one encoded solution (``|`` marks where pieces were tokenized apart)::

    [special prefix] | problem | SEP | step 1 | SEP* | step 2 | SEP* | ...

``*`` marks the scored positions: ``step_end_positions[i]`` is the index of the
last token of the separator after step ``i``.

Line breaks inside a step: the default separator is a blank line ("\\n\\n"),
so a step may contain single line breaks (a LaTeX ``align``, a list) and is
still one step; a step that contains the separator itself is rejected, because
the model would read a step boundary where there is none.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any, Sequence

DEFAULT_SEPARATOR = "\n\n"

Label = float  # +1/-1 (as in the naive tutorial) or a soft value in [0, 1]


class TooLongError(ValueError):
    """A solution whose problem and first step alone exceed ``max_length``: no step of it can be scored.

    Its own class, so that a caller scoring many solutions can leave this one out (and say so) while any
    other error still stops it (``prm_lib.batching.encode_fitting``)."""


@dataclass
class EncodedSolution:
    """Token ids of one solution and the index of every scored step's last token."""

    input_ids: list[int]
    step_end_positions: list[int]
    n_steps: int  # steps given; len(step_end_positions) is how many were kept
    labels: list[Label] | None = None
    problem_length: int = 0  # tokens before the first step (prefix + problem + SEP, or no SEP: problem_separator)
    step_spans: list[tuple[int, int]] = field(default_factory=list)  # [start, end) of each kept step's text
    surprise: list[float] | None = None  # per token, from a frozen LM (prm_lib.surprise), once computed

    @property
    def n_scored(self) -> int:
        return len(self.step_end_positions)

    @property
    def truncated(self) -> bool:
        return self.n_scored < self.n_steps

    def __len__(self) -> int:
        return len(self.input_ids)


def validate_solution(
    problem: str,
    steps: Sequence[str],
    labels: Sequence[Label] | None = None,
    separator: str | None = DEFAULT_SEPARATOR,
) -> None:
    """Raise ValueError naming the problem if (problem, steps, labels) cannot be aligned.

    ``separator=None`` skips the separator check (data can be held before a model's format is known).
    """
    if not isinstance(problem, str):
        raise TypeError(f"problem must be a string, got {type(problem).__name__}")
    if not problem.strip():
        raise ValueError("problem is empty: a PRM scores steps *of a problem*, give its text")
    if isinstance(steps, str):
        raise TypeError("steps must be a list of strings, got a single string (split it into steps first)")
    if len(steps) == 0:
        raise ValueError("steps is empty: a solution needs at least one step to score")
    if separator is not None and not separator:
        raise ValueError("the step separator is empty")
    for i, step in enumerate(steps):
        if not isinstance(step, str):
            raise TypeError(f"step {i + 1} is a {type(step).__name__}, not a string")
        if not step.strip():
            raise ValueError(f"step {i + 1} of {len(steps)} is empty or whitespace-only")
        if separator is not None and separator in step:
            raise ValueError(
                f"step {i + 1} contains the step separator {separator!r}; the model would read a step "
                f"boundary inside it. Split it into two steps, or replace the separator inside it "
                f"(step text: {step[:60]!r}...)"
            )
    if labels is not None:
        if len(labels) != len(steps):
            raise ValueError(
                f"{len(labels)} labels for {len(steps)} steps: labels must match steps one to one"
            )
        for i, lab in enumerate(labels):
            if lab is None or (isinstance(lab, float) and math.isnan(lab)):
                raise ValueError(f"label of step {i + 1} is missing ({lab!r})")


def special_prefix_ids(tokenizer: Any) -> list[int]:
    """The ids a tokenizer puts before text when asked for special tokens (e.g. BOS), else []."""
    with_special = tokenizer("x", add_special_tokens=True)["input_ids"]
    plain = tokenizer("x", add_special_tokens=False)["input_ids"]
    for start in range(len(with_special) - len(plain) + 1):
        if with_special[start : start + len(plain)] == plain:
            return list(with_special[:start])
    return []


def tokenize_pieces(tokenizer: Any, pieces: list[str]) -> list[list[int]]:
    """Token ids of each text, no special tokens: ``tokenizer(pieces, add_special_tokens=False)["input_ids"]``.

    A fast (Rust) tokenizer is called directly, which gives the same ids and skips building one Python
    dict per text (benchmarks/ times both). Not when its backend is
    set to pad or truncate (a caller of the tokenizer may have left it so): then the ordinary call.
    """
    backend = getattr(tokenizer, "backend_tokenizer", None) if getattr(tokenizer, "is_fast", False) else None
    if backend is not None and backend.padding is None and backend.truncation is None:
        encode = getattr(backend, "encode_batch_fast", backend.encode_batch)
        return [e.ids for e in encode(pieces, add_special_tokens=False)]
    return tokenizer(pieces, add_special_tokens=False)["input_ids"]


def encode_solutions(
    tokenizer: Any,
    items: Sequence[tuple[str, Sequence[str]]],
    max_length: int | None = None,
    *,
    separator: str = DEFAULT_SEPARATOR,
    labels: Sequence[Sequence[Label] | None] | None = None,
    skipped: list[int] | None = None,
    problem_separator: bool = True,
    prefix: Sequence[int] | None = None,
    names: Sequence[str] | None = None,
) -> list[EncodedSolution]:
    """Encode many solutions with one (fast, batched) tokenizer call.

    ``items`` holds ``(problem, steps)`` pairs; ``labels``, if given, one list per item.
    A solution over ``max_length`` tokens keeps its first k whole steps (the largest k
    that fits) and warns; its labels are cut to the same k steps. One whose problem and
    first step alone exceed ``max_length`` is an error (``TooLongError``), or, given a ``skipped``
    list, is left out of the result and its index appended there.

    ``names`` (one per item, e.g. ``file:line``) is how errors and warnings name a solution; by default
    "solution N", its index in ``items``.

    The layout of other trainers: ``problem_separator=False`` puts no separator between the
    problem and the first step, and ``prefix`` replaces the special ids put first (default:
    ``special_prefix_ids``), as TRL's ``PRMTrainer`` does (``prm_lib.scorers.token_classifier``).
    """
    if labels is not None and len(labels) != len(items):
        raise ValueError(f"{len(labels)} label lists for {len(items)} solutions")
    if names is not None and len(names) != len(items):
        raise ValueError(f"{len(names)} names for {len(items)} solutions")

    def name(n: int) -> str:
        return str(names[n]) if names is not None else f"solution {n}"

    pieces: list[str] = []
    for n, (problem, steps) in enumerate(items):
        item_labels = labels[n] if labels is not None else None
        try:
            validate_solution(problem, steps, item_labels, separator)
        except (ValueError, TypeError) as err:
            if len(items) > 1 or names is not None:
                raise type(err)(f"{name(n)}: {err}") from None
            raise
        pieces.append(problem)
        pieces.extend(steps)
    pieces.append(separator)
    ids = tokenize_pieces(tokenizer, pieces)
    sep_ids = list(ids.pop())
    if not sep_ids:
        raise ValueError(f"the tokenizer turns the separator {separator!r} into no tokens")
    prefix = special_prefix_ids(tokenizer) if prefix is None else list(prefix)
    problem_sep = sep_ids if problem_separator else []

    out: list[EncodedSolution] = []
    cursor = 0
    for n, (problem, steps) in enumerate(items):
        problem_ids = ids[cursor]
        step_ids = ids[cursor + 1 : cursor + 1 + len(steps)]
        cursor += 1 + len(steps)
        for i, s in enumerate(step_ids):
            if not s:
                raise ValueError(f"{name(n)}: step {i + 1} tokenizes to no tokens ({steps[i]!r})")
        input_ids = prefix + list(problem_ids) + problem_sep
        problem_length = len(input_ids)
        positions: list[int] = []
        spans: list[tuple[int, int]] = []
        for s in step_ids:
            if max_length is not None and len(input_ids) + len(s) + len(sep_ids) > max_length:
                break
            start = len(input_ids)
            input_ids += list(s)
            spans.append((start, len(input_ids)))
            input_ids += sep_ids
            positions.append(len(input_ids) - 1)
        if not positions and skipped is not None:
            skipped.append(n)
            continue
        if not positions:
            first = problem_length + len(step_ids[0]) + len(sep_ids)
            raise TooLongError(
                f"{name(n)}: the problem and its first step take {first} tokens, more than "
                f"max_length={max_length}; no step can be scored"
            )
        kept = len(positions)
        item_labels = labels[n] if labels is not None else None
        if kept < len(steps):
            total = problem_length + sum(len(s) + len(sep_ids) for s in step_ids)
            warnings.warn(
                f"{name(n)} is {total} tokens, over max_length={max_length}: scored its first "
                f"{kept} of {len(steps)} steps (cut by whole steps from the end); the remaining "
                f"{len(steps) - kept} get no score (NaN) and their labels are left out",
                stacklevel=3,
            )
        out.append(
            EncodedSolution(
                input_ids=input_ids,
                step_end_positions=positions,
                n_steps=len(steps),
                labels=list(item_labels[:kept]) if item_labels is not None else None,
                problem_length=problem_length,
                step_spans=spans,
            )
        )
    return out


def encode_solution(
    tokenizer: Any,
    problem: str,
    steps: Sequence[str],
    max_length: int | None = None,
    *,
    separator: str = DEFAULT_SEPARATOR,
    labels: Sequence[Label] | None = None,
) -> EncodedSolution:
    """Encode one solution: ``input_ids`` and one ``step_end_positions`` entry per scored step."""
    return encode_solutions(
        tokenizer,
        [(problem, steps)],
        max_length,
        separator=separator,
        labels=[labels] if labels is not None else None,
    )[0]
