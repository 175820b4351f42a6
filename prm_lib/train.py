"""Training a PRM (or the ORM baseline) on step-labelled solutions.

Chapter 5 of the course. What differs from the seed's loop, and why:

* batches of many solutions, grouped by length so that padding wastes little
  (the seed took one solution and one optimizer step per sample);
* AdamW with linear warmup and cosine decay, gradient clipping, a higher
  learning rate for the freshly initialised value head than for the backbone;
* held-out evaluation every ``eval_every`` steps: step AUROC on problems the
  model never trained on (the seed only ever looked at its 4 training samples,
  where a loss of 0.0000 says nothing);
* checkpoints with optimizer, scheduler and progress, so a run resumes where it
  stopped and ends where an uninterrupted run would have;
* deterministic from a seed on CPU; bf16 weights and fused AdamW on CUDA;
* the model and optimizer go through ``accelerate``, so the same loop runs on one
  device or, under ``accelerate launch`` / ``torchrun``, data parallel or sharded
  (``prm_lib.distributed``, appendix B).

The ORM baseline (``objective="orm"``) is the same network trained on the same
problems with one label per solution (is its final answer right?), read at the
solution's last token.
"""

from __future__ import annotations

import dataclasses
import json
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from .batching import Batch
from .distributed import Accelerator, gather_model, is_fsdp, loss_scale, make_accelerator, reduce_sum, shutdown
from .data import PRMSample
from .loss import prm_loss
from .model import ProcessRewardModel
from .objectives import OBJECTIVES, Objective, last_step_mask, objective, outcome_targets  # noqa: F401 (re-exported)
from .steps import EncodedSolution


COMPILE_OPTIONS: dict[str, Any] = {"dynamic": True}  # torch.compile's arguments when config.compile is set


def compile_blocks(model: ProcessRewardModel) -> ProcessRewardModel:
    """``torch.compile`` the backbone's transformer blocks in place (regional compilation), else the whole model.

    The blocks are one class with the same code, so the first one's compilation serves all 24 of
    Qwen2.5-0.5B's: compiling takes about as long as for one block, where a run compiling the whole
    model with dynamic shapes was stopped long after without a result (benchmarks/RESULTS.md has
    both measurements; see also PyTorch's regional compilation recipe). The few
    operations between blocks (embedding, rotary tables, final norm, value head) stay eager.
    Returns what to call for a forward pass.
    """
    layers = getattr(model.backbone, "layers", None)
    if isinstance(layers, torch.nn.ModuleList) and len(layers) > 0:
        for layer in layers:
            layer.compile(**COMPILE_OPTIONS)
        return model
    return torch.compile(model, **COMPILE_OPTIONS)


@dataclass
class TrainConfig:
    """Everything that determines a training run (its hash names the zoo's cache entry)."""

    backbone: str = "smollm2-135m"
    n_layers: int | None = 8
    objective: str = "prm"  # "prm": a label per step; "orm": one outcome label per solution
    # data (prm_lib.synthetic)
    n_train: int = 3000
    n_val: int = 300
    data_seed: int = 0
    error_rate: float = 0.5
    correction_rate: float = 0.15
    max_ops: int = 4
    direct_rate: float = 0.0  # share of seed-style one-operation problems ("What is 9 × 2?")
    error_weights: dict[str, float] | None = None  # relative frequency of each error kind (None: equal)
    hold_out_seed_problems: bool = False  # never train on the seed tutorial's problems (synthetic.SEED_PROBLEMS)
    # optimisation
    batch_size: int = 16
    max_steps: int = 300
    lr: float = 1e-4
    head_lr: float = 1e-3
    weight_decay: float = 0.01
    warmup_steps: int = 20
    grad_clip: float = 1.0
    freeze_embeddings: bool = True
    # read the per-token surprise of the whole backbone LM, frozen, beside the hidden states (prm_lib.surprise)
    surprise: bool = False
    compile: bool = False  # torch.compile the model (GPU speed; batches padded to a multiple of 8)
    # loss (prm_lib.loss)
    pos_weight: float | None = None
    mask_after_first_error: bool = False
    later_step_weight: float = 0.0
    ranking_weight: float = 0.0
    # bookkeeping
    eval_every: int = 50
    save_every: int | None = None  # default: at every evaluation
    seed: int = 0

    def __post_init__(self) -> None:
        objective(self.objective)  # an unknown name is an error that lists the known ones
        for name in ("n_train", "n_val", "batch_size", "max_steps", "eval_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")

    def to_dict(self) -> dict[str, Any]:
        """All settings; those added after a preset was first trained are left out while at their
        default, so the hash (and the zoo's cache entry) of every earlier configuration stays the same."""
        out = dataclasses.asdict(self)
        for name, default in _LATER_DEFAULTS.items():
            if out[name] == default:
                del out[name]
        return out


_LATER_DEFAULTS: dict[str, Any] = {"surprise": False, "error_weights": None, "hold_out_seed_problems": False}


def length_bucketed_batches(lengths: Sequence[int], batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """One epoch of batches: shuffle, sort within windows of 50 batches by length, shuffle the batches.

    Solutions of similar length share a batch (little padding), and the order still varies per epoch.
    """
    rng = random.Random(seed * 100_003 + epoch)
    order = list(range(len(lengths)))
    rng.shuffle(order)
    window = batch_size * 50
    batches: list[list[int]] = []
    for start in range(0, len(order), window):
        chunk = sorted(order[start : start + window], key=lambda i: lengths[i])
        batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
    rng.shuffle(batches)
    return batches


def token_budget_batches(lengths: Sequence[int], max_tokens: int, seed: int, epoch: int,
                         pad_to_multiple_of: int = 1, max_batch: int | None = None) -> list[list[int]]:
    """One epoch of batches of about ``max_tokens`` padded tokens each (a GPU option; the CPU presets keep
    ``length_bucketed_batches``).

    As there, solutions are shuffled, sorted by length within windows, cut into batches, and the batches
    shuffled; here a batch takes solutions while rows x width (the longest, rounded up to
    ``pad_to_multiple_of``) stays within ``max_tokens``, so short solutions come many to a batch and long
    ones few, and every step does about the same work with little padding. A solution longer than
    ``max_tokens`` gets a batch of its own. Every index appears exactly once.
    """
    if max_tokens < 1:
        raise ValueError(f"max_tokens must be at least 1, got {max_tokens}")
    rng = random.Random(seed * 100_003 + epoch)
    order = list(range(len(lengths)))
    rng.shuffle(order)
    window = max(1, 50 * max_tokens // max(1, round(sum(lengths) / max(1, len(lengths)))))
    batches: list[list[int]] = []
    for start in range(0, len(order), window):
        chunk = sorted(order[start : start + window], key=lambda i: lengths[i])
        current: list[int] = []
        for i in chunk:  # ascending: the newest solution is the widest of its batch
            width = -(-lengths[i] // pad_to_multiple_of) * pad_to_multiple_of
            full = max_batch is not None and len(current) >= max_batch
            if current and ((len(current) + 1) * width > max_tokens or full):
                batches.append(current)
                current = []
            current.append(i)
        if current:
            batches.append(current)
    rng.shuffle(batches)
    return batches


SHARDED_STATE = "sharded"  # checkpoint/sharded/: accelerate's per-process model and optimizer shards (FSDP)


@dataclass
class TrainResult:
    model: ProcessRewardModel
    history: list[dict[str, float]] = field(default_factory=list)
    evals: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    tokens: int = 0

    @property
    def final(self) -> dict[str, Any]:
        return self.evals[-1] if self.evals else {}


class Trainer:
    """Trains ``model`` on ``train`` samples and evaluates on ``val`` samples, as ``config`` says."""

    def __init__(
        self,
        model: ProcessRewardModel,
        train: Sequence[PRMSample],
        val: Sequence[PRMSample],
        config: TrainConfig,
        out_dir: str | Path | None = None,
        progress: bool = True,
        on_eval: Callable[[int, dict[str, Any]], None] | None = None,
        accelerator: Accelerator | None = None,
    ) -> None:
        if not train:
            raise ValueError("no training samples")
        self.model, self.config = model, config
        # what the targets, loss mask and evaluation are (prm_lib.objectives); the model keeps the name, so
        # a saved ORM loads as one
        self.objective: Objective = objective(config.objective)
        self.model.objective = config.objective
        self.accelerator = accelerator or make_accelerator(model.device)
        self.is_main = self.accelerator.is_main_process
        self.out_dir = Path(out_dir) if out_dir else None
        self.progress, self.on_eval = progress and self.is_main, on_eval
        setup_start = time.perf_counter()
        self.train_enc = self._encode(train)
        self.val_enc = self._encode(val) if val else []
        self.val_samples = list(val)
        self.lengths = [len(e) for e in self.train_enc]
        # the frozen LM's surprise, once per solution: every epoch and evaluation reuses it
        self.model.attach_surprise(self.train_enc + self.val_enc, progress=self.progress, cache=out_dir is not None)
        # encoding and the frozen LM's surprise, before the first step (train_seconds counts the steps)
        self.setup_seconds = time.perf_counter() - setup_start
        self._epoch_plan: tuple[int, list[list[int]]] = (-1, [])
        # GPU option (not part of TrainConfig, so no preset changes): batches of about this many padded
        # tokens instead of batch_size rows; see batch_at and token_budget_batches.
        self.tokens_per_batch: int | None = None
        self._token_plans: dict[tuple[int, int, int], list[list[int]]] = {}
        if config.freeze_embeddings:
            self.model.backbone.get_input_embeddings().weight.requires_grad_(False)
        head = [p for module in self.model.head_modules().values() for p in module.parameters()]
        body = [p for p in self.model.backbone.parameters() if p.requires_grad]
        fused = self.model.device.type == "cuda"
        optimizer = torch.optim.AdamW(
            [{"params": body, "lr": config.lr}, {"params": head, "lr": config.head_lr}],
            weight_decay=config.weight_decay,
            fused=fused,
        )
        if is_fsdp(self.accelerator):  # FSDP wraps each of the backbone's layers (e.g. Qwen2DecoderLayer) apart
            self.model._no_split_modules = getattr(self.model.backbone, "_no_split_modules", None)
        # DDP (rank 0's weights broadcast, gradients averaged during backward) or FSDP (sharded)
        # under a launcher; the model itself in one process. The scheduler stays ours: accelerate's
        # would step once per process.
        self.wrapped, self.optimizer = self.accelerator.prepare(self.model, optimizer)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, self._lr_factor)
        # One compilation of one block for every batch shape (dynamic=True, see compile_blocks): batches of
        # length-sorted solutions keep their own width (rounded up to a multiple of 8 for the tensor cores)
        # instead of all being padded to one width, which wasted a third of the compiled run's tokens.
        self.forward = self.wrapped
        if config.compile and compile_blocks(self.model) is not self.model:  # no blocks found: compile it whole
            self.forward = torch.compile(self.wrapped, **COMPILE_OPTIONS)
        self.pad_to_multiple_of = 8 if config.compile else 1
        self.step = 0
        self.result = TrainResult(model)

    # -- data --------------------------------------------------------------------
    def _encode(self, samples: Sequence[PRMSample]) -> list[EncodedSolution]:
        return self.model.encode([s.as_item() for s in samples], labels=self.objective.targets(samples))

    def _lr_factor(self, step: int) -> float:
        c = self.config
        if step < c.warmup_steps:
            return (step + 1) / c.warmup_steps
        progress = (step - c.warmup_steps) / max(1, c.max_steps - c.warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    def batch_at(self, step: int) -> list[int]:
        """The batch for a global step: a pure function of (seed, step), so a resumed run sees the same data.

        With ``tokens_per_batch`` set (a GPU option, off by default), batches of about that many padded
        tokens (``token_budget_batches``) instead of ``batch_size`` rows; epochs then differ in length.
        """
        if self.tokens_per_batch:
            epoch, pos = 0, step
            while pos >= len(self._token_plan(epoch)):
                pos -= len(self._token_plan(epoch))
                epoch += 1
            return self._token_plan(epoch)[pos]
        per_epoch = math.ceil(len(self.lengths) / self.config.batch_size)
        epoch, pos = divmod(step, per_epoch)
        if self._epoch_plan[0] != epoch:  # plan each epoch once, not once per step
            self._epoch_plan = (epoch, length_bucketed_batches(self.lengths, self.config.batch_size, self.config.seed, epoch))
        return self._epoch_plan[1][pos]

    def _token_plan(self, epoch: int) -> list[list[int]]:
        """One epoch of token-budget batches, planned once (epochs differ in length, so earlier ones are kept)."""
        key = (epoch, self.tokens_per_batch, self.pad_to_multiple_of)
        if key not in self._token_plans:
            self._token_plans[key] = token_budget_batches(self.lengths, self.tokens_per_batch, self.config.seed, epoch,
                                                          self.pad_to_multiple_of)
        return self._token_plans[key]

    # -- one step ------------------------------------------------------------------
    def loss_on(self, batch: Batch) -> torch.Tensor:
        c = self.config
        logits = self.forward(batch)
        return prm_loss(
            logits, batch.labels, self.objective.loss_mask(batch.step_mask),
            pos_weight=c.pos_weight,
            mask_after_first_error=c.mask_after_first_error,
            later_step_weight=c.later_step_weight,
            ranking_weight=c.ranking_weight,
        )

    def batch_weight(self, batch: Batch) -> float:
        """How many labelled steps the loss averages over (one per solution for an ORM)."""
        return float(self.objective.loss_mask(batch.step_mask).sum())

    def train_step(self, batch: Batch, weight: float | None = None) -> torch.Tensor:
        """Forward, backward, clip, optimizer and scheduler step; returns the (detached) loss.

        Across processes, ``batch`` is this process's share of the global batch and ``weight``
        its number of labelled steps (default: counted from ``batch``; 0 for a stand-in batch
        when the global batch had no sample left for this process). Each loss is scaled so that
        the engine's gradient average, and the returned loss, are those of the whole global batch.
        """
        self.model.train()
        params = [p for g in self.optimizer.param_groups for p in g["params"]]
        loss = self.loss_on(batch)
        scale, share = loss_scale(self.batch_weight(batch) if weight is None else weight, self.accelerator)
        self.accelerator.backward(loss * scale if scale != 1.0 else loss)
        if self.accelerator.num_processes > 1:
            loss = torch.tensor(reduce_sum(float(loss.detach()) * share, self.accelerator))
        if self.config.grad_clip:
            # under FSDP accelerate clips sharded gradients when given all of the model's parameters
            clip = list(self.wrapped.parameters()) if is_fsdp(self.accelerator) else params
            self.accelerator.clip_grad_norm_(clip, self.config.grad_clip)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return loss.detach()

    # -- evaluation -------------------------------------------------------------------
    def evaluate(self) -> dict[str, Any]:
        return self.objective.evaluate(self.model.score_encoded(self.val_enc), self.val_enc, self.val_samples)

    # -- checkpoints --------------------------------------------------------------------
    def save_checkpoint(self) -> None:
        """Model, optimizer, scheduler and progress; under FSDP each process writes its own shards."""
        if self.out_dir is None:
            return
        ckpt = self.out_dir / "checkpoint"
        sharded = is_fsdp(self.accelerator)
        if sharded:  # every process: accelerate writes model and optimizer shards
            self.accelerator.save_state(str(ckpt / SHARDED_STATE))
        if not self.is_main:
            self.accelerator.wait_for_everyone()
            return
        if not sharded:
            self.model.save(ckpt)
        torch.save(
            {
                "step": self.step,
                "optimizer": None if sharded else self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "history": self.result.history,
                "evals": self.result.evals,
                "seconds": self.result.seconds,
                "tokens": self.result.tokens,
                "config": self.config.to_dict(),
                "torch_rng": torch.get_rng_state(),
            },
            ckpt / "trainer_state.pt",
        )
        self.accelerator.wait_for_everyone()

    def resume(self) -> bool:
        """Continue from ``out_dir/checkpoint`` if it exists and matches this config; True if resumed."""
        if self.out_dir is None or not (self.out_dir / "checkpoint" / "trainer_state.pt").exists():
            return False
        ckpt = self.out_dir / "checkpoint"
        state = torch.load(ckpt / "trainer_state.pt", weights_only=False)
        if state["config"] != self.config.to_dict():
            raise ValueError(f"{ckpt} was written by a different training config; use another --out or delete it")
        if state["optimizer"] is None:  # written under FSDP: the shards hold model and optimizer
            if not is_fsdp(self.accelerator):
                raise ValueError(f"{ckpt} holds FSDP shards: resume it under the same FSDP launch")
            self.accelerator.load_state(str(ckpt / SHARDED_STATE))
        else:
            if is_fsdp(self.accelerator):
                raise ValueError(f"{ckpt} was written without FSDP: resume it without FSDP (or use another --out)")
            saved = ProcessRewardModel.load(ckpt, device=self.model.device)
            self.model.backbone.load_state_dict(saved.backbone.state_dict())
            self.model.load_head_state_dict(saved.head_state_dict())
            self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.step = state["step"]
        self.result.history, self.result.evals = state["history"], state["evals"]
        self.result.seconds, self.result.tokens = state["seconds"], state["tokens"]
        torch.set_rng_state(state["torch_rng"])
        return True

    # -- the loop ------------------------------------------------------------------------
    def fit(self) -> TrainResult:
        c = self.config
        torch.manual_seed(c.seed)
        self.resume()
        bar = None
        if self.progress:
            from .progress import progress

            bar = progress(total=c.max_steps, initial=self.step, desc=f"training {c.objective.upper()}", unit="step")
        start = time.perf_counter() - self.result.seconds
        save_every = c.save_every or c.eval_every
        rank, world = self.accelerator.process_index, self.accelerator.num_processes
        while self.step < c.max_steps:
            whole = self.batch_at(self.step)
            idx = whole[rank::world]  # this process's share; if none is left, a stand-in that counts 0
            batch = self.model.collate([self.train_enc[i] for i in idx or whole[:1]], pad_to_multiple_of=self.pad_to_multiple_of)
            loss = self.train_step(batch, weight=None if idx else 0.0)
            self.step += 1
            self.result.tokens += int(reduce_sum(batch.n_tokens if idx else 0, self.accelerator))
            entry = {"step": self.step, "loss": float(loss), "lr": self.scheduler.get_last_lr()[0]}
            self.result.history.append(entry)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{entry['loss']:.3f}")
            # rank 0 evaluates; under FSDP every process runs the forward passes (each holds a shard)
            evaluates = self.is_main or is_fsdp(self.accelerator)
            if self.val_enc and evaluates and (self.step % c.eval_every == 0 or self.step == c.max_steps):
                self.result.seconds = time.perf_counter() - start
                metrics = {"step": self.step, "seconds": round(self.result.seconds, 1), **self.evaluate()}
                self.result.evals.append(metrics)
                if self.on_eval and self.is_main:
                    self.on_eval(self.step, metrics)
                if bar is not None:
                    key = self.objective.metric
                    bar.set_postfix(loss=f"{entry['loss']:.3f}", **{key: f"{metrics[key]:.3f}"})
            if self.step % save_every == 0 or self.step == c.max_steps:
                self.result.seconds = time.perf_counter() - start
                self.save_checkpoint()
        if bar is not None:
            bar.close()
        self.result.seconds = time.perf_counter() - start
        self.model.eval()
        return self.result

    def write_outputs(self) -> None:
        """The final model (loadable with ``ProcessRewardModel.load(out_dir)``) and ``metrics.json``."""
        if self.out_dir is None:
            return
        if is_fsdp(self.accelerator):  # every process sends its shards; rank 0 gets a whole copy
            whole = gather_model(self.accelerator, self.wrapped, self.model)
            if whole is not None:
                self.result.model = whole
        if not self.is_main:
            return
        self.result.model.save(self.out_dir)
        r = self.result
        (self.out_dir / "metrics.json").write_text(
            json.dumps(
                {
                    "config": self.config.to_dict(),
                    "final": r.final,
                    "evals": r.evals,
                    "history": r.history,
                    "train_seconds": round(r.seconds, 1),
                    "setup_seconds": round(self.setup_seconds, 1),
                    "train_tokens": r.tokens,
                    "tokens_per_second": round(r.tokens / r.seconds, 1) if r.seconds else None,
                    "world_size": self.accelerator.num_processes,
                    "engine": self.accelerator.distributed_type.value,
                },
                indent=1,
            )
            + "\n"
        )


def build_data(config: TrainConfig) -> tuple[list[PRMSample], list[PRMSample]]:
    """The synthetic train and validation sets a config names (disjoint problems)."""
    from .synthetic import SEED_PROBLEMS, generate

    options = dict(error_rate=config.error_rate, correction_rate=config.correction_rate, max_ops=config.max_ops,
                   direct_rate=config.direct_rate, error_weights=config.error_weights,
                   held_out=SEED_PROBLEMS if config.hold_out_seed_problems else ())
    train = generate(config.n_train, seed=config.data_seed, split="train", **options)
    val = generate(config.n_val, seed=config.data_seed + 1, split="validation", **options)
    return train, val


# The held-out sets every chapter and benchmark evaluates on, one seed per split (build_data's training and
# validation sets use data_seed and data_seed + 1, so these never coincide with them).
HELD_OUT_SEEDS = {"validation": 321, "test": 123}


def test_set(config: TrainConfig, n: int = 400, split: str = "test") -> list[PRMSample]:
    """The course's held-out evaluation set for a config: ``n`` solutions of problems shaped like its training
    problems (``max_ops``, ``direct_rate``), half of them wrong, with every error kind equally likely.

    Half wrong and uniform kinds, whatever the training mix, so that models trained on different mixes are
    measured on the same solutions and every kind of error counts alike. ``split="validation"`` gives the
    set to fit thresholds on (disjoint problems from the test split)."""
    from .synthetic import generate

    if split not in HELD_OUT_SEEDS:
        raise ValueError(f"test_set split must be one of {', '.join(HELD_OUT_SEEDS)}, got {split!r}")
    return generate(n, seed=HELD_OUT_SEEDS[split], split=split, error_rate=0.5, max_ops=config.max_ops,
                    direct_rate=config.direct_rate)


test_set.__test__ = False  # a data function: pytest must not collect it where a test module imports it


def train(config: TrainConfig, out_dir: str | Path | None = None, progress: bool = True,
          device: str | torch.device | None = None) -> TrainResult:
    """Build the data and model a config names, train, and (with ``out_dir``) write model and metrics.

    Under ``accelerate launch`` or ``torchrun`` this runs data parallel or FSDP, as the launch
    was configured (``prm_lib.distributed``); only rank 0 writes files.
    """
    accelerator = make_accelerator(device)
    torch.manual_seed(config.seed)
    if is_fsdp(accelerator):  # fp32 weights in CPU memory; FSDP moves each process's shard to its device
        device, dtype = "cpu", torch.float32
    else:
        device, dtype = device if device is not None else (accelerator.device if accelerator.num_processes > 1 else None), None
    model = ProcessRewardModel.from_backbone(config.backbone, device=device, dtype=dtype, n_layers=config.n_layers,
                                             surprise_from=config.backbone if config.surprise else None,
                                             objective=config.objective)
    train_set, val_set = build_data(config)
    trainer = Trainer(model, train_set, val_set, config, out_dir=out_dir, progress=progress, accelerator=accelerator)
    result = trainer.fit()
    trainer.write_outputs()
    shutdown(accelerator)
    return result
