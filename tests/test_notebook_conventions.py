"""Every committed notebook follows the kit's conventions, so papermill sees every
parameter: the first code cell is tagged `parameters`, one `name: type = default  # help`
line per parameter, the registered kernel, and it was committed executed."""
from __future__ import annotations

import re

import nbformat
import pytest
from papermill.translators import PythonTranslator

from eafix_capacity.paths import NOTEBOOKS_DIR

NOTEBOOKS = sorted(NOTEBOOKS_DIR.glob("0*.ipynb"))
LINE = re.compile(r"^[a-z_][a-z0-9_]*: (str|int|float|bool) = \S.*  # \S.*$")


def test_there_are_notebooks():
    assert [p.name for p in NOTEBOOKS][:4] == ["01_capacity_model.ipynb", "02_generate_manifests.ipynb",
                                              "03_apply_and_verify.ipynb", "04_utilisation.ipynb"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_parameters_cell_is_fully_visible_to_papermill(path):
    nb = nbformat.read(str(path), as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert "parameters" in code[0].metadata.get("tags", [])
    lines = [ln for ln in code[0].source.splitlines() if ln.strip()]
    for ln in lines:
        assert LINE.match(ln), f"not `name: type = default  # help`: {ln!r}"
        assert ln.count("=") == 1, f"papermill cannot parse a line with two '=': {ln!r}"
    inspected = [p.name for p in PythonTranslator.inspect(code[0])]
    assert inspected == [ln.split(":", 1)[0] for ln in lines]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_executed_with_the_registered_kernel(path):
    nb = nbformat.read(str(path), as_version=4)
    assert nb.metadata["kernelspec"]["name"] == "eafix-capacity"
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.get("execution_count") for c in code), "commit the notebook executed (make notebooks)"
    assert not any(o.get("output_type") == "error" for c in code for o in c.get("outputs", []))
