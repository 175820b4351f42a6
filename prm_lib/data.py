"""Step-labelled solutions: the ``PRMSample`` every chapter passes around.

Chapter 3 of the course. Labels follow the naive tutorial: +1 (correct) / -1 (incorrect)
per step, or soft values in [0, 1] (Monte Carlo estimates, chapter 3).
"""

from __future__ import annotations

import json
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

from .steps import validate_solution


WRONG_BELOW = 0.5  # a step whose target (or predicted probability of "correct") is below this is wrong


def is_wrong(target: Any, threshold: float = WRONG_BELOW) -> Any:
    """Whether a step is wrong: its target, or a predicted P(correct), below ``threshold``. Elementwise on
    numpy arrays and torch tensors too, so the loss masks with the same rule the metrics count with."""
    return target < threshold


def first_error(values: Sequence[float], threshold: float = WRONG_BELOW) -> int:
    """Index of the first wrong step (``is_wrong``), or -1 if there is none: the labelled first error
    of a solution's targets, or the predicted one of its step probabilities."""
    for i, value in enumerate(values):
        if is_wrong(value, threshold):
            return i
    return -1


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
        # The separator is the model's formatting choice; encode_solution checks it against the one in use.
        validate_solution(self.problem, self.steps, self.labels, separator=None)
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
        return first_error(self.targets)

    @property
    def is_correct(self) -> bool:
        return self.first_error == -1

    def as_item(self) -> tuple[str, list[str]]:
        return self.problem, self.steps


# ---------------------------------------------------------------------------------------------
# File formats. Each reader returns PRMSamples and raises FormatError naming file and line on a
# malformed record; each writer takes PRMSamples. Nothing is dropped or truncated silently.
# ---------------------------------------------------------------------------------------------
FORMATS = ("trl", "prm800k", "math-shepherd", "processbench")
MATH_SHEPHERD_TAG = "ки"


class FormatError(ValueError):
    """A record that does not fit its file format; the message names the file and line."""


def _records(path: str | Path, skipped: list[tuple[str, str]] | None = None) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, record) for each non-blank line. With a ``skipped`` list, a line that is not
    a JSON object is recorded there as (file:line, reason) instead of raising."""
    path = Path(path)
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as err:
                    raise FormatError(f"{path}:{n}: not valid JSON ({err.msg})") from None
                if not isinstance(record, dict):
                    raise FormatError(f"{path}:{n}: expected a JSON object, got {type(record).__name__}")
            except FormatError as err:
                if skipped is None:
                    raise
                skipped.append((f"{path}:{n}", str(err).split(": ", 1)[1]))
                continue
            yield n, record


def _field(record: dict[str, Any], name: str, kind: type | tuple[type, ...], where: str) -> Any:
    if name not in record:
        raise FormatError(f"{where}: missing field {name!r}")
    value = record[name]
    if not isinstance(value, kind) or isinstance(value, bool) and kind in (int, (int,)):
        expected = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise FormatError(f"{where}: field {name!r} should be {expected}, got {type(value).__name__}")
    return value


def _sample(problem: str, steps: list[str], labels: list[float], meta: dict[str, Any], where: str) -> PRMSample:
    try:
        return PRMSample(problem, steps, labels, meta)
    except (ValueError, TypeError) as err:
        raise FormatError(f"{where}: {err}") from None


def _write_jsonl(path: str | Path, records: Iterable[dict[str, Any]]) -> None:
    with Path(path).open("w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")


def _hard_labels(sample: PRMSample, fmt: str) -> list[bool]:
    soft = [t for t in sample.targets if t not in (0.0, 1.0)]
    if soft:
        warnings.warn(f"{fmt} stores only hard labels: {len(soft)} soft label(s) rounded at 0.5", stacklevel=3)
    return [t >= 0.5 for t in sample.targets]


# -- TRL "stepwise supervision": {"prompt", "completions": [str], "labels": [bool]} --------------
def read_trl(path: str | Path) -> list[PRMSample]:
    out = []
    for n, r in _records(path):
        where = f"{path}:{n}"
        prompt = _field(r, "prompt", str, where)
        steps = _field(r, "completions", list, where)
        labels = _field(r, "labels", list, where)
        if not all(isinstance(x, bool) for x in labels):
            raise FormatError(f"{where}: TRL labels must be true/false, got {labels!r}")
        out.append(_sample(prompt, steps, [1 if x else -1 for x in labels], {}, where))
    return out


def write_trl(samples: Sequence[PRMSample], path: str | Path) -> None:
    _write_jsonl(path, ({"prompt": s.problem, "completions": s.steps, "labels": _hard_labels(s, "TRL")} for s in samples))


# -- PRM800K-style: {"question": {"problem"}, "label": {"steps": [{"completions": [{"text", "rating"}],
#    "chosen_completion"}]}} ------------------------------------------------------------------------
NEUTRAL_CHOICES = {"positive": 1, "negative": -1}


def read_prm800k(path: str | Path, neutral: str = "positive") -> list[PRMSample]:
    """Ratings -1/0/+1 per step. ``neutral`` says what a 0 ("neutral": neither helps nor harms) becomes:
    ``"positive"`` (the default, as in Qwen's PRM800K baseline) or ``"negative"`` (as TRL's script does).

    Per step, the chosen completion is read; a step with no chosen completion ends the solution
    there (PRM800K stops labelling at the first error), keeping its first completion rated -1 if any.
    """
    if neutral not in NEUTRAL_CHOICES:
        raise ValueError(f"neutral must be one of {sorted(NEUTRAL_CHOICES)}, not {neutral!r}")
    out = []
    for n, r in _records(path):
        where = f"{path}:{n}"
        problem = _field(_field(r, "question", dict, where), "problem", str, where)
        raw_steps = _field(_field(r, "label", dict, where), "steps", list, where)
        steps, labels, n_neutral = [], [], 0
        for k, step in enumerate(raw_steps, start=1):
            at = f"{where}: step {k}"
            if not isinstance(step, dict):
                raise FormatError(f"{at}: expected an object")
            completions = _field(step, "completions", list, at)
            if not completions:
                raise FormatError(f"{at}: no completions")
            chosen = step.get("chosen_completion")
            if chosen is not None:
                if not isinstance(chosen, int) or not 0 <= chosen < len(completions):
                    raise FormatError(f"{at}: chosen_completion {chosen!r} is not an index into {len(completions)} completions")
                picked = completions[chosen]
            else:
                picked = next((c for c in completions if isinstance(c, dict) and c.get("rating") == -1), completions[0])
            if not isinstance(picked, dict):
                raise FormatError(f"{at}: a completion should be an object")
            text = _field(picked, "text", str, at)
            rating = picked.get("rating")
            if rating not in (-1, 0, 1) or isinstance(rating, bool):
                raise FormatError(f"{at}: rating must be -1, 0 or 1, got {rating!r}")
            n_neutral += rating == 0
            steps.append(text)
            labels.append(NEUTRAL_CHOICES[neutral] if rating == 0 else rating)
            if chosen is None:
                break
        meta = {"neutral_as": neutral, "n_neutral": n_neutral}
        out.append(_sample(problem, steps, labels, meta, where))
    return out


def write_prm800k(samples: Sequence[PRMSample], path: str | Path) -> None:
    def record(s: PRMSample) -> dict[str, Any]:
        hard = _hard_labels(s, "PRM800K")
        return {
            "question": {"problem": s.problem},
            "label": {"steps": [{"completions": [{"text": t, "rating": 1 if ok else -1}], "chosen_completion": 0}
                                for t, ok in zip(s.steps, hard)]},
        }

    _write_jsonl(path, (record(s) for s in samples))


# -- Math-Shepherd: {"input": "<problem> Step 1: ... ки\nStep 2: ... ки", "label": same with +/-} ---
_STEP_PREFIX = re.compile(r"^\s*Step \d+:\s*")


def read_math_shepherd(path: str | Path) -> list[PRMSample]:
    """Each ``ки`` in ``input`` ends a step; ``label`` is the same text with each tag replaced by + or -."""
    out = []
    for n, r in _records(path):
        where = f"{path}:{n}"
        text = _field(r, "input", str, where)
        labelled = _field(r, "label", str, where)
        pieces = text.split(MATH_SHEPHERD_TAG)
        if len(pieces) < 2:
            raise FormatError(f"{where}: no {MATH_SHEPHERD_TAG!r} step tag in input")
        if pieces[-1].strip():
            raise FormatError(f"{where}: text after the last step tag: {pieces[-1][:40]!r}")
        labels, cursor = [], 0
        for piece in pieces[:-1]:
            if labelled[cursor : cursor + len(piece)] != piece:
                raise FormatError(f"{where}: label text does not match input text near {piece[:40]!r}")
            cursor += len(piece)
            mark = labelled[cursor : cursor + 1]
            if mark not in ("+", "-"):
                raise FormatError(f"{where}: expected + or - where input has a step tag, found {mark!r}")
            labels.append(1 if mark == "+" else -1)
            cursor += 1
        if labelled[cursor:] != pieces[-1]:
            raise FormatError(f"{where}: label has text the input lacks: {labelled[cursor:][:40]!r}")
        first = pieces[0]
        m = re.search(r"Step 1:", first)
        if not m:
            raise FormatError(f"{where}: no 'Step 1:' marks where the solution starts")
        problem = first[: m.start()].strip()
        steps = [_STEP_PREFIX.sub("", first[m.start():]).strip()] + [_STEP_PREFIX.sub("", p).strip() for p in pieces[1:-1]]
        meta = {k: v for k, v in r.items() if k not in ("input", "label")}
        out.append(_sample(problem, steps, labels, meta, where))
    return out


def write_math_shepherd(samples: Sequence[PRMSample], path: str | Path) -> None:
    def record(s: PRMSample) -> dict[str, Any]:
        hard = _hard_labels(s, "Math-Shepherd")
        for i, step in enumerate(s.steps):
            if MATH_SHEPHERD_TAG in step:
                raise ValueError(f"step {i + 1} contains the Math-Shepherd tag {MATH_SHEPHERD_TAG!r}")
        body = [f"Step {i + 1}: {step} " for i, step in enumerate(s.steps)]
        return {
            "input": s.problem + " " + "\n".join(b + MATH_SHEPHERD_TAG for b in body),
            "label": s.problem + " " + "\n".join(b + ("+" if ok else "-") for b, ok in zip(body, hard)),
        }

    _write_jsonl(path, (record(s) for s in samples))


# -- ProcessBench: {"problem", "steps", "label": index of the first wrong step or -1} --------------
def read_processbench(path: str | Path, skipped: list[tuple[str, str]] | None = None) -> list[PRMSample]:
    """ProcessBench labels only the earliest wrong step. Steps after it get -1 here (they build on a
    wrong step), marked ``meta['labels_after_first_error'] = 'assumed'``; train with
    ``mask_after_first_error=True`` to leave them out.

    A malformed record raises ``FormatError``, or, given a ``skipped`` list, is recorded there
    as (file:line, reason) and left out, so an evaluation can count what it could not use.
    """
    out = []
    for n, r in _records(path, skipped):
        where = f"{path}:{n}"
        try:
            problem = _field(r, "problem", str, where)
            steps = _field(r, "steps", list, where)
            label = _field(r, "label", int, where)
            if not -1 <= label < len(steps):
                raise FormatError(f"{where}: label {label} is not -1 or a step index below {len(steps)}")
            labels = [1] * len(steps) if label == -1 else [1] * label + [-1] * (len(steps) - label)
            meta = {k: v for k, v in r.items() if k not in ("problem", "steps", "label")}
            meta["labels_after_first_error"] = "assumed"
            meta["source_line"] = n
            out.append(_sample(problem, steps, labels, meta, where))
        except FormatError as err:
            if skipped is None:
                raise
            skipped.append((where, str(err).split(": ", 1)[1]))
    return out


def write_processbench(samples: Sequence[PRMSample], path: str | Path) -> None:
    _write_jsonl(
        path,
        ({"id": s.meta.get("id", f"sample-{i}"), "problem": s.problem, "steps": s.steps, "label": s.first_error}
         for i, s in enumerate(samples)),
    )


READERS = {"trl": read_trl, "prm800k": read_prm800k, "math-shepherd": read_math_shepherd, "processbench": read_processbench}
WRITERS = {"trl": write_trl, "prm800k": write_prm800k, "math-shepherd": write_math_shepherd, "processbench": write_processbench}


def read(path: str | Path, fmt: str, **options: Any) -> list[PRMSample]:
    """Read a file in one of FORMATS."""
    if fmt not in READERS:
        raise ValueError(f"unknown format {fmt!r}; known: {', '.join(FORMATS)}")
    return READERS[fmt](path, **options)


def write(samples: Sequence[PRMSample], path: str | Path, fmt: str) -> None:
    """Write samples in one of FORMATS."""
    if fmt not in WRITERS:
        raise ValueError(f"unknown format {fmt!r}; known: {', '.join(FORMATS)}")
    WRITERS[fmt](samples, path)


def convert(src: str | Path, src_format: str, dst: str | Path, dst_format: str, **options: Any) -> int:
    """Convert a file between formats; returns how many records were written."""
    samples = read(src, src_format, **options)
    write(samples, dst, dst_format)
    return len(samples)
