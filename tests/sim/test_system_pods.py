"""Sim nodes as a cloud gives them: the provider's system DaemonSets and metrics-server run in
kube-system with the capacity model's requests, so a node leaves workloads exactly the plan's room."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

import pytest
from kubernetes import client, config

from eafix_capacity.errors import InputError
from eafix_capacity.nodes import MIB, PROVIDERS, DaemonSet, allocatable, default_daemonsets, get_node_type, \
    load_node_types
from eafix_capacity.sim import resources as R
from eafix_capacity.sim import cli as sim_cli
from eafix_capacity.sim import system
from eafix_capacity.sim.cluster import SimCluster
from eafix_capacity.sim.resources import Registry
from eafix_capacity.sim.scheduler import pod_requests
from eafix_capacity.sim.testing import run_kubectl
from eafix_capacity.sim.validation import validate

pytestmark = pytest.mark.sim

NODE_TYPE = "n2-standard-8"
_KINDS = {rt.kind: rt for rt in (R.PRIORITYCLASS, R.SERVICEACCOUNT, R.DAEMONSET, R.DEPLOYMENT)}


# --- the objects, without a server -------------------------------------------------------------------


@pytest.mark.parametrize("mesh", ["none", "istio"])
@pytest.mark.parametrize("provider", PROVIDERS)
def test_each_daemonset_requests_what_the_capacity_model_reserves(provider: str, mesh: str) -> None:
    objs = system.system_objects(provider, mesh=mesh)  # type: ignore[arg-type]
    daemonsets = {o["metadata"]["name"]: o for o in objs if o["kind"] == "DaemonSet"}
    model = default_daemonsets(provider, mesh=mesh)  # type: ignore[arg-type]
    assert list(daemonsets) == [d.name for d in model]
    accounts = {o["metadata"]["name"] for o in objs if o["kind"] == "ServiceAccount"}
    for d in model:
        ds = daemonsets[d.name]
        pod = {"spec": ds["spec"]["template"]["spec"]}
        assert pod_requests(pod) == (d.cpu_m, d.memory_bytes), d.name
        spec = pod["spec"]
        assert ds["metadata"]["namespace"] == "kube-system"
        assert spec["tolerations"] == [{"operator": "Exists"}]  # every taint, as system DaemonSets
        assert spec["priorityClassName"] == "system-node-critical"
        assert spec["serviceAccountName"] in accounts
        selector = ds["spec"]["selector"]["matchLabels"]
        assert selector.items() <= ds["spec"]["template"]["metadata"]["labels"].items()
    assert ("istio-cni-node" in daemonsets) is (mesh == "istio")
    ms = next(o for o in objs if o["kind"] == "Deployment")
    assert ms["metadata"]["name"] == "metrics-server"
    assert pod_requests({"spec": ms["spec"]["template"]["spec"]}) == (100, 200 * MIB)  # upstream components.yaml


@pytest.mark.parametrize("provider", PROVIDERS)
def test_system_objects_pass_the_api_servers_strict_validation(provider: str) -> None:
    registry = Registry()
    for obj in system.system_objects(provider, mesh="istio"):  # type: ignore[arg-type]
        out = validate(obj, _KINDS[obj["kind"]], registry, mode="Strict")
        assert out.warnings == [], (obj["kind"], obj["metadata"]["name"])


def test_requests_are_split_as_published_and_always_add_up() -> None:
    exporter = system.agent_for("gke", default_daemonsets("gke")[-1])
    assert [c.name for c in exporter.containers] == ["node-exporter", "kube-rbac-proxy"]
    # kube-prometheus: node-exporter 102m/180Mi, kube-rbac-proxy the rest of 112m/200Mi
    assert system.container_requests(exporter, DaemonSet("node-exporter", 112, 200 * MIB)) == \
        [(102, 180 * MIB), (10, 20 * MIB)]
    # a model figure below the published split: all of it on the first container, none lost
    small = DaemonSet("node-exporter", 50, 10 * MIB)
    assert system.container_requests(exporter, small) == [(50, 10 * MIB), (0, 0)]
    ds = system.daemonset_object("gke", small)
    assert pod_requests({"spec": ds["spec"]["template"]["spec"]}) == (50, 10 * MIB)
    # a DaemonSet the kit does not know still gets the model's requests on one container
    other = system.daemonset_object("eks", DaemonSet("my-agent", 30, 0))
    (container,) = other["spec"]["template"]["spec"]["containers"]
    assert container["resources"] == {"requests": {"cpu": "30m"}}
    # no request at all (kubeadm's kube-proxy): no resources, still a pod slot
    kube_proxy = system.daemonset_object("generic", default_daemonsets("generic")[0])
    assert kube_proxy["spec"]["template"]["spec"]["containers"][0]["resources"] == {}


def test_an_unknown_mesh_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(InputError, match="unknown mesh"):
        SimCluster(mesh="linkerd")
    assert sim_cli.main(["sim", "up", "--mesh", "linkerd", "--kubeconfig", str(tmp_path / "kc")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown mesh" in err and "none, istio" in err
    assert not (tmp_path / "kc").exists()


def test_the_mesh_adds_istio_cni_to_every_node() -> None:
    with SimCluster(nodes=1, mesh="istio", controllers=False) as sim:
        assert sim.store is not None
        ds = sim.store.get(R.DAEMONSET, "kube-system", "istio-cni-node")
        assert pod_requests({"spec": ds["spec"]["template"]["spec"]}) == (100, 100 * MIB)
        (node,) = sim.store.list_objects(R.NODE)[0]
        reserved = json.loads(node["metadata"]["annotations"]["sim.eafix.io/daemonset-requests"])
        assert [d["name"] for d in reserved] == [d.name for d in default_daemonsets("gke", mesh="istio")]


def test_a_deleted_system_daemonset_comes_back_on_restart(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    with SimCluster(nodes=1, state_file=state, kubeconfig=tmp_path / "kc") as sim:
        apps = client.AppsV1Api(config.new_client_from_config(config_file=str(sim.kubeconfig)))
        apps.delete_namespaced_daemon_set("netd", "kube-system")
        sim.settle()
        assert "netd" not in [d.metadata.name for d in apps.list_namespaced_daemon_set("kube-system").items]
    with SimCluster(state_file=state, kubeconfig=tmp_path / "kc") as sim:  # as a cloud's addon manager
        core = client.CoreV1Api(config.new_client_from_config(config_file=str(sim.kubeconfig)))
        pods = core.list_namespaced_pod("kube-system").items
        names = sorted(p.metadata.name.rsplit("-", 1)[0] for p in pods if p.metadata.name != "metrics-server")
        assert sorted(n for n in names if not n.startswith("metrics-server")) == \
            sorted(d.name for d in default_daemonsets("gke"))  # one of each, none twice
        assert all(p.status.phase == "Running" for p in pods)


# --- a running sim, through kubectl and the official client ------------------------------------------


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimCluster]:
    with SimCluster(nodes=2, node_type=NODE_TYPE, kubeconfig=tmp_path_factory.mktemp("sys") / "kc") as sim:
        yield sim


@pytest.fixture(scope="module")
def kubectl(sim: SimCluster, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    cache = tmp_path_factory.mktemp("sys-cache")
    return lambda *args, **kw: run_kubectl(sim, *args, cache_dir=cache, **kw)


def test_kube_system_runs_the_daemonsets_on_every_node_and_metrics_server(sim, kubectl) -> None:
    pods = json.loads(kubectl("get", "pods", "-n", "kube-system", "-o", "json").stdout)["items"]
    nodes = sorted(n["metadata"]["name"] for n in json.loads(kubectl("get", "nodes", "-o", "json").stdout)["items"])
    owners: dict[str, list[str]] = {}
    for p in pods:
        assert p["status"]["phase"] == "Running", p["metadata"]["name"]
        # the Priority admission plugin's value of the pod's class (built in, as on any cluster)
        critical = "system-cluster-critical" if p["metadata"]["name"].startswith("metrics-server-") \
            else "system-node-critical"
        assert (p["spec"]["priorityClassName"], p["spec"]["priority"]) == (critical, system.PRIORITY_CLASSES[critical][0])
        ref = p["metadata"]["ownerReferences"][0]
        owners.setdefault(f"{ref['kind']}/{ref['name'].split('-')[0]}", []).append(p["spec"]["nodeName"])
    for d in default_daemonsets("gke"):
        assert sorted(owners.pop(f"DaemonSet/{d.name.split('-')[0]}")) == nodes, d.name
    assert list(owners) == ["ReplicaSet/metrics"] and len(owners["ReplicaSet/metrics"]) == 1
    classes = kubectl("get", "priorityclasses", "-o", "name").stdout.split()
    assert {"priorityclass.scheduling.k8s.io/system-node-critical",
            "priorityclass.scheduling.k8s.io/system-cluster-critical"} <= set(classes)
    table = kubectl("get", "ds", "-n", "kube-system").stdout.splitlines()
    assert table[0].split()[:4] == ["NAME", "DESIRED", "CURRENT", "READY"]
    assert sorted(r.split()[0] for r in table[1:]) == sorted(d.name for d in default_daemonsets("gke"))
    assert all(r.split()[1:4] == ["2", "2", "2"] for r in table[1:])

    # they tolerate every taint: a tainted node keeps them (the controller would delete them otherwise)
    kubectl("taint", "nodes", nodes[0], "dedicated=batch:NoExecute")
    sim.settle()
    ds = json.loads(kubectl("get", "ds", "-n", "kube-system", "-o", "json").stdout)["items"]
    assert {d["status"]["desiredNumberScheduled"] for d in ds} == {2}
    assert {d["status"]["numberReady"] for d in ds} == {2}
    kubectl("taint", "nodes", nodes[0], "dedicated=batch:NoExecute-")


def test_top_pods_in_kube_system(sim, kubectl) -> None:
    assert sim.clock is not None
    sim.clock.advance(120)  # past metrics-server's first window
    sim.settle()
    lines = kubectl("top", "pods", "-n", "kube-system").stdout.splitlines()
    assert lines[0].split() == ["NAME", "CPU(cores)", "MEMORY(bytes)"]
    names = [line.split()[0] for line in lines[1:]]
    assert len(names) == 2 * len(default_daemonsets("gke")) + 1
    assert sum(n.startswith("metrics-server-") for n in names) == 1


def test_a_node_leaves_workloads_exactly_the_plans_room(sim, kubectl) -> None:
    room = allocatable(get_node_type(NODE_TYPE, load_node_types()), provider="gke")  # what make_plan uses per node
    core = client.CoreV1Api(config.new_client_from_config(config_file=str(sim.kubeconfig)))
    system_pods = core.list_namespaced_pod("kube-system").items
    busy = next(p.spec.node_name for p in system_pods if p.metadata.name.startswith("metrics-server-"))
    kubectl("cordon", busy)  # metrics-server is not a per-node DaemonSet: fill the node without it
    target = next(n.metadata.name for n in core.list_node().items if n.metadata.name != busy)
    core.create_namespace({"metadata": {"name": "fill"}})

    def pod(name: str, requests: dict[str, str] | None = None) -> None:
        container = {"name": "c", "image": "registry.k8s.io/pause:3.10", "resources": {"requests": requests or {}}}
        core.create_namespaced_pod("fill", {"metadata": {"name": name}, "spec": {"containers": [container]}})

    pod("room", {"cpu": f"{room.workload_cpu_m}m", "memory": str(room.workload_memory_bytes)})
    sim.settle()  # one at a time: which of several Pending pods the scheduler takes first is not the point
    for i in range(room.workload_pods - 1):
        pod(f"slot-{i}")
    sim.settle()
    pod("one-more-cpu", {"cpu": "1m"})
    pod("one-more-memory", {"memory": "1"})
    pod("one-more-pod")
    sim.settle()
    pods = {p.metadata.name: p for p in core.list_namespaced_pod("fill").items}
    pending = {n for n, p in pods.items() if p.status.phase == "Pending"}
    assert pending == {"one-more-cpu", "one-more-memory", "one-more-pod"}
    assert {p.spec.node_name for n, p in pods.items() if n not in pending} == {target}

    def message(name: str) -> str:
        (cond,) = [c for c in pods[name].status.conditions if c.type == "PodScheduled"]
        assert cond.status == "False" and cond.reason == "Unschedulable"
        return str(cond.message)

    assert "1 Insufficient cpu" in message("one-more-cpu") and "0/2 nodes are available" in message("one-more-cpu")
    assert "1 Insufficient memory" in message("one-more-memory")
    assert "1 Too many pods" in message("one-more-pod") and "1 node(s) were unschedulable" in message("one-more-pod")

    workload = [pod_requests(core.api_client.sanitize_for_serialization(p)) for n, p in pods.items()
                if n not in pending]
    assert sum(c for c, _ in workload) == room.workload_cpu_m
    assert sum(m for _, m in workload) == room.workload_memory_bytes
    assert len(workload) == room.workload_pods
    on_target = [p for p in core.list_pod_for_all_namespaces(field_selector=f"spec.nodeName={target}").items]
    node = core.read_node(target)
    assert sum(pod_requests(core.api_client.sanitize_for_serialization(p))[0] for p in on_target) == room.cpu_m
    assert node.status.allocatable["cpu"] == f"{room.cpu_m}m" and len(on_target) == room.max_pods
    core.delete_namespace("fill")
    kubectl("uncordon", busy)


def test_ctrl_c_while_the_system_pods_start_stops_between_passes() -> None:
    import threading

    from eafix_capacity.sim.clock import SimClock
    from eafix_capacity.sim.controllers.manager import ControllerManager
    from eafix_capacity.sim.store import Store

    store = Store()
    cm = ControllerManager(store, store.registry, clock=SimClock(speed=0), seed=1)
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(KeyboardInterrupt):
        cm.run_once(cancel=cancel)
    assert cm.run_once(cancel=threading.Event()) >= 1  # not set: runs to its fixpoint
