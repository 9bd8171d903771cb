"""The pure comparison of a live cluster with the plan, on recorded live state.

``tests/data/live/recommended-pass.json`` was recorded from the sim with
``manifests/recommended`` applied through the real kubectl in the seed's order (the
monitoring directory too), then cut down to the fields the records read;
``recommended-drifted.json`` is that recording edited as ``kubectl scale``, ``set
resources``, ``set image``, ``delete pdb`` and ``cordon`` would change it, plus a Pending
replica with the scheduler's message and an OOM-killed container.
"""
from __future__ import annotations

import copy
import json
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from eafix_capacity.cluster.livestate import LiveState, from_objects, read_live_state
from eafix_capacity.cluster.verify import Check, pod_requests, verify, worst
from eafix_capacity.errors import InputError
from eafix_capacity.inputs import PlanParams, plan_from_params
from eafix_capacity.manifests.render import RenderOptions
from eafix_capacity.plan import Plan

LIVE = Path(__file__).resolve().parent.parent / "data" / "live"
NAME = "app.kubernetes.io/name"


@cache
def _plan() -> Plan:
    return plan_from_params(PlanParams())   # what manifests/recommended renders: gke, 3 x n2-standard-8


@cache
def _recorded(name: str) -> str:
    return (LIVE / name).read_text()


def _doc(name: str = "recommended-pass.json") -> dict[str, Any]:
    return copy.deepcopy(json.loads(_recorded(name)))


def _checks(doc: dict[str, Any], **kw: Any) -> list[Check]:
    return verify(from_objects(doc), _plan(), **kw)


def _failing(checks: list[Check]) -> dict[tuple[str, str], Check]:
    return {(c.name, c.subject): c for c in checks if c.status != "PASS"}


def _one(checks: list[Check], name: str, subject: str) -> Check:
    found = [c for c in checks if c.name == name and c.subject == subject]
    assert len(found) == 1, (name, subject, found)
    return found[0]


def _workload(doc: dict[str, Any], name: str, kind: str = "deployments") -> dict[str, Any]:
    return next(w for w in doc[kind] if w["metadata"]["name"] == name)


def _pods(doc: dict[str, Any], service: str) -> list[dict[str, Any]]:
    return [p for p in doc["pods"] if p["metadata"]["labels"].get(NAME) == service]


def _node(doc: dict[str, Any], name: str) -> dict[str, Any]:
    return next(n for n in doc["nodes"] if n["metadata"]["name"] == name)


# -- the recorded states ---------------------------------------------------------------------

def test_recorded_healthy_state_passes_every_check():
    checks = _checks(_doc())
    assert _failing(checks) == {}
    assert worst(checks) == "PASS"
    names = {c.name for c in checks}
    assert names >= {"node-count", "node-instance-type", "node-allocatable", "node-schedulable", "node-ready",
                     "replicas-desired", "rollout-observed", "replicas-ready", "hpa", "resources", "image", "pdb",
                     "pod-pending", "pod-restarts", "node-requests", "node-pods", "spread", "claim", "quota"}
    # every planned service and container is checked, every multi-replica one has its PDB checked
    plan = _plan()
    assert {c.subject for c in checks if c.name == "resources"} == {
        f"{s.kind}/{s.name} container {c.name}" for s in plan.catalog.services for c in s.containers}
    assert len([c for c in checks if c.name == "pdb"]) == 8
    assert {c.subject for c in checks if c.name == "claim"} == {
        "pvc eafix-trading/data-redis-0", "pvc eafix-trading/data-postgres-0",
        "pvc eafix-trading/prometheus-data", "pvc eafix-trading/grafana-data"}
    assert _one(checks, "node-allocatable", "sim-n2-standard-8-0").actual == "cpu=7910m memory=30432359874 pods=110"


def test_recorded_drift_is_found_and_named_with_its_evidence():
    failing = _failing(_checks(_doc("recommended-drifted.json")))
    assert set(failing) == {
        ("replicas-desired", "Deployment/risk-manager"),
        ("resources", "Deployment/indicator-engine container indicator-engine"),
        ("image", "Deployment/gui-gateway container gui-gateway"),
        ("pdb", "service compliance-monitor"),
        ("node-schedulable", "sim-n2-standard-8-2"),
        ("pod-pending", "pod eafix-trading/signal-generator-6664b8c58c-zq7xk"),
        ("replicas-ready", "Deployment/signal-generator"),
        ("pod-oom-killed", "pod eafix-trading/reporter-6459c8cf86-4258p container reporter"),
    }
    assert all(c.status == "FAIL" for c in failing.values())
    scaled = failing[("replicas-desired", "Deployment/risk-manager")]
    assert (scaled.expected, scaled.actual) == ("2", "1")
    res = failing[("resources", "Deployment/indicator-engine container indicator-engine")]
    assert "requests.cpu 400m != planned 300m" in res.evidence
    assert "requests.memory 768Mi != planned 536870912 bytes" in res.evidence
    assert "limits" not in res.evidence     # the limits were left as planned
    img = failing[("image", "Deployment/gui-gateway container gui-gateway")]
    assert (img.expected, img.actual) == ("ghcr.io/dicky1987/eafix-modular/gui-gateway:v0.1.0",
                                          "ghcr.io/dicky1987/eafix-modular/gui-gateway:v0.2.0")
    assert failing[("pdb", "service compliance-monitor")].actual == "missing"
    assert failing[("node-schedulable", "sim-n2-standard-8-2")].actual == "cordoned"
    pending = failing[("pod-pending", "pod eafix-trading/signal-generator-6664b8c58c-zq7xk")]
    assert pending.evidence.startswith("Unschedulable: 0/3 nodes are available: 1 node(s) were unschedulable")
    ready = failing[("replicas-ready", "Deployment/signal-generator")]
    assert "ready 2 of 3" in ready.evidence
    oom = failing[("pod-oom-killed", "pod eafix-trading/reporter-6459c8cf86-4258p container reporter")]
    assert "restarts 2" in oom.evidence


# -- nodes ------------------------------------------------------------------------------------

def test_node_count_fewer_fails_more_warns():
    doc = _doc()
    doc["nodes"] = doc["nodes"][:2]
    c = _one(_checks(doc), "node-count", "cluster")
    assert (c.status, c.expected, c.actual) == ("FAIL", "3", "2")
    doc = _doc()
    extra = copy.deepcopy(doc["nodes"][0])
    extra["metadata"]["name"] = "sim-n2-standard-8-3"
    doc["nodes"].append(extra)
    assert _one(_checks(doc), "node-count", "cluster").status == "WARN"


def test_instance_type_differs_or_label_missing_fails():
    doc = _doc()
    _node(doc, "sim-n2-standard-8-0")["metadata"]["labels"]["node.kubernetes.io/instance-type"] = "e2-standard-8"
    del _node(doc, "sim-n2-standard-8-1")["metadata"]["labels"]["node.kubernetes.io/instance-type"]
    checks = _checks(doc)
    assert _one(checks, "node-instance-type", "sim-n2-standard-8-0").actual == "e2-standard-8"
    missing = _one(checks, "node-instance-type", "sim-n2-standard-8-1")
    assert (missing.status, missing.actual) == ("FAIL", "no label")
    assert _one(checks, "node-instance-type", "sim-n2-standard-8-2").status == "PASS"


@pytest.mark.parametrize(("cpu", "tolerance", "status"), [
    ("7850m", 1.0, "PASS"),    # -0.76%: within 1%
    ("7850m", 0.5, "FAIL"),    # ... but not within 0.5%: less room than planned
    ("7.91", 0.0, "PASS"),     # the same value in another form
    ("8100m", 1.0, "WARN"),    # +2.4%: more room than the model says
])
def test_allocatable_against_the_model_within_the_stated_tolerance(cpu, tolerance, status):
    doc = _doc()
    _node(doc, "sim-n2-standard-8-0")["status"]["allocatable"]["cpu"] = cpu
    c = _one(_checks(doc, allocatable_tolerance_pct=tolerance), "node-allocatable", "sim-n2-standard-8-0")
    assert c.status == status
    assert f"within {tolerance:g}%" in c.expected
    if status != "PASS":
        assert c.evidence.startswith("cpu ") and "against the model's 7910m" in c.evidence


def test_allocatable_memory_expressed_in_binary_units_compares_as_a_value():
    doc = _doc()
    alloc = _node(doc, "sim-n2-standard-8-0")["status"]["allocatable"]
    alloc["memory"] = "29720078Ki"     # 30432359872 bytes: 2 bytes under the model, well within 1%
    alloc["pods"] = "100"              # -9%: FAIL
    c = _one(_checks(doc), "node-allocatable", "sim-n2-standard-8-0")
    assert c.status == "FAIL" and c.evidence.startswith("pods -9.09%") and "memory" not in c.evidence


def test_not_ready_node_fails_with_the_kubelets_message():
    doc = _doc()
    cond = _node(doc, "sim-n2-standard-8-1")["status"]["conditions"][0]
    cond.update(status="Unknown", reason="NodeStatusUnknown", message="Kubelet stopped posting node status.")
    c = _one(_checks(doc), "node-ready", "sim-n2-standard-8-1")
    assert (c.status, c.actual, c.evidence) == ("FAIL", "NotReady", "Kubelet stopped posting node status.")


# -- workloads ------------------------------------------------------------------------------------

def test_requests_and_limits_compare_as_quantities_not_text():
    doc = _doc()
    res = _workload(doc, "reporter")["spec"]["template"]["spec"]["containers"][0]["resources"]
    assert res == {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"cpu": "1", "memory": "1536Mi"}}
    res["requests"] = {"cpu": "0.5", "memory": "1073741824"}
    res["limits"] = {"cpu": "1000m", "memory": "1.5Gi"}
    c = _one(_checks(doc), "resources", "Deployment/reporter container reporter")
    assert c.status == "PASS", c
    res["requests"]["cpu"] = "501m"
    del res["limits"]["memory"]
    c = _one(_checks(doc), "resources", "Deployment/reporter container reporter")
    assert c.status == "FAIL"
    assert c.evidence == ("requests.cpu 501m != planned 500m; "
                          "limits.memory missing != planned 1610612736 bytes (1.5 GiB)")


def test_missing_workload_and_missing_container_fail():
    doc = _doc()
    doc["deployments"] = [w for w in doc["deployments"] if w["metadata"]["name"] != "reporter"]
    _workload(doc, "redis", "statefulsets")["spec"]["template"]["spec"]["containers"][0]["name"] = "cache"
    checks = _checks(doc)
    assert _one(checks, "workload", "Deployment/reporter").status == "FAIL"
    c = _one(checks, "resources", "StatefulSet/redis container redis")
    assert (c.status, c.actual, c.evidence) == ("FAIL", "missing", "containers: cache")


def test_stale_observed_generation_fails():
    doc = _doc()
    _workload(doc, "data-ingestor")["metadata"]["generation"] = 2
    c = _one(_checks(doc), "rollout-observed", "Deployment/data-ingestor")
    assert (c.status, c.expected, c.actual) == ("FAIL", "observedGeneration 2", "1")


def test_statefulset_on_an_old_revision_is_not_ready():
    doc = _doc()
    _workload(doc, "postgres", "statefulsets")["status"]["updateRevision"] = "postgres-77b6c4d9f"
    c = _one(_checks(doc), "replicas-ready", "StatefulSet/postgres")
    assert c.status == "FAIL" and "currentRevision != updateRevision" in c.evidence


def test_hpa_bounds_current_and_presence():
    doc = _doc()
    hpa = doc["horizontalpodautoscalers"][0]
    assert hpa["spec"]["scaleTargetRef"]["name"] == "signal-generator"
    hpa["spec"]["maxReplicas"] = 5
    c = _one(_checks(doc), "hpa", "Deployment/signal-generator")
    assert c.status == "FAIL" and c.evidence == "bounds 2..5, planned 2..10"
    hpa["spec"]["maxReplicas"] = 10
    hpa["status"]["currentReplicas"] = 11
    c = _one(_checks(doc), "hpa", "Deployment/signal-generator")
    assert c.status == "FAIL" and c.evidence == "currentReplicas 11 outside 2..10"
    # just after a rollout the HPA may not have synced: its stale count is a warning while the workload is inside
    hpa["status"]["currentReplicas"] = 1
    c = _one(_checks(doc), "hpa", "Deployment/signal-generator")
    assert c.status == "WARN" and c.evidence == (
        "currentReplicas 1 outside 2..10 while the workload runs 2: the HPA has not synced since the rollout; "
        "verify again after its sync period (15 s)")
    _workload(doc, "signal-generator")["status"]["replicas"] = 1
    _workload(doc, "signal-generator")["status"]["readyReplicas"] = 1
    assert _one(_checks(doc), "hpa", "Deployment/signal-generator").status == "FAIL"
    doc["horizontalpodautoscalers"] = []
    c = _one(_checks(doc), "hpa", "Deployment/signal-generator")
    assert (c.status, c.actual) == ("FAIL", "missing")


def test_hpa_scaled_replicas_within_bounds_pass_the_desired_check():
    doc = _doc()
    _workload(doc, "signal-generator")["spec"]["replicas"] = 10
    assert _one(_checks(doc), "replicas-desired", "Deployment/signal-generator").status == "PASS"
    _workload(doc, "signal-generator")["spec"]["replicas"] = 1
    c = _one(_checks(doc), "replicas-desired", "Deployment/signal-generator")
    assert (c.status, c.expected) == ("FAIL", "2..10 (HPA)")


def test_an_hpa_the_plan_does_not_have_warns():
    doc = _doc()
    hpa = copy.deepcopy(doc["horizontalpodautoscalers"][0])
    hpa["metadata"]["name"] = "reporter-hpa"
    hpa["spec"]["scaleTargetRef"]["name"] = "reporter"
    doc["horizontalpodautoscalers"].append(hpa)
    c = _one(_checks(doc), "hpa", "Deployment/reporter")
    assert (c.status, c.actual) == ("WARN", "reporter-hpa 2..10")


def test_unreadable_live_quantity_fails_the_check_instead_of_raising():
    doc = _doc()
    res = _workload(doc, "grafana")["spec"]["template"]["spec"]["containers"][0]["resources"]
    res["requests"]["cpu"] = "lots"
    c = _one(_checks(doc), "resources", "Deployment/grafana container grafana")
    assert c.status == "FAIL" and c.evidence == "requests.cpu lots != planned 100m"


def test_pdb_allowing_no_disruption_fails():
    doc = _doc()
    pdb = next(p for p in doc["poddisruptionbudgets"] if p["metadata"]["name"] == "gui-gateway-pdb")
    pdb["status"].update(disruptionsAllowed=0, currentHealthy=1)
    c = _one(_checks(doc), "pdb", "service gui-gateway")
    assert c.status == "FAIL" and c.actual == "gui-gateway-pdb disruptionsAllowed=0"
    assert c.evidence.startswith("currentHealthy=1 expectedPods=2")


# -- pods ------------------------------------------------------------------------------------------

def test_crash_loop_fails_and_plain_restarts_warn_with_the_reason():
    doc = _doc()
    looping = _pods(doc, "risk-manager")[0]
    looping["status"]["containerStatuses"][0].update(
        restartCount=5, state={"waiting": {"reason": "CrashLoopBackOff",
                                           "message": "back-off 2m40s restarting failed container"}},
        lastState={"terminated": {"reason": "Error", "exitCode": 1}})
    restarted = _pods(doc, "gui-gateway")[0]
    restarted["status"]["containerStatuses"][0].update(restartCount=1, lastState={"terminated": {"reason": "Error"}})
    failing = _failing(_checks(doc))
    name = looping["metadata"]["name"]
    crash = failing[("pod-waiting", f"pod eafix-trading/{name} container risk-manager")]
    assert crash.status == "FAIL"
    assert crash.evidence == "CrashLoopBackOff: back-off 2m40s restarting failed container (restarts 5)"
    warn = failing[("pod-restarts", f"pod eafix-trading/{restarted['metadata']['name']} container gui-gateway")]
    assert (warn.status, warn.actual, warn.evidence) == ("WARN", "1", "last terminated: Error")


def test_check_records_serialise_and_the_worst_status_wins():
    checks = _checks(_doc("recommended-drifted.json"))
    assert worst(checks) == "FAIL"
    assert worst([c for c in checks if c.status != "FAIL"]) == "PASS"
    assert worst([Check("x", "y", "WARN", "", ""), Check("x", "z", "PASS", "", "")]) == "WARN"
    row = json.loads(json.dumps([c.as_dict() for c in checks]))[0]
    assert set(row) == {"name", "subject", "status", "expected", "actual", "evidence"}


def test_pending_pod_without_a_scheduling_condition_still_fails():
    doc = _doc()
    pod = copy.deepcopy(_pods(doc, "reporter")[0])
    pod["metadata"]["name"] = "reporter-new"
    pod["spec"].pop("nodeName")
    pod["status"] = {"phase": "Pending"}
    doc["pods"].append(pod)
    c = _one(_checks(doc), "pod-pending", "pod eafix-trading/reporter-new")
    assert (c.status, c.evidence) == ("FAIL", "no scheduling decision yet")


def test_requests_over_allocatable_and_too_many_pods_fail_per_node():
    doc = _doc()
    alloc = _node(doc, "sim-n2-standard-8-0")["status"]["allocatable"]
    alloc["cpu"], alloc["pods"] = "2", "5"
    checks = _checks(doc, allocatable_tolerance_pct=100)
    c = _one(checks, "node-requests", "sim-n2-standard-8-0")
    assert c.status == "FAIL" and c.evidence.startswith("cpu requests ") and "exceed allocatable 2000m" in c.evidence
    p = _one(checks, "node-pods", "sim-n2-standard-8-0")
    assert p.status == "FAIL" and p.expected == "at most 5 pods"
    assert _one(checks, "node-requests", "sim-n2-standard-8-1").status == "PASS"


def test_pod_requests_count_the_largest_init_container():
    doc = _doc()
    pod = _pods(doc, "reporter")[0]
    pod["spec"]["initContainers"] = [{"name": "migrate", "image": "x:1",
                                      "resources": {"requests": {"cpu": "2", "memory": "64Mi"}}}]
    (p,) = [x for x in from_objects(doc).pods if x.name == pod["metadata"]["name"]]
    assert {k: str(v) for k, v in pod_requests(p).items()} == {"cpu": "2", "memory": str(2**30)}


def test_two_replicas_on_one_node_break_the_spread_while_nodes_are_free():
    doc = _doc()
    a, b = _pods(doc, "gui-gateway")
    b["spec"]["nodeName"] = a["spec"]["nodeName"]
    c = _one(_checks(doc), "spread", "service gui-gateway")
    assert c.status == "FAIL" and c.evidence.startswith(f"two or more replicas on {a['spec']['nodeName']}")
    # with more replicas than schedulable nodes two on one node is what the spread allows
    for n in doc["nodes"][1:]:
        n["spec"] = {"unschedulable": True}
    assert _one(_checks(doc), "spread", "service gui-gateway").status == "PASS"


# -- storage and quota --------------------------------------------------------------------------

def test_claims_pending_wrong_class_wrong_size_or_missing_fail():
    doc = _doc()
    claims = {c["metadata"]["name"]: c for c in doc["persistentvolumeclaims"]}
    claims["grafana-data"]["status"] = {"phase": "Pending"}
    claims["prometheus-data"]["spec"]["storageClassName"] = "standard"
    claims["data-redis-0"]["spec"]["resources"]["requests"]["storage"] = "10737418240"   # 10Gi as bytes: equal
    claims["data-postgres-0"]["spec"]["resources"]["requests"]["storage"] = "40Gi"
    checks = _checks(doc)
    assert _one(checks, "claim", "pvc eafix-trading/grafana-data").evidence == "phase Pending"
    assert _one(checks, "claim", "pvc eafix-trading/prometheus-data").evidence == \
        "class standard, planned eafix-ssd"
    assert _one(checks, "claim", "pvc eafix-trading/data-redis-0").status == "PASS"
    assert _one(checks, "claim", "pvc eafix-trading/data-postgres-0").evidence.startswith("requests 40Gi, planned")
    doc["persistentvolumeclaims"] = []
    assert _one(_checks(doc), "claim", "pvc eafix-trading/data-redis-0").actual == "missing"


def test_quota_used_over_hard_fails_and_no_quota_warns():
    doc = _doc()
    doc["resourcequotas"][0]["status"]["used"]["requests.cpu"] = "8.4"
    c = _one(_checks(doc), "quota", "resourcequota eafix-trading/eafix-trading-quota")
    assert c.status == "FAIL" and c.evidence == "requests.cpu used 8.4 > hard 8300m"
    doc["resourcequotas"] = []
    assert _one(_checks(doc), "quota", "namespace eafix-trading").status == "WARN"


def test_another_namespace_is_another_deployment():
    checks = _checks(_doc(), options=RenderOptions(namespace="eafix-staging"))
    assert _one(checks, "workload", "Deployment/reporter").evidence == \
        "no Deployment reporter in namespace eafix-staging"


# -- records -------------------------------------------------------------------------------------

def test_from_objects_accepts_kinds_and_refuses_unknown_keys():
    doc = _doc()
    by_kind = from_objects({"Node": doc["nodes"], "Deployment": doc["deployments"]})
    assert len(by_kind.nodes) == 3 and {w.kind for w in by_kind.workloads} == {"Deployment"}
    assert from_objects({}) == LiveState()
    with pytest.raises(InputError, match="unknown kind 'ConfigMap'; one of nodes, pods"):
        from_objects({"ConfigMap": []})
    with pytest.raises(InputError, match="pods: not a list of objects 'dict'"):
        from_objects({"pods": {"items": []}})


def test_records_read_the_fields_verify_needs():
    live = from_objects(_doc("recommended-drifted.json"))
    node = next(n for n in live.nodes if n.name == "sim-n2-standard-8-2")
    assert (node.instance_type, node.unschedulable, node.ready) == ("n2-standard-8", True, True)
    pending = next(p for p in live.pods if p.name.endswith("zq7xk"))
    assert (pending.phase, pending.node, pending.unschedulable_reason) == ("Pending", None, "Unschedulable")
    assert pending.owner is not None and pending.owner.kind == "ReplicaSet"
    hpa = live.hpas[0]
    assert (hpa.min_replicas, hpa.max_replicas, hpa.current_replicas) == (2, 10, 3)
    sts = live.workload("StatefulSet", "eafix-trading", "redis")
    assert sts is not None and sts.current_revision == sts.update_revision


@pytest.mark.sim
def test_read_live_state_makes_one_list_call_per_kind(sim_cluster_module):
    from kubernetes import config

    api = config.new_client_from_config(config_file=str(sim_cluster_module.kubeconfig))
    paths: list[str] = []
    call_api = api.call_api

    def counting(*args: Any, **kwargs: Any) -> Any:
        # the client's generations differ on the order: (path, method) or (method, url)
        method, where = (args[1], args[0]) if args[1] in ("GET", "POST") else (args[0], args[1])
        paths.append(f"{method} {urlsplit(where).path}")
        return call_api(*args, **kwargs)

    api.call_api = counting
    live = read_live_state(api)
    assert sorted(paths) == sorted([
        "GET /api/v1/nodes", "GET /api/v1/pods", "GET /api/v1/persistentvolumeclaims",
        "GET /api/v1/resourcequotas", "GET /apis/apps/v1/deployments", "GET /apis/apps/v1/statefulsets",
        "GET /apis/autoscaling/v2/horizontalpodautoscalers", "GET /apis/policy/v1/poddisruptionbudgets"])
    assert len(live.nodes) == sim_cluster_module.nodes
    assert all(n.instance_type == sim_cluster_module.node_type and n.ready for n in live.nodes)
    assert live.pods and all(p.namespace == "kube-system" for p in live.pods)   # the sim's system pods
