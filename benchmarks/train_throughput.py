"""Training throughput: prm_lib's Trainer vs the naive tutorial's training loop, in one run. One JSON line.

    python benchmarks/train_throughput.py                         # CPU, the cpu preset's backbone
    python benchmarks/train_throughput.py --backbone qwen2.5-0.5b-random --device cuda \\
        --batch-size 128 --steps 30 --compile --variants tokens:24576   # GPU: tokens/s and MFU

* seed: batch 1, an optimizer step per sample, the naive tutorial's per-token search for "\\n"
  (``prm_lib.course.joined_text.joined_train_step``), on the same backbone.
* trainer: ``prm_lib.train.Trainer.train_step`` on the trainer's own length-bucketed batches
  (``--max-len``: only solutions of at most that many tokens, and with ``--compile`` all padded to it,
  the one-shape method measured before ``torch.compile`` took every shape at once).
* ``--variants``: more batchings timed through the same ``train_step`` (and the same compiled model):
  ``rows:N`` length-bucketed batches of N rows, ``tokens:N`` batches of about N padded tokens
  (``prm_lib.batching.token_budget_batches``), ``fixed:W`` solutions <= W tokens padded to W.
* ``--breakdown``: forward, forward+backward alone, and one step cut into its phases with a sync
  after each (forward+loss, backward, clipping, optimizer, zero_grad); the CUDA allocator's counters.
* ``--compare-explicit``: the trainer's batches again with the positions passed explicitly, as before
  (``ProcessRewardModel.implicit_positions = False``).

Tokens are real (non-padding) tokens. MFU as PaLM defines it (Chowdhery et al., 2022, appendix B):
(6 x non-embedding parameters + attention FLOPs 12 x layers x seq_len x hidden) x tokens/s
over the GPU's dense bf16 peak (989 TFLOP/s for an H100 SXM; pass --peak-tflops otherwise).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time

import torch

from prm_lib.backbones import resolve_device
from prm_lib.batching import length_bucketed_batches, token_budget_batches
from prm_lib.course.joined_text import joined_train_step
from prm_lib.model import ProcessRewardModel
from prm_lib.train import Trainer
from prm_lib.training_data import build_data
from prm_lib.zoo import preset


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


ALLOC_KEYS = ("num_alloc_retries", "num_device_alloc", "num_device_free", "num_sync_all_streams")


def alloc_counters(device: torch.device) -> dict[str, int]:
    if device.type != "cuda":
        return {}
    stats = torch.cuda.memory_stats()
    return {k: int(stats.get(k, 0)) for k in ALLOC_KEYS}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="cpu", help="data, loss and optimiser settings to start from")
    parser.add_argument("--backbone", default=None, help="override the preset's backbone")
    parser.add_argument("--n-layers", type=int, default=None, help="override the preset's n_layers (0: all)")
    parser.add_argument("--device", default=None)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--steps", type=int, default=20, help="timed trainer steps (after 3 warm-up steps)")
    parser.add_argument("--seed-steps", type=int, default=40, help="timed steps of the naive tutorial's loop (samples)")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model")
    parser.add_argument("--precision", default=None, help="fp32, bf16 (mixed: fp32 weights) or bf16-pure "
                                                          "(default: the trainer's, bf16 on CUDA)")
    parser.add_argument("--peak-tflops", type=float, default=989.0)
    parser.add_argument("--max-len", type=int, default=None,
                        help="train only on solutions of at most this many tokens (with --compile: padded to it)")
    parser.add_argument("--n-train", type=int, default=None, help="override the preset's n_train")
    parser.add_argument("--breakdown", action="store_true", help="also time forward, forward+backward and each phase")
    parser.add_argument("--compare-explicit", action="store_true", help="also time with explicit positions (as before)")
    parser.add_argument("--variants", default="", help="comma-separated rows:N, tokens:N, fixed:W (see above)")
    parser.add_argument("--profile-out", default=None, help="append a torch.profiler table of two steps to this file")
    parser.add_argument("--second-pass", action="store_true",
                        help="time the same batches again (every shape seen once: the allocator has grown)")
    args = parser.parse_args()

    device = resolve_device(args.device)
    config = preset(args.preset)
    changes = {"max_steps": args.steps + 3, "eval_every": 10**9, "compile": args.compile, "precision": args.precision}
    if args.backbone:
        changes["backbone"] = args.backbone
    if args.n_layers is not None:
        changes["n_layers"] = args.n_layers or None
    if args.batch_size:
        changes["batch_size"] = args.batch_size
    config = config.replace(**changes)
    n_needed = (args.steps + 3) * config.batch_size + args.seed_steps
    config = config.replace(n_train=args.n_train or max(config.data.n_train, n_needed), n_val=10)
    torch.manual_seed(0)
    prm = ProcessRewardModel.from_backbone(config.backbone, device=device, n_layers=config.n_layers)
    train_set, val_set = build_data(config)

    # --- the naive tutorial's loop: one sample per optimizer step -----------------------------------------
    seed_opt = torch.optim.AdamW([p for p in prm.parameters() if p.requires_grad], lr=config.lr)
    for s in train_set[:2]:
        joined_train_step(prm, seed_opt, s.problem, s.steps, s.labels)
    sync(device)
    start, seed_tokens = time.perf_counter(), 0
    for s in train_set[2 : 2 + args.seed_steps]:
        seed_tokens += joined_train_step(prm, seed_opt, s.problem, s.steps, s.labels)[1]
    sync(device)
    seed_s = time.perf_counter() - start
    del seed_opt
    prm.zero_grad(set_to_none=True)

    # --- prm_lib's trainer ------------------------------------------------------------------------
    all_train = train_set
    if args.max_len:
        lengths = [len(e) for e in prm.encode([s.as_item() for s in train_set])]
        train_set = [s for s, n in zip(train_set, lengths) if n <= args.max_len]
    trainer = Trainer(prm, train_set, val_set, config, progress=False)
    if args.max_len and args.compile:
        trainer.pad_to_multiple_of = args.max_len  # every batch padded to the same width, as before
    cfg = prm.backbone.config
    embedding = prm.backbone.get_input_embeddings().weight.numel()
    non_embedding = sum(p.numel() for p in prm.backbone.parameters()) - embedding

    def collate(idx, multiple):
        return prm.collate([trainer.train_enc[i] for i in idx], pad_to_multiple_of=multiple)

    def mfu(real_tokens: int, rows: int, seconds: float) -> float:
        mean_len = real_tokens / rows
        flops_per_token = 6 * non_embedding + 12 * cfg.num_hidden_layers * mean_len * cfg.hidden_size
        return flops_per_token * real_tokens / seconds / (args.peak_tflops * 1e12)

    def timed_steps(batches) -> dict:
        """train_step over prepared batches: seconds, real and padded tokens, the allocator's counters."""
        before = alloc_counters(device)
        sync(device)
        t0 = time.perf_counter()
        for b in batches:
            loss = trainer.train_step(b)
        sync(device)
        seconds = time.perf_counter() - t0
        after = alloc_counters(device)
        real = sum(b.n_tokens for b in batches)
        padded = sum(b.input_ids.numel() for b in batches)
        rows = sum(b.input_ids.shape[0] for b in batches)
        out = {"steps": len(batches), "seconds": round(seconds, 3), "s_per_step": round(seconds / len(batches), 4),
               "rows_per_step": round(rows / len(batches), 1), "real_tokens_per_step": round(real / len(batches)),
               "mean_tokens_per_solution": round(real / rows, 1), "padding_fraction": round(1 - real / padded, 3),
               "tokens_per_s": round(real / seconds, 1), "final_loss": round(float(loss), 4)}
        if device.type == "cuda":
            out["mfu"] = round(mfu(real, rows, seconds), 4)
            out["allocator"] = {k: after[k] - before[k] for k in after}
        return out

    warm_start = time.perf_counter()
    compile_note = None
    try:
        for step in range(3):  # warm-up (and compilation)
            trainer.train_step(collate(trainer.batch_at(step), trainer.pad_to_multiple_of))
    except Exception as err:  # noqa: BLE001 - dynamic shapes failed: fall back to torch.compile's default
        if not args.compile:
            raise
        compile_note = f"dynamic=True failed ({type(err).__name__}: {str(err)[:300]}); fell back to the default"
        torch._dynamo.reset()
        trainer.forward = torch.compile(prm)
        trainer.optimizer.zero_grad(set_to_none=True)
        for step in range(3):
            trainer.train_step(collate(trainer.batch_at(step), trainer.pad_to_multiple_of))
    sync(device)
    warmup_s = time.perf_counter() - warm_start
    print(json.dumps({"partial": "warm-up", "seconds": round(warmup_s, 1)}), file=sys.stderr, flush=True)
    batches = [collate(trainer.batch_at(step), trainer.pad_to_multiple_of) for step in range(3, 3 + args.steps)]
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    main_run = timed_steps(batches)
    trainer_s = main_run["seconds"]
    trainer_tokens = sum(b.n_tokens for b in batches)
    padded_tokens = sum(b.input_ids.numel() for b in batches)
    peak_gb = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else None
    print(json.dumps({"partial": "trainer's batches", **main_run}), file=sys.stderr, flush=True)
    second = {}
    if args.second_pass:
        second = {"second_pass": timed_steps(batches)}
        print(json.dumps({"partial": "second pass", **second["second_pass"]}), file=sys.stderr, flush=True)

    breakdown = {}
    if args.breakdown:
        def fwd(b):
            with torch.no_grad():
                trainer.forward(b)

        def fwd_bwd(b):
            trainer.loss_on(b).backward()
            trainer.optimizer.zero_grad(set_to_none=True)

        # compiled, a forward without grad would be one more compilation: only forward+backward then
        alone = [("forward_backward_s_per_step", fwd_bwd)] if args.compile else [("forward_s_per_step", fwd), ("forward_backward_s_per_step", fwd_bwd)]
        for name, fn in alone:
            fn(batches[0])
            sync(device)
            t0 = time.perf_counter()
            for b in batches[:10]:
                fn(b)
            sync(device)
            breakdown[name] = round((time.perf_counter() - t0) / len(batches[:10]), 4)
        breakdown["train_step_s_per_step"] = round(trainer_s / len(batches), 4)

        # one step cut into its phases, a sync after each (what train_step does, in its order)
        params = [p for g in trainer.optimizer.param_groups for p in g["params"]]
        phases = {k: 0.0 for k in ("forward_and_loss", "batch_weight", "backward", "clip_grad_norm", "optimizer_step",
                                   "scheduler_and_zero_grad")}
        for b in batches[:10]:
            prm.train()
            sync(device)
            t = time.perf_counter()
            marks = []
            loss = trainer.loss_on(b); sync(device); marks.append(time.perf_counter())  # noqa: E702
            trainer.batch_weight(b); sync(device); marks.append(time.perf_counter())  # noqa: E702
            loss.backward(); sync(device); marks.append(time.perf_counter())  # noqa: E702
            torch.nn.utils.clip_grad_norm_(params, config.grad_clip); sync(device); marks.append(time.perf_counter())  # noqa: E702
            trainer.optimizer.step(); sync(device); marks.append(time.perf_counter())  # noqa: E702
            trainer.scheduler.step(); trainer.optimizer.zero_grad(set_to_none=True); sync(device)  # noqa: E702
            marks.append(time.perf_counter())
            for k, m in zip(phases, marks):
                phases[k] += m - t
                t = m
        breakdown["phases_s_per_step"] = {k: round(v / len(batches[:10]), 4) for k, v in phases.items()}
        breakdown["phases_sum_s_per_step"] = round(sum(phases.values()) / len(batches[:10]), 4)

    explicit = {}
    if args.compare_explicit:
        prm.implicit_positions = False
        trainer.train_step(batches[0])
        explicit = {"explicit_positions": timed_steps(batches)}
        prm.implicit_positions = None

    if args.profile_out and device.type == "cuda":
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            for b in batches[:2]:
                trainer.train_step(b)
            sync(device)
        label = "compiled" if args.compile else "eager"
        with open(args.profile_out, "a") as f:
            for key in ("self_cuda_time_total", "self_cpu_time_total"):
                f.write(f"== two train_steps ({label}, batch {config.batch_size}), by {key}\n")
                f.write(prof.key_averages().table(sort_by=key, row_limit=25) + "\n")

    variants = {}
    for spec in filter(None, (v.strip() for v in args.variants.split(","))):
        kind, _, value = spec.partition(":")
        n = int(value)
        try:
            if kind == "rows":
                plan = length_bucketed_batches(trainer.lengths, n, config.seed, 1)
                multiple = trainer.pad_to_multiple_of
            elif kind == "tokens":
                multiple = trainer.pad_to_multiple_of
                plan = token_budget_batches(trainer.lengths, n, config.seed, 1, pad_to_multiple_of=multiple)
            elif kind == "fixed":
                short = [i for i, length in enumerate(trainer.lengths) if length <= n]
                plan = [[short[j] for j in b] for b in
                        length_bucketed_batches([trainer.lengths[i] for i in short], config.batch_size, config.seed, 1)]
                multiple = n
            else:
                raise ValueError(f"unknown variant {spec!r}")
            plan = [idx for idx in plan if len(idx) > 1]  # a one-row batch is a new graph for torch.compile
            vb = [collate(idx, multiple) for idx in plan[: args.steps + 2]]
            for b in vb[:2]:  # warm-up (a new shape or size may recompile)
                trainer.train_step(b)
            variants[spec] = timed_steps(vb[2:])
            print(json.dumps({"partial": spec, **variants[spec]}), file=sys.stderr, flush=True)
        except Exception as err:  # noqa: BLE001 - one failed variant must not lose the others
            variants[spec] = {"error": f"{type(err).__name__}: {str(err)[:300]}"}
        if device.type == "cuda":
            torch.cuda.empty_cache()

    tok_s = trainer_tokens / trainer_s
    mean_len = trainer_tokens / sum(b.input_ids.shape[0] for b in batches)
    out = {
        "benchmark": "train_throughput",
        "backbone": config.backbone,
        "n_layers": cfg.num_hidden_layers,
        "device": str(device),
        "hardware": torch.cuda.get_device_name() if device.type == "cuda" else f"cpu, {torch.get_num_threads()} threads",
        "dtype": str(next(prm.backbone.parameters()).dtype),
        "precision": trainer.precision,
        "compile": args.compile,
        "batch_size": config.batch_size,
        "pad_to_multiple_of": trainer.pad_to_multiple_of,
        "mean_tokens_per_solution": round(mean_len, 1),
        "padding_fraction": round(1 - trainer_tokens / padded_tokens, 3),
        "seed_tokens_per_s": round(seed_tokens / seed_s, 1),
        "trainer_tokens_per_s": round(tok_s, 1),
        "speedup_vs_seed": round(tok_s / (seed_tokens / seed_s), 2),
        "trainer_steps": args.steps,
        "trainer_seconds": round(trainer_s, 2),
        "warmup_s": round(warmup_s, 1),
        "final_loss": main_run["final_loss"],
        "non_embedding_params": non_embedding,
        **breakdown,
    }
    if device.type == "cuda":
        out["mfu"] = main_run["mfu"]
        out["allocator"] = main_run["allocator"]
        out["peak_memory_gb"] = round(peak_gb, 2)
    out.update(second)
    out.update(explicit)
    if variants:
        out["variants"] = variants
        runs = {"trainer's batches": out.get("mfu"), **{k: v.get("mfu") for k, v in variants.items()}}
        runs = {k: v for k, v in runs.items() if v is not None}
        if runs:
            out["best_run"] = max(runs, key=runs.get)
            out["best_mfu"] = runs[out["best_run"]]
    if args.compile:
        from torch._dynamo.utils import counters

        out["dynamo_stats"] = {k: int(v) for k, v in counters["stats"].items()}
        if compile_note:
            out["compile_note"] = compile_note
    print(json.dumps(out))


if __name__ == "__main__":
    main()
