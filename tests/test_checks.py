"""A chapter's hidden checks run for the preset they were measured on and say so when skipped for another."""

import pytest

from prm_lib.course.checks import measured_on


def test_the_measured_preset_runs_its_checks_silently(capsys):
    assert measured_on("cpu-reader", "cpu-reader") is True
    assert capsys.readouterr().out == ""


def test_another_preset_skips_them_with_a_line_naming_both(capsys):
    assert measured_on("gpu-qwen2.5-0.5b", "cpu-reader") is False
    out = capsys.readouterr().out
    assert out.startswith("skipped:") and "'cpu-reader'" in out and "'gpu-qwen2.5-0.5b'" in out


def test_naming_no_preset_is_an_error():
    with pytest.raises(ValueError, match="name the presets"):
        measured_on("cpu-reader")


def test_no_chapter_checks_a_backbone_where_it_means_a_preset():
    """The chapters' hidden checks name the preset they were measured on, through one mechanism."""
    import json
    from pathlib import Path

    book = Path(__file__).resolve().parents[1] / "book"
    for path in sorted(book.glob("*.ipynb")):
        for i, cell in enumerate(json.loads(path.read_text())["cells"]):
            source = "".join(cell["source"])
            assert 'config.backbone == "smollm2-135m"' not in source, f"{path.name} cell {i}: use measured_on(prm_name, ...)"
