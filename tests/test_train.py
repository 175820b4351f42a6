"""Trainer, zoo and CLI, on the tiny preset (seconds)."""

import dataclasses
import json
import math
import os
import re
import subprocess
import sys

import pytest
import torch

from prm_lib.cli import main as cli
from prm_lib.metrics import auroc
from prm_lib.model import ProcessRewardModel
from prm_lib.objectives import last_step_mask
from prm_lib.batching import length_bucketed_batches
from prm_lib.train import SYNTHETIC_FIELDS, TrainConfig, Trainer, train
from prm_lib.training_data import build_data
from prm_lib.zoo import PRESETS, config_hash, effective_config, load_or_train, preset, zoo_path

TINY = preset("tiny")


def test_training_lowers_the_loss_and_evaluates_on_held_out_problems():
    result = train(dataclasses.replace(TINY, max_steps=40), progress=False)
    first = sum(h["loss"] for h in result.history[:5]) / 5
    last = sum(h["loss"] for h in result.history[-5:]) / 5
    assert last < first
    assert [e["step"] for e in result.evals] == [15, 30, 40]
    # the final evaluation is the returned model's step AUROC on the validation set (recomputed here)
    _, val = build_data(TINY)
    probs = result.model.score_batch([s.as_item() for s in val])
    flat = [p for row in probs for p in row]
    truth = [t >= 0.5 for s in val for t in s.targets]
    assert result.final["step_auroc"] == pytest.approx(auroc(flat, truth), abs=1e-6)
    assert result.final["step_auroc"] != result.evals[0]["step_auroc"]  # read from the trained weights
    assert result.final["n_solutions"] == TINY.data.n_val and result.final["n_steps"] == len(flat)


def test_deterministic_from_a_seed():
    a = train(TINY, progress=False)
    b = train(TINY, progress=False)
    assert [h["loss"] for h in a.history] == [h["loss"] for h in b.history]


def test_resume_ends_where_an_uninterrupted_run_ends(tmp_path):
    config = dataclasses.replace(TINY, save_every=5)
    full = train(config, progress=False)

    class Crash(Exception):
        pass

    def crash(step, metrics):  # dies at the step-15 evaluation, before that step's checkpoint
        raise Crash

    tr, va = build_data(config)
    torch.manual_seed(config.seed)
    model = ProcessRewardModel.from_backbone(config.backbone, n_layers=config.n_layers)
    with pytest.raises(Crash):
        Trainer(model, tr, va, config, out_dir=tmp_path, progress=False, on_eval=crash).fit()
    torch.manual_seed(config.seed)
    fresh = ProcessRewardModel.from_backbone(config.backbone, n_layers=config.n_layers)
    trainer = Trainer(fresh, tr, va, config, out_dir=tmp_path, progress=False)
    assert trainer.resume() and trainer.step == 10
    resumed = trainer.fit()
    assert resumed.history[-1]["step"] == 30
    assert [h["loss"] for h in resumed.history] == pytest.approx([h["loss"] for h in full.history], abs=1e-5)
    # a finished run resumes at its end and trains no further
    again = Trainer(ProcessRewardModel.from_backbone(config.backbone), tr, va, config, out_dir=tmp_path, progress=False)
    assert again.resume() and again.step == 30


def test_resume_refuses_a_different_config(tmp_path):
    train(dataclasses.replace(TINY, max_steps=16), out_dir=tmp_path, progress=False)
    other = dataclasses.replace(TINY, lr=0.5)
    model = ProcessRewardModel.from_backbone(other.backbone)
    tr, va = build_data(other)
    with pytest.raises(ValueError, match="different training config"):
        Trainer(model, tr, va, other, out_dir=tmp_path, progress=False).resume()


def test_batches_cover_every_sample_once_per_epoch_and_group_lengths():
    lengths = [((i * 37) % 90) + 10 for i in range(500)]
    batches = length_bucketed_batches(lengths, 16, seed=0, epoch=0)
    assert sorted(i for b in batches for i in b) == list(range(500))
    spread = sum(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in batches) / len(batches)
    assert spread < 10  # sorted within windows: little padding
    assert batches != length_bucketed_batches(lengths, 16, seed=0, epoch=1)


def test_orm_reads_only_the_last_step():
    mask = torch.tensor([[True, True, True], [True, False, False]])
    assert last_step_mask(mask).tolist() == [[False, False, True], [True, False, False]]
    config = preset("tiny-orm")
    result = train(config, progress=False)
    # the ORM's evaluation: its last step's score against the outcome (final answer right?), not step labels
    _, val = build_data(config)
    last = [row[-1] for row in result.model.score_batch([s.as_item() for s in val])]
    outcome = [s.meta["answer"] == s.meta["final_answer"] for s in val]
    assert outcome != [s.is_correct for s in val]  # the data hold solutions whose steps and outcome disagree
    assert result.final["outcome_auroc"] == pytest.approx(auroc(last, outcome), abs=1e-6)
    assert result.final["n_solutions"] == config.data.n_val and "step_auroc" not in result.final
    assert result.model.objective == "orm"


def test_zoo_trains_once_then_loads(tmp_path, monkeypatch):
    monkeypatch.setenv("PRM_LIB_CACHE", str(tmp_path))
    model, metrics = load_or_train("tiny", progress=False)
    (folder,) = list((tmp_path / "zoo").iterdir())
    assert folder.name == f"tiny-{config_hash(TINY)}"
    stamp = (folder / "metrics.json").stat().st_mtime_ns
    again, metrics2 = load_or_train("tiny", progress=False)
    assert (folder / "metrics.json").stat().st_mtime_ns == stamp and metrics2 == metrics
    items = [("Sam has 3 coins. Sam gets 2 more. How many coins does Sam have now?", ["After getting 2 more: 3 + 2 = 5.", "The answer is 5."])]
    assert again.score_batch(items) == model.score_batch(items)


def test_train_seed_variable_moves_the_zoo_to_another_model(tmp_path, monkeypatch):
    monkeypatch.setenv("PRM_LIB_CACHE", str(tmp_path))
    default = zoo_path("tiny", TINY)
    monkeypatch.setenv("PRM_LIB_TRAIN_SEED", "1")
    assert effective_config(TINY).seed == 1 and TINY.seed == 0
    assert zoo_path("tiny", TINY) == tmp_path / "zoo" / f"tiny-{config_hash(dataclasses.replace(TINY, seed=1))}"
    assert zoo_path("tiny", TINY) != default
    monkeypatch.setenv("PRM_LIB_TRAIN_SEED", "one")
    with pytest.raises(ValueError, match="PRM_LIB_TRAIN_SEED must be an integer"):
        zoo_path("tiny", TINY)


def test_config_hash_changes_with_any_setting():
    changes = dict(lr=TINY.lr * 2, head_lr=TINY.head_lr * 2, batch_size=TINY.batch_size + 1, max_steps=TINY.max_steps + 1,
                   seed=TINY.seed + 1, n_layers=1, backbone="smollm2-135m", objective="orm", separator="\n",
                   freeze_embeddings=not TINY.freeze_embeddings, surprise=not TINY.surprise, pos_weight=0.5,
                   mask_after_first_error=True, grad_accum=2,
                   data=dataclasses.replace(TINY.data, n_train=TINY.data.n_train + 1))
    hashes = {name: config_hash(dataclasses.replace(TINY, **{name: value})) for name, value in changes.items()}
    assert len(set(hashes.values()) | {config_hash(TINY)}) == len(changes) + 1, hashes
    assert config_hash(TINY) == config_hash(preset("tiny"))  # and the same config hashes the same


def test_bad_config_is_named():
    with pytest.raises(ValueError, match="objective must be .prm. or .orm., not .dpo."):
        TrainConfig(objective="dpo")
    with pytest.raises(ValueError, match="max_steps must be at least 1"):
        TrainConfig(max_steps=0)
    with pytest.raises(ValueError, match="unknown preset 'huge'"):
        preset("huge")


def test_cli_train_writes_a_loadable_checkpoint_and_metrics(tmp_path, capsys):
    out = tmp_path / "run"
    assert cli(["train", "--preset", "tiny", "--out", str(out), "--max-steps", "10", "--eval-every", "5", "--no-progress"]) == 0
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["config"]["max_steps"] == 10 and len(metrics["history"]) == 10
    assert line["step"] == 10
    prm = ProcessRewardModel.load(out)
    assert len(prm.score("P?", ["a.", "b."])) == 2


def test_cli_help_documents_presets_and_every_option(capsys):
    with pytest.raises(SystemExit):
        cli(["train", "--help"])
    text = capsys.readouterr().out
    for name, entry in PRESETS.items():
        assert f"  {name} " in text and entry.description in text
    settings = " ".join(text[text.index("settings (override"):].split())
    cpu, own = preset("cpu"), TrainConfig()

    def typed(value):
        return value.encode("unicode_escape").decode() if isinstance(value, str) else value

    for f in dataclasses.fields(TrainConfig):
        if f.name == "data":
            continue
        flag = "--" + f.name.replace("_", "-")
        m = re.search(re.escape(flag) + r"(?:, --no-\S+)? (?:[A-Z=,.]+ |\{[a-z,]+\} )?\(([^()]*(?:\([^()]*\)[^()]*)*)\)", settings)
        assert m, flag
        # a file run's default (the settings for a user's own backbone), and the cpu preset's where it differs
        mine, course = getattr(own, f.name), getattr(cpu, f.name)
        expected = (f"default: {typed(mine)}" if mine == course else
                    f"default: {typed(mine)} with --train-file, else the preset's (cpu: {typed(course)})")
        assert m.group(1).endswith(expected), m.group(0)
    assert "n_layers" in {f.name for f in dataclasses.fields(TrainConfig)}
    assert "default: None with --train-file, else the preset's (cpu: 8)" in settings
    for flag, name in SYNTHETIC_FIELDS.items():
        m = re.search(re.escape("--" + flag.replace("_", "-")) + r"(?:, --no-\S+)? (?:[A-Z=,.]+ |\{[a-z,]+\} )?\(([^()]*(?:\([^()]*\)[^()]*)*)\)",
                      settings)
        assert m and m.group(1).endswith(f"default: the preset's value; cpu's is {getattr(cpu.data, name)}"), flag
    assert "--train-file" in text and "--val-file" in text and "--format" in text


def test_cli_export_writes_math_shepherd_as_jsonl_that_reads_back(tmp_path, capsys):
    from prm_lib.data import read_math_shepherd

    assert cli(["export", "--preset", "tiny", "--format", "math-shepherd", "--out", str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["train.jsonl", "validation.jsonl"]
    train_set, val_set = build_data(TINY)
    back = read_math_shepherd(tmp_path / "validation.jsonl")
    assert [s.steps for s in back] == [s.steps for s in val_set]
    assert len(read_math_shepherd(tmp_path / "train.jsonl")) == len(train_set)


def test_cli_convert(tmp_path, capsys):
    from pathlib import Path

    src = Path(__file__).parent / "fixtures" / "math_shepherd.jsonl"
    assert cli(["convert", str(src), str(tmp_path / "o.jsonl"), "--from", "math-shepherd", "--to", "trl"]) == 0
    assert json.loads(capsys.readouterr().out)["written"] == 2


def test_cli_reports_bad_input_clearly(tmp_path, capsys):
    assert cli(["score", "--checkpoint", str(tmp_path), "--problem", "P?", "--step", "a."]) == 2
    assert "prm_config.json is missing" in capsys.readouterr().err


# ---- GPU options: token-budget batches, and one dynamic-shape compilation ---------------------------------
@pytest.mark.parametrize("max_tokens, multiple", [(64, 1), (300, 8), (1000, 8), (5, 1)])
def test_token_budget_batches_cover_every_sample_once_and_keep_the_budget(max_tokens, multiple):
    from prm_lib.batching import token_budget_batches

    rng = __import__("random").Random(0)
    lengths = [rng.randint(3, 120) for _ in range(500)]
    batches = token_budget_batches(lengths, max_tokens, seed=0, epoch=0, pad_to_multiple_of=multiple)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    for b in batches:
        width = -(-max(lengths[i] for i in b) // multiple) * multiple
        assert len(b) == 1 or len(b) * width <= max_tokens
    real = sum(lengths)
    padded = sum(len(b) * -(-max(lengths[i] for i in b) // multiple) * multiple for b in batches)
    if max_tokens >= 300:
        assert 1 - real / padded < 0.15  # sorted within windows: little padding
    assert batches == token_budget_batches(lengths, max_tokens, seed=0, epoch=0, pad_to_multiple_of=multiple)
    assert batches != token_budget_batches(lengths, max_tokens, seed=0, epoch=1, pad_to_multiple_of=multiple)
    capped = token_budget_batches(lengths, max_tokens, seed=0, epoch=0, pad_to_multiple_of=multiple, max_batch=3)
    assert max(len(b) for b in capped) <= 3


@pytest.mark.parametrize("implicit", [False, True], ids=["cpu-positions", "cuda-positions"])
def test_compiled_training_takes_every_width_in_one_graph(monkeypatch, implicit):
    from torch._dynamo.utils import counters

    import prm_lib.train as train_module

    # aot_eager: dynamo's tracing and autograd's graphs as on a GPU, without generating kernels (seconds on a CPU)
    monkeypatch.setattr(train_module, "COMPILE_OPTIONS", {"dynamic": True, "backend": "aot_eager"})
    torch._dynamo.reset()
    counters.clear()
    config = TINY.replace(compile=True, n_train=64, n_val=4)
    torch.manual_seed(0)
    prm = ProcessRewardModel.from_backbone("tiny-qwen2", device="cpu")
    prm.implicit_positions = implicit  # True: the path CUDA takes (no positions, a prepared "no mask")
    train_set, val_set = build_data(config)
    trainer = Trainer(prm, train_set, val_set, config, progress=False)
    assert trainer.pad_to_multiple_of == 8
    widths = set()
    prm.train()  # as train_step sets it (a change of mode is a new graph)
    for step in range(5):
        batch = prm.collate([trainer.train_enc[i] for i in trainer.batch_at(step)], pad_to_multiple_of=8)
        widths.add(batch.input_ids.shape[1])
        eager = prm(batch)  # the uncompiled model on the same batch
        compiled = trainer.forward(batch)
        assert torch.allclose(eager, compiled, atol=1e-5)
        assert torch.isfinite(trainer.train_step(batch))
    # every width in one graph per block kind: the first block (its input, from the frozen embeddings, needs
    # no gradient) and all the others
    assert len(widths) > 2 and counters["stats"]["unique_graphs"] == 2
    torch._dynamo.reset()


def test_trainer_token_budget_option_covers_each_epoch_and_is_a_pure_function_of_the_step():
    config = TINY.replace(n_train=120, n_val=8, max_steps=4)
    torch.manual_seed(0)
    prm = ProcessRewardModel.from_backbone("tiny-qwen2", device="cpu")
    train_set, val_set = build_data(config)
    a = Trainer(prm, train_set, val_set, config, progress=False)
    a.tokens_per_batch = 600
    b = Trainer(prm, train_set, val_set, config, progress=False)
    b.tokens_per_batch = 600
    steps = [a.batch_at(s) for s in range(200)]
    assert [b.batch_at(s) for s in reversed(range(200))][::-1] == steps  # any order of asking: same batches
    seen, epochs = [], 0
    for batch in steps:
        assert len(batch) == 1 or len(batch) * max(a.lengths[i] for i in batch) <= 600
        seen.extend(batch)
        if len(seen) == len(train_set):
            assert sorted(seen) == list(range(len(train_set)))
            seen, epochs = [], epochs + 1
    assert epochs >= 2
    assert a.batch_at(0) != Trainer(prm, train_set, val_set, config, progress=False).batch_at(0)  # the option is off by default
    result = a.fit()
    assert len(result.history) == 4 and all(math.isfinite(h["loss"]) for h in result.history)


# ---- the trainer's optimizer, frozen embeddings, compile padding and loss options ------------------------
SMALL = TINY.replace(n_train=32, n_val=4, max_steps=4, eval_every=4)


def small_trainer(evaluate=True, **changes):
    config = dataclasses.replace(SMALL, **changes)
    torch.manual_seed(0)
    prm = ProcessRewardModel.from_backbone("tiny-qwen2", device="cpu")
    train_set, val_set = build_data(config)
    return Trainer(prm, train_set, val_set if evaluate else [], config, progress=False)


@pytest.mark.parametrize("freeze", [True, False])
def test_optimizer_gives_the_backbone_lr_and_the_new_head_head_lr(freeze):
    trainer = small_trainer(freeze_embeddings=freeze, lr=1e-4, head_lr=3e-3, weight_decay=0.05)
    model = trainer.model
    body, head = trainer.optimizer.param_groups
    assert (body["initial_lr"], head["initial_lr"]) == (1e-4, 3e-3)
    assert body["weight_decay"] == head["weight_decay"] == 0.05  # one decay for both groups, as configured
    ids = lambda params: {id(p) for p in params}  # noqa: E731
    assert ids(head["params"]) == ids(model.value_head.parameters())
    embedding = model.backbone.get_input_embeddings().weight
    trainable = [p for p in model.backbone.parameters() if p is not embedding]
    assert ids(body["params"]) == ids(trainable) | (set() if freeze else {id(embedding)})
    # the first step's learning rates follow warmup: (step 1) / warmup_steps of each group's own rate
    assert [g["lr"] for g in trainer.optimizer.param_groups] == pytest.approx([1e-4 / 5, 3e-3 / 5])


@pytest.mark.parametrize("freeze", [True, False])
def test_frozen_embeddings_stay_as_loaded_and_the_rest_trains(freeze):
    trainer = small_trainer(freeze_embeddings=freeze)
    model = trainer.model
    embedding = model.backbone.get_input_embeddings().weight
    before_embedding, before_head = embedding.detach().clone(), model.value_head.weight.detach().clone()
    before_layer = next(model.backbone.layers.parameters()).detach().clone()
    trainer.fit()
    assert embedding.requires_grad is not freeze
    assert torch.equal(embedding, before_embedding) is freeze
    assert not torch.equal(model.value_head.weight, before_head)
    assert not torch.equal(next(model.backbone.layers.parameters()), before_layer)


def test_compile_pads_every_training_batch_to_a_multiple_of_8(monkeypatch):
    import prm_lib.train as train_module

    # the eager backend: compile's wrapping without generating code (what is tested is the padding)
    monkeypatch.setattr(train_module, "COMPILE_OPTIONS", {"dynamic": True, "backend": "eager"})
    torch._dynamo.reset()
    widths = {}
    for compiled in (False, True):
        trainer = small_trainer(evaluate=False, compile=compiled)  # only the training batches
        real_collate = trainer.model.collate
        seen = widths.setdefault(compiled, [])

        def recording(encoded, *args, **kwargs):
            batch = real_collate(encoded, *args, **kwargs)
            seen.append((batch.input_ids.shape[1], max(len(e) for e in encoded)))
            return batch

        trainer.model.collate = recording
        trainer.fit()
        assert trainer.pad_to_multiple_of == (8 if compiled else 1)
    torch._dynamo.reset()
    assert all(w % 8 == 0 and longest <= w < longest + 8 for w, longest in widths[True])
    assert all(w == longest for w, longest in widths[False])
    assert any(longest % 8 for _, longest in widths[True])  # some batch really needed padding


def test_collate_pads_to_a_multiple_without_moving_the_steps(qwen_tokenizer):
    from prm_lib.batching import collate
    from prm_lib.steps import encode_solutions

    enc = encode_solutions(qwen_tokenizer, [("P?", ["a.", "b c d."]), ("Q?", ["e."])], None, labels=[[1, 0], [1]])
    plain, padded = collate(enc, 0), collate(enc, 0, pad_to_multiple_of=8)
    width = plain.input_ids.shape[1]
    assert padded.input_ids.shape[1] == -(-width // 8) * 8 and padded.input_ids.shape[1] % 8 == 0
    assert torch.equal(padded.input_ids[:, :width], plain.input_ids) and (padded.input_ids[:, width:] == 0).all()
    assert torch.equal(padded.step_positions, plain.step_positions) and torch.equal(padded.labels, plain.labels)
    assert padded.n_tokens == plain.n_tokens


@pytest.mark.parametrize("option, value", [("pos_weight", 3.0), ("mask_after_first_error", True),
                                           ("later_step_weight", 1.0), ("ranking_weight", 1.0)])
def test_each_loss_option_reaches_the_trainers_loss_and_changes_training(option, value):
    from prm_lib.loss import prm_loss

    base, varied = small_trainer(), small_trainer(**{option: value})
    # a batch with wrong steps followed by more steps, where every option has something to change
    enc = [e for e in base.train_enc if 0.0 in e.labels[:-1]][:6]
    assert len(enc) >= 2
    batch = base.model.collate(enc)
    base.model.eval(), varied.model.eval()
    with torch.no_grad():
        logits = base.model(batch)
        expected = prm_loss(logits, batch.labels, batch.step_mask, **{option: value})
        assert float(varied.loss_on(batch)) == pytest.approx(float(expected), abs=1e-6)
        assert float(varied.loss_on(batch)) != pytest.approx(float(base.loss_on(batch)), abs=1e-4)
    a, b = base.fit(), varied.fit()
    assert not torch.equal(a.model.value_head.weight, b.model.value_head.weight)


def test_test_set_is_the_chapters_held_out_split():
    from prm_lib.synthetic import split_of
    from prm_lib.training_data import test_set
    from prm_lib.zoo import preset

    config = preset("cpu-reader")
    test = test_set(config, n=50)
    assert [s.as_item() for s in test] == [s.as_item() for s in test_set(config, n=50)]  # every chapter's same set
    assert {split_of(s.problem) for s in test} == {"test"} and len(test) == 50
    assert max(s.meta["n_ops"] for s in test) <= config.data.max_ops
    train_set, _ = build_data(TINY)
    assert not {s.problem for s in test} & {s.problem for s in train_set}  # never a training problem
    validation = test_set(config, n=50, split="validation")
    assert not {s.problem for s in test} & {s.problem for s in validation}
    assert 15 <= sum(not s.is_correct for s in test) <= 35
    with pytest.raises(ValueError, match="split must be one of"):
        test_set(config, split="train")


def test_two_processes_that_need_one_model_train_it_once(tmp_path):
    # two chapters run side by side (make nbval) on an empty cache: the second waits for the first's model
    code = "from prm_lib.zoo import load_or_train; load_or_train('tiny')"
    env = {**os.environ, "PRM_LIB_CACHE": str(tmp_path), "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"}
    procs = [subprocess.Popen([sys.executable, "-c", code], env=env, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    logs = [p.communicate(timeout=600)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], logs
    trained = [log.count("prm_lib.zoo: trained 'tiny'") for log in logs]
    assert sorted(trained) == [0, 1], logs
    assert len(list((tmp_path / "zoo").iterdir())) == 1


def test_a_course_model_on_an_empty_cache_gets_its_measured_time_scaled_by_this_machine(tmp_path, monkeypatch):
    from prm_lib.course.models import course_models
    from prm_lib.zoo import REFERENCE_TIMES, estimate

    monkeypatch.setenv("PRM_LIB_CACHE", str(tmp_path))
    reference = json.loads(REFERENCE_TIMES.read_text())
    (name, config), (other, other_config) = course_models()[:2]
    folder = zoo_path(name, config).name
    minutes = reference["models"][folder]["minutes"]
    assert estimate(config, folder) == f"about {minutes:.0f} min, as on {reference['machine']}"
    # this machine trained another course model at half the recording machine's speed: twice the time
    done = zoo_path(other, other_config)
    done.mkdir(parents=True)
    rate = reference["models"][done.name]["tokens_per_second"] / 2
    (done / "metrics.json").write_text(json.dumps({"config": {}, "tokens_per_second": rate, "history": [{}]}))
    assert estimate(config, folder).startswith(f"about {2 * minutes:.0f} min here ({minutes:.1f} min on ")
    # a model the course does not train: no measured time, and nothing of its backbone cached
    assert estimate(TINY, zoo_path("tiny", TINY).name).startswith("no estimate yet")
