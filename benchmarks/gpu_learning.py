"""Does a real pretrained backbone learn on a GPU, and what does mixed precision change? One JSON line.

    python benchmarks/gpu_learning.py --device cuda                  # SmolLM2-135M whole (30 layers), 300 steps per run
    python benchmarks/gpu_learning.py --smoke                        # tiny-qwen2 on the CPU, seconds: checks the script

Trains the same PRM twice from the same start, on the course's data (the cpu-reader preset's slip-heavy
synthetic problems) with every backbone layer trainable, once per precision:

* ``bf16``: what prm_lib does on CUDA, fp32 weights and AdamW state, the forward pass under bf16 autocast;
* ``bf16-pure``: the weights themselves in bf16, as prm_lib did before; an AdamW update smaller than about
  1/256 of a weight rounds away, which at lr 2e-5 is most of them.

For each run it reports, every ``--eval-every`` steps, the held-out step AUROC and slip AUROC on chapter 5's
test set (``training_data.test_set``, 400 solutions), how far the backbone's weights moved from the start
(``||W - W0|| / ||W0||`` over all trained backbone tensors) and the share of backbone weights that changed
at all; and at the end the naive tutorial's cases' step scores.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

SEED_CASES = [("What is 6 + 4?", ["I need to add 6 and 4.", "6 + 4 = 10.", "The answer is 10."]),
              ("What is 9 × 2?", ["I need to multiply 9 by 2.", "9 × 2 = 18.", "The answer is 18."]),
              ("What is 9 × 2?", ["I need to multiply 9 by 2.", "9 × 2 = 16.", "The answer is 16."]),
              ("What is 7 × 8?", ["I need to multiply 7 by 8.", "7 × 8 = 54.", "The answer is 54."]),
              ("What is 12 / 4?", ["I need to divide 12 by 4.", "12 / 4 = 4.", "The answer is 4."])]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbone", default="smollm2-135m")
    parser.add_argument("--device", default=None)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--eval-every", type=int, default=50)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=2e-5, help="the backbone's (the GPU preset's: 2e-5)")
    parser.add_argument("--precisions", default="bf16,bf16-pure")
    parser.add_argument("--smoke", action="store_true", help="tiny-qwen2 on the CPU, 4 steps: checks the script")
    args = parser.parse_args()

    import torch

    from prm_lib.metrics import auroc, auroc_by_error_kind, flatten_steps
    from prm_lib.model import ProcessRewardModel
    from prm_lib.synthetic import ERROR_KINDS
    from prm_lib.train import Trainer
    from prm_lib.training_data import test_set
    from prm_lib.zoo import preset

    backbone = "tiny-qwen2" if args.smoke else args.backbone
    device = "cpu" if args.smoke else args.device
    steps, every = (4, 2) if args.smoke else (args.steps, args.eval_every)
    base = preset("cpu-reader").replace(backbone=backbone, n_layers=None, surprise=False, freeze_embeddings=False,
                                        batch_size=args.batch_size, max_steps=steps, eval_every=every, lr=args.lr,
                                        head_lr=1e-3, warmup_steps=min(30, steps // 4),
                                        n_train=200 if args.smoke else 4000, n_val=20)
    train_set, _, _ = base.data.build()
    test = test_set(base, 40 if args.smoke else 400)
    out: dict = {"benchmark": "gpu_learning", "backbone": backbone, "steps": steps, "batch_size": base.batch_size,
                 "lr": base.lr, "head_lr": base.head_lr, "n_test": len(test), "runs": {}}
    if torch.cuda.is_available() and not args.smoke:
        out["card"] = torch.cuda.get_device_name()

    def measure(model) -> dict:
        probs = model.score_batch([s.as_item() for s in test])
        p, t, _ = flatten_steps(probs, [s.targets for s in test])
        kinds = auroc_by_error_kind(probs, test, ERROR_KINDS)
        return {"step_auroc": round(auroc(p, t >= 0.5), 4), "slip_auroc": round(kinds.get("arithmetic_slip", float("nan")), 4)}

    for precision in args.precisions.split(","):
        config = base.replace(precision=precision)
        torch.manual_seed(config.seed)
        model = ProcessRewardModel.from_backbone(backbone, device=device, dtype=torch.float32, n_layers=None)
        start: dict = {}
        curve = []

        def moved(model=model) -> dict:
            norm0 = torch.sqrt(sum(w.square().sum() for w in start.values()))
            diff = torch.sqrt(sum((p.detach().float() - start[n]).square().sum() for n, p in model.backbone.named_parameters()))
            changed = sum(int((p.detach().float() != start[n]).sum()) for n, p in model.backbone.named_parameters())
            total = sum(w.numel() for w in start.values())
            return {"backbone_relative_change": float(diff / norm0), "backbone_share_changed": round(changed / total, 4)}

        def on_eval(step, _metrics, model=model):
            was = model.training
            with trainer.autocast():
                row = {"step": step, **measure(model), **moved()}
            model.train(was)
            curve.append(row)
            print(json.dumps({"precision": precision, **row}), file=sys.stderr, flush=True)

        trainer = Trainer(model, train_set, test[:20], config, progress=False, on_eval=on_eval)
        # the start is the weights as the run keeps them (bf16-pure: after the cast to bf16)
        start.update({n: p.detach().float().clone() for n, p in model.backbone.named_parameters()})
        t0 = time.perf_counter()
        result = trainer.fit()
        seconds = time.perf_counter() - t0
        model.eval()
        with trainer.autocast():
            cases = model.score_batch([c for c in SEED_CASES])
        out["runs"][precision] = {
            "curve": curve, "train_seconds": round(seconds, 1), "tokens": result.tokens,
            "tokens_per_second": round(result.tokens / seconds, 1),
            "loss_first_10": round(sum(h["loss"] for h in result.history[:10]) / 10, 4) if steps >= 10 else None,
            "loss_last_10": round(sum(h["loss"] for h in result.history[-10:]) / 10, 4) if steps >= 10 else None,
            "weights_dtype": str(next(model.backbone.parameters()).dtype),
            "peak_gpu_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if torch.cuda.is_available() else None,
            "seed_cases": [{"problem": p, "steps": s, "p_correct": [round(x, 3) for x in sc]}
                           for (p, s), sc in zip(SEED_CASES, cases)],
        }
        del model, trainer
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
