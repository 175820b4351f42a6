"""The chapters' GPU path end to end, through the book's one switch ``PRM_BACKBONE``. One JSON line.

    PRM_BACKBONE=qwen2.5-0.5b-random python benchmarks/gpu_chapters_check.py --device cuda
    python benchmarks/gpu_chapters_check.py --smoke        # tiny-qwen2 on the CPU, seconds: checks the script

What chapters 5-8 do, in their order, with the model they would load (``course_preset``, here with a
short training: ``--max-steps``): train the PRM and the ORM (``load_or_train``), load them back from the
zoo's cache, score a test split and compute the step metrics (chapters 5-6), rank and verify candidates
and pick among N (chapter 7: ``PRMVerifier.score_grid``, the ORM with "last", ``best_of_n_accuracy``), and run
PRM-guided beam search and best-of-N (chapter 8). The backbone on the device is random-init (no model
hub there), so the figures say that the path runs, not what the model learns. Each stage is timed;
a stage that fails is recorded with its error and the others still run; the exit status is 1 if any failed.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
import traceback


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbone", default=None, help="PRM_BACKBONE (default: its value, else qwen2.5-0.5b-random)")
    parser.add_argument("--device", default=None, help="the device the chapters should end up on (checked)")
    parser.add_argument("--max-steps", type=int, default=20, help="training steps of each model (the preset's: 600)")
    parser.add_argument("--n-train", type=int, default=None, help="override the preset's n_train")
    parser.add_argument("--smoke", action="store_true", help="tiny-qwen2, 4 steps, small data: a check of this script")
    args = parser.parse_args()

    backbone = "tiny-qwen2" if args.smoke else (args.backbone or os.environ.get("PRM_BACKBONE") or "qwen2.5-0.5b-random")
    os.environ["PRM_BACKBONE"] = backbone  # the one switch: course_preset reads it
    import numpy as np
    import torch

    from prm_lib.answers import extract_final_answer
    from prm_lib.metrics import step_metrics
    from prm_lib.policies import SimulatedPolicy
    from prm_lib.search import beam_search, best_of_n
    from prm_lib.selection import Selector, best_of_n_accuracy
    from prm_lib.synthetic import generate
    from prm_lib.synthetic import problems as synthetic_problems
    from prm_lib.training_data import test_set
    from prm_lib.verify import PRMVerifier
    from prm_lib.zoo import course_preset, load_or_train, zoo_path

    steps = 4 if args.smoke else args.max_steps
    overrides = {"max_steps": steps, "eval_every": max(1, steps // 2)}
    if args.smoke:
        overrides.update(n_train=200, n_val=40)
    elif args.n_train:
        overrides["n_train"] = args.n_train
    out: dict = {"benchmark": "gpu_chapters_check", "backbone": backbone, "overrides": overrides, "stages": {}}
    state: dict = {}

    def stage(name):
        def wrap(fn):
            t0 = time.perf_counter()
            try:
                info = fn() or {}
                out["stages"][name] = {"ok": True, "seconds": round(time.perf_counter() - t0, 2), **info}
            except Exception as err:  # noqa: BLE001 - record it, go on with the other stages
                out["stages"][name] = {"ok": False, "seconds": round(time.perf_counter() - t0, 2),
                                       "error": f"{type(err).__name__}: {err}"[:500],
                                       "traceback": traceback.format_exc()[-1500:]}
                print(traceback.format_exc(), file=sys.stderr)
            return fn
        return wrap

    @stage("train_prm")  # chapter 5: load_or_train(*course_preset())
    def _():
        name, config = course_preset()
        config = config.replace(**overrides)
        prm, metrics = load_or_train(name, config, progress=False)
        state.update(prm=prm, config=config, name=name)
        return {"preset": name, "zoo_entry": zoo_path(name, config).name, "device": str(prm.device),
                "dtype": str(next(prm.backbone.parameters()).dtype), "train_seconds": metrics["train_seconds"],
                "tokens_per_second": metrics["tokens_per_second"], "final": metrics["final"],
                "last_loss": metrics["history"][-1]["loss"]}

    @stage("train_orm")  # chapter 7: load_or_train(*course_preset("orm"))
    def _():
        name, config = course_preset("orm")
        orm, metrics = load_or_train(name, config.replace(**overrides), progress=False)
        state["orm"] = orm
        return {"preset": name, "train_seconds": metrics["train_seconds"], "final": metrics["final"]}

    @stage("reload_from_zoo")  # every later chapter: the cached model, loaded back
    def _():
        prm, config, name = state["prm"], state["config"], state["name"]
        again, _ = load_or_train(name, config, progress=False)
        items = [s.as_item() for s in generate(32, seed=5, split="test", max_ops=config.data.max_ops)]
        a, b = prm.score_batch(items), again.score_batch(items)
        diff = max(abs(x - y) for r, t in zip(a, b) for x, y in zip(r, t))
        if diff > 1e-2:
            raise AssertionError(f"the reloaded model scores differently (max diff {diff})")
        return {"device": str(again.device), "max_abs_diff_vs_trained": diff}

    @stage("scoring")  # chapters 5-6: score a test split, step metrics
    def _():
        prm, config = state["prm"], state["config"]
        test = test_set(config, n=50 if args.smoke else 400)  # chapter 5's test set (the first 50 with --smoke)
        t0 = time.perf_counter()
        probs = prm.score_batch([s.as_item() for s in test])
        seconds = time.perf_counter() - t0
        if not all(0.0 <= p <= 1.0 for row in probs for p in row):
            raise AssertionError("a probability outside [0, 1] (or NaN)")
        m = step_metrics(probs, [s.targets for s in test])
        return {"n_solutions": len(test), "score_seconds": round(seconds, 3),
                "metrics": {k: (round(v, 4) if isinstance(v, float) else v) for k, v in m.items()}}

    @stage("verification")  # chapter 7: rank, weakest step, best-of-N selection with PRM and ORM
    def _():
        prm, orm, config = state["prm"], state["orm"], state["config"]
        n_problems, n_max = (6, 4) if args.smoke else (50, 16)
        bon = synthetic_problems(n_problems, seed=2024, split="test", max_ops=config.data.max_ops,
                                 direct_rate=config.data.direct_rate)
        policy = SimulatedPolicy(step_error_rate=0.15, misread_rate=0.8, seed=7)
        candidates = [policy.sample(p.text, n_max) for p in bon]
        ranked = PRMVerifier(prm, "min").rank_solutions(bon[0].text, candidates[0])
        texts = [p.text for p in bon]
        prm_grid = PRMVerifier(prm).score_grid(texts, candidates)
        orm_grid = PRMVerifier(orm, "last").score_grid(texts, candidates)
        answers = [[extract_final_answer(c) for c in cands] for cands in candidates]
        if prm_grid.answers != answers or prm_grid.scores.shape != (n_problems, n_max):
            raise AssertionError("score_grid's answers or shape differ from the candidates'")
        gold = [p.answer for p in bon]
        selectors = {"PRM best (min)": Selector("best", prm_grid.scores), "ORM best": Selector("best", orm_grid.scores),
                     "majority vote": Selector("majority"), "pass@N": Selector("pass")}
        acc = best_of_n_accuracy(answers, gold, selectors, [1, n_max], trials=4, seed=0)
        if any(grid.steps.probs[grid.steps.mask].isnan().any() for grid in (prm_grid, orm_grid)):
            raise AssertionError("NaN step probability")
        return {"n_candidates": prm_grid.scores.size, "top_ranked_score": round(ranked[0].score, 4),
                "accuracy_at_n": {k: round(float(v[:, 1].mean()), 3) for k, v in acc.items()}}

    @stage("search")  # chapter 8: PRM-guided beam search and best-of-N at the same budget
    def _():
        prm, config = state["prm"], state["config"]
        verifier = PRMVerifier(prm, "min")

        def count_tokens(step: str) -> int:
            return len(prm.tokenizer(step, add_special_tokens=False)["input_ids"])

        problems = synthetic_problems(4 if args.smoke else 20, seed=8, split="test", max_ops=config.data.max_ops,
                                      direct_rate=config.data.direct_rate)
        gold = [str(p.answer) for p in problems]
        runs = {}
        for n in (4, 8):
            policy = SimulatedPolicy(step_error_rate=0.15, misread_rate=0.8, seed=7)
            runs[f"beam search {n}"] = [beam_search(p.text, policy, verifier, count_tokens, n_beams=n, beam_width=2)
                                        for p in problems]
            policy = SimulatedPolicy(step_error_rate=0.15, misread_rate=0.8, seed=7)
            runs[f"best-of-{n}"] = [best_of_n(p.text, policy.sample, verifier, count_tokens, n) for p in problems]
        return {"n_problems": len(problems),
                "accuracy": {k: round(float(np.mean([r.best_answer() == g for r, g in zip(v, gold)])), 3)
                             for k, v in runs.items()},
                "mean_tokens": {k: round(float(np.mean([r.generated_tokens for r in v])), 1) for k, v in runs.items()},
                "mean_rounds": round(float(np.mean([r.rounds for r in runs["beam search 4"]])), 2)}

    prm = state.get("prm")
    if prm is not None:
        out["device"] = str(prm.device)
        out["dtype"] = str(next(prm.backbone.parameters()).dtype)
        out["hardware"] = torch.cuda.get_device_name() if prm.device.type == "cuda" else "cpu"
        if prm.device.type == "cuda":
            out["peak_memory_gb"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    if args.device and out.get("device", "").split(":")[0] != torch.device(args.device).type:
        out["stages"]["device_check"] = {"ok": False, "error": f"ran on {out.get('device')}, not {args.device}"}
    out["ok"] = all(s["ok"] for s in out["stages"].values())
    print(json.dumps(out))
    return 0 if out["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
