"""TRL 1.13's PRMTrainer on the files prm_lib exports: same scored tokens, and it trains (tiny-qwen2, CPU)."""

import json
import math
import subprocess
import sys

import pytest
import torch

from prm_lib.backbones import load_tokenizer
from prm_lib.steps import DEFAULT_SEPARATOR, encode_solution
from prm_lib.trl_interop import trl_prm_trainer


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    out = tmp_path_factory.mktemp("trl_data")
    done = subprocess.run([sys.executable, "-m", "prm_lib", "export", "--preset", "tiny", "--format", "trl", "--out", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return out


def test_trl_labels_the_tokens_prm_lib_scores(exported):
    from trl.experimental.prm import PRMTrainer

    tokenizer = load_tokenizer("tiny-qwen2")
    for line in (exported / "train.jsonl").read_text().splitlines()[:20]:
        record = json.loads(line)
        row = PRMTrainer.tokenize_row(record, tokenizer, DEFAULT_SEPARATOR, None, None, False, False)
        ours = encode_solution(tokenizer, record["prompt"], record["completions"])
        labelled = [i for i, label in enumerate(row["labels"]) if label != -100]
        assert [row["labels"][i] for i in labelled] == [int(x) for x in record["labels"]]
        # TRL puts no separator between prompt and first step; prm_lib does: the same tokens, shifted by it
        shift = len(tokenizer.encode(DEFAULT_SEPARATOR, add_special_tokens=False))
        p = len(tokenizer(record["prompt"], add_special_tokens=False)["input_ids"])
        assert row["input_ids"] == list(ours.input_ids[:p]) + list(ours.input_ids[p + shift:])
        assert [row["input_ids"][i] for i in labelled] == [ours.input_ids[i] for i in ours.step_end_positions]
        assert [i + shift for i in labelled] == list(ours.step_end_positions)


def test_trl_prm_trainer_trains_on_the_exported_files(exported, tmp_path):
    trainer = trl_prm_trainer(exported, tmp_path / "run", backbone="tiny-qwen2", max_steps=50)
    before = trainer.evaluate()["eval_loss"]
    head = trainer.model.score.weight.detach().clone()
    trainer.train()
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    assert trainer.state.global_step == 50 and len(losses) == 50 and all(math.isfinite(x) for x in losses)
    assert not torch.equal(head, trainer.model.score.weight.detach())
    after = trainer.evaluate()
    assert after["eval_loss"] < before - 0.01  # it learned something about held-out steps (0.64 -> 0.59)


def test_trl_prm_trainer_takes_the_pretrained_course_backbone(exported, tmp_path):
    # SmolLM2's fp32 folder is de-quantized from a GGUF file; a GGUF quantization_config left in its
    # config.json made transformers' Trainer refuse it as "purely quantized"
    trainer = trl_prm_trainer(exported, tmp_path / "run", backbone="smollm2-135m", n_layers=2, max_steps=1)
    assert not getattr(trainer.model, "is_quantized", False)
    assert trainer.model.dtype == torch.float32 and len(trainer.model.model.layers) == 2


def test_a_folder_converted_earlier_loses_its_quantization_config(tmp_path):
    from prm_lib.backbones import _drop_quantization_config

    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama", "quantization_config": {"quant_method": "gguf"}}))
    _drop_quantization_config(tmp_path)
    assert json.loads((tmp_path / "config.json").read_text()) == {"model_type": "llama"}
    _drop_quantization_config(tmp_path)  # a plain folder is left as it is
    assert json.loads((tmp_path / "config.json").read_text()) == {"model_type": "llama"}


def test_missing_exported_files_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="train.jsonl is missing"):
        trl_prm_trainer(tmp_path, tmp_path / "run")


def test_another_trl_release_is_refused_by_name(monkeypatch, tmp_path):
    import trl

    monkeypatch.setattr(trl, "__version__", "9.9.9")
    with pytest.raises(ImportError, match=r"trl 9\.9\.9 is installed; its PRM trainer is tested with 1\.13\.0 only"):
        trl_prm_trainer(tmp_path, tmp_path / "run")


def _migration_tables() -> list[list[list[str]]]:
    """The tables of README's "Moving from TRL's PRMTrainer", each a list of rows of cells."""
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = text.split("## Moving from TRL's PRMTrainer", 1)[1].split("\n## ", 1)[0]
    tables, rows = [], []
    for line in section.splitlines() + [""]:
        if line.startswith("|"):
            rows.append([c.strip() for c in line.strip("|").split("|")])
        elif rows:
            tables.append([r for r in rows[2:]])  # past the header and its rule
            rows = []
    return tables


def test_the_migration_page_names_real_prmconfig_fields_and_real_flags():
    import dataclasses
    import re

    from trl.experimental.prm import PRMConfig

    from prm_lib.cli import build_parser

    fields = {f.name for f in dataclasses.fields(PRMConfig)}
    train = build_parser()._subparsers._group_actions[0].choices["train"]
    flags = {s for a in train._actions for s in a.option_strings}
    fields_table, outside = _migration_tables()
    named = [n for row in fields_table for n in re.findall(r"`(\w+)`", row[0])]
    assert set(named) <= fields, set(named) - fields
    # the fields a PRM run uses, every one in the table
    used = {"learning_rate", "per_device_train_batch_size", "gradient_accumulation_steps", "num_train_epochs",
            "max_steps", "warmup_steps", "weight_decay", "max_grad_norm", "lr_scheduler_type", "bf16",
            "gradient_checkpointing", "logging_steps", "report_to", "eval_strategy", "eval_steps", "save_steps",
            "save_total_limit", "load_best_model_at_end", "metric_for_best_model", "seed", "max_length",
            "max_completion_length", "step_separator", "train_on_last_step_only", "dataset_num_proc"}
    assert used <= set(named), used - set(named)
    # what the page says is not a field (an argument, a callback, a field transformers 5 removed) is not one
    assert not {"peft_config", "early_stopping_patience", "warmup_ratio", "max_prompt_length"} & fields
    for row in fields_table + outside:
        for flag in re.findall(r"`(--[\w-]+)`", row[1]):
            assert flag in flags, f"{flag} (for {row[0]}) is not a prm_lib train flag"
        assert row[1] == "none" or re.search(r"`--", row[1]), row
