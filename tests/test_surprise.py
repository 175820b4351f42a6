"""Reading the frozen LM's surprise: what it measures, which tokens each step reads, training and saving."""

import dataclasses

import pytest
import torch

from prm_lib.model import ProcessRewardModel
from prm_lib.surprise import SurpriseReader
from prm_lib.synthetic import SEED_PROBLEMS, generate, split_of
from prm_lib.train import TrainConfig, Trainer
from prm_lib.training_data import build_data
from prm_lib.zoo import preset

ITEMS = [("What is 9 × 2?", ["I need to multiply 9 by 2.", "9 × 2 = 16.", "The answer is 16."]),
         ("What is 2 + 3?", ["2 + 3 = 5."]),
         ("What is 7 × 8?", ["I need to multiply 7 by 8.", "7 × 8 = 54.", "Wait, let me check: 7 × 8 = 56.",
                             "The answer is 56."])]


@pytest.fixture(scope="module")
def reading_prm():
    prm = ProcessRewardModel.from_backbone("tiny-qwen2", device="cpu", surprise_from="tiny-qwen2")
    with torch.no_grad():  # a gate that reads every token, so each test sees the surprise move a score
        prm.reader.gate[2].bias.fill_(1.0)
    return prm


def test_surprise_is_zero_where_the_lm_writes_its_own_first_choice(reading_prm):
    lm = reading_prm.surprise_source.lm
    ids = torch.tensor([[5, 17, 300]])
    with torch.no_grad():
        for _ in range(6):  # greedy continuation: every new token is the LM's first choice
            ids = torch.cat([ids, lm(input_ids=ids).logits[:, -1].argmax(-1, keepdim=True)], dim=1)
    surprise = reading_prm.surprise_source(ids)
    assert surprise.shape == ids.shape and surprise[0, 0] == 0
    assert torch.all(surprise[0, 3:].abs() < 1e-5)
    wrong = ids.clone()
    with torch.no_grad():
        second = lm(input_ids=ids[:, :5]).logits[0, -1].topk(2).indices[1]
    wrong[0, 5] = second  # the LM's second choice at position 5
    assert reading_prm.surprise_source(wrong)[0, 5] > 0


def test_each_step_reads_the_steps_so_far_and_never_the_problem():
    torch.manual_seed(0)
    reader = SurpriseReader(8)
    with torch.no_grad():
        reader.gate[2].bias.fill_(1.0)
    hidden, surprise = torch.randn(1, 12, 8), torch.rand(1, 12)
    steps, first = torch.tensor([[5, 8, 11]]), torch.tensor([3])
    base = reader(hidden, surprise, steps, first)
    assert base.shape == (1, 3) and torch.all(base > 0)
    in_problem = surprise.clone(); in_problem[0, 1:3] += 50.0
    assert torch.equal(reader(hidden, in_problem, steps, first), base)
    in_step_2 = surprise.clone(); in_step_2[0, 7] += 50.0  # token 7 belongs to the second step (6..8)
    moved = reader(hidden, in_step_2, steps, first)
    assert moved[0, 0] == base[0, 0] and moved[0, 1] > base[0, 1] + 1 and moved[0, 2] > base[0, 2] + 1


def test_cached_surprise_and_both_padding_sides_give_the_same_scores(reading_prm):
    direct = [reading_prm.score(p, s) for p, s in ITEMS]
    encoded = reading_prm.encode(ITEMS)
    reading_prm.attach_surprise(encoded)
    assert all(e.surprise is not None and len(e.surprise) == len(e) for e in encoded)
    fresh = reading_prm.encode(ITEMS)  # no surprise attached: the forward pass asks the frozen LM itself
    with torch.no_grad():
        computed = {side: torch.sigmoid(reading_prm(reading_prm.collate(fresh, side))) for side in ("left", "right")}
    for scores in (reading_prm.score_encoded(encoded), reading_prm.score_batch(ITEMS, padding_side="left"),
                   *[[row[: len(steps)].tolist() for row, (_, steps) in zip(computed[side], ITEMS)] for side in computed]):
        for a, b in zip(scores, direct):
            assert a == pytest.approx(b, abs=1e-5)


def test_one_frozen_lm_per_process_and_each_sequence_read_once(reading_prm):
    from prm_lib.surprise import LikelihoodScorer, SurpriseSource

    other = ProcessRewardModel.from_backbone("tiny-qwen2", device="cpu", surprise_from="tiny-qwen2")
    assert other.surprise_source is reading_prm.surprise_source
    assert LikelihoodScorer("tiny-qwen2", device="cpu").source is reading_prm.surprise_source
    assert SurpriseSource.shared("tiny-qwen2", device="cpu", n_layers=1) is not reading_prm.surprise_source
    source = reading_prm.surprise_source
    calls = []
    original = source._forward
    source._forward = lambda ids, *a, **k: calls.append(ids.shape[0]) or original(ids, *a, **k)
    try:
        ids = [[1001, 1002, 1003, 1004], [1001, 1002, 1003, 1004], [1005, 1006, 1007, 1008, 1009]]
        first = source.read(ids)
        again = source.read(ids[:2])
    finally:
        del source._forward
    assert sum(calls) == 2  # two distinct sequences, read once each
    assert torch.equal(first[0][0], again[1][0]) and torch.equal(first[0][1], first[1][1])


def test_the_reader_changes_scores_and_survives_save_and_load(reading_prm, tmp_path):
    plain = ProcessRewardModel.from_backbone("tiny-qwen2", device="cpu")
    assert reading_prm.score_batch(ITEMS) != plain.score_batch(ITEMS)
    reading_prm.save(tmp_path)
    loaded = ProcessRewardModel.load(tmp_path)
    assert loaded.reads_surprise and loaded.surprise_source.name == "tiny-qwen2"
    for a, b in zip(loaded.score_batch(ITEMS), reading_prm.score_batch(ITEMS)):
        assert a == pytest.approx(b, abs=1e-6)


def test_a_reader_head_does_not_load_into_a_prm_without_one(reading_prm, tmp_path):
    plain = ProcessRewardModel.from_backbone("tiny-qwen2", device="cpu")
    with pytest.raises(ValueError, match="reader tensors"):
        plain.load_head_state_dict(reading_prm.head_state_dict())


def test_training_moves_the_reader_and_never_the_frozen_lm():
    config = dataclasses.replace(preset("tiny"), surprise=True, max_steps=6, eval_every=6)
    model = ProcessRewardModel.from_backbone("tiny-qwen2", device="cpu", surprise_from="tiny-qwen2")
    gate, lm = copy_params(model.reader), copy_params(model.surprise_source.lm)
    train, val = build_data(config)
    trainer = Trainer(model, train, val, config, progress=False)
    assert all(e.surprise is not None for e in trainer.train_enc + trainer.val_enc)
    group_sizes = [len(g["params"]) for g in trainer.optimizer.param_groups]
    assert group_sizes[1] == 2 + len(list(model.reader.parameters()))  # the reader learns at the head's rate
    trainer.fit()
    assert any(not torch.equal(a, b) for a, b in zip(gate, model.reader.parameters()))
    assert all(torch.equal(a, b) for a, b in zip(lm, model.surprise_source.lm.parameters()))


def copy_params(module):
    return [p.detach().clone() for p in module.parameters()]


def test_surprise_setting_enters_the_cache_key():
    from prm_lib.zoo import config_hash

    assert TrainConfig().to_dict()["surprise"] is False and TrainConfig(surprise=True).to_dict()["surprise"] is True
    assert config_hash(TrainConfig()) != config_hash(TrainConfig(surprise=True))


def test_a_sequence_that_extends_one_read_before_runs_only_its_new_tokens():
    from prm_lib.surprise import MIN_PREFIX, PREFIX_MEMORY, SurpriseSource

    beams, whole = SurpriseSource("tiny-qwen2", device="cpu"), SurpriseSource("tiny-qwen2", device="cpu")
    gen = torch.Generator().manual_seed(0)
    problem = torch.randint(5, 900, (20,), generator=gen).tolist()
    round_1 = [problem + torch.randint(5, 900, (n,), generator=gen).tolist() for n in (6, 9)]
    round_2 = [s + torch.randint(5, 900, (n,), generator=gen).tolist() for s, n in zip(round_1 * 2, (4, 7, 1, 12))]
    beams.read(round_1)
    widths = []
    original = beams._forward
    beams._forward = lambda ids, *a, **k: widths.append(ids.shape[1]) or original(ids, *a, **k)
    try:
        extended = beams.read(round_2)
    finally:
        del beams._forward
    # one pass per shared prefix, each over the prefix's last token and the longest extension of it
    assert sorted(widths) == [1 + 4, 1 + 12]
    for (w, b), (w0, b0), seq in zip(extended, whole.read(round_2), round_2):
        assert len(w) == len(seq) and torch.allclose(w, w0, atol=1e-5) and torch.allclose(b, b0, atol=1e-5)
    # a call whose own new sequences fill the prefix memory still extends the prefixes it found
    crowd = [torch.randint(5, 900, (10,), generator=gen).tolist() for _ in range(PREFIX_MEMORY + 5)]
    late = [round_2[0] + [11, 12, 13]]
    (w, b), = beams.read(crowd + late)[-1:]
    (w0, b0), = whole.read(late)
    assert torch.allclose(w, w0, atol=1e-5) and torch.allclose(b, b0, atol=1e-5)
    short = [problem[: MIN_PREFIX - 2]]  # too short a shared start: read whole
    beams.read(short)
    assert beams._kept_prefix(tuple(problem[: MIN_PREFIX - 2] + [7, 8])) is None


def test_the_course_presets_never_train_on_the_seed_tutorials_problems():
    for name in ("cpu-reader", "gpu-qwen2.5-0.5b"):
        config = preset(name).replace(n_train=3000)
        assert config.data.hold_out_seed_problems and config.surprise and config.data.direct_rate > 0
        train, val = build_data(config)
        assert not {s.problem for s in train + val} & set(SEED_PROBLEMS), name
    # the same generator without the hold-out does write some of them (so the check above can fail)
    plain = generate(3000, seed=5, split=None, direct_rate=1.0)
    assert {s.problem for s in plain} & set(SEED_PROBLEMS)
    held = generate(3000, seed=5, split=None, direct_rate=1.0, held_out=SEED_PROBLEMS)
    assert not {s.problem for s in held} & set(SEED_PROBLEMS)


def test_surprise_kept_on_disk_is_read_back_for_the_same_solutions_only(reading_prm, tmp_path, monkeypatch):
    monkeypatch.setenv("PRM_LIB_CACHE", str(tmp_path))
    first = reading_prm.encode(ITEMS)
    reading_prm.attach_surprise(first, cache=True)
    path = reading_prm.surprise_source.cache_path([e.input_ids for e in reading_prm.encode(ITEMS)])
    assert path.exists() and path.parent.parent == tmp_path
    again = reading_prm.encode(ITEMS)
    reading_prm.attach_surprise(again, cache=True)
    assert [e.surprise for e in again] == [e.surprise for e in first]
    other = reading_prm.encode(ITEMS[:2])
    assert reading_prm.surprise_source.cache_path([e.input_ids for e in other]) != path


def test_error_weights_shift_the_kinds_and_bad_weights_are_named():
    from collections import Counter

    plain = Counter(s.meta["error_kind"] for s in generate(1200, seed=3, error_rate=1.0, split=None))
    slips = Counter(s.meta["error_kind"] for s in generate(1200, seed=3, error_rate=1.0, split=None,
                                                            error_weights={"arithmetic_slip": 3.0}))
    assert slips["arithmetic_slip"] > 2 * plain["arithmetic_slip"]
    assert generate(50, seed=3)[0].steps == generate(50, seed=3, error_weights=None)[0].steps
    with pytest.raises(ValueError, match="slips"):
        generate(5, error_weights={"slips": 2.0})
    with pytest.raises(ValueError, match="non-negative"):
        generate(5, error_weights={"arithmetic_slip": -1.0})


def test_times_table_probe_holds_facts_never_trained_on_right_and_slipped():
    from prm_lib.synthetic import times_table_probe

    probe = times_table_probe()
    assert probe and len(probe) % 2 == 0
    assert all(split_of(s.problem) != "train" for s in probe)
    for right, slipped in zip(probe[::2], probe[1::2]):
        assert right.problem == slipped.problem and right.labels == [1, 1, 1] and slipped.labels == [1, -1, -1]
        assert right.steps[1] != slipped.steps[1]
    with pytest.raises(ValueError, match="unknown split"):
        times_table_probe(("train", "dev"))


def test_cli_parses_error_weights():
    import argparse

    from prm_lib.cli import weights

    assert weights("arithmetic_slip=3, wrong_number=0.5") == {"arithmetic_slip": 3.0, "wrong_number": 0.5}
    for bad in ("arithmetic_slip", "=3", "arithmetic_slip=x"):
        with pytest.raises(argparse.ArgumentTypeError, match="kind=weight"):
            weights(bad)


def test_likelihood_scorer_is_the_geometric_mean_probability_of_each_steps_tokens():
    import math

    from prm_lib.steps import encode_solutions
    from prm_lib.surprise import LikelihoodScorer

    scorer = LikelihoodScorer("tiny-qwen2")
    scores = scorer.score_batch(ITEMS)
    assert [len(s) for s in scores] == [len(steps) for _, steps in ITEMS]
    for item, got in zip(ITEMS, scores):  # one solution at a time, by hand
        encoded = encode_solutions(scorer.source.tokenizer, [item], None)[0]
        written, _ = scorer.source.logprobs(torch.tensor([encoded.input_ids]))
        for (a, b), value in zip(encoded.step_spans, got):
            assert value == pytest.approx(math.exp(written[0, a:b].mean().item()), rel=1e-5)
            assert 0 < value <= 1


# ---- a reader that refuses what it cannot read, in bounded memory ------------------------------------------
def test_a_surprise_lm_with_another_tokenizer_is_refused():
    with pytest.raises(ValueError, match="is not the tokenizer of the surprise LM 'smollm2-135m'"):
        ProcessRewardModel.from_backbone("tiny-qwen2", device="cpu", surprise_from="smollm2-135m")


def test_surprise_in_small_chunks_equals_the_whole_log_softmax(reading_prm, monkeypatch):
    import prm_lib.surprise as surprise_module

    source = reading_prm.surprise_source
    ids = torch.tensor([reading_prm.encode(ITEMS)[0].input_ids] * 3)
    with torch.no_grad():
        logp = torch.log_softmax(source.lm(input_ids=ids).logits[:, :-1].float(), dim=-1)
    want_written = logp.gather(-1, ids[:, 1:].unsqueeze(-1)).squeeze(-1)
    want_best = logp.max(-1).values
    monkeypatch.setattr(surprise_module, "LOGIT_CHUNK_BYTES", 4 * source.head.weight.shape[0] * 5)  # 5 positions a chunk
    written, best = source.logprobs(ids)
    assert torch.allclose(written[:, 1:], want_written, atol=1e-5) and torch.allclose(best[:, 1:], want_best, atol=1e-5)


def test_the_reader_runs_on_prose_steps_of_the_processbench_fixture():
    from pathlib import Path

    from prm_lib.data import read_processbench

    # prose: long LaTeX steps, not the course's one-line arithmetic
    samples = [s for s in read_processbench(Path(__file__).parent / "fixtures" / "processbench_long.jsonl")
               if len(s.steps) >= 5]
    assert len(samples) >= 2
    prm = ProcessRewardModel.from_backbone("tiny-qwen2", device="cpu", surprise_from="tiny-qwen2")
    encoded = prm.encode([s.as_item() for s in samples])
    prm.attach_surprise(encoded)
    for e, s in zip(encoded, samples):
        assert len(e.surprise) == len(e) and e.surprise[0] == 0.0 and min(e.surprise) >= 0.0
    scores = prm.score_batch([s.as_item() for s in samples])
    assert [len(r) for r in scores] == [len(s.steps) for s in samples]
    assert all(0.0 < p < 1.0 for row in scores for p in row)


def test_logprobs_of_a_padded_batch_are_each_rows_own_as_read_alone(reading_prm):
    source = reading_prm.surprise_source
    rows = [e.input_ids for e in reading_prm.encode(ITEMS)]
    for side in ("left", "right"):
        batch = reading_prm.collate(reading_prm.encode(ITEMS), padding_side=side)
        written, best = source.logprobs(batch.input_ids, batch.attention_mask)
        assert torch.all(written[batch.attention_mask == 0] == 0) and torch.all(best[batch.attention_mask == 0] == 0)
        for r, (alone_written, alone_best) in enumerate(source.read(rows)):
            real = batch.attention_mask[r].bool()
            assert written[r, real][0] == 0  # nothing predicts a row's first token, whatever the padding
            assert torch.allclose(written[r, real], alone_written, atol=1e-5)
            assert torch.allclose(best[r, real], alone_best, atol=1e-5)


def test_largest_step_surprise_is_the_max_over_each_steps_tokens(reading_prm):
    from prm_lib.surprise import largest_step_surprise

    got = largest_step_surprise(reading_prm, ITEMS)
    assert [len(row) for row in got] == [3, 1, 4]
    for item, row in zip(ITEMS, got):
        encoded = reading_prm.encode([item])[0]
        surprise = reading_prm.surprise_source(reading_prm.collate([encoded]).input_ids)[0]
        expected = [surprise[a:b].max().item() for a, b in encoded.step_spans]
        assert row == pytest.approx(expected, abs=1e-4)
    with pytest.raises(ValueError, match="surprise"):
        largest_step_surprise(ProcessRewardModel.from_backbone("tiny-qwen2", device="cpu"), ITEMS)
