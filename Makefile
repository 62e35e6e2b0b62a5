# The course kit's commands. Run `make help` for the list.
# `make demo` and `make test` create .venv from requirements.lock on first use and reuse it afterwards:
# the venv is rebuilt when requirements.lock or pyproject.toml changes, or when the interpreter does.

# The newest of Python 3.13, 3.12 and 3.11 on the PATH; `make PYTHON=/path/to/python3.x ...` to choose.
ifndef PYTHON
PYTHON := $(shell for p in python3.13 python3.12 python3.11 python3; do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(not (3, 11) <= sys.version_info[:2] <= (3, 13))' \
	>/dev/null 2>&1 && { echo $$p; break; }; done)
endif
# What identifies the interpreter a venv was built with; a different one rebuilds .venv from scratch.
PY_ID   = $(shell $(PYTHON) -c 'import platform, sys; print(platform.python_version(), sys.base_prefix)' 2>/dev/null)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# A read-only copy of the course data (see README, "Profiles and data"). Used when present; CI has it.
ADL_DATA_MIRROR ?= $(wildcard $(CURDIR)/../shared/datasets)
export ADL_DATA_MIRROR
# Keep TensorFlow's C++ start-up chatter out of test and demo logs (adl_helpers does the same for students).
export TF_CPP_MIN_LOG_LEVEL ?= 2
# Keep the smoke profile's data cache inside the checkout, so a test run never touches ~/.cache.
TEST_DATA_DIR := $(CURDIR)/build/data-cache
# The student edition (`make student`): where it is written.
DEST ?= build/student
# The environment that imitates Colab (`make test-colab`): Python 3.13 and Colab's own package versions.
COLAB_PYTHON ?= python3.13
COLAB_VENV   := build/colab-venv

.PHONY: help setup demo test test-colab test-colab-latest test-fast lint lab release student slides images lock lock-colab clean FORCE

help:
	@echo "make demo      set up .venv, build the release, autograde the sample classes, print grades and reports"
	@echo "make test      set up .venv and run the whole test suite, notebooks included (smoke profile)"
	@echo "make test-fast the unit tests alone (no grading, kernels, servers or notebooks): under a minute"
	@echo "make test-colab         run every notebook and homework solution in an imitation of Colab"
	@echo "make test-colab-latest  the same against the newest TensorFlow, Keras and NumPy pip offers"
	@echo "make student   write the student edition (no solutions, no hidden tests) to DEST=$(DEST)"
	@echo "make slides    reveal.js slides of every week in build/slides (EXECUTE=1: run the notebooks first)"
	@echo "make lab       start JupyterLab on the repository (notebooks/ first)"
	@echo "make release   regenerate release/ from source/ with nbgrader"
	@echo "make images    build the student and instructor images with podman or docker"
	@echo "make lint      ruff check (code and notebooks), ruff format --check (code), mypy on autograder/"
	@echo "make lock      re-resolve requirements.lock and requirements-student.lock (needs the package index)"
	@echo "make lock-colab  re-make requirements-colab.lock from ../shared/colab/pip-freeze.txt"

setup: $(STAMP)

# Rebuild from scratch when the venv was made by another interpreter (or its making never got that far).
ifneq ($(shell cat $(VENV)/.python-id 2>/dev/null),$(PY_ID))
$(STAMP): FORCE
endif

$(STAMP): requirements.lock pyproject.toml
	@[ -n "$(PYTHON)" ] || { echo "error: no Python 3.11, 3.12 or 3.13 found on the PATH. Install one (e.g. 'apt install python3.12 python3.12-venv'), or run 'make PYTHON=/path/to/python3.x ...'" >&2; exit 1; }
	@$(PYTHON) -c 'import sys; sys.exit(not (3, 11) <= sys.version_info[:2] <= (3, 13))' 2>/dev/null || { echo "error: $(PYTHON) is not Python 3.11, 3.12 or 3.13 (the versions requirements.lock is made for)" >&2; exit 1; }
	@if [ -d $(VENV) ] && [ "$$(cat $(VENV)/.python-id 2>/dev/null)" != "$(PY_ID)" ]; then \
		echo "$(VENV) was built with another Python (or not finished): rebuilding it with $(PYTHON)"; rm -rf $(VENV); fi
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) || { rm -rf $(VENV); echo "error: '$(PYTHON) -m venv' failed; on Debian or Ubuntu install the venv module: apt install python3-venv (or python3.X-venv)" >&2; exit 1; }
	@echo "$(PY_ID)" > $(VENV)/.python-id
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	$(BIN)/python -m pip check
	touch $@

FORCE:

demo: $(STAMP)
	$(BIN)/adl-grade demo

test: $(STAMP)
	mkdir -p $(TEST_DATA_DIR)
	ADL_PROFILE=smoke ADL_DATA_DIR=$(TEST_DATA_DIR) MPLBACKEND=Agg \
		$(BIN)/python -m pytest -n 2 --dist loadfile --no-loadscope-reorder --nbval-lax --durations=15 \
		tests notebooks course/project/starters

# The unit tests alone (marked "not slow": nothing grades a notebook, starts a kernel, a server or a browser,
# and no notebook runs): under a minute on 2 cores, for the edit-test loop. make test runs them too.
test-fast: $(STAMP)
	mkdir -p $(TEST_DATA_DIR)
	ADL_PROFILE=smoke ADL_DATA_DIR=$(TEST_DATA_DIR) MPLBACKEND=Agg \
		$(BIN)/python -m pytest -n 2 -m "not slow" --durations=5 tests

# Colab, imitated: Python 3.13 with requirements-colab.lock (Colab's own versions), the helpers installed
# from the student edition exactly as a notebook's setup cell installs them, then every week notebook,
# every project starter and every homework solution (with its public checks) executed in the smoke profile.
test-colab: $(STAMP)
	$(BIN)/python course/colab.py run --python $(COLAB_PYTHON) --venv $(COLAB_VENV) --lock requirements-colab.lock

# The same against whatever pip offers today (not in CI: it moves). Catches an upgrade before Colab ships it.
test-colab-latest: $(STAMP)
	$(BIN)/python course/colab.py run --python $(COLAB_PYTHON) --venv build/colab-latest-venv --latest

student: $(STAMP)
	$(BIN)/python course/student_edition.py build $(DEST)

# Lecture slides: reveal.js, MathJax and their loaders come from the npm registry once (course/slides/package-lock.json)
# and are copied beside the decks, so build/slides opens from disk without a network. EXECUTE=1 runs each notebook
# first (the full run: over an hour for every week) so that the slides show plots and checks.
SLIDES_OUT ?= build/slides
slides: $(STAMP)
	$(BIN)/python course/slides.py build --out $(SLIDES_OUT) $(if $(filter 1,$(EXECUTE)),--execute) $(NOTEBOOKS)

# ruff's rules and its formatter on every Python file (pyproject.toml leaves the notebooks out of the format),
# and mypy on autograder/ ([tool.mypy]). tests/test_lint.py runs the same three.
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m mypy

lab: $(STAMP)
	$(BIN)/jupyter lab --ServerApp.root_dir=$(CURDIR) --LabApp.default_url=/lab/tree/notebooks \
		$(if $(filter 0,$(shell id -u)),--allow-root)

release: $(STAMP)
	$(BIN)/adl-grade release

images: $(STAMP)
	bash benchmarks/build_images.sh

# One universal lock (every platform, Python 3.11-3.13, environment markers) made by uv, keeping today's
# versions where they still fit; the student lock is the same versions, cut to what students install.
# (A small venv of its own with uv alone: .venv may not install until the lock is remade.)
LOCK_VENV := build/lock-venv
$(LOCK_VENV)/bin/uv: requirements.lock
	rm -rf $(LOCK_VENV) && $(PYTHON) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/python -m pip install --quiet "uv==$$(sed -n 's/^uv==\([^ ;]*\).*/\1/p' requirements.lock)"

lock: $(LOCK_VENV)/bin/uv
	$(LOCK_VENV)/bin/python course/locks.py lock

lock-colab: $(LOCK_VENV)/bin/uv
	$(LOCK_VENV)/bin/python course/locks.py colab ../shared/colab/pip-freeze.txt

clean:
	rm -rf build .pytest_cache .mypy_cache
