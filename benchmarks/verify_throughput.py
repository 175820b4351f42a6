"""Best-of-N scoring throughput: 1,000 candidate solutions through ``PRMVerifier``.

Prints one JSON line. Not a test: run it on purpose, on a quiet machine.

    python benchmarks/verify_throughput.py                 # CPU, an untrained smollm2-135m PRM (8 layers)
    python benchmarks/verify_throughput.py --preset cpu    # the trained chapter-5 PRM from the zoo

Candidates are 32 samples of the simulated noisy policy for each of 32 test problems
(the first 1,000 kept), as chapter 7 draws them. Three ways to score them:

* one_at_a_time: ``prm.score`` per candidate, the naive tutorial's verifier loop.
* score_batch: every candidate through ``score_batch`` (length-planned batches).
* verifier: ``PRMVerifier.step_probabilities``, which also scores each distinct
  solution once (sampled candidates repeat).
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import sys
import time

import torch

from prm_lib.model import ProcessRewardModel
from prm_lib.policies import SimulatedPolicy
from prm_lib.synthetic import problems
from prm_lib.verify import PRMVerifier


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--backbone", default="smollm2-135m")
    ap.add_argument("--n-layers", type=int, default=8)
    ap.add_argument("--preset", default=None, help="load a trained zoo preset instead (e.g. cpu)")
    ap.add_argument("--device", default=None)
    ap.add_argument("--n", type=int, default=1000)
    args = ap.parse_args()

    if args.preset:
        from prm_lib.zoo import load_or_train

        prm, _ = load_or_train(args.preset, progress=False, device=args.device)
    else:
        prm = ProcessRewardModel.from_backbone(args.backbone, device=args.device, n_layers=args.n_layers)
    policy = SimulatedPolicy(step_error_rate=0.15, misread_rate=0.8, seed=7)
    n_problems = -(-args.n // 32)
    items = [(p.text, c) for p in problems(n_problems, seed=2024, split="test", max_ops=2, direct_rate=0.5)
             for c in policy.sample(p.text, 32)][: args.n]
    n_distinct = len({(p, tuple(c)) for p, c in items})
    n_tokens = sum(len(e) for e in prm.encode(items))

    prm.score_batch(items[:64])  # warm-up
    timings = {}
    start = time.perf_counter()
    one = [prm.score(p, c) for p, c in items]
    timings["one_at_a_time"] = time.perf_counter() - start
    start = time.perf_counter()
    batched = prm.score_batch(items)
    timings["score_batch"] = time.perf_counter() - start
    start = time.perf_counter()
    verified = PRMVerifier(prm).step_probabilities(items)
    timings["verifier"] = time.perf_counter() - start

    worst = max(abs(a - b) for x, y in zip(one, batched) for a, b in zip(x, y))
    worst_v = max(abs(a - b) for x, y in zip(verified, batched) for a, b in zip(x, y))
    print(json.dumps({
        "benchmark": "verify_throughput",
        "model": args.preset or f"{args.backbone} (first {args.n_layers} layers, untrained)",
        "device": str(prm.device),
        "cpu": platform.processor() or platform.machine(),
        "torch_threads": torch.get_num_threads(),
        "n_candidates": len(items),
        "n_distinct": n_distinct,
        "n_tokens": n_tokens,
        "seconds": {k: round(v, 3) for k, v in timings.items()},
        "solutions_per_s": {k: round(len(items) / v, 1) for k, v in timings.items()},
        "score_batch_vs_one_at_a_time": round(timings["one_at_a_time"] / timings["score_batch"], 2),
        "max_abs_diff_batched_vs_single": worst,
        "max_abs_diff_verifier_vs_batched": worst_v,
        "peak_memory_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
    }))


if __name__ == "__main__":
    main()
