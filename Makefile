# One-command set-up: every target creates .venv and installs the kit on first use.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
KERNEL := eafix-capacity

.PHONY: install report test bench notebooks clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[notebooks,test,bench]'
	$(PY) -m ipykernel install --sys-prefix --name $(KERNEL) --display-name "Python (eafix-capacity)"
	touch $(STAMP)

report: $(STAMP)
	$(VENV)/bin/eafix-capacity report

test: $(STAMP)
	$(PY) -m pytest

bench: $(STAMP)
	$(PY) bench/run_all.py

notebooks: $(STAMP)
	$(PY) -m eafix_capacity.notebooks_exec

clean:
	rm -rf $(VENV) reports .pytest_cache .hypothesis
