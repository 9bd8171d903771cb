"""The project's set-up files agree with each other and with the README."""
from __future__ import annotations

import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def test_environment_yml_installs_the_kit_with_every_extra():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    extras = set(pyproject["project"]["optional-dependencies"])
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert "conda-forge" in env["channels"]
    deps = env["dependencies"]
    python = [d for d in deps if isinstance(d, str) and d.startswith("python")]
    assert python and python[0].endswith(pyproject["project"]["requires-python"].lstrip(">=")) or \
        pyproject["project"]["requires-python"].lstrip(">=") in python[0]
    (pip,) = [d["pip"] for d in deps if isinstance(d, dict)]
    (editable,) = [p for p in pip if p.startswith("-e .")]
    listed = set(editable.split("[", 1)[1].rstrip("]").split(","))
    assert listed == extras
    # pyproject.toml is the single source of Python packages: nothing else is pinned here
    assert [p for p in pip if not p.startswith("-e")] == []


def test_readme_starts_with_the_two_commands():
    head = (ROOT / "README.md").read_text().splitlines()[:12]
    text = "\n".join(head)
    assert "make report" in text and "make test" in text


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in ci and "set -e" in ci


def test_console_script_is_declared():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert pyproject["project"]["scripts"]["eafix-capacity"] == "eafix_capacity.cli:main"
