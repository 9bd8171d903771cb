"""Suite-wide checks: a test run leaves nothing behind in the checkout; a fast run starts nothing.

Tests write into ``tmp_path``; a test (or a notebook it runs with a relative default such
as ``output_dir="../reports/..."``) that writes into the checkout instead would leave files
that ``git status`` then shows, or that a later run reads. The snapshot taken at the start of
the session is compared with the state at its end, so files that were already there (or
that someone creates in another directory meanwhile) do not count: only paths that appeared
during the run in the watched places do, and they fail the run.

``make test-fast`` deselects the tests marked ``sim``, ``notebook``, ``packaging`` and
``kernel`` and sets ``EAFIX_TEST_FAST=1``; then a test that starts a sim cluster or a Jupyter
kernel anyway fails, naming the marker it lacks, so the fast run stays what it says.

Under ``PYTHONDONTWRITEBYTECODE`` (set on some machines) every Python process the suite starts
(xdist workers, kernels, nbval's pytest, the CLI) would compile the kit and the tests from
source again, about half a second each, and pytest would rewrite the asserts of the tests and
of Hypothesis again in each: the suite's processes write bytecode as Python does by default.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest

ROOT = Path(__file__).resolve().parent.parent
# Watched recursively: where outputs of the kit's commands and notebooks would land.
WATCHED_TREES = ("reports", "notebooks", "data", "manifests")
# Tool caches a pytest run keeps on purpose (gitignored, removed by `make clean`), and
# JupyterLab's checkpoints (a `make lab` open beside the test run saves them).
CACHES = frozenset({".pytest_cache", ".hypothesis", ".mypy_cache", "__pycache__", ".venv",
                    ".ipynb_checkpoints"})

_SNAPSHOT = pytest.StashKey[frozenset[str]]()
_DONT_WRITE_BYTECODE = pytest.StashKey[str]()


def pytest_configure(config: pytest.Config) -> None:
    # Before xdist starts its workers (pytest_sessionstart): they and every process started
    # later inherit the environment, and write the usual __pycache__ directories (gitignored,
    # and CACHES above) as they would without the variable.
    if "PYTHONDONTWRITEBYTECODE" in os.environ:
        config.stash[_DONT_WRITE_BYTECODE] = os.environ.pop("PYTHONDONTWRITEBYTECODE")
        sys.dont_write_bytecode = False


def pytest_unconfigure(config: pytest.Config) -> None:
    value = config.stash.get(_DONT_WRITE_BYTECODE, None)
    if value is not None:
        os.environ["PYTHONDONTWRITEBYTECODE"] = value


def checkout_entries(root: Path) -> frozenset[str]:
    """The top-level entries of the checkout and every path under the watched trees,
    relative to ``root``, without the tool caches."""
    found: set[str] = set()
    for entry in root.iterdir():
        if entry.name in CACHES or entry.name.endswith(".egg-info"):
            continue
        found.add(entry.name)
        if entry.name in WATCHED_TREES and entry.is_dir():
            for path in entry.rglob("*"):
                rel = path.relative_to(root)
                if not CACHES.intersection(rel.parts):
                    found.add(rel.as_posix())
    return frozenset(found)


def left_behind(before: frozenset[str], after: frozenset[str]) -> list[str]:
    """Paths that appeared during the run, parents only (``reports/x`` not also its files)."""
    new = sorted(after - before)
    return [p for p in new if not any(p.startswith(q + "/") for q in new if q != p)]


def pytest_sessionstart(session: pytest.Session) -> None:
    session.stash[_SNAPSHOT] = checkout_entries(ROOT)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    before = session.stash.get(_SNAPSHOT, None)
    if before is None:
        return
    new = left_behind(before, checkout_entries(ROOT))
    if not new:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    message = ("FAILED: the test run left files in the checkout (tests must write into tmp_path): "
               + ", ".join(new))
    if reporter is not None:
        reporter.write_line(message, red=True, bold=True)
    else:  # pragma: no cover - without the terminal plugin (-p no:terminal)
        print(message)
    session.exitstatus = pytest.ExitCode.TESTS_FAILED


FAST = os.environ.get("EAFIX_TEST_FAST") == "1"


def _refuse(what: str, marker: str) -> Any:
    def refuse(*args: object, **kwargs: object) -> None:
        pytest.fail(f"this test {what} but is not marked {marker!r}: mark it so `make test-fast` skips it",
                    pytrace=False)
    return refuse


@pytest.fixture(autouse=True)
def _fast_run_starts_nothing(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    if FAST:
        from jupyter_client import launcher
        from jupyter_client.provisioning import local_provisioner

        from eafix_capacity.sim.cluster import SimCluster

        monkeypatch.setattr(SimCluster, "start", _refuse("starts a sim cluster", "sim"))
        for module in (launcher, local_provisioner):
            monkeypatch.setattr(module, "launch_kernel", _refuse("starts a Jupyter kernel", "notebook' or 'kernel"))
    yield
