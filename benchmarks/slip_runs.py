"""Can the CPU PRM learn arithmetic slips? Chapter 5's runs F, G and FG, and what the backbone knows. JSON lines.

    python benchmarks/slip_runs.py --run lm preset F G FG G4    # about 66 minutes on 2 CPU cores

The ``cpu`` preset misses arithmetic slips (chapter 5: slip AUROC 0.61; the naive tutorial's
``9 × 2 = 16`` scores 0.82). These runs test the two cheapest explanations, at the
preset's ten-minute budget, and are measured exactly as chapter 5 measures the preset
(``prm_lib.train.test_set``; per error kind: the first wrong step against every
correct step), plus a times-table probe: all 121 facts ``a × b`` (a, b in 2-12), each
once with its right product and once with a slip of -10, -2, -1, +1, +2 or +10 (for the
smallest products a -10 slip is negative: an easy wrong result, the same for every run).

Measured results: ``results/cpu_slip_runs.jsonl`` (RESULTS.md). Its F and G lines were
written before the per-kind table gained the "inherited" row. All its lines were measured on
the test set as it was then: test split, seed 123, but with the preset's ``error_rate`` (60% of
solutions wrong) instead of ``test_set``'s half, which draws other solutions; a rerun gives other figures.

``slip_curriculum`` (run G's data) keeps its own loop rather than calling ``synthetic.generate``:
its seed-style problems repeat, with new results each time, and ``generate`` never writes a
problem twice. Its share of slips alone is what ``generate``'s ``error_weights`` would give.

* ``lm``: does the pretrained backbone know the arithmetic at all? Greedy answers of the
  whole SmolLM2-135M-Instruct (30 layers, its LM head) to 80 products, sums and differences.
* ``preset``: the ``cpu`` preset itself (``load_or_train``: trains it if it is not cached).
* ``F``: capacity. All 30 layers, the first 22 frozen as pretrained, the top 8 and the head
  trained (the backward pass stops at layer 22); 320 steps fit the budget.
* ``G``: curriculum. The preset's 8 layers and steps, but half of all planted errors are
  slips and seed-style problems repeat with different results, so each times-table fact
  is seen right and wrong many times. The naive tutorial's own test problems (9 × 2, 7 × 8, 12 / 4,
  6 + 4, 15 / 3) are never trained on.
* ``FG``: both: F's backbone and budget on G's data.
* ``G4``: G trained four times as long (2,240 steps, about 30 minutes): is it the budget?
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import time
from typing import Any

import torch

from prm_lib import synthetic
from prm_lib.data import PRMSample
from prm_lib.metrics import auroc, auroc_by_error_kind, step_metrics
from prm_lib.model import ProcessRewardModel
from prm_lib.train import Trainer, TrainConfig
from prm_lib.training_data import build_data, test_set
from prm_lib.zoo import preset

SEED_TEST_PROBLEMS = {"What is 9 × 2?", "What is 7 × 8?", "What is 12 / 4?", "What is 6 + 4?", "What is 15 / 3?"}
SEED_CASES = [
    ("What is 9 × 2?", ["I need to multiply 9 by 2.", "9 × 2 = 16.", "The answer is 16."]),
    ("What is 7 × 8?", ["I need to multiply 7 by 8.", "7 × 8 = 54.", "The answer is 54."]),
    ("What is 7 × 8?", ["I need to multiply 7 by 8.", "7 × 8 = 56.", "The answer is 56."]),
]


def times_table_cases(seed: int = 1) -> list[tuple[str, list[str], int]]:
    rng = random.Random(seed)
    cases = []
    for a in range(2, 13):
        for b in range(2, 13):
            right = a * b
            wrong = right + rng.choice([-10, -2, -1, 1, 2, 10])
            for result, label in ((right, 1), (wrong, 0)):
                steps = [f"I need to multiply {a} by {b}.", f"{a} × {b} = {result}.", f"The answer is {result}."]
                cases.append((f"What is {a} × {b}?", steps, label))
    return cases


def slip_curriculum(n: int, seed: int, split: str, config: TrainConfig, slip_share: float = 0.5) -> list[PRMSample]:
    """Run G's data: seed-style problems may repeat (new results each time), half of the errors slips."""
    rng = random.Random(seed)
    others = [k for k in synthetic.ERROR_KINDS if k != "arithmetic_slip"]
    out: list[PRMSample] = []
    while len(out) < n:
        if rng.random() < config.data.direct_rate:
            problem = synthetic.random_direct_problem(rng)
        else:
            problem = synthetic.random_problem(rng, max_ops=config.data.max_ops)
        if problem.split != split or problem.text in SEED_TEST_PROBLEMS:
            continue
        error = None
        if rng.random() < config.data.error_rate:
            error = "arithmetic_slip" if rng.random() < slip_share else rng.choice(others)
        correct_after = error in ("arithmetic_slip", "wrong_number") and rng.random() < config.data.correction_rate
        out.append(synthetic.solve(problem, rng, error, correct_after))
    return out


def freeze_first_layers(model: ProcessRewardModel, k: int) -> None:
    for layer in list(model.backbone.layers)[:k]:
        layer.requires_grad_(False)


def measure(model: ProcessRewardModel, config: TrainConfig) -> dict[str, Any]:
    """Chapter 5's held-out measurements, the times-table probe and the naive tutorial's cases."""
    test = test_set(config)
    probs = model.score_batch([s.as_item() for s in test])
    out: dict[str, Any] = {"test": step_metrics(probs, [s.targets for s in test])}
    out["auroc_by_kind"] = {k: round(v, 4) for k, v in auroc_by_error_kind(probs, test, synthetic.ERROR_KINDS).items()}
    cases = times_table_cases()
    scores = model.score_batch([(p, s) for p, s, _ in cases])
    held = [i for i, (p, _, _) in enumerate(cases) if synthetic.split_of(p) != "train"]
    out["times_table_auroc"] = round(auroc([s[1] for s in scores], [c[2] for c in cases]), 4)
    out["times_table_auroc_heldout_problems"] = round(auroc([scores[i][1] for i in held], [cases[i][2] for i in held]), 4)
    out["seed_cases"] = {f"{p} {s[1]}": [round(x, 3) for x in sc] for (p, s), sc in zip(SEED_CASES, model.score_batch(SEED_CASES))}
    return out


def run_preset() -> dict[str, Any]:
    from prm_lib.zoo import load_or_train

    model, metrics = load_or_train("cpu")
    return {"run": "preset", "config": {}, "frozen_layers": 0, "data": "cpu preset",
            "train_seconds": metrics["train_seconds"], "tokens_per_second": metrics["tokens_per_second"],
            "validation_auroc": [(e["step"], round(e["step_auroc"], 4)) for e in metrics["evals"]],
            **measure(model.eval(), preset("cpu"))}


# run -> (config changes to the cpu preset, its data: the preset's or the slip curriculum, frozen layers)
RUNS: dict[str, tuple[dict[str, Any], str, int]] = {
    "F": (dict(n_layers=30, max_steps=320, eval_every=80), "preset", 22),
    "G": ({}, "slip", 0),
    "FG": (dict(n_layers=30, max_steps=320, eval_every=80), "slip", 22),
    "G4": (dict(max_steps=2240, eval_every=560), "slip", 0),
}


def run_training(name: str) -> dict[str, Any]:
    base = preset("cpu")
    changes, data, frozen = RUNS[name]
    config = base.replace(**changes)
    if data == "preset":
        train, val = build_data(config)
    else:
        train = slip_curriculum(config.data.n_train, config.data.seed, "train", config)
        val = slip_curriculum(config.data.n_val, config.data.seed + 1, "validation", config)
    torch.manual_seed(config.seed)
    model = ProcessRewardModel.from_backbone(config.backbone, n_layers=config.n_layers)
    freeze_first_layers(model, frozen)  # before the Trainer collects the trainable parameters
    result = Trainer(model, train, val, config, progress=True).fit()
    return {
        "run": name,
        "config": changes,
        "frozen_layers": frozen,
        "data": "cpu preset" if data == "preset" else "slip curriculum (half slips, seed-style problems repeat, seed tests excluded)",
        "train_seconds": round(result.seconds, 1),
        "tokens_per_second": round(result.tokens / result.seconds, 1),
        "validation_auroc": [(e["step"], round(e["step_auroc"], 4)) for e in result.evals],
        **measure(result.model.eval(), config),
    }


def run_lm_probe(n: int = 80) -> dict[str, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from prm_lib.backbones import smollm2_folder

    folder = smollm2_folder()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    lm = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    tasks = {
        "times_table (2-12)": ("×", [(a, b) for a in range(2, 13) for b in range(2, 13)], lambda a, b: a * b),
        "sums (2-50)": ("+", [(a, b) for a in range(2, 51) for b in range(2, 51)], lambda a, b: a + b),
        "differences (10-60)": ("-", [(a, b) for a in range(10, 61) for b in range(1, a)], lambda a, b: a - b),
    }
    out: dict[str, Any] = {"run": "lm", "model": "SmolLM2-135M-Instruct, all 30 layers, greedy", "n": n}
    for task, (symbol, pairs, fn) in tasks.items():
        right = 0
        for a, b in random.Random(0).sample(pairs, n):
            prompt = f"What is {a} {symbol} {b}?\n\nI need to compute it.\n\n{a} {symbol} {b} = "
            ids = tokenizer(prompt, return_tensors="pt").input_ids
            with torch.no_grad():
                new = lm.generate(ids, max_new_tokens=4, do_sample=False)[0, ids.shape[1]:]
            answer = tokenizer.decode(new).strip()
            right += answer.startswith(str(fn(a, b))) and not answer[len(str(fn(a, b))):][:1].isdigit()
        out[task] = round(right / n, 4)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", nargs="+", choices=["lm", "preset", *RUNS], default=["lm", "preset", "F", "G", "FG"])
    args = parser.parse_args()
    for name in args.run:
        start = time.perf_counter()
        line = {"lm": run_lm_probe, "preset": run_preset}.get(name, lambda: run_training(name))()
        line["wall_seconds"] = round(time.perf_counter() - start, 1)
        print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
