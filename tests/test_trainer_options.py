"""What a TRL PRMTrainer user reaches for (issue 38), on tiny-qwen2: LoRA and merge, epochs, logging, the best
checkpoint and early stopping, gradient checkpointing, dropout, a two-stage run, and cache keys kept."""

import dataclasses
import json
import math
import sys
from pathlib import Path

import pytest
import torch

from prm_lib.cli import main as cli
from prm_lib.model import ProcessRewardModel
from prm_lib.train import LATER_SETTINGS, TrainConfig, Trainer, train
from prm_lib.training_data import build_data
from prm_lib.zoo import PRESETS, config_hash, preset

TINY = dataclasses.replace(preset("tiny"), max_steps=6, eval_every=3)

# the zoo's hashes before issue 38's settings existed: the course's cached models are named by them
PRESET_HASHES = {"cpu": "b8a1c3286883", "cpu-orm": "a6a0925e314d", "cpu-reader": "1f35e32b86e4",
                 "cpu-reader-orm": "9345cce685af", "tiny": "a33c290823e3", "tiny-orm": "a5cd1597143a",
                 "gpu-qwen2.5-0.5b": "b058d41061e7", "gpu-qwen2.5-0.5b-orm": "607879a27b72",
                 "cpu-real": "bbc37d36c547", "cpu-real-orm": "262191d77f01"}


def scores(prm: ProcessRewardModel, samples) -> torch.Tensor:
    return torch.tensor([p for row in prm.score_batch([s.as_item() for s in samples]) for p in row])


# -- cache keys ---------------------------------------------------------------------------------------
def test_every_preset_keeps_its_cache_hash():
    assert {name: config_hash(p.config) for name, p in PRESETS.items()} == PRESET_HASHES


def test_every_setting_added_since_the_cache_key_was_fixed_is_listed_in_later_settings():
    fixed = {"backbone", "n_layers", "objective", "data", "separator", "max_length", "batch_size", "grad_accum",
             "max_steps", "lr", "head_lr", "weight_decay", "warmup_steps", "grad_clip", "freeze_embeddings",
             "precision", "surprise", "compile", "pos_weight", "mask_after_first_error", "later_step_weight",
             "ranking_weight", "eval_every", "save_every", "keep_checkpoints", "seed"}
    assert {f.name for f in dataclasses.fields(TrainConfig)} - fixed == set(LATER_SETTINGS)


def test_a_new_setting_enters_the_key_only_off_its_default_and_old_configs_load():
    for name in LATER_SETTINGS:
        assert name not in TINY.key()
    assert config_hash(dataclasses.replace(TINY, epochs=1.0)) != config_hash(TINY)
    assert config_hash(dataclasses.replace(TINY, lora_rank=8)) != config_hash(TINY)
    before = {k: v for k, v in TINY.to_dict().items() if k not in LATER_SETTINGS}  # saved before issue 38
    assert TrainConfig.from_dict(before) == TINY


# -- LoRA --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def lora_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("lora") / "run"
    config = dataclasses.replace(TINY, lora_rank=4, freeze_embeddings=False)
    result = train(config, out_dir=out, progress=False)
    return config, out, result


def test_lora_moves_only_the_adapters_and_the_head(lora_run):
    config, out, result = lora_run
    start = ProcessRewardModel.from_backbone("tiny-qwen2", device="cpu").state_dict()
    trained = result.model.state_dict()
    adapters = [k for k in trained if "lora_" in k]
    assert adapters and all(k not in start for k in adapters)
    for name, value in trained.items():
        if name in adapters:
            continue
        base = name.replace(".base_layer", "")
        moved = not torch.equal(value, start[base])
        assert moved == name.startswith("value_head"), name
    assert any(not torch.equal(trained[k], torch.zeros_like(trained[k])) for k in adapters if "lora_B" in k)
    setup = json.loads((out / "metrics.json").read_text())["backbone_setup"]["lora"]
    assert setup["rank"] == 4 and setup["alpha"] == 8.0 and 0 < setup["trainable_share"] < 0.5


def test_a_saved_lora_prm_is_small_and_reloads_with_the_same_scores(lora_run):
    config, out, result = lora_run
    assert not (out / "backbone").exists()  # adapters plus head, the base by its name
    size = sum(f.stat().st_size for f in out.iterdir() if f.is_file() and f.suffix == ".safetensors")
    base = sum(p.numel() * 4 for p in result.model.backbone.parameters())
    assert size < base / 5
    _, val = build_data(config)
    loaded = ProcessRewardModel.load(out, device="cpu")
    assert loaded.lora is not None
    assert torch.equal(scores(loaded, val[:20]), scores(result.model, val[:20]))


def test_merge_writes_a_plain_prm_that_scores_as_the_lora_one(lora_run, tmp_path, capsys):
    config, out, result = lora_run
    assert cli(["merge", "--checkpoint", str(out), "--out", str(tmp_path / "merged")]) == 0
    merged = ProcessRewardModel.load(tmp_path / "merged", device="cpu")
    assert merged.lora is None and (tmp_path / "merged" / "backbone").is_dir()
    assert not any("lora_" in k for k in merged.state_dict())
    _, val = build_data(config)
    diff = (scores(merged, val[:20]) - scores(ProcessRewardModel.load(out, device="cpu"), val[:20])).abs().max()
    print(f"merge max abs diff {diff.item():.2e}", file=sys.stderr)
    assert diff < 1e-5


def test_the_memory_estimate_counts_the_adapters_lora_trains(lora_run):
    from prm_lib.memory import QWEN25_SHAPES, lora_gib, lora_parameters, memory_table, mixed_gib, prm_size

    config, out, result = lora_run
    shape = result.model.backbone.config.to_dict()
    trained = sum(p.numel() for n, p in result.model.backbone.named_parameters() if "lora_" in n)
    assert lora_parameters("tiny-qwen2", 4, shape=shape) == trained
    assert lora_parameters("Qwen2.5-7B", 8) == 20_185_088  # OpenR's r=8 on the 7B: about 20M adapter weights
    row = {r["backbone"]: r for r in memory_table(lora_rank=8)}["Qwen2.5-7B"]
    assert row["1 GPU, LoRA r=8"] < 80 < row["1 GPU, mixed"]  # fits one 80 GB GPU only with LoRA
    assert "1 GPU, LoRA r=8" not in memory_table()[0]  # the chapters' table as it was


def test_lora_without_peft_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "peft", None)
    with pytest.raises(ModuleNotFoundError, match=r"prm_lib\[peft\]"):
        train(dataclasses.replace(TINY, lora_rank=4, max_steps=1), progress=False)


# -- epochs and logging --------------------------------------------------------------------------------
def test_epochs_decide_the_steps(tmp_path, capsys):
    config = dataclasses.replace(TINY, epochs=0.5, max_steps=1000, grad_accum=2)
    result = train(config, out_dir=tmp_path, progress=False)
    want = math.ceil(0.5 * 200 / (8 * 2))
    assert len(result.history) == want == json.loads((tmp_path / "metrics.json").read_text())["max_steps"]
    assert cli(["train", "--preset", "tiny", "--epochs", "1", "--max-steps", "5", "--out", str(tmp_path / "x")]) == 2
    assert "not both" in capsys.readouterr().err


def test_metrics_jsonl_has_a_line_per_logging_step(tmp_path):
    train(dataclasses.replace(TINY, max_steps=7, log_every=3), out_dir=tmp_path, progress=False)
    lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [line["step"] for line in lines] == [3, 6, 7]
    for line in lines:
        assert {"step", "loss", "lr", "grad_norm", "tokens_per_second", "peak_memory_gib"} <= line.keys()
        assert line["grad_norm"] > 0 and line["tokens_per_second"] > 0 and line["peak_memory_gib"] > 0
    history = json.loads((tmp_path / "metrics.json").read_text())["history"]
    assert lines[0]["loss"] == history[2]["loss"]


def test_tensorboard_event_file_holds_the_loss(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    result = train(dataclasses.replace(TINY, log_every=2, report_to="tensorboard"), out_dir=tmp_path, progress=False)
    events = list((tmp_path / "runs").rglob("events.out.tfevents.*"))
    assert events
    acc = EventAccumulator(str(events[0].parent))
    acc.Reload()
    loss = {e.step: e.value for e in acc.Scalars("train/loss")}
    assert sorted(loss) == [2, 4, 6]
    assert loss[4] == pytest.approx(result.history[3]["loss"], rel=1e-6)
    assert {e.step for e in acc.Scalars("eval/step_auroc")} == {3, 6}


def test_wandb_offline_writes_the_run_without_a_network(tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    train(dataclasses.replace(TINY, max_steps=2, log_every=1, report_to="wandb"), out_dir=tmp_path, progress=False)
    runs = list((tmp_path / "wandb").glob("offline-run-*/run-*.wandb"))
    assert runs and runs[0].stat().st_size > 0


def test_a_missing_tracker_package_names_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboard", None)
    with pytest.raises(ModuleNotFoundError, match="pip install tensorboard"):
        train(dataclasses.replace(TINY, max_steps=1, report_to="tensorboard"), out_dir=None, progress=False)


# -- the best checkpoint and early stopping ---------------------------------------------------------
def test_keep_best_keeps_the_best_evaluation_as_the_final_model(tmp_path):
    # a high learning rate: the validation AUROC goes up and down, so the best is not the last
    config = dataclasses.replace(TINY, max_steps=16, eval_every=2, lr=3e-2, head_lr=3e-2, warmup_steps=1,
                                 keep_best="step_auroc", keep_checkpoints=1)
    result = train(config, out_dir=tmp_path, progress=False)
    aurocs = {e["step"]: e["step_auroc"] for e in result.evals}
    best = max(aurocs, key=aurocs.get)
    assert best != 16, aurocs  # else the test proves nothing
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["best"]["step"] == best == result.best_step and metrics["final"]["step"] == best
    kept = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert kept == sorted({f"step-{best:07d}", "step-0000016"})  # keep_checkpoints=1 and the best
    trainer = Trainer(ProcessRewardModel.load(tmp_path, device="cpu"), *build_data(config), config, progress=False)
    assert trainer.evaluate()["step_auroc"] == pytest.approx(aurocs[best], abs=1e-6)


CONSTANT = dict(keep_best="n_solutions", eval_every=2, max_steps=20)  # never improves after the first evaluation


def test_early_stopping_stops_after_patience_evaluations(tmp_path):
    result = train(dataclasses.replace(TINY, early_stopping_patience=2, **CONSTANT), out_dir=tmp_path, progress=False)
    assert len(result.history) == 6 and result.best_step == 2
    assert json.loads((tmp_path / "metrics.json").read_text())["stopped_early"] is True


def test_resume_keeps_the_best_and_the_patience_count(tmp_path, monkeypatch):
    config = dataclasses.replace(TINY, early_stopping_patience=3, **CONSTANT)
    save = Trainer.save_checkpoint

    def crash_at_4(self):
        path = save(self)
        if self.step == 4:
            raise KeyboardInterrupt
        return path

    monkeypatch.setattr(Trainer, "save_checkpoint", crash_at_4)
    with pytest.raises(KeyboardInterrupt):
        train(config, out_dir=tmp_path, progress=False)
    monkeypatch.setattr(Trainer, "save_checkpoint", save)
    result = train(config, out_dir=tmp_path, progress=False)
    assert len(result.history) == 8 and result.best_step == 2  # steps 4, 6, 8 without improvement


def test_early_stopping_needs_keep_best():
    with pytest.raises(ValueError, match="needs keep_best"):
        dataclasses.replace(TINY, early_stopping_patience=2)


# -- gradient checkpointing and dropout ------------------------------------------------------------
def trainer_for(config) -> Trainer:
    torch.manual_seed(config.seed)
    model = ProcessRewardModel.from_backbone("tiny-qwen2", device="cpu")
    return Trainer(model, *build_data(config), config, progress=False)


def test_gradient_checkpointing_gives_the_same_loss_and_keeps_fewer_activations():
    plain, ckpt = (trainer_for(dataclasses.replace(TINY, max_steps=3, gradient_checkpointing=g)) for g in (False, True))
    assert [t.model.backbone.gradient_checkpointing for t in (plain, ckpt)] == [False, True]
    a, b = ([h["loss"] for h in t.fit().history] for t in (plain, ckpt))
    assert a == pytest.approx(b, abs=1e-5)
    # a longer input: the bytes autograd keeps for backward (what checkpointing trades for recompute)
    _, val = build_data(TINY)
    batch = plain.model.collate(plain.model.encode([s.as_item() for s in val[:8] * 4], labels=[s.targets for s in val[:8] * 4]))
    kept = {}
    for name, t in (("plain", plain), ("checkpointing", ckpt)):
        total = [0]

        def pack(x, total=total):
            total[0] += x.numel() * x.element_size()
            return x

        t.model.train()
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda x: x):
            t.model(batch).sum()
        kept[name] = total[0]
    print(f"saved activations: {kept}", file=sys.stderr)
    assert kept["checkpointing"] < kept["plain"] / 2


def test_dropout_is_set_in_the_backbone_and_recorded(tmp_path):
    _, val = build_data(TINY)
    outs = {}
    for p in (0.0, 0.3):
        t = trainer_for(dataclasses.replace(TINY, dropout=p))
        assert t.model.backbone.config.attention_dropout == p
        assert t.backbone_setup["dropout"]["dropout"] == p
        batch = t.model.collate(t.model.encode([s.as_item() for s in val[:4]]))
        t.model.train()
        with torch.no_grad():
            outs[p] = (t.model(batch), t.model(batch))
    assert torch.equal(*outs[0.0])
    assert not torch.allclose(*outs[0.3])
    train(dataclasses.replace(TINY, dropout=0.1, max_steps=1), out_dir=tmp_path, progress=False)
    saved = json.loads((tmp_path / "backbone" / "config.json").read_text())
    assert saved["attention_dropout"] == 0.1


# -- a two-stage recipe ---------------------------------------------------------------------------------
def test_two_stages_head_only_then_the_whole_model(tmp_path):
    head_only = dataclasses.replace(TINY, train_backbone=False)
    first = train(head_only, out_dir=tmp_path / "one", progress=False)
    start = ProcessRewardModel.from_backbone("tiny-qwen2", device="cpu")
    for (name, a), b in zip(first.model.backbone.state_dict().items(), start.backbone.state_dict().values()):
        assert torch.equal(a, b), name
    assert not (tmp_path / "one" / "backbone").exists()  # the backbone unchanged: saved by its name
    assert not torch.equal(first.model.value_head.weight, start.value_head.weight)
    second = trainer_for(dataclasses.replace(TINY, init_from=str(tmp_path / "one")))
    assert torch.equal(second.model.value_head.weight, first.model.value_head.weight)
    second.fit()
    assert not torch.equal(second.model.backbone.layers[0].mlp.up_proj.weight, start.backbone.layers[0].mlp.up_proj.weight)
