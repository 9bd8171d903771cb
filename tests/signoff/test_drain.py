"""drain(): kubectl drain --ignore-daemonsets --delete-emptydir-data on the frozen sim, in sim time."""
from __future__ import annotations

import json
from typing import Any

import pytest

from eafix_capacity.cluster.context import load_target
from eafix_capacity.cluster.rest import delete_json, get_json, patch_json, post_json
from eafix_capacity.signoff.drain import (DAEMONSET_FATAL, UNMANAGED_FATAL, drain, filter_pods, go_duration,
                                          pods_on_node)
from eafix_capacity.sim.hooks import sim_clock_hooks
from eafix_capacity.sim.testing import kubectl_on

NS = "dr"
LABEL = "app.kubernetes.io/name"
PDB_PATH = f"/apis/policy/v1/namespaces/{NS}/poddisruptionbudgets"


def _pdb(name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": name, "namespace": NS},
            "spec": {**spec, "selector": {"matchLabels": {LABEL: "web"}}}}


@pytest.fixture(scope="module")
def cluster(frozen_sim_module: Any) -> Any:
    sim = frozen_sim_module
    _, api = load_target(kubeconfig=sim.kubeconfig, context="eafix-sim")
    post_json(api, "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}},
              timeout=10)
    labels = {LABEL: "web"}
    post_json(api, f"/apis/apps/v1/namespaces/{NS}/deployments", {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": NS},
        "spec": {"replicas": 3, "selector": {"matchLabels": labels}, "template": {"metadata": {"labels": labels}, "spec": {
            "topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "kubernetes.io/hostname",
                                           "whenUnsatisfiable": "DoNotSchedule", "labelSelector": {"matchLabels": labels}}],
            "volumes": [{"name": "scratch", "emptyDir": {}}],
            "containers": [{"name": "c", "image": "nginx:1.27", "volumeMounts": [{"name": "scratch", "mountPath": "/tmp"}],
                            "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}}]}}}}, timeout=10)
    post_json(api, PDB_PATH, _pdb("web-pdb", minAvailable=3), timeout=10)
    sim.clock.advance(30)
    sim.settle()
    yield sim, api, sim_clock_hooks(sim)
    api.close()


def _web_pods(api: Any) -> list[dict[str, Any]]:
    pods = get_json(api, f"/api/v1/namespaces/{NS}/pods", timeout=10)["items"]
    return sorted((p for p in pods if not p["metadata"].get("deletionTimestamp") and p["spec"].get("nodeName")),
                  key=lambda p: p["metadata"]["name"])


def _uncordon(api: Any, node: str) -> None:
    patch_json(api, f"/api/v1/nodes/{node}", {"spec": {"unschedulable": None}}, timeout=10)


def _unschedulable(api: Any, node: str) -> bool:
    return bool(get_json(api, f"/api/v1/nodes/{node}", timeout=10).get("spec", {}).get("unschedulable"))


def test_go_durations_print_as_kubectl_prints_its_timeout() -> None:
    assert [go_duration(s) for s in (30, 60, 1800, 3600, 3725)] == ["30s", "1m0s", "30m0s", "1h0m0s", "1h2m5s"]


def test_a_pdb_refusal_is_retried_every_5_s_until_the_timeout(cluster: Any) -> None:
    sim, api, hooks = cluster
    pod = _web_pods(api)[0]
    node, name, uid = pod["spec"]["nodeName"], pod["metadata"]["name"], pod["metadata"]["uid"]
    try:
        result = drain(api, node, clock=hooks.clock, sleep=hooks.sleep, timeout=30)
        assert not result.done and result.timed_out
        assert result.refusals == 6  # at 0, 5, ... 25 s; at 30 s the global timeout
        [blocked] = result.blocked
        assert (blocked.pod, blocked.pdb, blocked.seconds) == (name, "web-pdb", 30.0)
        assert blocked.message == "Cannot evict pod as it would violate the pod's disruption budget."
        assert result.errors == (f'error when evicting pods/"{name}" -n "{NS}": global timeout reached: 30s',)
        assert [str(p) for p in result.not_evicted] == [f"{NS}/{name}"]
        assert _unschedulable(api, node)
        assert get_json(api, f"/api/v1/namespaces/{NS}/pods/{name}", timeout=10)["metadata"]["uid"] == uid
    finally:
        _uncordon(api, node)


def test_steady_refusals_are_retried_in_fewer_steps_and_counted_as_kubectls(cluster: Any) -> None:
    sim, api, hooks = cluster
    pod = _web_pods(api)[0]
    node, name = pod["spec"]["nodeName"], pod["metadata"]["name"]
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        hooks.sleep(seconds)

    try:
        result = drain(api, node, clock=hooks.clock, sleep=sleep, timeout=60, steady_retry=30)
        assert result.timed_out and result.refusals == 12  # as kubectl: at 0, 5, ... 55 s
        assert sleeps == [30.0, 30.0]
        [blocked] = result.blocked
        assert (blocked.pod, blocked.pdb, blocked.seconds) == (name, "web-pdb", 60.0)
    finally:
        _uncordon(api, node)


def test_a_bare_pod_is_refused_as_kubectl_refuses_it(cluster: Any) -> None:
    sim, api, hooks = cluster
    pod = _web_pods(api)[0]
    node = pod["spec"]["nodeName"]
    post_json(api, f"/api/v1/namespaces/{NS}/pods", {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "bare", "namespace": NS},
        "spec": {"nodeName": node, "containers": [{"name": "c", "image": "busybox:1.36"}]}}, timeout=10)
    try:
        result = drain(api, node, clock=hooks.clock, sleep=hooks.sleep, timeout=30)
        line = f"cannot delete {UNMANAGED_FATAL}: {NS}/bare"
        assert not result.done and result.errors == (line,) and result.evicted == () and result.refusals == 0
        assert _unschedulable(api, node)  # cordoned first, as kubectl drain
        assert get_json(api, f"/api/v1/namespaces/{NS}/pods/{pod['metadata']['name']}", timeout=10)
        # the real kubectl refuses the same node with the same line
        _uncordon(api, node)
        run = kubectl_on(sim, "drain", node, "--ignore-daemonsets", "--delete-emptydir-data", "--timeout=20s", ok=False)
        assert run.returncode == 1 and line in run.stderr, run.stderr
    finally:
        delete_json(api, f"/api/v1/namespaces/{NS}/pods/bare", timeout=10, body={"gracePeriodSeconds": 0})
        _uncordon(api, node)
        sim.settle()


def test_daemonset_pods_are_left_and_the_drain_waits_until_evicted_pods_are_gone(cluster: Any) -> None:
    sim, api, hooks = cluster
    patch_json(api, f"{PDB_PATH}/web-pdb", {"spec": {"minAvailable": 2}}, timeout=10)
    sim.settle()
    node = _web_pods(api)[0]["spec"]["nodeName"]
    before = pods_on_node(api, node)
    daemons = {p["metadata"]["uid"]: p["metadata"]["name"] for p in before
               if any(r.get("kind") == "DaemonSet" for r in p["metadata"].get("ownerReferences") or [])}
    assert daemons
    # without --ignore-daemonsets kubectl refuses the node, and evicts nothing
    refused = drain(api, node, clock=hooks.clock, sleep=hooks.sleep, timeout=30, ignore_daemonsets=False)
    assert not refused.done and refused.evicted == ()
    assert refused.errors[0].startswith(f"cannot delete {DAEMONSET_FATAL}: kube-system/")
    result = drain(api, node, clock=hooks.clock, sleep=hooks.sleep, timeout=120)
    try:
        assert result.done and not result.errors, result.summary()
        left = pods_on_node(api, node)
        assert {p["metadata"]["uid"]: p["metadata"]["name"] for p in left} == daemons
        assert sorted(p.name for p in result.skipped) == sorted(daemons.values())
        evicted = {p.name for p in result.evicted if p.namespace == NS}
        assert len(evicted) == 1 and not evicted & {p["metadata"]["name"] for p in _web_pods(api)}
    finally:
        _uncordon(api, node)
        hooks.sleep(30)
    assert len(_web_pods(api)) == 3


def test_a_refusal_other_than_429_fails_the_pod_at_once(cluster: Any) -> None:
    sim, api, hooks = cluster
    post_json(api, PDB_PATH, _pdb("web-pdb-2", maxUnavailable=1), timeout=10)
    sim.settle()
    pod = _web_pods(api)[0]
    node, name = pod["spec"]["nodeName"], pod["metadata"]["name"]
    try:
        result = drain(api, node, clock=hooks.clock, sleep=hooks.sleep, timeout=30)
        assert not result.done and not result.timed_out and result.refusals == 0
        assert result.errors == (f'error when evicting pods/"{name}" -n "{NS}": Internal error occurred: This pod has '
                                 "more than one PodDisruptionBudget, which the eviction subresource does not support.",)
    finally:
        delete_json(api, f"{PDB_PATH}/web-pdb-2", timeout=10)
        _uncordon(api, node)


class _Answer:
    def __init__(self, status: int, body: dict[str, Any]) -> None:
        self.status, self.data, self.reason = status, json.dumps(body).encode(), "x"
        self.headers: dict[str, str] = {}

    def read(self) -> bytes:
        return self.data


class _Gone:
    """An ApiClient whose node holds one pod that is deleted before its eviction arrives (404)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    def param_serialize(self, method: str, path: str, **kw: Any) -> tuple[str, str]:
        return method, path

    def call_api(self, method: str, path: str, **kw: Any) -> _Answer:
        self.sent.append((method, path))
        if path.startswith("/api/v1/nodes/"):
            return _Answer(200, {"metadata": {"name": "n1"}, "spec": {}})
        if path.startswith("/api/v1/pods"):
            return _Answer(200, {"items": [{"metadata": {"name": "p", "namespace": "ns", "uid": "u1",
                                                         "ownerReferences": [{"kind": "ReplicaSet", "controller": True}]},
                                            "spec": {"nodeName": "n1"}, "status": {"phase": "Running"}}]})
        return _Answer(404, {"kind": "Status", "code": 404, "reason": "NotFound", "message": 'pods "p" not found'})

    def response_deserialize(self, response: _Answer, types: Any) -> None:
        from kubernetes.client.exceptions import ApiException

        raise ApiException(status=response.status, reason=response.reason, http_resp=response)


def test_a_pod_already_gone_404_counts_as_evicted() -> None:
    from datetime import datetime, timezone

    api = _Gone()
    now = datetime(2026, 1, 14, 6, tzinfo=timezone.utc)
    result = drain(api, "n1", clock=lambda: now, sleep=lambda s: None, timeout=30)
    assert result.done and [str(p) for p in result.evicted] == ["ns/p"] and result.errors == ()
    assert ("POST", "/api/v1/namespaces/ns/pods/p/eviction") in api.sent
    assert ("PATCH", "/api/v1/nodes/n1") in api.sent


def test_filters_run_in_kubectls_order_and_group_their_errors() -> None:
    def pod(name: str, **meta: Any) -> dict[str, Any]:
        return {"metadata": {"name": name, "namespace": "ns", **meta}, "spec": {}, "status": {"phase": "Running"}}

    rs = [{"kind": "ReplicaSet", "controller": True}]
    pods = [pod("a"), pod("b"), pod("m", annotations={"kubernetes.io/config.mirror": "x"}), pod("r", ownerReferences=rs),
            {**pod("done"), "status": {"phase": "Succeeded"}}]
    evict, skipped, errors = filter_pods(pods)
    assert [p["metadata"]["name"] for p in evict] == ["r", "done"]
    assert [p["metadata"]["name"] for p in skipped] == ["m"]
    assert errors == [f"cannot delete {UNMANAGED_FATAL}: ns/a, ns/b"]
    assert [p["metadata"]["name"] for p in filter_pods(pods, force=True)[0]] == ["a", "b", "r", "done"]

