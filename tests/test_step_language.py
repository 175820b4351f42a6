"""The synthetic step language read back: the parser agrees with the renderer, and first errors are one rule."""

import ast
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from prm_lib.answers import states_answer
from prm_lib.data import PRMSample, first_error, is_wrong
from prm_lib.loss import first_error_mask
from prm_lib.metrics import predicted_first_error, true_first_error
from prm_lib.policies import LMPolicy, Policy, SimulatedPolicy
from prm_lib.synthetic import (
    DIRECT_SYMBOL,
    ERROR_KINDS,
    SYMBOL,
    Equation,
    answer_step,
    equation_holds,
    find_equations,
    format_equation,
    generate,
    is_operation_step,
    parse_equation,
    parse_problem,
    problems,
    recovery_step,
    state_after,
)


@pytest.mark.parametrize("step, expected", [
    ("After getting 5 more: 12 + 5 = 17.", Equation(12, "+", 5, 17)),
    ("After giving away 3: 20 - 3 = 17.", Equation(20, "-", 3, 17)),
    ("After doubling: 7 × 2 = 14.", Equation(7, "×", 2, 14)),
    ("After sharing among 4 and keeping one share: 20 ÷ 4 = 5.", Equation(20, "÷", 4, 5)),
    ("2 + 3 = 5.", Equation(2, "+", 3, 5)),
    ("10 - 4 = 6.", Equation(10, "-", 4, 6)),
    ("9 × 2 = 18.", Equation(9, "×", 2, 18)),
    ("15 / 3 = 5.", Equation(15, "/", 3, 5)),
    ("Wait, let me check: 12 + 5 = 17.", Equation(12, "+", 5, 17)),
    ("After giving away 9: -3 - 9 = -12.", Equation(-3, "-", 9, -12)),  # a value gone negative after a wrong step
])
def test_each_operator_in_both_symbol_sets_parses_and_holds(step, expected):
    eq = parse_equation(step)
    assert eq == expected and eq.holds and equation_holds(step) is True
    assert eq.kind == {"+": "add", "-": "sub", "×": "mul", "÷": "div", "/": "div"}[eq.symbol]
    assert str(eq) in step


@pytest.mark.parametrize("step", ["12 + 5 = 18.", "After doubling: 7 × 2 = 15.", "15 / 3 = 4.", "20 ÷ 4 = 4.",
                                  "-3 - 9 = -11.", "5 ÷ 0 = 1."])
def test_a_wrong_equation_does_not_hold(step):
    assert parse_equation(step) is not None and equation_holds(step) is False


@pytest.mark.parametrize("step", ["Sam starts with 12 apples.", "I need to multiply 9 by 2.", "The answer is 17.",
                                  recovery_step(17), "15% means 15/100 = 0.15.", "0.15 × 80 = 12.", "2.5 × 2 = 5.",
                                  "12 + 5 = 175.5", ""])
def test_steps_without_an_equation(step):
    assert parse_equation(step) is None and equation_holds(step) is None and not is_operation_step(step)


def test_the_renderer_and_the_parser_share_the_symbols():
    for kind in SYMBOL:
        for direct in (False, True):
            eq = parse_equation(format_equation(6, kind, 3, 99, direct))
            assert eq.symbol == (DIRECT_SYMBOL if direct else SYMBOL)[kind] and eq.kind == kind and not eq.holds
    assert [e.holds for e in find_equations("3 + 4 = 7, then 7 × 2 = 15")] == [True, False]


def test_answer_steps_and_operation_steps():
    assert answer_step(17) == "The answer is 17."
    for step in ("The answer is 17.", "So the ANSWER IS 3", "The answer is -2."):
        assert states_answer(step) and not is_operation_step(step)
    for step in ("12 + 5 = 17.", "Wait, let me check: 12 + 5 = 17.", recovery_step(4), "The answer: 4"):
        assert not states_answer(step)
    assert is_operation_step("After tripling: 4 × 3 = 12.") and is_operation_step("15 / 3 = 4.")
    assert not is_operation_step("Wait, let me check: 12 + 5 = 17.")  # redoes an operation, does not count again
    assert not is_operation_step("After eating 3: 5 - 3 = 2.")  # not words of this language


def test_state_after_reads_the_running_value():
    p = parse_problem("Sam has 12 apples. Sam gets 5 more, then doubles them. How many apples does Sam have now?")
    assert state_after(p, []) == (0, 12, False)
    steps = ["Sam starts with 12 apples.", "After getting 5 more: 12 + 5 = 18.", recovery_step(17),
             "After doubling: 17 × 2 = 34.", "The answer is 34."]
    assert [state_after(p, steps[:i]) for i in range(1, 6)] == [
        (0, 12, False), (1, 18, False), (1, 17, False), (2, 34, False), (2, 34, True)]


def _steps_by_role(s: PRMSample):
    """(operation steps, check steps) of a generated solution, by index."""
    ops = [i for i, step in enumerate(s.steps) if is_operation_step(step)]
    checks = [i for i, step in enumerate(s.steps) if step.startswith("Wait, let me check: ")]
    return ops, checks


def test_parser_and_renderer_agree_on_generated_solutions():
    samples = [s for seed in range(3) for s in generate(400, seed=seed, split=None, error_rate=0.8, correction_rate=0.4,
                                                        direct_rate=0.3, max_ops=4)]
    seen_kinds = set()
    for s in samples:
        problem = parse_problem(s.problem)
        ops, checks = _steps_by_role(s)
        assert len(ops) == s.meta["n_ops"] == len(problem.ops), s.steps
        assert states_answer(s.steps[-1]) and not any(states_answer(step) for step in s.steps[:-1])
        assert all(parse_equation(s.steps[i]).symbol in (DIRECT_SYMBOL if s.meta["direct"] else SYMBOL).values() for i in ops)
        # every other step (the opening, the answer) has no equation
        assert all(parse_equation(step) is None for i, step in enumerate(s.steps[:-1]) if i not in ops + checks)
        false_at = {i for i, step in enumerate(s.steps) if equation_holds(step) is False}
        kind = s.meta["error_kind"]
        seen_kinds.add(kind)
        # a false equation is exactly where an arithmetic slip was planted; other errors write true equations
        assert false_at == ({s.first_error} if kind == "arithmetic_slip" else set()), (kind, s.steps)
        assert all(equation_holds(s.steps[i]) for i in checks)  # a self-correction's equation is right
        done, value, answered = state_after(problem, s.steps)
        assert done == len(problem.ops) and answered
        final = state_after(problem, s.steps[:-1])[1]
        assert value == final and (s.steps[-1] == answer_step(final)) == (kind != "inconsistent_answer")
        if kind is None:
            assert final == problem.answer
    assert seen_kinds == set(ERROR_KINDS) | {None}


def test_simulated_policy_writes_what_the_parser_reads():
    policy = SimulatedPolicy(step_error_rate=0.3, recover_rate=0.5, misread_rate=0.5, seed=3)
    for p in problems(40, seed=1, split=None, direct_rate=0.3):
        for sol in policy.sample(p.text, 4):
            done, _, answered = state_after(p, sol)
            assert done == len(p.ops) and answered and states_answer(sol[-1])
        clean = SimulatedPolicy(step_error_rate=0.0, seed=0).sample(p.text, 1)[0]
        assert all(equation_holds(step) is not False for step in clean)
        assert state_after(p, clean)[1] == p.answer


def test_policies_share_one_interface():
    import inspect

    for name in ("complete", "next_steps", "sample"):  # the signatures the Protocol states, in both policies
        wanted = inspect.signature(getattr(Policy, name))
        for policy in (SimulatedPolicy, LMPolicy):
            assert inspect.signature(getattr(policy, name)) == wanted, (policy.__name__, name)


def test_no_module_imports_another_modules_private_names():
    offenders = []
    for path in sorted(Path(__file__).resolve().parents[1].joinpath("prm_lib").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level and node.module:
                offenders += [f"{path.name}: from .{node.module} import {a.name}" for a in node.names
                              if a.name.startswith("_") and not a.name.startswith("__")]
    assert offenders == []


# -- first error ---------------------------------------------------------------------------------
@pytest.mark.parametrize("values, threshold, expected", [
    ([1, 1, 0, 0], 0.5, 2), ([0, 1], 0.5, 0), ([1, 1], 0.5, -1), ([], 0.5, -1),
    ([1.0, 0.5, 0.49], 0.5, 2),  # 0.5 is not wrong: "below" the threshold
    ([0.9, 0.8], 0.85, 1), ([0.9, 0.4, 0.2], 0.5, 1),
])
def test_first_error(values, threshold, expected):
    assert first_error(values, threshold) == expected
    assert first_error(np.asarray(values, dtype=float), threshold) == expected
    assert predicted_first_error(values, threshold) == expected
    if threshold == 0.5:
        assert true_first_error(values) == expected


def test_first_error_is_the_same_in_samples_metrics_and_the_loss_mask():
    rng = random.Random(0)
    for _ in range(200):
        n = rng.randint(1, 7)
        labels = [rng.choice([1, -1, 1, 0.0, 0.25, 0.5, 0.75, 1.0]) for _ in range(n)]
        s = PRMSample("p", [f"step {i}" for i in range(n)], labels)
        expected = next((i for i, t in enumerate(s.targets) if t < 0.5), -1)
        assert s.first_error == first_error(s.targets) == true_first_error(s.targets) == expected
        mask = first_error_mask(torch.tensor([s.targets]), torch.ones(1, n, dtype=torch.bool))[0].tolist()
        assert mask == [i <= expected or expected < 0 for i in range(n)]
    assert is_wrong(torch.tensor([0.2, 0.5, 0.7])).tolist() == [True, False, False]


def test_lm_policy_prompt_shows_worked_examples_not_a_template_answer():
    from prm_lib.backbones import load_tokenizer
    from prm_lib.policies import WORKED_EXAMPLES, LMPolicy
    from prm_lib.synthetic import SEED_PROBLEMS, split_of

    policy = LMPolicy(None, load_tokenizer("tiny-qwen2"))
    text = policy.prompt("What is 9 × 8?", ["I need to multiply 9 by 8."])
    assert "answer is N" not in text  # SmolLM2 copied that template into its samples
    assert len(WORKED_EXAMPLES) == 2
    for question, steps in WORKED_EXAMPLES:
        assert question in text and "\n".join(steps) in text
        assert split_of(question) == "train" and question not in SEED_PROBLEMS  # never a problem the book tests on
        assert all(equation_holds(s) in (None, True) for s in steps) and states_answer(steps[-1])
    assert text.index("What is 9 × 8?") > max(text.index(q) for q, _ in WORKED_EXAMPLES)
    assert text.endswith("I need to multiply 9 by 8.\n")


def test_a_systematic_slip_is_the_same_wrong_result_in_every_sample_that_makes_it():
    problem = "What is 9 × 8?"
    policy = SimulatedPolicy(step_error_rate=0.0, misread_rate=1.0, misread_kinds=("arithmetic_slip",), seed=3)
    chance, at, kind, _ = policy.misreading(parse_problem(problem))
    assert kind == "arithmetic_slip" and chance > 0
    results = {s[1] for s in policy.sample(problem, 64)}
    assert len(results) == 2 and "9 × 8 = 72." in results, results  # right, or the one systematic slip
    wrong = (results - {"9 × 8 = 72."}).pop()
    assert equation_holds(wrong) is False
    # the default kinds keep the misreadings the policy drew before the option existed
    assert SimulatedPolicy(misread_rate=0.8, seed=7).misreading(parse_problem(problem)) == \
        SimulatedPolicy(misread_rate=0.8, seed=7, misread_kinds=("wrong_operation", "wrong_number")).misreading(parse_problem(problem))
    with pytest.raises(ValueError, match="misread_kinds"):
        SimulatedPolicy(misread_kinds=("typo",))


def test_lm_policy_writes_nothing_after_a_prefix_that_states_the_answer():
    class Untouchable:  # any call to the model would be a bug: there is nothing to complete
        def __getattr__(self, name):
            raise AssertionError(f"the model was used ({name})")

    policy = LMPolicy(Untouchable(), None)
    done = ["I need to multiply 7 by 8.", "7 × 8 = 56.", "The answer is 56."]
    assert policy.complete("What is 7 × 8?", done, 3) == [[], [], []]
    assert SimulatedPolicy().complete("What is 7 × 8?", done, 3) == [[], [], []]  # the same contract
