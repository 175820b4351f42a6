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
# malformed record; each writer takes PRMSamples. Nothing is dropped or truncated silently: what a
# format's own rules leave out (a PRM800K step nobody rated, a record with no steps) is appended to
# the reader's ``skipped`` list as (file:line, reason), and every sample's ``meta["source"]`` is the
# file:line it came from. A reason reads after a count ("1 record with no steps"); details follow in
# parentheses, so ``reason.split(" (")[0]`` groups them.
# ---------------------------------------------------------------------------------------------
FORMATS = ("trl", "prm800k", "math-shepherd", "processbench", "big-bench-mistake", "gsm8k-solutions")
MATH_SHEPHERD_TAG = "ки"

Skipped = list[tuple[str, str]]


class FormatError(ValueError):
    """A record that does not fit its file format; the message names the file and line."""


def _records(path: str | Path, skipped: Skipped | None = None) -> Iterator[tuple[int, dict[str, Any]]]:
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
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if not isinstance(value, kinds) or isinstance(value, bool) and bool not in kinds:
        expected = " or ".join("null" if k is type(None) else k.__name__ for k in kinds)
        got = "null" if value is None else type(value).__name__
        raise FormatError(f"{where}: field {name!r} should be {expected}, got {got}")
    return value


def _sample(problem: str, steps: list[str], labels: list[float], meta: dict[str, Any], where: str) -> PRMSample:
    try:
        return PRMSample(problem, steps, labels, {**meta, "source": where})
    except (ValueError, TypeError) as err:
        raise FormatError(f"{where}: {err}") from None


def _leave_out(skipped: Skipped | None, where: str, reason: str) -> None:
    """Record what a format's rules leave out, where the caller asked to know."""
    if skipped is not None:
        skipped.append((where, reason))


def _write_jsonl(path: str | Path, records: Iterable[dict[str, Any]]) -> None:
    with Path(path).open("w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")


def _hard_labels(sample: PRMSample, fmt: str) -> list[bool]:
    soft = [t for t in sample.targets if t not in (0.0, 1.0)]
    if soft:
        warnings.warn(f"{fmt} stores only hard labels: {len(soft)} soft label(s) rounded at 0.5", stacklevel=3)
    return [t >= 0.5 for t in sample.targets]


def _first_error_labels(n_steps: int, first: int | None) -> list[int]:
    """+1 before the first wrong step, -1 from it on (later steps build on it; their labels are assumed)."""
    return [1] * n_steps if first is None else [1] * first + [-1] * (n_steps - first)


# -- TRL "stepwise supervision": {"prompt", "completions": [str], "labels": [bool]} --------------
def read_trl(path: str | Path, skipped: Skipped | None = None) -> list[PRMSample]:
    """Every record is a sample; TRL's rules leave nothing out (``skipped`` is for a uniform call)."""
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


# -- PRM800K as released (openai/prm800k phase1/phase2): {"question": {"problem", ...}, "label": {"steps":
#    [{"completions": [{"text", "rating", "flagged"}] | null, "human_completion": {...} | null,
#    "chosen_completion": int | null}], "finish_reason", ...}, "labeler", ...} ----------------------------
NEUTRAL_CHOICES = {"positive": 1, "negative": -1}
HUMAN_RATING = 1  # a labeler's own step, when it carries no rating: PRM800K let labelers write "their own +1 step"
_ANSWER_HEADING = re.compile(r"(?:^|\n)[ \t]*# Answer[ \t]*(?:\n|$)")
_LINE_BREAKS = re.compile(r"\s*\n\s*")


def prm800k_step_texts(text: str) -> list[str]:
    """One PRM800K step's text as the steps it becomes, each on one line, so that neither "\\n\\n" nor
    "\\n" (the separators a model may use) occurs inside a step.

    A solution's last step ends in "\\n\\n# Answer\\n\\n<answer>": the text before the heading stays a
    step and the answer becomes a step of its own, ``"# Answer: <answer>"`` (``"# Answer"`` alone when
    it is empty). Every other run of whitespace holding a line break becomes one space (a LaTeX
    ``align``'s lines still read as LaTeX). Empty text gives no steps."""
    m = _ANSWER_HEADING.search(text)
    body, answer = (text, None) if m is None else (text[: m.start()], text[m.end():])
    pieces = [_LINE_BREAKS.sub(" ", body).strip()]
    if answer is not None:
        answer = _LINE_BREAKS.sub(" ", answer).strip()
        pieces.append(f"# Answer: {answer}" if answer else "# Answer")
    return [p for p in pieces if p]


def _rating(completion: dict[str, Any], at: str, allow_none: bool = False) -> int | None:
    rating = completion.get("rating")
    if rating is None and allow_none:
        return None
    if rating not in (-1, 0, 1) or isinstance(rating, bool):
        raise FormatError(f"{at}: rating must be -1, 0 or 1, got {rating!r}")
    return rating


def _completion(value: Any, at: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise FormatError(f"{at}: a completion should be an object, got {type(value).__name__}")
    _field(value, "text", str, at)
    return value


def _prm800k_picked(step: dict[str, Any], completions: list[dict[str, Any]], at: str
                    ) -> tuple[dict[str, Any] | None, int | None, str]:
    """The completion that is this step of the solution, its rating, and how it was picked: "chosen"
    (the solution goes on), "human" (a labeler's step replaced the rated ones; it goes on), or "last"
    (no chosen completion: labelling stopped here, at the first -1 if any). (None, None, reason) when
    nothing can stand for the step: the solution ends before it."""
    chosen = _field(step, "chosen_completion", (int, type(None)), at) if "chosen_completion" in step else None
    human = _field(step, "human_completion", (dict, type(None)), at) if "human_completion" in step else None
    if chosen is not None:
        if not 0 <= chosen < len(completions):
            raise FormatError(f"{at}: chosen_completion {chosen!r} is not an index into "
                              f"{len(completions)} completions")
        return completions[chosen], _rating(completions[chosen], at), "chosen"
    if human is not None:
        rating = _rating(_completion(human, f"{at}: human_completion"), at, allow_none=True)
        return human, HUMAN_RATING if rating is None else rating, "human"
    if not completions:
        return None, None, "step with null completions"
    rated = [(c, r) for c in completions if (r := _rating(c, at, allow_none=True)) is not None]
    if not rated:
        return None, None, "step with no rated completion"
    return next(((c, r) for c, r in rated if r == -1), rated[0]) + ("last",)


def _prm800k_record(r: dict[str, Any], where: str, neutral: str, alternatives: bool, skipped: Skipped | None
                    ) -> list[PRMSample]:
    problem = _field(_field(r, "question", dict, where), "problem", str, where)
    label = _field(r, "label", dict, where)
    raw_steps = _field(label, "steps", list, where)
    def as_label(rating: int) -> int:
        return NEUTRAL_CHOICES[neutral] if rating == 0 else rating

    meta: dict[str, Any] = {"neutral_as": neutral}
    for key, value in (("finish_reason", label.get("finish_reason")),
                       ("ground_truth_answer", r["question"].get("ground_truth_answer"))):
        if value is not None:
            meta[key] = value
    steps: list[str] = []
    labels: list[int] = []
    ratings: list[int] = []
    extra: list[PRMSample] = []
    left: list[str] = []
    human_steps: list[int] = []
    for k, step in enumerate(raw_steps, start=1):
        at = f"{where}: step {k}"
        if not isinstance(step, dict):
            raise FormatError(f"{at}: expected an object, got {type(step).__name__}")
        completions = _field(step, "completions", (list, type(None)), at) if "completions" in step else None
        completions = [_completion(c, at) for c in completions or []]
        picked, rating, how = _prm800k_picked(step, completions, at)
        if alternatives:
            for i, c in enumerate(completions):
                if c is picked:
                    continue
                alt_rating, texts = _rating(c, at, allow_none=True), prm800k_step_texts(c["text"])
                if alt_rating is None or not texts:
                    left.append(f"alternative left out ({'unrated' if alt_rating is None else 'empty'}: step {k}, "
                                f"completion {i})")
                    continue
                alt = steps + texts, labels + [as_label(alt_rating)] * len(texts)
                alt_meta = {**meta, "n_neutral": ratings.count(0) + (alt_rating == 0),
                            "alternative": {"step": k, "completion": i}}
                extra.append(_sample(problem, *alt, alt_meta, where))
        texts = prm800k_step_texts(picked["text"]) if picked is not None else []
        if picked is not None and not texts:
            how = "step with empty text"
        if not texts:
            if k == 1:
                left.append(f"record with no steps (its first step: {how})")
            else:
                left.append(f"{how} (step {k}: the solution ends at step {k - 1})")
            break
        if how == "human":
            human_steps.append(len(steps))
        steps += texts
        labels += [as_label(rating)] * len(texts)
        ratings.append(rating)
        if how == "last":
            if k < len(raw_steps):
                left.append(f"record with steps after an unchosen step ({len(raw_steps) - k} after step {k}, "
                            "where the solution ends)")
            break
    if not raw_steps:
        left.append("record with no steps (label.steps is empty)")
    for reason in left:
        _leave_out(skipped, where, reason)
    if not steps:
        return extra
    meta.update(n_neutral=ratings.count(0))
    if human_steps:
        meta["human_steps"] = human_steps
    return [_sample(problem, steps, labels, meta, where)] + extra


def read_prm800k(path: str | Path, neutral: str = "positive", alternatives: bool = False,
                 skipped: Skipped | None = None) -> list[PRMSample]:
    """PRM800K as released: one labelled solution a line, ratings -1/0/+1 per step.

    * ``neutral``: what a 0 ("neutral": neither helps nor harms) becomes, ``"positive"`` (the default, as
      in Qwen's PRM800K baseline) or ``"negative"`` (as TRL's script does). ``meta["n_neutral"]`` counts them.
    * The solution is each step's chosen completion; where a labeler wrote their own step instead
      (phase 1's ``human_completion``, ``chosen_completion`` null) that step is used, with its own rating
      if it has one, else +1 (``HUMAN_RATING``: labelers were asked to write a correct step); its index
      is in ``meta["human_steps"]``. A step with neither ends the solution there (labelling stopped):
      it keeps its first completion rated -1, else its first rated one. A step with null completions and
      nothing else ends the solution before it.
    * Step text is made separator-safe (``prm800k_step_texts``): the final "\\n\\n# Answer\\n\\n42"
      becomes a step of its own, ``"# Answer: 42"``, with the rating of the step it came from; other
      line breaks become spaces. The samples pass ``validate_solution`` with separator "\\n\\n" and "\\n".
    * ``alternatives=True``: each rated completion that is not the step of the solution becomes a sample
      of its own, the solution so far plus that completion, labelled with its rating (as TRL's converter
      did); ``meta["alternative"]`` says which step and completion.

    Left out and appended to ``skipped`` (not an error): steps dropped by these rules, unrated or empty
    alternatives, and records with no steps. A record that is not shaped like PRM800K's (not JSON,
    wrong types, a rating other than -1/0/1) raises ``FormatError`` naming file:line.
    """
    if neutral not in NEUTRAL_CHOICES:
        raise ValueError(f"neutral must be one of {sorted(NEUTRAL_CHOICES)}, not {neutral!r}")
    out = []
    for n, r in _records(path):
        out += _prm800k_record(r, f"{path}:{n}", neutral, alternatives, skipped)
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


def read_math_shepherd(path: str | Path, skipped: Skipped | None = None) -> list[PRMSample]:
    """Each ``ки`` in ``input`` ends a step; ``label`` is the same text with each tag replaced by + or -.
    The problem ends at the last "Step 1:" before the first tag (a problem may itself say "Step 1:").
    Every record is a sample (``skipped`` is for a uniform call)."""
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
        start = first.rfind("Step 1:")
        if start < 0:
            raise FormatError(f"{where}: no 'Step 1:' marks where the solution starts")
        problem = first[:start].strip()
        steps = [_STEP_PREFIX.sub("", first[start:]).strip()] + [_STEP_PREFIX.sub("", p).strip() for p in pieces[1:-1]]
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
def subset_of(record: dict[str, Any]) -> str | None:
    """A ProcessBench record's subset: its ``subset`` field, else its own ``source`` field, else the prefix of
    its ``id`` before a final ``-N`` (ProcessBench's own ids: ``gsm8k-12``, ``omnimath-3``); None if none.

    A sample read from a file holds it as ``meta["subset"]`` (None where there is none), since its
    ``meta["source"]`` is the file:line it came from; a ``subset`` key is therefore final."""
    if "subset" in record:
        return record["subset"] if isinstance(record["subset"], str) and record["subset"] else None
    if isinstance(record.get("source"), str) and record["source"]:
        return record["source"]
    match = re.fullmatch(r"(.+)-\d+", str(record.get("id", "")))
    return match.group(1) if match else None


def read_processbench(path: str | Path, skipped: Skipped | None = None) -> list[PRMSample]:
    """ProcessBench labels only the earliest wrong step. Steps after it get -1 here (they build on a
    wrong step), marked ``meta['labels_after_first_error'] = 'assumed'``; train with
    ``mask_after_first_error=True`` to leave them out.

    A malformed record raises ``FormatError``, or, given a ``skipped`` list, is recorded there
    as (file:line, reason) and left out, so an evaluation can count what it could not use.
    ``meta["subset"]`` is the record's subset (``subset_of``), or None.
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
            labels = _first_error_labels(len(steps), None if label == -1 else label)
            meta = {k: v for k, v in r.items() if k not in ("problem", "steps", "label")}
            meta["labels_after_first_error"] = "assumed"
            meta["source_line"] = n
            meta["subset"] = subset_of(r)
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


# -- BIG-Bench Mistake (Tyen et al. 2024): {"input", "steps": [str], "answer", "target", "mistake_index"} --
def read_big_bench_mistake(path: str | Path, skipped: Skipped | None = None) -> list[PRMSample]:
    """People (a script, for Dyck languages) marked each trace's first logical mistake, ``mistake_index``
    (0-based, null for none). Steps before it +1, it -1, and the steps after it -1 as well, marked
    ``meta['labels_after_first_error'] = 'assumed'`` as ProcessBench's are; train with
    ``mask_after_first_error=True`` to leave them out. ``meta`` keeps ``answer`` (the trace's), ``target``
    (the right one) and ``task`` (the file's stem, e.g. multistep_arithmetic).

    An empty step (one Dyck trace has one) is left out and appended to ``skipped``; the mistake keeps
    its step. A record whose mistaken step is empty, or with no steps, is left out the same way.
    """
    task = Path(path).stem
    out = []
    for n, r in _records(path):
        where = f"{path}:{n}"
        problem = _field(r, "input", str, where)
        steps = _field(r, "steps", list, where)
        mistake = _field(r, "mistake_index", (int, type(None)), where)
        answer = _field(r, "answer", (str, type(None)), where)
        target = _field(r, "target", (str, type(None)), where)
        if mistake is not None and not 0 <= mistake < len(steps):
            raise FormatError(f"{where}: mistake_index {mistake} is not null or a step index below {len(steps)}")
        labels = _first_error_labels(len(steps), mistake)
        empty = [i for i, s in enumerate(steps) if isinstance(s, str) and not s.strip()]
        if mistake in empty or len(empty) == len(steps):
            _leave_out(skipped, where, "record with no steps" if mistake not in empty
                       else f"record whose mistaken step is empty (step {mistake + 1})")
            continue
        for i in empty:
            _leave_out(skipped, where, f"empty step (step {i + 1})")
        kept = [i for i in range(len(steps)) if i not in empty]
        meta = {"answer": answer, "target": target, "task": task, "labels_after_first_error": "assumed"}
        out.append(_sample(problem, [steps[i] for i in kept], [labels[i] for i in kept], meta, where))
    return out


def write_big_bench_mistake(samples: Sequence[PRMSample], path: str | Path) -> None:
    _write_jsonl(
        path,
        ({"input": s.problem, "steps": s.steps, "answer": s.meta.get("answer"), "target": s.meta.get("target"),
          "mistake_index": None if s.first_error < 0 else s.first_error} for s in samples),
    )


# -- GSM8K's example_model_solutions.jsonl (Cobbe et al. 2021): {"question", "ground_truth",
#    "6b_finetuning": {"is_correct", "solution"}, ...} -------------------------------------------------------
GSM8K_SOLVERS = ("6b_finetuning", "6b_verification", "175b_finetuning", "175b_verification")


def read_gsm8k_solutions(path: str | Path, skipped: Skipped | None = None) -> list[PRMSample]:
    """Four model solutions a question, one sample each (``GSM8K_SOLVERS`` order); the steps are a solution's
    non-blank lines (the last is usually "A: <answer>").

    These are OUTCOME labels, not step labels: GSM8K says only whether the final answer is right, so
    every step carries it (+1 on all steps if right, -1 on all if wrong) and ``meta`` holds
    ``final_answer_correct``, ``source_model`` (the solution's key), ``ground_truth`` and
    ``labels: "outcome"``. Train an ORM on them (objective "orm", outcome
    ``meta["final_answer_correct"]``); as PRM step labels they would call every step of a wrong
    solution wrong. A solution with no lines is left out and appended to ``skipped``.
    """
    out = []
    for n, r in _records(path):
        where = f"{path}:{n}"
        question = _field(r, "question", str, where)
        ground_truth = _field(r, "ground_truth", str, where)
        for key in GSM8K_SOLVERS:
            solution = _field(r, key, dict, where)
            correct = _field(solution, "is_correct", bool, f"{where}: {key}")
            text = _field(solution, "solution", str, f"{where}: {key}")
            steps = [line.strip() for line in text.split("\n") if line.strip()]
            if not steps:
                _leave_out(skipped, where, f"solution with no steps ({key})")
                continue
            meta = {"final_answer_correct": correct, "source_model": key, "ground_truth": ground_truth,
                    "labels": "outcome"}
            out.append(_sample(question, steps, [1 if correct else -1] * len(steps), meta, where))
    return out


def _no_writer(fmt: str, why: str) -> Any:
    def refuse(samples: Sequence[PRMSample], path: str | Path) -> None:
        raise ValueError(f"{fmt} files can be read but not written: {why}")

    return refuse


READERS = {"trl": read_trl, "prm800k": read_prm800k, "math-shepherd": read_math_shepherd,
           "processbench": read_processbench, "big-bench-mistake": read_big_bench_mistake,
           "gsm8k-solutions": read_gsm8k_solutions}
WRITERS = {"trl": write_trl, "prm800k": write_prm800k, "math-shepherd": write_math_shepherd,
           "processbench": write_processbench, "big-bench-mistake": write_big_bench_mistake,
           "gsm8k-solutions": _no_writer("gsm8k-solutions", "a record holds four given models' solutions of one "
                                         "question with outcome labels only; write trl or processbench instead")}


def read(path: str | Path, fmt: str, **options: Any) -> list[PRMSample]:
    """Read a file in one of FORMATS; ``options`` go to its reader (e.g. ``skipped=[]``, prm800k's ``neutral``)."""
    if fmt not in READERS:
        raise ValueError(f"unknown format {fmt!r}; known: {', '.join(FORMATS)}")
    return READERS[fmt](path, **options)


def write(samples: Sequence[PRMSample], path: str | Path, fmt: str) -> None:
    """Write samples in one of FORMATS (gsm8k-solutions is read-only: an error that says so)."""
    if fmt not in WRITERS:
        raise ValueError(f"unknown format {fmt!r}; known: {', '.join(FORMATS)}")
    WRITERS[fmt](samples, path)


def convert(src: str | Path, src_format: str, dst: str | Path, dst_format: str, **options: Any) -> int:
    """Convert a file between formats; returns how many records were written."""
    samples = read(src, src_format, **options)
    write(samples, dst, dst_format)
    return len(samples)
