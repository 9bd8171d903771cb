"""``SimCluster(state_file=...)``: changes survive a restart; a broken state file is a clear error."""
from __future__ import annotations

import json
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from eafix_capacity.errors import InputError
from eafix_capacity.sim import resources as R
from eafix_capacity.sim.cluster import CONTEXT, DUMMY_TOKEN, SimCluster
from eafix_capacity.sim.testing import run_kubectl

pytestmark = pytest.mark.sim
CRD_DIR = Path(__file__).parent / "data" / "api" / "crd"


def test_state_survives_restart(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    with SimCluster(state_file=state, nodes=2, kubeconfig=tmp_path / "kc") as sim:
        run_kubectl(sim, "create", "namespace", "kept", cache_dir=tmp_path / "c1")
        run_kubectl(sim, "create", "configmap", "cfg", "-n", "kept", "--from-literal=a=1", cache_dir=tmp_path / "c1")
        run_kubectl(sim, "apply", "-f", str(CRD_DIR / "virtualservice-crd.yaml"), cache_dir=tmp_path / "c1")
        run_kubectl(sim, "apply", "-f", str(CRD_DIR / "virtualservice.yaml"), cache_dir=tmp_path / "c1")
        assert sim.store is not None
        uid = sim.store.get(R.CONFIGMAP, "kept", "cfg")["metadata"]["uid"]
    saved = json.loads(state.read_text())
    assert saved["resourceVersion"] > 0
    with SimCluster(state_file=state, nodes=5, kubeconfig=tmp_path / "kc") as sim:
        assert sim.store is not None
        assert sim.store.get(R.CONFIGMAP, "kept", "cfg")["metadata"]["uid"] == uid
        assert sim.store.count(R.NODE) == 2
        out = run_kubectl(sim, "get", "cm", "cfg", "-n", "kept", "-o", "jsonpath={.data.a}", cache_dir=tmp_path / "c2")
        assert out.stdout == "1"
        hosts = run_kubectl(sim, "get", "vs", "vs1", "-o", "jsonpath={.spec.hosts[0]}", cache_dir=tmp_path / "c2")
        assert hosts.stdout == "a.example"
    assert not list(tmp_path.glob(".state.json.*"))


def test_broken_state_file_is_an_input_error(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    state.write_text("{not json")
    with pytest.raises(InputError) as err:
        SimCluster(state_file=state).start()
    assert str(state) in str(err.value)


def test_kubeconfig_and_start_up(tmp_path: Path) -> None:
    with SimCluster(kubeconfig=tmp_path / "kc", node_type="m5.large", nodes=2, zones=("a", "b")) as sim:
        text = (tmp_path / "kc").read_text()
        assert f"current-context: {CONTEXT}" in text and sim.url in text and DUMMY_TOKEN in text
        assert sim.store is not None
        nodes, _ = sim.store.list(R.NODE)
        assert [n["metadata"]["labels"]["topology.kubernetes.io/zone"] for n in nodes] == ["us-east-1a", "us-east-1b"]
        assert nodes[0]["status"]["allocatable"]["pods"] == "29"


def test_unknown_node_type_is_an_input_error() -> None:
    with pytest.raises(InputError) as err:
        SimCluster(node_type="q9.enormous").start()
    assert "q9.enormous" in str(err.value)


def test_port_in_use_is_a_cluster_error(tmp_path: Path) -> None:
    from eafix_capacity.errors import ClusterError

    with SimCluster(kubeconfig=tmp_path / "kc1", controllers=False) as first:
        port = int(first.url.rsplit(":", 1)[1])
        with pytest.raises(ClusterError) as err:
            SimCluster(port=port, kubeconfig=tmp_path / "kc2", controllers=False).start()
        assert str(port) in str(err.value)
        with pytest.raises(ClusterError):
            first.start()


def test_namespace_deleted_just_before_stop_is_gone_after_restart(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    with SimCluster(state_file=state, nodes=1, kubeconfig=tmp_path / "kc", controllers=False) as sim:
        assert sim.store is not None
        sim.store.create(R.NAMESPACE, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "going"}})
        sim.store.create(R.CONFIGMAP, {"apiVersion": "v1", "kind": "ConfigMap",
                                       "metadata": {"name": "inside", "namespace": "going"}})
        assert sim.store.delete(R.NAMESPACE, None, "going")["status"]["phase"] == "Terminating"
    saved = {o["metadata"]["name"]: o for o in json.loads(state.read_text())["objects"]["/namespaces"]}
    assert saved["going"]["status"]["phase"] == "Terminating"  # stopped before the namespace finished
    with SimCluster(state_file=state, nodes=1, kubeconfig=tmp_path / "kc", controllers=False) as sim:
        store = sim.store
        assert store is not None
        deadline = time.monotonic() + 10
        while store.exists(R.NAMESPACE, None, "going"):
            assert time.monotonic() < deadline, "a namespace saved while Terminating never finished"
            time.sleep(0.05)
        assert not store.exists(R.CONFIGMAP, "going", "inside")
        store.create(R.NAMESPACE, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "going"}})


def test_stop_saves_a_write_that_was_in_flight(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    sim = SimCluster(state_file=state, nodes=1, kubeconfig=tmp_path / "kc", controllers=False).start()
    api = sim._server.api if sim._server is not None else None
    assert api is not None and sim.store is not None
    entered, release = threading.Event(), threading.Event()
    original = api.handle

    def slow_handle(*args: object) -> object:
        entered.set()
        release.wait(10)
        return original(*args)

    api.handle = slow_handle  # type: ignore[method-assign]
    url = sim.url
    body = json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "late"}}).encode()
    answers: list[int] = []

    def post() -> None:
        req = urllib.request.Request(f"{url}/api/v1/namespaces/default/configmaps", data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=20) as resp:
            answers.append(resp.status)

    client = threading.Thread(target=post)
    client.start()
    assert entered.wait(10)
    stopper = threading.Thread(target=sim.stop)
    stopper.start()
    stopper.join(1.0)  # stop() must now be waiting for the write (without that wait it has finished)
    release.set()
    stopper.join(20)
    client.join(20)
    assert answers == [201]
    names = [o["metadata"]["name"] for o in json.loads(state.read_text())["objects"]["/configmaps"]]
    assert "late" in names


def test_state_under_a_regular_file_is_refused_at_start_before_serving(tmp_path: Path) -> None:
    from eafix_capacity.errors import OutputError

    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the state directory should be")
    state = blocker / "state.json"
    sim = SimCluster(state_file=state, nodes=1, kubeconfig=tmp_path / "kc", controllers=False)
    with pytest.raises(OutputError) as err:
        sim.start()
    assert str(state) in str(err.value) and f"parent {blocker} is not a directory" in str(err.value)
    assert not sim._running and sim._server is None and sim.store is None
    assert not (tmp_path / "kc").exists()  # refused before the kubeconfig that would point at a server


def test_state_in_a_directory_that_refuses_writes_is_refused_at_start(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """As root no permission bit stops a write, so the refusal (EACCES) is simulated at ``os.open``."""
    import errno
    import os

    from eafix_capacity.errors import OutputError

    locked = tmp_path / "locked"
    locked.mkdir()
    real_open = os.open

    def refusing_open(path: object, flags: int, *args: object, **kw: object) -> int:
        if str(path).startswith(str(locked)) and flags & (os.O_WRONLY | os.O_RDWR):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_open(path, flags, *args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "open", refusing_open)
    sim = SimCluster(state_file=locked / "state.json", nodes=1, kubeconfig=tmp_path / "kc", controllers=False)
    with pytest.raises(OutputError) as err:
        sim.start()
    assert str(locked / "state.json") in str(err.value) and "Permission denied" in str(err.value)
    assert not sim._running and sim._server is None
    assert list(locked.iterdir()) == []


@pytest.mark.parametrize("content, problem", [
    (b'{"foo": 1}', "not a sim state file"),
    (b"{not json", "not JSON"),
    (b"", "the file is empty"),
    (b"[1, 2]", "not an object"),
    (b'{"kind": "EafixSimState", "version": 2, "id": "x", "resourceVersion": 1, "objects": {}}',
     "version not supported: 2"),
    (b'{"kind": "Config", "apiVersion": "v1"}', "kind is 'Config'"),
    (b'{"resourceVersion": 3, "objects": {"/configmaps": [{"data": {}}]}}', "not an object with metadata.name"),
])
def test_a_state_file_that_is_not_the_sims_is_refused_and_left_alone(tmp_path: Path, content: bytes,
                                                                     problem: str) -> None:
    state = tmp_path / "state.json"
    state.write_bytes(content)
    sim = SimCluster(state_file=state, nodes=1, kubeconfig=tmp_path / "kc", controllers=False)
    with pytest.raises(InputError) as err:
        sim.start()
    message = str(err.value)
    assert message.startswith(f"{state}: ") and problem in message and "\n" not in message
    assert state.read_bytes() == content  # not overwritten
    assert not (tmp_path / "state.json.wal").exists() and sim._server is None


def test_a_state_file_of_the_earlier_kit_is_still_read(tmp_path: Path) -> None:
    """Before the write-ahead log the file was ``{"resourceVersion": N, "objects": {...}}``: still accepted."""
    state = tmp_path / "state.json"
    with SimCluster(nodes=1, kubeconfig=tmp_path / "kc", controllers=False) as sim:
        assert sim.store is not None
        sim.store.create(R.CONFIGMAP, {"metadata": {"name": "old", "namespace": "default"}, "data": {"a": "1"}})
        state.write_text(json.dumps(sim.store.dump()))
    with SimCluster(state_file=state, kubeconfig=tmp_path / "kc", controllers=False) as sim:
        assert sim.store is not None and sim.store.get(R.CONFIGMAP, "default", "old")["data"] == {"a": "1"}
    assert json.loads(state.read_text())["kind"] == "EafixSimState"


def test_unwritable_kubeconfig_is_an_output_error_and_nothing_keeps_running(tmp_path: Path) -> None:
    from eafix_capacity.errors import OutputError

    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    sim = SimCluster(kubeconfig=blocker / "kubeconfig", nodes=1, controllers=False)
    with pytest.raises(OutputError) as err:
        sim.start()
    assert str(blocker / "kubeconfig") in str(err.value)
    assert not sim._running and sim._server is None
