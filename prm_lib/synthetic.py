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

Labels follow the per-step convention (chapter 1), as the naive tutorial's do:
the erroneous step and every later step that builds on its wrong value are -1.
A *self-correction* ("Wait, let me check: 12 + 5 = 17.") re-derives the right
value: it and the steps after it are +1, as in the naive tutorial's 15 / 3
example, so the solution's answer is right although one step was wrong.

What a 135M model learns in a short CPU run (chapter 5 measures it): errors visible within
one step or against the step before it. Every kind here can be checked that way:
a slip or wrong operation within the step, a wrong number against the problem
sentence or the previous result, an inconsistent answer against the last step.
Slips are small (off by 1, 2 or 10), so they need the arithmetic itself; they
are the hardest kind for the small backbone.

Reading it back: the module owns the language both ways. Every phrase is a template constant
(``CLAUSES``, ``EQUATION``, ``ANSWER_STEP``, ...) that the renderers format and the parsers compile,
so ``parse_problem``, ``parse_equation``, ``equation_holds``, ``is_operation_step``,
``prm_lib.answers.states_answer`` and ``state_after`` read exactly what ``solve`` and the policies write.

Splits: a problem's split is a hash of its text (80% train, 10% validation,
10% test), so splits never share a problem, however many sets are generated.
"""

from __future__ import annotations

import hashlib
import re
import random
import string
from dataclasses import dataclass
from typing import Collection, Sequence

from .answers import ANSWER_PHRASE, states_answer
from .data import PRMSample

ERROR_KINDS = ("arithmetic_slip", "wrong_operation", "wrong_number", "inconsistent_answer")
SPLITS = ("train", "validation", "test")

NAMES = ["Sam", "Ava", "Noor", "Leo", "Mia", "Kofi", "Yuki", "Ines", "Omar", "Lena", "Ravi", "Zoe"]
ITEMS = ["apples", "stickers", "marbles", "coins", "books", "pencils", "cards", "shells", "stamps", "beads"]
SYMBOL = {"add": "+", "sub": "-", "mul": "×", "div": "÷"}
DIRECT_SYMBOL = {"add": "+", "sub": "-", "mul": "×", "div": "/"}  # as the naive tutorial writes them
SYMBOL_KIND = {symbol: kind for table in (SYMBOL, DIRECT_SYMBOL) for kind, symbol in table.items()}
DIRECT_INTRO = {"add": "I need to add {a} and {b}.", "sub": "I need to subtract {b} from {a}.",
                "mul": "I need to multiply {a} by {b}.", "div": "I need to divide {a} by {b}."}

# The text of the language, each phrase written once: the renderers format these templates and the
# parsers compile them (``_template_regex``), so what is written and what is read cannot drift apart.
WORD_PROBLEM = "{name} has {start} {item}. {name} {clauses}. How many {item} does {name} have now?"
DIRECT_PROBLEM = "What is {start} {symbol} {operand}?"
CLAUSE_JOIN = ", then "
CLAUSES = {"add": "gets {x} more", "sub": "gives away {x}", "mul": "multiplies them by {x}",
           "div": "shares them equally among {x} friends and keeps one share"}
STEP_WORDS = {"add": "After getting {x} more", "sub": "After giving away {x}", "mul": "After multiplying by {x}",
              "div": "After sharing among {x} and keeping one share"}
NAMED_CLAUSES = {("mul", 2): "doubles them", ("mul", 3): "triples them"}  # small multipliers have words of their own
NAMED_STEP_WORDS = {("mul", 2): "After doubling", ("mul", 3): "After tripling"}
EQUATION = "{left} {symbol} {right} = {result}"
OPERATION_STEP = "{words}: {equation}."  # a word problem's step
DIRECT_STEP = "{equation}."  # a one-operation problem's step
RESTATE_STEP = "{name} starts with {start} {item}."
CHECK_STEP = "Wait, let me check: {equation}."  # a self-correction: the right equation, after a wrong one
RECOVERY_STEP = "Wait, that is wrong; recomputing from the start gives {value}."  # a policy's own fix
ANSWER_STEP = "The " + ANSWER_PHRASE + " {value}."


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
        return NAMED_CLAUSES.get((self.kind, self.operand)) or CLAUSES[self.kind].format(x=self.operand)

    def step_words(self) -> str:
        """How a solution step names it."""
        return NAMED_STEP_WORDS.get((self.kind, self.operand)) or STEP_WORDS[self.kind].format(x=self.operand)


@dataclass(frozen=True)
class Problem:
    name: str
    item: str
    start: int
    ops: tuple[Operation, ...]
    direct: bool = False  # the naive tutorial's kind: "What is 9 × 2?", one operation, no story

    @property
    def text(self) -> str:
        if self.direct:
            return DIRECT_PROBLEM.format(start=self.start, symbol=DIRECT_SYMBOL[self.ops[0].kind], operand=self.ops[0].operand)
        clauses = CLAUSE_JOIN.join(op.clause() for op in self.ops)
        return WORD_PROBLEM.format(name=self.name, start=self.start, item=self.item, clauses=clauses)

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


# The problems of the naive tutorial, as its text writes them: a training set built with
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
    """A problem of the naive tutorial's kind: one operation on small numbers (times tables, sums below 100)."""
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


def format_equation(left: int, kind: str, right: int, result: int, direct: bool = False) -> str:
    """``left symbol right = result``, with the naive tutorial's symbols (``/``) for a direct problem."""
    return EQUATION.format(left=left, symbol=(DIRECT_SYMBOL if direct else SYMBOL)[kind], right=right, result=result)


def operation_step(op: Operation, left: int, operand: int, result: int, kind: str | None = None, direct: bool = False) -> str:
    """The step that applies ``op`` (named by its words), showing ``left (kind or op.kind) operand = result``."""
    equation = format_equation(left, kind or op.kind, operand, result, direct)
    return DIRECT_STEP.format(equation=equation) if direct else OPERATION_STEP.format(words=op.step_words(), equation=equation)


def opening_step(problem: Problem) -> str:
    """The step before the first operation: a direct problem's "I need to ...", a word problem's restated start."""
    if problem.direct:
        return DIRECT_INTRO[problem.ops[0].kind].format(a=problem.start, b=problem.ops[0].operand)
    return RESTATE_STEP.format(name=problem.name, start=problem.start, item=problem.item)


def answer_step(value: int | str) -> str:
    """The last step of a solution: ``The answer is {value}.``"""
    return ANSWER_STEP.format(value=value)


def recovery_step(value: int) -> str:
    """A policy noticing a wrong value and recomputing: the running value becomes ``value``."""
    return RECOVERY_STEP.format(value=value)


def slip(rng: random.Random, value: int) -> int:
    """An arithmetic slip, the error a step shows: ``value`` off by 1, 2 or 10, not below zero where it can be helped."""
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
        return (value, op.operand, slip(rng, op.apply(value)), op.kind)
    if error == "wrong_operation":
        alt = {"add": "sub", "sub": "add", "mul": "add", "div": "sub"}[op.kind]
        if alt == "sub" and op.operand > value:
            alt = "add"
        return (value, op.operand, Operation(alt, op.operand).apply(value), alt)
    if error != "wrong_number":
        raise ValueError(f"{error!r} is not an error of one operation step")
    # wrong_number: from the problem (the operand) or from the previous step (the left side)
    if k > 0 and rng.random() < 0.5:
        left = slip(rng, value)
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
    if problem.direct or restate:
        steps.append(opening_step(problem))
        labels.append(1)
    n_ops = len(problem.ops)
    # where the error goes: an operation step, or the answer step
    error_at = n_ops if error == "inconsistent_answer" else (rng.randrange(n_ops) if error else None)
    value, tainted, corrected = problem.start, False, False
    for k, op in enumerate(problem.ops):
        true_result = op.apply(value)
        if k == error_at:
            shown = wrong_step(op, value, k, error, rng)
            steps.append(operation_step(op, shown[0], shown[1], shown[2], shown[3], problem.direct))
            labels.append(-1)
            if shown[2] == true_result:  # an accidental right value (e.g. 2 + 2 vs 2 × 2): not an error
                labels[-1] = 1
                value = true_result
                continue
            if correct_after:
                steps.append(CHECK_STEP.format(equation=format_equation(value, op.kind, op.operand, true_result, problem.direct)))
                labels.append(1)
                value, corrected = true_result, True
            else:
                value, tainted = shown[2], True
            continue
        result = op.apply(value)
        steps.append(operation_step(op, value, op.operand, result, direct=problem.direct))
        labels.append(-1 if tainted else 1)
        value = result
    final = value
    if error_at == n_ops:
        final = slip(rng, value)
        labels.append(-1)
    else:
        labels.append(-1 if tainted else 1)
    steps.append(answer_step(final))
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
    """Stop a search for distinct problems that cannot succeed: a split (one-operation problems above all,
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
    share are one-operation problems ("What is 9 × 2?"). The error kind is drawn
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
    """Every fact a × b (a, b from 2 to 12) whose one-operation problem lies in ``splits`` (by default the
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



# ---------------------------------------------------------------------------------------------
# Reading the language back: every pattern is compiled from the templates above.
# ---------------------------------------------------------------------------------------------
_NUMBER = r"-?\d+"


def _template_regex(template: str, **fields: str) -> str:
    """``template`` as a regex: its literal text escaped, each ``{field}`` replaced by the regex
    ``fields[field]``, captured as a named group (a field that comes back must repeat its first text)."""
    out, seen = [], set()
    for literal, name, _, _ in string.Formatter().parse(template):
        out.append(re.escape(literal))
        if name is None:
            continue
        out.append(f"(?P={name})" if name in seen else f"(?P<{name}>{fields[name]})")
        seen.add(name)
    return "".join(out)


def _bare(regex: str) -> str:
    """``regex`` without its named groups, to embed it more than once in a larger pattern."""
    return re.sub(r"\(\?P<\w+>", "(?:", regex)


def _words_regex(plain: dict[str, str], named: dict[tuple[str, int], str]) -> str:
    """Any of an operation's phrasings (``CLAUSES``/``STEP_WORDS`` with any number, or a named one)."""
    texts = [re.escape(t) for t in named.values()] + [_bare(_template_regex(t, x=r"\d+")) for t in plain.values()]
    return "(?:" + "|".join(texts) + ")"


_SYMBOLS = "(?:" + "|".join(re.escape(s) for s in SYMBOL_KIND) + ")"
# a number is whole: not the tail of 2.5 or x12, not the head of 175 or 17.5
_EQUATION = re.compile(r"(?<![\w.])" + _template_regex(EQUATION, left=_NUMBER, symbol=_SYMBOLS, right=_NUMBER, result=_NUMBER) + r"(?!\.?\d)")
_OPERATION_STEP = re.compile(
    "(?:" + _bare(_template_regex(OPERATION_STEP, words=_words_regex(STEP_WORDS, NAMED_STEP_WORDS), equation=_EQUATION.pattern))
    + "|" + _bare(_template_regex(DIRECT_STEP, equation=_EQUATION.pattern)) + ")")
_RECOVERY_STEP = re.compile(_template_regex(RECOVERY_STEP, value=_NUMBER))
_DIRECT_PROBLEM = re.compile(_template_regex(DIRECT_PROBLEM, start=r"\d+", symbol=_SYMBOLS, operand=r"\d+"))
_WORD_PROBLEM = re.compile(_template_regex(WORD_PROBLEM, name=r"\w+", start=r"\d+", item=r"\w+", clauses=".+"))
_CLAUSES = [(re.compile(_template_regex(template, x=r"\d+")), kind) for kind, template in CLAUSES.items()]


@dataclass(frozen=True)
class Equation:
    """``left symbol right = result`` as a step writes it; ``symbol`` is one of ``SYMBOL``'s or ``DIRECT_SYMBOL``'s."""

    left: int
    symbol: str
    right: int
    result: int

    @property
    def kind(self) -> str:
        """The operation: add, sub, mul or div."""
        return SYMBOL_KIND[self.symbol]

    @property
    def holds(self) -> bool:
        """Whether ``result`` is what the operation gives (division as ``Operation.apply`` does it, floored)."""
        if self.kind == "div" and self.right == 0:
            return False
        return Operation(self.kind, self.right).apply(self.left) == self.result

    def __str__(self) -> str:
        return EQUATION.format(left=self.left, symbol=self.symbol, right=self.right, result=self.result)


def find_equations(text: str) -> list[Equation]:
    """Every equation written in ``text``, in order (a step of this language has at most one)."""
    return [Equation(int(m["left"]), m["symbol"], int(m["right"]), int(m["result"])) for m in _EQUATION.finditer(text)]


def parse_equation(step: str) -> Equation | None:
    """The (first) equation in ``step``: an operation step's, a self-correction's; None if it has none."""
    found = find_equations(step)
    return found[0] if found else None


def equation_holds(step: str) -> bool | None:
    """Whether the equation of ``step`` is right; None for a step without one (a restatement, the answer).
    False on exactly the steps where ``solve`` planted an arithmetic slip."""
    equation = parse_equation(step)
    return None if equation is None else equation.holds


def is_operation_step(step: str) -> bool:
    """A step that applies one operation of the problem (``After doubling: 7 × 2 = 14.``, ``9 × 2 = 18.``);
    a self-correction's equation redoes one, it does not count again."""
    return _OPERATION_STEP.fullmatch(step) is not None


def stated_value(step: str) -> int | None:
    """The running value a step leaves: its equation's result or a recomputation's value; None if it
    states neither (a restatement, the question's words, the answer)."""
    equation = parse_equation(step)
    if equation is not None:
        return equation.result
    recovered = _RECOVERY_STEP.fullmatch(step)
    return int(recovered["value"]) if recovered else None


def state_after(problem: Problem, steps: Sequence[str]) -> tuple[int, int, bool]:
    """(operations done, running value, answered) after ``steps`` of a solution of ``problem``: what a
    policy needs to continue it. The value starts at ``problem.start``; each step that states one sets it."""
    done, value, answered = 0, problem.start, False
    for step in steps:
        done += is_operation_step(step)
        answered = answered or states_answer(step, boxed=False)
        stated = stated_value(step)
        if stated is not None:
            value = stated
    return min(done, len(problem.ops)), value, answered


def _parse_clause(clause: str) -> Operation | None:
    for (kind, operand), text in NAMED_CLAUSES.items():
        if clause == text:
            return Operation(kind, operand)
    for pattern, kind in _CLAUSES:
        m = pattern.fullmatch(clause)
        if m:
            return Operation(kind, int(m["x"]))
    return None


def parse_problem(text: str) -> Problem:
    """The inverse of ``Problem.text``: lets a simulated policy solve any generated problem from its text."""
    d = _DIRECT_PROBLEM.fullmatch(text)
    if d:
        problem = Problem("", "", int(d["start"]), (Operation(SYMBOL_KIND[d["symbol"]], int(d["operand"])),), direct=True)
    else:
        m = _WORD_PROBLEM.fullmatch(text)
        if not m:
            raise ValueError(f"not a synthetic problem: {text[:80]!r}")
        ops = []
        for clause in m["clauses"].split(CLAUSE_JOIN):
            op = _parse_clause(clause)
            if op is None:
                raise ValueError(f"unknown operation {clause!r} in {text[:80]!r}")
            ops.append(op)
        problem = Problem(m["name"], m["item"], int(m["start"]), tuple(ops))
    if problem.text != text:
        raise ValueError(f"not a synthetic problem: {text[:80]!r}")
    return problem
