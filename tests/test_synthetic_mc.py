"""The synthetic generator and Monte Carlo labelling."""

import collections

import pytest

from prm_lib.answers import extract_final_answer, normalize_answer
from prm_lib.monte_carlo import monte_carlo_labels
from prm_lib.policies import SimulatedPolicy, split_lines
from prm_lib.synthetic import ERROR_KINDS, SPLITS, generate, parse_problem, problems, solve, split_of


def test_reproducible_from_a_seed():
    a, b = generate(50, seed=7), generate(50, seed=7)
    assert [(s.problem, s.steps, s.labels) for s in a] == [(s.problem, s.steps, s.labels) for s in b]
    assert [s.steps for s in generate(50, seed=8)] != [s.steps for s in a]


def test_splits_are_disjoint_by_problem():
    texts = {split: {s.problem for s in generate(300, seed=1, split=split)} for split in SPLITS}
    assert not texts["train"] & texts["validation"]
    assert not texts["train"] & texts["test"]
    assert not texts["validation"] & texts["test"]
    assert all(split_of(t) == "test" for t in texts["test"])


def test_every_error_kind_is_labelled_at_its_step():
    import random

    p = problems(1, seed=3, split=None)[0]
    for kind in ERROR_KINDS:
        for seed in range(20):
            s = solve(p, random.Random(seed), error=kind, restate=False)
            if s.first_error >= 0:
                break
        assert s.first_error >= 0, kind
        assert s.meta["error_kind"] == kind
        if kind == "inconsistent_answer":
            assert s.first_error == len(s.steps) - 1
        # steps after an uncorrected error carry it: -1
        assert all(l == -1 for l in s.labels[s.first_error:])


def test_self_correction_is_labelled_correct_after_the_error():
    import random

    p = problems(1, seed=4, split=None)[0]
    s = solve(p, random.Random(0), error="arithmetic_slip", correct_after=True, restate=False)
    i = s.first_error
    assert s.steps[i + 1].startswith("Wait, let me check:")
    assert s.labels[i] == -1 and all(l == 1 for l in s.labels[i + 1:])
    assert s.meta["final_answer"] == s.meta["answer"]  # right answer through a wrong step


def test_mix_of_kinds_and_lengths():
    samples = generate(600, seed=0, split=None)
    kinds = collections.Counter(s.meta["error_kind"] for s in samples)
    assert set(kinds) == set(ERROR_KINDS) | {None}
    assert 2 <= min(len(s.steps) for s in samples) and max(len(s.steps) for s in samples) <= 7


def test_parse_problem_inverts_text():
    for p in problems(200, seed=5, split=None, direct_rate=0.5):
        assert parse_problem(p.text) == p
    assert parse_problem("What is 9 × 2?").answer == 18
    with pytest.raises(ValueError, match="not a synthetic problem"):
        parse_problem("How many legs does a spider have?")


def test_seed_style_problems_are_solved_in_the_seed_style():
    import random

    p = parse_problem("What is 9 × 2?")
    s = solve(p, random.Random(0), error="arithmetic_slip")
    assert s.steps[0] == "I need to multiply 9 by 2."
    assert s.steps[1].startswith("9 × 2 = ") and s.steps[1] != "9 × 2 = 18."
    assert s.labels == [1, -1, -1] and s.meta["direct"]


@pytest.mark.parametrize("text", ["12", "12.0", "$12$", "The answer is 12.", "\\boxed{12}", "so the answer is: 12"])
def test_messy_answers_normalise_alike(text):
    assert extract_final_answer(text) == "12"


def test_answer_normalisation_details():
    assert normalize_answer("\\frac{1}{2}") == "1/2" == normalize_answer("0.5")
    assert normalize_answer("1,200") == "1200"
    assert extract_final_answer(["First 3 + 4 = 7.", "No answer stated"]) is None


def test_monte_carlo_on_a_correct_solution_with_a_perfect_policy():
    s = next(x for x in generate(20, seed=2, split="test", error_rate=0.0))
    m = monte_carlo_labels(s.problem, s.steps, s.meta["answer"], SimulatedPolicy(0.0, 0.0), k=4)
    assert m.hard == [1] * len(s.steps) and m.soft == [1.0] * len(s.steps)


def test_monte_carlo_flags_an_uncorrected_error_without_recovery():
    s = next(x for x in generate(50, seed=2, split="test", error_rate=1.0, correction_rate=0.0,
                                  error_kinds=["arithmetic_slip"]) if x.first_error >= 0)
    m = monte_carlo_labels(s.problem, s.steps, s.meta["answer"], SimulatedPolicy(0.0, 0.0), k=4)
    assert m.hard == s.labels  # a perfect policy that never recovers reproduces the truth


def test_monte_carlo_soft_labels_are_fractions_of_k():
    s = generate(5, seed=3, split="test")[0]
    m = monte_carlo_labels(s.problem, s.steps, s.meta["answer"], SimulatedPolicy(0.3, 0.2, seed=1), k=5)
    assert all(v * 5 == int(v * 5) for v in m.soft) and len(m.answers[0]) == 5
    assert [1 if v > 0 else -1 for v in m.soft] == m.hard


def test_split_lines_stops_at_the_answer():
    assert split_lines("7 × 8 = 56\n\nThe answer is 56.\nExtra chatter") == ["7 × 8 = 56", "The answer is 56."]


def test_misreadings_are_systematic_per_problem():
    from collections import Counter

    from prm_lib.answers import extract_final_answer
    from prm_lib.policies import SimulatedPolicy
    from prm_lib.synthetic import parse_problem, problems

    policy = SimulatedPolicy(step_error_rate=0.0, misread_rate=1.0, seed=3)
    hard = []
    for p in problems(40, seed=1, split="test", max_ops=2):
        chance, at, kind, _ = policy.misreading(p)
        assert 0.0 <= chance <= 1.0 and 0 <= at < len(p.ops) and kind in ("wrong_operation", "wrong_number")
        assert policy.misreading(parse_problem(p.text)) == policy.misreading(p)  # a pure function of the text
        answers = Counter(extract_final_answer(s) for s in policy.sample(p.text, 40))
        wrong = {a: n for a, n in answers.items() if a != str(p.answer)}
        assert len(wrong) <= 1  # without slips, every wrong sample is the same misreading
        if chance > 0.75 and wrong:
            hard.append(max(wrong.values()) > answers.get(str(p.answer), 0))
    assert hard and sum(hard) >= len(hard) / 2  # on hard problems the misreading is usually the most common answer
    # misread_rate 0 draws nothing extra: without slips, each continuation draws once per operation and once
    # for the final answer, so a seeded run's stream does not depend on the misreading option
    p = problems(1, seed=2, split="test")[0]
    plain = SimulatedPolicy(seed=5, step_error_rate=0.0, misread_rate=0.0)
    plain.complete(p.text, [], 8)
    reference = __import__("random").Random(5)
    for _ in range(8 * (len(p.ops) + 1)):
        reference.random()
    assert plain.rng.getstate() == reference.getstate()
    tiny = SimulatedPolicy(seed=5, step_error_rate=0.0, misread_rate=1e-9)  # the option on: one more draw each
    tiny.complete(p.text, [], 8)
    assert tiny.rng.getstate() != reference.getstate()


def test_sampled_solutions_open_like_the_generator():
    from prm_lib.policies import SimulatedPolicy
    from prm_lib.synthetic import problems

    policy = SimulatedPolicy(seed=0)
    direct = problems(1, seed=0, split="test", direct_rate=1.0)[0]
    assert all(s[0].startswith("I need to") for s in policy.sample(direct.text, 5))
    with pytest.raises(ValueError, match="not an error of one operation step"):
        from prm_lib.synthetic import Operation, wrong_step
        import random

        wrong_step(Operation("add", 2), 3, 0, "inconsistent_answer", random.Random(0))


def test_problems_and_generate_stop_with_an_error_when_a_split_runs_out():
    from prm_lib.synthetic import generate, problems

    # seed-style problems are few: the test split holds a few hundred distinct ones
    some = problems(100, seed=0, split="test", direct_rate=1.0)
    assert len({p.text for p in some}) == 100 and all(p.split == "test" for p in some)
    with pytest.raises(RuntimeError, match="could not find 1000 distinct test problems .*the split holds fewer"):
        problems(1000, seed=0, split="test", direct_rate=1.0)
    with pytest.raises(RuntimeError, match="could not find 1000 distinct test problems .*the split holds fewer"):
        generate(1000, seed=0, split="test", direct_rate=1.0)
