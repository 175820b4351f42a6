"""Named training presets, trained once and cached.

Chapters 5-8 of the course load their models from here. ``load_or_train(name)``
hashes the preset's full configuration together with the library version; the
first call trains and saves under ``$PRM_LIB_CACHE/zoo/<name>-<hash>``, every
later call (another chapter, the next nbval run) loads that instead. Change
any setting, or the library version, and the hash changes, so a stale model is
never loaded by mistake.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from . import __version__
from .backbones import DEFAULT_BACKBONE, cache_dir
from .model import ProcessRewardModel
from .objectives import objective as objective_by_name
from .train import CHECKPOINTS, TrainConfig, train
from .training_data import ShippedData, SyntheticData

# Chosen by measurement on the 2-core CPU (chapter 5 tells the story): 8 of 30 layers, short
# solutions (half the naive tutorial's "What is 9 × 2?", half word problems of 1-2 operations), 60% with an error.
# The cpu preset, chapter 5's PRM without the frozen LM; it misses most arithmetic slips, which the reading preset
# below catches.
_CPU_DATA = SyntheticData(n_train=5000, n_val=200, max_ops=2, error_rate=0.6, direct_rate=0.5)
_CPU = dict(backbone="smollm2-135m", n_layers=8, lr=1e-4, head_lr=1e-3, warmup_steps=20, batch_size=8,
            max_steps=560, eval_every=140, freeze_embeddings=True, max_length=None, data=_CPU_DATA)

# The course's PRM (what the chapters load): the same 8 trained layers plus the per-token surprise of the
# whole SmolLM2-135M, frozen (prm_lib.surprise); a curriculum of 60% one-operation problems with half of the
# errors slips; the naive tutorial's own problems held out of training.
_CURRICULUM = dict(direct_rate=0.6, error_weights={"arithmetic_slip": 3.0}, hold_out_seed_problems=True)
_READER = dict(_CPU, surprise=True, data=dataclasses.replace(_CPU_DATA, n_train=4000, **_CURRICULUM))
_TINY = dict(backbone="tiny-qwen2", n_layers=None, batch_size=8, max_steps=30, eval_every=15, lr=1e-3, head_lr=3e-3,
             warmup_steps=5, freeze_embeddings=True, max_length=None, data=SyntheticData(n_train=200, n_val=60))


@dataclass(frozen=True)
class Preset:
    """A named training configuration and the one-line description ``train --help`` shows. The description
    is kept beside the config, not in it: it is not part of ``TrainConfig``, so it never moves a config hash."""

    config: TrainConfig
    description: str


# How long each one trains is measured, not promised here: every trained model's metrics.json records its
# train_seconds (and setup_seconds), and chapter 5 shows the CPU runs'.
PRESETS: dict[str, Preset] = {
    # SmolLM2-135M cut to 8 layers, trained on 2 CPU cores, reading no surprise.
    "cpu": Preset(TrainConfig(**_CPU), "smollm2-135m (first 8 layers), 560 steps of 8, for 2 CPU cores; "
                                       "misses most slips"),
    # The ORM baseline: same backbone, problems and budget; one outcome label per solution.
    "cpu-orm": Preset(TrainConfig(**{**_CPU, "objective": "orm"}),
                      "ORM baseline with the cpu preset's backbone, data and budget (outcome labels only)"),
    # The course's PRM: the cpu preset reading the whole LM's surprise.
    "cpu-reader": Preset(TrainConfig(**_READER), "the course's PRM: the cpu preset reading the whole smollm2-135m's "
                                                 "surprise (frozen), slip-heavy data; somewhat longer than cpu"),
    "cpu-reader-orm": Preset(TrainConfig(**{**_READER, "objective": "orm"}),
                             "ORM baseline with the cpu-reader preset's backbone, inputs, data and budget"),
    # Short runs for tests of the machinery (tiny random model: learns little).
    "tiny": Preset(TrainConfig(**_TINY), "tiny random Qwen2, 30 steps, the quickest; for tests"),
    "tiny-orm": Preset(TrainConfig(**_TINY, objective="orm"), "tiny random Qwen2 ORM, 30 steps, the quickest; for tests"),
    # For a GPU (Colab or local): the naive tutorial's backbone, whole, more data and steps.
    "gpu-qwen2.5-0.5b": Preset(TrainConfig(backbone="Qwen/Qwen2.5-0.5B", n_layers=None, lr=2e-5, head_lr=1e-3,
                                           batch_size=32, max_steps=600, eval_every=100, warmup_steps=30,
                                           freeze_embeddings=False, max_length=None, surprise=True,
                                           data=SyntheticData(n_train=20000, n_val=500, error_rate=0.6, **_CURRICULUM)),
                               "Qwen/Qwen2.5-0.5B (needs the model hub) reading its own surprise, 600 steps of 32 "
                               "on a GPU (bf16 mixed precision)"),
}
# Chapter 9's models, trained on real model-written solutions (prm_lib.datasets): the cpu preset's backbone and
# learning rates on BIG-Bench Mistake's human-labelled traces of the four tasks people labelled (their training
# split, each trace through its first mistake), and an ORM on GSM8K's outcome-labelled solutions of half the
# problems. Sized so that both train in the first run's budget on the 2-core CPU.
_REAL = dict(backbone="smollm2-135m", n_layers=8, lr=1e-4, head_lr=1e-3, warmup_steps=10, batch_size=8,
             freeze_embeddings=True, max_length=None)
PRESETS["cpu-real"] = Preset(TrainConfig(**_REAL, max_steps=90, eval_every=90, data=ShippedData()),
                             "smollm2-135m (first 8 layers) on BIG-Bench Mistake's human-labelled traces "
                             "(4 tasks, training split), 90 steps of 8 on 2 CPU cores")
PRESETS["cpu-real-orm"] = Preset(TrainConfig(**_REAL, objective="orm", max_steps=70, eval_every=70,
                                             data=ShippedData(("gsm8k",))),
                                 "ORM on GSM8K's outcome-labelled model solutions (training split), the cpu-real "
                                 "backbone, 70 steps of 8")
PRESETS["gpu-qwen2.5-0.5b-orm"] = Preset(dataclasses.replace(PRESETS["gpu-qwen2.5-0.5b"].config, objective="orm"),
                                         "ORM baseline with the gpu-qwen2.5-0.5b preset's backbone, data and budget")


# The one switch of the book: chapters train and load their models through course_preset(),
# which reads this environment variable (unset: the CPU course on smollm2-135m).
BACKBONE_ENV = "PRM_BACKBONE"

# For authors checking that the book's claims hold beyond one trained model: another training seed
# (head initialisation and batch order; the data stay the same) for every model the zoo trains or loads.
# It is part of the configuration, so it lands in the hash and never mixes with the default models.
TRAIN_SEED_ENV = "PRM_LIB_TRAIN_SEED"


def preset(name: str) -> TrainConfig:
    """A copy of a named preset's configuration."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; known: {', '.join(PRESETS)}")
    return dataclasses.replace(PRESETS[name].config)


# Part of every cache key: raised when the meaning of a configuration changes, so models trained under the
# earlier meaning are retrained once, and no setting has to carry a shim that keeps their keys.
CACHE_KEY_VERSION = 2


def course_backbone() -> str:
    """The backbone the chapters use: ``$PRM_BACKBONE``, or smollm2-135m when it is unset."""
    return os.environ.get(BACKBONE_ENV, "").strip() or DEFAULT_BACKBONE


def course_preset(objective: str = "prm") -> tuple[str, TrainConfig]:
    """(name, config) of the model a chapter should load: ``load_or_train(*course_preset())``.

    With the default backbone that is the ``cpu-reader`` preset (``cpu-reader-orm`` for ``objective="orm"``);
    with any other ``$PRM_BACKBONE`` (``Qwen/Qwen2.5-0.5B`` on a GPU) the ``gpu-qwen2.5-0.5b``
    recipe on that backbone.
    """
    objective_by_name(objective)  # an unknown name is an error that lists the known ones
    backbone = course_backbone()
    name = "cpu-reader" if backbone == DEFAULT_BACKBONE else "gpu-qwen2.5-0.5b"
    config = preset(name if objective == "prm" else f"{name}-orm")
    if backbone != config.backbone:
        config = dataclasses.replace(config, backbone=backbone)
        name = f"{name}-{re.sub(r'[^A-Za-z0-9.]+', '-', backbone).strip('-')}"
    return (name if objective == "prm" else f"{name}-orm"), config


def config_hash(config: TrainConfig) -> str:
    """Stable hash of everything that determines a trained model: the config (a data file by its contents),
    the library version and the key's own version."""
    blob = json.dumps({"config": config.key(), "prm_lib": __version__, "key": CACHE_KEY_VERSION}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def effective_config(config: TrainConfig) -> TrainConfig:
    """``config`` with ``$PRM_LIB_TRAIN_SEED`` as its training seed when that variable is set."""
    value = os.environ.get(TRAIN_SEED_ENV, "").strip()
    if not value:
        return config
    try:
        seed = int(value)
    except ValueError:
        raise ValueError(f"{TRAIN_SEED_ENV} must be an integer training seed, not {value!r}") from None
    return dataclasses.replace(config, seed=seed)


def zoo_path(name: str, config: TrainConfig) -> Path:
    """Where ``load_or_train(name, config)`` keeps its model (after ``$PRM_LIB_TRAIN_SEED``, if set)."""
    return cache_dir() / "zoo" / f"{name}-{config_hash(effective_config(config))}"


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


# How long each of the course's models took to train on the machine that recorded the book (tools/reference_times.py
# writes it from that machine's model cache), so a first run on an empty cache gets an estimate too.
REFERENCE_TIMES = Path(__file__).with_name("reference_times.json")


def _cached_metrics() -> dict[str, dict[str, Any]]:
    """metrics.json of every model in the cache, by its folder name."""
    found = {}
    for metrics_file in (cache_dir() / "zoo").glob("*/metrics.json"):
        try:
            m = json.loads(metrics_file.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(m.get("config"), dict) and m.get("tokens_per_second") and m.get("history"):
            found[metrics_file.parent.name] = m
    return found


def estimate(config: TrainConfig, folder: str | None = None) -> str:
    """How long training ``config`` (kept in the zoo folder named ``folder``) should take here, or why there is no
    estimate. A course model has a time measured on the CPU that recorded the book, scaled by this machine's speed
    on the models both have trained; any other model is estimated from the models of its backbone and depth
    already in the cache (tokens per step and per second, and setup time)."""
    cached = _cached_metrics()
    reference = {}
    if REFERENCE_TIMES.exists():
        reference = json.loads(REFERENCE_TIMES.read_text())
    measured = reference.get("models", {}).get(folder) if folder else None
    if measured:
        both = [k for k in cached if k in reference["models"]]
        if not both:
            return f"about {measured['minutes']:.0f} min, as on {reference['machine']}"
        ratio = sum(reference["models"][k]["tokens_per_second"] / cached[k]["tokens_per_second"] for k in both) / len(both)
        return (f"about {measured['minutes'] * ratio:.0f} min here ({measured['minutes']:.1f} min on {reference['machine']}, "
                f"scaled by this machine's speed on the {len(both)} course model(s) already trained)")
    same = [m for m in cached.values()
            if (m["config"].get("backbone"), m["config"].get("n_layers"), m["config"].get("surprise"))
            == (config.backbone, config.n_layers, config.surprise)]
    if not same:
        return "no estimate yet: no model of this backbone and depth is in the cache (the progress bar shows the rate)"
    rate = sum(m["tokens_per_second"] for m in same) / len(same)
    per_solution = sum(m["train_tokens"] / len(m["history"]) / (m["config"]["batch_size"] * m["config"].get("grad_accum", 1))
                       for m in same) / len(same)
    seconds = config.max_steps * config.grad_accum * config.batch_size * per_solution / rate
    setup = max(m.get("setup_seconds", 0.0) for m in same)
    return (f"about {(seconds + setup) / 60:.0f} min here, judging by the {len(same)} model(s) of this backbone and "
            f"depth in the cache ({rate:.0f} tokens/s)")


@contextlib.contextmanager
def _training_lock(path: Path, name: str, progress: bool) -> Iterator[None]:
    """Held while a process trains the model at ``path``: another process that needs it (two chapters run side by
    side, ``make nbval``) waits and loads it rather than training it a second time. No lock where the platform
    has no ``fcntl`` (Windows): there two processes may both train, and the first model saved is kept."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:
        yield
        return
    locks = cache_dir() / "locks"  # beside the zoo, which holds only models
    locks.mkdir(parents=True, exist_ok=True)
    with open(locks / f"zoo-{path.name}.lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if progress:
                _say(f"prm_lib.zoo: waiting for {name!r}: another process is training it into the model cache")
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _train_into(path: Path, name: str, config: TrainConfig, progress: bool, device: str | None) -> None:
    """Train ``config`` in a temporary folder beside ``path`` and move the finished model to ``path``."""
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{name}-training-"))
    start = time.perf_counter()
    if progress:
        _say(f"prm_lib.zoo: training {name!r}: it is not in the model cache yet ({path.parent}); "
             f"{estimate(config, path.name)}")
    try:
        train(config, out_dir=tmp, progress=progress, device=device)
        if progress:
            _say(f"prm_lib.zoo: trained {name!r} in {(time.perf_counter() - start) / 60:.1f} min; later runs load it")
        shutil.rmtree(tmp / CHECKPOINTS, ignore_errors=True)  # the final model is what the zoo keeps
        try:
            tmp.rename(path)
        except OSError:  # trained concurrently where there is no lock: keep theirs
            if not (path / "metrics.json").exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def load_or_train(
    name: str,
    config: TrainConfig | None = None,
    progress: bool = True,
    device: str | None = None,
) -> tuple[ProcessRewardModel, dict[str, Any]]:
    """The trained model of a preset (or of ``config`` under that name) and its ``metrics.json``.

    Trains at most once per configuration and library version; later calls load from the cache.
    With ``$PRM_LIB_TRAIN_SEED`` set, the model is the one trained with that seed instead.
    """
    config = effective_config(config or preset(name))
    path = zoo_path(name, config)
    if not (path / "metrics.json").exists():
        with _training_lock(path, name, progress):
            if not (path / "metrics.json").exists():  # not trained by the process this one waited for
                _train_into(path, name, config, progress, device)
    metrics = json.loads((path / "metrics.json").read_text())
    model = ProcessRewardModel.load(path, device=device)
    # the config says what was trained: models cached before the saved config recorded it load as PRMs
    model.objective = config.objective
    return model, metrics
