"""``make test-fast`` keeps its promise: an unmarked test that starts a sim cluster fails there."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

TESTS = '''
import pytest
from eafix_capacity.sim.cluster import SimCluster


def test_unmarked_starts_a_sim(tmp_path):
    with SimCluster(kubeconfig=tmp_path / "kubeconfig"):
        pass


@pytest.mark.sim
def test_marked_starts_a_sim(tmp_path):
    with SimCluster(kubeconfig=tmp_path / "kubeconfig"):
        pass


def test_starts_nothing():
    assert True
'''


def run_fast(tmp_path: Path) -> subprocess.CompletedProcess[str]:
    suite = tmp_path / "suite"
    suite.mkdir(exist_ok=True)
    shutil.copy(HERE / "conftest.py", suite / "conftest.py")
    (suite / "test_guarded.py").write_text(TESTS)
    env = {**os.environ, "EAFIX_TEST_FAST": "1"}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist",
                           "-o", "addopts=", "-m", "not sim", str(suite)],
                          cwd=suite, env=env, capture_output=True, text=True, timeout=120)


def test_an_unmarked_test_that_starts_a_sim_fails_the_fast_run(tmp_path: Path) -> None:
    out = run_fast(tmp_path)
    assert out.returncode == 1, out.stdout
    assert "1 failed, 1 passed, 1 deselected" in out.stdout
    assert "this test starts a sim cluster but is not marked 'sim'" in out.stdout

