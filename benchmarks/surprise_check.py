"""The frozen LM's surprise on an accelerator: speed, bf16 against fp32, and prefix reuse. One JSON line.

    python benchmarks/surprise_check.py --backbone qwen2.5-0.5b-random --device cuda
    python benchmarks/surprise_check.py --smoke          # tiny-qwen2 on the CPU, seconds: checks the script

A PRM that reads surprise (``prm_lib.surprise``) runs the whole LM once per distinct solution, and beam
search extends solutions it has read. This measures, on one machine and in one process:

* reads per second of ``SurpriseSource.read`` over synthetic solutions, in the default dtype (bf16 on CUDA)
  and in fp32;
* how far bf16 surprise is from fp32 surprise (mean and largest absolute difference, in nats, over step
  tokens), and how often the two agree on the LM's first choice (surprise 0);
* prefix reuse: solutions read step by step, as beam search reads them (each extension runs only its new
  tokens on kept key/value states), against the same solutions read whole: tokens run and the largest
  difference in value.
"""

from __future__ import annotations

import argparse
import json
import time

import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbone", default="qwen2.5-0.5b-random")
    parser.add_argument("--device", default=None)
    parser.add_argument("--n", type=int, default=512, help="solutions to read")
    parser.add_argument("--smoke", action="store_true", help="tiny-qwen2 on the CPU, 32 solutions")
    args = parser.parse_args()
    if args.smoke:
        args.backbone, args.device, args.n = "tiny-qwen2", "cpu", 32

    from prm_lib.backbones import resolve_device
    from prm_lib.steps import encode_solutions
    from prm_lib.surprise import SurpriseSource
    from prm_lib.synthetic import generate

    device = resolve_device(args.device)
    samples = generate(args.n, seed=7, split="test", error_rate=0.6, max_ops=2, direct_rate=0.6)
    out: dict = {"benchmark": "surprise_check", "backbone": args.backbone, "device": str(device),
                 "hardware": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
                 "n_solutions": len(samples)}

    def timed_read(source: SurpriseSource, sequences: list[list[int]]) -> tuple[list, float]:
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        values = source.read(sequences)
        if device.type == "cuda":
            torch.cuda.synchronize()
        return values, time.perf_counter() - start

    low = SurpriseSource(args.backbone, device=device)  # the default dtype: bf16 on CUDA
    high = SurpriseSource(args.backbone, device=device, dtype=torch.float32)
    encoded = encode_solutions(low.tokenizer, [s.as_item() for s in samples])
    sequences = [e.input_ids for e in encoded]
    n_tokens = sum(map(len, sequences))
    out["n_tokens"] = n_tokens
    low.read(sequences[:8]), high.read(sequences[:8])  # warm-up (kernels, allocator)
    low._memo.clear(), high._memo.clear(), low._states.clear(), high._states.clear()
    low_values, low_s = timed_read(low, sequences)
    high_values, high_s = timed_read(high, sequences)
    out["dtype_default"] = str(next(low.lm.parameters()).dtype)
    out["read_seconds"] = {"default": round(low_s, 3), "fp32": round(high_s, 3)}
    out["tokens_per_second"] = {"default": round(n_tokens / low_s), "fp32": round(n_tokens / high_s)}

    diffs, agree, total = [], 0, 0
    for e, (lw, lb), (hw, hb) in zip(encoded, low_values, high_values):
        start = e.problem_length
        ls, hs = (lb - lw)[start:], (hb - hw)[start:]
        diffs.append((ls - hs).abs())
        agree += int(((ls == 0) == (hs == 0)).sum())
        total += ls.numel()
    d = torch.cat(diffs)
    out["bf16_vs_fp32"] = {"mean_abs_nats": round(d.mean().item(), 4), "max_abs_nats": round(d.max().item(), 4),
                           "p99_abs_nats": round(d.quantile(0.99).item(), 4),
                           "first_choice_agreement": round(agree / total, 4)}

    # beam search's reads: every solution step by step (prefixes, then their extensions), in one dtype
    stepwise = SurpriseSource(args.backbone, device=device, dtype=torch.float32)
    widths: list[int] = []
    forward = stepwise.lm.forward

    def counting_forward(*a, **k):
        ids = k.get("input_ids", a[0] if a else None)
        widths.append(int(ids.shape[0] * ids.shape[1]))
        return forward(*a, **k)

    stepwise.lm.forward = counting_forward
    chunk = encoded[:64]
    rounds = max(len(e.step_end_positions) for e in chunk)
    last: list = [None] * len(chunk)
    start = time.perf_counter()
    for r in range(rounds):
        # each round reads every solution up to the end of its next step, as beam search extends beams
        batch = [e.input_ids[: e.step_end_positions[min(r, len(e.step_end_positions) - 1)] + 1] for e in chunk]
        for i, value in enumerate(stepwise.read(batch)):
            last[i] = value
    stepwise_s = time.perf_counter() - start
    whole = high.read([e.input_ids for e in chunk])
    gap = max((a[0] - b[0]).abs().max().item() for a, b in zip(last, whole))
    out["prefix_reuse"] = {"solutions": len(chunk), "rounds": rounds, "tokens_run": sum(widths),
                           "tokens_if_each_read_whole": sum(len(e.input_ids[: p + 1]) for e in chunk
                                                            for p in e.step_end_positions),
                           "seconds": round(stepwise_s, 3), "max_abs_logprob_diff_vs_whole": round(gap, 6)}
    if device.type == "cuda":
        out["peak_memory_gb"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
    out["torch"] = torch.__version__
    import transformers

    out["transformers"] = transformers.__version__
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
