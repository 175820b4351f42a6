"""Search, the ORM and the LM policy on prose steps (ProcessBench's fixture), not the course's step language:
what ends a solution, what makes its outcome right and what the prompt shows are parameters."""

from pathlib import Path

import pytest

from prm_lib.answers import states_answer
from prm_lib.data import read
from prm_lib.objectives import objective, outcome_targets, synthetic_outcome
from prm_lib.policies import END_OF_SOLUTION, INSTRUCTION, WORKED_EXAMPLES, LMPolicy
from prm_lib.search import beam_search, is_final
from prm_lib.train import TrainConfig, Trainer
from prm_lib.verify import PRMVerifier

FIXTURES = Path(__file__).parent / "fixtures"
PROSE = read(FIXTURES / "processbench_long.jsonl", "processbench")


class Replay:
    """A policy that writes one recorded prose solution, step by step, then nothing more."""

    def __init__(self, steps):
        self.steps = list(steps)

    def next_steps(self, problem, prefix, k):
        step = self.steps[len(prefix)] if len(prefix) < len(self.steps) else END_OF_SOLUTION
        return [step] * k


@pytest.mark.parametrize("record", [0, 3], ids=["latex-boxed", "answer-is"])
def test_search_finishes_a_prose_solution_at_its_answer_by_default(tiny_prm, record):
    sample = PROSE[record]
    assert states_answer(sample.steps[-1]) and not any(states_answer(s) for s in sample.steps[:-1])
    result = beam_search(sample.problem, Replay(sample.steps), PRMVerifier(tiny_prm), lambda s: len(s.split()),
                         n_beams=2, beam_width=1, max_depth=len(sample.steps) + 5)
    assert result.rounds == len(sample.steps) and result.solutions == [sample.steps] * 2
    assert result.answers[0] == ("0" if record == 0 else "3")


def test_search_takes_its_own_rule_for_what_ends_a_prose_solution(tiny_prm):
    sample = PROSE[0]
    at_identity = next(i for i, s in enumerate(sample.steps) if "classical identity" in s)
    rule = lambda step: is_final(step, lambda s: "classical identity" in s)  # noqa: E731
    result = beam_search(sample.problem, Replay(sample.steps), PRMVerifier(tiny_prm), lambda s: 1,
                         n_beams=1, beam_width=1, max_depth=30, is_final=rule)
    assert result.rounds == at_identity + 1 and result.solutions == [sample.steps[:at_identity + 1]]
    assert not is_final("The remainder is 0.") and is_final(END_OF_SOLUTION, lambda s: False)


def test_the_orm_trains_and_evaluates_on_prose_with_its_own_outcome(tiny_prm):
    import copy

    def prose_outcome(sample):  # ProcessBench: a record whose steps are all right has the right outcome
        return 1.0 if sample.is_correct else 0.0

    records = PROSE + read(FIXTURES / "processbench.jsonl", "processbench")
    assert outcome_targets(records, prose_outcome) == [1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 1.0]
    final_answer = lambda s: float(s.meta["final_answer_correct"])  # noqa: E731 (ProcessBench's own field)
    assert outcome_targets(records[5:], final_answer) == [0.0, 1.0]
    assert objective("orm").targets(records) == objective("orm", synthetic_outcome).targets(records)
    with pytest.raises(ValueError, match="outcome is the ORM's setting"):
        objective("prm", prose_outcome)
    config = TrainConfig(backbone="tiny-qwen2", objective="orm", max_steps=2, eval_every=2, batch_size=4)
    trainer = Trainer(copy.deepcopy(tiny_prm), records, records, config, progress=False, outcome=prose_outcome)
    targets = trainer.objective.targets(records)
    assert [row[-1] for row in targets] == [1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 1.0]
    result = trainer.fit()
    assert result.final["outcome_auroc"] == result.final["outcome_auroc"]  # a number: both outcomes occur
    assert result.model.objective == "orm"


def test_the_lm_policy_prompt_shows_the_examples_it_is_given(smollm2_tokenizer):
    sample = PROSE[3]
    prose = LMPolicy(None, smollm2_tokenizer, examples=[(sample.problem, sample.steps)],
                     instruction="Reason in short sentences.")
    text = prose.prompt("What is 2 + 2?", [])
    assert sample.steps[0] in text and "Reason in short sentences." in text and INSTRUCTION not in text
    default = LMPolicy(None, smollm2_tokenizer).prompt("What is 2 + 2?", [])
    assert all(step in default for _, steps in WORKED_EXAMPLES for step in steps) and INSTRUCTION in default
