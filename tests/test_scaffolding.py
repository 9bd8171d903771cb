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


def test_jupyterlab_is_in_the_notebooks_extra_and_installed():
    from importlib.metadata import version
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert any(r.startswith("jupyterlab") for r in pyproject["optional-dependencies"]["notebooks"])
    assert int(version("jupyterlab").split(".")[0]) >= 4


# ------------------------------------------------------------------ nothing left behind

def _fake_checkout(tmp_path: Path, test_body: str) -> Path:
    """A directory laid out like the checkout, with the suite's conftest.py and one test."""
    import shutil
    repo = tmp_path / "repo"
    (repo / "tests").mkdir(parents=True)
    (repo / "reports").mkdir()
    (repo / "reports" / "old-report.html").write_text("from before the run")
    shutil.copy2(ROOT / "tests" / "conftest.py", repo / "tests" / "conftest.py")
    (repo / "tests" / "test_one.py").write_text(
        "from pathlib import Path\nROOT = Path(__file__).resolve().parent.parent\n\n"
        f"def test_one(tmp_path):\n{test_body}\n")
    return repo


def _run_suite(repo: Path):
    import subprocess
    import sys
    # without the heavy plugins the suite's conftest does not need
    plugins = [arg for name in ("cacheprovider", "hypothesispytest", "nbval", "anyio") for arg in ("-p", f"no:{name}")]
    return subprocess.run([sys.executable, "-m", "pytest", "-q", *plugins, "tests"],
                          cwd=repo, capture_output=True, text=True, timeout=120)


def test_a_run_that_writes_into_the_checkout_fails(tmp_path):
    repo = _fake_checkout(tmp_path, "    (ROOT / 'reports' / '01_capacity_model').mkdir()\n"
                                    "    (ROOT / 'reports' / '01_capacity_model' / 'summary.json').write_text('{}')\n"
                                    "    (ROOT / 'stray.txt').write_text('x')")
    proc = _run_suite(repo)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "1 passed" in proc.stdout
    line = next(ln for ln in proc.stdout.splitlines() if "left files in the checkout" in ln)
    assert line.endswith(": reports/01_capacity_model, stray.txt")  # parents only, sorted


def test_a_run_that_writes_only_into_tmp_path_passes(tmp_path):
    """Files already there (reports/old-report.html) and tool caches do not count."""
    repo = _fake_checkout(tmp_path, "    (tmp_path / 'reports').mkdir()\n"
                                    "    (ROOT / '.hypothesis').mkdir(exist_ok=True)\n"
                                    "    (ROOT / 'tests' / 'scratch').mkdir()")
    proc = _run_suite(repo)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "left files" not in proc.stdout


def test_a_failing_run_keeps_its_failure_exit_code(tmp_path):
    repo = _fake_checkout(tmp_path, "    (ROOT / 'reports' / 'x').write_text('x')\n    assert False")
    proc = _run_suite(repo)
    assert proc.returncode == 1 and "1 failed" in proc.stdout
    assert "left files in the checkout (tests must write into tmp_path): reports/x" in proc.stdout


def test_importing_jsonschema_builds_no_iri_grammars():
    """jupyterlab's jsonschema[format-nongpl] would make every `import jsonschema` (every
    plan, check and sim process) build rfc3987-syntax's Earley parsers, seconds of CPU."""
    import subprocess
    import sys
    proc = subprocess.run([sys.executable, "-c", "import sys, jsonschema; print(sorted(m for m in sys.modules "
                           "if m.startswith(('rfc3987_syntax', 'lark'))))"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
