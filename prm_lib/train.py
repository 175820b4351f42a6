"""Training a PRM (or the ORM baseline) on step-labelled solutions.

Chapter 5 of the course. What differs from the naive tutorial's loop, and why:

* batches of many solutions, grouped by length so that padding wastes little
  (the naive tutorial took one solution and one optimizer step per sample);
* AdamW with linear warmup and cosine decay, gradient clipping, a higher
  learning rate for the freshly initialised value head than for the backbone;
* held-out evaluation every ``eval_every`` steps: step AUROC on problems the
  model never trained on (the naive tutorial only ever looked at its 4 training samples,
  where a loss of 0.0000 says nothing);
* checkpoints with optimizer, scheduler, progress and random states, each written
  under a temporary name and renamed when whole, so a run resumes from the newest
  complete one and ends where an uninterrupted run would have;
* gradient accumulation, and a loss averaged over the labelled steps of the whole
  optimizer step (every micro-batch, every process), whichever loss options are on;
* deterministic from a seed on CPU; on CUDA, mixed precision by default: fp32
  weights and AdamW state, bf16 autocast for the forward pass (``precision``);
* the model and optimizer go through ``accelerate``, so the same loop runs on one
  device or, under ``accelerate launch`` / ``torchrun``, data parallel or sharded
  (``prm_lib.distributed``, appendix B).

The ORM baseline (``objective="orm"``) is the same network trained on the same
problems with one label per solution (is its final answer right?), read at the
solution's last token.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import random
import shutil
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from accelerate import Accelerator

from .batching import Batch, length_bucketed_batches, token_budget_batches
from .distributed import gather_model, is_fsdp, make_accelerator, reduce_sum, reduce_sum_tensor, shutdown
from .data import PRMSample
from .loss import LossTerm, combine, prm_loss_terms
from .modules import CallableModule
from .model import ProcessRewardModel
from .objectives import Objective, objective
from .steps import DEFAULT_SEPARATOR, EncodedSolution, encode_solutions
from .training_data import DataReport, FileData, ShippedData, SyntheticData, data_from_dict


COMPILE_OPTIONS: dict[str, Any] = {"dynamic": True}  # torch.compile's arguments when config.compile is set


def compile_blocks(model: ProcessRewardModel) -> ProcessRewardModel:
    """``torch.compile`` the backbone's transformer blocks in place (regional compilation), else the whole model.

    The blocks are one class with the same code, so the first one's compilation serves every block
    (PyTorch's regional compilation recipe); compiling the whole model with dynamic shapes costs far
    more (benchmarks/RESULTS.md). The few operations between blocks (embedding, rotary tables, final
    norm, value head) stay eager.
    Returns what to call for a forward pass.
    """
    layers = getattr(model.backbone, "layers", None)
    if isinstance(layers, torch.nn.ModuleList) and len(layers) > 0:
        for layer in layers:
            layer.compile(**COMPILE_OPTIONS)
        return model
    return torch.compile(model, **COMPILE_OPTIONS)


# "bf16": fp32 weights and AdamW state, the forward pass under bf16 autocast (mixed precision);
# "bf16-pure": the backbone's weights themselves in bf16 (half the memory, but an update smaller than about
# 1/256 of a weight rounds away: at lr 2e-5 most of the backbone stops learning; kept to measure that);
# "fp32": no autocast. None: bf16 on CUDA, fp32 elsewhere.
PRECISIONS = ("fp32", "bf16", "bf16-pure")


def resolve_precision(precision: str | None, device: torch.device) -> str:
    """The precision a run uses on ``device`` (``None``: bf16 on CUDA, fp32 elsewhere)."""
    if precision is None:
        return "bf16" if device.type == "cuda" else "fp32"
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; known: {', '.join(PRECISIONS)}")
    return precision


# The fields of SyntheticData that TrainConfig.replace (and the CLI) take by name; its seed is "data_seed".
SYNTHETIC_FIELDS = {("data_seed" if f.name == "seed" else f.name): f.name
                    for f in dataclasses.fields(SyntheticData) if f.name != "kind"}


# Settings added after the zoo's cache key was fixed. ``key()`` leaves each out while it is at its default,
# so every model cached before them keeps its hash (retraining the course's models costs minutes); a
# non-default value enters the key and names a different model. Add every new setting here.
LATER_SETTINGS = ("epochs", "log_every", "report_to", "keep_best", "early_stopping_patience", "train_backbone",
                  "init_from", "gradient_checkpointing", "dropout", "lora_rank", "lora_alpha", "lora_targets")


@dataclass
class TrainConfig:
    """Everything that determines a training run (its hash names the zoo's cache entry): what it learns from
    (``data``), the model, and how it is optimised.

    The defaults are made for a user's own backbone and data: the whole backbone (``n_layers`` cuts it only
    when asked), embeddings trained, a learning rate for full fine-tuning, solutions bounded at 2,048 tokens.
    The course's presets (``prm_lib.zoo``) spell out every setting they change from these."""

    backbone: str = "smollm2-135m"
    n_layers: int | None = None  # keep the backbone's first n transformer layers (None: all of them)
    objective: str = "prm"  # "prm": a label per step; "orm": one outcome label per solution
    data: SyntheticData | FileData | ShippedData = field(default_factory=SyntheticData)
    # how a solution becomes tokens (saved with the model)
    separator: str = DEFAULT_SEPARATOR
    # tokens; a longer solution is cut by whole steps, counted in the run's data report (None: the backbone's limit)
    max_length: int | None = 2048
    # optimisation
    batch_size: int = 16  # solutions per micro-batch, global (under a launcher each process takes 1/n of it)
    grad_accum: int = 1  # micro-batches per optimizer step
    max_steps: int = 300  # optimizer steps
    lr: float = 2e-5  # the backbone's: a full fine-tune of a pretrained model
    head_lr: float = 1e-3  # the value head's (and the surprise reader's), trained from scratch
    weight_decay: float = 0.01
    warmup_steps: int = 20
    grad_clip: float = 1.0
    freeze_embeddings: bool = False
    precision: str | None = None  # PRECISIONS; None: bf16 mixed precision on CUDA, fp32 elsewhere
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
    keep_checkpoints: int = 2  # the newest this many checkpoints stay on disk
    seed: int = 0
    # -- added after the zoo's cache key was fixed: see LATER_SETTINGS --
    epochs: float | None = None  # passes over the training set; when set, it decides the steps, not max_steps
    log_every: int = 10  # optimizer steps between lines of out_dir/metrics.jsonl (and the tracker's)
    report_to: str = "none"  # prm_lib.run_log.REPORT_TO: "none", "tensorboard" (out_dir/runs/) or "wandb"
    keep_best: str | None = None  # a validation metric (step_auroc, ...): its best checkpoint is the final model
    early_stopping_patience: int | None = None  # stop after this many evaluations without keep_best improving
    train_backbone: bool = True  # False: only the value head (and surprise reader) train, the backbone stays
    init_from: str | None = None  # a saved prm_lib model folder whose backbone and head weights start the run
    gradient_checkpointing: bool = False  # recompute the backbone's activations in backward: less memory
    dropout: float | None = None  # attention and hidden dropout of the backbone (None: its config's as loaded)
    lora_rank: int | None = None  # LoRA adapters of this rank instead of the whole backbone (prm_lib[peft])
    lora_alpha: float | None = None  # LoRA's scale numerator (None: 2 * lora_rank)
    lora_targets: str | None = None  # comma-separated module names (None: prm_lib.lora.DEFAULT_TARGETS)


    def __post_init__(self) -> None:
        objective(self.objective)  # an unknown name is an error that lists the known ones
        if not isinstance(self.data, (SyntheticData, FileData, ShippedData)):
            raise TypeError(f"data must be a SyntheticData, FileData or ShippedData, got {type(self.data).__name__}")
        for name in ("batch_size", "grad_accum", "max_steps", "eval_every", "keep_checkpoints", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.precision is not None and self.precision not in PRECISIONS:
            raise ValueError(f"unknown precision {self.precision!r}; known: {', '.join(PRECISIONS)} (or None: "
                             "bf16 on CUDA, fp32 elsewhere)")
        if self.max_length is not None and self.max_length < 2:
            raise ValueError(f"max_length must be at least 2 tokens, got {self.max_length}")
        if not self.separator:
            raise ValueError("the step separator is empty")
        if self.epochs is not None and self.epochs <= 0:
            raise ValueError(f"epochs must be positive, got {self.epochs}")
        if self.dropout is not None and not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        from .run_log import REPORT_TO

        if self.report_to not in REPORT_TO:
            raise ValueError(f"unknown report_to {self.report_to!r}; known: {', '.join(REPORT_TO)}")
        if self.early_stopping_patience is not None:
            if self.keep_best is None:
                raise ValueError("early_stopping_patience needs keep_best: the metric whose improvement it waits for")
            if self.early_stopping_patience < 1:
                raise ValueError(f"early_stopping_patience must be at least 1, got {self.early_stopping_patience}")
        if self.lora_rank is None and (self.lora_alpha is not None or self.lora_targets is not None):
            raise ValueError("lora_alpha and lora_targets go with lora_rank")
        if self.lora_rank is not None and not self.train_backbone:
            raise ValueError("lora_rank trains adapters in the backbone, train_backbone=False trains none of it")

    def replace(self, **changes: Any) -> "TrainConfig":
        """A copy with ``changes``; the synthetic generator's settings (``n_train``, ``max_ops``, ``data_seed``,
        ...) go to ``data``, which must then be synthetic."""
        data_changes = {SYNTHETIC_FIELDS[k]: changes.pop(k) for k in list(changes) if k in SYNTHETIC_FIELDS}
        if data_changes:
            data = changes.get("data", self.data)
            if not isinstance(data, SyntheticData):
                raise ValueError(f"{', '.join(sorted(data_changes))} set the synthetic generator, but this config "
                                 f"trains on {data.kind} data")
            changes["data"] = dataclasses.replace(data, **data_changes)
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Every setting (``data`` as a dict with its ``kind``): what checkpoints and metrics.json record."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "TrainConfig":
        """Inverse of ``to_dict``."""
        values = dict(values)
        values["data"] = data_from_dict(values.get("data", {}))
        return cls(**values)

    def key(self) -> dict[str, Any]:
        """What names the trained model in a cache: every setting, and a data file's contents; a setting of
        ``LATER_SETTINGS`` only when it is not at its default (so older cache entries keep their names)."""
        defaults = {f.name: f.default for f in dataclasses.fields(self) if f.name in LATER_SETTINGS}
        values = {k: v for k, v in self.to_dict().items() if k not in defaults or v != defaults[k]}
        return {**values, "data": self.data.key()}


def _take_accumulation(accelerator: Accelerator, grad_accum: int) -> None:
    """Refuse an accelerate gradient-accumulation setting that differs from ``grad_accum``, and keep accelerate
    from dividing the loss by it: the trainer accumulates itself (``Trainer.backward`` divides each term by its
    weight over the whole step), so accelerate's own division would shrink every gradient that many times.

    ``accelerate launch --gradient_accumulation_steps N`` sets it (``ACCELERATE_GRADIENT_ACCUMULATION_STEPS``)."""
    steps = int(accelerator.gradient_accumulation_steps)
    if steps != 1 and steps != grad_accum:
        raise ValueError(f"accelerate was asked for gradient_accumulation_steps={steps} (accelerate launch "
                         f"--gradient_accumulation_steps, or ACCELERATE_GRADIENT_ACCUMULATION_STEPS), but this run's "
                         f"grad_accum is {grad_accum}: prm_lib accumulates itself, so give --grad-accum {steps} "
                         "and leave accelerate's setting at 1")
    if steps != 1:  # the same number: taken as prm_lib's grad_accum, and accelerate divides nothing
        accelerator.gradient_accumulation_steps = 1


CHECKPOINTS = "checkpoints"  # out_dir/checkpoints/step-0000050/: one complete checkpoint per saved step
SHARDED_STATE = "sharded"  # <checkpoint>/sharded/: accelerate's per-process model and optimizer shards (FSDP)
TRAINER_STATE = "trainer_state.pt"


def checkpoint_name(step: int) -> str:
    return f"step-{step:07d}"


def complete_checkpoints(out_dir: str | Path) -> list[Path]:
    """The complete checkpoints under ``out_dir``, oldest first. One being written lives under a temporary
    name (``.step-N.tmp``) until it is whole, so a crash mid-write never leaves a half checkpoint here."""
    root = Path(out_dir) / CHECKPOINTS
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and p.name.startswith("step-") and (p / TRAINER_STATE).exists()]
    return sorted(found, key=lambda p: int(p.name.split("-")[1]))


def sync_tree(folder: Path) -> None:
    """fsync every file under ``folder``, then the folders themselves: what a rename then publishes is on disk."""
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            with open(path, "rb") as f:
                os.fsync(f.fileno())
    for path in sorted([p for p in folder.rglob("*") if p.is_dir()] + [folder], key=lambda p: -len(p.parts)):
        _fsync_dir(path)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # a platform where a folder cannot be opened (Windows): nothing to sync
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _rng_states() -> dict[str, Any]:
    return {"torch": torch.get_rng_state(), "python": random.getstate(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}


def _set_rng_states(states: dict[str, Any]) -> None:
    torch.set_rng_state(states["torch"])
    random.setstate(states["python"])
    if states.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


@dataclass
class TrainResult:
    model: ProcessRewardModel
    history: list[dict[str, float]] = field(default_factory=list)
    evals: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    tokens: int = 0
    best_step: int | None = None  # with keep_best: the evaluation whose weights the model holds

    @property
    def final(self) -> dict[str, Any]:
        """The returned model's evaluation: the last one, or with keep_best the best one."""
        if self.best_step is not None:
            return next(e for e in self.evals if e["step"] == self.best_step)
        return self.evals[-1] if self.evals else {}


def lower_is_better(metric: str) -> bool:
    """A validation metric that is better when smaller (losses, calibration errors); AUROC and the like are not."""
    return any(word in metric for word in ("loss", "ece", "brier", "error"))


class Trainer:
    """Trains ``model`` on ``train`` samples and evaluates on ``val`` samples, as ``config`` says.

    ``report`` (from ``TrainConfig.data.build()``) is completed with what encoding did (solutions cut to
    ``max_length`` or left out) and written to metrics.json."""

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
        report: DataReport | None = None,
        outcome: Callable[[PRMSample], float] | None = None,
    ) -> None:
        if not train:
            raise ValueError("no training samples")
        self.model, self.config = model, config
        # what the targets, loss mask and evaluation are (prm_lib.objectives); the model keeps the name, so
        # a saved ORM loads as one. An ORM's ``outcome`` says which solutions are right (default: the
        # synthetic solutions' record of it, prm_lib.objectives.synthetic_outcome).
        self.objective: Objective = objective(config.objective, outcome)
        self.model.objective = config.objective
        # how solutions become tokens: the config's, saved with the model
        self.model.separator = config.separator
        if config.max_length is not None:
            self.model.max_length = config.max_length
        self.accelerator = accelerator or make_accelerator(model.device)
        _take_accumulation(self.accelerator, config.grad_accum)
        if is_fsdp(self.accelerator):  # fp32 shards; the launch's mixed-precision policy casts for compute
            self.precision, self.mixed = f"fsdp, mixed_precision={self.accelerator.mixed_precision}", False
        else:
            self.precision = resolve_precision(config.precision, model.device)
            # master weights: fp32 unless the run is pure bf16 (the value head and the reader are fp32 either way)
            backbone_dtype = torch.bfloat16 if self.precision == "bf16-pure" else torch.float32
            if any(p.dtype != backbone_dtype for p in self.model.backbone.parameters()):
                self.model.backbone.to(backbone_dtype)
            self.mixed = self.precision in ("bf16", "bf16-pure")  # the forward pass under bf16 autocast
        # the backbone as this run trains it: start weights, dropout, checkpointing, LoRA (recorded in metrics.json)
        self.backbone_setup = self._prepare_backbone()
        self.is_main = self.accelerator.is_main_process
        self.out_dir = Path(out_dir) if out_dir else None
        self.progress, self.on_eval = progress and self.is_main, on_eval
        self.report = report or DataReport("in memory", len(train), len(val), "given")
        setup_start = time.perf_counter()
        self.train_enc, _ = self._encode(train, "training")
        self.val_enc, self.val_samples = self._encode(val, "validation") if val else ([], [])
        if not self.train_enc:
            raise ValueError("no training sample fits max_length: every one was left out (see the warning)")
        self.lengths = [len(e) for e in self.train_enc]
        # optimizer steps: max_steps, or those that make ``epochs`` passes over the training solutions
        self.max_steps = config.max_steps if config.epochs is None else max(
            1, math.ceil(config.epochs * len(self.train_enc) / (config.batch_size * config.grad_accum)))
        if config.epochs is not None and self.is_main:  # said even without a progress bar
            print(f"prm_lib.train: {config.epochs:g} epochs of {len(self.train_enc)} solutions at "
                  f"{config.batch_size * config.grad_accum} per step: {self.max_steps} steps", file=sys.stderr, flush=True)
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
        # the backbone will change: saving must write its weights (LoRA's change is its adapters, saved apart)
        if body and config.lr > 0 and self.model.lora is None:
            self.model.mark_backbone_changed()
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
        # instead of all being padded to one width, which would spend compute on padding.
        self.forward = self.wrapped
        if config.compile and compile_blocks(self.model) is not self.model:  # no blocks found: compile it whole
            self.forward = torch.compile(self.wrapped, **COMPILE_OPTIONS)
        self.pad_to_multiple_of = 8 if config.compile else 1
        self.step = 0
        self.result = TrainResult(model)
        # keep_best and early stopping: the best evaluation so far and how many since have not beaten it
        self.best: dict[str, Any] | None = None
        self.bad_evals, self.stopped = 0, False
        self._best_weights: dict[str, torch.Tensor] | None = None  # without out_dir: the best weights in memory

    def _prepare_backbone(self) -> dict[str, Any]:
        """Apply the config's backbone settings before the optimizer sees the parameters."""
        c, setup = self.config, {}
        if c.init_from is not None:
            start = ProcessRewardModel.load(c.init_from, device=self.model.device,
                                            dtype=next(self.model.backbone.parameters()).dtype)
            if start.lora is not None:
                raise ValueError(f"init_from {c.init_from} holds LoRA adapters: merge it first (prm_lib merge)")
            self.model.backbone.load_state_dict(start.backbone.state_dict())
            self.model.load_head_state_dict(start.head_state_dict())
            if not start.backbone_is_pretrained():
                self.model.mark_backbone_changed()
            setup["init_from"] = str(c.init_from)
        if c.dropout is not None:
            from .backbone_options import set_dropout

            setup["dropout"] = set_dropout(self.model.backbone, c.dropout)
        if c.gradient_checkpointing:
            from .backbone_options import enable_gradient_checkpointing

            enable_gradient_checkpointing(self.model.backbone)
            setup["gradient_checkpointing"] = True
        if not c.train_backbone:
            for p in self.model.backbone.parameters():
                p.requires_grad_(False)
            setup["train_backbone"] = False
        if c.lora_rank is not None:
            from .lora import LoraSettings, add_lora, trainable_share

            settings = LoraSettings.of(c.lora_rank, c.lora_alpha, c.lora_targets)
            n = add_lora(self.model, settings)
            setup["lora"] = {**settings.to_dict(), "adapter_parameters": n,
                             "trainable_share": trainable_share(self.model)}
        return setup

    # -- data --------------------------------------------------------------------
    def _encode(self, samples: Sequence[PRMSample], split: str) -> tuple[list[EncodedSolution], list[PRMSample]]:
        """The encoded solutions and the samples they come from: a solution that does not fit max_length at all
        is left out and counted in the report; one summary warning instead of one per solution cut."""
        labels = self.objective.targets(samples)
        skipped: list[int] = []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # per-solution truncation warnings: counted and summarised below
            encoded = encode_solutions(self.model.tokenizer, [s.as_item() for s in samples], self.model.max_length,
                                       separator=self.model.separator, labels=labels, skipped=skipped,
                                       names=[str(s.meta.get("source", f"{split} solution {i}"))
                                              for i, s in enumerate(samples)])
        truncated = sum(e.truncated for e in encoded)
        for i in skipped:
            where = samples[i].meta.get("source", f"{split} solution {i}")
            self.report.skipped.append({"where": str(where), "split": split,
                                        "reason": f"its problem and first step exceed max_length={self.model.max_length}"})
        gone = set(skipped)
        kept = [s for i, s in enumerate(samples) if i not in gone]
        self.report.n_truncated += truncated
        self.report.n_skipped += len(skipped)
        if split == "training":
            self.report.n_train = len(encoded)
        else:
            self.report.n_val = len(encoded)
        if (truncated or skipped) and self.is_main:
            warnings.warn(f"{split}: {truncated} of {len(samples) + len(skipped)} solutions cut by whole steps to "
                          f"max_length={self.model.max_length} (their later steps are not trained on), "
                          f"{len(skipped)} left out (not even the first step fits)", stacklevel=3)
        return encoded, kept

    def _lr_factor(self, step: int) -> float:
        c = self.config
        if step < c.warmup_steps:
            return (step + 1) / c.warmup_steps
        progress = (step - c.warmup_steps) / max(1, self.max_steps - c.warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    def batch_at(self, step: int) -> list[int]:
        """The batch for a global micro-batch index (``optimizer step * grad_accum + j``): a pure function of
        (seed, index), so a resumed run sees the same data.

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
    def autocast(self) -> contextlib.AbstractContextManager:
        """bf16 autocast for the forward pass under mixed precision; nothing otherwise."""
        if not self.mixed:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.model.device.type, dtype=torch.bfloat16)

    def loss_terms(self, batch: Batch, logits: torch.Tensor | None = None) -> list[LossTerm]:
        """Each averaged term of the loss on ``batch``, as a summed total and its weight (``prm_lib.loss``).

        With ``logits`` given (zeros, say) nothing runs forward: the weights depend on the labels alone."""
        c = self.config
        if logits is None:
            with self.autocast():
                logits = self.forward(batch)
        return prm_loss_terms(
            logits, batch.labels, self.objective.loss_mask(batch.step_mask),
            pos_weight=c.pos_weight,
            mask_after_first_error=c.mask_after_first_error,
            later_step_weight=c.later_step_weight,
            ranking_weight=c.ranking_weight,
        )

    def loss_on(self, batch: Batch) -> torch.Tensor:
        """The loss of ``batch`` alone: each term averaged over the batch's own weight."""
        return combine(self.loss_terms(batch))

    def term_weights(self, batch: Batch) -> torch.Tensor:
        """What each loss term of ``batch`` averages over (labelled steps, summed step weights, pairs)."""
        with torch.no_grad():
            zeros = torch.zeros(batch.labels.shape, device=batch.labels.device)
            return torch.stack([t.weight.float() for t in self.loss_terms(batch, logits=zeros)])

    def train_step(self, batches: Batch | Sequence[Batch], real: Sequence[bool] | None = None) -> torch.Tensor:
        """One optimizer step on this process's micro-batches: forward and backward on each, then clip, step
        the optimizer and the scheduler; returns the (detached) loss of the whole step.

        Each loss term is divided by its weight summed over every micro-batch of every process, not by each
        micro-batch's own: the update is then that of the whole global batch in one piece, for every loss
        option, however it was split (``grad_accum`` micro-batches, ``n`` processes). A stand-in batch
        (``real`` False: the global batch had no sample left for this process) joins the step and adds nothing.
        """
        self.model.train()
        self.backward(batches, real)
        params = [p for g in self.optimizer.param_groups for p in g["params"]]
        if self.config.grad_clip:
            # under FSDP accelerate clips sharded gradients when given all of the model's parameters
            clip = list(self.wrapped.parameters()) if is_fsdp(self.accelerator) else params
            self._grad_norm = float(self.accelerator.clip_grad_norm_(clip, self.config.grad_clip))
        else:  # measured only (nothing is clipped at an infinite bound)
            self._grad_norm = float(torch.nn.utils.clip_grad_norm_([p for p in params if p.grad is not None],
                                                                   float("inf")))
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return self._last_loss

    def backward(self, batches: Batch | Sequence[Batch], real: Sequence[bool] | None = None) -> torch.Tensor:
        """Forward and backward on every micro-batch of one optimizer step, gradients added up in ``.grad``
        (``train_step`` without the update; tests compare these gradients). Returns the step's loss."""
        micro = [batches] if isinstance(batches, Batch) else list(batches)
        real = [True] * len(micro) if real is None else list(real)
        n = self.accelerator.num_processes
        local = [self.term_weights(b) * (1.0 if r else 0.0) for b, r in zip(micro, real)]
        total = local[0] if len(local) == 1 else torch.stack(local).sum(0)
        if n > 1:
            total = reduce_sum_tensor(total, self.accelerator)
        # DDP and FSDP average gradients over processes: dividing by total / n makes that average the sum
        divide = [w for w in total] if n == 1 else [w / n for w in total]
        loss_value = 0.0
        for i, (batch, is_real) in enumerate(zip(micro, real)):
            last = i == len(micro) - 1
            sync = contextlib.nullcontext() if last or n == 1 or is_fsdp(self.accelerator) \
                else self.accelerator.no_sync(self.wrapped)  # DDP: all-reduce once, after the last micro-batch
            with sync:
                terms = self.loss_terms(batch)
                if not is_real:
                    terms = [t._replace(total=t.total * 0.0) for t in terms]
                self.accelerator.backward(combine(terms, divide))
            loss_value += float(combine([t._replace(total=t.total.detach()) for t in terms], list(total)))
        if n > 1:
            loss_value = reduce_sum(loss_value, self.accelerator)
        self._last_loss = torch.tensor(loss_value)
        return self._last_loss

    # -- evaluation -------------------------------------------------------------------
    def evaluate(self) -> dict[str, Any]:
        with self.autocast():
            scores = self.model.score_encoded(self.val_enc)
        return self.objective.evaluate(scores, self.val_enc, self.val_samples)

    # -- checkpoints --------------------------------------------------------------------
    def save_checkpoint(self) -> Path | None:
        """Model, optimizer, scheduler, progress and random states, as ``checkpoints/step-N``.

        Written under a temporary name and renamed when whole; then all but the newest ``keep_checkpoints``
        are removed. Under FSDP each process writes its own shards."""
        if self.out_dir is None:
            return None
        root = self.out_dir / CHECKPOINTS
        final = root / checkpoint_name(self.step)
        tmp = root / f".{checkpoint_name(self.step)}.tmp"
        sharded = is_fsdp(self.accelerator)
        if self.is_main:
            shutil.rmtree(tmp, ignore_errors=True)  # left by a run that died while writing it
            tmp.mkdir(parents=True)
        self.accelerator.wait_for_everyone()
        if sharded:  # every process: accelerate writes model and optimizer shards
            self.accelerator.save_state(str(tmp / SHARDED_STATE))
        if self.is_main:
            if not sharded:
                self.model.save(tmp)
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
                    "rng": _rng_states(),
                    "best": self.best,
                    "bad_evals": self.bad_evals,
                    "stopped": self.stopped,
                },
                tmp / TRAINER_STATE,
            )
        self.accelerator.wait_for_everyone()
        if self.is_main:
            sync_tree(tmp)  # on disk before the rename makes it count as complete: a crash then leaves it whole
            if final.exists():
                shutil.rmtree(final)
            tmp.rename(final)
            _fsync_dir(root)
            best = root / checkpoint_name(self.best["step"]) if self.best is not None else None
            for old in complete_checkpoints(self.out_dir)[: -self.config.keep_checkpoints]:
                if old != best:  # keep_best's checkpoint stays, whatever its age
                    shutil.rmtree(old, ignore_errors=True)
        self.accelerator.wait_for_everyone()
        return final

    def resume(self) -> bool:
        """Continue from the newest complete checkpoint under ``out_dir`` that loads (it must have been written
        by this config); True if resumed. One that does not load (a file corrupted on disk) is passed over with
        a warning naming it and why, for the one before it."""
        found = complete_checkpoints(self.out_dir) if self.out_dir is not None else []
        for ckpt in reversed(found):
            try:
                state = torch.load(ckpt / TRAINER_STATE, weights_only=False)
                if not isinstance(state, dict) or "config" not in state:
                    raise ValueError(f"{TRAINER_STATE} holds no trainer state")
            except Exception as err:  # torch.load raises many kinds on a damaged file
                warnings.warn(f"checkpoint {ckpt} does not load ({type(err).__name__}: {str(err)[:200]}); "
                              "resuming from the one before it", stacklevel=2)
                continue
            # a checkpoint written before a setting existed has it at its default
            if TrainConfig.from_dict(state["config"]).to_dict() != self.config.to_dict():
                raise ValueError(f"{ckpt} was written by a different training config; use another --out or delete it")
            sharded = state["optimizer"] is None  # written under FSDP: the shards hold model and optimizer
            if sharded != is_fsdp(self.accelerator):  # a launch that does not match, not a damaged file
                raise ValueError(f"{ckpt} holds FSDP shards: resume it under the same FSDP launch" if sharded else
                                 f"{ckpt} was written without FSDP: resume it without FSDP (or use another --out)")
            try:
                self._restore(ckpt, state)
            except Exception as err:  # a damaged weight or optimizer file
                warnings.warn(f"checkpoint {ckpt} does not load ({type(err).__name__}: {str(err)[:200]}); "
                              "resuming from the one before it", stacklevel=2)
                continue
            return True
        if found:  # never train on weights that a failed load may have half replaced
            raise ValueError(f"no checkpoint under {self.out_dir / CHECKPOINTS} loads (see the warnings); delete "
                             "them to train from the start, or use another --out")
        return False

    def _restore(self, ckpt: Path, state: dict[str, Any]) -> None:
        """Model, optimizer, scheduler, progress and random states from one checkpoint."""
        self._load_weights(ckpt, sharded=state["optimizer"] is None)
        if state["optimizer"] is not None:
            self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.step = state["step"]
        self.result.history, self.result.evals = state["history"], state["evals"]
        self.result.seconds, self.result.tokens = state["seconds"], state["tokens"]
        _set_rng_states(state["rng"])
        self.best, self.bad_evals, self.stopped = state.get("best"), state.get("bad_evals", 0), state.get("stopped", False)
        self.result.best_step = self.best["step"] if self.best else None

    def _load_weights(self, ckpt: Path, sharded: bool) -> None:
        """The model's weights from one checkpoint (under FSDP with the optimizer's shards)."""
        if sharded:
            self.accelerator.load_state(str(ckpt / SHARDED_STATE))
            return
        saved = ProcessRewardModel.load(ckpt, device=self.model.device,
                                        dtype=next(self.model.backbone.parameters()).dtype)
        self.model.backbone.load_state_dict(saved.backbone.state_dict())
        self.model.load_head_state_dict(saved.head_state_dict())

    # -- the loop ------------------------------------------------------------------------
    def fit(self) -> TrainResult:
        c = self.config
        torch.manual_seed(c.seed)
        self.resume()
        from .run_log import RunLog, peak_memory_gib

        log = RunLog(self.out_dir, c.report_to, {**c.to_dict(), "max_steps": self.max_steps}, self.accelerator,
                     resumed_at=self.step)
        logged_tokens, logged_at = self.result.tokens, time.perf_counter()
        bar = None
        if self.progress:
            from .progress import progress

            bar = progress(total=self.max_steps, initial=self.step, desc=f"training {c.objective.upper()}", unit="step")
        start = time.perf_counter() - self.result.seconds
        save_every = c.save_every or c.eval_every
        rank, world = self.accelerator.process_index, self.accelerator.num_processes
        while self.step < self.max_steps and not self.stopped:
            micro, real, n_tokens = [], [], 0
            for j in range(c.grad_accum):
                whole = self.batch_at(self.step * c.grad_accum + j)
                idx = whole[rank::world]  # this process's share; if none is left, a stand-in that counts 0
                batch = self.model.collate([self.train_enc[i] for i in idx or whole[:1]],
                                           pad_to_multiple_of=self.pad_to_multiple_of)
                micro.append(batch)
                real.append(bool(idx))
                n_tokens += batch.n_tokens if idx else 0
            loss = self.train_step(micro, real)
            self.step += 1
            self.result.tokens += int(reduce_sum(n_tokens, self.accelerator))
            entry = {"step": self.step, "loss": float(loss), "lr": self.scheduler.get_last_lr()[0]}
            self.result.history.append(entry)
            if self.step % c.log_every == 0 or self.step == self.max_steps:
                now = time.perf_counter()
                log.log({**entry, "grad_norm": self._grad_norm,
                         "tokens_per_second": round((self.result.tokens - logged_tokens) / max(now - logged_at, 1e-9), 1),
                         "peak_memory_gib": round(peak_memory_gib(self.model.device), 4)})
                logged_tokens, logged_at = self.result.tokens, now
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{entry['loss']:.3f}")
            # rank 0 evaluates; under FSDP every process runs the forward passes (each holds a shard)
            evaluates = self.is_main or is_fsdp(self.accelerator)
            improved = False
            eval_step = bool(self.val_enc) and (self.step % c.eval_every == 0 or self.step == self.max_steps)
            if eval_step and evaluates:
                self.result.seconds = time.perf_counter() - start
                metrics = {"step": self.step, "seconds": round(self.result.seconds, 1), **self.evaluate()}
                self.result.evals.append(metrics)
                log.log_eval(metrics)
                improved = self._track_best(metrics)
                if self.on_eval and self.is_main:
                    self.on_eval(self.step, metrics)
                if bar is not None:
                    key = self.objective.metric
                    shown = "n/a" if metrics.get(key) is None else f"{metrics[key]:.3f}"  # one class: not measured
                    bar.set_postfix(loss=f"{entry['loss']:.3f}", **{key: shown})
            if c.keep_best is not None and eval_step:  # every process learns rank 0's verdict (it alone evaluates)
                improved, self.stopped = self._agree(improved, self.stopped)
            if self.step % save_every == 0 or self.step == self.max_steps or improved or self.stopped:
                self.result.seconds = time.perf_counter() - start
                self.save_checkpoint()
        if bar is not None:
            bar.close()
        log.close()
        self.result.seconds = time.perf_counter() - start
        if self.best is not None:
            self._take_best()
        self.model.eval()
        return self.result

    def _track_best(self, metrics: dict[str, Any]) -> bool:
        """With keep_best: whether this evaluation beats the best so far (and early stopping's count)."""
        name = self.config.keep_best
        if name is None:
            return False
        if name not in metrics:
            raise ValueError(f"keep_best={name!r} is not a validation metric; the evaluation has: "
                             f"{', '.join(k for k, v in metrics.items() if isinstance(v, (int, float)))}")
        value = metrics[name]
        if value is None:  # not measured (one class): neither better nor worse
            return False
        lower = lower_is_better(name)
        if self.best is None or (value < self.best["value"] if lower else value > self.best["value"]):
            self.best, self.bad_evals = {"metric": name, "value": value, "step": self.step}, 0
            self.result.best_step = self.step
            if self.out_dir is None:  # no checkpoint will hold them
                self._best_weights = {k: v.detach().to("cpu", copy=True) for k, v in self.model.state_dict().items()}
            return True
        self.bad_evals += 1
        patience = self.config.early_stopping_patience
        if patience is not None and self.bad_evals >= patience:
            self.stopped = True
        return False

    def _agree(self, improved: bool, stopped: bool) -> tuple[bool, bool]:
        if self.accelerator.num_processes == 1 or is_fsdp(self.accelerator):
            return improved, stopped
        from accelerate.utils import broadcast_object_list

        flags = broadcast_object_list([improved, stopped, self.best, self.bad_evals], from_process=0)
        self.best, self.bad_evals = flags[2], flags[3]
        self.result.best_step = self.best["step"] if self.best else None
        return bool(flags[0]), bool(flags[1])

    def _take_best(self) -> None:
        """Put the best evaluation's weights into the model (its checkpoint, or the copy kept in memory)."""
        step = self.best["step"]
        if step == self.step or not (self.is_main or is_fsdp(self.accelerator)):  # rank 0's model is written
            return
        if self._best_weights is not None:
            self.model.load_state_dict(self._best_weights)
            return
        ckpt = self.out_dir / CHECKPOINTS / checkpoint_name(step) if self.out_dir is not None else None
        if ckpt is None or not ckpt.exists():
            raise RuntimeError(f"the best checkpoint (step {step}, {self.config.keep_best}) is missing")
        self._load_weights(ckpt, sharded=is_fsdp(self.accelerator))

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
                    "data": self.report.to_dict(),
                    "final": r.final,
                    "max_steps": self.max_steps,  # the steps run for (from epochs when it is set)
                    "steps_run": self.step,
                    "stopped_early": self.stopped,
                    "best": self.best,  # keep_best: the metric, its value and the step the model is from
                    "backbone_setup": self.backbone_setup,
                    "evals": r.evals,
                    "history": r.history,
                    "train_seconds": round(r.seconds, 1),
                    "setup_seconds": round(self.setup_seconds, 1),
                    "train_tokens": r.tokens,
                    "tokens_per_second": round(r.tokens / r.seconds, 1) if r.seconds else None,
                    "world_size": self.accelerator.num_processes,
                    "engine": self.accelerator.distributed_type.value,
                    "precision": self.precision,
                    # this process's peak, weights, gradients, optimizer state and activations together
                    "peak_gpu_gib": round(torch.cuda.max_memory_allocated() / 2**30, 3)
                    if self.model.device.type == "cuda" or torch.cuda.is_initialized() else None,
                },
                indent=1,
            )
            + "\n"
        )


TrainingData = Sequence[PRMSample] | Any  # in-memory samples, or a datasets.Dataset with TRL's columns


def samples_from(data: TrainingData, name: str) -> list[PRMSample]:
    """PRMSamples from a list of them, or from a ``datasets.Dataset`` (or any sequence of dicts) with TRL's
    stepwise-supervision columns ``prompt``, ``completions``, ``labels`` (true/false per step)."""
    out: list[PRMSample] = []
    for i, row in enumerate(data):
        if isinstance(row, PRMSample):
            out.append(row)
            continue
        if not isinstance(row, dict) or not {"prompt", "completions", "labels"} <= set(row):
            raise TypeError(f"{name} row {i}: expected a PRMSample or a record with TRL's columns prompt, "
                            f"completions and labels, got {type(row).__name__}"
                            f"{' with ' + ', '.join(sorted(row)) if isinstance(row, dict) else ''}")
        labels = row["labels"]
        if not all(isinstance(x, bool) for x in labels):
            raise ValueError(f"{name} row {i}: TRL labels must be true/false, got {labels!r}")
        try:
            out.append(PRMSample(row["prompt"], list(row["completions"]), [1 if x else -1 for x in labels],
                                 {"source": f"{name} row {i}"}))
        except (ValueError, TypeError) as err:
            raise type(err)(f"{name} row {i}: {err}") from None
    return out


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def train(config: TrainConfig | None = None, out_dir: str | Path | None = None, progress: bool = True,
          device: str | torch.device | None = None, *, model: ProcessRewardModel | None = None,
          train_data: TrainingData | None = None, val_data: TrainingData | None = None,
          announce: bool | None = None) -> TrainResult:
    """Build the data and model a config names, train, and (with ``out_dir``) write model and metrics.

    ``model`` trains a PRM you built (``ProcessRewardModel.from_backbone(...)``, say) instead of the one
    ``config.backbone`` names; ``train_data`` (and ``val_data``) are in-memory samples or a ``datasets.Dataset``
    with TRL's columns, instead of ``config.data``. Without ``val_data``, ``config.data.val_fraction`` (5%) of
    the problems is held out (seeded, grouped by problem). ``config`` defaults to ``TrainConfig()``, the
    settings for a user's own backbone. With ``announce`` (default: ``progress``), the run says at its start,
    on stderr, which layers of the backbone it trains and what it read and left out.

    Under ``accelerate launch`` or ``torchrun`` this runs data parallel or FSDP, as the launch
    was configured (``prm_lib.distributed``); only rank 0 writes files.
    """
    if config is None:
        config = TrainConfig()
    if model is not None and (model.backbone_name, model.n_layers) != (config.backbone, config.n_layers):
        # what is trained is the model given: the saved config records its backbone, not the config's default
        if progress:
            _say(f"prm_lib.train: training the model given ({model.backbone_name}, n_layers={model.n_layers}); "
                 f"the config's backbone={config.backbone!r}, n_layers={config.n_layers} are not used")
        config = dataclasses.replace(config, backbone=model.backbone_name or "(given model)", n_layers=model.n_layers)
    if train_data is not None:  # in memory, instead of the config's data
        from .training_data import hold_out_by_problem

        train_set = samples_from(train_data, "train_data")
        if val_data is not None:
            val_set, how = samples_from(val_data, "val_data"), "given (val_data)"
        else:
            fraction = getattr(config.data, "val_fraction", 0.05)
            train_set, val_set, how = hold_out_by_problem(train_set, fraction, config.seed, "train_data")
        report = DataReport("in memory", len(train_set), len(val_set), how, format="in memory",
                            n_solutions=len(train_set) + len(val_set))
    elif val_data is not None:
        raise ValueError("val_data goes with train_data (the config's data builds its own validation set)")
    else:
        train_set, val_set, report = config.data.build()  # a bad file fails here, before any model loads
    accelerator = make_accelerator(device)
    torch.manual_seed(config.seed)
    if model is not None:
        device = model.device
    elif is_fsdp(accelerator):  # fp32 weights in CPU memory; FSDP moves each process's shard to its device
        device = "cpu"
    else:
        device = device if device is not None else (accelerator.device if accelerator.num_processes > 1 else None)
    from .backbones import resolve_device

    precision = "fp32" if is_fsdp(accelerator) else resolve_precision(config.precision, resolve_device(device))
    if model is None:
        # the weights the optimizer updates stay fp32 unless the run is pure bf16; the frozen surprise LM is
        # only read, so it is read in bf16 wherever the run computes in bf16
        weights = torch.bfloat16 if precision == "bf16-pure" else torch.float32
        model = ProcessRewardModel.from_backbone(config.backbone, device=device, dtype=weights,
                                                 n_layers=config.n_layers, separator=config.separator,
                                                 max_length=config.max_length,
                                                 surprise_from=config.backbone if config.surprise else None,
                                                 surprise_dtype=torch.bfloat16 if precision != "fp32" else torch.float32,
                                                 objective=config.objective)
    verbose = (progress if announce is None else announce) and accelerator.is_main_process
    if verbose:
        _say(f"prm_lib.train: {layers_line(model)}")
    trainer = Trainer(model, train_set, val_set, config, out_dir=out_dir, progress=progress, accelerator=accelerator,
                      report=report)
    if verbose:
        _say(f"prm_lib.train: {trainer.report.summary()}")
    result = trainer.fit()
    trainer.write_outputs()
    shutdown(accelerator)
    return result


def layers_line(model: ProcessRewardModel) -> str:
    """Which backbone a run trains and how much of it: a layer cut is always said."""
    kept = len(getattr(getattr(model.backbone, "model", model.backbone), "layers", []) or [])
    before = getattr(model.backbone, "prm_lib_layers_before_cut", None)
    name = model.backbone_name
    if before is not None and before != kept:
        return f"backbone {name}: cut to its first {kept} of {before} layers (n_layers={kept})"
    return f"backbone {name}: all {kept} layers" if kept else f"backbone {name}"


# ``prm_lib.train(...)`` calls ``train`` (prm_lib.modules)
sys.modules[__name__].__class__ = CallableModule
