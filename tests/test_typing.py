"""``mypy`` accepts the whole package, with the configuration in pyproject.toml.

Part of ``make test``, so a change that breaks the types fails like any other test.
"""
from __future__ import annotations

from pathlib import Path

from mypy import api

ROOT = Path(__file__).resolve().parent.parent


def test_mypy_finds_no_errors_in_the_package(tmp_path: Path) -> None:
    # the cache goes to tmp_path: the test writes nothing into the checkout
    stdout, stderr, status = api.run([
        "--config-file", str(ROOT / "pyproject.toml"),
        "--cache-dir", str(tmp_path / "mypy-cache"),
        "--no-error-summary", "--hide-error-context", "--no-color-output",
        str(ROOT / "eafix_capacity"),
    ])
    errors = [line for line in stdout.splitlines() if ": error:" in line]
    assert status == 0 and not errors and not stderr, "\n" + stdout + stderr
