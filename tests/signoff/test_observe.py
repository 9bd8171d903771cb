"""observe(): nodes, Pending pods and ready replicas from two LIST calls; min_ready, required_ready."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from eafix_capacity.cluster.context import load_target
from eafix_capacity.cluster.rest import get_json, patch_json, post_json
from eafix_capacity.errors import InputError
from eafix_capacity.signoff.observe import (desired_replicas, min_ready, node_takes_pods, observe, pending_pods,
                                            read_pdbs, read_workloads, ready_replicas, required_ready)
from eafix_capacity.signoff.records import Observation

NS = "obs"
T0 = datetime(2026, 1, 14, 6, 0, tzinfo=timezone.utc)
LABEL = "app.kubernetes.io/name"


def _pod(name: str, svc: str, *, ready: bool = True, phase: str = "Running", deleting: bool = False,
         scheduled: str | None = None) -> dict[str, Any]:
    conditions = [{"type": "Ready", "status": "True" if ready else "False"}]
    if scheduled is not None:
        conditions.append({"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": scheduled})
    meta: dict[str, Any] = {"name": name, "namespace": NS, "labels": {LABEL: svc}}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-14T06:00:30Z"
    return {"metadata": meta, "spec": {}, "status": {"phase": phase, "conditions": conditions}}


# --- pure ----------------------------------------------------------------------------------------

def test_a_node_takes_pods_when_ready_and_not_cordoned() -> None:
    ready = {"status": {"conditions": [{"type": "Ready", "status": "True"}]}}
    assert node_takes_pods(ready)
    assert not node_takes_pods({**ready, "spec": {"unschedulable": True}})
    assert not node_takes_pods({"status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}})
    assert not node_takes_pods({"status": {}})


def test_a_terminating_pod_is_not_a_ready_replica_and_a_service_with_none_left_counts_0() -> None:
    pods = [_pod("a-1", "a"), _pod("a-2", "a", deleting=True), _pod("b-1", "b", ready=False)]
    assert ready_replicas(pods, services=("a", "b", "gone")) == {"a": 1, "b": 0, "gone": 0}


def test_pending_pods_carry_the_schedulers_message() -> None:
    msg = "0/3 nodes are available: 3 Insufficient cpu. preemption: 0/3 nodes are available: 3 No preemption victims found for incoming pod."
    pods = [_pod("a-1", "a", ready=False, phase="Pending", scheduled=msg),
            _pod("a-2", "a", ready=False, phase="Pending", scheduled=msg, deleting=True), _pod("b-1", "b")]
    [pending] = pending_pods(pods)
    assert (pending.name, pending.service, pending.reason) == ("a-1", "a", msg)


def test_min_ready_takes_the_lowest_and_a_missing_service_as_0() -> None:
    obs = [Observation(at=T0 + timedelta(seconds=i), step=i, action="x", nodes=3, ready=r)
           for i, r in enumerate([{"a": 2, "b": 1}, {"a": 1}, {"a": 2, "b": 1}])]
    assert min_ready(obs) == {"a": 1, "b": 0}


def _pdb(svc: str, **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": f"{svc}-pdb"}, "spec": {"selector": {"matchLabels": {LABEL: svc}}, **spec}}


@pytest.mark.parametrize(("spec", "desired", "want"), [
    # pkg/controller/disruption getExpectedPodCount: percentages round up against the controllers' scale
    ({"maxUnavailable": 1}, 2, 1),
    ({"maxUnavailable": "25%"}, 3, 2),        # 3 - ceil(0.75)
    ({"maxUnavailable": 5}, 3, 0),            # never below 0
    ({"maxUnavailable": 0}, 3, 3),
    ({"minAvailable": "50%"}, 3, 2),          # ceil(1.5)
    ({"minAvailable": "34%"}, 3, 2),          # ceil(1.02)
    ({"minAvailable": 5}, 3, 5),              # a number is taken as it is
    ({}, 3, 0),
])
def test_required_ready_resolves_a_pdb_as_the_disruption_controller(spec: dict, desired: int, want: int) -> None:
    assert required_ready([_pdb("svc", **spec)], {"svc": desired}) == {"svc": want}


def test_required_ready_takes_the_larger_of_two_pdbs_and_skips_other_selectors() -> None:
    other = {"metadata": {"name": "x"}, "spec": {"minAvailable": 9, "selector": {"matchLabels": {"tier": "web"}}}}
    assert required_ready([_pdb("a", maxUnavailable=1), _pdb("a", minAvailable=2), other], {"a": 4}) == {"a": 3}


def test_a_bad_pdb_value_is_an_input_error_naming_the_field() -> None:
    with pytest.raises(InputError, match=r"minAvailable.*'half'"):
        required_ready([_pdb("a", minAvailable="half")], {"a": 2})


def test_desired_replicas_per_service_defaults_to_1() -> None:
    workloads = [{"kind": "Deployment", "spec": {"replicas": 3, "template": {"metadata": {"labels": {LABEL: "a"}}}}},
                 {"kind": "StatefulSet", "spec": {"template": {"metadata": {"labels": {LABEL: "db"}}}}}]
    assert desired_replicas(workloads) == {"a": 3, "db": 1}


# --- against the sim -----------------------------------------------------------------------------

class _Counting:
    """The ApiClient, counting the requests sent through it."""

    def __init__(self, api: Any) -> None:
        self.api, self.calls = api, 0

    def param_serialize(self, *a: Any, **kw: Any) -> Any:
        self.calls += 1
        return self.api.param_serialize(*a, **kw)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.api, name)


def _deployment(name: str, replicas: int, cpu: str) -> dict[str, Any]:
    labels = {LABEL: name}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": NS},
            "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels}, "spec": {"containers": [
                         {"name": "c", "image": "nginx:1.27", "resources": {"requests": {"cpu": cpu, "memory": "64Mi"}}}]}}}}


@pytest.fixture(scope="module")
def cluster(frozen_sim_module: Any) -> Any:
    sim = frozen_sim_module
    _, api = load_target(kubeconfig=sim.kubeconfig, context="eafix-sim")
    post_json(api, "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}},
              timeout=10)
    post_json(api, f"/apis/apps/v1/namespaces/{NS}/deployments", _deployment("web", 2, "100m"), timeout=10)
    post_json(api, f"/apis/apps/v1/namespaces/{NS}/deployments", _deployment("huge", 1, "500"), timeout=10)
    sim.clock.advance(30)
    sim.settle()
    yield sim, api
    api.close()


def test_observe_reads_nodes_pending_pods_and_ready_replicas_in_two_lists(cluster: Any) -> None:
    sim, api = cluster
    counting = _Counting(api)
    obs = observe(counting, namespace=NS, at=sim.clock.now(), step=1, action="look", services=("gone",))
    assert counting.calls == 2
    assert (obs.step, obs.action, obs.nodes) == (1, "look", 3)
    assert obs.ready == {"gone": 0, "huge": 0, "web": 2}
    [pending] = obs.pending
    assert pending.service == "huge" and pending.reason.startswith("0/3 nodes are available: 3 Insufficient cpu.")
    # the message is the scheduler's own, as the pod carries it
    pod = get_json(api, f"/api/v1/namespaces/{NS}/pods/{pending.name}", timeout=10)
    [cond] = [c for c in pod["status"]["conditions"] if c["type"] == "PodScheduled"]
    assert pending.reason == cond["message"]


def test_a_cordoned_node_does_not_count(cluster: Any) -> None:
    sim, api = cluster
    node = get_json(api, "/api/v1/nodes", timeout=10)["items"][0]["metadata"]["name"]
    patch_json(api, f"/api/v1/nodes/{node}", {"spec": {"unschedulable": True}}, timeout=10)
    try:
        assert observe(api, namespace=NS, at=sim.clock.now(), step=2, action="cordon").nodes == 2
    finally:
        patch_json(api, f"/api/v1/nodes/{node}", {"spec": {"unschedulable": None}}, timeout=10)


def test_required_ready_agrees_with_the_sims_pdb_status(cluster: Any) -> None:
    """The same PDB arithmetic as the sim's disruption controller (desiredHealthy in status)."""
    sim, api = cluster
    post_json(api, f"/apis/policy/v1/namespaces/{NS}/poddisruptionbudgets",
              {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "web-pdb", "namespace": NS},
               "spec": {"minAvailable": "60%", "selector": {"matchLabels": {LABEL: "web"}}}}, timeout=10)
    sim.settle()
    pdbs = read_pdbs(api, namespace=NS, timeout=10)
    desired = desired_replicas(read_workloads(api, namespace=NS, timeout=10))
    assert desired == {"huge": 1, "web": 2}
    [status] = [p["status"] for p in pdbs if p["metadata"]["name"] == "web-pdb"]
    assert required_ready(pdbs, desired) == {"web": status["desiredHealthy"]} == {"web": 2}
