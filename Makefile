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

# Re-execute every committed notebook in place with its default parameters.
notebooks: $(STAMP)
	for nb in notebooks/0*.ipynb; do \
	  $(VENV)/bin/papermill --no-progress-bar -k $(KERNEL) --cwd notebooks $$nb $$nb || exit 1; \
	done

clean:
	rm -rf $(VENV) reports .pytest_cache .hypothesis
