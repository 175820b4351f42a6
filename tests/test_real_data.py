"""The real solutions prm_lib ships (prm_lib.datasets), their fixed split, the data source that trains on them,
and the first-mistake metric of chapter 9 (prm_lib.first_mistake)."""

import hashlib
import json

import numpy as np
import pytest

from prm_lib import datasets
from prm_lib import first_mistake as fm
from prm_lib.data import PRMSample
from prm_lib.train import TrainConfig
from prm_lib.training_data import ShippedData, data_from_dict


@pytest.mark.parametrize("name", sorted(datasets.SHA256))
def test_the_shipped_files_are_the_released_ones(name):
    assert hashlib.sha256(datasets.path(name).read_bytes()).hexdigest() == datasets.SHA256[name]


def test_each_shipped_set_keeps_its_licence_beside_it():
    assert "Apache License" in (datasets.HERE / "big_bench_mistake" / "LICENSE").read_text()
    assert "MIT License" in (datasets.HERE / "gsm8k" / "LICENSE").read_text()


def test_the_counts_are_those_the_authors_give():
    # Tyen et al.: 300 traces a human-labelled task, 986 of Dyck languages; with a mistake 266, 260, 294, 238, 650
    expected = {"word_sorting": (300, 266), "tracking_shuffled_objects": (300, 260), "logical_deduction": (300, 294),
                "multistep_arithmetic": (300, 238), "dyck_languages": (986, 650)}
    for task, (n, wrong) in expected.items():
        left_out = []
        samples = datasets.big_bench_mistake(task, skipped=left_out)
        assert (len(samples) + sum("record" in r for _, r in left_out), sum(s.first_error >= 0 for s in samples)) == (n, wrong)
    assert len(datasets.gsm8k_solutions()) == 4 * 1319


def test_the_split_is_by_question_disjoint_and_near_its_shares():
    for task in datasets.TASKS:
        parts = {split: datasets.big_bench_mistake(task, split) for split in datasets.SPLITS}
        questions = [{s.problem for s in parts[split]} for split in datasets.SPLITS]
        assert not (questions[0] & questions[1] or questions[0] & questions[2] or questions[1] & questions[2])
        n = sum(len(p) for p in parts.values())
        assert n == len(datasets.big_bench_mistake(task))
        assert abs(len(parts["test"]) / n - 0.3) < 0.06, (task, {k: len(v) for k, v in parts.items()})
    solutions = {split: datasets.gsm8k_solutions(split) for split in datasets.SPLITS}
    assert all(len(s) % 4 == 0 for s in solutions.values())  # a problem's four solutions stay together
    assert not {s.problem for s in solutions["train"]} & {s.problem for s in solutions["test"]}


def test_the_split_depends_on_the_question_alone():
    assert datasets.split_of("What is 9 × 2?", (0.6, 0.1, 0.3)) == datasets.split_of("What is 9 × 2?", [0.6, 0.1, 0.3])
    assert {datasets.split_of(str(i), (0.5, 0.0, 0.5)) for i in range(50)} == {"train", "test"}
    with pytest.raises(ValueError, match="summing to 1"):
        datasets.split_of("q", (0.5, 0.1, 0.1))
    with pytest.raises(ValueError, match="unknown split 'dev'"):
        datasets.big_bench_mistake("word_sorting", "dev")
    with pytest.raises(ValueError, match="unknown BIG-Bench Mistake task 'sorting'"):
        datasets.big_bench_mistake("sorting")
    with pytest.raises(ValueError, match="unknown shipped data set"):
        datasets.path("gsm8k/train.jsonl")


def test_labelled_only_ends_each_trace_at_its_first_mistake():
    full = datasets.big_bench_mistake("multistep_arithmetic", "train")
    cut = datasets.big_bench_mistake("multistep_arithmetic", "train", labelled_only=True)
    assert [s.problem for s in full] == [s.problem for s in cut]
    for f, c in zip(full, cut):
        if f.first_error < 0:
            assert c.steps == f.steps and c.meta["steps_after_mistake"] == 0
        else:
            assert c.steps == f.steps[:f.first_error + 1] and c.first_error == f.first_error == len(c.steps) - 1
            assert c.meta["steps_after_mistake"] == len(f.steps) - len(c.steps)
            assert "labels_after_first_error" not in c.meta
    assert any(c.meta["steps_after_mistake"] for c in cut)


def test_shipped_data_trains_on_the_training_split_and_validates_on_the_validation_split():
    train, val, report = ShippedData(("tracking_shuffled_objects",)).build()
    assert [s.problem for s in train] == [s.problem for s in datasets.big_bench_mistake("tracking_shuffled_objects", "train")]
    assert [s.problem for s in val] == [s.problem for s in datasets.big_bench_mistake("tracking_shuffled_objects", "validation")]
    assert all(s.first_error in (-1, len(s.steps) - 1) for s in train + val)  # through the first mistake
    assert report.n_train == len(train) and report.n_read == 300 and "left out nothing" in report.summary()
    train, _, report = ShippedData(("dyck_languages",)).build()
    assert report.n_left_out == 1 and "empty step" in report.left_out[0]["reason"]
    gsm_train, gsm_val, report = ShippedData(("gsm8k",)).build()
    assert report.format == "gsm8k-solutions" and len(gsm_train) == len(datasets.gsm8k_solutions("train"))


def test_shipped_data_is_named_by_content_not_by_where_the_package_lives():
    data = ShippedData()
    key = data.key()
    assert "sha256" in key and not any(str(datasets.HERE) in json.dumps(v) for v in key.values())
    config = TrainConfig(data=data)
    assert TrainConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config  # through a saved config's JSON
    assert data_from_dict({"kind": "shipped", "sets": ["gsm8k"]}) == ShippedData(("gsm8k",))
    with pytest.raises(ValueError, match="unknown shipped data set.*'sorting'"):
        ShippedData(("sorting",))


def _traces(probs, first):
    return fm.ScoredTraces([None if p is None else list(p) for p in probs], np.array(first))


def test_the_paper_metric_names_the_first_step_below_the_threshold_exactly():
    traces = _traces([[0.9, 0.2, 0.8], [0.9, 0.9], [0.3, 0.1], None], [1, -1, 1, -1])
    assert traces.hits(0.5).tolist() == [True, True, False, False]  # the first below, not the lowest; unscored: a miss
    assert traces.hits([0.1, 0.95]).tolist() == [[False, False], [True, False], [False, False], [False, False]]
    assert traces.n_unscored == 1
    cut = _traces([[0.9, float("nan")]], [-1])  # a step cut by max_length is not called a mistake
    assert cut.hits(0.5).tolist() == [True]


def test_the_fitted_threshold_is_the_most_accurate_and_nearest_half_among_equals():
    traces = _traces([[0.9, 0.35], [0.8, 0.7]], [1, -1])
    assert fm.fit_threshold(traces, [0.1, 0.3, 0.4, 0.5, 0.6, 0.75]) == 0.5
    assert fm.fit_threshold(_traces([[0.9, 0.65]], [1]), [0.1, 0.5, 0.7, 0.9]) == 0.7


def test_a_part_of_the_traces_and_the_upper_bound_of_the_accuracy():
    traces = _traces([[0.9, 0.35], [0.8, 0.7], [0.6]], [1, -1, 0])
    assert traces.take(1).first_errors.tolist() == [-1, 0] and traces.take(0, 1).probs == [[0.9, 0.35]]
    assert traces.best_accuracy([0.3, 0.5]) == pytest.approx(2 / 3)  # 0.5: the first two right, not the third
    assert traces.best_accuracy([0.3, 0.5, 0.65]) == 1.0


def test_summary_gives_accuracy_f1_and_intervals_in_percent():
    hits = np.array([True] * 30 + [False] * 70)
    first = np.array([-1] * 10 + [2] * 90)
    r = fm.summary(hits, first)
    assert r["accuracy"] == pytest.approx(30.0) and r["low"] < 30.0 < r["high"]
    # 10 of 10 correct traces right, 20 of 90 erroneous ones: F1 = 2 * 1 * 0.222 / 1.222
    assert r["f1"] == pytest.approx(100 * 2 * (20 / 90) / (1 + 20 / 90))
    assert r["f1_low"] < r["f1"] < r["f1_high"]
    assert fm.summary(hits, np.full(100, 2))["f1"] is None  # one kind of trace: no F1


def test_the_floor_is_the_most_common_first_mistake():
    def sample(first):
        return PRMSample("q", ["a", "b", "c"], [1 if i < first or first < 0 else -1 for i in range(3)])

    train = [sample(1), sample(1), sample(2), sample(-1)]
    assert fm.most_common_position(train) == 1
    assert fm.most_common_position([sample(2), sample(-1)]) == -1  # ties: the earliest, "no mistake" before any step
    assert fm.most_common_position([sample(2), sample(1)]) == 1
    assert fm.position_hits(1, [sample(1), sample(2)]).tolist() == [True, False]


def test_the_real_data_preset_trains_from_the_command_line(tmp_path, capsys):
    from prm_lib.cli import main as cli

    # cpu-real's data and settings on the tiny random backbone, two steps: the shipped traces go through the trainer
    assert cli(["train", "--preset", "cpu-real", "--backbone", "tiny-qwen2", "--n-layers", "none", "--max-steps", "2",
                "--eval-every", "2", "--batch-size", "2", "--device", "cpu", "--out", str(tmp_path)]) == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["config"]["data"]["kind"] == "shipped" and metrics["data"]["n_train"] == 706
    assert metrics["final"]["n_solutions"] == 111  # the validation split of the four tasks
    assert "big_bench_mistake/word_sorting.jsonl" in capsys.readouterr().err  # the run says what it read


def test_the_real_data_models_are_course_models():
    from prm_lib.course.models import course_models

    names = [name for name, _ in course_models()]
    assert names[-2:] == ["cpu-real", "cpu-real-orm"]


def test_each_further_run_changes_one_setting_of_cpu_real():
    from prm_lib.course import real_data_runs as runs

    for task, name in runs.LEFT_OUT.items():
        sets = runs.run_config(name)[1].data.sets
        assert task not in sets and set(sets) | {task} == set(datasets.TASKS)  # Dyck languages included, as Otter's
        assert list(runs.changed_settings(name)) == ["data"]
    assert {name: list(runs.changed_settings(name)) for name in runs.CHANGED} == {
        "cpu-real-surprise": ["surprise"], "cpu-real-180-steps": ["max_steps", "eval_every"],
        "cpu-real-whole": ["n_layers"]}
    assert runs.changed_settings("cpu-real-whole")["n_layers"] == (8, None)
    with pytest.raises(ValueError, match="unknown chapter 9 run 'cpu-real-huge'.*cpu-real-surprise"):
        runs.run_config("cpu-real-huge")


def test_a_run_without_a_task_never_reads_that_task(monkeypatch):
    from prm_lib.course import real_data_runs as runs

    read = []
    real_shipped = datasets.shipped
    monkeypatch.setattr(datasets, "shipped", lambda name, *a, **k: read.append(name) or real_shipped(name, *a, **k))
    train, val, _ = runs.run_config(runs.LEFT_OUT["logical_deduction"])[1].data.build()
    assert "logical_deduction" not in read and len(read) == 8
    assert not {s.problem for s in train + val} & {s.problem for s in datasets.big_bench_mistake("logical_deduction")}
