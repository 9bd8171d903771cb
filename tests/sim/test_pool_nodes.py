"""The sim with several node pools (``pool_node_objects``, ``sim up --pools FILE``): each
pool's nodes with its labels, taints and the provider's node-pool label, and kube-scheduler's
NodeAffinity and TaintToleration filters keeping a rendering's pooled services on their pool."""
from __future__ import annotations

import argparse
import dataclasses
import ipaddress
from collections import Counter
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml

from eafix_capacity.catalog import load_catalog
from eafix_capacity.errors import InputError
from eafix_capacity.manifests.render import RenderOptions, render
from eafix_capacity.pools import PoolSpec
from eafix_capacity.profiles import load_profiles
from eafix_capacity.scheduling import Taint, Toleration
from eafix_capacity.sim import cli as sim_cli
from eafix_capacity.sim.cluster import NODE_POOL_LABEL, SimCluster, pool_node_objects

NOW = "2026-01-05T08:00:00Z"
MEMORY_TAINT = Taint("eafix.io/pool", "memory", "NoSchedule")
GENERAL = PoolSpec("general", "n2-standard-4", 3)
MEMORY = PoolSpec("memory", "n2-highmem-4", 3, labels={"eafix.io/pool": "memory"}, taints=(MEMORY_TAINT,))
ZONE = "topology.kubernetes.io/zone"
POOLED = ("redis", "postgres", "prometheus")
NS = "eafix-trading"


def _pool(nodes: list[dict], name: str) -> list[dict]:
    return [n for n in nodes if n["metadata"]["name"].startswith(f"sim-{name}-")]


# --- pool_node_objects (pure) ------------------------------------------------------------------

def test_every_pool_gets_its_nodes_labels_taints_and_zones() -> None:
    small = PoolSpec("small", "n2-standard-4", 2, labels={"team": "ops"})
    nodes = pool_node_objects([GENERAL, MEMORY, small], zones=("a", "b"), now=NOW)
    assert [n["metadata"]["name"] for n in nodes] == [
        "sim-general-0", "sim-general-1", "sim-general-2", "sim-memory-0", "sim-memory-1", "sim-memory-2",
        "sim-small-0", "sim-small-1"]
    labels = {n["metadata"]["name"]: n["metadata"]["labels"] for n in nodes}
    # each pool on its own round-robin over the zones: node i in zone i mod 2
    for pool in ("general", "memory", "small"):
        assert [labels[n["metadata"]["name"]][ZONE] for n in _pool(nodes, pool)][:2] == ["us-central1-a",
                                                                                          "us-central1-b"]
    assert [labels[f"sim-general-{i}"][ZONE] for i in range(3)] == ["us-central1-a", "us-central1-b",
                                                                     "us-central1-a"]
    for n in nodes:
        name, pool = n["metadata"]["name"], n["metadata"]["name"].split("-")[1]
        lab = labels[name]
        assert lab["kubernetes.io/hostname"] == name
        assert lab["cloud.google.com/gke-nodepool"] == pool   # GKE's node-pool label (n2 types are GCP's)
        assert n["status"]["addresses"][1] == {"type": "Hostname", "address": name}
    assert all(labels[n["metadata"]["name"]]["node.kubernetes.io/instance-type"] == "n2-highmem-4"
               for n in _pool(nodes, "memory"))
    assert all(labels[n["metadata"]["name"]]["eafix.io/pool"] == "memory" for n in _pool(nodes, "memory"))
    assert all("eafix.io/pool" not in labels[n["metadata"]["name"]] for n in _pool(nodes, "general"))
    assert all(labels[n["metadata"]["name"]]["team"] == "ops" for n in _pool(nodes, "small"))
    assert all(n["spec"]["taints"] == [{"key": "eafix.io/pool", "value": "memory", "effect": "NoSchedule"}]
               for n in _pool(nodes, "memory"))
    assert all("taints" not in n["spec"] for n in nodes if not n["metadata"]["name"].startswith("sim-memory"))
    # distinct addresses over all pools
    cidrs = [ipaddress.ip_network(n["spec"]["podCIDR"]) for n in nodes]
    ips = [n["status"]["addresses"][0]["address"] for n in nodes]
    assert len(set(cidrs)) == len(set(ips)) == len(nodes)
    assert not any(a.overlaps(b) for i, a in enumerate(cidrs) for b in cidrs[i + 1:])
    # the memory type's capacity, not the general one's
    assert _pool(nodes, "memory")[0]["status"]["capacity"]["memory"] != _pool(nodes, "general")[0]["status"][
        "capacity"]["memory"]


@pytest.mark.parametrize("provider, node_type, key", [
    ("eks", "m5.xlarge", "eks.amazonaws.com/nodegroup"), ("aks", "Standard_D4s_v5", "kubernetes.azure.com/agentpool"),
    ("generic", "n2-standard-4", "eafix.io/pool")])
def test_the_node_pool_label_is_the_providers(provider: str, node_type: str, key: str) -> None:
    assert NODE_POOL_LABEL[provider] == key
    nodes = pool_node_objects([PoolSpec("web", node_type, 1)], provider=provider, now=NOW)
    assert nodes[0]["metadata"]["labels"][key] == "web"
    assert nodes[0]["metadata"]["annotations"]["sim.eafix.io/provider"] == provider


def test_many_nodes_keep_distinct_addresses() -> None:
    nodes = pool_node_objects([PoolSpec("a", "e2-standard-2", 300), PoolSpec("b", "e2-standard-2", 300)], now=NOW)
    assert len({n["spec"]["podCIDR"] for n in nodes}) == len({n["status"]["addresses"][0]["address"]
                                                               for n in nodes}) == 600


@pytest.mark.parametrize("pools, message", [
    ([GENERAL, PoolSpec("memory", "n2-highmem-4", None)],
     "nodes: sim up --pools needs every pool's node count; 'memory'"),
    ([GENERAL, PoolSpec("aws", "m5.xlarge", 1)], "the pools' node types are of different clouds"),
    ([PoolSpec("p" * 58, "n2-standard-4", 10)], "pool name too long for its node names"),
    ([PoolSpec("memory", "n2-standard-4", 1, labels={ZONE: "us-east1-b"})],
     f"memory: labels.{ZONE}: pool label {ZONE}=us-east1-b contradicts the node's own"),
    ([PoolSpec("memory", "n2-standard-4", 1, labels={"cloud.google.com/gke-nodepool": "other"})],
     "contradicts the node's own cloud.google.com/gke-nodepool=memory"),
    ([PoolSpec("a", "n2-standard-4", 4000), PoolSpec("b", "n2-standard-4", 1001)],
     "the pools have 5,001 nodes in all"),
    ([PoolSpec("a", "n2-standard-99", 1)], "n2-standard-99"),
])
def test_pools_the_sim_cannot_start_are_refused(pools: list[PoolSpec], message: str) -> None:
    with pytest.raises(InputError) as e:
        pool_node_objects(pools, now=NOW)
    assert message in str(e.value) and "\n" not in str(e.value)


# --- sim up --pools ------------------------------------------------------------------------------

def _pools_file(tmp_path: Path, *, sized: bool = True) -> Path:
    path = tmp_path / "pools.yaml"
    path.write_text(yaml.safe_dump({"pools": [
        {"name": "general", "node_type": "n2-standard-4", "nodes": 3},
        {"name": "memory", "node_type": "n2-highmem-4", "nodes": 3 if sized else None,
         "labels": {"eafix.io/pool": "memory"},
         "taints": [{"key": "eafix.io/pool", "value": "memory", "effect": "NoSchedule"}]}]}))
    return path


def test_sim_up_pools_passes_the_pools_nodes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    served: list[SimCluster] = []

    def serve(sim: SimCluster, args: argparse.Namespace) -> int:
        served.append(sim)
        return 0

    monkeypatch.setattr(sim_cli, "_serve", serve)
    assert sim_cli.main(["sim", "up", "--pools", str(_pools_file(tmp_path)), "--zones", "a,b"]) == 0
    (sim,) = served
    nodes = sim._node_objects
    assert nodes is not None and [n["metadata"]["name"] for n in nodes][2:4] == ["sim-general-2", "sim-memory-0"]
    # each pool round-robin over --zones on its own
    assert [n["metadata"]["labels"][ZONE] for n in nodes] == ["us-central1-a", "us-central1-b", "us-central1-a"] * 2
    assert sim.store is None   # nothing started


@pytest.mark.parametrize("extra, shown", [
    (["--nodes", "3"], "--nodes: cannot be used with --pools"),
    (["--node-type", "n2-standard-8"], "--node-type: cannot be used with --pools"),
    ([], "sim up --pools needs every pool's node count; 'memory'"),
])
def test_sim_up_pools_refusals(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
                               extra: list[str], shown: str) -> None:
    monkeypatch.setattr(sim_cli, "_serve", lambda sim, args: pytest.fail("served"))
    assert sim_cli.main(["sim", "up", "--pools", str(_pools_file(tmp_path, sized=bool(extra))), *extra]) == 2
    err = capsys.readouterr().err
    assert shown in err and err.count("\n") == 1, err


def test_sim_up_pools_is_refused_with_from_context(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert sim_cli.main(["sim", "up", "--from-context", "prod", "--pools", str(_pools_file(tmp_path))]) == 2
    assert "--pools: cannot be used with --from-context" in capsys.readouterr().err


# --- on a sim with two pools -------------------------------------------------------------------

@pytest.fixture(scope="module")
def pooled_sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SimCluster, Any, Any]]:
    from eafix_capacity.cluster.context import load_target

    path = tmp_path_factory.mktemp("sim-pools") / "kubeconfig"
    with SimCluster(kubeconfig=path, node_objects=pool_node_objects([GENERAL, MEMORY])) as sim:
        assert sim.clock is not None
        sim.clock.set_speed(0)
        target, api = load_target(kubeconfig=sim.kubeconfig, context="eafix-sim")
        yield sim, target, api
        api.close()


def _small_catalogue() -> Any:
    catalog = load_catalog()
    keep = ("data-ingestor", "risk-manager", "gui-gateway", *POOLED, "grafana")
    toleration = Toleration(key="eafix.io/pool", operator="Equal", value="memory", effect="NoSchedule")
    return dataclasses.replace(catalog, services=tuple(
        dataclasses.replace(s, node_selector={"eafix.io/pool": "memory"}, tolerations=(toleration,))
        if s.name in POOLED else s for s in catalog.services if s.name in keep))


@pytest.mark.sim
def test_pooled_services_land_on_their_pool_and_the_rest_on_general(pooled_sim: tuple) -> None:
    from kubernetes import client

    from eafix_capacity.cluster.apply import apply
    from eafix_capacity.cluster.notebook import select_objects

    sim, target, api = pooled_sim
    objects = render(_small_catalogue(), load_profiles()["minimum"], RenderOptions())
    apply(select_objects(objects, external_secrets=False), api_client=api, target=target, dry_run=False,
          context_given=True)
    sim.settle()
    core: Any = client.CoreV1Api(api)
    pods = core.list_namespaced_pod(NS).items
    unplaced = [p.metadata.name for p in pods if not p.spec.node_name]
    assert pods and not unplaced, unplaced
    where: dict[str, Counter] = {}
    for p in pods:
        where.setdefault(p.metadata.labels["app.kubernetes.io/name"], Counter())[p.spec.node_name.split("-")[1]] += 1
    assert set(where) == {"data-ingestor", "risk-manager", "gui-gateway", *POOLED, "grafana"}
    for service, pools in where.items():
        assert set(pools) == ({"memory"} if service in POOLED else {"general"}), (service, pools)


@pytest.mark.sim
def test_a_pod_selecting_the_pool_without_its_toleration_stays_pending(pooled_sim: tuple) -> None:
    from kubernetes import client

    sim, _, api = pooled_sim
    core: Any = client.CoreV1Api(api)
    core.create_namespace({"metadata": {"name": "pools-probe"}})
    core.create_namespaced_pod("pools-probe", {"metadata": {"name": "stray"}, "spec": {
        "nodeSelector": {"eafix.io/pool": "memory"},
        "containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10",
                        "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}}]}})
    sim.settle()
    pod = core.read_namespaced_pod("stray", "pools-probe")
    assert not pod.spec.node_name
    (cond,) = [c for c in pod.status.conditions if c.type == "PodScheduled"]
    # kube-scheduler 1.32: TaintToleration names the taint, NodeAffinity fails the others
    assert (cond.status, cond.reason, cond.message) == (
        "False", "Unschedulable",
        "0/6 nodes are available: 3 node(s) didn't match Pod's node affinity/selector, 3 node(s) had untolerated "
        "taint {eafix.io/pool: memory}. preemption: 0/6 nodes are available: 6 Preemption is not helpful for "
        "scheduling.")
