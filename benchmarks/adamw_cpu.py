"""One AdamW step on CPU, fused against unfused, over the parameters the TRL side-by-side trains. One JSON line.

    python benchmarks/adamw_cpu.py            # SmolLM2-135M cut to 8 layers (trl_side_by_side.py's backbone)
    python benchmarks/adamw_cpu.py --smoke    # tiny-qwen2: checks the script

Why: with the embeddings trained, prm_lib is no faster than TRL's ``PRMTrainer`` in ``trl_side_by_side.py``.
transformers' Trainer steps with ``adamw_torch_fused`` on CPU; prm_lib's trainer asks for ``fused=True`` only on
CUDA. This times the optimizer step alone, for the trainable parameters of each setting (embeddings frozen, as
prm_lib's CPU presets; embeddings trained, as TRL), with random gradients; the forward and backward are not in it.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch


def seconds_per_step(params: list[torch.nn.Parameter], fused: bool, steps: int) -> float:
    optimizer = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.0, fused=fused)
    optimizer.step()  # the moment buffers are allocated on the first step: not timed
    start = time.perf_counter()
    for _ in range(steps):
        optimizer.step()
    return (time.perf_counter() - start) / steps


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="smollm2-135m")
    parser.add_argument("--n-layers", type=int, default=8)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3, help="interleaved rounds; the median is reported")
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    if args.smoke:
        args.backbone, args.n_layers, args.steps, args.repeats = "tiny-qwen2", None, 2, 1

    from prm_lib.backbones import load_backbone

    torch.manual_seed(0)
    model, _ = load_backbone(args.backbone, device="cpu", dtype=torch.float32, n_layers=args.n_layers)
    embeddings = model.get_input_embeddings().weight
    out: dict = {"benchmark": "adamw_cpu", "backbone": args.backbone, "n_layers": args.n_layers, "steps": args.steps,
                 "repeats": args.repeats, "threads": torch.get_num_threads(), "torch": torch.__version__}
    for setting, keep in (("embeddings_frozen", lambda p: p is not embeddings), ("embeddings_trained", lambda p: True)):
        params = [p for p in model.parameters() if keep(p)]
        for p in params:
            p.grad = torch.randn_like(p) * 1e-3
        rounds: dict[str, list[float]] = {"unfused": [], "fused": []}
        for _ in range(args.repeats):
            for name, fused in (("unfused", False), ("fused", True)):
                rounds[name].append(seconds_per_step(params, fused, args.steps))
        unfused, fused = statistics.median(rounds["unfused"]), statistics.median(rounds["fused"])
        out[setting] = {"params_millions": round(sum(p.numel() for p in params) / 1e6, 1),
                        "unfused_seconds_per_step": round(unfused, 6), "fused_seconds_per_step": round(fused, 6),
                        "unfused_over_fused": round(unfused / fused, 2),
                        "by_round": {k: [round(v, 6) for v in vs] for k, vs in rounds.items()}}
        for p in params:
            p.grad = None
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
