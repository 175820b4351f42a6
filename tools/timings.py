"""Each chapter's compute time, read from its own stored notebook, and the one table that shows it.
Course tooling, not part of ``prm_lib``; run it from the repository root:

    python tools/timings.py            # make timings: rewrite book/_timings.md
    python tools/timings.py --check    # exit 1 if book/_timings.md is not what the notebooks say

A chapter's compute time is the sum of its code cells' durations, each the time from
``iopub.execute_input`` to ``shell.execute_reply`` in the cell's ``metadata.execution``, which
``jupyter-execute`` stores when it records a chapter. So the table always describes the stored
outputs the reader sees, and re-recording a chapter (``make notebooks``) updates it.

Study time (reading, predicting, the exercises) cannot be measured from a notebook: it is an
estimate, kept here in ``CHAPTERS`` beside what a first run adds, and the chapter openers quote it
(``tests/test_timings.py`` checks that they do, and that the committed table is this tool's output).

Needs ``nbformat`` (it comes with jupyter-book).
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from pathlib import Path
from typing import NamedTuple

import nbformat

ROOT = Path(__file__).resolve().parents[1]
TABLE = Path("book/_timings.md")


class Chapter(NamedTuple):
    notebook: str  # the file under book/
    title: str  # as the table shows it
    study: str  # estimated study time; the chapter's opener quotes it as "**Study time:** <study>"
    first_run: str  # what a first run adds (models trained once and cached), "" if nothing; {fields} of first_run_times


CHAPTERS = [
    Chapter("01_orm_vs_prm.ipynb", "1. ORM vs PRM", "about 45 min",
            "about 40 s to unpack SmolLM2 once"),
    Chapter("02_architecture.ipynb", "2. Architecture", "about 1 h 15 min",
            "about 40 s to unpack SmolLM2, if chapter 1 has not"),
    Chapter("03_training_data.ipynb", "3. Training data", "about 1 h 15 min", ""),
    Chapter("04_loss.ipynb", "4. The loss", "about 1 h 30 min",
            "the five loss-variant models, trained once: {loss} each on an otherwise idle 2-core CPU"),
    Chapter("05_training.ipynb", "5. Training", "about 2 h",
            "the PRM, trained once: about {prm} (about {prm_surprise} of them for the frozen model's surprise, "
            "kept on disk)"),
    Chapter("06_aggregation.ipynb", "6. Aggregation", "about 1 h", "the PRM, if chapter 5 has not trained it"),
    Chapter("07_verification.ipynb", "7. Verification", "about 2 h",
            "the ORM, trained once: about {orm} (it reuses the PRM's surprise); the PRM, if chapter 5 "
            "has not trained it"),
    Chapter("08_search.ipynb", "8. Search", "about 1 h 30 min", "the PRM, if chapter 5 has not trained it"),
    Chapter("09_real_solutions.ipynb", "9. Real solutions", "about 1 h 30 min",
            "the real-data PRM and ORM, trained once: about {real} and {real_orm}; the PRM, if chapter 5 has not "
            "trained it"),
    Chapter("a1_performance.ipynb", "A. Performance", "about 30 min", ""),
    Chapter("a2_scaling_out.ipynb", "B. Scaling out", "about 1 h", ""),
]

INTRO = """\
*Compute* is one top-to-bottom run of the chapter as stored: the sum of its cells' recorded
times on the 2-core x86_64 CPU that recorded the book, with the course's models already cached.
Another machine takes another time; a chapter's slow cells print their own. *Study* is an
estimate of the time to read the chapter, make its predictions and do its exercises.
`tools/timings.py` writes this table from the notebooks themselves (`make timings`).
"""


def _stamp(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def compute_seconds(path: str | Path) -> float:
    """The sum of the recorded durations of a notebook's code cells, in seconds."""
    nb = nbformat.read(path, as_version=4)
    total = 0.0
    for cell in nb.cells:
        if cell.cell_type != "code" or not cell.source.strip():
            continue
        execution = cell.metadata.get("execution") or {}
        if "iopub.execute_input" not in execution or "shell.execute_reply" not in execution:
            raise ValueError(f"{path}: a code cell has no recorded execution time; record the chapter "
                             f"with jupyter-execute first: {cell.source[:60]!r}")
        total += (_stamp(execution["shell.execute_reply"]) - _stamp(execution["iopub.execute_input"])).total_seconds()
    return total


def format_seconds(seconds: float) -> str:
    """'under 1 s', '18 s', '2 min 33 s'."""
    s = round(seconds)
    if s < 1:
        return "under 1 s"
    if s < 60:
        return f"{s} s"
    return f"{s // 60} min {s % 60:02d} s"


def first_run_times(root: str | Path = ROOT) -> dict[str, str]:
    """The training times the first-run column quotes, from ``prm_lib/reference_times.json`` under ``root``
    (the course's models as the machine that recorded the book trained them; tools/reference_times.py)."""
    from prm_lib.course.models import course_models
    from prm_lib.zoo import zoo_path

    measured = json.loads((Path(root) / "prm_lib" / "reference_times.json").read_text())["models"]
    prm, orm, *loss, real, real_orm = (measured[zoo_path(name, config).name] for name, config in course_models())
    low, high = min(m["minutes"] for m in loss), max(m["minutes"] for m in loss)
    return {"prm": f"{prm['minutes']:.0f} min", "prm_surprise": f"{prm['setup_minutes']:.0f}",
            "orm": f"{orm['minutes']:.0f} min", "loss": f"{low:.1f} min" if low == high else f"{low:.1f} to {high:.1f} min",
            "real": f"{real['minutes']:.0f} min", "real_orm": f"{real_orm['minutes']:.0f} min"}


def table(root: str | Path = ROOT) -> str:
    """The text of book/_timings.md, computed from the notebooks under ``root``."""
    first_run = first_run_times(root)
    rows = ["| chapter | compute, models cached | a first run adds | study |", "| --- | --- | --- | --- |"]
    for ch in CHAPTERS:
        seconds = compute_seconds(Path(root) / "book" / ch.notebook)
        rows.append(f"| {ch.title} | {format_seconds(seconds)} | {ch.first_run.format(**first_run)} | {ch.study} |")
    return INTRO + "\n" + "\n".join(rows) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python tools/timings.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", default=str(ROOT), help="the repository root (default: this tool's repository)")
    parser.add_argument("--check", action="store_true", help="compare with book/_timings.md instead of writing it")
    args = parser.parse_args(argv)
    path = Path(args.root) / TABLE
    text = table(args.root)
    if args.check:
        if not path.exists() or path.read_text() != text:
            print(f"{path} is out of date: run `make timings`", file=sys.stderr)
            return 1
        print(f"{path} is up to date")
        return 0
    path.write_text(text)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
