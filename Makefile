# The course kit's commands. Run `make help` for the list.
# `make demo` and `make test` create .venv from requirements.lock on first use and reuse it afterwards:
# the venv is rebuilt only when requirements.lock or pyproject.toml changes.

PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# A read-only copy of the course data (see README, "The data mirror"). Used when present; CI has it.
ADL_DATA_MIRROR ?= $(wildcard $(CURDIR)/../shared/datasets)
export ADL_DATA_MIRROR
# Keep TensorFlow's C++ start-up chatter out of test and demo logs.
export TF_CPP_MIN_LOG_LEVEL ?= 2
# Keep the smoke profile's data cache inside the checkout, so a test run never touches ~/.cache.
TEST_DATA_DIR := $(CURDIR)/build/data-cache

.PHONY: help setup demo test lint lab release lock clean

help:
	@echo "make demo     set up .venv, build the release, autograde the sample class, print grades and report"
	@echo "make test     set up .venv and run the whole test suite, notebooks included (smoke profile)"
	@echo "make lab      start JupyterLab on the course notebooks"
	@echo "make release  regenerate release/ from source/ with nbgrader"
	@echo "make lint     ruff on the code and the notebooks"
	@echo "make lock     re-resolve requirements.lock from pyproject.toml (needs the package index)"

setup: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "error: $(PYTHON) not found. Install Python 3.11, or run 'make PYTHON=/path/to/python3.11 ...'" >&2; exit 1; }
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), sys.version' 2>/dev/null || { echo "error: $(PYTHON) is not Python 3.11; the lock is for 3.11" >&2; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	$(BIN)/python -m pip check
	touch $@

demo: $(STAMP)
	$(BIN)/adl-grade demo

test: $(STAMP)
	mkdir -p $(TEST_DATA_DIR)
	ADL_PROFILE=smoke ADL_DATA_DIR=$(TEST_DATA_DIR) MPLBACKEND=Agg \
		$(BIN)/python -m pytest -n 2 --dist loadfile --nbval-lax --durations=15 \
		tests notebooks

lint: $(STAMP)
	$(BIN)/ruff check .

lab: $(STAMP)
	$(BIN)/jupyter lab --notebook-dir=$(CURDIR) $(if $(filter 0,$(shell id -u)),--allow-root) notebooks

release: $(STAMP)
	$(BIN)/adl-grade release

lock:
	rm -rf build/lock-venv
	$(PYTHON) -m venv build/lock-venv
	build/lock-venv/bin/python -m pip install --quiet --upgrade "pip>=24"
	build/lock-venv/bin/python -m pip install --quiet ".[instructor,dev]"
	{ sed -n '1,/^# Python 3.11/p' requirements.lock; build/lock-venv/bin/python -m pip freeze --all --exclude-editable | grep -v -e '^adl-course-kit' -e '^pip=='; } > requirements.lock.new
	mv requirements.lock.new requirements.lock
	@echo "requirements.lock updated; run 'make test' (test_packaging checks pyproject, environment.yml and Dockerfile)"

clean:
	rm -rf build .pytest_cache
