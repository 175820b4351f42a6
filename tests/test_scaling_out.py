"""The trainer on accelerate: one process unchanged, 2 CPU processes (DDP, FSDP) equal to one, FSDP memory."""

import dataclasses
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from prm_lib.batching import length_bucketed_batches
from prm_lib.distributed import FSDP_CONFIG
from prm_lib.loss import prm_loss
from prm_lib.memory import QWEN25_SHAPES, fsdp_gib, memory_table, plain_gib, prm_size
from prm_lib.model import ProcessRewardModel
from prm_lib.train import Trainer
from prm_lib.training_data import build_data
from prm_lib.zoo import preset

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
ACCELERATE = str(BIN / "accelerate") if (BIN / "accelerate").exists() else shutil.which("accelerate")
TORCHRUN = str(BIN / "torchrun") if (BIN / "torchrun").exists() else shutil.which("torchrun")
ARGS = ["train", "--preset", "tiny", "--max-steps", "8", "--eval-every", "4", "--no-progress"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
TOL = 1e-4  # the largest difference allowed between 1 and 2 processes, per loss and per weight


def run(command: list[str], env: dict | None = None) -> subprocess.CompletedProcess:
    done = subprocess.run(command, env=env or ENV, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, f"{' '.join(command[:6])}...\n{done.stderr[-3000:]}"
    return done


@pytest.fixture(scope="module")
def one_process(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("one") / "run"
    run([sys.executable, "-m", "prm_lib", *ARGS, "--out", str(out)])
    return out


def assert_same_training(single: Path, multi: Path, engine: str) -> None:
    one = json.loads((single / "metrics.json").read_text())
    two = json.loads((multi / "metrics.json").read_text())
    assert (one["world_size"], one["engine"]) == (1, "NO") and (two["world_size"], two["engine"]) == (2, engine)
    assert one["train_tokens"] == two["train_tokens"]  # the same data, split in two
    assert len(one["history"]) == len(two["history"]) == 8
    for a, b in zip(one["history"], two["history"]):
        assert abs(a["loss"] - b["loss"]) < TOL, (a, b)
    p1 = ProcessRewardModel.load(single, device="cpu").state_dict()
    p2 = ProcessRewardModel.load(multi, device="cpu").state_dict()
    assert p1.keys() == p2.keys()
    for name in p1:
        assert (p1[name] - p2[name]).abs().max().item() < TOL, f"{name} differs between 1 and 2 processes"
    start = ProcessRewardModel.from_backbone("tiny-qwen2", device="cpu")  # and training moved the weights
    assert not torch.allclose(start.value_head.weight, ProcessRewardModel.load(multi, device="cpu").value_head.weight)


def reference_training(config, steps: int) -> tuple[list[float], dict[str, torch.Tensor]]:
    """What the trainer did on one process before accelerate: plain PyTorch, written out here."""
    torch.manual_seed(config.seed)
    model = ProcessRewardModel.from_backbone(config.backbone, device="cpu", n_layers=config.n_layers)
    train_set, _ = build_data(config)
    encoded = model.encode([s.as_item() for s in train_set], labels=[s.targets for s in train_set])
    model.backbone.get_input_embeddings().weight.requires_grad_(False)
    body = [p for p in model.backbone.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW([{"params": body, "lr": config.lr},
                                   {"params": list(model.value_head.parameters()), "lr": config.head_lr}],
                                  weight_decay=config.weight_decay)

    def factor(step: int) -> float:
        if step < config.warmup_steps:
            return (step + 1) / config.warmup_steps
        progress = (step - config.warmup_steps) / max(1, config.max_steps - config.warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    per_epoch = math.ceil(len(encoded) / config.batch_size)
    torch.manual_seed(config.seed)
    losses = []
    for step in range(steps):
        epoch, pos = divmod(step, per_epoch)
        idx = length_bucketed_batches([len(e) for e in encoded], config.batch_size, config.seed, epoch)[pos]
        batch = model.collate([encoded[i] for i in idx])
        model.train()
        loss = prm_loss(model(batch), batch.labels, batch.step_mask)
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for g in optimizer.param_groups for p in g["params"]], config.grad_clip)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(float(loss.detach()))
    return losses, model.state_dict()


def test_one_process_trains_bit_for_bit_as_plain_pytorch():
    config = dataclasses.replace(preset("tiny"), max_steps=10, eval_every=10)
    want_losses, want_weights = reference_training(config, 10)
    torch.manual_seed(config.seed)
    model = ProcessRewardModel.from_backbone(config.backbone, device="cpu", n_layers=config.n_layers)
    train_set, val_set = build_data(config)
    trainer = Trainer(model, train_set, val_set, config, progress=False)
    assert trainer.accelerator.num_processes == 1
    result = trainer.fit()
    assert [h["loss"] for h in result.history] == want_losses  # exactly: the cached course models stay valid
    got = result.model.state_dict()
    assert got.keys() == want_weights.keys()
    for name in got:
        assert torch.equal(got[name], want_weights[name]), name


@pytest.mark.skipif(ACCELERATE is None, reason="accelerate's launcher is not installed")
def test_two_processes_under_accelerate_match_one_process(one_process, tmp_path, free_port):
    multi = run([ACCELERATE, "launch", "--multi_gpu", "--num_processes", "2", "--main_process_port", str(free_port()),
                 "-m", "prm_lib", *ARGS, "--out", str(tmp_path / "ddp")])
    assert len([line for line in multi.stdout.splitlines() if line.startswith("{")]) == 1  # rank 0 alone reports
    assert_same_training(one_process, tmp_path / "ddp", "MULTI_CPU")


@pytest.mark.skipif(ACCELERATE is None, reason="accelerate's launcher is not installed")
def test_lora_under_accelerate_trains_as_on_one_process(tmp_path, free_port):
    pytest.importorskip("peft")
    lora = [*ARGS, "--lora-rank", "4"]
    run([sys.executable, "-m", "prm_lib", *lora, "--out", str(tmp_path / "one")])
    run([ACCELERATE, "launch", "--multi_gpu", "--num_processes", "2", "--main_process_port", str(free_port()),
         "-m", "prm_lib", *lora, "--out", str(tmp_path / "ddp")])
    assert_same_training(tmp_path / "one", tmp_path / "ddp", "MULTI_CPU")
    assert any("lora_" in k for k in ProcessRewardModel.load(tmp_path / "ddp", device="cpu").state_dict())


@pytest.mark.skipif(TORCHRUN is None, reason="torchrun is not installed")
def test_two_processes_under_torchrun_match_one_process(one_process, tmp_path, free_port):
    run([TORCHRUN, "--nproc_per_node", "2", "--master_port", str(free_port()), "-m", "prm_lib", *ARGS, "--out", str(tmp_path / "tr")])
    assert_same_training(one_process, tmp_path / "tr", "MULTI_CPU")


CRASH_AFTER_STEP_4 = """
import sys
from prm_lib import train
from prm_lib.cli import main

save = train.Trainer.save_checkpoint
def save_then_crash(self):
    path = save(self)
    if self.step == 4:
        sys.exit(3)
    return path
train.Trainer.save_checkpoint = save_then_crash
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.skipif(ACCELERATE is None, reason="accelerate's launcher is not installed")
def test_fsdp_on_two_cpu_processes_matches_one_process_and_resumes_from_its_shards(one_process, tmp_path, free_port):
    env = {**ENV, "PRM_LIB_FSDP_ON_CPU": "1"}
    launch = [ACCELERATE, "launch", "--config_file", str(FSDP_CONFIG), "--num_processes", "2",
              "--mixed_precision", "no", "--main_process_port", str(free_port())]
    out = tmp_path / "fsdp"
    crash = tmp_path / "crash_after_step_4.py"
    crash.write_text(CRASH_AFTER_STEP_4)
    crashed = subprocess.run([*launch, str(crash), *ARGS, "--out", str(out)], env=env, capture_output=True, text=True,
                             timeout=300, cwd=ROOT)
    assert crashed.returncode != 0 and not (out / "metrics.json").exists()
    ckpt = out / "checkpoints" / "step-0000004"
    shards = sorted(p.name for p in (ckpt / "sharded").iterdir())
    assert "optimizer_0" in shards and "pytorch_model_fsdp_0" in shards  # accelerate's sharded state, not one file
    assert torch.load(ckpt / "trainer_state.pt", weights_only=False)["step"] == 4
    run([*launch, "-m", "prm_lib", *ARGS, "--out", str(out)], env=env)  # the same command resumes at step 4
    assert_same_training(one_process, out, "FSDP")


def test_fsdp_on_cpu_needs_an_fsdp_launch(tmp_path, free_port):
    env = {**ENV, "PRM_LIB_FSDP_ON_CPU": "1"}
    done = subprocess.run([TORCHRUN or "torchrun", "--nproc_per_node", "2", "--master_port", str(free_port()), "-m", "prm_lib",
                           *ARGS, "--out", str(tmp_path / "x")], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode != 0 and "needs an FSDP launch" in done.stderr


def test_prm_sizes_match_the_published_parameter_counts():
    # the model cards: 0.49B, 1.54B and 7.61B parameters; the PRM drops the 7B's untied 0.54B LM head
    # (the smaller two tie it to the embeddings) and adds a value head of hidden_size + 1
    published = {"Qwen2.5-0.5B": 494_032_768, "Qwen2.5-1.5B": 1_543_714_304, "Qwen2.5-7B": 7_615_616_512 - 152064 * 3584}
    for name, count in published.items():
        assert prm_size(name).total == count + QWEN25_SHAPES[name]["hidden_size"] + 1


def test_fsdp_memory_per_gpu_shrinks_with_gpus_and_7b_needs_it():
    seven = prm_size("Qwen2.5-7B")
    assert fsdp_gib(seven, 8) < fsdp_gib(seven, 4) < fsdp_gib(seven, 2)
    assert seven.total * 16 / 1024**3 > 80 > fsdp_gib(seven, 8)  # fp32 state: not on one 80 GB GPU, fine on 8
    assert plain_gib(seven) == pytest.approx(seven.total * 8 / 1024**3)
    rows = {r["backbone"]: r for r in memory_table()}
    assert set(rows) == set(QWEN25_SHAPES) and rows["Qwen2.5-7B"]["FSDP, 8 GPUs"] == round(fsdp_gib(seven, 8), 1)
    with pytest.raises(ValueError, match="no shape known"):
        prm_size("Qwen2.5-70B")
    with pytest.raises(ValueError, match="n_gpus"):
        fsdp_gib(seven, 0)


def test_export_writes_trl_stepwise_supervision_files(tmp_path):
    from prm_lib.data import read_trl

    out = subprocess.run([sys.executable, "-m", "prm_lib", "export", "--preset", "tiny", "--out", str(tmp_path)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    train_set, val_set = build_data(preset("tiny"))
    assert summary["train"] == len(train_set) and summary["validation"] == len(val_set)
    first = json.loads((tmp_path / "train.jsonl").read_text().splitlines()[0])
    assert set(first) == {"prompt", "completions", "labels"}  # TRL's stepwise-supervision columns
    assert all(isinstance(x, bool) for x in first["labels"]) and len(first["labels"]) == len(first["completions"])
    back = read_trl(tmp_path / "train.jsonl")
    assert [(s.problem, s.steps, s.first_error) for s in back] == [(s.problem, s.steps, s.first_error) for s in train_set]
