"""One source for every chapter's timing: book/_timings.md is what tools/timings.py computes from
the notebooks' stored execution times, and a chapter opener that gives a study time gives the tool's."""

import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))  # course tooling, not part of prm_lib
from timings import CHAPTERS, TABLE, compute_seconds, format_seconds, main as timings_main, table  # noqa: E402


def test_the_committed_table_is_what_the_notebooks_say():
    assert (ROOT / TABLE).read_text() == table(ROOT), "book/_timings.md is out of date: run `make timings`"


def test_every_chapter_of_the_book_is_in_the_table():
    assert sorted(ch.notebook for ch in CHAPTERS) == sorted(p.name for p in (ROOT / "book").glob("*.ipynb"))


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda ch: ch.notebook.split("_")[0])
def test_an_opener_that_gives_a_study_time_gives_the_tables(chapter):
    nb = nbformat.read(ROOT / "book" / chapter.notebook, as_version=4)
    opener = next(c.source for c in nb.cells if c.cell_type == "markdown" and "{admonition} In this chapter" in c.source)
    stated = re.findall(r"\*\*Study time:\*\* ([^.;\n]*)", opener)
    assert stated in ([], [chapter.study]), f"{chapter.notebook} says {stated}, the table says {chapter.study!r}"


def test_compute_time_is_the_sum_of_recorded_cell_times(tmp_path):
    nb = nbformat.v4.new_notebook()
    for start, end in [("2026-01-01T00:00:00.000Z", "2026-01-01T00:00:01.500Z"),
                       ("2026-01-01T00:00:02.000Z", "2026-01-01T00:01:05.000Z")]:
        cell = nbformat.v4.new_code_cell("pass")
        cell.metadata["execution"] = {"iopub.execute_input": start, "shell.execute_reply": end}
        nb.cells.append(cell)
    nb.cells.append(nbformat.v4.new_markdown_cell("text"))
    nbformat.write(nb, tmp_path / "chapter.ipynb")
    assert compute_seconds(tmp_path / "chapter.ipynb") == pytest.approx(64.5)
    assert [format_seconds(s) for s in (0.2, 17.6, 64.5, 608.0)] == ["under 1 s", "18 s", "1 min 04 s", "10 min 08 s"]


def test_a_chapter_without_recorded_times_is_refused(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells.append(nbformat.v4.new_code_cell("pass"))
    nbformat.write(nb, tmp_path / "chapter.ipynb")
    with pytest.raises(ValueError, match="no recorded execution time"):
        compute_seconds(tmp_path / "chapter.ipynb")


def test_check_fails_on_a_stale_table(tmp_path, capsys):
    (tmp_path / "book").mkdir()
    (tmp_path / "prm_lib").mkdir()
    (tmp_path / "prm_lib" / "reference_times.json").write_bytes((ROOT / "prm_lib" / "reference_times.json").read_bytes())
    for ch in CHAPTERS:
        (tmp_path / "book" / ch.notebook).write_bytes((ROOT / "book" / ch.notebook).read_bytes())
    assert timings_main(["--root", str(tmp_path), "--check"]) == 1
    assert timings_main(["--root", str(tmp_path)]) == 0
    assert timings_main(["--root", str(tmp_path), "--check"]) == 0
    (tmp_path / TABLE).write_text((tmp_path / TABLE).read_text().replace("| 1. ORM vs PRM | ", "| 1. ORM vs PRM | 9"))
    assert timings_main(["--root", str(tmp_path), "--check"]) == 1


def test_the_reference_training_times_are_those_of_the_course_models():
    # prm_lib.zoo quotes them on an empty cache; a preset changed without re-measuring fails here
    done = subprocess.run([sys.executable, "tools/reference_times.py", "--check"], cwd=ROOT, capture_output=True,
                          text=True, env={k: v for k, v in os.environ.items() if k != "PRM_LIB_TRAIN_SEED"})
    assert done.returncode == 0, done.stderr
