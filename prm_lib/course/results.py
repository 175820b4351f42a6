"""Where the course's recorded benchmark results are, in a checkout and in an installed wheel.

Chapter 5 (the slip runs) and appendix A (every speed figure) report runs they do not re-run: the
JSON lines the scripts in ``benchmarks/`` printed, kept in ``benchmarks/results/``. That folder is
their one home (the benchmark scripts' output is copied there and ``benchmarks/RESULTS.md`` names
it), but a chapter on Colab has no checkout: it has only what ``pip install`` put in site-packages.
So the wheel ships the files the chapters read as package data, ``prm_lib/course/recorded/``
(``pyproject.toml`` maps that package to ``benchmarks/results/``: the JSON files, the ``.jsonl``
runs and the GPU runs' ``*_environment.txt``; not the logs, profiles and older runs in subfolders),
and a chapter asks this module for the folder instead of naming a path of the repository.
"""

from __future__ import annotations

from pathlib import Path

# the folder, beside this module, that an installed wheel holds the recorded results in
SHIPPED = Path(__file__).resolve().parent / "recorded"
# their home in a checkout (an editable install, ``pip install -e .``, runs from it)
CHECKOUT = Path(__file__).resolve().parents[2] / "benchmarks" / "results"


def results_dir() -> Path:
    """The folder of the recorded benchmark results: the wheel's package data, else the checkout's.

    Found by where this module is, not by the working directory, so a chapter reads the same files
    wherever it runs (``book/`` in a checkout, any folder on Colab).
    """
    for folder in (SHIPPED, CHECKOUT):
        if folder.is_dir():
            return folder
    raise FileNotFoundError(f"the recorded benchmark results are in neither {SHIPPED} (an installed prm_lib) "
                            f"nor {CHECKOUT} (a checkout); reinstall prm_lib")


def read_results(name: str) -> str:
    """The text of one recorded result file, e.g. ``read_results("cpu_slip_runs.jsonl")``."""
    return (results_dir() / name).read_text()
