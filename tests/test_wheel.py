"""The wheel holds the whole package: what a reader gets from the chapters' install cell on Colab.

``pip install "prm_lib @ git+..."`` clones the repository and builds a wheel from it; ``make setup``'s
``pip install -e .`` runs from the checkout instead, and so hides a subpackage or a data file the
wheel leaves out. This test builds the wheel from the files git holds (tracked, and new files not
ignored: what the next commit holds), offline and with no build isolation, installs it with
``--no-deps`` into a fresh virtual environment outside the checkout that borrows this environment's
installed dependencies but not its editable prm_lib, and then, from an empty folder, imports every
module, runs every command's ``--help`` and the console script, trains a tiny model for 4 steps,
and reloads and scores it from the command line.

The borrowed dependencies come through a ``.pth`` file listing this environment's site-packages:
Python adds those folders to ``sys.path`` but does not process the ``.pth`` files inside them, so
setuptools' editable finder (``__editable__*.pth``) never runs there.
"""

from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from prm_lib.cli import COMMANDS

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"  # the recorded results' home; the wheel ships some as prm_lib/course/recorded/
TIMEOUT = 300


def repo_files() -> list[str]:
    """The files a clone of the next commit has: tracked, plus untracked ones git does not ignore."""
    try:
        listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                                capture_output=True, check=True, timeout=60).stdout.decode()
    except (OSError, subprocess.SubprocessError) as err:
        pytest.fail(f"the wheel test builds from the files git holds, as `pip install git+...` does, but "
                    f"`git ls-files` failed in {ROOT}: {err}")
    return sorted(f for f in listed.split("\0") if f and (ROOT / f).is_file())  # a deleted file is not built


def run(command: list[str], *, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    done = subprocess.run([str(c) for c in command], cwd=cwd, env=env, capture_output=True, text=True, timeout=TIMEOUT)
    assert done.returncode == 0, f"$ {' '.join(map(str, command))}\n(exit {done.returncode})\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}"
    return done


def dependency_folders() -> list[str]:
    """This environment's site-packages folders (.venv/ may lie in the checkout; none may hold prm_lib itself)."""
    folders = [*site.getsitepackages(), sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]]
    unique = dict.fromkeys(str(Path(f).resolve()) for f in folders if Path(f).is_dir())
    return [f for f in unique if not (Path(f) / "prm_lib").exists()]


class Installed:
    """The built wheel and the fresh environment it is installed in."""

    def __init__(self, tmp: Path):
        self.files = repo_files()
        # 1. the wheel, from a copy of the repository's files (a build writes build/ and *.egg-info beside them)
        source = tmp / "source"
        for name in self.files:
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
        quiet = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1"}
        run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
             source, "-w", tmp / "dist"], cwd=tmp, env=quiet)
        (self.wheel,) = (tmp / "dist").glob("prm_lib-*.whl")
        # 2. a fresh environment outside the checkout, from the base interpreter
        self.venv = tmp / "venv"
        base = getattr(sys, "_base_executable", sys.executable)
        made = subprocess.run([base, "-m", "venv", "--without-pip", str(self.venv)], capture_output=True, text=True,
                              timeout=TIMEOUT)
        if made.returncode != 0:
            pytest.fail(f"the base interpreter {base} cannot make a virtual environment, which the wheel test "
                        f"needs (on Debian: apt-get install python3-venv):\n{made.stderr[-2000:]}")
        self.bin = self.venv / ("Scripts" if os.name == "nt" else "bin")
        self.python = self.bin / ("python.exe" if os.name == "nt" else "python")
        self.site = Path(run([self.python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             cwd=tmp).stdout.strip())
        # its dependencies: this environment's site-packages, after its own (its .pth files stay unread)
        (self.site / "_prm_lib_test_dependencies.pth").write_text("\n".join(dependency_folders()) + "\n")
        # --ignore-installed: pip sees the editable prm_lib of this environment and must neither keep nor remove it
        run([self.python, "-m", "pip", "install", "--no-deps", "--no-index", "--ignore-installed", "-q", self.wheel],
            cwd=tmp, env=quiet)
        # 3. where the commands run: an empty folder, no PYTHONPATH, no model hub, a cache of its own
        self.work = tmp / "work"
        self.work.mkdir()
        drop = {"PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "VIRTUAL_ENV", "PYTHONSAFEPATH"}
        self.env = {k: v for k, v in os.environ.items() if k not in drop}
        self.env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TQDM_DISABLE="1", HF_HUB_DISABLE_PROGRESS_BARS="1",
                        TOKENIZERS_PARALLELISM="false", PYTHONNOUSERSITE="1", OMP_NUM_THREADS="1",
                        PRM_LIB_CACHE=str(tmp / "cache"), HF_HOME=str(tmp / "hf"), MPLBACKEND="Agg")
        self.env.pop("PRM_LIB_TRAIN_SEED", None)

    def python_json(self, code: str) -> dict:
        """Run ``code`` with the fresh environment's python in the empty folder; it prints one JSON object."""
        return json.loads(run([self.python, "-c", code], cwd=self.work, env=self.env).stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Installed:
    return Installed(tmp_path_factory.mktemp("wheel"))


def test_the_wheel_holds_every_file_of_the_package_and_the_recorded_results_the_chapters_read(installed):
    in_wheel = set(zipfile.ZipFile(installed.wheel).namelist())
    package = {f for f in installed.files if f.startswith("prm_lib/")}
    assert package - in_wheel == set(), "files of prm_lib/ the wheel lacks (a subpackage with no __init__.py, " \
                                        "or a data file no package-data pattern in pyproject.toml matches)"
    recorded = {n for n in in_wheel if n.startswith("prm_lib/course/recorded/")}
    assert recorded and in_wheel - package - recorded == {n for n in in_wheel if ".dist-info/" in n}
    names = {Path(n).name for n in recorded}
    # appendix A reads every top-level JSON file and its GPU card's environment; chapter 5 the slip runs
    assert {p.name for p in RESULTS.glob("*.json")} <= names and "cpu_slip_runs.jsonl" in names
    assert {p.name for p in RESULTS.glob("*_environment.txt")} <= names
    assert not any(n.endswith(("_log.txt", "_profile.txt")) for n in names)  # logs and profiles stay in the repository


def test_every_module_imports_from_the_installed_wheel_not_the_checkout(installed):
    found = installed.python_json("""
import importlib, json, pkgutil, sys, prm_lib
names = ["prm_lib"] + [m.name for m in pkgutil.walk_packages(prm_lib.__path__, "prm_lib.")]
failed = {}
for name in names:
    if name != "prm_lib.__main__":  # runs the command line; `python -m prm_lib` runs it below
        try:
            importlib.import_module(name)
        except Exception as err:
            failed[name] = repr(err)
files = [m.__file__ for n, m in sys.modules.items() if n.startswith("prm_lib") and getattr(m, "__file__", None)]
editable = [n for n in sys.modules if n.startswith("__editable__")]
print(json.dumps({"file": prm_lib.__file__, "names": names, "failed": failed, "files": files, "editable": editable}))
""")
    assert Path(found["file"]).resolve() == (installed.site / "prm_lib" / "__init__.py").resolve(), found["file"]
    assert found["editable"] == [] and all(Path(f).resolve().is_relative_to(installed.site.resolve()) for f in found["files"])
    expected = {f[:-3].replace("/", ".").removesuffix(".__init__") for f in installed.files
                if f.startswith("prm_lib/") and f.endswith(".py")}
    assert len(found["names"]) == len(expected) and set(found["names"]) == expected
    assert found["failed"] == {}


def test_the_installed_package_finds_the_recorded_results_the_chapters_read(installed):
    found = installed.python_json("""
import json
from prm_lib.course.results import read_results, results_dir
folder = results_dir()
print(json.dumps({"folder": str(folder), "files": {p.name: p.read_text() for p in folder.iterdir()},
                  "slips": len(read_results("cpu_slip_runs.jsonl").splitlines())}))
""")
    assert Path(found["folder"]).resolve() == (installed.site / "prm_lib" / "course" / "recorded").resolve()
    for name, text in found["files"].items():
        assert text == (RESULTS / name).read_text(), name  # the repository's files, one home
    assert found["slips"] == len((RESULTS / "cpu_slip_runs.jsonl").read_text().splitlines()) > 0


def test_every_command_and_the_console_script_run(installed):
    python_m = [installed.python, "-m", "prm_lib"]
    assert "usage: python -m prm_lib" in run([*python_m, "--help"], cwd=installed.work, env=installed.env).stdout
    for command in COMMANDS:
        assert command in run([*python_m, command, "--help"], cwd=installed.work, env=installed.env).stdout
    script = installed.bin / ("prm-lib.exe" if os.name == "nt" else "prm-lib")
    assert script.is_file(), "the wheel installs no prm-lib console script"
    assert "train" in run([script, "--help"], cwd=installed.work, env=installed.env).stdout


def test_a_tiny_model_trains_saves_reloads_and_scores_from_the_command_line(installed):
    out = installed.work / "tiny"
    run([installed.python, "-m", "prm_lib", "train", "--preset", "tiny", "--out", out, "--max-steps", "4", "--no-progress"],
        cwd=installed.work, env=installed.env)
    assert (out / "prm_config.json").is_file()
    problem, steps = "What is (2 + 3) × 2?", ["2 + 3 = 5.", "5 × 2 = 10.", "The answer is 10."]
    printed = run([installed.bin / "prm-lib", "score", "--checkpoint", out, "--device", "cpu", "--problem", problem,
                   *[a for step in steps for a in ("--step", step)]], cwd=installed.work, env=installed.env).stdout
    scores = json.loads(printed.strip().splitlines()[-1])["step_probabilities"]
    assert len(scores) == 3 and all(0 < p < 1 for p in scores)
    reloaded = installed.python_json(f"""
import json
from prm_lib.model import ProcessRewardModel
print(json.dumps(ProcessRewardModel.load({str(out)!r}, device="cpu").score({problem!r}, {steps!r})))
""")
    assert reloaded == scores


def test_the_installed_package_reads_the_shipped_real_solutions_under_the_same_cache_name(installed):
    from prm_lib.zoo import config_hash, preset

    found = installed.python_json("""
import json
from prm_lib import datasets
from prm_lib.zoo import config_hash, preset
print(json.dumps({"folder": str(datasets.HERE), "test": len(datasets.big_bench_mistake("word_sorting", "test")),
                  "gsm8k": len(datasets.gsm8k_solutions()), "hash": config_hash(preset("cpu-real")),
                  "licences": sorted(p.parent.name for p in datasets.HERE.glob("*/LICENSE"))}))
""")
    assert Path(found["folder"]).resolve() == (installed.site / "prm_lib" / "datasets").resolve()
    from prm_lib import datasets

    assert found["test"] == len(datasets.big_bench_mistake("word_sorting", "test")) and found["gsm8k"] == 5276
    assert found["licences"] == ["big_bench_mistake", "gsm8k"]
    assert found["hash"] == config_hash(preset("cpu-real"))  # a model trained from a checkout is found from the wheel
