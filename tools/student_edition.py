"""The student edition: the same chapters with every worked solution taken out. Course tooling,
not part of ``prm_lib``; run it from the repository root:

    python tools/student_edition.py build --out _build/student_src   # make student-book
    python tools/student_edition.py clear-stubs book/*.ipynb         # make notebooks, after executing

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
(config, table of contents, chapters, the book's local Sphinx extensions) that
``jupyter-book build`` renders without executing anything. ``clear_stub_outputs``
drops the stubs' stored "not implemented" errors from executed chapters.

Needs ``nbformat`` and ``pyyaml`` (both come with jupyter-book).
"""

from __future__ import annotations

import argparse
import copy
import json
import re
import shutil
import sys
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
    # the book's own Sphinx extensions (sphinx.local_extensions: name -> folder relative to the config),
    # copied to the same place so the student tree builds on its own
    for folder in (config.get("sphinx", {}).get("local_extensions") or {}).values():
        src = (root / folder).resolve()
        if root not in src.parents:
            raise ValueError(f"a local extension folder must lie inside the repository: {folder}")
        shutil.copytree(src, out / src.relative_to(root), dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("__pycache__"))
    for path in sorted((root / "book").iterdir()):
        if path.suffix == ".ipynb":
            nbformat.write(student_notebook(nbformat.read(path, as_version=4)), out / "book" / path.name)
        elif path.is_file():
            shutil.copy(path, out / "book" / path.name)
        elif path.is_dir() and not path.name.startswith((".", "_")):
            shutil.copytree(path, out / "book" / path.name)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python tools/student_edition.py", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser("build", help="write the book's student edition (no solutions) as a book source",
                           description="Copy the book with every worked solution removed from the notebooks and "
                                       "exercise stubs shown; build it with `jupyter-book build OUT`.")
    build.add_argument("--root", default=".", help="the repository root (default: .)")
    build.add_argument("--out", default="_build/student_src", help="where to write it (default: _build/student_src)")
    clear = sub.add_parser("clear-stubs", help="drop the stored outputs of the exercise stubs of executed chapters")
    clear.add_argument("notebooks", nargs="+", help="the chapters to clear in place (book/*.ipynb)")
    args = parser.parse_args(argv)
    try:
        if args.command == "build":
            out = build_student_source(args.root, args.out)
            notebooks = sorted((out / "book").glob("*.ipynb"))
            n = sum(len(exercise_labels(nbformat.read(nb, as_version=4))) for nb in notebooks)
            print(json.dumps({"out": str(out), "notebooks": len(notebooks), "exercises": n}))
        else:
            print(json.dumps({"stubs_cleared": {p: clear_stub_outputs(p) for p in args.notebooks}}))
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
