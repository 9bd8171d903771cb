"""Notebook kernels: the kernelspecs the Makefile installs, which kernel a report uses, an
encrypted kernel transport (no "running over TCP without encryption" warning), and
``make lab``."""
from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import nbformat
import pytest

from eafix_capacity.kernels import (FALLBACK_KERNEL, KERNEL_NAME, kernel_config, kernel_name,
                                    rerun_in_place, runs_interpreter)
from eafix_capacity.report import execute_notebook

ROOT = Path(__file__).resolve().parent.parent
VENV_PYTHON = ROOT / ".venv" / "bin" / "python"
STAMP = ".venv/.installed-stamp"
WARNING = "without encryption"


def _clean_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTER", "IPYTHON"))}
    env["HOME"] = str(home)
    return env


# ---------------------------------------------------------------- the kernelspecs

def test_make_install_registered_the_kernel_on_the_venv_python():
    spec = json.loads((Path(sys.prefix) / "share" / "jupyter" / "kernels" / KERNEL_NAME / "kernel.json").read_text())
    assert os.path.abspath(spec["argv"][0]) == os.path.abspath(VENV_PYTHON)
    assert spec["display_name"] == "Python (eafix-capacity)"


def test_make_kernel_user_registers_it_for_a_jupyterlab_outside_the_venv(tmp_path):
    # -o: never reinstall the venv from here, even when pyproject.toml is newer than the stamp
    proc = subprocess.run(["make", "--no-print-directory", "-o", STAMP, "kernel-user"], cwd=ROOT,
                          env=_clean_env(tmp_path), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    spec_file = tmp_path / ".local" / "share" / "jupyter" / "kernels" / KERNEL_NAME / "kernel.json"
    spec = json.loads(spec_file.read_text())
    assert os.path.abspath(spec["argv"][0]) == os.path.abspath(VENV_PYTHON)
    assert spec["argv"][1:] == ["-Xfrozen_modules=off", "-m", "ipykernel_launcher", "-f", "{connection_file}"] \
        or spec["argv"][1:] == ["-m", "ipykernel_launcher", "-f", "{connection_file}"]
    assert spec["display_name"] == "Python (eafix-capacity)"


# ---------------------------------------------------------------- which kernel runs a report

def _kernelspec(root: Path, argv0: str) -> None:
    spec = root / "kernels" / KERNEL_NAME
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [argv0, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python (eafix-capacity)", "language": "python"}))


def test_a_kernelspec_of_another_interpreter_is_not_used(tmp_path, monkeypatch):
    """A user kernelspec left by another checkout would run another copy of the kit."""
    _kernelspec(tmp_path, str(tmp_path / "other-venv" / "bin" / "python"))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path))
    assert kernel_name() == FALLBACK_KERNEL


def test_the_kernelspec_of_this_interpreter_is_used(tmp_path, monkeypatch):
    _kernelspec(tmp_path, sys.executable)
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path))
    assert kernel_name() == KERNEL_NAME


def test_interpreter_paths_are_compared_without_resolving_links():
    assert runs_interpreter(["/v/bin/python", "-m", "ipykernel_launcher"], "/v/bin/../bin/python")
    assert not runs_interpreter(["/v/bin/python"], "/w/bin/python")
    assert not runs_interpreter([], "/v/bin/python")


# ---------------------------------------------------------------- encrypted transport

def _tiny_notebook(path: Path) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells.append(nbformat.v4.new_code_cell("print(6 * 7)"))
    nb.metadata["kernelspec"] = {"name": KERNEL_NAME, "display_name": "Python (eafix-capacity)",
                                 "language": "python"}
    nbformat.write(nb, str(path))
    return path


def test_kernels_get_curve_keys():
    assert kernel_config()["KernelManager"]["transport_encryption"] == "auto"


@pytest.mark.notebook
def test_a_report_kernel_starts_without_the_unencrypted_transport_warning(tmp_path, capfd):
    source = _tiny_notebook(tmp_path / "tiny.ipynb")
    execute_notebook(source, tmp_path / "out.ipynb", {}, cwd=tmp_path)
    err = capfd.readouterr().err  # the kernel writes its log to the stderr it inherits
    assert WARNING not in err
    out = nbformat.read(str(tmp_path / "out.ipynb"), as_version=4)
    assert out.cells[0].outputs[0]["text"] == "42\n"


@pytest.mark.notebook
def test_make_notebooks_reexecutes_in_place_without_the_warning(tmp_path, capfd):
    nb = _tiny_notebook(tmp_path / "tiny.ipynb")
    assert nbformat.read(str(nb), as_version=4).cells[0].outputs == []
    rerun_in_place([nb])
    assert WARNING not in capfd.readouterr().err
    assert nbformat.read(str(nb), as_version=4).cells[0].outputs[0]["text"] == "42\n"


def test_kernels_main_without_notebooks_is_a_usage_error(capsys):
    from eafix_capacity.kernels import main
    assert main([]) == 2
    assert "usage" in capsys.readouterr().err


# ---------------------------------------------------------------- make lab

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.notebook
def test_make_lab_serves_the_notebooks_with_the_kit_kernel(tmp_path):
    port = _free_port()
    proc = subprocess.Popen(["make", "--no-print-directory", "-o", STAMP, "lab", f"LAB_PORT={port}"], cwd=ROOT,
                            env=_clean_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    log: list[str] = []
    try:
        url = None
        deadline = time.monotonic() + 90
        assert proc.stdout is not None
        while url is None and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            log.append(line)
            found = re.search(rf"(http://127\.0\.0\.1:{port}/lab\?token=\w+)", line)
            url = found.group(1) if found else None
        assert url, "".join(log)[-3000:]
        token = url.rsplit("=", 1)[1]

        def get(path: str) -> dict:
            req = urllib.request.Request(f"http://127.0.0.1:{port}{path}",
                                         headers={"Authorization": f"token {token}"})
            for _ in range(100):  # the URL is printed just before the server accepts
                try:
                    with urllib.request.urlopen(req, timeout=30) as r:
                        return json.load(r)
                except urllib.error.URLError as e:
                    if not isinstance(e.reason, ConnectionRefusedError):
                        raise
                    time.sleep(0.2)
            raise AssertionError(f"nothing listens on {port}")
        specs = get("/api/kernelspecs")
        assert specs["default"] == KERNEL_NAME and KERNEL_NAME in specs["kernelspecs"]
        contents = {c["name"] for c in get("/api/contents")["content"]}
        assert {"01_capacity_model.ipynb", "02_generate_manifests.ipynb"} <= contents
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
