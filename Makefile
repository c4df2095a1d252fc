# Everything a newcomer needs: `make demo` and `make test`.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python

# python3.12 (or newer) from PATH, else from pyenv's versions folder.
PYTHON312 := $(shell for p in python3.12 python3.13 $$(ls -d $${PYENV_ROOT:-$$HOME/.pyenv}/versions/3.1[2-9]*/bin/python3 2>/dev/null); do \
	if command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null; then echo $$p; break; fi; done)

.PHONY: demo test install lint clean

$(VENV)/.installed: pyproject.toml
	@test -n "$(PYTHON312)" || { echo "python3.12 or newer is required (not found on PATH or in pyenv)"; exit 1; }
	@test -x $(PY) || $(PYTHON312) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test]"
	@touch $@

install: $(VENV)/.installed

demo: install
	$(VENV)/bin/bayes-gmm demo --out demo_output

test: install
	$(PY) -m pytest -n 2 --durations=15

lint: install
	$(VENV)/bin/ruff check bayes_gmm em_baseline tests benchmarks

clean:
	rm -rf $(VENV) demo_output .pytest_cache
