"""ControllerManager against a Store in the test's own thread (no HTTP): the behaviours the
kubectl tests do not reach, and the bad inputs."""
from __future__ import annotations

import copy
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eafix_capacity.errors import ClusterError
from eafix_capacity.sim import resources as R
from eafix_capacity.sim import scheduler as SCH
from eafix_capacity.sim.apierror import ApiError
from eafix_capacity.sim.clock import SimClock
from eafix_capacity.sim.cluster import node_objects
from eafix_capacity.sim.controllers import EVICTION_REFUSED, ControllerManager
from eafix_capacity.sim.store import Store
from eafix_capacity.sim.usage_model import constant_model


def deployment(name: str = "web", replicas: int = 3, *, image: str = "nginx:1.25", cpu: str = "200m",
               strategy: dict | None = None, **spec) -> dict:
    labels = {"app.kubernetes.io/name": name}
    body = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": "default"},
            "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels}, "spec": {"containers": [
                         {"name": "app", "image": image,
                          "resources": {"requests": {"cpu": cpu, "memory": "128Mi"},
                                        "limits": {"cpu": "1", "memory": "256Mi"}}}]}}, **spec}}
    if strategy:
        body["spec"]["strategy"] = strategy
    return body


@pytest.fixture
def env():
    store = Store(seed=1)
    for n in node_objects("n2-standard-8", nodes=3, zones=("a", "b", "c")):
        store.create(R.NODE, n)
    clock = SimClock(speed=0)
    cm = ControllerManager(store, store.registry, clock=clock, seed=1)
    return store, cm, clock


def pods(store: Store, **kw) -> list[dict]:
    return store.list(R.POD, "default", **kw)[0]


def update(store: Store, rt, ns, name, fn) -> None:
    obj = store.get(rt, ns, name)
    fn(obj)
    store.update(rt, obj)


def test_pod_names_are_deterministic_for_a_seed():
    def names() -> list[str]:
        store = Store(seed=1)
        for n in node_objects("n2-standard-8", nodes=2, zones=("a",)):
            store.create(R.NODE, n)
        cm = ControllerManager(store, store.registry, clock=SimClock(speed=0), seed=42)
        store.create(R.DEPLOYMENT, deployment())
        cm.run_once()
        return sorted(p["metadata"]["name"] for p in pods(store))
    assert names() == names()


def test_recreate_strategy_replaces_all_pods_at_once(env):
    store, cm, clock = env
    store.create(R.DEPLOYMENT, deployment(strategy={"type": "Recreate"}))
    cm.run_once()
    old = {p["metadata"]["name"] for p in pods(store)}
    seen_mixed = []
    store.subscribe(lambda e, rt, o: seen_mixed.append(
        {p["spec"]["containers"][0]["image"] for p in pods(store)}) if rt.key == R.POD.key and e == "ADDED" else None)
    update(store, R.DEPLOYMENT, "default", "web",
           lambda d: d["spec"]["template"]["spec"]["containers"][0].__setitem__("image", "nginx:1.26"))
    cm.run_once()
    # The old pods terminate for their 30 s grace period; Recreate waits until they are gone.
    assert {p["metadata"]["name"] for p in pods(store)} == old
    assert all(p["metadata"].get("deletionTimestamp") for p in pods(store))
    clock.advance(30)
    cm.run_once()
    now = pods(store)
    assert len(now) == 3 and not old & {p["metadata"]["name"] for p in now}
    assert all(images == {"nginx:1.26"} for images in seen_mixed)   # never old and new together


def test_paused_deployment_does_not_roll(env):
    store, cm, _ = env
    store.create(R.DEPLOYMENT, deployment())
    cm.run_once()
    update(store, R.DEPLOYMENT, "default", "web", lambda d: d["spec"].__setitem__("paused", True))
    update(store, R.DEPLOYMENT, "default", "web",
           lambda d: d["spec"]["template"]["spec"]["containers"][0].__setitem__("image", "nginx:1.26"))
    cm.run_once()
    assert {p["spec"]["containers"][0]["image"] for p in pods(store)} == {"nginx:1.25"}
    d = store.get(R.DEPLOYMENT, "default", "web")
    assert {c["type"]: c["reason"] for c in d["status"]["conditions"]}["Progressing"] == "DeploymentPaused"


def test_revision_history_limit_prunes_old_replicasets(env):
    store, cm, _ = env
    store.create(R.DEPLOYMENT, deployment(revisionHistoryLimit=1))
    cm.run_once()
    for tag in ("1.26", "1.27", "1.28"):
        update(store, R.DEPLOYMENT, "default", "web",
               lambda d: d["spec"]["template"]["spec"]["containers"][0].__setitem__("image", f"nginx:{tag}"))
        cm.run_once()
    rss = store.list(R.REPLICASET, "default")[0]
    revisions = sorted(int(r["metadata"]["annotations"]["deployment.kubernetes.io/revision"]) for r in rss)
    assert revisions == [3, 4]


def test_deleting_a_deployment_removes_its_replicasets_and_pods(env):
    store, cm, _ = env
    store.create(R.DEPLOYMENT, deployment())
    cm.run_once()
    store.delete(R.DEPLOYMENT, "default", "web")
    cm.run_once()
    assert pods(store) == [] and store.list(R.REPLICASET, "default")[0] == []


def test_daemonset_one_pod_per_eligible_node(env):
    store, cm, _ = env
    update(store, R.NODE, None, "sim-n2-standard-8-0", lambda n: n["spec"].__setitem__("unschedulable", True))
    update(store, R.NODE, None, "sim-n2-standard-8-2", lambda n: n["spec"].__setitem__(
        "taints", [{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]))
    labels = {"app.kubernetes.io/name": "agent"}
    store.create(R.DAEMONSET, {"apiVersion": "apps/v1", "kind": "DaemonSet",
                               "metadata": {"name": "agent", "namespace": "default"},
                               "spec": {"selector": {"matchLabels": labels}, "template": {
                                   "metadata": {"labels": labels},
                                   "spec": {"containers": [{"name": "a", "image": "agent:1"}]}}}})
    cm.run_once()
    placed = sorted(p["spec"]["nodeName"] for p in pods(store))
    assert placed == ["sim-n2-standard-8-0", "sim-n2-standard-8-1"]   # cordoned yes, tainted no
    ds = store.get(R.DAEMONSET, "default", "agent")
    assert ds["status"]["desiredNumberScheduled"] == 2 and ds["status"]["numberReady"] == 2


def test_cordon_adds_and_uncordon_removes_the_taint(env):
    store, cm, _ = env
    update(store, R.NODE, None, "sim-n2-standard-8-1", lambda n: n["spec"].__setitem__("unschedulable", True))
    cm.run_once()
    node = store.get(R.NODE, None, "sim-n2-standard-8-1")
    assert [t["key"] for t in node["spec"]["taints"]] == ["node.kubernetes.io/unschedulable"]
    events = [e["reason"] for e in store.list(R.EVENT, "default")[0]]
    assert "NodeNotSchedulable" in events
    update(store, R.NODE, None, "sim-n2-standard-8-1", lambda n: n["spec"].pop("unschedulable"))
    cm.run_once()
    assert "taints" not in store.get(R.NODE, None, "sim-n2-standard-8-1")["spec"]


def test_eviction_honours_max_unavailable_percent(env):
    store, cm, _ = env
    store.create(R.DEPLOYMENT, deployment(replicas=4))
    store.create(R.PDB, {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
                         "metadata": {"name": "web", "namespace": "default"},
                         "spec": {"maxUnavailable": "25%",
                                  "selector": {"matchLabels": {"app.kubernetes.io/name": "web"}}}})
    cm.run_once()
    pdb = store.get(R.PDB, "default", "web")
    assert (pdb["status"]["expectedPods"], pdb["status"]["desiredHealthy"], pdb["status"]["disruptionsAllowed"]) \
        == (4, 3, 1)
    first, second = [p["metadata"]["name"] for p in pods(store)][:2]
    assert cm.evict("default", first, {"metadata": {"name": first}})["status"] == "Success"
    with pytest.raises(ApiError) as e:
        cm.evict("default", second, {})
    assert e.value.code == 429 and e.value.message == EVICTION_REFUSED
    cm.run_once()                        # the replacement becomes ready: one disruption allowed again
    assert cm.evict("default", second, {})["status"] == "Success"


def test_eviction_of_pending_pod_ignores_budget_and_unknown_pod_is_404(env):
    store, cm, _ = env
    store.create(R.DEPLOYMENT, deployment(replicas=1, cpu="64"))
    store.create(R.PDB, {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
                         "metadata": {"name": "web", "namespace": "default"},
                         "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app.kubernetes.io/name": "web"}}}})
    cm.run_once()
    pending = pods(store)[0]
    assert pending["status"]["phase"] == "Pending"
    assert cm.evict("default", pending["metadata"]["name"], {})["status"] == "Success"
    with pytest.raises(ApiError) as e:
        cm.evict("default", "nope", {})
    assert e.value.code == 404
    with pytest.raises(ApiError) as e:
        cm.evict("default", "x", {"metadata": {"name": "y"}})
    assert e.value.code == 400


def test_two_budgets_for_one_pod_are_refused(env):
    store, cm, _ = env
    store.create(R.DEPLOYMENT, deployment(replicas=2))
    for name in ("a", "b"):
        store.create(R.PDB, {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
                             "metadata": {"name": name, "namespace": "default"},
                             "spec": {"minAvailable": 0,
                                      "selector": {"matchLabels": {"app.kubernetes.io/name": "web"}}}})
    cm.run_once()
    with pytest.raises(ApiError) as e:
        cm.evict("default", pods(store)[0]["metadata"]["name"], {})
    assert e.value.code == 500 and "more than one PodDisruptionBudget" in e.value.message


def test_hpa_with_missing_target_reports_failed_get_scale(env):
    store, cm, clock = env
    store.create(R.HPA, {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
                         "metadata": {"name": "ghost", "namespace": "default"},
                         "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "ghost"},
                                  "minReplicas": 1, "maxReplicas": 3}})
    cm.run_once()
    hpa = store.get(R.HPA, "default", "ghost")
    cond = {c["type"]: c for c in hpa["status"]["conditions"]}["AbleToScale"]
    assert cond["status"] == "False" and cond["reason"] == "FailedGetScale"
    assert 'deployments.apps "ghost" not found' in cond["message"]


def test_hpa_without_requests_cannot_compute_utilisation(env):
    store, cm, clock = env
    body = deployment(replicas=2)
    del body["spec"]["template"]["spec"]["containers"][0]["resources"]
    store.create(R.DEPLOYMENT, body)
    store.create(R.HPA, {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
                         "metadata": {"name": "web", "namespace": "default"},
                         "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                                  "minReplicas": 1, "maxReplicas": 5}})
    cm.run_once()
    clock.advance(15)
    cm.run_once()
    cond = {c["type"]: c for c in store.get(R.HPA, "default", "web")["status"]["conditions"]}["ScalingActive"]
    assert cond["status"] == "False" and "missing request for cpu" in cond["message"]
    assert store.get(R.DEPLOYMENT, "default", "web")["spec"]["replicas"] == 2


def test_hpa_scales_a_statefulset_with_average_value_target(env):
    store, cm, clock = env
    labels = {"app.kubernetes.io/name": "redis"}
    store.create(R.STATEFULSET, {"apiVersion": "apps/v1", "kind": "StatefulSet",
                                 "metadata": {"name": "redis", "namespace": "default"},
                                 "spec": {"replicas": 1, "serviceName": "redis", "selector": {"matchLabels": labels},
                                          "template": {"metadata": {"labels": labels}, "spec": {"containers": [
                                              {"name": "redis", "image": "redis:7",
                                               "resources": {"requests": {"cpu": "500m"}, "limits": {"cpu": "1"}}}]}}}})
    store.create(R.HPA, {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
                         "metadata": {"name": "redis", "namespace": "default"},
                         "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "redis"},
                                  "minReplicas": 1, "maxReplicas": 3,
                                  "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {
                                      "type": "AverageValue", "averageValue": "200m"}}}]}})
    cm.set_usage_model(constant_model(1.0))           # 500m per pod against 200m
    cm.run_once()
    clock.advance(15)
    cm.run_once()
    assert store.get(R.STATEFULSET, "default", "redis")["spec"]["replicas"] == 3
    cm.run_once()
    assert sorted(p["metadata"]["name"] for p in pods(store)) == ["redis-0", "redis-1", "redis-2"]


def test_metrics_api_errors_and_single_objects(env):
    store, cm, clock = env
    store.create(R.DEPLOYMENT, deployment(replicas=1))
    cm.run_once()
    name = pods(store)[0]["metadata"]["name"]
    clock.advance(15)          # metrics-server has scraped the new pod twice
    one = cm.metrics_list("PodMetrics", "default", name, None)
    assert one["kind"] == "PodMetrics" and one["metadata"]["name"] == name
    with pytest.raises(ApiError) as e:
        cm.metrics_list("PodMetrics", "default", "nope", None)
    assert e.value.code == 404 and e.value.message == 'podmetrics.metrics.k8s.io "default/nope" not found'
    node = cm.metrics_list("NodeMetrics", None, "sim-n2-standard-8-0", None)
    assert node["kind"] == "NodeMetrics" and node["usage"]["cpu"].endswith("n")
    with pytest.raises(ApiError) as e:
        cm.metrics_list("NodeMetrics", None, "nope", None)
    assert e.value.code == 404
    labelled = cm.metrics_list("PodMetrics", None, None, "app.kubernetes.io/name=other")
    assert labelled["items"] == []


def test_settle_reports_a_failed_pass(env, monkeypatch):
    store, cm, _ = env
    cm.start()
    try:
        def boom(*a, **kw):
            raise RuntimeError("boom")
        monkeypatch.setattr(cm.deployments, "sync", boom)
        store.create(R.DEPLOYMENT, deployment())
        with pytest.raises(ClusterError, match="boom"):
            cm.settle(timeout=5)
    finally:
        cm.stop()


def test_background_thread_brings_pods_up(env):
    store, cm, _ = env
    cm.start()
    try:
        store.create(R.DEPLOYMENT, deployment())
        cm.settle(timeout=10)
        assert [p["status"]["phase"] for p in pods(store)] == ["Running"] * 3
    finally:
        cm.stop()


# --- the vectorised scheduling path agrees with the node-by-node one ------------------------------


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 40), st.integers(1, 40), st.integers(0, 3)), min_size=1, max_size=25),
       st.lists(st.booleans(), min_size=4, max_size=4))
def test_fast_and_slow_scheduling_paths_agree(specs, cordoned):
    nodes = node_objects("n2-standard-8", nodes=4, zones=("a", "b"))
    for n, c in zip(nodes, cordoned):
        if c:
            n["spec"]["unschedulable"] = True
    pod_list = []
    for i, (cpu, mem, owner) in enumerate(specs):
        pod_list.append({"metadata": {"name": f"p{i:03d}", "namespace": "d", "creationTimestamp": f"{i:05d}",
                                      "ownerReferences": [{"uid": f"o{owner}", "controller": True}]},
                         "spec": {"containers": [{"name": "c", "resources": {"requests": {
                             "cpu": f"{cpu * 100}m", "memory": f"{mem * 512}Mi"}}}]},
                         "status": {"phase": "Pending"}})
    fast = SCH.schedule_pending(nodes, copy.deepcopy(pod_list))
    original = SCH.PodScheduler.__dict__["_plain"]
    try:
        SCH.PodScheduler._plain = staticmethod(lambda pod: False)   # type: ignore[assignment]
        slow = SCH.schedule_pending(nodes, copy.deepcopy(pod_list))
    finally:
        SCH.PodScheduler._plain = original  # type: ignore[assignment]
    assert fast == slow


def test_stalled_rollout_times_out_without_any_other_change():
    store = Store(seed=1)
    for n in node_objects("n2-standard-8", nodes=1, zones=("a",)):
        store.create(R.NODE, n)
    clock = SimClock(speed=100)            # 10 s of sim time pass in 0.1 s
    cm = ControllerManager(store, store.registry, clock=clock)
    cm.start()
    try:
        store.create(R.DEPLOYMENT, deployment(cpu="64", progressDeadlineSeconds=10))
        deadline = time.monotonic() + 10
        reason = None
        while time.monotonic() < deadline:
            conditions = (store.get(R.DEPLOYMENT, "default", "web").get("status") or {}).get("conditions") or []
            reason = {c["type"]: c["reason"] for c in conditions}.get("Progressing")
            if reason == "ProgressDeadlineExceeded":
                break
            time.sleep(0.05)
        assert reason == "ProgressDeadlineExceeded"
    finally:
        cm.stop()


def test_standalone_claims_are_provisioned_and_bound(env):
    store, cm, _ = env
    # an Immediate class of the nodes' cloud's CSI driver: the claim binds without a consumer
    store.create(R.STORAGECLASS, {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
                                  "metadata": {"name": "fast-ssd"}, "provisioner": "pd.csi.storage.gke.io",
                                  "reclaimPolicy": "Delete", "volumeBindingMode": "Immediate"})
    store.create(R.PVC, {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                         "metadata": {"name": "postgres-data", "namespace": "default"},
                         "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "fast-ssd",
                                  "resources": {"requests": {"storage": "100Gi"}}}})
    cm.run_once()
    pvc = store.get(R.PVC, "default", "postgres-data")
    assert pvc["status"] == {"phase": "Bound", "accessModes": ["ReadWriteOnce"], "capacity": {"storage": "100Gi"}}
    pv = store.get(R.PV, None, pvc["spec"]["volumeName"])
    assert pv["spec"]["claimRef"]["name"] == "postgres-data" and pv["spec"]["storageClassName"] == "fast-ssd"
    assert pv["spec"]["capacity"] == {"storage": "100Gi"}


def test_new_hpa_waits_a_stabilisation_window_before_scaling_down(env):
    store, cm, clock = env
    store.create(R.DEPLOYMENT, deployment(replicas=4))
    store.create(R.HPA, {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
                         "metadata": {"name": "web", "namespace": "default"},
                         "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                                  "minReplicas": 1, "maxReplicas": 5, "targetCPUUtilizationPercentage": 50}})
    cm.set_usage_model(constant_model(0.05))
    cm.run_once()
    replicas = []
    for _ in range(21):
        clock.advance(15)
        cm.run_once()
        replicas.append(store.get(R.DEPLOYMENT, "default", "web")["spec"]["replicas"])
    assert replicas[:19] == [4] * 19          # 300 s window from the first sight
    assert replicas[-1] == 1
    hpa = store.get(R.HPA, "default", "web")
    assert hpa["status"]["currentMetrics"][0]["resource"]["current"]["averageUtilization"] == 5


def test_replicaset_creates_at_most_a_burst_of_pods_per_pass(env, monkeypatch):
    from eafix_capacity.sim.controllers import replicaset

    store, cm, _ = env
    monkeypatch.setattr(replicaset, "BURST_REPLICAS", 2)
    store.create(R.DEPLOYMENT, deployment(replicas=5, cpu="10m"))
    cm._pass()  # creates the ReplicaSet
    assert pods(store) == []
    cm._pass()  # the ReplicaSet's first burst
    assert len(pods(store)) == 2
    cm.run_once()
    assert [p["status"]["phase"] for p in pods(store)] == ["Running"] * 5


def test_a_deleted_hpa_or_cronjob_leaves_no_state_behind(env):
    store, cm, _ = env
    store.create(R.DEPLOYMENT, deployment())
    store.create(R.HPA, {"metadata": {"name": "web", "namespace": "default"},
                         "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                                  "minReplicas": 1, "maxReplicas": 5}})
    store.create(R.CRONJOB, {"metadata": {"name": "tick", "namespace": "default"},
                             "spec": {"schedule": "*/5 * * * *", "jobTemplate": {"spec": {"template": {"spec": {
                                 "restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox:1"}]}}}}}})
    cm.run_once()
    assert cm.autoscaler._last and cm.cronjobs._created
    store.delete(R.HPA, "default", "web")
    store.delete(R.CRONJOB, "default", "tick")
    cm.run_once()
    assert not cm.autoscaler._last and not cm.autoscaler._history and not cm.cronjobs._created
