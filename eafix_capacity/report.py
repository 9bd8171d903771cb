"""Headless report runs: papermill executes a notebook, nbconvert exports it as HTML.

A run writes ``<out_root>/<UTC timestamp>/`` with the executed notebook, an HTML export
without code cells and the ``summary.json`` the notebook wrote. The run is assembled in a
hidden sibling directory and renamed into place only when complete, so a failed run
leaves nothing behind. Parameters are checked (and the plan made once) before any
kernel starts, so bad input fails fast with the kit's own error.
"""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from .errors import EafixCapacityError, InputError, OutputError
from .fsio import atomic_write_text
from .inputs import PlanParams, plan_from_params
from .paths import NOTEBOOKS_DIR

KERNEL_NAME = "eafix-capacity"
CAPACITY_NOTEBOOK = NOTEBOOKS_DIR / "01_capacity_model.ipynb"


class ReportError(EafixCapacityError):
    """A notebook failed while running."""


@dataclass(frozen=True)
class ReportResult:
    directory: Path
    notebook: Path
    html: Path
    summary: Path
    passed: bool
    failed_gates: tuple[str, ...]


def kernel_name() -> str:
    """The registered kernel, falling back to ipykernel's own when it is not installed."""
    from jupyter_client.kernelspec import KernelSpecManager
    specs = KernelSpecManager().find_kernel_specs()
    return KERNEL_NAME if KERNEL_NAME in specs else "python3"


def execute_notebook(source: Path, target: Path, parameters: dict, *, cwd: Path) -> None:
    """Run one notebook with papermill; a failing cell becomes a ``ReportError`` (or an
    ``InputError`` when the notebook rejected its parameters)."""
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError
    try:
        pm.execute_notebook(str(source), str(target), parameters=parameters, kernel_name=kernel_name(),
                            cwd=str(cwd), progress_bar=False, log_output=False)
    except PapermillExecutionError as e:
        if e.ename in ("InputError", "QuantityError", "ManifestError"):
            raise InputError(f"{source.name}: {e.evalue}") from None
        raise ReportError(f"{source.name}: cell {e.exec_count} failed: {e.ename}: {e.evalue}") from None


def export_html(notebook: Path, target: Path) -> Path:
    """HTML of the executed notebook without code cells or prompts."""
    import nbformat
    from nbconvert import HTMLExporter
    nb = nbformat.read(str(notebook), as_version=4)
    exporter = HTMLExporter(exclude_input=True, exclude_input_prompt=True, exclude_output_prompt=True)
    body, _ = exporter.from_notebook_node(nb)
    return atomic_write_text(target, body)


def run_report(params: PlanParams, *, out_root: str | Path = "reports",
               notebook: Path = CAPACITY_NOTEBOOK, now: datetime | None = None) -> ReportResult:
    plan_from_params(params)  # bad parameters fail here, before anything is written
    stamp = (now or datetime.now(timezone.utc)).strftime("%Y%m%dT%H%M%SZ")
    root = Path(out_root)
    final = root / stamp
    work = root / f".{stamp}.partial"
    try:
        root.mkdir(parents=True, exist_ok=True)
        if final.exists():
            raise OutputError(f"{final}: a report for this timestamp already exists")
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir()
    except OSError as e:
        raise OutputError(f"{root}: cannot create the report directory ({e.strerror or e})") from e
    try:
        executed = work / notebook.name
        execute_notebook(notebook, executed, {**params.notebook_parameters(), "output_dir": str(work.resolve())},
                         cwd=notebook.parent)
        summary = work / "summary.json"
        if not summary.exists():
            raise ReportError(f"{notebook.name} did not write summary.json")
        export_html(executed, work / (notebook.stem + ".html"))
        try:
            work.rename(final)
        except OSError as e:
            raise OutputError(f"{final}: cannot move the finished report into place "
                              f"({e.strerror or e})") from e
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    data = json.loads((final / "summary.json").read_text())
    failed = tuple(g["name"] for g in data.get("gates", []) if not g["passed"])
    return ReportResult(final, final / notebook.name, final / (notebook.stem + ".html"),
                        final / "summary.json", not failed, failed)


def write_summary(output_dir: str | Path, data: dict, *, name: str = "summary.json") -> Path:
    """Write a notebook's summary atomically into ``output_dir`` (created if needed)."""
    return atomic_write_text(Path(output_dir) / name, json.dumps(data, indent=2) + "\n")
