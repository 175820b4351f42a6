"""Scoring throughput: the naive tutorial's method vs ``score_batch`` vs a bare forward, in one run.

Prints one JSON line. Not a test: run it on purpose, on a quiet machine.

    python benchmarks/score_throughput.py                       # CPU, smollm2-135m
    python benchmarks/score_throughput.py --backbone qwen2.5-0.5b-random --device cuda

* seed: one solution per forward, the naive tutorial's text format, a Python loop with
  ``.item()`` over every token to find "\\n" (``prm_lib.course.joined_text``).
* score_batch: ``ProcessRewardModel.score_batch`` with its default batch policy.
* bare: only the backbone's forward over exactly the tokens ``score_batch``
  encodes (no tokenization, no head, no gather), under several batchings; the
  fastest is the reference. Positions are passed as ``ProcessRewardModel.forward``
  passes them (left to the backbone on CUDA).

On CUDA it also times ``score_batch`` under every candidate batching, tokenizing
alone, and ``score_batch`` with the positions passed explicitly as before
(``implicit_positions=False``), and can write a profile of one ``score_batch`` call.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import sys
import time

import torch

from prm_lib.backbones import resolve_device
from prm_lib.batching import BatchPolicy, collate, plan_batches
from prm_lib.course.joined_text import joined_score
from prm_lib.model import ProcessRewardModel
from prm_lib.synthetic import generate


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn, device: torch.device) -> float:
    sync(device)
    start = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbone", default="smollm2-135m")
    parser.add_argument("--device", default=None)
    parser.add_argument("--n", type=int, default=512, help="solutions to score (3-8 steps each)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=None, help="timed runs of each method, best kept (default: 3 on CUDA, 1 on CPU)")
    parser.add_argument("--profile-out", default=None, help="append a torch.profiler table of one score_batch call to this file")
    args = parser.parse_args()

    device = resolve_device(args.device)
    torch.manual_seed(args.seed)
    prm = ProcessRewardModel.from_backbone(args.backbone, device=device).eval()
    pool = generate(4 * args.n, seed=args.seed, split=None, n_ops=None)
    samples = [s for s in pool if 3 <= len(s.steps) <= 8][: args.n]
    if len(samples) < args.n:
        raise SystemExit(f"only {len(samples)} solutions of 3-8 steps generated")
    items = [s.as_item() for s in samples]
    encoded = prm.encode(items)
    lengths = [len(e) for e in encoded]
    n_tokens = sum(lengths)

    # Warm up every code path. On CUDA the first pass at each batch shape pays for allocator growth
    # and kernel selection, so every method is run once in full before any is timed.
    repeats = args.repeats or (3 if device.type == "cuda" else 1)
    warm = items if device.type == "cuda" else items[:8]
    prm.score_batch(warm)
    joined_score(prm, *items[0])

    def best(fn) -> float:
        return min(timed(fn, device) for _ in range(repeats))

    seed_s = timed(lambda: [joined_score(prm, p, s) for p, s in items], device)  # slow: timed once
    batch_s = best(lambda: prm.score_batch(items))

    implicit = device.type == "cuda"  # as ProcessRewardModel.forward decides

    @torch.inference_mode()
    def bare(policy: BatchPolicy) -> None:
        for idx in plan_batches(lengths, policy):
            b = collate([encoded[i] for i in idx], prm.tokenizer.pad_token_id).to(device)
            if implicit:  # as forward does on CUDA: no positions, a prepared "no mask" where the backbone takes one
                prm.backbone(input_ids=b.input_ids, attention_mask=prm.no_mask, position_ids=None, use_cache=False)
            else:  # right padding: no mask, as in forward
                prm.backbone(input_ids=b.input_ids, position_ids=b.position_ids, use_cache=False)

    if device.type == "cuda":
        candidates = {
            f"sorted, <= {w} rows, any padding": BatchPolicy(max_tokens=10**9, max_padding=1.0, max_batch=w)
            for w in (64, 128, 256)
        }
        for t in (8192, 16384):
            candidates[f"sorted, <= {t} tokens, any padding"] = BatchPolicy(max_tokens=t, max_padding=1.0, max_batch=512)
    else:
        candidates = {
            "one at a time": BatchPolicy(max_tokens=10**9, max_padding=0.0, max_batch=1),
            "sorted, <= 16 rows, any padding": BatchPolicy(max_tokens=10**9, max_padding=1.0, max_batch=16),
        }
    candidates["score_batch's default policy"] = BatchPolicy.for_device(device)
    if device.type == "cuda":
        for p in candidates.values():
            bare(p)
    bare_times = {name: best(lambda p=p: bare(p)) for name, p in candidates.items()}
    best_name = min(bare_times, key=bare_times.get)
    best_s = bare_times[best_name]

    extra = {}
    if device.type == "cuda":
        # where score_batch's time goes: tokenizing alone, and score_batch under each batching
        extra["encode_s"] = round(min(timed(lambda: prm.encode(items), device) for _ in range(repeats)), 4)
        encoded_once = prm.encode(items)
        extra["score_encoded_s"] = round(best(lambda: prm.score_encoded(encoded_once)), 4)
        extra["score_batch_s_by_policy"] = {name: round(best(lambda p=p: prm.score_batch(items, policy=p)), 4)
                                            for name, p in candidates.items()}
        # the positions passed explicitly, as before: transformers reads the pads as packed sequences
        prm.implicit_positions = False
        prm.score_batch(items)
        extra["score_batch_explicit_positions_s"] = round(best(lambda: prm.score_batch(items)), 4)
        prm.implicit_positions = None
        with torch.inference_mode():
            a = prm.score_batch(items[:64])
            prm.implicit_positions = False
            b = prm.score_batch(items[:64])
            prm.implicit_positions = None
        extra["implicit_vs_explicit_max_abs_diff"] = max(abs(x - y) for r, t in zip(a, b) for x, y in zip(r, t))
        extra["default_policy"] = str(BatchPolicy.for_device(device))
        if args.profile_out:
            from torch.profiler import ProfilerActivity, profile

            with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
                prm.score_batch(items)
                sync(device)
            with open(args.profile_out, "a") as f:
                f.write("== score_batch, 512 solutions, by self CUDA time\n")
                f.write(prof.key_averages().table(sort_by="self_cuda_time_total", row_limit=20) + "\n")
                f.write("== score_batch, by self CPU time\n")
                f.write(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=20) + "\n")

    if device.type == "cuda":
        peak_gb = torch.cuda.max_memory_allocated() / 2**30
        hardware = torch.cuda.get_device_name()
    else:
        peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux
        hardware = f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"
    print(
        json.dumps(
            {
                "benchmark": "score_throughput",
                "backbone": args.backbone,
                "device": str(device),
                "hardware": hardware,
                "dtype": str(next(prm.backbone.parameters()).dtype),
                "n_solutions": len(items),
                "n_tokens": n_tokens,
                "repeats": repeats,
                "seed_s": round(seed_s, 3),
                "score_batch_s": round(batch_s, 3),
                "bare_best_s": round(best_s, 3),
                "bare_best_batching": best_name,
                "bare_s": {k: round(v, 3) for k, v in bare_times.items()},
                "seed_solutions_per_s": round(len(items) / seed_s, 1),
                "score_batch_solutions_per_s": round(len(items) / batch_s, 1),
                "bare_solutions_per_s": round(len(items) / best_s, 1),
                "speedup_vs_seed": round(seed_s / batch_s, 2),
                "score_batch_over_bare": round(batch_s / best_s, 3),
                **extra,
                "peak_memory_gb": round(peak_gb, 2),
                "peak_memory_kind": "torch.cuda.max_memory_allocated" if device.type == "cuda" else "process max RSS",
                "torch": torch.__version__,
                "python": sys.version.split()[0],
            }
        )
    )


if __name__ == "__main__":
    main()
