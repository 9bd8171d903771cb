# One-command set-up: every target creates .venv and installs the kit on first use.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
KERNEL := eafix-capacity
KERNEL_DISPLAY := Python (eafix-capacity)

.PHONY: install kernel-user lab report test test-fast bench notebooks clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[notebooks,test,bench]'
	$(PY) -m ipykernel install --sys-prefix --name $(KERNEL) --display-name "$(KERNEL_DISPLAY)"
	touch $(STAMP)

# The same kernelspec for the user (~/.local/share/jupyter/kernels), so a JupyterLab
# installed outside .venv offers the kernel too; it runs this checkout's .venv python.
kernel-user: $(STAMP)
	$(PY) -m ipykernel install --user --name $(KERNEL) --display-name "$(KERNEL_DISPLAY)"

# JupyterLab on notebooks/ with the eafix-capacity kernel, kernels over CurveZMQ (as in
# eafix_capacity/kernels.py). No browser is opened: open the
# http://127.0.0.1:8888/lab?token=... URL it prints (LAB_PORT=N for another port); Ctrl-C
# stops it. Jupyter refuses to run as root without --allow-root, passed only to root.
LAB_PORT ?= 8888
lab: $(STAMP)
	$(VENV)/bin/jupyter lab --no-browser --ip=127.0.0.1 --port=$(LAB_PORT) --ServerApp.root_dir=notebooks \
	  --MappingKernelManager.default_kernel_name=$(KERNEL) \
	  --KernelManager.transport_encryption=auto $(if $(filter 0,$(shell id -u)),--allow-root)

report: $(STAMP)
	$(VENV)/bin/eafix-capacity report

# Each test file runs on one worker, in its order: a module's sim is shared by its tests, which
# are a sequence (apply, then change, then conflict ...); split across workers they would not be.
test: $(STAMP)
	$(PY) -m pytest -n auto --dist loadfile

# The tests that start no sim cluster and no Jupyter kernel (tests/conftest.py fails one that does).
test-fast: $(STAMP)
	EAFIX_TEST_FAST=1 $(PY) -m pytest -n auto -m "not sim and not notebook and not packaging and not kernel"

bench: $(STAMP)
	$(PY) bench/run_all.py

# Re-execute every committed notebook in place with its default parameters (papermill,
# kernel $(KERNEL), each notebook's directory as the working directory, encrypted kernel
# transport: eafix_capacity/kernels.py).
notebooks: $(STAMP)
	$(PY) -m eafix_capacity.kernels notebooks/0*.ipynb

clean:
	rm -rf $(VENV) reports build .pytest_cache .hypothesis
