"""pytest fixtures that run a sim cluster in-process: ``sim_cluster`` and ``sim_cluster_module``.

Import them into a ``conftest.py`` (``from eafix_capacity.sim.testing import sim_cluster``).
Each yields a started ``SimCluster`` (3 n2-standard-8 nodes, controllers running) whose
kubeconfig lives in pytest's temporary directory, and stops it afterwards. ``run_kubectl``
and the ``kubectl`` fixture run the real binary against it with a private discovery cache.
"""
from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Callable, Iterator

import pytest

from eafix_capacity.sim.cluster import SimCluster


@pytest.fixture()
def sim_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimCluster]:
    path = tmp_path_factory.mktemp("sim") / "kubeconfig"
    with SimCluster(kubeconfig=path) as sim:
        yield sim


@pytest.fixture(scope="module")
def sim_cluster_module(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimCluster]:
    path = tmp_path_factory.mktemp("sim-module") / "kubeconfig"
    with SimCluster(kubeconfig=path) as sim:
        yield sim


def run_kubectl(sim: SimCluster, *args: str, cache_dir: str | Path, stdin: str | None = None,
                check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run the real ``kubectl`` against ``sim`` with its own discovery cache directory."""
    cmd = ["kubectl", f"--kubeconfig={sim.kubeconfig}", f"--cache-dir={cache_dir}", *args]
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUBE")}
    result = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=timeout, env=env)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


@pytest.fixture(scope="module")
def frozen_sim_module(sim_cluster_module: SimCluster) -> Iterator[SimCluster]:
    """``sim_cluster_module`` with its clock frozen: only ``clock.advance`` moves sim time."""
    assert sim_cluster_module.clock is not None
    sim_cluster_module.clock.set_speed(0)
    yield sim_cluster_module


def kubectl_on(sim: SimCluster, *args: str, ok: bool = True, stdin: str | None = None,
               timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """The real ``kubectl`` against ``sim``, its discovery cache beside the kubeconfig (shared by a
    module's tests); ``ok=False`` returns a failed run instead of raising."""
    return run_kubectl(sim, *args, cache_dir=Path(str(sim.kubeconfig)).parent / "kube-cache", check=ok,
                       stdin=stdin, timeout=timeout)


@pytest.fixture()
def kubectl(sim_cluster: SimCluster, tmp_path: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """``kubectl("get", "nodes")`` against the function-scoped ``sim_cluster``."""
    cache = tmp_path / "kube-cache"
    return lambda *args, **kw: run_kubectl(sim_cluster, *args, cache_dir=cache, **kw)
