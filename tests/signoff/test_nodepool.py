"""The node-pool upgrade rehearsal on the recommended plan's twin (a frozen sim), and its settings."""
from __future__ import annotations

from typing import Any

import pytest

from eafix_capacity.cluster.context import load_target
from eafix_capacity.cluster.rest import get_json, patch_json, post_json
from eafix_capacity.errors import ClusterError, InputError
from eafix_capacity.nodes import allocatable, get_node_type, load_node_types
from eafix_capacity.signoff.nodepool import (Batches, plan_batches, rehearse_nodepool_upgrade, upgrade_settings)
from eafix_capacity.sim.hooks import sim_clock_hooks

NS = "eafix-trading"
PLURAL = {"Namespace": "namespaces", "StorageClass": "storageclasses", "NetworkPolicy": "networkpolicies",
          "ServiceAccount": "serviceaccounts", "Service": "services", "Deployment": "deployments",
          "StatefulSet": "statefulsets", "PodDisruptionBudget": "poddisruptionbudgets", "ConfigMap": "configmaps",
          "PersistentVolumeClaim": "persistentvolumeclaims", "ResourceQuota": "resourcequotas",
          "LimitRange": "limitranges", "Secret": "secrets", "HorizontalPodAutoscaler": "horizontalpodautoscalers",
          "Role": "roles", "RoleBinding": "rolebindings", "Ingress": "ingresses"}


# --- settings (pure) -----------------------------------------------------------------------------

def test_each_provider_batches_as_it_should() -> None:
    gke, eks, aks = (upgrade_settings(p) for p in ("gke", "eks", "aks"))
    assert (gke.max_surge, gke.max_unavailable, gke.drain_timeout_seconds) == (1, 0, 3600.0)
    assert plan_batches(gke, pool=3, zones=3) == Batches(surge=1, unavailable=0, batch=1, surge_first=False)
    # EKS: up to twice the zones added first, then max_unavailable (1) old nodes at a time
    assert plan_batches(eks, pool=10, zones=3) == Batches(surge=6, unavailable=1, batch=1, surge_first=True)
    assert plan_batches(eks, pool=3, zones=3).surge == 3
    assert eks.drain_timeout_seconds == 900.0
    assert plan_batches(upgrade_settings("eks", max_unavailable=2), pool=10, zones=2).batch == 2
    # AKS: 1 node, or a percentage of the pool rounded up; a 30-minute drain timeout
    assert (plan_batches(aks, pool=10, zones=1).batch, aks.drain_timeout_seconds) == (1, 1800.0)
    assert plan_batches(upgrade_settings("aks", max_surge="33%"), pool=10, zones=1).batch == 4
    assert plan_batches(upgrade_settings("aks", max_surge="33%"), pool=3, zones=1).batch == 1
    assert plan_batches(upgrade_settings("gke", max_surge=2, max_unavailable=1), pool=10, zones=3).batch == 3


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"provider": "gke", "max_surge": -1}, r"max_surge: must be >= 0, got -1"),
    ({"provider": "gke", "max_surge": 0, "max_unavailable": 0}, r"max_surge: max_surge and max_unavailable cannot both be 0"),
    ({"provider": "openshift"}, r"provider: unknown provider 'openshift'"),
    ({"provider": "aks", "max_surge": "150%"}, r"max_surge: not a percentage from 0% to 100%: '150%'"),
    ({"provider": "gke", "max_unavailable": "x"}, r"max_unavailable: must be a node count or a percentage: 'x'"),
    ({"provider": "gke", "drain_timeout_seconds": 0}, r"drain_timeout_seconds: must be a number of seconds > 0, got 0"),
    ({"provider": "gke", "node_type": "n9-giant"}, r"node_type: unknown node type 'n9-giant'"),
])
def test_bad_settings_are_one_line_input_errors(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(InputError, match=match) as e:
        upgrade_settings(**kwargs)
    assert "\n" not in str(e.value)


def test_the_rehearsal_refuses_anything_but_the_sim() -> None:
    with pytest.raises(ClusterError, match="sim twin only"):
        rehearse_nodepool_upgrade(object(), namespace=NS, settings=upgrade_settings("gke"),
                                  clock=lambda: None, sleep=lambda s: None)  # type: ignore[arg-type, return-value]


# --- on the twin ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def twin(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The recommended plan's rendering on a frozen sim shaped like its node pool."""
    from eafix_capacity.cluster import notebook as nb03
    from eafix_capacity.cluster.order import phases
    from eafix_capacity.sim.clock import TRADING_DAY_START
    from eafix_capacity.sim.cluster import SimCluster
    from eafix_capacity.usage.notebook import NotebookParams, make_plan

    plan = make_plan(NotebookParams())
    objects = nb03.render_objects(nb03.NotebookParams(profile="recommended", node_type=plan.node_type.name))
    sim = SimCluster(node_type=plan.node_type.name, nodes=plan.nodes, provider=plan.options.provider, speed=0,
                     clock_start=TRADING_DAY_START, kubeconfig=tmp_path_factory.mktemp("twin") / "kubeconfig")
    with sim:
        _, api = load_target(kubeconfig=sim.kubeconfig, context="eafix-sim")
        for phase in phases(objects):
            for o in (so.obj for so in phase.objects):
                version = o["apiVersion"]
                base = f"/apis/{version}" if "/" in version else f"/api/{version}"
                ns = o["metadata"].get("namespace")
                post_json(api, f"{base}/namespaces/{ns}/{PLURAL[o['kind']]}" if ns else f"{base}/{PLURAL[o['kind']]}",
                          o, timeout=10)
        sim.settle()
        assert sim.clock is not None
        sim.clock.advance(120)
        sim.settle()
        yield sim, api, plan
        api.close()


def _nodes(api: Any) -> list[dict[str, Any]]:
    return get_json(api, "/api/v1/nodes", timeout=10)["items"]


def _all_pods(api: Any) -> list[dict[str, Any]]:
    return get_json(api, "/api/v1/pods", timeout=10)["items"]


def test_gke_defaults_replace_every_node_and_keep_every_pdb(twin: Any) -> None:
    sim, api, plan = twin
    hooks = sim_clock_hooks(sim)
    before = {n["metadata"]["name"] for n in _nodes(api)}
    assert len(before) == plan.nodes
    r = rehearse_nodepool_upgrade(api, sim=sim, namespace=NS, settings=upgrade_settings("gke"),
                                  clock=hooks.clock, sleep=hooks.sleep)
    assert r.completed, r.reason
    after = {n["metadata"]["name"] for n in _nodes(api)}
    assert len(after) == len(before) and not after & before
    assert r.details["batches"] == [[n] for n in sorted(before)]
    assert r.pending_at_end == () and all(not o.pending for o in r.observations)
    assert r.required_ready and set(r.required_ready) <= set(r.min_ready)
    for svc, need in r.required_ready.items():
        assert r.min_ready[svc] >= need, (svc, r.min_ready[svc], need)
    assert r.observations[0].action == "start" and r.observations[-1].ready == {s: n for s, n in r.desired.items()}
    # every pod runs on a new node: the old nodes' pods were evicted or, the DaemonSets', removed by
    # the pod GC (kube-controller-manager's podgc: within its 40 s quarantine and 20 s period)
    hooks.sleep(60)
    pods = _all_pods(api)
    assert {p["spec"].get("nodeName") for p in pods} <= after
    # the DaemonSets put their pods on the registered nodes, as on real kubelets
    for node in after:
        assert any(p["spec"].get("nodeName") == node and p["metadata"]["namespace"] == "kube-system" for p in pods)


def test_onto_a_new_node_type_with_a_bigger_surge(twin: Any) -> None:
    sim, api, plan = twin
    hooks = sim_clock_hooks(sim)
    settings = upgrade_settings("gke", max_surge=2, node_type="n2-standard-16")
    r = rehearse_nodepool_upgrade(api, sim=sim, namespace=NS, settings=settings, clock=hooks.clock, sleep=hooks.sleep)
    assert r.completed, r.reason
    assert [len(b) for b in r.details["batches"]] == [2, 1]
    want = allocatable(get_node_type("n2-standard-16", load_node_types()), provider="gke")
    nodes = _nodes(api)
    assert len(nodes) == plan.nodes
    for n in nodes:
        assert n["metadata"]["labels"]["node.kubernetes.io/instance-type"] == "n2-standard-16"
        assert n["status"]["allocatable"]["cpu"] == f"{want.cpu_m}m"
        assert n["status"]["capacity"]["cpu"] == "16"


def test_a_pdb_at_its_replicas_fails_with_pod_drain_failure(twin: Any) -> None:
    sim, api, _ = twin
    hooks = sim_clock_hooks(sim)
    path = f"/apis/policy/v1/namespaces/{NS}/poddisruptionbudgets/risk-manager-pdb"
    patch_json(api, path, {"spec": {"maxUnavailable": None, "minAvailable": 2}}, timeout=10)
    sim.settle()
    settings = upgrade_settings("aks", drain_timeout_seconds=60)
    r = rehearse_nodepool_upgrade(api, sim=sim, namespace=NS, settings=settings, clock=hooks.clock, sleep=hooks.sleep)
    assert not r.completed
    [drained] = [d for d in r.details["drains"] if not d["done"]]
    blocked = [b for o in r.observations for b in o.blocked]
    assert blocked and {b.pdb for b in blocked} == {"risk-manager-pdb"}
    pod = blocked[0].pod
    assert r.reason == (f"PodDrainFailure: drain of {drained['node']} did not finish within 1m0s: "
                        f"PodDisruptionBudget risk-manager-pdb blocked the eviction of {NS}/{pod}")
    assert drained["refusals"] == 12 and r.longest_block_seconds == 60.0
