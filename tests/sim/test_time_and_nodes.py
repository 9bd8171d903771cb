"""Time and node failure on the sim as on a real cluster, through the real kubectl and the official client.

A deleted pod passes through Terminating for its grace period; a new pod (and a node that
stopped reporting) has no metrics until metrics-server could have scraped it twice; every
timestamp comes from the one sim clock; a node made NotReady is tainted and its pods are
evicted on the taint eviction controller's schedule. One sim per module, its clock frozen:
only ``clock.advance`` moves time.
"""
from __future__ import annotations

import json
import subprocess
import urllib.error
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Iterator

import pytest
from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

from eafix_capacity.sim import resources as R
from eafix_capacity.sim.cluster import DUMMY_TOKEN, SimCluster
from eafix_capacity.sim.controllers.nodelifecycle import eviction_delay, node_conditions, wanted_taints
from eafix_capacity.sim.controllers.podautoscaler import missing_pods_proposal
from eafix_capacity.sim.testing import run_kubectl

pytestmark = [pytest.mark.sim, pytest.mark.kubectl]

NODE = "sim-n2-standard-8-0"


@pytest.fixture(scope="module")
def sim(sim_cluster_module: SimCluster) -> Iterator[SimCluster]:
    assert sim_cluster_module.clock is not None
    sim_cluster_module.clock.set_speed(0)
    yield sim_cluster_module


def kubectl(sim: SimCluster, *args: str, ok: bool = True, stdin: str | None = None) -> subprocess.CompletedProcess:
    return run_kubectl(sim, *args, cache_dir=Path(str(sim.kubeconfig)).parent / "kube-cache", check=ok, stdin=stdin)


def kubectl_watching(sim: SimCluster, *args: str) -> subprocess.Popen:
    """Start ``kubectl wait ...`` and return once its watch is open (its ``-v=6`` request log
    says so), so a change made next is one it sees happen."""
    proc = subprocess.Popen(["kubectl", f"--kubeconfig={sim.kubeconfig}", "-v=6",
                             f"--cache-dir={Path(str(sim.kubeconfig)).parent / 'kube-cache'}", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    for line in proc.stderr:
        if "watch=true" in line:
            return proc
    raise AssertionError(f"kubectl {' '.join(args)} ended without watching: {proc.stdout.read() if proc.stdout else ''}")


_CLIENTS: dict[str, client.CoreV1Api] = {}


def core(sim: SimCluster) -> client.CoreV1Api:
    key = str(sim.kubeconfig)
    if key not in _CLIENTS:
        _CLIENTS[key] = client.CoreV1Api(config.new_client_from_config(config_file=key))
    return _CLIENTS[key]


def pod_doc(name: str, *, grace: int | None = None, node: str | None = None, tolerations: list | None = None,
            labels: dict | None = None) -> dict:
    spec: dict = {"containers": [{"name": "c", "image": "nginx:1.25",
                                  "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}}]}
    if grace is not None:
        spec["terminationGracePeriodSeconds"] = grace
    if node is not None:
        spec["nodeSelector"] = {"kubernetes.io/hostname": node}
    if tolerations is not None:
        spec["tolerations"] = tolerations
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels or {"app": name}},
            "spec": spec}


def create(sim: SimCluster, *docs: dict) -> None:
    kubectl(sim, "apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": list(docs)}))
    sim.settle()


def get_pod(sim: SimCluster, name: str, namespace: str = "default") -> dict | None:
    """The pod as JSON, read through the official client; None when it is gone."""
    try:
        return json.loads(core(sim).read_namespaced_pod(name, namespace, _preload_content=False).data)
    except ApiException as e:
        if e.status == 404:
            return None
        raise


def get_node(sim: SimCluster, name: str) -> dict:
    return json.loads(core(sim).read_node(name, _preload_content=False).data)


def ts(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)


# --- graceful deletion ------------------------------------------------------------------------------------


def test_deleted_pod_is_terminating_for_its_grace_period_and_waits_see_it(sim):
    create(sim, pod_doc("grace", grace=20))
    r = kubectl(sim, "delete", "pod", "grace", "--wait=false")
    assert r.stdout.strip() == 'pod "grace" deleted'
    pod = get_pod(sim, "grace")
    assert pod is not None
    meta = pod["metadata"]
    assert meta["deletionGracePeriodSeconds"] == 20
    # rest.BeforeDelete: deletionTimestamp is when the pod is due to be gone
    assert ts(meta["deletionTimestamp"]) == sim.clock.now().replace(microsecond=0) + timedelta(seconds=20)
    row = kubectl(sim, "get", "pod", "grace", "--no-headers").stdout.split()
    assert row[2] == "Terminating"
    r = kubectl(sim, "wait", "--for=delete", "pod/grace", "--timeout=0s", ok=False)
    assert r.returncode == 1
    assert r.stderr.strip().splitlines()[-1] == "error: condition not met for pods/grace"   # --timeout=0: checked once
    gone = kubectl_watching(sim, "wait", "--for=delete", "pod/grace", "--timeout=30s")
    rv = core(sim).list_namespaced_pod("default", field_selector="metadata.name=grace").metadata.resource_version
    try:
        sim.clock.advance(19)
        sim.settle()
        assert get_pod(sim, "grace") is not None        # 1 s of grace left
        sim.clock.advance(1)
        sim.settle()
        out_gone, err_gone = gone.communicate(timeout=30)
    finally:
        gone.kill()
    assert gone.returncode == 0 and out_gone.strip() == "pod/grace condition met", err_gone[-2000:]
    # As the kubelet's status manager: the stopped containers' status (Ready False), then the delete.
    seen = []
    w = watch.Watch()
    for e in w.stream(core(sim).list_namespaced_pod, "default", resource_version=rv,
                      field_selector="metadata.name=grace", timeout_seconds=10):
        seen.append((e["type"], next(c.status for c in e["object"].status.conditions if c.type == "Ready")))
        if e["type"] == "DELETED":
            w.stop()
    assert seen == [("MODIFIED", "False"), ("DELETED", "False")]
    assert get_pod(sim, "grace") is None


def test_grace_period_from_the_request_only_shortens_and_force_deletes_at_once(sim):
    create(sim, pod_doc("short"), pod_doc("unbound", node="no-such-node"), pod_doc("evicted"))
    api = core(sim)
    # An eviction's deleteOptions (kubectl drain --grace-period=7) set the grace period too.
    api.create_namespaced_pod_eviction("evicted", "default", {
        "apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "evicted", "namespace": "default"},
        "deleteOptions": {"gracePeriodSeconds": 7}})
    assert (get_pod(sim, "evicted") or {})["metadata"]["deletionGracePeriodSeconds"] == 7
    first = api.delete_namespaced_pod("short", "default", grace_period_seconds=50)
    assert first.metadata.deletion_grace_period_seconds == 50
    again = api.delete_namespaced_pod("short", "default", grace_period_seconds=100)   # longer: ignored
    assert again.metadata.deletion_grace_period_seconds == 50
    assert again.metadata.deletion_timestamp == first.metadata.deletion_timestamp
    shorter = api.delete_namespaced_pod("short", "default", grace_period_seconds=5)
    assert shorter.metadata.deletion_grace_period_seconds == 5
    assert shorter.metadata.deletion_timestamp == first.metadata.deletion_timestamp - timedelta(seconds=45)
    r = kubectl(sim, "delete", "pod", "short", "--grace-period=0", "--force")
    assert "Immediate deletion does not wait for confirmation" in r.stderr
    assert r.stdout.strip() == 'pod "short" force deleted'
    assert get_pod(sim, "short") is None
    # A pod no node runs yet is deleted at once, as CheckGracefulDelete does.
    assert not (get_pod(sim, "unbound") or {}).get("spec", {}).get("nodeName")
    kubectl(sim, "delete", "pod", "unbound", "--wait=false")
    assert get_pod(sim, "unbound") is None
    req = urllib.request.Request(f"{sim.url}/api/v1/namespaces/default/pods/x?gracePeriodSeconds=soon",
                                 method="DELETE", headers={"Authorization": f"Bearer {DUMMY_TOKEN}"})
    with pytest.raises(urllib.error.HTTPError) as bad:
        urllib.request.urlopen(req, timeout=10)
    assert bad.value.code == 400
    assert json.loads(bad.value.read())["message"] == 'gracePeriodSeconds: invalid value "soon": must be an integer'


def test_replicaset_replaces_a_terminating_pod_at_once(sim):
    kubectl(sim, "create", "deployment", "rs-web", "--image=nginx:1.25", "--replicas=2")
    sim.settle()
    before = json.loads(kubectl(sim, "get", "pods", "-l", "app=rs-web", "-o", "json").stdout)["items"]
    assert len(before) == 2
    victim = before[0]["metadata"]["name"]
    kubectl(sim, "delete", "pod", victim, "--wait=false")
    sim.settle()
    after = json.loads(kubectl(sim, "get", "pods", "-l", "app=rs-web", "-o", "json").stdout)["items"]
    terminating = [p["metadata"]["name"] for p in after if p["metadata"].get("deletionTimestamp")]
    running = [p for p in after if not p["metadata"].get("deletionTimestamp")]
    assert terminating == [victim] and len(running) == 2
    assert all(p["status"]["phase"] == "Running" for p in running)
    rs = json.loads(kubectl(sim, "get", "rs", "-l", "app=rs-web", "-o", "json").stdout)["items"][0]
    assert rs["status"]["replicas"] == 2 and rs["status"]["readyReplicas"] == 2
    sim.clock.advance(30)
    sim.settle()
    names = [p["metadata"]["name"] for p in
             json.loads(kubectl(sim, "get", "pods", "-l", "app=rs-web", "-o", "json").stdout)["items"]]
    assert victim not in names and len(names) == 2
    kubectl(sim, "delete", "deployment", "rs-web")


# --- metrics not yet available ----------------------------------------------------------------------------


def test_new_pod_has_no_metrics_until_metrics_server_scraped_it_twice(sim):
    create(sim, pod_doc("fresh"))
    r = kubectl(sim, "top", "pod", "fresh", ok=False)
    # metrics-server's podMetrics.Get answers NotFound for a pod it has no metrics for
    assert r.returncode == 1
    assert r.stderr.strip() == 'Error from server (NotFound): podmetrics.metrics.k8s.io "default/fresh" not found'
    r = kubectl(sim, "top", "pod", "-l", "app=fresh", ok=False)
    # kubectl top_pod.go verifyEmptyMetrics: an empty list for pods younger than 2 minutes
    assert r.returncode == 1 and r.stderr.strip() == "error: metrics not available yet"
    sim.clock.advance(15)
    sim.settle()
    out = kubectl(sim, "top", "pod", "fresh", "--no-headers").stdout.split()
    assert out[0] == "fresh" and out[1].endswith("m") and out[2].endswith("Mi")
    kubectl(sim, "delete", "pod", "fresh", "--grace-period=0", "--force")


def test_hpa_without_metrics_does_not_scale_and_says_why(sim):
    kubectl(sim, "create", "deployment", "nometrics", "--image=nginx:1.25", "--replicas=2")
    kubectl(sim, "set", "resources", "deployment", "nometrics", "--requests=cpu=100m,memory=64Mi")
    sim.settle()
    kubectl(sim, "apply", "-f", "-", stdin=json.dumps({
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "nometrics"},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "nometrics"},
                 "minReplicas": 1, "maxReplicas": 5,
                 "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {
                     "type": "Utilization", "averageUtilization": 50}}}]}}))
    sim.settle()
    hpa = json.loads(kubectl(sim, "get", "hpa", "nometrics", "-o", "json").stdout)
    active = next(c for c in hpa["status"]["conditions"] if c["type"] == "ScalingActive")
    assert (active["status"], active["reason"]) == ("False", "FailedGetResourceMetric")
    assert active["message"] == ("the HPA was unable to compute the replica count: failed to get cpu resource metric "
                                 "value: failed to get cpu utilization: unable to get metrics for resource cpu: no "
                                 "metrics returned from resource metrics API")
    assert hpa["status"]["desiredReplicas"] == 2
    kubectl(sim, "delete", "hpa", "nometrics")
    kubectl(sim, "delete", "deployment", "nometrics")


def test_missing_pods_count_as_idle_on_scale_up_and_full_on_scale_down():
    # 2 ready pods at 200% of a 100-unit request, 2 without metrics yet: scale-up counts them idle.
    assert missing_pods_proposal(4, used=400, requested=200, counted=2, target=100, missing=[100, 100],
                                 unready=[]) == 4           # 400/400 = 100%: within tolerance, no change
    assert missing_pods_proposal(4, used=600, requested=200, counted=2, target=100, missing=[100, 100],
                                 unready=[]) == 6           # 600/400 = 150% of 4 pods
    # Scale-down: missing pods count as using all their request, which may flip the direction.
    assert missing_pods_proposal(3, used=20, requested=200, counted=2, target=50, missing=[100],
                                 unready=[]) == 3           # (20+100)/300 = 40% of 50%: 0.8 x 3 = 2.4 -> 3
    assert missing_pods_proposal(4, used=20, requested=200, counted=2, target=100, missing=[100, 100],
                                 unready=[]) == 3           # 220/400 = 55%: ceil(0.55 x 4) = 3
    assert missing_pods_proposal(2, used=300, requested=200, counted=2, target=100, missing=[], unready=[]) == 3


# --- one clock --------------------------------------------------------------------------------------------


def test_object_event_and_metrics_timestamps_follow_the_sim_clock(sim):
    sim.clock.advance(6 * 3600)
    now = sim.clock.now_text()
    create(sim, pod_doc("clocked", grace=10))
    pod = get_pod(sim, "clocked")
    assert pod is not None
    assert pod["metadata"]["creationTimestamp"] == now and pod["status"]["startTime"] == now
    assert {c["lastTransitionTime"] for c in pod["status"]["conditions"]} == {now}
    events = json.loads(kubectl(sim, "get", "events", "--field-selector", "involvedObject.name=clocked",
                                "-o", "json").stdout)["items"]
    # core/v1 events (first/lastTimestamp) and events.k8s.io ones (eventTime, microseconds) alike
    stamps = {(e.get("lastTimestamp") or e["eventTime"])[:19] for e in events} | \
        {(e.get("firstTimestamp") or e["eventTime"])[:19] for e in events}
    assert len(events) >= 2 and stamps == {now[:19]}
    sim.clock.advance(15)
    sim.settle()
    metrics = json.loads(kubectl(sim, "get", "--raw",
                                 "/apis/metrics.k8s.io/v1beta1/namespaces/default/pods/clocked").stdout)
    assert metrics["timestamp"] == sim.clock.now_text()
    # kubectl get's AGE column is the server's: counted on the sim clock
    assert kubectl(sim, "get", "pod", "clocked", "--no-headers").stdout.split()[4] == "15s"
    deleted = core(sim).delete_namespaced_pod("clocked", "default")
    assert deleted.metadata.deletion_timestamp == sim.clock.now().replace(microsecond=0) + timedelta(seconds=10)
    kubectl(sim, "delete", "pod", "clocked", "--grace-period=0", "--force")


# --- NotReady nodes ---------------------------------------------------------------------------------------


def test_not_ready_node_is_tainted_and_its_pods_evicted_on_the_taint_eviction_schedule(sim):
    now_out = [{"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute",
                "tolerationSeconds": 0}]
    create(sim, pod_doc("patient", node=NODE), pod_doc("hasty", node=NODE, tolerations=now_out))
    patient = get_pod(sim, "patient")
    assert patient is not None and patient["spec"]["nodeName"] == NODE
    assert {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute",
            "tolerationSeconds": 300} in patient["spec"]["tolerations"]       # added by admission
    try:
        sim.set_node_condition(NODE, ready=False)
        sim.settle()
        row = kubectl(sim, "get", "node", NODE, "--no-headers").stdout.split()
        assert row[1] == "NotReady"
        node = get_node(sim, NODE)
        taints = {(t["key"], t["effect"]) for t in node["spec"]["taints"]}
        assert taints == {("node.kubernetes.io/not-ready", "NoSchedule"), ("node.kubernetes.io/not-ready", "NoExecute")}
        ready = next(c for c in node["status"]["conditions"] if c["type"] == "Ready")
        assert (ready["status"], ready["reason"]) == ("False", "KubeletNotReady")
        hasty = get_pod(sim, "hasty")
        assert hasty is not None and hasty["metadata"].get("deletionTimestamp")
        target = next(c for c in hasty["status"]["conditions"] if c["type"] == "DisruptionTarget")
        assert (target["reason"], target["message"]) == ("DeletionByTaintManager",
                                                         "Taint manager: deleting due to NoExecute taint")
        events = kubectl(sim, "get", "events", "--field-selector", "involvedObject.name=hasty,"
                         "reason=TaintManagerEviction", "-o", "json").stdout
        assert [e["message"] for e in json.loads(events)["items"]] == ["Marking for deletion Pod default/hasty"]
        assert not (get_pod(sim, "patient") or {})["metadata"].get("deletionTimestamp")
        # The scheduler places nothing on the tainted node.
        create(sim, pod_doc("latecomer", node=NODE))
        late = get_pod(sim, "latecomer")
        assert late is not None and not late["spec"].get("nodeName")
        sched = next(c for c in late["status"]["conditions"] if c["type"] == "PodScheduled")
        assert "1 node(s) had untolerated taint" in sched["message"]
        sim.clock.advance(299)
        sim.settle()
        assert not (get_pod(sim, "patient") or {})["metadata"].get("deletionTimestamp")
        sim.clock.advance(1)
        sim.settle()
        assert (get_pod(sim, "patient") or {})["metadata"].get("deletionTimestamp")
        # The DaemonSet pods tolerate not-ready for ever and stay.
        system = json.loads(kubectl(sim, "get", "pods", "-n", "kube-system", "-o", "json",
                                    "--field-selector", f"spec.nodeName={NODE}").stdout)["items"]
        daemons = [p for p in system if p["metadata"]["ownerReferences"][0]["kind"] == "DaemonSet"]
        assert daemons and not any(p["metadata"].get("deletionTimestamp") for p in daemons)
    finally:
        sim.set_node_condition(NODE, ready=True)
        sim.settle()
    node = get_node(sim, NODE)
    assert not node["spec"].get("taints")
    assert kubectl(sim, "get", "node", NODE, "--no-headers").stdout.split()[1] == "Ready"
    assert (get_pod(sim, "latecomer") or {})["spec"].get("nodeName") == NODE
    kubectl(sim, "delete", "pod", "latecomer", "patient", "hasty", "--grace-period=0", "--force",
            "--ignore-not-found")


def test_unreachable_node_leaves_its_pods_terminating_and_unready(sim):
    create(sim, pod_doc("stranded", node=NODE, grace=5))
    try:
        sim.set_node_condition(NODE, ready=None)
        sim.settle()
        node = get_node(sim, NODE)
        assert {(t["key"], t["effect"]) for t in node["spec"]["taints"]} == {
            ("node.kubernetes.io/unreachable", "NoSchedule"), ("node.kubernetes.io/unreachable", "NoExecute")}
        conds = {c["type"]: (c["status"], c["reason"], c["message"]) for c in node["status"]["conditions"]}
        assert conds["Ready"] == ("Unknown", "NodeStatusUnknown", "Kubelet stopped posting node status.")
        assert conds["MemoryPressure"][0] == "Unknown"
        assert kubectl(sim, "get", "node", NODE, "--no-headers").stdout.split()[1] == "NotReady"
        r = kubectl(sim, "top", "node", NODE, ok=False)
        assert r.stderr.strip() == f'Error from server (NotFound): nodemetrics.metrics.k8s.io "{NODE}" not found'
        pod = get_pod(sim, "stranded")
        assert pod is not None
        ready = next(c for c in pod["status"]["conditions"] if c["type"] == "Ready")
        assert ready["status"] == "False"
        r = kubectl(sim, "wait", "--for=condition=Ready=False", "pod/stranded", "--timeout=0s")
        assert r.stdout.strip() == "pod/stranded condition met"
        kubectl(sim, "delete", "pod", "stranded", "--wait=false")
        sim.clock.advance(60)
        sim.settle()
        pod = get_pod(sim, "stranded")    # its kubelet cannot stop it: Terminating until the node is back
        assert pod is not None and pod["metadata"].get("deletionTimestamp")
    finally:
        sim.set_node_condition(NODE, ready=True)
        sim.settle()
    assert get_pod(sim, "stranded") is None
    assert not get_node(sim, NODE)["spec"].get("taints")


# --- pure rules -------------------------------------------------------------------------------------------


def test_eviction_delay_follows_the_tolerations():
    taint = {"key": "node.kubernetes.io/unreachable", "effect": "NoExecute"}
    def pod(*tols: dict) -> dict:
        return {"spec": {"tolerations": list(tols)}}
    assert eviction_delay(pod(), [taint]) == 0                       # not tolerated: at once
    assert eviction_delay(pod({"key": taint["key"], "operator": "Exists", "effect": "NoExecute",
                               "tolerationSeconds": 300}), [taint]) == 300
    assert eviction_delay(pod({"operator": "Exists"}), [taint]) is None          # tolerated for ever
    assert eviction_delay(pod({"key": taint["key"], "operator": "Exists", "tolerationSeconds": -5}), [taint]) == 0
    assert eviction_delay(pod(), [{"key": "x", "effect": "NoSchedule"}]) is None  # NoSchedule never evicts


def test_node_conditions_and_wanted_taints():
    conds = node_conditions([], ready=None, now="2026-01-14T06:00:00Z")
    node = {"spec": {"unschedulable": True}, "status": {"conditions": conds}}
    assert wanted_taints(node) == [("node.kubernetes.io/unschedulable", "NoSchedule"),
                                   ("node.kubernetes.io/unreachable", "NoSchedule"),
                                   ("node.kubernetes.io/unreachable", "NoExecute")]
    back = node_conditions(conds, ready=True, now="2026-01-14T06:05:00Z")
    ready = next(c for c in back if c["type"] == "Ready")
    assert (ready["status"], ready["reason"], ready["lastTransitionTime"]) == ("True", "KubeletReady",
                                                                              "2026-01-14T06:05:00Z")
    assert wanted_taints({"status": {"conditions": back}}) == []
    assert len(back) == 4 and R.NODE.kind == "Node"


def test_the_store_stamps_objects_from_its_clock_and_sim_up_takes_a_clock_start(capsys):
    from eafix_capacity.sim.cli import _clock_start, main
    from eafix_capacity.sim.clock import TRADING_DAY_START, SimClock
    from eafix_capacity.sim.store import Store

    store = Store(clock=SimClock(start=TRADING_DAY_START, speed=0))
    cm = store.create(R.CONFIGMAP, {"metadata": {"name": "c", "namespace": "default"}})
    assert cm["metadata"]["creationTimestamp"] == "2026-01-14T06:00:00Z"
    assert _clock_start("trading-day") == TRADING_DAY_START == _clock_start("2026-01-14T06:00:00Z")
    for bad, message in (("yesterday", "not an RFC 3339 time"), ("2026-01-14T06:00:00", "needs a time zone")):
        with pytest.raises(SystemExit) as exit_:
            main(["sim", "up", "--clock-start", bad])
        assert exit_.value.code == 2 and message in capsys.readouterr().err


def test_metrics_server_reports_pods_and_nodes_only_after_one_resolution():
    from eafix_capacity.sim import metrics as M

    t0 = datetime(2026, 1, 14, 6, 0, tzinfo=timezone.utc)
    pod = {"spec": {"nodeName": "n"}, "status": {"phase": "Running", "startTime": "2026-01-14T06:00:00Z"}}
    node = {"metadata": {"creationTimestamp": "2026-01-14T06:00:00Z"},
            "status": {"conditions": [{"type": "Ready", "status": "True"}]}}
    assert [M.pod_is_measured(pod, t0 + timedelta(seconds=s)) for s in (0, 14, 15)] == [False, False, True]
    assert [M.node_is_measured(node, t0 + timedelta(seconds=s)) for s in (0, 14, 15)] == [False, False, True]
    unready = {**node, "status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}}
    assert not M.node_is_measured(unready, t0 + timedelta(hours=1))
    pending = {"spec": {"nodeName": "n"}, "status": {"phase": "Pending"}}
    assert not M.pod_is_measured(pending, t0 + timedelta(hours=1))
