"""A "Predict first" prompt is answered by the code cell after it, whose output stays folded until
the reader opens it, in both editions."""

import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))  # course tooling, not part of prm_lib
from student_edition import student_notebook  # noqa: E402

CHAPTERS = [ROOT / "book" / f"{name}.ipynb" for name in
            ("01_orm_vs_prm", "02_architecture", "03_training_data", "04_loss", "05_training", "06_aggregation",
             "07_verification", "08_search", "09_real_solutions", "a1_performance", "a2_scaling_out")]


def answering_cells(nb):
    cells = nb.cells
    return [cells[i + 1] for i, c in enumerate(cells[:-1])
            if c.cell_type == "markdown" and c.source.startswith("**Predict first.**")]


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_the_cell_that_answers_a_prediction_folds_its_output_in_both_editions(path):
    nb = nbformat.read(path, as_version=4)
    for edition in (nb, student_notebook(nb)):
        cells = answering_cells(edition)
        assert cells, f"{path.name} has no prediction prompt"
        for cell in cells:
            assert cell.cell_type == "code", f"{path.name}: a prediction prompt is not followed by code"
            assert "hide-output" in cell.metadata.get("tags", []), f"{path.name}: {cell.source[:60]!r}"
