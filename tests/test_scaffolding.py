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


def test_every_third_party_import_of_the_kit_is_declared():
    """pyproject.toml is the single source of dependencies: a module the kit imports must
    not arrive only as another package's dependency (numpy via pandas, jupyter_client via
    nbconvert), or a resolver change removes it."""
    import ast
    import re
    import sys
    from importlib.metadata import packages_distributions

    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = pyproject["dependencies"] + [
        r for extra in pyproject["optional-dependencies"].values() for r in extra]

    def norm(name: str) -> str:
        return re.sub(r"[-_.]+", "-", name).lower()

    declared = {norm(re.split(r"[<>=!~\[; ]", r, maxsplit=1)[0]) for r in requirements}
    dists = packages_distributions()
    undeclared = set()
    for path in (ROOT / "eafix_capacity").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for top in {n.split(".")[0] for n in names}:
                if top in sys.stdlib_module_names or top == "eafix_capacity":
                    continue
                if not {norm(d) for d in dists.get(top, [top])} & declared:
                    undeclared.add(f"{top} ({path.relative_to(ROOT)})")
    assert not undeclared, sorted(undeclared)
