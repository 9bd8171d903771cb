"""The kit works installed from its wheel, away from the checkout.

The wheel is built from a copy of the checkout's sources (nothing is written into the
checkout), then unpacked into a venv under tmp_path whose only link to .venv is a .pth line
for the dependencies (third-party packages; the .pth files in .venv, among them the
editable install's finder, are not processed). ``plan`` and ``report`` then run from a
working directory outside the checkout, and every run checks that the kit imported is the
installed one.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from eafix_capacity import paths
from eafix_capacity.inputs import PlanParams, plan_from_params
from eafix_capacity.kernels import FALLBACK_KERNEL

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ("pyproject.toml", "README.md", "eafix_capacity", "data", "notebooks")
EMBEDDED = ("services.yaml", "profiles.yaml", "node-types.csv", "usage-model.yaml", "signoff-policy.yaml")

pytestmark = pytest.mark.packaging


# ---------------------------------------------------------------- the two layouts (pure)

def test_a_checkout_uses_its_own_data_notebooks_and_manifests(tmp_path):
    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / "data").mkdir()
    layout = paths.locate(tmp_path / "eafix_capacity")
    assert layout == paths.Layout(checkout=tmp_path, data=tmp_path / "data",
                                  notebooks=tmp_path / "notebooks", manifests=tmp_path / "manifests")


@pytest.mark.parametrize("present", [(), ("pyproject.toml",), ("data",)])
def test_anything_short_of_a_checkout_is_an_installed_package(tmp_path, present):
    """site-packages (or a directory with only a pyproject.toml or only a data/) is not a
    checkout: the package's own copies are used."""
    for name in present:
        (tmp_path / name).mkdir() if name == "data" else (tmp_path / name).write_text("")
    package = tmp_path / "eafix_capacity"
    layout = paths.locate(package)
    assert layout.checkout is None
    assert layout.data == package / "data" and layout.notebooks == package / "notebooks"
    assert layout.manifests == Path("manifests")  # the user's own, relative to the cwd


def test_the_running_kit_is_the_checkout_and_reads_its_data():
    assert paths.CHECKOUT == ROOT
    assert paths.data_file("services.yaml") == ROOT / "data" / "services.yaml"
    assert paths.NOTEBOOKS_DIR == ROOT / "notebooks"


# ---------------------------------------------------------------- the wheel

@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel, built offline (no build isolation: .venv has setuptools) from a copy of
    the sources, so the build's build/ and egg-info land outside the checkout."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    src.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".ipynb_checkpoints")
    for name in SOURCES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, src / name, ignore=ignore)
        else:
            shutil.copy2(source, src / name)
    out = tmp / "dist"
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-index",
                           "--no-build-isolation", "-w", str(out), str(src)],
                          capture_output=True, text=True, timeout=180, cwd=tmp)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    (built,) = out.glob("eafix_capacity-*.whl")
    return built


def test_the_wheel_holds_every_module_the_data_and_the_notebooks(wheel):
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        modules = {p.relative_to(ROOT).as_posix() for p in (ROOT / "eafix_capacity").rglob("*.py")
                   if "__pycache__" not in p.parts}
        assert modules and modules <= names, sorted(modules - names)  # a subpackage not listed in pyproject
        for name in EMBEDDED:
            assert z.read(f"eafix_capacity/data/{name}") == (ROOT / "data" / name).read_bytes(), name
        for nb in sorted((ROOT / "notebooks").glob("0*.ipynb")):
            assert z.read(f"eafix_capacity/notebooks/{nb.name}") == nb.read_bytes(), nb.name
        schemas = {p.name for p in (ROOT / "eafix_capacity" / "schemas").glob("*.json")}
        assert schemas and {f"eafix_capacity/schemas/{s}" for s in schemas} <= names
        assert "eafix_capacity/py.typed" in names
        entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
        assert "eafix-capacity = eafix_capacity.cli:main" in z.read(entry_points).decode()


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory):
    """A venv outside the checkout with the wheel unpacked into its site-packages, and a
    runner for its python in a working directory outside the checkout."""
    tmp = tmp_path_factory.mktemp("installed")
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    with zipfile.ZipFile(wheel) as z:
        z.extractall(site)
    # the dependencies: .venv's site-packages as a plain path entry
    (site / "kit-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    # nbconvert's templates are data files of its wheel, installed under the venv's share/
    share = venv / "share" / "jupyter"
    share.mkdir(parents=True)
    (share / "nbconvert").symlink_to(Path(sys.prefix) / "share" / "jupyter" / "nbconvert")
    home = tmp / "home"  # no user kernelspecs or Jupyter config from the real home
    home.mkdir()
    cwd = tmp / "work"
    cwd.mkdir()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PYTHON", "JUPYTER", "VIRTUAL_ENV", "IPYTHON"))}
    env.update(HOME=str(home), PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}")

    def run(*args: str, timeout: int = 180) -> subprocess.CompletedProcess:
        return subprocess.run([str(python), *args], capture_output=True, text=True, timeout=timeout,
                              cwd=cwd, env=env)
    return {"site": site, "cwd": cwd, "run": run}


def test_the_installed_kit_is_imported_from_the_venv_not_the_checkout(installed):
    proc = installed["run"]("-c", "import json, sys, eafix_capacity, eafix_capacity.paths as p; "
                                  "print(json.dumps({'file': eafix_capacity.__file__, 'checkout': str(p.CHECKOUT), "
                                  "'data': str(p.DATA_DIR), 'notebooks': str(p.NOTEBOOKS_DIR), 'path': sys.path}))")
    assert proc.returncode == 0, proc.stderr
    d = json.loads(proc.stdout)
    site = installed["site"]
    assert Path(d["file"]).is_relative_to(site)
    assert d["checkout"] == "None"
    assert d["data"] == str(site / "eafix_capacity" / "data")
    assert d["notebooks"] == str(site / "eafix_capacity" / "notebooks")
    assert not [p for p in d["path"] if p and Path(p).resolve() == ROOT]


def test_installed_plan_reads_the_embedded_data(installed):
    proc = installed["run"]("-m", "eafix_capacity.cli", "plan", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    expected = json.loads(json.dumps(plan_from_params(PlanParams()).to_dict()))  # the checkout's data
    assert Path(got["inputs"].pop("catalog")) == installed["site"] / "eafix_capacity" / "data" / "services.yaml"
    assert Path(expected["inputs"].pop("catalog")) == ROOT / "data" / "services.yaml"
    assert got == expected
    assert got["passed"] is True and len(got["services"]) == 14


@pytest.mark.notebook
def test_installed_report_runs_the_shipped_notebook_quietly(installed):
    proc = installed["run"]("-m", "eafix_capacity.cli", "report", timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert "without encryption" not in proc.stderr
    assert "Traceback" not in proc.stderr
    html = Path(proc.stdout.strip().splitlines()[-1])
    if not html.is_absolute():
        html = installed["cwd"] / html
    assert html.is_file() and html.is_relative_to(installed["cwd"] / "reports"), html
    summary = json.loads((html.parent / "summary.json").read_text())
    assert summary["passed"] is True
    assert Path(summary["inputs"]["catalog"]).is_relative_to(installed["site"])
    assert (html.parent / "01_capacity_model.ipynb").is_file()
    assert not (installed["site"] / "eafix_capacity" / "notebooks" / "summary.json").exists()


def test_the_installed_report_kernel_runs_the_venv_python(installed):
    """No eafix-capacity kernelspec is registered for this venv, so a report runs
    ipykernel's own kernel, on the venv's python (and so on the installed kit)."""
    proc = installed["run"]("-c", "import json; from jupyter_client.kernelspec import KernelSpecManager; "
                                  "from eafix_capacity.report import kernel_name; name = kernel_name(); "
                                  "print(json.dumps([name, KernelSpecManager().get_kernel_spec(name).argv]))")
    assert proc.returncode == 0, proc.stderr
    name, argv = json.loads(proc.stdout)
    assert name == FALLBACK_KERNEL
    assert Path(argv[0]).parent.parent == installed["site"].parents[2]  # <venv>/bin/python
