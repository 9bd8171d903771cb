"""Node and zone loss rehearsals: on the recommended plan's twin and on a small zoned sim."""
from __future__ import annotations

import math
from collections import Counter
from typing import Any, Iterator

import pytest

from eafix_capacity.cluster import notebook as nb03
from eafix_capacity.cluster.apply import apply
from eafix_capacity.cluster.context import load_target
from eafix_capacity.cluster.rest import list_items
from eafix_capacity.errors import InputError
from eafix_capacity.inputs import PlanParams, plan_from_params
from eafix_capacity.manifests.render import RenderOptions, render
from eafix_capacity.profiles import get_profile, load_profiles
from eafix_capacity.signoff.failures import (NO_ZONES, largest_node, rehearse_each_node_loss, rehearse_node_loss,
                                             rehearse_zone_loss, zones_of)
from eafix_capacity.sim.clock import TRADING_DAY_START
from eafix_capacity.sim.cluster import SimCluster
from eafix_capacity.sim.hooks import ClockHooks, sim_clock_hooks

pytestmark = pytest.mark.sim

NS = "eafix-trading"
NAME = "app.kubernetes.io/name"
NO_SCHEDULING_EFFECT = {"Service", "NetworkPolicy", "Ingress", "Role", "RoleBinding"}


def _list(api: Any, path: str, kind: str) -> list[dict[str, Any]]:
    return list_items(api, path, kind, timeout=10)


def _nodes(api: Any) -> list[dict[str, Any]]:
    return _list(api, "/api/v1/nodes", "Node")


def _pods(api: Any, ns: str) -> list[dict[str, Any]]:
    return _list(api, f"/api/v1/namespaces/{ns}/pods", "Pod")


def _ready(obj: dict[str, Any]) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in obj["status"].get("conditions") or [])


def _node(name: str, cpu: str, memory: str, zone: str | None = None) -> dict[str, Any]:
    labels = {"topology.kubernetes.io/zone": zone} if zone else {}
    return {"metadata": {"name": name, "labels": labels}, "status": {"allocatable": {"cpu": cpu, "memory": memory}}}


# --- pure ----------------------------------------------------------------------------------------

def test_largest_node_by_cpu_then_memory_then_name() -> None:
    nodes = [_node("a", "3920m", "13Gi"), _node("b", "7910m", "28Gi"), _node("c", "7910m", "30Gi"),
             _node("d", "7.91", "30Gi")]
    assert largest_node(nodes) == "c"  # c and d tie on cpu (7910m = 7.91) and memory: the first by name
    assert largest_node(nodes[:2]) == "b"
    with pytest.raises(InputError, match="no nodes"):
        largest_node([])


def test_zones_of_groups_nodes_and_is_empty_without_labels() -> None:
    nodes = [_node("n2", "1", "1Gi", "z-b"), _node("n1", "1", "1Gi", "z-a"), _node("n3", "1", "1Gi", "z-a")]
    assert zones_of(nodes) == {"z-a": ["n1", "n3"], "z-b": ["n2"]}
    assert zones_of([_node("x", "1", "1Gi")]) == {}
    assert "topology.kubernetes.io/zone" in NO_ZONES


# --- the recommended plan's twin -----------------------------------------------------------------

@pytest.fixture(scope="module")
def twin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SimCluster, Any, ClockHooks]]:
    """A frozen sim shaped like the recommended plan (as usage/notebook.py open_target) with the
    plan's workloads applied in one apply (namespace, quota, limits, accounts, storage, secrets,
    config, Deployments, StatefulSets, HPA, PDBs), the controllers settling after each phase."""
    plan = plan_from_params(PlanParams())
    sim = SimCluster(node_type=plan.node_type.name, nodes=plan.nodes, provider=plan.options.provider, speed=0,
                     clock_start=TRADING_DAY_START, kubeconfig=tmp_path_factory.mktemp("twin") / "kubeconfig")
    with sim:
        target, api = load_target(kubeconfig=str(sim.kubeconfig), context="eafix-sim")
        # notebook 03's objects (rendered without the schema validation its own tests cover), less the
        # kinds that neither place nor evict a pod: half the requests of the apply
        objects = [o for o in nb03.select_objects(render(plan.catalog, get_profile("recommended", load_profiles()),
                                                         RenderOptions()), external_secrets=False)
                   if o["kind"] not in NO_SCHEDULING_EFFECT]
        apply(objects, api_client=api, target=target, dry_run=False, context_given=True,
              after_phase=lambda phase, records: sim.settle())
        hooks = sim_clock_hooks(sim)
        hooks.sleep(120)
        assert all(_ready(p) for p in _pods(api, NS))
        try:
            yield sim, api, hooks
        finally:
            api.close()


def _stays_on(pod: dict[str, Any], nodes: list[dict[str, Any]]) -> bool:
    """A pod that cannot move off its node: a StatefulSet's (its name is kept until the old pod is
    gone), or one whose claim is bound to a zonal volume with no other node in that zone."""
    if pod["metadata"]["ownerReferences"][0]["kind"] == "StatefulSet":
        return True
    zone = {n["metadata"]["name"]: n["metadata"]["labels"]["topology.kubernetes.io/zone"] for n in nodes}
    same_zone = [n for n, z in zone.items() if z == zone[pod["spec"]["nodeName"]] and n != pod["spec"]["nodeName"]]
    return any("persistentVolumeClaim" in v for v in pod["spec"].get("volumes") or []) and not same_zone


def test_losing_the_largest_node_of_the_twin_reschedules_every_trading_service(
        twin: tuple[SimCluster, Any, ClockHooks]) -> None:
    sim, api, hooks = twin
    nodes = _nodes(api)
    lost = largest_node(nodes)
    pods = _pods(api, NS)
    on_lost = Counter(p["metadata"]["labels"][NAME] for p in pods if p["spec"].get("nodeName") == lost)
    stuck = sorted(p["metadata"]["labels"][NAME] for p in pods
                   if p["spec"].get("nodeName") == lost and _stays_on(p, nodes))
    plan = plan_from_params(PlanParams())
    trading = [s for s in plan.catalog.services if s.tier == "trading"]
    pdbs = {p["spec"]["selector"]["matchLabels"][NAME]: p["spec"]
            for p in _list(api, f"/apis/policy/v1/namespaces/{NS}/poddisruptionbudgets", "PodDisruptionBudget")}

    r = rehearse_node_loss(api, sim=sim, namespace=NS, node=lost, clock=hooks.clock, sleep=hooks.sleep,
                           timeout=600, step=60)

    assert r.name == f"node-loss:{lost}" and r.kind == "node-loss"
    assert r.observations[-1].nodes == len(nodes) - 1
    # everything comes back but what cannot leave the node: a zonal volume, a StatefulSet's pod
    assert r.completed == (not stuck), r.reason
    stuck_sets = {p["metadata"]["labels"][NAME] for p in pods if p["spec"].get("nodeName") == lost
                  and p["metadata"]["ownerReferences"][0]["kind"] == "StatefulSet"}
    # a Deployment's replacement waits Pending for its volume's zone; a StatefulSet's pod stays Terminating
    assert sorted(p.service for p in r.pending_at_end) == sorted(set(stuck) - stuck_sets)
    for p in r.pending_at_end:
        assert "node(s) had volume node affinity conflict" in p.reason
        assert f"Deployment {p.service}: 0/1 ready" in r.reason
    for svc in stuck_sets:
        assert f"StatefulSet {svc}: 0/1 ready: {svc}-0 Terminating on the lost node" in r.reason
    evicted_at = r.started.timestamp() + 40 + 300
    for s in trading:
        want = s.replicas
        assert r.desired[s.name] == want
        # kubelet gone: the pods on the lost node are not Ready until their replacements are
        assert r.min_ready[s.name] == want - on_lost[s.name], s.name
        # ... and stay not Ready (no kubelet brings them back) until the taint eviction at 40 + 300 s
        assert {o.ready[s.name] for o in r.observations[1:] if o.at.timestamp() < evicted_at} == {r.min_ready[s.name]}
        # maxSkew 1 over the nodes: at most ceil(replicas / nodes) of a service on one node
        assert r.min_ready[s.name] >= want - math.ceil(want / len(nodes))
        # the PDB's maxUnavailable, as a count of what stays Ready
        assert r.min_ready[s.name] >= want - int(pdbs[s.name]["maxUnavailable"])
        assert r.observations[-1].ready[s.name] == want
    # restored: Ready again, no taint left, every pod Ready, none left Terminating
    assert r.details["restore"]["back"] is True
    node = next(n for n in _nodes(api) if n["metadata"]["name"] == lost)
    assert _ready(node) and not node["spec"].get("taints")
    after = _pods(api, NS)
    assert all(_ready(p) and not p["metadata"].get("deletionTimestamp") for p in after)


def test_a_statefulset_pod_on_a_lost_node_stays_down_until_the_node_returns(
        twin: tuple[SimCluster, Any, ClockHooks]) -> None:
    sim, api, hooks = twin
    pods = _pods(api, NS)
    node = next(p["spec"]["nodeName"] for p in pods if p["metadata"]["name"] == "redis-0")

    r = rehearse_node_loss(api, sim=sim, namespace=NS, node=node, clock=hooks.clock, sleep=hooks.sleep,
                           timeout=350, step=70)

    assert not r.completed
    assert "StatefulSet redis: 0/1 ready: redis-0 Terminating on the lost node" in r.reason
    assert r.min_ready["redis"] == 0
    assert r.details["restore"]["back"] is True
    assert [p for p in _pods(api, NS) if p["metadata"]["name"] == "redis-0" and _ready(p)]


# --- a small zoned sim: too few nodes, zones ------------------------------------------------------

@pytest.fixture(scope="module")
def zoned(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SimCluster, Any, ClockHooks]]:
    """4 x e2-standard-4 in zones a, b (two each); ``big`` fills most of every node, one replica each."""
    sim = SimCluster(node_type="e2-standard-4", nodes=4, zones=("a", "b"), speed=0,
                     kubeconfig=tmp_path_factory.mktemp("zoned") / "kubeconfig")
    labels = {NAME: "big"}
    big = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "big", "namespace": "shop"},
           "spec": {"replicas": 4, "selector": {"matchLabels": labels}, "template": {
               "metadata": {"labels": labels},
               "spec": {"containers": [{"name": "c", "image": "nginx:1.27",
                                        "resources": {"requests": {"cpu": "2500m", "memory": "100Mi"}}}],
                        "topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "kubernetes.io/hostname",
                                                       "whenUnsatisfiable": "DoNotSchedule",
                                                       "labelSelector": {"matchLabels": labels}}]}}}}
    with sim:
        target, api = load_target(kubeconfig=str(sim.kubeconfig), context="eafix-sim")
        apply([{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}, big], api_client=api,
              target=target, dry_run=False, context_given=True)
        sim.settle()
        hooks = sim_clock_hooks(sim)
        hooks.sleep(10)
        try:
            yield sim, api, hooks
        finally:
            api.close()


def test_losing_a_node_with_no_room_left_leaves_a_pod_pending(zoned: tuple[SimCluster, Any, ClockHooks]) -> None:
    sim, api, hooks = zoned
    r = rehearse_node_loss(api, sim=sim, namespace="shop", node="sim-e2-standard-4-1", clock=hooks.clock,
                           sleep=hooks.sleep, timeout=600, step=60)

    assert not r.completed
    assert [p.service for p in r.pending_at_end] == ["big"]
    reason = r.pending_at_end[0].reason
    # kube-scheduler 1.32's TaintToleration names the lost node's taint (its value is empty)
    assert reason.startswith("0/4 nodes are available: 1 node(s) had untolerated taint "
                             "{node.kubernetes.io/unreachable: }, 3 Insufficient cpu.")
    assert "Deployment big: 3/4 ready" in r.reason and "Insufficient cpu" in r.reason
    assert r.min_ready == {"big": 3}
    assert all(_ready(n) for n in _nodes(api))  # restored


def test_zone_loss_loses_exactly_that_zones_nodes(zoned: tuple[SimCluster, Any, ClockHooks]) -> None:
    sim, api, hooks = zoned
    nodes = _nodes(api)
    zone = nodes[0]["metadata"]["labels"]["topology.kubernetes.io/zone"]
    in_zone = sorted(n["metadata"]["name"] for n in nodes
                     if n["metadata"]["labels"]["topology.kubernetes.io/zone"] == zone)
    assert len(in_zone) == 2

    r = rehearse_zone_loss(api, sim=sim, namespace="shop", zone=zone, clock=hooks.clock, sleep=hooks.sleep,
                           timeout=600, step=60)

    assert r.name == f"zone-loss:{zone}" and r.kind == "zone-loss"
    assert r.settings["nodes"] == in_zone
    assert [o.nodes for o in r.observations[:2]] == [4, 2]  # kubelets stopped, then both Unknown at once
    assert r.min_ready == {"big": 2}
    assert len(r.pending_at_end) == 2 and not r.completed
    assert all(_ready(n) for n in _nodes(api))


def test_each_node_in_turn_is_one_rehearsal_and_restored(zoned: tuple[SimCluster, Any, ClockHooks]) -> None:
    sim, api, hooks = zoned
    names = sorted(n["metadata"]["name"] for n in _nodes(api))
    # 60 s: past the grace period, before the evictions: the lost node's pod is not Ready
    rs = rehearse_each_node_loss(api, sim=sim, namespace="shop", clock=hooks.clock, sleep=hooks.sleep,
                                 timeout=60, step=60)
    assert [r.name for r in rs] == [f"node-loss:{n}" for n in names]
    assert [(r.min_ready, r.completed) for r in rs] == [({"big": 3}, False)] * len(names)
    assert all(r.details["restore"]["back"] for r in rs)


def test_bad_inputs_are_one_line_input_errors(zoned: tuple[SimCluster, Any, ClockHooks]) -> None:
    sim, api, hooks = zoned
    with pytest.raises(InputError) as e:
        rehearse_node_loss(api, sim=sim, namespace="shop", node="nope", clock=hooks.clock, sleep=hooks.sleep)
    assert "no such node" in str(e.value) and "'nope'" in str(e.value) and "sim-e2-standard-4-0" in str(e.value)
    with pytest.raises(InputError) as e:
        rehearse_zone_loss(api, sim=sim, namespace="shop", zone="mars-1a", clock=hooks.clock, sleep=hooks.sleep)
    assert "no node in zone" in str(e.value) and "us-central1-a" in str(e.value)
    with pytest.raises(InputError, match="timeout"):
        rehearse_node_loss(api, sim=sim, namespace="shop", node="sim-e2-standard-4-0", clock=hooks.clock,
                           sleep=hooks.sleep, timeout=0)
    for err in (e.value,):
        assert "\n" not in str(err)
