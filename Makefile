# Fresh-machine set-up: `make demo` (main job) and `make test` (tests). Each creates .venv and installs
# everything it needs. torch is pinned to the CPU build on this machine's disk; pyproject says torch>=2.4; every
# other package is installed at the exact version of constraints.txt (the results were evaluated with them).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
TORCH_PIN ?= torch==2.13.0

.PHONY: test test-all demo lint bench clean

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q $(TORCH_PIN)
	$(PIP) install -q -c constraints.txt -e ".[test]"
	touch $@

test: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -m "not slow" -n 2 -q

test-all: $(VENV)/.installed
	$(PY) -m pytest -n 2 -q

demo: $(VENV)/.installed
	$(PY) scripts/demo.py

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .

bench: $(VENV)/.installed
	$(VENV)/bin/liquid-control bench cells --out bench-cells.json
	$(VENV)/bin/liquid-control bench envs --out bench-envs.json

clean:
	rm -rf $(VENV) .pytest_cache
