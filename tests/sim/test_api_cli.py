"""``python -m eafix_capacity.sim up``: prints how to use it, serves kubectl, stops on SIGINT, saves state."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.sim, pytest.mark.kubectl]


def test_sim_up_serves_until_interrupted(tmp_path: Path) -> None:
    kubeconfig, state = tmp_path / "kubeconfig", tmp_path / "state.json"
    proc = subprocess.Popen([sys.executable, "-m", "eafix_capacity.sim", "up", "--nodes", "2", "--node-type",
                             "e2-standard-4", "--kubeconfig", str(kubeconfig), "--state", str(state)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines = []
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not any("kubectl get nodes" in x for x in lines):
            lines.append(proc.stdout.readline() if proc.stdout else "")
        assert f"export KUBECONFIG={kubeconfig}" in "".join(lines)
        out = subprocess.run(["kubectl", f"--kubeconfig={kubeconfig}", f"--cache-dir={tmp_path / 'c'}", "get",
                              "nodes", "-o", "name"], capture_output=True, text=True, timeout=30, check=True)
        assert out.stdout.split() == ["node/sim-e2-standard-4-0", "node/sim-e2-standard-4-1"]
    finally:
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=10)
    assert code == 0
    saved = json.loads(state.read_text())
    assert len(saved["objects"]["/nodes"]) == 2


def test_sim_up_rejects_bad_flags(tmp_path: Path) -> None:
    bad = subprocess.run([sys.executable, "-m", "eafix_capacity.sim", "up", "--nodes", "-3"],
                         capture_output=True, text=True, timeout=30)
    assert bad.returncode == 2 and "must be >= 0" in bad.stderr
    unknown = subprocess.run([sys.executable, "-m", "eafix_capacity.sim", "up", "--node-type", "nope",
                              "--kubeconfig", str(tmp_path / "kc")], capture_output=True, text=True, timeout=30)
    assert unknown.returncode == 2 and "unknown node type 'nope'" in unknown.stderr


@pytest.mark.parametrize("flags, message", [(["--port", "70000"], "0 to 65535"), (["--speed", "inf"], "finite"),
                                            (["--speed", "-1"], "finite number >= 0")])
def test_sim_up_refuses_out_of_range_port_and_speed(flags: list[str], message: str,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    from eafix_capacity.sim.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(["sim", "up", *flags])
    assert exit_.value.code == 2 and message in capsys.readouterr().err


def test_sim_cluster_port_out_of_range_is_a_cluster_error(tmp_path: Path) -> None:
    from eafix_capacity.errors import ClusterError
    from eafix_capacity.sim.cluster import SimCluster

    with pytest.raises(ClusterError, match="70000"):
        SimCluster(port=70000, kubeconfig=tmp_path / "kc", controllers=False).start()
