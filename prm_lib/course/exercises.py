"""Checks for the course's code exercises: ``check("6.1", your_function)``.

Every chapter ends with exercises; the code ones give a stub to fill in and one
line that checks it. Each check compares the learner's function with
``prm_lib``'s own implementation (or with values worked out by hand) on
hand-picked cases, edge cases included, and fails with a message that says which
case went wrong and what was expected. The reference solutions are in the full
edition of the book; ``tests/test_exercises.py`` runs them through these checks
and shows that each check fails on a plausible wrong answer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import torch


class ExerciseFailed(AssertionError):
    """A check found a case where the learner's function gives the wrong result."""


@dataclass(frozen=True)
class Exercise:
    title: str
    run: Callable[[Callable[..., Any]], int]  # runs the cases, returns how many passed


def _fail(exercise: str, case: str, got: Any, expected: Any) -> None:
    raise ExerciseFailed(f"Exercise {exercise}, {case}: got {got!r}, expected {expected!r}")


def _close(a: float, b: float, tol: float = 1e-5) -> bool:
    return math.isclose(float(a), float(b), rel_tol=tol, abs_tol=tol)


# -- 1.3: the first error ----------------------------------------------------------------------
def _first_error(fn: Callable[..., Any]) -> int:
    from ..data import PRMSample

    cases = [[1, 1, 1], [1, -1, 1], [-1, -1], [1, 1, -1], [1], [-1], [1, -1, -1, 1, -1]]
    for labels in cases:
        expected = PRMSample("p", [f"step {i}" for i in range(len(labels))], labels).first_error
        got = fn(labels)
        if got != expected:
            _fail("1.3", f"labels {labels}", got, expected)
    return len(cases)


# -- 1.4: ORM against PRM, what each head is trained toward -------------------------------------
def _training_signal(fn: Callable[..., Any]) -> int:
    from ..data import PRMSample
    from ..objectives import objective

    right, wrong = {"answer": 12, "final_answer": 12}, {"answer": 12, "final_answer": 10}
    cases = [
        ("a clean solution", PRMSample("p", ["a", "b", "c"], [1, 1, 1], meta=dict(right))),
        ("an error carried to the end", PRMSample("p", ["a", "b", "c"], [1, -1, -1], meta=dict(wrong))),
        ("a self-corrected solution", PRMSample("p", ["a", "b", "c", "d"], [1, -1, 1, 1], meta=dict(right))),
        ("a self-corrected solution without answer fields", PRMSample("p", ["a", "b", "c"], [1, -1, 1])),
        ("soft labels", PRMSample("p", ["a", "b"], [0.9, 0.25])),
        ("one wrong step", PRMSample("p", ["a"], [-1], meta=dict(wrong))),
    ]
    for name, sample in cases:
        for kind in ("prm", "orm"):
            o = objective(kind)
            targets = o.targets([sample])[0]
            read = o.loss_mask(torch.ones(1, len(sample.steps), dtype=torch.bool))[0].tolist()
            expected = [float(t) if r else None for t, r in zip(targets, read)]
            got = fn(sample, kind)
            ok = isinstance(got, (list, tuple)) and len(got) == len(expected) and all(
                (g is None) == (e is None) and (e is None or _close(g, e)) for g, e in zip(got, expected))
            if not ok:
                _fail("1.4", f"{name} ({kind!r}), labels {sample.labels}, meta {sample.meta}",
                      got if not isinstance(got, tuple) else list(got), expected)
    return 2 * len(cases)


# -- 2.4: step ends, by construction ------------------------------------------------------------
def _step_ends(fn: Callable[..., Any]) -> int:
    from ..backbones import load_tokenizer
    from ..steps import encode_solution

    tokenizer = load_tokenizer("tiny-qwen2")  # the real Qwen2 tokenizer, offline
    cases = [
        ("What is 15% of 80?", ["15% means 15/100 = 0.15.", "0.15 × 80 = 12.", "The answer is 12."]),
        ("What is 9 × 2?", ["9 × 2 = 18.", "The answer is 18."]),
        ("Ann has 5 apples and buys 3 more.", ["5 + 3 = 8.\u00a0", "The answer is 8."]),  # trailing odd space
        ("x", ["One step only."]),
    ]
    for problem, steps in cases:
        expected = encode_solution(tokenizer, problem, steps)
        got = fn(tokenizer, problem, steps)
        if not (isinstance(got, tuple) and len(got) == 2):
            _fail("2.4", f"{problem!r}", type(got).__name__, "a tuple (input_ids, step_end_positions)")
        ids, positions = list(got[0]), list(got[1])
        if ids != expected.input_ids:
            _fail("2.4", f"input_ids of {problem!r}", ids, expected.input_ids)
        if positions != expected.step_end_positions:
            _fail("2.4", f"step_end_positions of {problem!r}", positions, expected.step_end_positions)
    return len(cases)


# -- 3.4: Monte Carlo labels from rollouts ------------------------------------------------------
def _mc_labels(fn: Callable[..., Any]) -> int:
    cases = [
        # (rollout answers per step, gold, hard, soft)
        ([["12", "12", "11"], ["11", "11", "11"], ["12", None, "12"]], "12", [1, 0, 1], [2 / 3, 0.0, 2 / 3]),
        ([["5"], ["5"]], "5", [1, 1], [1.0, 1.0]),
        ([[None, None]], "3", [0], [0.0]),
        ([["7", "7", "7", "8"]], 8, [1], [0.25]),  # gold may be an int
    ]
    for rollouts, gold, hard, soft in cases:
        got = fn(rollouts, gold)
        if not (isinstance(got, tuple) and len(got) == 2):
            _fail("3.4", f"rollouts {rollouts}", type(got).__name__, "a tuple (hard, soft)")
        got_hard, got_soft = [int(h) for h in got[0]], [float(s) for s in got[1]]
        if got_hard != hard:
            _fail("3.4", f"hard labels of {rollouts} (gold {gold!r})", got_hard, hard)
        if len(got_soft) != len(soft) or not all(_close(a, b) for a, b in zip(got_soft, soft)):
            _fail("3.4", f"soft labels of {rollouts} (gold {gold!r})", [round(s, 4) for s in got_soft], [round(s, 4) for s in soft])
    return len(cases)


# -- 4.4: masked per-step BCE -------------------------------------------------------------------
def _masked_bce(fn: Callable[..., Any]) -> int:
    from ..loss import step_bce_loss

    gen = torch.Generator().manual_seed(0)
    cases = [
        (torch.tensor([[0.5, -0.3, 0.8]]), torch.tensor([[1.0, 0.0, 1.0]]), torch.tensor([[True, True, True]])),
        (torch.randn(4, 6, generator=gen), torch.rand(4, 6, generator=gen).round(), torch.rand(4, 6, generator=gen) > 0.3),
        (torch.randn(3, 5, generator=gen) * 4, torch.rand(3, 5, generator=gen), torch.tensor([[True] * 5, [True, True, False, False, False], [True] + [False] * 4])),
    ]
    for n, (logits, targets, mask) in enumerate(cases):
        expected = float(step_bce_loss(logits, targets, mask))
        got = fn(logits.clone(), targets.clone(), mask.clone())
        got = float(got)
        if not _close(got, expected, 1e-4):
            _fail("4.4", f"case {n} (logits of shape {tuple(logits.shape)}, {int(mask.sum())} real steps)", round(got, 5), round(expected, 5))
    return len(cases)


# -- 5.4: one training step ---------------------------------------------------------------------
def _train_step(fn: Callable[..., Any]) -> int:
    import copy

    from ..loss import step_bce_loss
    from ..model import ProcessRewardModel
    from ..synthetic import generate

    base = ProcessRewardModel.from_backbone("tiny-qwen2", device="cpu")
    samples = generate(6, seed=5, split="train", error_rate=0.6, max_ops=3)  # rows of different lengths: padding
    batch = base.collate(base.encode([s.as_item() for s in samples], labels=[s.targets for s in samples]))

    def setup() -> tuple[Any, list[torch.Tensor], Any, Any]:
        # plain SGD, so that clipping changes the update (Adam's first step would not see a rescaling)
        model = copy.deepcopy(base)
        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.SGD(params, lr=0.5)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0 / (step + 1))
        return model, params, optimizer, scheduler

    def reference(model: Any, optimizer: Any, scheduler: Any, max_norm: float) -> float:
        model.train()
        loss = step_bce_loss(model(batch), batch.labels, batch.step_mask)
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for g in optimizer.param_groups for p in g["params"]], max_norm)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        return float(loss.detach())

    cases = [("one step, gradient norm clipped at 100 (no effect)", 1, 100.0),
             ("one step, gradient norm clipped at 0.01", 1, 0.01),
             ("three steps in a row", 3, 100.0)]
    for name, n_steps, max_norm in cases:
        ref_model, ref_params, ref_optimizer, ref_scheduler = setup()
        model, params, optimizer, scheduler = setup()
        for step in range(n_steps):
            expected = reference(ref_model, ref_optimizer, ref_scheduler, max_norm)
            got = float(fn(model, batch, optimizer, scheduler, max_norm))
            if not _close(got, expected, 1e-4):
                _fail("5.4", f"{name}: the loss returned at step {step + 1}", round(got, 5), round(expected, 5))
        if optimizer.param_groups[0]["lr"] != ref_optimizer.param_groups[0]["lr"]:
            _fail("5.4", f"{name}: the learning rate after {n_steps} step(s) (is the scheduler stepped?)",
                  optimizer.param_groups[0]["lr"], ref_optimizer.param_groups[0]["lr"])
        gap = max((a - b).abs().max().item() for a, b in zip(params, ref_params))
        if gap > 1e-5:
            _fail("5.4", f"{name}: the weights after {n_steps} step(s)", f"a largest difference of {gap:.2e}",
                  "the reference update (below 1e-5)")
    return len(cases)


# -- 5.3: step AUROC ----------------------------------------------------------------------------
def _auroc(fn: Callable[..., Any]) -> int:
    from ..metrics import auroc

    gen = torch.Generator().manual_seed(1)
    cases = [
        ([0.9, 0.8, 0.3, 0.1], [1, 1, 0, 0]),  # perfect
        ([0.1, 0.3, 0.8, 0.9], [1, 1, 0, 0]),  # perfectly wrong
        ([0.5, 0.5, 0.5, 0.5], [1, 0, 1, 0]),  # all tied: 0.5
        ([0.7, 0.7, 0.2, 0.9, 0.4], [1, 0, 0, 1, 1]),  # a tie across classes counts half
        (torch.rand(200, generator=gen).round(decimals=1).tolist(), (torch.rand(200, generator=gen) > 0.4).int().tolist()),
    ]
    for scores, labels in cases:
        expected = auroc(scores, labels)
        got = fn(scores, labels)
        if not _close(got, expected, 1e-6):
            _fail("5.3", f"scores {scores[:6]}{'...' if len(scores) > 6 else ''}", got, expected)
    return len(cases)


# -- 6.4: harmonic mean on padded batches -------------------------------------------------------
def _harmonic_mean(fn: Callable[..., Any]) -> int:
    probs = torch.tensor([[0.95, 0.90, 0.30, 0.85], [0.5, 0.5, 0.0, 0.0], [0.8, 0.0, 0.0, 0.0]])
    mask = torch.tensor([[True, True, True, True], [True, True, False, False], [True, False, False, False]])
    expected = [4 / (1 / 0.95 + 1 / 0.90 + 1 / 0.30 + 1 / 0.85), 0.5, 0.8]
    got = fn(probs.clone(), mask.clone())
    if not isinstance(got, torch.Tensor) or got.shape != (3,):
        _fail("6.4", "the naive tutorial's batch", getattr(got, "shape", type(got).__name__), "a tensor of shape (3,)")
    for i, (g, e) in enumerate(zip(got.tolist(), expected)):
        if not _close(g, e, 1e-4):
            _fail("6.4", f"solution {i} of the naive tutorial's batch (padding must not count)", round(g, 4), round(e, 4))
    zero = fn(torch.tensor([[0.9, 0.0]]), torch.tensor([[True, True]]))
    if not (torch.isfinite(zero).all() and float(zero[0]) < 1e-3):
        _fail("6.4", "a step with probability 0", zero.tolist(), "a finite score near 0")
    return 2


# -- 7.4: PRM-weighted vote ---------------------------------------------------------------------
def _weighted_vote(fn: Callable[..., Any]) -> int:
    from ..selection import weighted_vote

    cases = [
        ([0.9, 0.2, 0.3, 0.4], ["12", "11", "11", "11"]),  # three weak votes beat one strong one
        ([0.9, 0.2, 0.3], ["12", "11", "11"]),
        ([0.5, 0.5], ["3", "4"]),  # a tie: the answer seen first
        ([0.99, 0.4, 0.3], [None, "7", "8"]),  # no answer, no vote
        ([0.6], [None]),
        ([], []),
    ]
    for scores, answers in cases:
        expected = weighted_vote(scores, answers)
        got = fn(scores, answers)
        if got != expected:
            _fail("7.4", f"scores {scores}, answers {answers}", got, expected)
    return len(cases)


# -- 8.3: which partial solutions survive a round of beam search --------------------------------
def _survivors(fn: Callable[..., Any]) -> int:
    from ..search import select_survivors

    partial = [["a"], ["b"], ["c"], ["d"], ["e"], ["f"]]
    cases = [
        # (scores, n_beams, beam_width)
        ([0.1, 0.9, 0.5, 0.7, 0.2, 0.3], 4, 2),
        ([0.1, 0.9, 0.5, 0.7, 0.2, 0.3], 6, 2),
        ([0.1, 0.9, 0.5, 0.7, 0.2, 0.3], 4, 4),
        ([0.4, 0.4, 0.9, 0.1, 0.1, 0.1], 4, 2),  # ties: the earlier one
    ]
    for scores, n_beams, beam_width in cases:
        expected = [partial[i] for i in select_survivors(scores, n_beams // beam_width, n_beams)]  # beam_search's own
        got = fn([list(p) for p in partial], list(scores), n_beams, beam_width)
        got = [list(p) for p in got]
        if sorted(map(tuple, got)) != sorted(map(tuple, expected)):
            _fail("8.3", f"scores {scores}, n_beams={n_beams}, beam_width={beam_width}", got, expected)
    return len(cases)


# -- 9.4: the paper's metric with a threshold fitted on other traces ----------------------------------
def _fitted_accuracy(fn: Callable[..., Any]) -> int:
    import numpy as np

    from ..first_mistake import ScoredTraces, fit_threshold

    grid = [0.1, 0.3, 0.5, 0.7, 0.9]
    cases = [
        # (validation probs, validation first mistakes, test probs, test first mistakes)
        ([[0.9, 0.2, 0.1], [0.8, 0.9]], [1, -1], [[0.95, 0.4], [0.3, 0.9], [0.9, 0.9]], [1, 0, -1]),
        ([[0.6, 0.4]], [0], [[0.5, 0.5], [0.9, 0.65]], [0, 1]),  # fitted 0.7: 0.65 is a mistake, 0.5 is too
        ([[0.9, 0.9], [0.95]], [-1, -1], [[0.2], [0.99, 0.98]], [0, -1]),  # ties: the threshold nearest 0.5
        ([[0.9, 0.35]], [1], [[0.9, 0.45]], [-1]),  # fitted 0.5 misses here; 0.3, fitted on the test trace, would not
    ]
    for val, val_first, test, test_first in cases:
        threshold = fit_threshold(ScoredTraces(val, np.array(val_first)), grid)
        expected = float(ScoredTraces(test, np.array(test_first)).hits(threshold).mean())
        got = fn(val, val_first, test, test_first, grid)
        if not isinstance(got, (int, float)) or not _close(float(got), expected):
            _fail("9.4", f"validation {val} {val_first}, test {test} {test_first}", got, expected)
    return len(cases)


EXERCISES: dict[str, Exercise] = {
    "1.3": Exercise("the first error", _first_error),
    "1.4": Exercise("ORM against PRM: the training signal", _training_signal),
    "2.4": Exercise("step ends, by construction", _step_ends),
    "3.4": Exercise("Monte Carlo labels from rollouts", _mc_labels),
    "4.4": Exercise("masked per-step BCE", _masked_bce),
    "5.3": Exercise("step AUROC", _auroc),
    "5.4": Exercise("one training step", _train_step),
    "6.4": Exercise("harmonic-mean aggregation", _harmonic_mean),
    "7.4": Exercise("PRM-weighted vote", _weighted_vote),
    "8.3": Exercise("beam survivors", _survivors),
    "9.4": Exercise("the first-mistake accuracy at a fitted threshold", _fitted_accuracy),
}


def check(exercise: str, fn: Callable[..., Any]) -> None:
    """Run exercise ``exercise``'s checks on ``fn``; raise ``ExerciseFailed`` naming the first failing case."""
    if exercise not in EXERCISES:
        raise ValueError(f"no code exercise {exercise!r}; known: {', '.join(EXERCISES)}")
    try:
        n = EXERCISES[exercise].run(fn)
    except NotImplementedError:
        raise ExerciseFailed(f"Exercise {exercise}: not implemented yet (replace the `raise NotImplementedError` line)") from None
    except ExerciseFailed:
        raise
    except Exception as err:  # a crash in the learner's code is a failed check, with the reason
        raise ExerciseFailed(f"Exercise {exercise}: your function raised {type(err).__name__}: {err}") from err
    print(f"Exercise {exercise} ({EXERCISES[exercise].title}): all {n} checks passed.")
