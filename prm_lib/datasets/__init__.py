"""Real model-written solutions, shipped with the library as their authors released them.

* ``big_bench_mistake/``: BIG-Bench Mistake (Tyen et al., "LLMs cannot find reasoning errors, but can correct
  them given the error location", Findings of ACL 2024, arXiv 2311.08516; github.com/WHGTyen/BIG-Bench-Mistake,
  Apache-2.0, its LICENSE beside the files). PaLM 2-L's chain-of-thought traces on five BIG-Bench tasks, one
  step a line, with the first logical mistake marked by people (by a script for Dyck languages).
* ``gsm8k/``: GSM8K's example model solutions (Cobbe et al., "Training Verifiers to Solve Math Word
  Problems", arXiv 2110.14168; github.com/openai/grade-school-math, MIT, its LICENSE beside the file): four
  GPT-3 solutions of each of the 1,319 test problems, each marked right or wrong by its final answer.

The files are byte for byte the released ones (``SHA256``). Every chapter and benchmark splits them the same
way, by question: ``split_of`` hashes the question's text, so the split depends on nothing but the question
(not on the file's order, a random seed or the machine), and no question is on both sides.
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path
from typing import Sequence

from ..data import PRMSample, read_big_bench_mistake, read_gsm8k_solutions

HERE = Path(__file__).parent

# The four tasks whose first mistakes people marked, then the one a script marked (the paper's order).
HUMAN_LABELLED = ("word_sorting", "tracking_shuffled_objects", "logical_deduction", "multistep_arithmetic")
TASKS = (*HUMAN_LABELLED, "dyck_languages")
TASK_NAMES = {"word_sorting": "word sorting", "tracking_shuffled_objects": "tracking shuffled objects",
              "logical_deduction": "logical deduction", "multistep_arithmetic": "multistep arithmetic",
              "dyck_languages": "Dyck languages"}

SHA256 = {
    "big_bench_mistake/dyck_languages.jsonl": "38cf1f524d119ce8d12c21d933ed8aa8d82bb5a36c4f6e71ed499ede234512f4",
    "big_bench_mistake/logical_deduction.jsonl": "f521efec7c975558ac6a35e8d66a84bc17ff696865c622bc93604307bc63f0cd",
    "big_bench_mistake/multistep_arithmetic.jsonl": "b3f9a99e62bdcb758d6cafc531a43f6d6bca6812190cce4f982d1c01ac0767d3",
    "big_bench_mistake/tracking_shuffled_objects.jsonl":
        "637282d5721b76fb5a1d3b1eedef0b476b2a6634bd91f281ca69b782a670bd42",
    "big_bench_mistake/word_sorting.jsonl": "e9deb2c57f7fc87f2d10336bc350c93c599bd3f483e3fb0ffb54854257ef8159",
    "gsm8k/example_model_solutions.jsonl": "4bc62db838f8418365d51c627bd66294cbdca9fb7f01519cb13f0dce8c51580b",
}

SPLITS = ("train", "validation", "test")
# Shares of the questions: BIG-Bench Mistake keeps the test share at the 30% its held-out comparisons use;
# GSM8K trains an outcome verifier on half the problems and selects among the solutions of the other half.
SHARES = {"big-bench-mistake": (0.6, 0.1, 0.3), "gsm8k": (0.45, 0.05, 0.5)}


def path(name: str) -> Path:
    """A shipped file by its name in ``SHA256`` (``"gsm8k/example_model_solutions.jsonl"``), or by a
    BIG-Bench Mistake task (``"multistep_arithmetic"``)."""
    if name in TASKS:
        name = f"big_bench_mistake/{name}.jsonl"
    if name not in SHA256:
        raise ValueError(f"unknown shipped data set {name!r}; known: {', '.join(TASKS)}, {', '.join(SHA256)}")
    return HERE / name


def split_of(question: str, shares: Sequence[float]) -> str:
    """"train", "validation" or "test" for a question: where the first 8 bytes of its text's sha256, read as a
    fraction of 2**64, fall among the cumulative ``shares``."""
    if len(shares) != 3 or abs(sum(shares) - 1.0) > 1e-9 or min(shares) < 0:
        raise ValueError(f"shares are three non-negative fractions summing to 1, got {tuple(shares)}")
    u = int.from_bytes(hashlib.sha256(question.encode("utf-8")).digest()[:8], "big") / 2.0 ** 64
    return "train" if u < shares[0] else "validation" if u < shares[0] + shares[1] else "test"


def _check_split(split: str | None) -> None:
    if split is not None and split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; known: {', '.join(SPLITS)} (or None: all)")


def big_bench_mistake(task: str, split: str | None = None, skipped: list[tuple[str, str]] | None = None,
                      labelled_only: bool = False) -> list[PRMSample]:
    """One task's traces (``prm_lib.data.read_big_bench_mistake``: steps before the first mistake +1, it and
    the steps after -1, the latter marked assumed), all or one split's. What the reader leaves out (one Dyck
    trace's empty step) is appended to ``skipped`` when it is given, with the split of the trace it was in.

    ``labelled_only`` ends each trace at its first mistake: people judged the steps up to it and no further,
    so that is all a trace can teach (what a PRM trained with ``mask_after_first_error`` learns from, at a
    fraction of the tokens); ``meta["steps_after_mistake"]`` counts what was left behind."""
    if task not in TASKS:
        raise ValueError(f"unknown BIG-Bench Mistake task {task!r}; known: {', '.join(TASKS)}")
    _check_split(split)
    found: list[tuple[str, str]] = []
    everything = read_big_bench_mistake(path(task), skipped=found)
    samples = [s for s in everything if split is None or split_of(s.problem, SHARES["big-bench-mistake"]) == split]
    if skipped is not None:  # a step left out of a kept trace belongs to that trace's split
        kept, elsewhere = {s.meta["source"] for s in samples}, {s.meta["source"] for s in everything}
        skipped.extend((where, why) for where, why in found if where in kept or where not in elsewhere)
    return [_through_first_mistake(s) for s in samples] if labelled_only else samples


def _through_first_mistake(sample: PRMSample) -> PRMSample:
    end = len(sample.steps) if sample.first_error < 0 else sample.first_error + 1
    meta = {**sample.meta, "steps_after_mistake": len(sample.steps) - end}
    meta.pop("labels_after_first_error", None)  # none are left
    return dataclasses.replace(sample, steps=sample.steps[:end], labels=sample.labels[:end], meta=meta)


def gsm8k_solutions(split: str | None = None) -> list[PRMSample]:
    """GSM8K's four model solutions of each test problem (``prm_lib.data.read_gsm8k_solutions``: outcome labels
    only), all or one split's; a problem's four solutions are always together."""
    _check_split(split)
    samples = read_gsm8k_solutions(path("gsm8k/example_model_solutions.jsonl"))
    return [s for s in samples if split is None or split_of(s.problem, SHARES["gsm8k"]) == split]


def shipped(name: str, split: str | None = None, skipped: list[tuple[str, str]] | None = None) -> list[PRMSample]:
    """What a model trains on from a shipped set: a BIG-Bench Mistake task's traces through their first
    mistake (``labelled_only``), or ``"gsm8k"``'s model solutions."""
    if name == "gsm8k":
        return gsm8k_solutions(split)
    return big_bench_mistake(name, split, skipped, labelled_only=True)
