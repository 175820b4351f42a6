"""ProcessRewardModel: shapes, padding invariance, save/load, bad input."""

import copy
import math
import warnings

import pytest
import torch

from prm_lib.backbones import KNOWN_BACKBONES, load_backbone
from prm_lib.batching import BatchPolicy, plan_batches
from prm_lib.model import ProcessRewardModel

ITEMS = [
    ("What's 15% of 80?", ["15% means 15/100 = 0.15.", "Multiply: 0.15 × 80.", "0.15 × 80 = 15 × 8 = 120.",
                           "Wait, that's too high. Let me check: 0.15 × 80 = 12."]),
    ("What is 2 + 3?", ["2 + 3 = 5."]),
    ("What is 7 × 8?", ["I need to multiply 7 by 8.", "7 × 8 = 54.", "Wait, let me check: 7 × 8 = 56.",
                        "The answer is 56."]),
    ("What is 12 / 4?", ["I need to divide 12 by 4.", "12 / 4 = 4.", "The answer is 4."]),
]
WIDE = BatchPolicy(max_tokens=10**6, max_padding=1.0, max_batch=64)  # force real padding


def one_by_one(prm):
    return [prm.score(p, s) for p, s in ITEMS]


def assert_close(a, b, tol=1e-5):
    assert [len(x) for x in a] == [len(x) for x in b]
    for x, y in zip(a, b):
        for u, v in zip(x, y):
            assert abs(u - v) <= tol, (x, y)


def test_one_probability_per_step(tiny_prm):
    scores = tiny_prm.score_batch(ITEMS)
    assert [len(s) for s in scores] == [len(steps) for _, steps in ITEMS]
    assert all(0.0 < p < 1.0 for s in scores for p in s)


def test_forward_shapes(tiny_prm):
    batch = tiny_prm.collate(tiny_prm.encode(ITEMS))
    logits = tiny_prm(batch)
    assert logits.shape == (len(ITEMS), max(len(s) for _, s in ITEMS))
    assert logits.dtype == torch.float32
    assert batch.step_mask.sum().item() == sum(len(s) for _, s in ITEMS)


@pytest.mark.parametrize("side", ["left", "right"])
@pytest.mark.parametrize("which", ["tiny", "smollm2"])
def test_padding_side_gives_one_at_a_time_scores(which, side, tiny_prm, smollm2_prm):
    prm = tiny_prm if which == "tiny" else smollm2_prm
    assert_close(prm.score_batch(ITEMS, policy=WIDE, padding_side=side), one_by_one(prm))


def test_batch_plan_covers_every_solution_once():
    lengths = [5, 50, 51, 49, 200, 7, 7, 7, 120]
    for policy in (WIDE, BatchPolicy.for_device(torch.device("cpu")), BatchPolicy(10**6, 0.0, 1)):
        plan = plan_batches(lengths, policy)
        assert sorted(i for b in plan for i in b) == list(range(len(lengths)))
        for b in plan:
            assert len(b) <= policy.max_batch
            width = max(lengths[i] for i in b)
            if len(b) > 1:
                assert width * len(b) <= policy.max_tokens
                assert 1 - sum(lengths[i] for i in b) / (width * len(b)) <= policy.max_padding + 1e-9


def test_save_load_untouched_backbone_saves_only_its_name(tiny_prm, tmp_path):
    prm = copy.deepcopy(tiny_prm)
    with torch.no_grad():
        prm.value_head.weight.mul_(3.0)
    prm.save(tmp_path)
    assert not (tmp_path / "backbone").exists()
    loaded = ProcessRewardModel.load(tmp_path)
    assert loaded.separator == prm.separator and loaded.max_length == prm.max_length
    assert_close(loaded.score_batch(ITEMS), prm.score_batch(ITEMS), tol=0.0)


def test_save_load_trained_backbone_keeps_its_weights(tiny_prm, tmp_path):
    prm = copy.deepcopy(tiny_prm)
    prm.separator = "\n"
    assert prm.backbone_is_pretrained()
    with torch.no_grad():
        prm.backbone.layers[0].mlp.up_proj.weight.add_(0.05)  # as a training step would, seen without a mark
    assert not prm.backbone_is_pretrained()
    prm.save_pretrained(tmp_path)
    assert (tmp_path / "backbone" / "config.json").exists()
    loaded = ProcessRewardModel.from_pretrained(tmp_path)
    assert not loaded.backbone_is_pretrained()  # saved again, it keeps its weights
    assert loaded.separator == "\n"
    assert_close(loaded.score_batch(ITEMS), prm.score_batch(ITEMS), tol=0.0)
    assert not math.isclose(loaded.score(*ITEMS[0])[0], tiny_prm.score(*ITEMS[0])[0], abs_tol=1e-7)


def test_load_of_a_folder_that_is_no_checkpoint(tmp_path):
    with pytest.raises(FileNotFoundError, match="prm_config.json is missing"):
        ProcessRewardModel.load(tmp_path)


def test_load_names_what_an_incomplete_checkpoint_lacks(tiny_prm, tmp_path):
    import shutil

    prm = copy.deepcopy(tiny_prm)
    prm.mark_backbone_changed()
    prm.save(tmp_path / "a")
    shutil.rmtree(tmp_path / "a" / "backbone")
    with pytest.raises(FileNotFoundError, match=r"incomplete ProcessRewardModel checkpoint: backbone/ \(the trained"):
        ProcessRewardModel.load(tmp_path / "a")
    tiny_prm.save(tmp_path / "b")
    (tmp_path / "b" / "value_head.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="value_head.safetensors missing"):
        ProcessRewardModel.from_pretrained(tmp_path / "b")


def test_a_weight_changed_in_place_is_seen_and_a_copy_keeps_what_it_knows(tiny_prm):
    prm = copy.deepcopy(tiny_prm)
    assert prm.backbone_is_pretrained() and copy.deepcopy(prm).backbone_is_pretrained()
    with torch.no_grad():
        prm.backbone.norm.weight.mul_(1.5)
    assert not prm.backbone_is_pretrained() and not copy.deepcopy(prm).backbone_is_pretrained()
    replaced = copy.deepcopy(tiny_prm)
    replaced.backbone.norm.weight = torch.nn.Parameter(replaced.backbone.norm.weight.detach() * 2)
    assert not replaced.backbone_is_pretrained()
    assert tiny_prm.backbone_is_pretrained()  # the original is untouched


def test_training_marks_the_backbone_changed_only_when_it_trains_it(tiny_prm):
    from prm_lib.data import PRMSample
    from prm_lib.train import TrainConfig, Trainer

    samples = [PRMSample("What is 2 + 3?", ["2 + 3 = 5.", "The answer is 5."], [1, 1])] * 2
    config = TrainConfig(backbone="tiny-qwen2", max_steps=1, eval_every=1, batch_size=2)
    for lr, changed in ((1e-3, True), (0.0, False)):
        prm = copy.deepcopy(tiny_prm)
        Trainer(prm, samples, samples, config.replace(lr=lr), progress=False)
        assert prm.backbone_changed is changed and prm.backbone_is_pretrained() is not changed, lr


def _tiny_body(kind, **config):
    from transformers import LlamaConfig, LlamaModel, Qwen2Config, Qwen2Model

    shape = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, vocab_size=100)
    torch.manual_seed(0)
    return (Qwen2Model(Qwen2Config(**shape, **config)) if kind == "qwen2" else LlamaModel(LlamaConfig(**shape, **config)))


def test_no_mask_mapping_is_taken_only_where_the_backbone_reads_it_as_no_mask():
    from prm_lib.model import _no_mask_mapping

    assert _no_mask_mapping(_tiny_body("qwen2")) == {"full_attention": None}
    assert _no_mask_mapping(_tiny_body("llama")) is None  # Llama builds its own mask from what it is given
    sliding = _tiny_body("qwen2", use_sliding_window=True, sliding_window=4, max_window_layers=0)
    assert _no_mask_mapping(sliding) is None

    class Refuses(torch.nn.Module):  # a forward that cannot take a mapping
        def __init__(self):
            super().__init__()
            self.body = _tiny_body("qwen2")
            self.config = self.body.config

        def forward(self, input_ids, attention_mask=None, **kwargs):
            if isinstance(attention_mask, dict):
                raise TypeError("attention_mask must be a tensor")
            return self.body(input_ids=input_ids, attention_mask=attention_mask, **kwargs)

    class Misreads(Refuses):  # one that runs but reads the mapping as something else (here: attend to nothing)
        def forward(self, input_ids, attention_mask=None, **kwargs):
            if isinstance(attention_mask, dict):
                attention_mask = torch.zeros_like(input_ids)
            return self.body(input_ids=input_ids, attention_mask=attention_mask, **kwargs)

    assert _no_mask_mapping(Refuses()) is None and _no_mask_mapping(Misreads()) is None
    body = _tiny_body("qwen2")
    body.train()
    _no_mask_mapping(body)
    assert body.training  # the check leaves the mode as it found it


def test_over_long_solution_scores_nan_for_cut_steps(tiny_prm):
    prm = copy.deepcopy(tiny_prm)
    steps = [f"Step {i}: {i} + 1 = {i + 1}." for i in range(12)]
    full = prm.score("Count up.", steps)
    prm.max_length = prm.encode([("Count up.", steps)])[0].step_end_positions[4] + 1
    with pytest.warns(UserWarning, match="scored its first 5 of 12 steps"):
        cut = prm.score("Count up.", steps)
    assert len(cut) == 12
    assert all(math.isnan(p) for p in cut[5:])
    assert cut[:5] == pytest.approx(full[:5], abs=1e-6)


def test_tokenizer_without_pad_token_gets_one_and_says_so(tiny_prm):
    tokenizer = copy.deepcopy(tiny_prm.tokenizer)
    tokenizer.pad_token = None
    assert tokenizer.pad_token_id is None
    with pytest.warns(UserWarning, match="had no pad token"):
        prm = ProcessRewardModel(tiny_prm.backbone, tokenizer)
    assert prm.tokenizer.pad_token_id is not None


def test_unknown_backbone_lists_the_known_ones():
    with pytest.raises(ValueError) as err:
        load_backbone("gpt-7")
    for name in KNOWN_BACKBONES:
        assert name in str(err.value)


def test_n_layers_keeps_the_first_layers():
    model, _ = load_backbone("tiny-qwen2", n_layers=1)
    assert len(model.base_model.layers) == 1 and model.config.num_hidden_layers == 1
    with pytest.raises(ValueError, match="has 2 layers"):
        load_backbone("tiny-qwen2", n_layers=3)


def test_untrained_scores_are_deterministic():
    a = ProcessRewardModel.from_backbone("tiny-qwen2").score(*ITEMS[2])
    b = ProcessRewardModel.from_backbone("tiny-qwen2").score(*ITEMS[2])
    assert a == b


def test_no_warning_on_normal_scoring(tiny_prm):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tiny_prm.score_batch(ITEMS)


# ---- collate: the vectorised build gives the tensors a per-row build gives ----------------------------------
def _collate_per_row(encoded, pad_token_id, padding_side="right", pad_to_multiple_of=1):
    """collate built one row at a time, the plainest way: what the vectorised collate must equal."""
    n = len(encoded)
    width = max(len(e.input_ids) for e in encoded)
    width = -(-width // pad_to_multiple_of) * pad_to_multiple_of
    n_steps = max(e.n_scored for e in encoded)
    input_ids = torch.full((n, width), pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros((n, width), dtype=torch.long)
    step_positions = torch.zeros((n, n_steps), dtype=torch.long)
    step_mask = torch.zeros((n, n_steps), dtype=torch.bool)
    has_labels = all(e.labels is not None for e in encoded)
    labels = torch.zeros((n, n_steps), dtype=torch.float32) if has_labels else None
    for row, e in enumerate(encoded):
        length, k = len(e.input_ids), e.n_scored
        offset = width - length if padding_side == "left" else 0
        input_ids[row, offset : offset + length] = torch.tensor(e.input_ids)
        attention_mask[row, offset : offset + length] = 1
        step_positions[row, :k] = torch.tensor(e.step_end_positions) + offset
        step_mask[row, :k] = True
        if labels is not None:
            labels[row, :k] = torch.tensor(e.labels, dtype=torch.float32)
    position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)
    return input_ids, attention_mask, position_ids, step_positions, step_mask, labels


@pytest.mark.parametrize("side", ["left", "right"])
@pytest.mark.parametrize("multiple", [1, 8, 128])
@pytest.mark.parametrize("labels", [None, "hard", "soft"])
def test_collate_equals_the_per_row_reference(tiny_prm, side, multiple, labels):
    from prm_lib.batching import collate

    label_lists = None
    if labels == "hard":
        label_lists = [[1, -1, 1, 1][: len(s)] for _, s in ITEMS]
    elif labels == "soft":
        label_lists = [[0.1, 0.7, 1 / 3, 0.9][: len(s)] for _, s in ITEMS]
    encoded = tiny_prm.encode(ITEMS, labels=label_lists)
    for subset in (encoded, encoded[1:2], encoded[::-1]):
        got = collate(subset, 7, side, multiple)
        want = _collate_per_row(subset, 7, side, multiple)
        names = ("input_ids", "attention_mask", "position_ids", "step_positions", "step_mask", "labels")
        for name, w in zip(names, want):
            g = getattr(got, name)
            if w is None:
                assert g is None
            else:
                assert g.dtype == w.dtype and torch.equal(g, w), name


# ---- positions: explicit on the CPU (unchanged results), left to the backbone where asked (CUDA) ----------
def _captured(prm, batch):
    seen = {}
    handle = prm.backbone.register_forward_pre_hook(lambda m, a, kw: seen.update(kw), with_kwargs=True)
    try:
        prm(batch)
    finally:
        handle.remove()
    return seen


@pytest.mark.parametrize("which", ["tiny", "smollm2"])
def test_cpu_passes_explicit_positions_and_implicit_ones_score_the_same(which, tiny_prm, smollm2_prm):
    prm = tiny_prm if which == "tiny" else smollm2_prm
    batch = prm.collate(prm.encode(ITEMS))
    assert prm.implicit_positions is None
    seen = _captured(prm, batch)
    assert torch.equal(seen["position_ids"], batch.position_ids) and seen["attention_mask"] is None
    default = prm.score_batch(ITEMS, policy=WIDE)
    try:
        prm.implicit_positions = True  # what CUDA does
        seen = _captured(prm, batch)
        assert seen["position_ids"] is None
        # Qwen2 takes a prepared "no mask" mapping; SmolLM2's Llama class builds its own mask
        assert seen["attention_mask"] == ({"full_attention": None} if which == "tiny" else None)
        assert_close(prm.score_batch(ITEMS, policy=WIDE), default)
        left = prm.collate(prm.encode(ITEMS), padding_side="left")
        seen = _captured(prm, left)  # left padding needs its positions and mask
        assert torch.equal(seen["position_ids"], left.position_ids) and torch.equal(seen["attention_mask"], left.attention_mask)
    finally:
        prm.implicit_positions = None


def test_quiet_loading_hides_the_weight_bar_and_restores_the_setting():
    from transformers.utils import logging as hf_logging

    from prm_lib.backbones import quiet_loading

    hf_logging.enable_progress_bar()
    with quiet_loading():
        assert not hf_logging.is_progress_bar_enabled()
    assert hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # a caller who turned it off keeps it off
    with quiet_loading():
        pass
    assert not hf_logging.is_progress_bar_enabled()
    hf_logging.enable_progress_bar()


def test_hub_reachable_is_false_offline_and_follows_the_connection(monkeypatch):
    import socket

    from prm_lib.backbones import hub_reachable

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert hub_reachable() is False
    monkeypatch.delenv("HF_HUB_OFFLINE")
    calls = []

    def refuse(address, timeout):
        calls.append((address, timeout))
        raise OSError("Name or service not known")

    monkeypatch.setattr(socket, "create_connection", refuse)
    assert hub_reachable(timeout=0.5) is False and calls == [(("huggingface.co", 443), 0.5)]

    class Connection:
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    monkeypatch.setattr(socket, "create_connection", lambda address, timeout: Connection())
    assert hub_reachable() is True
