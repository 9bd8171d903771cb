"""Shared helpers for notebook tests: run nbval on a committed notebook, run papermill."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SANITIZE = ROOT / "tests" / "nbval_sanitize.cfg"


def run_nbval(notebook: Path, *, timeout: int = 600, root: Path | None = None) -> subprocess.CompletedProcess:
    """nbval over a committed notebook in a separate pytest process (its own kernel).

    nbval runs the notebook with its default parameters, whose output_dir is relative
    (``../reports/<notebook>``), so it runs a copy in ``<root>/notebooks/``: the outputs land
    in ``<root>/reports/``, not in the checkout, and the cells see the same relative paths.
    ``root`` (default: a temporary directory removed afterwards) keeps them for the caller.
    The pytest plugins nbval does not need are not loaded: Hypothesis alone imports itself at
    the end of every run, most of the start-up of a process that has no bytecode cache.
    """
    if root is None:
        with tempfile.TemporaryDirectory(prefix="eafix-nbval-") as tmp:
            return run_nbval(notebook, timeout=timeout, root=Path(tmp))
    workdir = root / "notebooks"
    workdir.mkdir(parents=True, exist_ok=True)
    copy = Path(shutil.copy2(notebook, workdir / notebook.name))
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:hypothesispytest", "-p", "no:anyio",
         "--nbval", str(copy),
         "--nbval-sanitize-with", str(SANITIZE), "--nbval-kernel-name", "eafix-capacity",
         "--nbval-cell-timeout", "300", "--rootdir", str(workdir), "-o", "addopts="],
        cwd=workdir, capture_output=True, text=True, timeout=timeout,
    )


def run_papermill(notebook: Path, out_dir: Path, parameters: dict) -> dict:
    """Execute a notebook into ``out_dir`` and return the summary.json it wrote."""
    from eafix_capacity.report import execute_notebook
    out_dir.mkdir(parents=True, exist_ok=True)
    execute_notebook(notebook, out_dir / notebook.name, {**parameters, "output_dir": str(out_dir)},
                     cwd=notebook.parent)
    return json.loads((out_dir / "summary.json").read_text())


def assert_failed_in_the_validation_cell(executed: Path) -> None:
    """The executed notebook at ``executed`` failed in its validation cell (the code cell after the
    parameters cell and papermill's injected one) and ran nothing after it."""
    import nbformat

    code = [c for c in nbformat.read(str(executed), as_version=4).cells if c.cell_type == "code"]
    failed = [i for i, c in enumerate(code) if any(o.get("output_type") == "error" for o in c.get("outputs", []))]
    assert failed == [2]
    assert "NotebookParams.from_notebook" in code[2].source
    assert not any(c.get("execution_count") for c in code[3:])   # nothing after it ran: no sim started


def assert_committed_with_the_conventions(notebook: Path, parameters: list[str], params_cls: type) -> None:
    """The committed notebook: the kit's kernel, a ``parameters`` cell declaring exactly
    ``parameters`` (the fields of ``params_cls``, in order), the validation cell next, every code
    cell executed, and the sim it started stopped in the last cell."""
    import nbformat

    nb = nbformat.read(str(notebook), as_version=4)
    assert nb.metadata.kernelspec.name == "eafix-capacity"
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code[0].metadata.tags == ["parameters"]
    assert [line.split(":")[0] for line in code[0].source.splitlines()] == parameters
    assert parameters == list(params_cls.__dataclass_fields__)
    assert "NotebookParams.from_notebook" in code[1].source
    assert all(c.get("outputs") for c in code[1:]), "committed executed"
    assert "session.close()" in code[-1].source   # the sim the notebook started is stopped
