"""The student edition: the same chapters with every worked solution taken out.

One source, two editions. In the chapters, exercises follow one layout:

* an ``{exercise}`` directive (label ``ex-<chapter>-<n>``) in a Markdown cell;
* for a code exercise, a code cell tagged ``exercise-stub`` with the function to
  fill in and its ``check(...)`` line (hidden and expected to raise in the full
  edition, where it is still run);
* the solution: a Markdown cell that is one ``{solution}`` directive, or a gated
  block from a ``{solution-start}`` cell to a ``{solution-end}`` cell with code
  cells between.

``student_notebook`` deletes the solution cells from the notebook itself (hiding
them in HTML is not enough: students download the ``.ipynb``), shows the stubs,
and keeps every other output. ``build_student_source`` writes a book source tree
(config, table of contents, chapters) that ``jupyter-book build`` renders without
executing anything; ``python -m prm_lib student-edition`` runs it.
"""

from __future__ import annotations

import copy
import re
import shutil
from pathlib import Path
from typing import Any

import nbformat
import yaml

STUB_TAG = "exercise-stub"
SOLUTION_TAG = "exercise-solution"
_EXERCISE = re.compile(r"^[`:]{3,}\{exercise\}[^\n]*\n(?:.*\n)*?:label:\s*(\S+)", re.MULTILINE)
_SOLUTION_OPEN = re.compile(r"^\s*[`:]{3,}\{solution(-start|-end)?\}\s*(\S*)")


def _solution_kind(cell: Any) -> tuple[str | None, str]:
    """('' | '-start' | '-end', label) for a Markdown cell that is a solution directive, else (None, '')."""
    if cell.cell_type != "markdown":
        return None, ""
    m = _SOLUTION_OPEN.match(cell.source)
    if m:
        return m.group(1) or "", m.group(2)
    if "{solution" in cell.source:
        raise ValueError(f"a solution directive must start its own Markdown cell: {cell.source[:80]!r}")
    return None, ""


def exercise_labels(nb: Any) -> list[str]:
    """Labels of the ``{exercise}`` directives, in order."""
    return [m.group(1) for c in nb.cells if c.cell_type == "markdown" for m in _EXERCISE.finditer(c.source)]


def solution_labels(nb: Any) -> list[str]:
    """Labels that a ``{solution}`` or ``{solution-start}`` cell answers, in order."""
    out = []
    for c in nb.cells:
        kind, label = _solution_kind(c)
        if kind in ("", "-start"):
            out.append(label)
    return out


def student_notebook(nb: Any) -> Any:
    """A copy of ``nb`` with every solution cell removed and every exercise stub shown, without output."""
    out = copy.deepcopy(nb)
    cells, inside = [], None
    for c in out.cells:
        kind, label = _solution_kind(c)
        if inside is not None:
            if kind == "-end":
                inside = None
            elif kind is not None:
                raise ValueError(f"solution block for {inside} is not closed before another solution directive")
            continue
        if kind == "-start":
            inside = label
            continue
        if kind == "-end":
            raise ValueError("{solution-end} without a {solution-start}")
        if kind == "":
            continue
        tags = c.metadata.get("tags", [])
        if SOLUTION_TAG in tags:
            raise ValueError("a cell tagged exercise-solution lies outside a {solution-start} ... {solution-end} block")
        if STUB_TAG in tags:
            c.metadata["tags"] = [t for t in tags if t not in ("remove-cell", "raises-exception")]
            c.outputs, c.execution_count = [], None
        cells.append(c)
    if inside is not None:
        raise ValueError(f"solution block for {inside} has no {{solution-end}}")
    out.cells = cells
    return out


def clear_stub_outputs(path: str | Path) -> int:
    """Drop the stored outputs of a chapter's exercise stubs (their expected "not implemented" error)
    so the stored notebook holds no traceback; returns how many stubs were cleared. Run after
    executing the chapters (``make notebooks``); nbval still runs the stubs and expects the error."""
    nb = nbformat.read(path, as_version=4)
    stubs = [c for c in nb.cells if STUB_TAG in c.metadata.get("tags", [])]
    for c in stubs:
        c.outputs, c.execution_count = [], None
    nbformat.write(nb, path)
    return len(stubs)


def build_student_source(root: str | Path = ".", out: str | Path = "_build/student_src") -> Path:
    """Write the student edition's book source under ``out``; returns that folder."""
    root, out = Path(root).resolve(), Path(out).resolve()
    if out == root or out == root / "book" or root / "book" in out.parents:
        raise ValueError(f"refusing to write the student edition over the book's own source ({out})")
    shutil.rmtree(out, ignore_errors=True)
    (out / "book").mkdir(parents=True)
    config = yaml.safe_load((root / "_config.yml").read_text())
    config["title"] = f"{config['title']} (student edition)"
    config.setdefault("execute", {})["execute_notebooks"] = "off"  # stubs would fail; chapter outputs are kept
    config.setdefault("sphinx", {}).setdefault("config", {})["hide_solutions"] = True
    # Colab buttons would open the repository's notebooks, which hold the solutions.
    config.pop("launch_buttons", None)
    config.setdefault("html", {})["use_repository_button"] = False
    (out / "_config.yml").write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True))
    shutil.copy(root / "_toc.yml", out / "_toc.yml")
    for path in sorted((root / "book").iterdir()):
        if path.suffix == ".ipynb":
            nbformat.write(student_notebook(nbformat.read(path, as_version=4)), out / "book" / path.name)
        elif path.is_file():
            shutil.copy(path, out / "book" / path.name)
        elif path.is_dir() and not path.name.startswith((".", "_")):
            shutil.copytree(path, out / "book" / path.name)
    return out


# -- a Sphinx extension for the book (listed in _config.yml's sphinx.extra_extensions) ----------
def _drop_duplicate_scripts(app: Any, pagename: str, templatename: str, context: dict, doctree: Any) -> None:
    """Jupyter Book 1.0.4 with Sphinx 7.4 emits sphinx-thebe's and sphinx-togglebutton's inline
    scripts twice per page; the second ``const THEBE_JS_URL`` is a JavaScript error on every page
    (the browser test found it). Keep the first copy of each identical script."""
    seen, kept = set(), []
    for script in context.get("script_files", []):
        # the copies differ only in filename None against "" (a body-only script either way)
        key = (str(getattr(script, "filename", script) or ""),
               tuple(sorted((k, str(v)) for k, v in getattr(script, "attributes", {}).items())))
        if key not in seen:
            seen.add(key)
            kept.append(script)
    context["script_files"] = kept


def setup(app: Any) -> dict[str, Any]:
    app.connect("html-page-context", _drop_duplicate_scripts)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
