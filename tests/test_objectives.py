"""The ORM as a first-class objective: targets, loss mask and evaluation from one place, recorded with the
saved model, read by the verifier at its last step, refused by first-error evaluation."""

import dataclasses
import json
from pathlib import Path

import pytest
import torch

from prm_lib.cli import main as cli
from prm_lib.aggregate import pad_scores
from prm_lib.data import PRMSample
from prm_lib.metrics import auroc
from prm_lib.model import CONFIG_FILE, ProcessRewardModel
from prm_lib.objectives import OBJECTIVES, last_step_mask, objective, outcome_targets
from prm_lib.train import TrainConfig, Trainer
from prm_lib.training_data import build_data
from prm_lib.verify import PRMVerifier
from prm_lib.zoo import load_or_train, preset, zoo_path

FIXTURES = Path(__file__).parent / "fixtures"
ITEMS = [("Sam has 3 coins. Sam gets 2 more. How many coins does Sam have now?",
          ["After getting 2 more: 3 + 2 = 6.", "Checking again.", "The answer is 5."])]


@pytest.fixture(scope="module")
def zoo_orm(tmp_path_factory):
    """The tiny-orm preset trained once through the zoo, in a cache of its own: (model, metrics, cache folder)."""
    cache = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PRM_LIB_CACHE", str(cache))
        mp.delenv("PRM_LIB_TRAIN_SEED", raising=False)
        model, metrics = load_or_train("tiny-orm", progress=False)
    return model, metrics, cache


def test_one_mapping_gives_each_objective_its_targets_mask_and_metric():
    right = PRMSample("P?", ["a.", "b.", "The answer is 4."], [1.0, 1.0, 1.0], {"answer": 4, "final_answer": 4})
    # a wrong middle step whose final answer is still right: a PRM learns the step, an ORM the outcome
    recovered = PRMSample("P?", ["a.", "b.", "The answer is 4."], [1.0, 0.0, 0.0], {"answer": 4, "final_answer": 4})
    wrong = PRMSample("P?", ["a.", "The answer is 5."], [1.0, 0.0], {"answer": 4, "final_answer": 5})
    samples = [right, recovered, wrong]
    assert outcome_targets(samples) == [1.0, 1.0, 0.0]
    assert OBJECTIVES["prm"].targets(samples) == [[1.0, 1.0, 1.0], [1.0, 0.0, 0.0], [1.0, 0.0]]
    assert OBJECTIVES["orm"].targets(samples) == [[1.0, 1.0, 1.0], [1.0, 1.0, 1.0], [0.0, 0.0]]
    mask = torch.tensor([[True, True, True], [True, False, False]])
    assert OBJECTIVES["prm"].loss_mask(mask).tolist() == mask.tolist()
    assert OBJECTIVES["orm"].loss_mask(mask).tolist() == last_step_mask(mask).tolist() == [[False, False, True],
                                                                                           [True, False, False]]
    assert (OBJECTIVES["prm"].metric, OBJECTIVES["orm"].metric) == ("step_auroc", "outcome_auroc")
    assert (OBJECTIVES["prm"].aggregation, OBJECTIVES["orm"].aggregation) == (None, "last")
    with pytest.raises(ValueError, match="objective must be 'prm' or 'orm', not 'dpo'"):
        objective("dpo")


def test_the_orm_loss_reads_only_the_last_step_and_the_prm_loss_every_step():
    config = preset("tiny-orm").replace(n_train=16, n_val=4)
    train_set, val_set = build_data(config)
    torch.manual_seed(0)
    prm = ProcessRewardModel.from_backbone("tiny-qwen2", device="cpu")
    losses = {}
    for name in ("orm", "prm"):
        trainer = Trainer(prm, train_set, val_set, dataclasses.replace(config, objective=name), progress=False)
        enc = [e for e in trainer.train_enc if e.n_scored >= 2][:4]
        batch = prm.collate(enc)
        prm.eval()
        with torch.no_grad():
            base = float(trainer.loss_on(batch))
            early, last = batch.labels.clone(), batch.labels.clone()
            early[:, 0] = 1 - early[:, 0]  # flip the first step's label of every row
            rows = torch.arange(len(enc))
            ends = batch.step_mask.sum(1) - 1
            last[rows, ends] = 1 - last[rows, ends]  # flip the last step's label of every row
            losses[name] = (base, float(trainer.loss_on(dataclasses.replace(batch, labels=early))),
                            float(trainer.loss_on(dataclasses.replace(batch, labels=last))))
        assert float(trainer.term_weights(batch)[0]) == (len(enc) if name == "orm" else float(batch.step_mask.sum()))
    base, early, last = losses["orm"]
    assert early == pytest.approx(base, abs=1e-6) and last != pytest.approx(base, abs=1e-4)
    base, early, last = losses["prm"]
    assert early != pytest.approx(base, abs=1e-4) and last != pytest.approx(base, abs=1e-4)


def test_a_trained_orm_is_evaluated_on_its_last_step_and_saved_as_an_orm(zoo_orm, tmp_path):
    model, metrics, _ = zoo_orm
    assert model.objective == "orm"
    config = preset("tiny-orm")
    _, val_set = build_data(config)
    last = [p[-1] for p in model.score_batch([s.as_item() for s in val_set])]
    truth = [s.meta["answer"] == s.meta["final_answer"] for s in val_set]
    assert metrics["final"]["n_solutions"] == config.data.n_val
    assert metrics["final"]["outcome_auroc"] == pytest.approx(auroc(last, truth), abs=1e-6)
    assert "step_auroc" not in metrics["final"]
    model.save(tmp_path / "orm")
    assert json.loads((tmp_path / "orm" / CONFIG_FILE).read_text())["objective"] == "orm"
    assert ProcessRewardModel.load(tmp_path / "orm").objective == "orm"


def test_a_model_saved_without_an_objective_loads_as_a_prm_and_an_unknown_one_is_named(tiny_prm, tmp_path):
    tiny_prm.save(tmp_path / "m")
    path = tmp_path / "m" / CONFIG_FILE
    config = json.loads(path.read_text())
    assert config["objective"] == "prm"
    del config["objective"]
    path.write_text(json.dumps(config))
    assert ProcessRewardModel.load(tmp_path / "m").objective == "prm"
    path.write_text(json.dumps({**config, "objective": "dpo"}))
    with pytest.raises(ValueError, match="objective must be 'prm' or 'orm', not 'dpo'"):
        ProcessRewardModel.load(tmp_path / "m")


def test_the_zoo_gives_an_orm_cached_without_the_field_its_objective_and_leaves_the_file(zoo_orm, monkeypatch):
    model, metrics, cache = zoo_orm
    monkeypatch.setenv("PRM_LIB_CACHE", str(cache))
    path = zoo_path("tiny-orm", preset("tiny-orm")) / CONFIG_FILE
    config = json.loads(path.read_text())
    del config["objective"]  # as the models cached before the field was recorded
    path.write_text(json.dumps(config, indent=2) + "\n")
    before = path.read_text()
    assert ProcessRewardModel.load(path.parent).objective == "prm"  # the file alone no longer says
    again, metrics2 = load_or_train("tiny-orm", progress=False)
    assert again.objective == "orm" and metrics2 == metrics
    assert path.read_text() == before  # the cached file is not rewritten
    assert again.score_batch(ITEMS) == model.score_batch(ITEMS)


def test_the_verifier_reads_an_orm_at_its_last_step_and_refuses_another_aggregation(zoo_orm, tiny_prm):
    orm = zoo_orm[0]
    default = PRMVerifier(orm)
    assert default.aggregation == "last" and PRMVerifier(orm, "last").aggregation == "last"
    problem = ITEMS[0][0]
    candidates = [ITEMS[0][1], ["The answer is 5."] + ITEMS[0][1], ["3 + 2 = 5.", "The answer is 5.", "So 5."],
                  ["Sam has 3 coins.", "3 + 2 = 5.", "The answer is 5."]]
    scored = default.score_solutions([(problem, c) for c in candidates])
    assert [s.score for s in scored] == pytest.approx([s.step_probs[-1] for s in scored])
    by_hand = default.solution_scores(pad_scores([[0.2, 0.9, 0.7]]))
    assert by_hand.tolist() == [pytest.approx(0.7)]  # the last step's, not the PRM default's min (0.2)
    with pytest.raises(ValueError, match="ORM: only its last step's score was trained.*aggregation='last'"):
        PRMVerifier(orm, "min")
    assert PRMVerifier(tiny_prm).aggregation == "min"  # a PRM's default is unchanged
    with pytest.raises(ValueError, match="unknown aggregation"):
        PRMVerifier(orm, "median")


def test_eval_cli_refuses_an_orm_and_says_what_to_do_instead(zoo_orm, tmp_path, capsys):
    zoo_orm[0].save(tmp_path / "orm")
    data = str(FIXTURES / "processbench_long.jsonl")
    assert cli(["eval", "--checkpoint", str(tmp_path / "orm"), "--data", data, "--threshold", "0.5"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "is an ORM" in captured.err and "first-error F1 needs a trained score for every step" in captured.err
    assert "Evaluate a PRM checkpoint instead" in captured.err and "PRMVerifier(orm, 'last')" in captured.err


def test_the_whole_copy_gathered_after_fsdp_keeps_the_objective():
    from types import SimpleNamespace

    from prm_lib.distributed import gather_model

    orm = ProcessRewardModel.from_backbone("tiny-qwen2", device="cpu", objective="orm")
    rank0 = SimpleNamespace(get_state_dict=lambda wrapped: wrapped.state_dict(), is_main_process=True)
    copy = gather_model(rank0, orm, orm)
    assert copy.objective == "orm" and copy.score_batch(ITEMS) == orm.score_batch(ITEMS)


def test_the_whole_copy_gathered_after_fsdp_keeps_the_surprise_reader():
    from types import SimpleNamespace

    from prm_lib.distributed import gather_model

    prm = ProcessRewardModel.from_backbone("tiny-qwen2", device="cpu", surprise_from="tiny-qwen2")
    with torch.no_grad():
        prm.reader.gate[2].bias.fill_(1.0)  # a reader that matters, so losing it would change the scores
    rank0 = SimpleNamespace(get_state_dict=lambda wrapped: wrapped.state_dict(), is_main_process=True)
    copy = gather_model(rank0, prm, prm)
    assert copy.reads_surprise and copy.config_dict()["surprise_from"] == "tiny-qwen2"
    for got, want in zip(copy.score_batch(ITEMS), prm.score_batch(ITEMS)):
        assert got == pytest.approx(want, abs=1e-6)
