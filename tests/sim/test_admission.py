"""Admission on the sim cluster: the objects a namespace holds change what runs.

ResourceQuota, LimitRanger, ServiceAccount and DefaultTolerationSeconds refuse or change
creates as kube-apiserver's plugins do (403 with the real text), the quota's status is kept,
controller-made pods that admission refuses give their owner ``FailedCreate``, every
namespace gets ``default`` and ``kube-root-ca.crt``, ``kubernetes`` exists in ``default``,
and a pod naming a missing Secret, ConfigMap or claim does not start. The plugin functions
are checked pure; the refusals through the real kubectl and the official client.
"""
from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pytest
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from eafix_capacity.sim import admission, defaults, quota as Q, resources as R
from eafix_capacity.sim.apierror import ApiError
from eafix_capacity.sim.cluster import SimCluster, node_objects
from eafix_capacity.sim.clock import SimClock
from eafix_capacity.sim.controllers import ControllerManager, podrefs
from eafix_capacity.sim.store import Store
from eafix_capacity.sim.testing import run_kubectl

NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)


def container(name: str = "c", *, requests: dict | None = None, limits: dict | None = None, **extra: object) -> dict:
    resources: dict = {}
    if requests:
        resources["requests"] = requests
    if limits:
        resources["limits"] = limits
    return {"name": name, "image": "nginx:1.27", "resources": resources, **extra}


def pod(name: str, *containers: dict, namespace: str = "default", **spec: object) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": namespace},
            "spec": {"containers": list(containers) or [container()], **spec}}


def quota(name: str, hard: dict, used: dict | None = None, namespace: str = "default", *,
          status: bool = True) -> dict:
    """A ResourceQuota; with ``status`` as the controller would have written it (``used`` zero by default)."""
    rq = {"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": name, "namespace": namespace},
          "spec": {"hard": hard}}
    if status:
        rq["status"] = {"hard": hard, "used": used if used is not None else dict.fromkeys(hard, "0")}
    return rq


def limit_range(*items: dict, namespace: str = "default") -> dict:
    return {"apiVersion": "v1", "kind": "LimitRange", "metadata": {"name": "limits", "namespace": namespace},
            "spec": {"limits": list(items)}}


# --- pure: the plugins ------------------------------------------------------------------------

def test_quota_check_refuses_a_pod_over_hard_with_the_real_exceeded_message():
    rq = quota("compute-quota", {"requests.cpu": "4", "pods": "10"}, {"requests.cpu": "3500m", "pods": "3"})
    p = pod("x", container(requests={"cpu": "500m"}))
    assert admission.quota_check(R.POD, p, operation="CREATE", old=None, subresource=None, quotas=[rq],
                                 shown_name="x", now=NOW)  # 4 exactly fits
    over = pod("x", container(requests={"cpu": "600m"}))
    with pytest.raises(ApiError) as e:
        admission.quota_check(R.POD, over, operation="CREATE", old=None, subresource=None, quotas=[rq],
                              shown_name="x", now=NOW)
    assert e.value.code == 403 and e.value.reason == "Forbidden"
    assert e.value.message == ('pods "x" is forbidden: exceeded quota: compute-quota, requested: requests.cpu=600m, '
                               'used: requests.cpu=3500m, limited: requests.cpu=4')
    assert e.value.details == {"name": "x", "kind": "pods"}


def test_quota_check_charges_every_tracked_resource_and_only_those():
    rq = quota("q", {"requests.memory": "1Gi", "limits.cpu": "2", "pods": "5"},
               {"requests.memory": "512Mi", "limits.cpu": "1", "pods": "1"})
    p = pod("x", container(requests={"cpu": "100m", "memory": "256Mi"}, limits={"cpu": "500m", "memory": "256Mi"}))
    [update] = admission.quota_check(R.POD, p, operation="CREATE", old=None, subresource=None, quotas=[rq],
                                     shown_name="x", now=NOW)
    assert update["status"]["used"] == {"requests.memory": "768Mi", "limits.cpu": "1500m", "pods": "2"}


def test_quota_check_refuses_a_pod_without_the_quotad_requests_and_limits():
    rq = quota("compute-quota", {"limits.cpu": "4", "requests.memory": "1Gi"})
    p = pod("x", container("app"), container("side", limits={"cpu": "1"}))
    with pytest.raises(ApiError) as e:
        admission.quota_check(R.POD, p, operation="CREATE", old=None, subresource=None, quotas=[rq],
                              shown_name="x", now=NOW)
    assert e.value.message == ('pods "x" is forbidden: failed quota: compute-quota: must specify limits.cpu for: app; '
                               'requests.memory for: app,side')


def test_quota_without_known_usage_refuses_and_scoped_quotas_select_pods():
    rq = quota("q", {"pods": "5"})
    rq["status"]["used"] = {}
    with pytest.raises(ApiError, match="status unknown for quota: q, resources: pods"):
        admission.quota_check(R.POD, pod("x"), operation="CREATE", old=None, subresource=None, quotas=[rq],
                              shown_name="x", now=NOW)
    best_effort_only = quota("be", {"pods": "0"})
    best_effort_only["spec"]["scopes"] = ["BestEffort"]
    burstable = pod("b", container(requests={"cpu": "1"}, limits={"cpu": "1"}))
    assert admission.quota_check(R.POD, burstable, operation="CREATE", old=None, subresource=None,
                                 quotas=[best_effort_only], shown_name="b", now=NOW) == []
    with pytest.raises(ApiError, match='exceeded quota: be, requested: pods=1, used: pods=0, limited: pods=0'):
        admission.quota_check(R.POD, pod("e"), operation="CREATE", old=None, subresource=None,
                              quotas=[best_effort_only], shown_name="e", now=NOW)


def test_pod_usage_adds_sidecars_takes_the_larger_init_container_and_skips_finished_pods():
    p = pod("x", container(requests={"cpu": "100m", "memory": "64Mi"}),
            initContainers=[container("side", requests={"cpu": "200m"}, restartPolicy="Always"),
                            container("init", requests={"cpu": "1"})])
    used = Q.pod_usage(p, now=NOW)
    assert str(used["requests.cpu"]) == "1200m"  # max(100m + sidecar 200m, init 1 + the sidecar started before it)
    p["spec"]["initContainers"].reverse()
    assert str(Q.pod_usage(p, now=NOW)["requests.cpu"]) == "1"  # the sidecar starts after the init container
    assert str(used["requests.memory"]) == "64Mi" and str(used["pods"]) == "1" and str(used["count/pods"]) == "1"
    p["status"] = {"phase": "Succeeded"}
    assert Q.pod_usage(p, now=NOW) == {"count/pods": Q.ONE}


def test_service_and_claim_usage_count_node_ports_load_balancers_and_storage_by_class():
    svc = {"metadata": {}, "spec": {"type": "LoadBalancer", "ports": [{"port": 80}, {"port": 443}]}}
    used = Q.format_list(Q.usage("", "services", svc, now=NOW))
    assert used["services.loadbalancers"] == "1" and used["services.nodeports"] == "2"
    pvc = {"metadata": {}, "spec": {"storageClassName": "fast", "resources": {"requests": {"storage": "10Gi"}}}}
    used = Q.format_list(Q.usage("", "persistentvolumeclaims", pvc, now=NOW))
    assert used["requests.storage"] == "10Gi"
    assert used["fast.storageclass.storage.k8s.io/requests.storage"] == "10Gi"
    assert used["persistentvolumeclaims"] == "1"


def test_limit_ranger_fills_in_defaults_and_notes_them():
    lr = limit_range({"type": "Container", "default": {"cpu": "250m", "memory": "256Mi"},
                      "defaultRequest": {"cpu": "100m"}})
    p = pod("x", container("app", requests={"memory": "64Mi"}))
    admission.limit_ranger_mutate(p, [lr])
    res = p["spec"]["containers"][0]["resources"]
    assert res == {"limits": {"cpu": "250m", "memory": "256Mi"}, "requests": {"memory": "64Mi", "cpu": "100m"}}
    assert p["metadata"]["annotations"]["kubernetes.io/limit-ranger"] == \
        "LimitRanger plugin set: cpu request for container app; cpu, memory limit for container app"
    only_max = limit_range({"type": "Container", "max": {"cpu": "2"}})
    q = pod("y", container("app"))
    admission.limit_ranger_mutate(q, [only_max])  # default falls back to max, defaultRequest to default
    assert q["spec"]["containers"][0]["resources"] == {"limits": {"cpu": "2"}, "requests": {"cpu": "2"}}


def test_a_limit_range_is_stored_with_the_servers_defaults():
    lr = limit_range({"type": "Container", "max": {"cpu": "2"}, "min": {"memory": "64Mi"}},
                     {"type": "PersistentVolumeClaim", "max": {"storage": "80Gi"}})
    defaults.apply_defaults(lr, "", "LimitRange")
    assert lr["spec"]["limits"] == [
        {"type": "Container", "max": {"cpu": "2"}, "min": {"memory": "64Mi"}, "default": {"cpu": "2"},
         "defaultRequest": {"cpu": "2", "memory": "64Mi"}},
        {"type": "PersistentVolumeClaim", "max": {"storage": "80Gi"}}]
    # no spec at all is Go's zero value: nothing to default (it was a KeyError, answered as a 500)
    bare = {"apiVersion": "v1", "kind": "LimitRange", "metadata": {"name": "bare", "namespace": "default"}}
    defaults.apply_defaults(bare, "", "LimitRange")
    assert "spec" not in bare


def test_limit_ranger_refuses_above_max_and_below_min_with_the_real_messages():
    lr = limit_range({"type": "Container", "max": {"cpu": "2"}, "min": {"memory": "64Mi"}})
    over = pod("x", container(requests={"cpu": "1", "memory": "128Mi"}, limits={"cpu": "4", "memory": "128Mi"}))
    assert admission.limit_ranger_validate("pods", over, [lr]) == "maximum cpu usage per Container is 2, but limit is 4"
    both = pod("x", container(requests={"cpu": "1", "memory": "32Mi"}, limits={"cpu": "4", "memory": "32Mi"}))
    assert admission.limit_ranger_validate("pods", both, [lr]) == (  # min is checked before max, as upstream
        "[minimum memory usage per Container is 64Mi, but request is 32Mi, "
        "maximum cpu usage per Container is 2, but limit is 4]")
    fine = pod("x", container(requests={"cpu": "1", "memory": "64Mi"}, limits={"cpu": "2", "memory": "64Mi"}))
    assert admission.limit_ranger_validate("pods", fine, [lr]) is None
    claims = limit_range({"type": "PersistentVolumeClaim", "max": {"storage": "80Gi"}})
    pvc = {"spec": {"resources": {"requests": {"storage": "100Gi"}}}}
    assert admission.limit_ranger_validate("persistentvolumeclaims", pvc, [claims]) == \
        "maximum storage usage per PersistentVolumeClaim is 80Gi, but request is 100Gi"


def test_default_toleration_seconds_adds_both_unless_a_toleration_covers_them():
    p = pod("x", tolerations=[{"key": "node.kubernetes.io/unreachable", "operator": "Exists",
                               "effect": "NoExecute", "tolerationSeconds": 5}])
    admission.default_toleration_seconds(p)
    assert p["spec"]["tolerations"] == [
        {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 5},
        {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}]
    everything = pod("y", tolerations=[{"operator": "Exists"}])
    admission.default_toleration_seconds(everything)
    assert everything["spec"]["tolerations"] == [{"operator": "Exists"}]


def test_service_account_admission_defaults_refuses_missing_and_mounts_the_token():
    p = pod("x", container("app"), namespace="ns")
    with pytest.raises(ApiError) as e:
        admission.service_account_mutate(p, None, namespace="ns", shown_name="x")
    assert e.value.code == 403
    assert e.value.message == ('pods "x" is forbidden: error looking up service account ns/default: '
                               'serviceaccount "default" not found')
    admission.service_account_mutate(p, {"metadata": {"name": "default"}}, namespace="ns", shown_name="x")
    [vol] = p["spec"]["volumes"]
    assert vol["name"].startswith("kube-api-access-") and len(vol["name"]) == len("kube-api-access-") + 5
    assert vol["projected"]["sources"][1]["configMap"]["name"] == "kube-root-ca.crt"
    assert p["spec"]["containers"][0]["volumeMounts"] == [
        {"name": vol["name"], "readOnly": True, "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}]
    off = pod("y", namespace="ns")
    admission.service_account_mutate(off, {"automountServiceAccountToken": False}, namespace="ns", shown_name="y")
    assert "volumes" not in off["spec"] and off["spec"]["serviceAccountName"] == "default"


def test_podrefs_find_missing_claims_volumes_and_env_references():
    p = pod("x", container("app", env=[{"name": "A", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}],
                           envFrom=[{"configMapRef": {"name": "opt", "optional": True}}]),
            namespace="ns", volumes=[{"name": "data", "persistentVolumeClaim": {"claimName": "data-0"}},
                                     {"name": "cfg", "configMap": {"name": "app-config"}}])
    assert podrefs.missing_claim(p, frozenset()) == 'persistentvolumeclaim "data-0" not found'
    assert podrefs.missing_claim(p, frozenset({("ns", "data-0")})) is None
    assert podrefs.claim_fit_message('persistentvolumeclaim "data-0" not found', 3) == (
        '0/3 nodes are available: persistentvolumeclaim "data-0" not found. preemption: 0/3 nodes are available: '
        '3 Preemption is not helpful for scheduling.')
    assert podrefs.mount_problem(p, {}, {}) == \
        'MountVolume.SetUp failed for volume "cfg" : configmap "app-config" not found'
    assert podrefs.mount_problem(p, {}, {("ns", "app-config"): frozenset()}) is None
    [problem] = podrefs.container_config_problems(p, {}, {})
    assert (problem.container, problem.message) == ("app", 'secret "s" not found')
    [problem] = podrefs.container_config_problems(p, {("ns", "s"): frozenset({"other"})}, {})
    assert problem.message == "couldn't find key k in Secret ns/s"
    assert podrefs.container_config_problems(p, {("ns", "s"): frozenset({"k"})}, {}) == []


# --- in-process: the store and the controllers --------------------------------------------------

@pytest.fixture
def env():
    clock = SimClock(speed=0)
    store = Store(seed=1, clock=clock)
    for n in node_objects("n2-standard-8", nodes=2, zones=("a", "b")):
        store.create(R.NODE, n)
    cm = ControllerManager(store, store.registry, clock=clock, seed=1)
    cm.run_once()  # the serviceaccount and root CA controllers fill the initial namespaces
    return store, cm, clock


def deployment(name: str, replicas: int, cpu: str) -> dict:
    labels = {"app": name}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": "default"},
            "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels}, "spec": {"containers": [
                         container(requests={"cpu": cpu}, limits={"cpu": cpu})]}}}}


def test_replicaset_beyond_quota_gets_failed_create_and_replica_failure_then_recovers(env):
    store, cm, _ = env
    store.create(R.RESOURCEQUOTA, quota("compute-quota", {"requests.cpu": "1"}, status=False))
    admission.refresh_quota(store, "default", "compute-quota")
    store.create(R.DEPLOYMENT, deployment("web", 3, "400m"))
    cm.run_once()
    pods = store.list(R.POD, "default")[0]
    assert len(pods) == 2
    [rs] = store.list(R.REPLICASET, "default")[0]
    [cond] = rs["status"]["conditions"]
    assert (cond["type"], cond["status"], cond["reason"]) == ("ReplicaFailure", "True", "FailedCreate")
    assert "is forbidden: exceeded quota: compute-quota, requested: requests.cpu=400m, used: requests.cpu=800m, " \
           "limited: requests.cpu=1" in cond["message"]
    events = [e for e in store.list(R.EVENT, "default")[0] if e["reason"] == "FailedCreate"]
    assert events and events[0]["type"] == "Warning" and events[0]["message"].startswith('Error creating: pods "web-')
    assert store.get(R.RESOURCEQUOTA, "default", "compute-quota")["status"]["used"] == {"requests.cpu": "800m"}
    rq = store.get(R.RESOURCEQUOTA, "default", "compute-quota")
    rq["spec"]["hard"]["requests.cpu"] = "2"
    store.update(R.RESOURCEQUOTA, rq)
    cm.run_once()  # the controller copies the new hard, the ReplicaSet retries
    assert len(store.list(R.POD, "default")[0]) == 3
    [rs] = store.list(R.REPLICASET, "default")[0]
    assert "conditions" not in rs["status"]
    assert store.get(R.RESOURCEQUOTA, "default", "compute-quota")["status"] == {
        "hard": {"requests.cpu": "2"}, "used": {"requests.cpu": "1200m"}}


def test_quota_controller_credits_deleted_pods_and_finished_pods(env):
    store, cm, _ = env
    store.create(R.RESOURCEQUOTA, quota("q", {"pods": "3", "count/pods": "10"}, status=False))
    cm.run_once()
    for i in range(2):
        admission.create(store, R.POD, pod(f"p{i}", container(requests={"cpu": "1m"})))
    assert store.get(R.RESOURCEQUOTA, "default", "q")["status"]["used"] == {"count/pods": "2", "pods": "2"}
    store.delete(R.POD, "default", "p0")  # never bound: deleted at once
    p1 = store.get(R.POD, "default", "p1")
    store.update(R.POD, {**p1, "status": {"phase": "Succeeded"}}, subresource="status")
    cm.run_once()
    assert store.get(R.RESOURCEQUOTA, "default", "q")["status"]["used"] == {"count/pods": "1", "pods": "0"}


def test_statefulset_claim_over_the_limit_range_gets_failed_create_and_no_pod(env):
    store, cm, _ = env
    store.create(R.LIMITRANGE, limit_range({"type": "PersistentVolumeClaim", "max": {"storage": "80Gi"}}))
    labels = {"app": "db"}
    store.create(R.STATEFULSET, {"apiVersion": "apps/v1", "kind": "StatefulSet",
                                 "metadata": {"name": "db", "namespace": "default"},
                                 "spec": {"replicas": 1, "serviceName": "db", "selector": {"matchLabels": labels},
                                          "template": {"metadata": {"labels": labels},
                                                       "spec": {"containers": [container()]}},
                                          "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {
                                              "accessModes": ["ReadWriteOnce"],
                                              "resources": {"requests": {"storage": "100Gi"}}}}]}})
    cm.run_once()
    assert store.list(R.POD, "default")[0] == []
    [event] = [e for e in store.list(R.EVENT, "default")[0] if e["reason"] == "FailedCreate"]
    assert event["message"] == (
        'create Claim data-db-0 for Pod db-0 in StatefulSet db failed error: persistentvolumeclaims "data-db-0" is '
        "forbidden: maximum storage usage per PersistentVolumeClaim is 80Gi, but request is 100Gi")


def test_new_namespaces_get_default_and_the_root_ca_and_a_deleted_default_comes_back(env):
    store, cm, _ = env
    store.create(R.NAMESPACE, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team"}})
    cm.run_once()
    assert store.exists(R.SERVICEACCOUNT, "team", "default")
    ca = store.get(R.CONFIGMAP, "team", "kube-root-ca.crt")
    assert set(ca["data"]) == {"ca.crt"} and ca["data"]["ca.crt"].startswith("-----BEGIN CERTIFICATE-----")
    store.delete(R.SERVICEACCOUNT, "team", "default")
    cm.run_once()
    assert store.exists(R.SERVICEACCOUNT, "team", "default")


def test_a_pod_missing_a_secret_or_claim_does_not_start_until_it_exists(env):
    store, cm, _ = env
    env_ref = [{"name": "PW", "valueFrom": {"secretKeyRef": {"name": "db-creds", "key": "password"}}}]
    admission.create(store, R.POD, pod("needs-secret", container("app", env=env_ref)))
    admission.create(store, R.POD, pod("needs-claim", volumes=[{"name": "d", "persistentVolumeClaim":
                                                                 {"claimName": "missing"}}]))
    cm.run_once()
    waiting = store.get(R.POD, "default", "needs-secret")
    assert waiting["status"]["phase"] == "Pending"
    assert waiting["status"]["containerStatuses"][0]["state"] == {
        "waiting": {"reason": "CreateContainerConfigError", "message": 'secret "db-creds" not found'}}
    pending = store.get(R.POD, "default", "needs-claim")
    assert not pending["spec"].get("nodeName")
    [scheduled] = [c for c in pending["status"]["conditions"] if c["type"] == "PodScheduled"]
    assert scheduled["message"].startswith('0/2 nodes are available: persistentvolumeclaim "missing" not found.')
    store.create(R.SECRET, {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db-creds", "namespace":
                                                                                  "default"},
                            "data": {"password": "cGFzcw=="}})
    cm.run_once()
    assert store.get(R.POD, "default", "needs-secret")["status"]["phase"] == "Running"


# --- through the real kubectl and the official client -----------------------------------------

@pytest.fixture(scope="module")
def sim(sim_cluster_module: SimCluster) -> SimCluster:
    return sim_cluster_module


def kubectl(sim: SimCluster, *args: str, stdin: str | None = None, ok: bool = True):
    return run_kubectl(sim, *args, cache_dir=Path(str(sim.kubeconfig)).parent / "kube-cache", stdin=stdin, check=ok)


def core(sim: SimCluster) -> client.CoreV1Api:
    return client.CoreV1Api(config.new_client_from_config(str(sim.kubeconfig)))


def _namespace(sim: SimCluster, name: str) -> None:
    kubectl(sim, "create", "namespace", name)


@pytest.mark.sim
@pytest.mark.kubectl
def test_quota_refusals_through_kubectl_and_the_client(sim):
    _namespace(sim, "quota-t")
    kubectl(sim, "apply", "-f", "-", stdin=json.dumps(quota("compute-quota", {"requests.cpu": "1", "limits.cpu": "2"},
                                                            namespace="quota-t", status=False)))
    kubectl(sim, "apply", "-f", "-", stdin=json.dumps(pod("a", container(requests={"cpu": "600m"},
                                                                         limits={"cpu": "600m"}), namespace="quota-t")))
    over = kubectl(sim, "create", "-f", "-", stdin=json.dumps(pod("b", container(
        requests={"cpu": "500m"}, limits={"cpu": "500m"}), namespace="quota-t")), ok=False)
    assert over.returncode == 1
    assert over.stderr.strip() == (
        'Error from server (Forbidden): error when creating "STDIN": pods "b" is forbidden: exceeded quota: '
        "compute-quota, requested: requests.cpu=500m, used: requests.cpu=600m, limited: requests.cpu=1")
    with pytest.raises(ApiException) as e:
        core(sim).create_namespaced_pod("quota-t", pod("c", container("app"), namespace="quota-t"))
    body = json.loads(e.value.body)
    assert e.value.status == 403 and body["reason"] == "Forbidden"
    assert body["message"] == ('pods "c" is forbidden: failed quota: compute-quota: must specify limits.cpu for: app; '
                               'requests.cpu for: app')
    described = kubectl(sim, "get", "quota", "compute-quota", "-n", "quota-t", "-o", "json").stdout
    assert json.loads(described)["status"] == {"hard": {"requests.cpu": "1", "limits.cpu": "2"},
                                               "used": {"limits.cpu": "600m", "requests.cpu": "600m"}}


@pytest.mark.sim
@pytest.mark.kubectl
def test_a_deployment_over_quota_shows_failed_create_in_describe(sim):
    _namespace(sim, "quota-d")
    kubectl(sim, "apply", "-f", "-", stdin=json.dumps(quota("pods-quota", {"pods": "2"}, namespace="quota-d",
                                                            status=False)))
    d = deployment("web", 3, "100m")
    d["metadata"]["namespace"] = "quota-d"
    kubectl(sim, "apply", "-f", "-", stdin=json.dumps(d))
    sim.settle()
    rs = json.loads(kubectl(sim, "get", "rs", "-n", "quota-d", "-o", "json").stdout)["items"][0]
    assert rs["status"]["replicas"] == 2
    assert rs["status"]["conditions"][0]["reason"] == "FailedCreate"
    described = kubectl(sim, "describe", "rs", "-n", "quota-d").stdout
    assert "ReplicaFailure   True    FailedCreate" in described
    assert "exceeded quota: pods-quota, requested: pods=1, used: pods=2, limited: pods=2" in described
    dep = json.loads(kubectl(sim, "get", "deploy", "web", "-n", "quota-d", "-o", "json").stdout)
    assert [c["reason"] for c in dep["status"]["conditions"] if c["type"] == "ReplicaFailure"] == ["FailedCreate"]
    kubectl(sim, "scale", "deploy/web", "--replicas=2", "-n", "quota-d")  # within the quota: the failure clears
    sim.settle()
    dep = json.loads(kubectl(sim, "get", "deploy", "web", "-n", "quota-d", "-o", "json").stdout)
    assert [c["type"] for c in dep["status"]["conditions"]] == ["Available", "Progressing"]


@pytest.mark.sim
@pytest.mark.kubectl
def test_limit_range_defaults_and_refusal_through_kubectl(sim):
    _namespace(sim, "limits-t")
    kubectl(sim, "apply", "-f", "-", stdin=json.dumps(limit_range(
        {"type": "Container", "default": {"cpu": "250m"}, "defaultRequest": {"cpu": "100m"}, "max": {"cpu": "2"}},
        namespace="limits-t")))
    kubectl(sim, "create", "-f", "-", stdin=json.dumps(pod("bare", container("app"), namespace="limits-t")))
    made = json.loads(kubectl(sim, "get", "pod", "bare", "-n", "limits-t", "-o", "json").stdout)
    assert made["spec"]["containers"][0]["resources"] == {"limits": {"cpu": "250m"}, "requests": {"cpu": "100m"}}
    assert made["status"]["qosClass"] == "Burstable"
    tolerations = {(t["key"], t["effect"], t.get("tolerationSeconds")) for t in made["spec"]["tolerations"]}
    assert tolerations == {("node.kubernetes.io/not-ready", "NoExecute", 300),
                           ("node.kubernetes.io/unreachable", "NoExecute", 300)}
    big = kubectl(sim, "create", "-f", "-", stdin=json.dumps(pod("big", container(
        "app", requests={"cpu": "1"}, limits={"cpu": "4"}), namespace="limits-t")), ok=False)
    assert big.returncode == 1
    assert big.stderr.strip() == ('Error from server (Forbidden): error when creating "STDIN": pods "big" is '
                                  "forbidden: maximum cpu usage per Container is 2, but limit is 4")


@pytest.mark.sim
@pytest.mark.kubectl
def test_missing_service_account_is_refused_and_namespaces_have_their_defaults(sim):
    _namespace(sim, "sa-t")
    with pytest.raises(ApiException) as e:
        core(sim).create_namespaced_pod("sa-t", pod("p", namespace="sa-t", serviceAccountName="robot"))
    assert e.value.status == 403
    assert json.loads(e.value.body)["message"] == (
        'pods "p" is forbidden: error looking up service account sa-t/robot: serviceaccount "robot" not found')
    names = kubectl(sim, "get", "serviceaccounts,configmaps", "-n", "sa-t", "-o", "name").stdout.split()
    assert names == ["serviceaccount/default", "configmap/kube-root-ca.crt"]
    svc = json.loads(kubectl(sim, "get", "service", "kubernetes", "-n", "default", "-o", "json").stdout)
    assert svc["spec"]["clusterIP"] == "10.96.0.1"
    assert svc["spec"]["ports"] == [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}]
    port = int(sim.url.rsplit(":", 1)[1])
    ep = json.loads(kubectl(sim, "get", "endpoints", "kubernetes", "-n", "default", "-o", "json").stdout)
    assert ep["subsets"] == [{"addresses": [{"ip": "127.0.0.1"}], "ports": [{"name": "https", "port": port,
                                                                            "protocol": "TCP"}]}]
    eps = json.loads(kubectl(sim, "get", "endpointslice", "kubernetes", "-n", "default", "-o", "json").stdout)
    assert eps["endpoints"][0]["addresses"] == ["127.0.0.1"] and eps["ports"][0]["port"] == port


@pytest.mark.sim
@pytest.mark.kubectl
def test_pods_missing_a_configmap_or_claim_show_the_kubelets_and_schedulers_statuses(sim):
    _namespace(sim, "refs-t")
    env_pod = pod("env", container("app", envFrom=[{"configMapRef": {"name": "app-env"}}]), namespace="refs-t")
    vol_pod = pod("vol", container("app"), namespace="refs-t", volumes=[{"name": "cfg",
                                                                        "configMap": {"name": "app-files"}}])
    claim_pod = pod("claim", container("app"), namespace="refs-t", volumes=[{"name": "data", "persistentVolumeClaim":
                                                                            {"claimName": "data-0"}}])
    kubectl(sim, "apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List",
                                                       "items": [env_pod, vol_pod, claim_pod]}))
    sim.settle()
    table = kubectl(sim, "get", "pods", "-n", "refs-t").stdout.splitlines()[1:]
    rows = {line.split()[0]: line.split()[2] for line in table}
    assert rows == {"claim": "Pending", "env": "CreateContainerConfigError", "vol": "ContainerCreating"}
    pending = kubectl(sim, "describe", "pod", "claim", "-n", "refs-t").stdout
    assert 'FailedScheduling  ' in pending and 'persistentvolumeclaim "data-0" not found' in pending
    described = kubectl(sim, "describe", "pod", "vol", "-n", "refs-t").stdout
    assert 'MountVolume.SetUp failed for volume "cfg" : configmap "app-files" not found' in described
    env_status = json.loads(kubectl(sim, "get", "pod", "env", "-n", "refs-t", "-o", "json").stdout)["status"]
    assert env_status["containerStatuses"][0]["state"]["waiting"]["message"] == 'configmap "app-env" not found'
