"""``mypy`` accepts the whole package, with the configuration in pyproject.toml.

Part of ``make test``, so a change that breaks the types fails like any other test.
"""
from __future__ import annotations

from pathlib import Path

from mypy import api

ROOT = Path(__file__).resolve().parent.parent


def test_mypy_finds_no_errors_in_the_package() -> None:
    # mypy's own incremental cache (gitignored, like a plain `mypy` run's): a re-run checks
    # only what changed, in seconds instead of the ~20 s of a cold run
    stdout, stderr, status = api.run([
        "--config-file", str(ROOT / "pyproject.toml"),
        "--cache-dir", str(ROOT / ".mypy_cache"),
        "--no-error-summary", "--hide-error-context", "--no-color-output",
        str(ROOT / "eafix_capacity"),
    ])
    errors = [line for line in stdout.splitlines() if ": error:" in line]
    assert status == 0 and not errors and not stderr, "\n" + stdout + stderr
