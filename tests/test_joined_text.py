"""The naive tutorial's method (``prm_lib.course.joined_text``), re-implemented: it must fail exactly the way chapters 2
and 5 say it does."""

import torch

from prm_lib.course.joined_text import (find_newline_positions, joined_format, joined_score, joined_train_step,
                                 joined_training_targets)

PROBLEM, STEPS = "What is 2 + 3?", ["I need to add 2 and 3.", "2 + 3 = 5.", "Answer: 5"]


def test_qwen2_search_finds_only_the_last_token(qwen_tokenizer):
    ids = torch.tensor(qwen_tokenizer(joined_format(PROBLEM, STEPS))["input_ids"])
    assert find_newline_positions(ids, qwen_tokenizer) == [len(ids) - 1]


def test_smollm2_search_counts_the_problem_line_as_a_step(smollm2_tokenizer):
    ids = torch.tensor(smollm2_tokenizer(joined_format(PROBLEM, STEPS), add_special_tokens=False)["input_ids"])
    positions = find_newline_positions(ids, smollm2_tokenizer)
    assert len(positions) == len(STEPS) + 1
    assert smollm2_tokenizer.decode(ids[: positions[0]]) == f"Problem: {PROBLEM}"


def test_seed_loss_used_one_label_per_sample(qwen_tokenizer):
    assert joined_training_targets(qwen_tokenizer, "What is 8 × 3?", ["8 × 3 = 21.", "The answer is 21."], [-1, -1]) == [-1]


def test_seed_loop_runs_and_scores_one_position(tiny_prm):
    import copy

    prm = copy.deepcopy(tiny_prm)
    opt = torch.optim.SGD(prm.parameters(), lr=0.0)
    loss, tokens = joined_train_step(prm, opt, PROBLEM, STEPS, [1, 1, 1])
    assert loss > 0 and tokens > 10
    probs, positions = joined_score(prm, PROBLEM, STEPS)
    assert len(probs) == len(positions) == 1
