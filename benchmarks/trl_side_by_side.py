"""prm_lib's trainer beside TRL 1.13's ``PRMTrainer`` (TRL's last release with one), in one run. One JSON line.

    python benchmarks/trl_side_by_side.py                 # SmolLM2-135M cut to 8 layers, CPU, 150 steps of 8
    python benchmarks/trl_side_by_side.py --smoke         # tiny-qwen2, 10 steps, one round: checks the script

Both train on the same TRL-format file (the ``cpu`` preset's synthetic data, written by ``prm_lib.data.write``),
with the same backbone, batch size, step count and learning rate, and both are measured on the same held-out
TRL-format test file (chapter 5's test set: 400 solutions, half of them wrong):

* tokens per second: real (non-padding) tokens of the batches each trainer stepped on (each tool's own
  sampler), over the wall-clock time of its optimizer steps: TRL's ``train()`` (which evaluates nothing here),
  prm_lib's ``train()`` less the time its ``Trainer.evaluate`` took (its final validation pass). Times on a
  shared CPU vary between runs, so the three runs are repeated in ``--repeats`` interleaved rounds (3): the
  median time, and each round's rate and ratio, are reported;
* peak memory: the largest resident set of the process that trained (each tool runs in its own process);
* held-out step AUROC: P(correct) at each labelled step end (TRL: the softmax of its two-label head at the
  positions its ``tokenize_row`` labels; prm_lib: ``score_batch``), against the labels; and the 95% paired
  bootstrap interval of the difference, resampling whole test solutions.

What differs by design, and is reported: TRL trains every parameter at one learning rate with a linear decay;
prm_lib keeps the embeddings frozen and gives the new value head its own (higher) rate, with warmup and
cosine decay, as its CPU presets do. A third run, ``prm_lib_embeddings_trained``, trains the embeddings as
TRL does, to show what freezing them buys.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def write_files(root: Path, smoke: bool) -> dict:
    from prm_lib.data import write
    from prm_lib.training_data import test_set
    from prm_lib.zoo import preset

    config = preset("cpu").replace(n_train=200 if smoke else 2000, n_val=40 if smoke else 200)
    train, val, _ = config.data.build()
    write(train, root / "train.jsonl", "trl")
    write(val, root / "validation.jsonl", "trl")
    write(test_set(config, 40 if smoke else 400), root / "test.jsonl", "trl")
    return {"n_train": len(train), "n_validation": len(val)}


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # Linux reports KiB


def run_prm_lib(root: Path, args: argparse.Namespace) -> dict:
    import numpy as np
    import torch

    from prm_lib.data import read
    from prm_lib.metrics import auroc, flatten_steps
    from prm_lib.train import Trainer, train
    from prm_lib.training_data import FileData
    from prm_lib.zoo import preset

    evaluating = {"seconds": 0.0}
    evaluate = Trainer.evaluate

    def timed_evaluate(self: Trainer) -> dict:  # the validation pass is not training: its time is taken out
        start = time.perf_counter()
        try:
            return evaluate(self)
        finally:
            evaluating["seconds"] += time.perf_counter() - start

    Trainer.evaluate = timed_evaluate
    config = preset("cpu").replace(
        backbone=args.backbone, n_layers=args.n_layers, batch_size=args.batch_size, max_steps=args.steps,
        eval_every=args.steps, lr=args.lr, freeze_embeddings=not args.train_embeddings,
        data=FileData(str(root / "train.jsonl"), "trl", val_file=str(root / "validation.jsonl")))
    torch.manual_seed(0)
    result = train(config, progress=False, device="cpu")
    losses = [h["loss"] for h in result.history]
    seconds = result.seconds - evaluating["seconds"]
    test = read(root / "test.jsonl", "trl")
    rows = result.model.score_batch([s.as_item() for s in test])
    if not args.train_embeddings:
        (root / "test_scores_prm_lib.json").write_text(json.dumps({"scores": rows}))
    probs, truth, _ = flatten_steps(rows, [s.targets for s in test])
    return {"train_seconds": round(seconds, 3), "tokens": result.tokens,
            "tokens_per_second": round(result.tokens / seconds, 1),
            "loss_first_10": round(float(np.mean(losses[:10])), 4), "loss_last_10": round(float(np.mean(losses[-10:])), 4),
            "test_step_auroc": round(auroc(probs, truth >= 0.5), 4), "peak_rss_gib": round(peak_rss_gib(), 2),
            "settings": {"lr": config.lr, "head_lr": config.head_lr, "schedule": f"warmup {config.warmup_steps}, cosine",
                         "frozen_embeddings": config.freeze_embeddings}}


def run_trl(root: Path, args: argparse.Namespace) -> dict:
    import numpy as np
    import torch

    from prm_lib.metrics import auroc
    from prm_lib.steps import DEFAULT_SEPARATOR
    from prm_lib.trl_interop import trl_prm_trainer

    os.environ["TRL_EXPERIMENTAL_SILENCE"] = "1"
    torch.manual_seed(0)
    trainer = trl_prm_trainer(root, Path(tempfile.mkdtemp()) / "trl_run", backbone=args.backbone, n_layers=args.n_layers,
                              max_steps=args.steps, batch_size=args.batch_size, learning_rate=args.lr)
    seen = {"tokens": 0}
    step = trainer.training_step  # counts the real tokens of every batch it steps on (the data loader fetches
    # one batch ahead, so counting in the collator would count a batch it never trains on)

    def counting_step(model, inputs, *args, **kwargs):
        seen["tokens"] += int(inputs["attention_mask"].sum())
        return step(model, inputs, *args, **kwargs)

    trainer.training_step = counting_step
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    # the same test file, the positions TRL labels, P(label 1 = correct)
    from trl.experimental.prm import PRMTrainer

    model, tokenizer = trainer.model.eval(), trainer.processing_class
    scores, labels, rows, label_rows = [], [], [], []
    with open(root / "test.jsonl") as f:
        for line in f:
            row = PRMTrainer.tokenize_row(json.loads(line), tokenizer, DEFAULT_SEPARATOR, max_length=None,
                                          max_completion_length=None, train_on_last_step_only=False, is_eval=True)
            with torch.no_grad():
                logits = model(input_ids=torch.tensor([row["input_ids"]])).logits[0]
            p = torch.softmax(logits.float(), -1)[:, 1].numpy()
            rows.append([float(p[i]) for i, label in enumerate(row["labels"]) if label != -100])
            label_rows.append([int(label) for label in row["labels"] if label != -100])
            scores += rows[-1]
            labels += label_rows[-1]
    (root / "test_scores_trl.json").write_text(json.dumps({"scores": rows, "labels": label_rows}))
    return {"train_seconds": round(seconds, 3), "tokens": seen["tokens"],
            "tokens_per_second": round(seen["tokens"] / seconds, 1),
            "loss_first_10": round(float(np.mean(losses[:10])), 4), "loss_last_10": round(float(np.mean(losses[-10:])), 4),
            "test_step_auroc": round(auroc(scores, labels), 4), "peak_rss_gib": round(peak_rss_gib(), 2),
            "settings": {"lr": args.lr, "schedule": "linear decay (TRL's default)", "frozen_embeddings": False}}


def auroc_gap_interval(root: Path) -> list[float]:
    """95% paired bootstrap interval of prm_lib's test step AUROC minus TRL's, resampling whole solutions
    (a solution's steps are not independent of each other)."""
    import numpy as np

    from prm_lib.data import read
    from prm_lib.metrics import auroc, paired_bootstrap

    truth = [[t >= 0.5 for t in s.targets] for s in read(root / "test.jsonl", "trl")]
    saved = {tool: json.loads((root / f"test_scores_{tool}.json").read_text()) for tool in ("prm_lib", "trl")}
    scores = {tool: side["scores"] for tool, side in saved.items()}
    # the same steps on both sides, with the same labels, or the gap means nothing
    for tool, rows in scores.items():
        if [len(r) for r in rows] != [len(t) for t in truth]:
            raise ValueError(f"{tool} scored other steps than the test file's labels")
    if saved["trl"]["labels"] != [[int(t) for t in row] for row in truth]:
        raise ValueError("TRL's labels at the scored positions differ from the test file's")

    def gap(idx: np.ndarray) -> float:
        labels = [x for i in idx for x in truth[i]]
        return auroc([x for i in idx for x in scores["prm_lib"][i]], labels) - auroc(
            [x for i in idx for x in scores["trl"][i]], labels)

    lo, hi = paired_bootstrap(gap, len(truth))
    return [round(float(lo), 4), round(float(hi), 4)]


def summarize(sides: list[dict]) -> dict:
    """One tool's rounds: the median time and rate, the largest peak memory, and every round's rate. The
    trained model is the same in every round (seeded, one machine), so the AUROC and losses must agree."""
    import numpy as np

    for key in ("tokens", "test_step_auroc", "loss_last_10"):
        if len({side[key] for side in sides}) != 1:
            raise ValueError(f"the rounds disagree on {key}: {[side[key] for side in sides]}")
    seconds = float(np.median([side["train_seconds"] for side in sides]))
    return {**sides[0], "train_seconds": round(seconds, 3), "tokens_per_second": round(sides[0]["tokens"] / seconds, 1),
            "tokens_per_second_by_round": [side["tokens_per_second"] for side in sides],
            "peak_rss_gib": max(side["peak_rss_gib"] for side in sides)}


# prm_lib as its presets train, prm_lib training the embeddings too (as TRL does: what freezing them buys), TRL
SIDES = {"prm_lib": run_prm_lib, "prm_lib_embeddings_trained": run_prm_lib, "trl": run_trl}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbone", default="smollm2-135m")
    parser.add_argument("--n-layers", type=int, default=8)
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--repeats", type=int, default=3,
                        help="rounds of the three runs, interleaved; times on a shared CPU vary from run to run")
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--tool", choices=list(SIDES), help=argparse.SUPPRESS)  # one side, in its own process
    parser.add_argument("--data", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.smoke:
        args.backbone, args.n_layers, args.steps, args.repeats = "tiny-qwen2", None, 10, 1
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    if args.tool:
        args.train_embeddings = args.tool == "prm_lib_embeddings_trained"
        side = SIDES[args.tool](Path(args.data), args)
        print(json.dumps(side))
        return 0
    import torch

    root = Path(tempfile.mkdtemp())
    out = {"benchmark": "trl_side_by_side", "backbone": args.backbone, "n_layers": args.n_layers, "steps": args.steps,
           "batch_size": args.batch_size, "device": "cpu", "threads": torch.get_num_threads(),
           **write_files(root, args.smoke)}
    import trl

    out["trl_version"] = trl.__version__
    out["repeats"] = args.repeats
    runs: dict[str, list[dict]] = {tool: [] for tool in SIDES}
    for _ in range(args.repeats):
        for tool in SIDES:
            command = [sys.executable, __file__, "--tool", tool, "--data", str(root), "--backbone", args.backbone,
                       "--steps", str(args.steps), "--batch-size", str(args.batch_size), "--lr", str(args.lr)]
            command += ["--n-layers", str(args.n_layers)] if args.n_layers is not None else []
            command += ["--smoke"] if args.smoke else []
            done = subprocess.run(command, capture_output=True, text=True)
            if done.returncode != 0:
                out[tool] = {"error": done.stderr[-2000:]}
                break
            runs[tool].append(json.loads(done.stdout.strip().splitlines()[-1]))
        if any("error" in out.get(tool, {}) for tool in SIDES):
            break
    for tool, sides in runs.items():
        if "error" not in out.get(tool, {}):
            out[tool] = summarize(sides)
    if "tokens_per_second" in out.get("prm_lib", {}) and "tokens_per_second" in out.get("trl", {}):
        out["speed_ratio_prm_lib_over_trl"] = round(out["prm_lib"]["tokens_per_second"] / out["trl"]["tokens_per_second"], 2)
        # each round's own ratio: the two runs of a round were next to each other in time
        out["speed_ratio_by_round"] = [round(a["tokens_per_second"] / b["tokens_per_second"], 2)
                                       for a, b in zip(runs["prm_lib"], runs["trl"])]
        out["auroc_gap_prm_lib_minus_trl"] = round(out["prm_lib"]["test_step_auroc"] - out["trl"]["test_step_auroc"], 4)
        out["auroc_gap_95ci"] = auroc_gap_interval(root)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
