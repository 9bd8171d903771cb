"""``sim up`` refuses what Kubernetes would refuse, in one line, before anything is allocated or served."""
from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from eafix_capacity.errors import InputError, OutputError
from eafix_capacity.limits import MAX_NODES
from eafix_capacity.sim.cluster import SimCluster, node_objects
from eafix_capacity.labels import is_valid_label_value
from eafix_capacity.zones import zone_labels

pytestmark = pytest.mark.sim

_GUARD = 60.0  # a hang guard, not a timing assertion


def _sim_up(*args: str, timeout: float = _GUARD) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "eafix_capacity.sim", "up", *args], capture_output=True, text=True,
                          timeout=timeout)


# --- zones --------------------------------------------------------------------------------------


@pytest.mark.parametrize("value, valid", [
    ("us-central1-a", True), ("", True), ("a", True), ("A.b_c-9", True), ("x" * 63, True),
    ("x" * 64, False), ("us-central1-!!", False), ("-a", False), ("a-", False), ("a b", False),
    ("a\n", False), ("é", False),
])
def test_label_values_are_judged_as_kubernetes_does(value: str, valid: bool) -> None:
    assert is_valid_label_value(value) is valid


def test_zone_labels_refuse_bad_zones() -> None:
    assert zone_labels("gcp", ("a", "b")) == ("us-central1-a", "us-central1-b")
    assert zone_labels("aws", ("a",)) == ("us-east-1a",)
    for zones in (("!!", "", ""), ("a", ""), ("a-",), ("z" * 64,), ()):
        with pytest.raises(InputError):
            zone_labels("gcp", zones)
    with pytest.raises(InputError, match="topology.kubernetes.io/zone=us-central1-!!"):
        node_objects("n2-standard-8", nodes=1, zones=("!!",))


@pytest.mark.parametrize("zones, shown", [("!!,,", "'!!'"), ("a,,b", "empty zone name"), ("a,b-", "'b-'")])
def test_sim_up_refuses_zones_kubernetes_would_refuse(tmp_path: Path, zones: str, shown: str) -> None:
    out = _sim_up("--zones", zones, "--kubeconfig", str(tmp_path / "kc"))
    assert out.returncode == 2, out.stderr
    assert out.stderr.count("\n") == 1 and shown in out.stderr and "Traceback" not in out.stderr
    assert "IsValidLabelValue" in out.stderr and not (tmp_path / "kc").exists()


# --- kubeconfig under a regular file --------------------------------------------------------------


def test_kubeconfig_under_a_regular_file_names_the_parent(tmp_path: Path) -> None:
    blocker = tmp_path / "passwd"
    blocker.write_text("root:x:0:0::/root:/bin/sh\n")
    out = _sim_up("--kubeconfig", str(blocker / "x"), "--nodes", "1")
    assert out.returncode == 1 and out.stderr.count("\n") == 1
    assert f"parent {blocker} is not a directory" in out.stderr and str(blocker / "x") in out.stderr
    assert "File exists" not in out.stderr and "serving on" not in out.stdout
    sim = SimCluster(kubeconfig=blocker / "a" / "b" / "kc", nodes=1, controllers=False)
    with pytest.raises(OutputError, match=f"parent {blocker} is not a directory"):
        sim.start()
    assert sim.store is None  # refused before the store and its nodes were built


# --- node count -----------------------------------------------------------------------------------


def test_sim_up_refuses_more_nodes_than_kubernetes_supports() -> None:
    out = _sim_up("--nodes", "1000000000")
    assert out.returncode == 2 and "Kubernetes supports at most 5,000 nodes per cluster" in out.stderr
    assert out.stderr.count("\n") == 1 and "1000000000" in out.stderr and "Traceback" not in out.stderr
    with pytest.raises(InputError, match="at most 5,000 nodes"):
        SimCluster(nodes=1_000_000_000)  # refused in the constructor: nothing allocated
    with pytest.raises(InputError, match="at most 5,000 nodes"):
        node_objects("n2-standard-8", nodes=MAX_NODES + 1, zones=("a",))
    assert len(node_objects("e2-standard-2", nodes=MAX_NODES, zones=("a",))) == MAX_NODES


def test_ctrl_c_during_start_up_stops_promptly_without_a_traceback(tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "eafix_capacity.sim", "up", "--nodes", str(MAX_NODES),
                             "--kubeconfig", str(tmp_path / "kc"), "--state", str(tmp_path / "state.json")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()  # printed before the 5,000 nodes are built
        assert "starting the sim cluster" in first
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=_GUARD)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    assert "Traceback" not in err and err.strip() == "interrupted: the sim cluster is stopped"
    assert "serving on" not in out and not (tmp_path / "kc").exists()


def test_a_cancelled_start_stops_at_a_safe_point_and_leaves_nothing(tmp_path: Path) -> None:
    # a cancel at any point of start-up, even before the API server serves, must not leave
    # stop() waiting on a serve loop that never ran (a hang seen when Ctrl-C came then)
    import threading
    cancel = threading.Event()
    cancel.set()
    sim = SimCluster(nodes=3, kubeconfig=str(tmp_path / "kc"), state_file=str(tmp_path / "state.json"))
    with pytest.raises(KeyboardInterrupt):
        sim.start(cancel=cancel)
    assert not (tmp_path / "kc").exists()
    with pytest.raises(Exception, match="not running"):
        sim.url


def test_an_api_server_that_never_served_stops_at_once() -> None:
    import threading
    from eafix_capacity.sim.api import Api
    from eafix_capacity.sim.server import ApiServer
    from eafix_capacity.sim.store import Store
    server = ApiServer(Api(Store()))
    stopper = threading.Thread(target=server.stop, daemon=True)
    stopper.start()
    stopper.join(_GUARD)
    assert not stopper.is_alive()


# --- a restored state's nodes ---------------------------------------------------------------------


def _banner(proc: subprocess.Popen[str]) -> str:
    assert proc.stdout is not None
    lines = []
    deadline = time.monotonic() + _GUARD
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if "Press Ctrl-C" in line:
            break
    return "".join(lines)


def _run_until_banner(*args: str) -> tuple[str, int]:
    proc = subprocess.Popen([sys.executable, "-m", "eafix_capacity.sim", "up", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        text = _banner(proc)
    finally:
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=_GUARD)
    return text, code


def test_a_restored_state_says_which_nodes_it_serves(tmp_path: Path) -> None:
    state, kc = str(tmp_path / "state.json"), str(tmp_path / "kc")
    first, code = _run_until_banner("--nodes", "2", "--node-type", "e2-standard-4", "--state", state,
                                    "--kubeconfig", kc)
    assert code == 0 and "(2 x e2-standard-4 in us-central1-a, us-central1-b, context eafix-sim)" in first
    again, code = _run_until_banner("--nodes", "5", "--node-type", "m5.large", "--state", state, "--kubeconfig", kc)
    assert code == 0
    assert f"(2 x e2-standard-4 in us-central1-a, us-central1-b restored from {state}, context" in again
    assert "5 x" not in again and "m5.large" in again  # only in the note
    assert f"note: {state} holds its own nodes, so --nodes 5 --node-type m5.large are not used" in again
    same, code = _run_until_banner("--nodes", "2", "--node-type", "e2-standard-4", "--state", state,
                                   "--kubeconfig", kc)
    assert code == 0 and "restored from" in same and "note:" not in same
