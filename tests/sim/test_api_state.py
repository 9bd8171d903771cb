"""``SimCluster(state_file=...)``: changes survive a restart; a broken state file is a clear error."""
from __future__ import annotations

import json
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
