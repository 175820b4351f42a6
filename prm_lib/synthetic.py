"""Synthetic arithmetic word problems with step-by-step solutions and true step labels.

Chapter 3 of the course. Everything is reproducible from a seed. A problem is a
starting quantity followed by 1-4 operations ("buys 5 more", "gives away 3",
"doubles", "shares equally among 4 friends and keeps one share"); a solution
computes one operation per step and ends with "The answer is N.".

Error kinds (at most one error is planted per solution):

* ``arithmetic_slip``: right operands, wrong result (``12 + 5 = 18``).
* ``wrong_operation``: the step's own words say one operation, its equation
  does another (``After giving away 3: 17 + 3 = 20``).
* ``wrong_number``: an operand copied wrong, from the problem or the previous
  step (``After buying 5 more: 12 + 6 = 18``).
* ``inconsistent_answer``: the final answer differs from the last result.

Labels follow the seed's convention: the erroneous step and every later step
that builds on its wrong value are -1. A *self-correction* ("Wait, let me
check: 12 + 5 = 17.") re-derives the right value: it and the steps after it are
+1, as in the seed's 15 / 3 example, so the solution's answer is right although
one step was wrong.

What a 135M model learns in a short CPU run (chapter 5 measures it): errors visible within
one step or against the step before it. Every kind here can be checked that way:
a slip or wrong operation within the step, a wrong number against the problem
sentence or the previous result, an inconsistent answer against the last step.
Slips are small (off by 1, 2 or 10), so they need the arithmetic itself; they
are the hardest kind for the small backbone.

Splits: a problem's split is a hash of its text (80% train, 10% validation,
10% test), so splits never share a problem, however many sets are generated.
"""

from __future__ import annotations

import hashlib
import re
import random
from dataclasses import dataclass
from typing import Collection, Sequence

from .data import PRMSample

ERROR_KINDS = ("arithmetic_slip", "wrong_operation", "wrong_number", "inconsistent_answer")
SPLITS = ("train", "validation", "test")

NAMES = ["Sam", "Ava", "Noor", "Leo", "Mia", "Kofi", "Yuki", "Ines", "Omar", "Lena", "Ravi", "Zoe"]
ITEMS = ["apples", "stickers", "marbles", "coins", "books", "pencils", "cards", "shells", "stamps", "beads"]
SYMBOL = {"add": "+", "sub": "-", "mul": "×", "div": "÷"}
DIRECT_SYMBOL = {"add": "+", "sub": "-", "mul": "×", "div": "/"}  # as the seed writes them
DIRECT_INTRO = {"add": "I need to add {a} and {b}.", "sub": "I need to subtract {b} from {a}.",
                "mul": "I need to multiply {a} by {b}.", "div": "I need to divide {a} by {b}."}


@dataclass(frozen=True)
class Operation:
    kind: str  # add, sub, mul, div
    operand: int

    def apply(self, value: int) -> int:
        if self.kind == "add":
            return value + self.operand
        if self.kind == "sub":
            return value - self.operand
        if self.kind == "mul":
            return value * self.operand
        return value // self.operand

    def clause(self) -> str:
        """How the problem sentence states it."""
        x = self.operand
        return {
            "add": f"gets {x} more",
            "sub": f"gives away {x}",
            "mul": {2: "doubles them", 3: "triples them"}.get(x, f"multiplies them by {x}"),
            "div": f"shares them equally among {x} friends and keeps one share",
        }[self.kind]

    def step_words(self) -> str:
        """How a solution step names it."""
        x = self.operand
        return {
            "add": f"After getting {x} more",
            "sub": f"After giving away {x}",
            "mul": {2: "After doubling", 3: "After tripling"}.get(x, f"After multiplying by {x}"),
            "div": f"After sharing among {x} and keeping one share",
        }[self.kind]


@dataclass(frozen=True)
class Problem:
    name: str
    item: str
    start: int
    ops: tuple[Operation, ...]
    direct: bool = False  # the seed's style: "What is 9 × 2?", one operation, no story

    @property
    def text(self) -> str:
        if self.direct:
            return f"What is {self.start} {DIRECT_SYMBOL[self.ops[0].kind]} {self.ops[0].operand}?"
        clauses = ", then ".join(op.clause() for op in self.ops)
        return f"{self.name} has {self.start} {self.item}. {self.name} {clauses}. How many {self.item} does {self.name} have now?"

    @property
    def values(self) -> list[int]:
        """Running values: start, then after each operation."""
        out = [self.start]
        for op in self.ops:
            out.append(op.apply(out[-1]))
        return out

    @property
    def answer(self) -> int:
        return self.values[-1]

    @property
    def split(self) -> str:
        return split_of(self.text)


# The problems of the seed tutorial, as its text writes them: a training set built with
# ``generate(..., held_out=SEED_PROBLEMS)`` never contains the examples the book then tests on.
SEED_PROBLEMS = ("What is 2 + 3?", "What is 5 + 7?", "What is 8 × 3?", "What is 10 - 4?", "What is 15 / 3?",
                 "What is 6 + 4?", "What is 9 × 2?", "What is 7 × 8?", "What is 12 / 4?", "What is 15% of 80?")


def split_of(problem_text: str) -> str:
    """Deterministic split of a problem from its text: 80/10/10 train/validation/test."""
    bucket = int(hashlib.sha256(problem_text.encode()).hexdigest(), 16) % 10
    return "train" if bucket < 8 else ("validation" if bucket == 8 else "test")


def random_operation(rng: random.Random, value: int) -> Operation:
    choices = ["add", "add", "sub", "sub"]
    if value <= 30:
        choices.append("mul")
    divisors = [d for d in (2, 3, 4, 5) if value % d == 0 and value // d >= 2]
    if divisors:
        choices.append("div")
    kind = rng.choice(choices)
    if kind == "add":
        return Operation("add", rng.randint(2, 20))
    if kind == "sub":
        return Operation("sub", rng.randint(1, max(1, value - 1))) if value > 1 else Operation("add", rng.randint(2, 20))
    if kind == "mul":
        return Operation("mul", rng.choice([2, 2, 3, 4]))
    return Operation("div", rng.choice(divisors))


def random_direct_problem(rng: random.Random) -> Problem:
    """A seed-style problem: one operation on small numbers (times tables, sums below 100)."""
    kind = rng.choice(["add", "sub", "mul", "div"])
    if kind == "add":
        a, b = rng.randint(2, 50), rng.randint(2, 50)
    elif kind == "sub":
        a = rng.randint(10, 60)
        b = rng.randint(1, a - 1)
    elif kind == "mul":
        a, b = rng.randint(2, 12), rng.randint(2, 12)
    else:
        b, q = rng.randint(2, 12), rng.randint(2, 12)
        a = b * q
    return Problem("", "", a, (Operation(kind, b),), direct=True)


def random_problem(rng: random.Random, n_ops: int | None = None, max_ops: int = 4, direct_rate: float = 0.0) -> Problem:
    if n_ops is None and rng.random() < direct_rate:
        return random_direct_problem(rng)
    n_ops = n_ops or rng.randint(1, max_ops)
    start = rng.randint(3, 30)
    ops, value = [], start
    for _ in range(n_ops):
        op = random_operation(rng, value)
        ops.append(op)
        value = op.apply(value)
    return Problem(rng.choice(NAMES), rng.choice(ITEMS), start, tuple(ops))


def _op_step(op: Operation, left: int, operand: int, result: int, kind: str | None = None, direct: bool = False) -> str:
    if direct:
        return f"{left} {DIRECT_SYMBOL[kind or op.kind]} {operand} = {result}."
    return f"{op.step_words()}: {left} {SYMBOL[kind or op.kind]} {operand} = {result}."


def _slip(rng: random.Random, value: int) -> int:
    for _ in range(20):
        wrong = value + rng.choice([-10, -2, -1, 1, 2, 10])
        if wrong >= 0 and wrong != value:
            return wrong
    return value + 1


def wrong_step(op: Operation, value: int, k: int, error: str, rng: random.Random) -> tuple[int, int, int, str]:
    """What a step shows when ``error`` strikes operation ``op`` (the ``k``-th) applied to ``value``:
    (left operand, right operand, result, operation kind). Used by ``solve`` and by the simulated
    policy's systematic misreadings."""
    if error == "arithmetic_slip":
        return (value, op.operand, _slip(rng, op.apply(value)), op.kind)
    if error == "wrong_operation":
        alt = {"add": "sub", "sub": "add", "mul": "add", "div": "sub"}[op.kind]
        if alt == "sub" and op.operand > value:
            alt = "add"
        return (value, op.operand, Operation(alt, op.operand).apply(value), alt)
    if error != "wrong_number":
        raise ValueError(f"{error!r} is not an error of one operation step")
    # wrong_number: from the problem (the operand) or from the previous step (the left side)
    if k > 0 and rng.random() < 0.5:
        left = _slip(rng, value)
        return (left, op.operand, Operation(op.kind, op.operand).apply(left), op.kind)
    low = 2 if op.kind in ("mul", "div") else 1
    high = value if op.kind == "sub" else op.operand + 3
    options = [x for x in range(op.operand - 3, op.operand + 4) if low <= x <= high and x != op.operand]
    operand = rng.choice(options or [op.operand + 1])
    return (value, operand, Operation(op.kind, operand).apply(value), op.kind)


def solve(
    problem: Problem,
    rng: random.Random,
    error: str | None = None,
    correct_after: bool = False,
    restate: bool | None = None,
) -> PRMSample:
    """Write a step-by-step solution, planting ``error`` (one of ERROR_KINDS) or none.

    ``correct_after`` adds a self-correction right after a wrong operation step.
    """
    if error is not None and error not in ERROR_KINDS:
        raise ValueError(f"unknown error kind {error!r}; known: {ERROR_KINDS}")
    restate = rng.random() < 0.5 if restate is None else restate
    steps: list[str] = []
    labels: list[int] = []
    if problem.direct:
        op = problem.ops[0]
        steps.append(DIRECT_INTRO[op.kind].format(a=problem.start, b=op.operand))
        labels.append(1)
    elif restate:
        steps.append(f"{problem.name} starts with {problem.start} {problem.item}.")
        labels.append(1)
    n_ops = len(problem.ops)
    # where the error goes: an operation step, or the answer step
    error_at = n_ops if error == "inconsistent_answer" else (rng.randrange(n_ops) if error else None)
    value, tainted, corrected = problem.start, False, False
    for k, op in enumerate(problem.ops):
        true_result = op.apply(value)
        if k == error_at:
            shown = wrong_step(op, value, k, error, rng)
            steps.append(_op_step(op, shown[0], shown[1], shown[2], shown[3], problem.direct))
            labels.append(-1)
            if shown[2] == true_result:  # an accidental right value (e.g. 2 + 2 vs 2 × 2): not an error
                labels[-1] = 1
                value = true_result
                continue
            if correct_after:
                symbol = (DIRECT_SYMBOL if problem.direct else SYMBOL)[op.kind]
                steps.append(f"Wait, let me check: {value} {symbol} {op.operand} = {true_result}.")
                labels.append(1)
                value, corrected = true_result, True
            else:
                value, tainted = shown[2], True
            continue
        result = op.apply(value) if not tainted else Operation(op.kind, op.operand).apply(value)
        steps.append(_op_step(op, value, op.operand, result, direct=problem.direct))
        labels.append(-1 if tainted else 1)
        value = result
    final = value
    if error_at == n_ops:
        final = _slip(rng, value)
        labels.append(-1)
    else:
        labels.append(-1 if tainted else 1)
    steps.append(f"The answer is {final}.")
    meta = {
        "answer": problem.answer,
        "final_answer": final,
        "error_kind": error if -1 in labels or corrected else None,
        "corrected": corrected,
        "split": problem.split,
        "n_ops": n_ops,
        "direct": problem.direct,
    }
    return PRMSample(problem.text, steps, labels, meta)


def _check_attempts(attempts: int, n: int, found: int, split: str | None, direct_rate: float) -> None:
    """Stop a search for distinct problems that cannot succeed: a split (seed-style problems above all,
    a few thousand in all) holds only so many, and without a bound the loop would never end."""
    if attempts > 50 * n + 1000:
        raise RuntimeError(f"could not find {n} distinct {split} problems (found {found} in {attempts - 1} draws, "
                           f"direct_rate={direct_rate}): the split holds fewer; ask for fewer or use another split")


def generate(
    n: int,
    seed: int = 0,
    split: str | None = "train",
    error_rate: float = 0.5,
    correction_rate: float = 0.15,
    error_kinds: Sequence[str] = ERROR_KINDS,
    n_ops: int | None = None,
    max_ops: int = 4,
    direct_rate: float = 0.0,
    error_weights: dict[str, float] | None = None,
    held_out: Collection[str] = (),
) -> list[PRMSample]:
    """``n`` solutions of distinct problems in ``split`` (None: any), each wrong with ``error_rate``;
    word problems have ``n_ops`` operations, or 1 to ``max_ops`` at random; a ``direct_rate``
    share are seed-style one-operation problems ("What is 9 × 2?"). The error kind is drawn
    uniformly from ``error_kinds``, or in proportion to ``error_weights`` (kind -> weight, 1 if absent).
    Problems whose text is in ``held_out`` (e.g. ``SEED_PROBLEMS``) are never written."""
    if split is not None and split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; known: {SPLITS}")
    kinds = list(error_kinds)
    unknown = sorted(set(error_weights or {}) - set(kinds))
    if unknown:
        raise ValueError(f"error_weights names {unknown}, which are not among the error kinds {kinds}")
    weights = [float((error_weights or {}).get(k, 1.0)) for k in kinds]
    if any(w < 0 for w in weights) or not sum(weights) > 0:
        raise ValueError(f"error_weights must be non-negative with a positive sum, got {error_weights}")
    rng = random.Random(seed)
    out: list[PRMSample] = []
    seen: set[str] = set()
    attempts = 0
    while len(out) < n:
        attempts += 1
        _check_attempts(attempts, n, len(out), split, direct_rate)
        problem = random_problem(rng, n_ops, max_ops, direct_rate)
        if problem.text in seen or problem.text in held_out or (split is not None and problem.split != split):
            continue
        seen.add(problem.text)
        if rng.random() < error_rate:
            error = rng.choice(kinds) if error_weights is None else rng.choices(kinds, weights)[0]
        else:
            error = None
        correct_after = error in ("arithmetic_slip", "wrong_number") and rng.random() < correction_rate
        out.append(solve(problem, rng, error, correct_after))
    return out


def times_table_probe(splits: Sequence[str] = ("validation", "test"), seed: int = 0) -> list[PRMSample]:
    """Every fact a × b (a, b from 2 to 12) whose seed-style problem lies in ``splits`` (by default the
    ones no training set holds), written once right and once slipped (off by 1, 2 or 10), as
    three-step solutions: a probe of whether a PRM checks multiplication on facts it never trained on."""
    unknown = sorted(set(splits) - set(SPLITS))
    if unknown:
        raise ValueError(f"unknown split(s) {unknown}; known: {SPLITS}")
    rng = random.Random(seed)
    out: list[PRMSample] = []
    for a in range(2, 13):
        for b in range(2, 13):
            problem = Problem("", "", a, (Operation("mul", b),), direct=True)
            if problem.split not in splits:
                continue
            for error in (None, "arithmetic_slip"):
                out.append(solve(problem, rng, error, correct_after=False))
    return out


def problems(n: int, seed: int = 0, split: str | None = "test", max_ops: int = 4, direct_rate: float = 0.0) -> list[Problem]:
    """``n`` distinct problems of a split, for policies to solve (best-of-N, search)."""
    rng = random.Random(seed)
    out: list[Problem] = []
    seen: set[str] = set()
    attempts = 0
    while len(out) < n:
        attempts += 1
        _check_attempts(attempts, n, len(out), split, direct_rate)
        p = random_problem(rng, max_ops=max_ops, direct_rate=direct_rate)
        if p.text not in seen and (split is None or p.split == split):
            seen.add(p.text)
            out.append(p)
    return out




_CLAUSES = [
    (re.compile(r"gets (\d+) more"), lambda x: Operation("add", x)),
    (re.compile(r"gives away (\d+)"), lambda x: Operation("sub", x)),
    (re.compile(r"doubles them"), lambda x: Operation("mul", 2)),
    (re.compile(r"triples them"), lambda x: Operation("mul", 3)),
    (re.compile(r"multiplies them by (\d+)"), lambda x: Operation("mul", x)),
    (re.compile(r"shares them equally among (\d+) friends and keeps one share"), lambda x: Operation("div", x)),
]
_PROBLEM = re.compile(r"^(\w+) has (\d+) (\w+)\. \1 (.+)\. How many \3 does \1 have now\?$")


_DIRECT = re.compile(r"^What is (\d+) ([+\-×/]) (\d+)\?$")


def parse_problem(text: str) -> Problem:
    """The inverse of ``Problem.text``: lets a simulated policy solve any generated problem from its text."""
    d = _DIRECT.match(text)
    if d:
        kind = {v: k for k, v in DIRECT_SYMBOL.items()}[d.group(2)]
        return Problem("", "", int(d.group(1)), (Operation(kind, int(d.group(3))),), direct=True)
    m = _PROBLEM.match(text)
    if not m:
        raise ValueError(f"not a synthetic problem: {text[:80]!r}")
    name, start, item, clauses = m.group(1), int(m.group(2)), m.group(3), m.group(4)
    ops = []
    for clause in clauses.split(", then "):
        for pattern, make in _CLAUSES:
            c = pattern.fullmatch(clause)
            if c:
                ops.append(make(int(c.group(1)) if c.groups() else 0))
                break
        else:
            raise ValueError(f"unknown operation {clause!r} in {text[:80]!r}")
    problem = Problem(name, item, start, tuple(ops))
    if problem.text != text:
        raise ValueError(f"not a synthetic problem: {text[:80]!r}")
    return problem
