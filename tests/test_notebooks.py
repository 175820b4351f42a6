"""The chapters' compared outputs stay deterministic by construction.

nbval (``--nbval-lax``) compares only the cells tagged ``nbval-check-output``. A trained model
differs in its low digits between CPUs, thread counts and torch builds, so no compared cell may
print anything computed from one: this test follows every name bound to a trained model
(``load_or_train``, ``ProcessRewardModel.load``) through the assignments of later cells and fails
if a compared cell reads one of them.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

BOOK = Path(__file__).resolve().parents[1] / "book"
CHAPTERS = sorted(BOOK.glob("*.ipynb"))
SOURCES = {"load_or_train", "load"}  # load_or_train(...), ProcessRewardModel.load(...)


def _code(cell: dict) -> str:
    # IPython magics (the Colab install cell) are not Python: each becomes a `pass` at its indentation
    lines = "".join(cell["source"]).splitlines()
    return "\n".join(line[: len(line) - len(line.lstrip())] + "pass" if line.lstrip().startswith(("%", "!")) else line
                     for line in lines)


def _calls_source(node: ast.AST) -> bool:
    for call in ast.walk(node):
        if isinstance(call, ast.Call):
            f = call.func
            name = f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else None
            if name in SOURCES:
                return True
    return False


def _local(node: ast.AST) -> set[str]:
    """Names bound only inside a statement: comprehension targets, and the arguments and locals of functions."""
    names: set[str] = set()
    for n in ast.walk(node):
        if isinstance(n, ast.comprehension):
            names |= {t.id for t in ast.walk(n.target) if isinstance(t, ast.Name)}
        elif isinstance(n, (ast.FunctionDef, ast.Lambda)):
            names |= {a.arg for a in ast.walk(n.args) if isinstance(a, ast.arg)}
            body = n.body if isinstance(n.body, list) else [n.body]
            names |= {t.id for b in body for t in ast.walk(b) if isinstance(t, ast.Name) and isinstance(t.ctx, ast.Store)}
    return names


def _reads(node: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)} - _local(node)


def _binds(node: ast.AST) -> set[str]:
    names = {n.id for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)} - _local(node)
    if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
        names.add(node.name)
    return names


def model_tainted_cells(notebook: dict) -> list[tuple[int, set[str]]]:
    """(cell index, trained-model names it reads) for every compared cell that reads one."""
    tainted: set[str] = set()
    found = []
    for index, cell in enumerate(notebook["cells"]):
        if cell["cell_type"] != "code":
            continue
        tree = ast.parse(_code(cell))
        used, loads = set(), False
        for statement in tree.body:
            reads = _reads(statement) & tainted
            used |= reads
            calls = _calls_source(statement)
            loads |= calls and not isinstance(statement, ast.FunctionDef)  # a definition loads nothing yet
            if reads or calls:
                tainted |= _binds(statement)
            else:  # bound again to something no model computed
                tainted -= _binds(statement)
        if "nbval-check-output" in cell.get("metadata", {}).get("tags", []) and (used or loads):
            found.append((index, used))
    return found


@pytest.mark.parametrize("path", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_no_compared_cell_reads_a_trained_model(path):
    assert model_tainted_cells(json.loads(path.read_text())) == []


@pytest.mark.parametrize("path", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_no_stored_widget_state(path):
    # a progress bar's widget state makes the rendered page fetch the widget manager from a CDN
    assert "widgets" not in json.loads(path.read_text())["metadata"]


def test_the_check_finds_a_compared_cell_that_prints_a_score():
    def cell(source, tags=()):
        return {"cell_type": "code", "metadata": {"tags": list(tags)}, "source": source}

    notebook = {"cells": [
        cell("prm, metrics = load_or_train(*course_preset())"),
        cell("probs = prm.score_batch(items)\nbest = max(probs)"),
        cell("print(len(items))", ["nbval-check-output"]),
        cell("print(round(best, 3))", ["nbval-check-output"]),
        cell("model = ProcessRewardModel.load(path)\nprint(model)", ["nbval-check-output"]),
        cell("def gap(a):\n    return ProcessRewardModel.load(a).x", ["nbval-check-output"]),
        cell("print(gap(path))", ["nbval-check-output"]),
    ]}
    assert model_tainted_cells(notebook) == [(3, {"best"}), (4, {"model"}), (6, {"gap"})]
