"""Training throughput: prm_lib's Trainer vs the seed's training loop, in one run. One JSON line.

    python benchmarks/train_throughput.py                         # CPU, the cpu preset's backbone
    python benchmarks/train_throughput.py --backbone qwen2.5-0.5b-random --device cuda \\
        --batch-size 64 --steps 100 --compile                     # GPU: tokens/s and MFU

* seed: batch 1, an optimizer step per sample, the seed's per-token search for "\\n"
  (``prm_lib.seed_baseline.seed_train_step``), on the same backbone.
* trainer: ``prm_lib.train.Trainer.train_step`` on length-bucketed batches.

Tokens are real (non-padding) tokens. MFU, following FACTS.md's convention:
(6 x non-embedding parameters + attention FLOPs 12 x layers x seq_len x hidden) x tokens/s
over the GPU's dense bf16 peak (989 TFLOP/s for an H100 SXM; pass --peak-tflops otherwise).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time

import torch

from prm_lib.backbones import resolve_device
from prm_lib.model import ProcessRewardModel
from prm_lib.seed_baseline import seed_train_step
from prm_lib.train import Trainer, build_data
from prm_lib.zoo import preset


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="cpu", help="data, loss and optimiser settings to start from")
    parser.add_argument("--backbone", default=None, help="override the preset's backbone")
    parser.add_argument("--n-layers", type=int, default=None, help="override the preset's n_layers (0: all)")
    parser.add_argument("--device", default=None)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--steps", type=int, default=20, help="timed trainer steps (after 3 warm-up steps)")
    parser.add_argument("--seed-steps", type=int, default=40, help="timed steps of the seed's loop (samples)")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model")
    parser.add_argument("--peak-tflops", type=float, default=989.0)
    parser.add_argument("--max-len", type=int, default=None,
                        help="train only on solutions of at most this many tokens (with --compile: one shape)")
    parser.add_argument("--breakdown", action="store_true", help="also time forward and forward+backward alone")
    args = parser.parse_args()

    device = resolve_device(args.device)
    config = preset(args.preset)
    changes = {"max_steps": args.steps + 3, "eval_every": 10**9, "compile": args.compile}
    if args.backbone:
        changes["backbone"] = args.backbone
    if args.n_layers is not None:
        changes["n_layers"] = args.n_layers or None
    if args.batch_size:
        changes["batch_size"] = args.batch_size
    config = dataclasses.replace(config, **changes)
    n_needed = (args.steps + 3) * config.batch_size + args.seed_steps
    config = dataclasses.replace(config, n_train=max(config.n_train, n_needed), n_val=10)
    torch.manual_seed(0)
    prm = ProcessRewardModel.from_backbone(config.backbone, device=device, n_layers=config.n_layers)
    train_set, val_set = build_data(config)

    # --- the seed's loop: one sample per optimizer step -----------------------------------------
    seed_opt = torch.optim.AdamW([p for p in prm.parameters() if p.requires_grad], lr=config.lr)
    for s in train_set[:2]:
        seed_train_step(prm, seed_opt, s.problem, s.steps, s.labels)
    sync(device)
    start, seed_tokens = time.perf_counter(), 0
    for s in train_set[2 : 2 + args.seed_steps]:
        seed_tokens += seed_train_step(prm, seed_opt, s.problem, s.steps, s.labels)[1]
    sync(device)
    seed_s = time.perf_counter() - start
    del seed_opt

    # --- prm_lib's trainer ------------------------------------------------------------------------
    if args.max_len:
        lengths = [len(e) for e in prm.encode([s.as_item() for s in train_set])]
        train_set = [s for s, n in zip(train_set, lengths) if n <= args.max_len]
    trainer = Trainer(prm, train_set, val_set, config, progress=False)
    if args.max_len and args.compile:
        trainer.pad_to_multiple_of = args.max_len  # every batch padded to the same width: one compilation
    for step in range(3):  # warm-up (and compilation)
        trainer.train_step(prm.collate([trainer.train_enc[i] for i in trainer.batch_at(step)],
                                       pad_to_multiple_of=trainer.pad_to_multiple_of))
    batches = [prm.collate([trainer.train_enc[i] for i in trainer.batch_at(step)],
                           pad_to_multiple_of=trainer.pad_to_multiple_of) for step in range(3, 3 + args.steps)]
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    sync(device)
    start = time.perf_counter()
    for batch in batches:
        loss = trainer.train_step(batch)
    sync(device)
    trainer_s = time.perf_counter() - start
    trainer_tokens = sum(b.n_tokens for b in batches)
    padded_tokens = sum(b.input_ids.numel() for b in batches)

    breakdown = {}
    if args.breakdown:
        def fwd(b):
            with torch.no_grad():
                trainer.forward(b)

        def fwd_bwd(b):
            trainer.loss_on(b).backward()
            trainer.optimizer.zero_grad(set_to_none=True)

        for name, fn in [("forward_s_per_step", fwd), ("forward_backward_s_per_step", fwd_bwd)]:
            fn(batches[0])
            sync(device)
            t0 = time.perf_counter()
            for b in batches[:10]:
                fn(b)
            sync(device)
            breakdown[name] = round((time.perf_counter() - t0) / len(batches[:10]), 4)
        breakdown["train_step_s_per_step"] = round(trainer_s / len(batches), 4)

    cfg = prm.backbone.config
    embedding = prm.backbone.get_input_embeddings().weight.numel()
    non_embedding = sum(p.numel() for p in prm.backbone.parameters()) - embedding
    mean_len = trainer_tokens / sum(b.input_ids.shape[0] for b in batches)
    flops_per_token = 6 * non_embedding + 12 * cfg.num_hidden_layers * mean_len * cfg.hidden_size
    tok_s = trainer_tokens / trainer_s
    out = {
        "benchmark": "train_throughput",
        "backbone": config.backbone,
        "n_layers": cfg.num_hidden_layers,
        "device": str(device),
        "hardware": torch.cuda.get_device_name() if device.type == "cuda" else f"cpu, {torch.get_num_threads()} threads",
        "dtype": str(next(prm.backbone.parameters()).dtype),
        "compile": args.compile,
        "batch_size": config.batch_size,
        "mean_tokens_per_solution": round(mean_len, 1),
        "padding_fraction": round(1 - trainer_tokens / padded_tokens, 3),
        "seed_tokens_per_s": round(seed_tokens / seed_s, 1),
        "trainer_tokens_per_s": round(tok_s, 1),
        "speedup_vs_seed": round(tok_s / (seed_tokens / seed_s), 2),
        "trainer_steps": args.steps,
        "trainer_seconds": round(trainer_s, 2),
        "final_loss": round(float(loss), 4),
        "non_embedding_params": non_embedding,
        **breakdown,
    }
    if device.type == "cuda":
        out["mfu"] = round(flops_per_token * tok_s / (args.peak_tflops * 1e12), 4)
        out["peak_memory_gb"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
