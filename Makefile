# Two entry points: `make run` (install + the main study) and `make test` (install + tests).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
TORCH_PIN := torch==2.13.0
# e.g. VENV_FLAGS=--system-site-packages to reuse a torch (say, a CUDA build) installed outside .venv
VENV_FLAGS ?=

.PHONY: install install-test run test test-all lint clean

$(VENV)/bin/activate:
	$(PYTHON) -m venv $(VENV_FLAGS) $(VENV)
	$(PY) -m pip install -q --upgrade pip

# Install torch (pinned CPU build) only when no torch is importable: a user's CUDA torch is kept.
$(VENV)/.torch: $(VENV)/bin/activate
	@$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q $(TORCH_PIN)
	@touch $@

install: $(VENV)/.torch
	$(PY) -m pip install -q -e .

install-test: $(VENV)/.torch
	$(PY) -m pip install -q -e ".[test,ray]"

run: install
	$(VENV)/bin/symlab run hidden-symmetries --preset quick

test: install-test
	$(PY) -m pytest -n 2 -q

test-all: install-test
	$(PY) -m pytest -n 2 -q -m ""

lint: install-test
	$(VENV)/bin/ruff check symlab tests benchmarks examples
	$(VENV)/bin/ruff format --check symlab tests benchmarks examples

clean:
	rm -rf $(VENV) runs .pytest_cache
