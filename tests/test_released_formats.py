"""Released data sets read as their authors released them: PRM800K's phase files, Math-Shepherd, BIG-Bench
Mistake and GSM8K's model solutions; what each reader leaves out is counted by file:line, and a file's
held-out share is grouped by problem."""

import dataclasses
import json
from pathlib import Path

import pytest

from prm_lib import data
from prm_lib.data import FormatError, PRMSample
from prm_lib.steps import validate_solution
from prm_lib.training_data import DataReport, FileData, data_from_dict, guess_format, read_training_file

RELEASED = Path(__file__).parent / "fixtures" / "released"
PRM800K = RELEASED / "prm800k.jsonl"  # six records shaped as openai/prm800k's, one case each (see the comments below)
SHARED = Path("/work/shared/datasets")
BBM_COUNTS = {"word_sorting": (300, 266), "tracking_shuffled_objects": (300, 260), "logical_deduction": (300, 294),
              "multistep_arithmetic": (300, 238), "dyck_languages": (986, 650)}  # README: traces, with a mistake


def write_lines(path, *records):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))
    return path


def prm800k_record(steps, problem="P?"):
    return {"labeler": "x", "question": {"problem": problem}, "label": {"steps": steps, "finish_reason": "solution"}}


# ---- 1. PRM800K as released -----------------------------------------------------------------------------------
def test_prm800k_released_file_reads_every_case_and_counts_what_it_leaves_out():
    skipped = []
    samples = data.read_prm800k(PRM800K, skipped=skipped)
    assert [s.meta["source"] for s in samples] == [f"{PRM800K}:{n}" for n in (1, 2, 3, 5)]
    assert skipped == [
        (f"{PRM800K}:3", "step with null completions (step 2: the solution ends at step 1)"),
        (f"{PRM800K}:4", "record with no steps (label.steps is empty)"),
        (f"{PRM800K}:6", "record with no steps (its first step: step with null completions)"),
    ]
    null_step, found_error = samples[2], samples[3]
    assert null_step.steps == ["Let me add 3 and 5."] and null_step.labels == [1]
    assert found_error.steps == ["$7 \\times 8 = 56$.", "$56 - 2 = 52$.", "# Answer: 52"]
    assert found_error.labels == [1, -1, -1] and found_error.meta["finish_reason"] == "found_error"


def test_prm800k_human_completion_is_the_step_and_the_solution_goes_on(tmp_path):
    s = data.read_prm800k(PRM800K)[1]
    assert s.steps == ["I multiply 9 by 2.", "$9 \\times 2 = 18$.", "The answer is 18.", "# Answer: 18"]
    assert s.labels == [1, 1, 1, 1] and s.meta["human_steps"] == [1]  # an unrated labeler's step: +1
    rated = prm800k_record([{"completions": [{"text": "a.", "rating": -1}], "chosen_completion": None,
                             "human_completion": {"text": "b.", "rating": 0}}])
    path = write_lines(tmp_path / "rated_human.jsonl", rated)
    assert data.read_prm800k(path, neutral="negative")[0].labels == [-1]  # its own rating when it has one


def test_prm800k_answer_block_is_its_own_one_line_step_and_passes_both_separators():
    samples = data.read_prm800k(PRM800K) + data.read_prm800k(PRM800K, alternatives=True)
    first = samples[0]
    assert first.steps == ["I need to subtract 4 from 10.", "$$10 - 4 = 6$$ so the difference is 6.",
                           "So the answer is $6$.", "# Answer: 6"]
    assert first.labels == [1, 1, 1, 1]  # the answer step carries the rating of the step it came from
    for s in samples:
        for separator in ("\n\n", "\n"):
            validate_solution(s.problem, s.steps, s.labels, separator=separator)
    assert data.prm800k_step_texts("# Answer\n\n42") == ["# Answer: 42"]
    assert data.prm800k_step_texts("Done.\n\n# Answer\n\n") == ["Done.", "# Answer"]


def test_prm800k_neutral_choice_is_kept():
    pos, neg = (data.read_prm800k(PRM800K, neutral=n)[0] for n in ("positive", "negative"))
    assert pos.labels == [1, 1, 1, 1] and neg.labels == [-1, 1, 1, 1]
    assert pos.meta["n_neutral"] == neg.meta["n_neutral"] == 1 and neg.meta["neutral_as"] == "negative"


def test_prm800k_alternatives_become_samples_of_their_own():
    skipped = []
    samples = data.read_prm800k(PRM800K, alternatives=True, skipped=skipped)
    alts = [(s.steps, s.labels, s.meta["alternative"], s.meta["source"]) for s in samples if "alternative" in s.meta]
    assert alts == [
        (["I multiply 9 by 2.", "$9 \\times 2 = 16$."], [1, -1], {"step": 2, "completion": 0}, f"{PRM800K}:2"),
        (["I multiply 9 by 2.", "$9 \\times 2 = 11$."], [1, -1], {"step": 2, "completion": 1}, f"{PRM800K}:2"),
        (["$7 \\times 8 = 54$."], [-1], {"step": 1, "completion": 1}, f"{PRM800K}:5"),
        (["I will multiply first."], [1], {"step": 1, "completion": 2}, f"{PRM800K}:5"),
    ]
    assert len(samples) == 8 and (f"{PRM800K}:5", "alternative left out (unrated: step 1, completion 3)") in skipped
    assert data.read_prm800k(PRM800K, alternatives=True, neutral="negative")[-1].labels == [-1]


@pytest.mark.parametrize("line, message", [
    ("not json", "not valid JSON"),
    (prm800k_record([{"completions": "a.", "chosen_completion": 0}]), "field 'completions' should be list or null"),
    (prm800k_record(["a."]), "step 1: expected an object"),
    (prm800k_record([{"completions": [{"text": "a.", "rating": 1}], "chosen_completion": "0"}]),
     "should be int or null"),
    (prm800k_record([{"completions": [{"text": "a.", "rating": -1}], "chosen_completion": None,
                      "human_completion": []}]), "field 'human_completion' should be dict or null"),
    (prm800k_record([{"completions": [{"text": 3, "rating": 1}], "chosen_completion": 0}]),
     "field 'text' should be str"),
    (prm800k_record([{"completions": [{"text": "a.", "rating": 2}], "chosen_completion": 0}]),
     "rating must be -1, 0 or 1"),
    ({"question": {"problem": "P?"}, "label": {"steps": {}}}, "field 'steps' should be list"),
])
def test_prm800k_malformed_records_still_name_file_and_line(line, message, tmp_path):
    good = prm800k_record([{"completions": [{"text": "a.", "rating": 1}], "chosen_completion": 0}])
    path = write_lines(tmp_path / "bad.jsonl", good, line)
    with pytest.raises(FormatError, match=rf"bad.jsonl:2: .*{message}"):
        data.read_prm800k(path, skipped=[])


# ---- 2. Math-Shepherd ------------------------------------------------------------------------------------------
def test_math_shepherd_problem_that_says_step_1_is_kept_whole(tmp_path):
    problem = "A recipe's Step 1: says to crack 2 eggs. How many eggs are cracked?"
    body = "Step 1: The recipe says 2 eggs. {} \nStep 2: The answer is 2. {} "
    path = write_lines(tmp_path / "ms.jsonl", {"input": f"{problem} " + body.format("ки", "ки"),
                                                "label": f"{problem} " + body.format("+", "+")})
    s = data.read_math_shepherd(path)[0]
    assert s.problem == problem and s.steps == ["The recipe says 2 eggs.", "The answer is 2."]


# ---- 3. BIG-Bench Mistake and GSM8K's model solutions ----------------------------------------------------------
def test_big_bench_mistake_labels_and_meta(tmp_path):
    path = write_lines(tmp_path / "multistep_arithmetic.jsonl",
                       {"input": "(1 + 2) * 3 =", "steps": ["1 + 2 = 3.", "", "3 * 3 = 6.", "So the answer is 6"],
                        "answer": "6", "target": "9", "mistake_index": 2},
                       {"input": "2 + 2 =", "steps": ["2 + 2 = 4. So the answer is 4"], "answer": "4", "target": "4",
                        "mistake_index": None})
    skipped = []
    wrong, right = data.read(path, "big-bench-mistake", skipped=skipped)
    assert wrong.steps == ["1 + 2 = 3.", "3 * 3 = 6.", "So the answer is 6"] and wrong.labels == [1, -1, -1]
    assert wrong.meta == {"answer": "6", "target": "9", "task": "multistep_arithmetic",
                          "labels_after_first_error": "assumed", "source": f"{path}:1"}
    assert right.labels == [1] and skipped == [(f"{path}:1", "empty step (step 2)")]
    data.write([wrong, right], tmp_path / "back.jsonl", "big-bench-mistake")
    assert [json.loads(l)["mistake_index"] for l in (tmp_path / "back.jsonl").read_text().splitlines()] == [1, None]


@pytest.mark.skipif(not (SHARED / "big_bench_mistake").is_dir(), reason="the released files are not on this machine")
def test_big_bench_mistake_real_files_match_the_readmes_counts():
    for task, (traces, with_mistake) in BBM_COUNTS.items():
        skipped = []
        samples = data.read(SHARED / "big_bench_mistake" / f"{task}.jsonl", "big-bench-mistake", skipped=skipped)
        assert (len(samples), sum(s.first_error >= 0 for s in samples)) == (traces, with_mistake), task
        assert {s.meta["task"] for s in samples} == {task}
        assert all(reason.startswith("empty step") for _, reason in skipped)  # one Dyck trace has an empty step


def test_gsm8k_solutions_are_outcome_labelled_samples(tmp_path):
    record = {"question": "Q?", "ground_truth": "2 + 2 = 4\nA: 4",
              "6b_finetuning": {"is_correct": True, "solution": "2 + 2 = <<2+2=4>>4\n\nA: 4"},
              "6b_verification": {"is_correct": False, "solution": "2 + 2 = 5\nA: 5"},
              "175b_finetuning": {"is_correct": True, "solution": "A: 4"},
              "175b_verification": {"is_correct": True, "solution": "4\nA: 4"}}
    path = write_lines(tmp_path / "example_model_solutions.jsonl", record)
    samples = data.read(path, "gsm8k-solutions")
    assert [s.meta["source_model"] for s in samples] == list(data.GSM8K_SOLVERS)
    assert samples[0].steps == ["2 + 2 = <<2+2=4>>4", "A: 4"] and samples[0].labels == [1, 1]
    assert samples[1].labels == [-1, -1] and samples[1].meta == {
        "final_answer_correct": False, "source_model": "6b_verification", "ground_truth": "2 + 2 = 4\nA: 4",
        "labels": "outcome", "source": f"{path}:1"}
    with pytest.raises(ValueError, match="gsm8k-solutions files can be read but not written"):
        data.write(samples, tmp_path / "out.jsonl", "gsm8k-solutions")
    bad = dict(record, **{"175b_verification": {"is_correct": "yes", "solution": "A: 4"}})
    with pytest.raises(FormatError, match=r"jsonl:2: 175b_verification: field 'is_correct' should be bool"):
        data.read(write_lines(tmp_path / "bad.jsonl", record, bad), "gsm8k-solutions")


@pytest.mark.skipif(not (SHARED / "gsm8k").is_dir(), reason="the released files are not on this machine")
def test_gsm8k_real_file_gives_four_samples_a_question():
    samples = data.read(SHARED / "gsm8k" / "example_model_solutions.jsonl", "gsm8k-solutions")
    assert len(samples) == 5276 and len({s.problem for s in samples}) == 1319
    assert all(len(set(s.labels)) == 1 and (s.labels[0] == 1) == s.meta["final_answer_correct"] for s in samples)


def test_the_new_formats_are_recognised_by_their_fields():
    bbm = {"input": "x", "steps": [], "answer": "a", "target": "t", "mistake_index": None}
    assert guess_format(bbm) == "big-bench-mistake"
    assert guess_format({"question": "q", "ground_truth": "g", **dict.fromkeys(data.GSM8K_SOLVERS, {})}) == "gsm8k-solutions"
    assert guess_format({"question": {}, "label": {}}) == "prm800k"


# ---- 4. what a reader left out reaches the run's report ------------------------------------------------------
def test_sources_are_the_readers_and_the_report_counts_what_was_left_out():
    samples = read_training_file(PRM800K, "prm800k", alternatives=True)
    assert [s.meta["source"].rsplit(":", 1)[1] for s in samples] == ["1", "2", "2", "2", "3", "5", "5", "5"]
    train, val, report = FileData(str(PRM800K), "prm800k").build()
    assert (report.n_read, report.n_solutions, report.n_left_out, report.files) == (6, 4, 3, [str(PRM800K)])
    assert report.left_out[0] == {"where": f"{PRM800K}:3",
                                  "reason": "step with null completions (step 2: the solution ends at step 1)"}
    assert report.to_dict()["left_out"] == report.left_out and report.format == "prm800k"
    assert report.summary() == (
        f"read 6 records of {PRM800K} (prm800k): 4 solutions; left out 3 (1 step with null completions, "
        f"2 records with no steps, first at {PRM800K}:3); validation: 1 of 4 solutions held out by problem "
        "(1 of 4 problems, 5%, seed 0)")
    assert "\n" not in report.summary() and len(train) == 3 and len(val) == 1


def test_a_file_with_nothing_to_train_on_is_named(tmp_path):
    path = write_lines(tmp_path / "empty_steps.jsonl", prm800k_record([]))
    with pytest.raises(ValueError, match=r"empty_steps.jsonl: none of its 1 records .*record with no steps"):
        read_training_file(path, "prm800k")


# ---- 5. FileData's PRM800K options ------------------------------------------------------------------------------
def test_file_data_passes_prm800k_options_and_round_trips_them():
    config = FileData(str(PRM800K), "prm800k", val_file=str(PRM800K), neutral="negative", alternatives=True)
    train, val, report = config.build()
    assert len(train) == len(val) == 8 and train[0].labels == [-1, 1, 1, 1]
    assert "file" in report.validation and report.n_read == 12 and report.n_left_out == 8
    assert data_from_dict(dataclasses.asdict(config)) == config
    assert data_from_dict({"train_file": "f", "format": "trl", "kind": "file"}) == FileData("f", "trl")  # old config
    with pytest.raises(ValueError, match="options of the prm800k format.*trl has none"):
        FileData("f.jsonl", "trl", neutral="negative")
    with pytest.raises(ValueError, match="options of the prm800k format.*math-shepherd has none"):
        FileData("f.jsonl", "math-shepherd", alternatives=True)


# ---- 6. the held-out share is grouped by problem ----------------------------------------------------------------
def test_the_held_out_share_is_grouped_by_problem(tmp_path):
    rows = [{"prompt": f"What is {p} + 1?", "completions": [f"{p} + 1 = {p + k}."], "labels": [k == 1]}
            for p in range(40) for k in range(1, 5)]  # four solutions a problem, records interleaved by problem
    path = write_lines(tmp_path / "four.jsonl", *rows)
    train, val, report = FileData(str(path), "trl", val_fraction=0.1, seed=3).build()
    assert len(val) == 16 and len(train) == 144  # 4 of 40 problems, with all their solutions
    assert not {s.problem for s in train} & {s.problem for s in val}
    assert "held out by problem (4 of 40 problems, 10%, seed 3)" in report.validation
    again = FileData(str(path), "trl", val_fraction=0.1, seed=3).build()[1]
    assert [s.meta["source"] for s in again] == [s.meta["source"] for s in val]
    one = write_lines(tmp_path / "one.jsonl", *rows[:4])
    with pytest.raises(ValueError, match="has 1 distinct problem.*grouped by problem.*--val-file"):
        FileData(str(one), "trl").build()


def test_a_synthetic_report_summarises_too():
    report = DataReport("synthetic", 10, 2, "generated (seed 1)", format="synthetic")
    assert report.summary() == "synthetic: 10 training and 2 validation solutions; validation: generated (seed 1)"
    assert isinstance(PRMSample("P?", ["a."], [1]).meta, dict)


def test_processbench_subsets_survive_the_readers_source(tmp_path):
    from prm_lib.processbench import subset_of

    path = write_lines(tmp_path / "pb.jsonl", {"id": "gsm8k-3", "problem": "P?", "steps": ["a."], "label": -1},
                       {"id": "x", "source": "math", "problem": "P?", "steps": ["a."], "label": 0})
    samples = data.read_processbench(path)
    assert [s.meta["source"] for s in samples] == [f"{path}:1", f"{path}:2"]
    assert [subset_of(s.meta) for s in samples] == ["gsm8k", "math"]  # not the file:line
