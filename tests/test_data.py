"""Data formats: reading hand-written fixtures, round trips, conversions, and errors that name file and line."""

import json
from pathlib import Path

import pytest

from prm_lib import data
from prm_lib.data import FORMATS, FormatError, PRMSample

FIX = Path(__file__).parent / "fixtures"


def test_trl_fixture():
    samples = data.read_trl(FIX / "trl.jsonl")
    assert len(samples) == 3  # the blank line is not a record
    assert samples[0].labels == [1, -1, -1] and samples[0].first_error == 1
    assert samples[1].labels == [1, -1, 1, 1] and samples[1].first_error == 1
    assert samples[2].is_correct


def test_prm800k_neutral_is_an_explicit_choice():
    pos = data.read_prm800k(FIX / "prm800k.jsonl", neutral="positive")
    neg = data.read_prm800k(FIX / "prm800k.jsonl", neutral="negative")
    assert pos[0].labels == [1, 1, 1] and neg[0].labels == [-1, 1, 1]
    assert pos[0].meta["n_neutral"] == 1 and pos[0].meta["neutral_as"] == "positive"
    with pytest.raises(ValueError, match="neutral must be one of"):
        data.read_prm800k(FIX / "prm800k.jsonl", neutral="ignore")


def test_prm800k_stops_at_a_step_without_chosen_completion():
    s = data.read_prm800k(FIX / "prm800k.jsonl")[1]
    assert s.steps == ["I need to multiply 9 by 2.", "9 × 2 = 16."]
    assert s.labels == [1, -1]


def test_math_shepherd_fixture():
    s = data.read_math_shepherd(FIX / "math_shepherd.jsonl")
    assert s[0].problem == "What is 7 × 8?"
    assert s[0].steps == ["I need to multiply 7 by 8.", "7 × 8 = 54.", "The answer is 54."]
    assert s[0].labels == [1, -1, -1]
    assert s[0].meta == {"task": "synthetic", "source": f"{FIX / 'math_shepherd.jsonl'}:1"}
    assert s[1].labels == [1, 1]


def test_processbench_fixture():
    s = data.read_processbench(FIX / "processbench.jsonl")
    assert s[0].labels == [1, -1, -1] and s[0].first_error == 1
    assert s[0].meta["labels_after_first_error"] == "assumed" and s[0].meta["id"] == "pb-0"
    assert s[1].first_error == -1


@pytest.mark.parametrize("fmt", [f for f in FORMATS if f != "gsm8k-solutions"])  # that one is read-only
def test_round_trip(fmt, tmp_path):
    original = data.read_trl(FIX / "trl.jsonl")
    data.write(original, tmp_path / "out", fmt)
    back = data.read(tmp_path / "out", fmt)
    assert [(s.problem, s.steps) for s in back] == [(s.problem, s.steps) for s in original]
    if fmt in ("processbench", "big-bench-mistake"):  # keep only the first error
        assert [s.first_error for s in back] == [s.first_error for s in original]
    else:
        assert [s.labels for s in back] == [s.labels for s in original]


@pytest.mark.parametrize("src", ["math-shepherd", "prm800k", "processbench"])
def test_convert_to_trl(src, tmp_path):
    name = {"math-shepherd": "math_shepherd", "prm800k": "prm800k", "processbench": "processbench"}[src]
    n = data.convert(FIX / f"{name}.jsonl", src, tmp_path / "out.jsonl", "trl")
    rows = [json.loads(l) for l in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert len(rows) == n == len(data.read(FIX / f"{name}.jsonl", src))
    assert all(set(r) == {"prompt", "completions", "labels"} for r in rows)


def test_soft_labels_are_rounded_with_a_warning(tmp_path):
    s = PRMSample("P?", ["a.", "b."], [0.75, 0.25])
    with pytest.warns(UserWarning, match="2 soft label"):
        data.write_trl([s], tmp_path / "t.jsonl")
    assert data.read_trl(tmp_path / "t.jsonl")[0].labels == [1, -1]


def write_lines(path, *lines):
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize(
    "fmt, line, message",
    [
        ("trl", "not json", "not valid JSON"),
        ("trl", "[1, 2]", "expected a JSON object"),
        ("trl", '{"prompt": "P?", "completions": ["a."]}', "missing field 'labels'"),
        ("trl", '{"prompt": "P?", "completions": ["a."], "labels": [1]}', "must be true/false"),
        ("trl", '{"prompt": "P?", "completions": [], "labels": []}', "steps is empty"),
        ("trl", '{"prompt": "P?", "completions": ["a.", " "], "labels": [true, true]}', "step 2 of 2 is empty"),
        ("prm800k", '{"question": {"problem": "P?"}, "label": {"steps": [{"completions": [{"text": "a.", "rating": 5}]}]}}', "rating must be -1, 0 or 1"),
        ("prm800k", '{"question": {"problem": "P?"}, "label": {"steps": [{"completions": [{"text": "a.", "rating": 1}], "chosen_completion": 3}]}}', "not an index"),
        ("math-shepherd", '{"input": "P? Step 1: a.", "label": "P? Step 1: a."}', "no 'ки' step tag"),
        ("math-shepherd", '{"input": "P? Step 1: a. ки", "label": "P? Step 1: a. x"}', "expected \\+ or -"),
        ("math-shepherd", '{"input": "P? Step 1: a. ки", "label": "Q? Step 1: a. +"}', "does not match"),
        ("processbench", '{"problem": "P?", "steps": ["a."], "label": 3}', "label 3 is not -1 or a step index"),
        ("processbench", '{"problem": "P?", "steps": ["a."], "label": "1"}', "should be int"),
    ],
)
def test_malformed_records_name_file_and_line(fmt, line, message, tmp_path):
    good = {"trl": '{"prompt": "P?", "completions": ["a."], "labels": [true]}',
            "prm800k": '{"question": {"problem": "P?"}, "label": {"steps": [{"completions": [{"text": "a.", "rating": 1}], "chosen_completion": 0}]}}',
            "math-shepherd": '{"input": "P? Step 1: a. ки", "label": "P? Step 1: a. +"}',
            "processbench": '{"problem": "P?", "steps": ["a."], "label": -1}'}[fmt]
    path = write_lines(tmp_path / "bad.jsonl", good, line)
    with pytest.raises(FormatError, match=rf"bad.jsonl:2: .*{message}"):
        data.read(path, fmt)


def test_label_count_mismatch_in_fixture_file():
    with pytest.raises(FormatError, match=r"malformed_trl.jsonl:2: 1 labels for 2 steps"):
        data.read_trl(FIX / "malformed_trl.jsonl")


def test_unknown_format():
    with pytest.raises(ValueError, match="unknown format 'csv'"):
        data.read(FIX / "trl.jsonl", "csv")


def test_samples_hold_any_step_text_and_encoding_checks_the_separator(qwen_tokenizer):
    from prm_lib.steps import encode_solution

    s = PRMSample("P?", ["First paragraph.\n\nSecond paragraph.", "Done."], [1, 1])  # loading never depends on the model
    with pytest.raises(ValueError, match="step 1 contains the step separator"):
        encode_solution(qwen_tokenizer, s.problem, s.steps)
    assert encode_solution(qwen_tokenizer, s.problem, s.steps, separator="\n<step>\n").n_scored == 2
