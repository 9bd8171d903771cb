"""The real kubectl and the official Python client drive workloads on a running sim cluster.

Rollouts, waits, scaling, image changes and undo, cordon and drain (with and without a
PodDisruptionBudget in the way), ``kubectl top``, the HPA and unschedulable pods, each
checked through the same commands an operator runs against a real cluster.
"""
from __future__ import annotations

import json
import re
import subprocess
import threading
from pathlib import Path

import pytest
import yaml
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from eafix_capacity.nodes import default_daemonsets
from eafix_capacity.sim import resources as R
from eafix_capacity.sim.cluster import SimCluster
from eafix_capacity.sim.testing import run_kubectl
from eafix_capacity.sim.usage_model import constant_model

pytestmark = [pytest.mark.sim, pytest.mark.kubectl]

DATA = Path(__file__).parent / "data" / "workloads"
HASH = "[bcdfghjklmnpqrstvwxz2456789]"
NODES = ["sim-n2-standard-8-0", "sim-n2-standard-8-1", "sim-n2-standard-8-2"]


@pytest.fixture
def sim(sim_cluster: SimCluster) -> SimCluster:
    """The shared fixture's cluster with its clock frozen: only ``clock.advance`` moves it."""
    sim_cluster.clock.set_speed(0)
    return sim_cluster


def kubectl(sim: SimCluster, *args: str, ok: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
    return run_kubectl(sim, *args, cache_dir=Path(str(sim.kubeconfig)).parent / "kube-cache", check=ok,
                       timeout=timeout)


def kubectl_on_the_clock(sim: SimCluster, *args: str, step: float = 5.0) -> subprocess.CompletedProcess:
    """A kubectl command that waits for pods to terminate (``drain``, ``delete``, a StatefulSet's
    ``rollout status``): the frozen sim clock moves ``step`` seconds on whenever it has not
    finished within 50 ms, so grace periods end as they would while a real cluster runs."""
    cmd = ["kubectl", f"--kubeconfig={sim.kubeconfig}",
           f"--cache-dir={Path(str(sim.kubeconfig)).parent / 'kube-cache'}", *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for _ in range(2000):
        try:
            out, err = proc.communicate(timeout=0.05)
            break
        except subprocess.TimeoutExpired:
            sim.clock.advance(step)
            sim.settle()
    else:
        proc.kill()
        raise AssertionError(f"{' '.join(cmd)} did not finish")
    if proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{out}\n{err}")
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def terminated(sim: SimCluster, grace: float = 30) -> None:
    """Let the Terminating pods' grace period (30 s by default) pass on the sim clock."""
    sim.clock.advance(grace)
    sim.settle()


def api(sim: SimCluster) -> client.ApiClient:
    return config.new_client_from_config(config_file=str(sim.kubeconfig))


def pods_json(sim: SimCluster, *args: str) -> list[dict]:
    return json.loads(kubectl(sim, "get", "pods", "-o", "json", *args).stdout)["items"]


def apply(sim: SimCluster, *files: str) -> None:
    args = []
    for f in files:
        args += ["-f", str(DATA / f)]
    kubectl(sim, "apply", *args)


# --- Deployments ---------------------------------------------------------------------------------


def test_rollout_status_and_wait_for_ready(sim):
    apply(sim, "web.yaml")
    out = kubectl(sim, "rollout", "status", "deployment/web", "--timeout=30s").stdout
    assert 'deployment "web" successfully rolled out' in out
    out = kubectl(sim, "wait", "--for=condition=ready", "pod", "-l", "app.kubernetes.io/name=web",
                  "--timeout=30s").stdout
    assert out.count("condition met") == 3
    pods = pods_json(sim, "-l", "app.kubernetes.io/name=web")
    assert len(pods) == 3
    for p in pods:
        assert re.fullmatch(rf"web-{HASH}{{1,10}}-{HASH}{{5}}", p["metadata"]["name"])
        assert p["status"]["phase"] == "Running"
        conditions = {c["type"]: c["status"] for c in p["status"]["conditions"]}
        assert conditions == {"PodReadyToStartContainers": "True", "Initialized": "True", "Ready": "True",
                              "ContainersReady": "True", "PodScheduled": "True"}
        assert p["spec"]["nodeName"] in NODES
        assert p["status"]["podIP"] and p["status"]["hostIP"]
        assert all(c["ready"] and c["started"] and "running" in c["state"] for c in p["status"]["containerStatuses"])
        owner = p["metadata"]["ownerReferences"][0]
        assert owner["kind"] == "ReplicaSet" and owner["controller"] is True
        assert p["metadata"]["name"].startswith(owner["name"] + "-")
        assert p["metadata"]["labels"]["pod-template-hash"] == owner["name"].rsplit("-", 1)[1]
    # Replicas of one Deployment spread over the three nodes.
    assert sorted(p["spec"]["nodeName"] for p in pods) == NODES


def test_deployment_status_through_python_client(sim):
    apply(sim, "web.yaml")
    sim.settle()
    apps = client.AppsV1Api(api(sim))
    d = apps.read_namespaced_deployment("web", "default")
    assert d.status.observed_generation == d.metadata.generation
    assert (d.status.replicas, d.status.updated_replicas, d.status.ready_replicas,
            d.status.available_replicas, d.status.unavailable_replicas) == (3, 3, 3, 3, None)
    conditions = {c.type: (c.status, c.reason) for c in d.status.conditions}
    assert conditions == {"Available": ("True", "MinimumReplicasAvailable"),
                          "Progressing": ("True", "NewReplicaSetAvailable")}
    assert d.metadata.annotations["deployment.kubernetes.io/revision"] == "1"
    rs = apps.list_namespaced_replica_set("default").items
    assert len(rs) == 1 and rs[0].status.ready_replicas == 3
    assert rs[0].metadata.annotations["deployment.kubernetes.io/desired-replicas"] == "3"


def test_scale_up_and_down(sim):
    apply(sim, "web.yaml")
    kubectl(sim, "scale", "deployment/web", "--replicas=5")
    kubectl(sim, "rollout", "status", "deployment/web", "--timeout=30s")
    assert len(pods_json(sim, "-l", "app.kubernetes.io/name=web")) == 5
    kubectl(sim, "scale", "deployment/web", "--replicas=1")
    kubectl(sim, "rollout", "status", "deployment/web", "--timeout=30s")
    sim.settle()
    terminating = pods_json(sim, "-l", "app.kubernetes.io/name=web")
    assert len(terminating) == 5 and sum(bool(p["metadata"].get("deletionTimestamp")) for p in terminating) == 4
    terminated(sim)
    assert len(pods_json(sim, "-l", "app.kubernetes.io/name=web")) == 1
    out = kubectl(sim, "get", "deployment", "web", "--no-headers").stdout.split()
    assert out[1] == "1/1"


def test_deleted_pod_is_replaced(sim):
    apply(sim, "web.yaml")
    sim.settle()
    victim = pods_json(sim)[0]["metadata"]["name"]
    kubectl_on_the_clock(sim, "delete", "pod", victim)      # waits out the pod's 30 s grace period
    sim.settle()
    names = [p["metadata"]["name"] for p in pods_json(sim)]
    assert len(names) == 3 and victim not in names


def test_set_image_rollout_and_undo(sim):
    apply(sim, "web.yaml")
    kubectl(sim, "rollout", "status", "deployment/web", "--timeout=30s")
    first_rs = json.loads(kubectl(sim, "get", "rs", "-o", "json").stdout)["items"][0]["metadata"]["name"]
    kubectl(sim, "set", "image", "deployment/web", "nginx=nginx:1.26")
    kubectl(sim, "rollout", "status", "deployment/web", "--timeout=30s")
    terminated(sim)
    pods = pods_json(sim)
    assert len(pods) == 3
    assert {p["spec"]["containers"][0]["image"] for p in pods} == {"nginx:1.26"}
    rss = {r["metadata"]["name"]: r for r in json.loads(kubectl(sim, "get", "rs", "-o", "json").stdout)["items"]}
    assert len(rss) == 2 and rss[first_rs]["spec"]["replicas"] == 0
    history = kubectl(sim, "rollout", "history", "deployment/web").stdout
    assert re.search(r"^1\s", history, re.M) and re.search(r"^2\s", history, re.M)

    out = kubectl(sim, "rollout", "undo", "deployment/web").stdout
    assert "rolled back" in out
    kubectl(sim, "rollout", "status", "deployment/web", "--timeout=30s")
    terminated(sim)
    pods = pods_json(sim)
    assert {p["spec"]["containers"][0]["image"] for p in pods} == {"nginx:1.25"}
    # The old ReplicaSet is reused (same template hash) and becomes revision 3.
    rss = {r["metadata"]["name"]: r for r in json.loads(kubectl(sim, "get", "rs", "-o", "json").stdout)["items"]}
    assert len(rss) == 2
    assert rss[first_rs]["spec"]["replicas"] == 3
    assert rss[first_rs]["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "3"
    assert {p["metadata"]["labels"]["pod-template-hash"] for p in pods} == {first_rs.rsplit("-", 1)[1]}


def test_rolling_update_respects_max_surge_and_max_unavailable(sim):
    doc = yaml.safe_load((DATA / "web.yaml").read_text())
    doc["spec"]["replicas"] = 4
    doc["spec"]["strategy"] = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}
    apps = client.AppsV1Api(api(sim))
    apps.create_namespaced_deployment("default", doc)
    sim.settle()

    pods: dict[str, bool] = {}
    seen = {"max_total": 0, "min_ready": 99}
    lock = threading.Lock()

    def watch(etype: str, rt, obj: dict) -> None:
        if rt.key != R.POD.key or (obj["metadata"].get("labels") or {}).get("app.kubernetes.io/name") != "web":
            return
        with lock:
            if etype == "DELETED" or obj["metadata"].get("deletionTimestamp"):   # surge counts active pods
                pods.pop(obj["metadata"]["name"], None)
            else:
                pods[obj["metadata"]["name"]] = any(c["type"] == "Ready" and c["status"] == "True"
                                                    for c in (obj.get("status") or {}).get("conditions") or [])
            seen["max_total"] = max(seen["max_total"], len(pods))
            seen["min_ready"] = min(seen["min_ready"], sum(pods.values()))

    for p in pods_json(sim):
        pods[p["metadata"]["name"]] = True
    sim.store.subscribe(watch)
    kubectl(sim, "set", "image", "deployment/web", "nginx=nginx:1.27")
    kubectl(sim, "rollout", "status", "deployment/web", "--timeout=30s")
    sim.settle()
    assert seen["max_total"] == 5          # 4 + maxSurge 1, reached but never exceeded
    assert seen["min_ready"] == 4          # maxUnavailable 0
    events = kubectl(sim, "get", "events", "--field-selector", "reason=ScalingReplicaSet", "-o", "json").stdout
    messages = [e["message"] for e in json.loads(events)["items"]]
    assert sum("Scaled up" in m for m in messages) >= 4 and any("Scaled down" in m for m in messages)


# --- StatefulSets ------------------------------------------------------------------------------------


def test_statefulset_ordered_pods_claims_and_rollout(sim):
    order: list[str] = []
    sim.store.subscribe(lambda etype, rt, obj: order.append(obj["metadata"]["name"])
                        if etype == "ADDED" and rt.key == R.POD.key else None)
    apply(sim, "postgres.yaml")
    out = kubectl(sim, "rollout", "status", "statefulset/postgres", "--timeout=30s").stdout
    assert "roll out complete" in out and "3 new pods" in out
    assert order == ["postgres-0", "postgres-1", "postgres-2"]
    pvcs = json.loads(kubectl(sim, "get", "pvc", "-o", "json").stdout)["items"]
    assert sorted(p["metadata"]["name"] for p in pvcs) == ["data-postgres-0", "data-postgres-1", "data-postgres-2"]
    assert all(p["status"]["phase"] == "Bound" and p["status"]["capacity"]["storage"] == "10Gi" for p in pvcs)
    pod0 = json.loads(kubectl(sim, "get", "pod", "postgres-0", "-o", "json").stdout)
    assert {"name": "data", "persistentVolumeClaim": {"claimName": "data-postgres-0"}} in pod0["spec"]["volumes"]
    assert pod0["spec"]["hostname"] == "postgres-0" and pod0["spec"]["subdomain"] == "postgres"

    kubectl(sim, "set", "image", "statefulset/postgres", "postgres=postgres:16.2")
    # OrderedReady: each old pod is replaced once it has terminated
    kubectl_on_the_clock(sim, "rollout", "status", "statefulset/postgres", "--timeout=30s")
    sim.settle()
    sts = client.AppsV1Api(api(sim)).read_namespaced_stateful_set("postgres", "default")
    assert sts.status.current_revision == sts.status.update_revision
    assert (sts.status.ready_replicas, sts.status.updated_replicas, sts.status.current_replicas) == (3, 3, 3)
    assert sts.status.observed_generation == sts.metadata.generation
    images = {p["spec"]["containers"][0]["image"] for p in pods_json(sim)}
    assert images == {"postgres:16.2"}

    history = kubectl(sim, "rollout", "history", "statefulset/postgres").stdout
    assert re.search(r"^1\s", history, re.M) and re.search(r"^2\s", history, re.M)
    assert "rolled back" in kubectl(sim, "rollout", "undo", "statefulset/postgres").stdout
    kubectl_on_the_clock(sim, "rollout", "status", "statefulset/postgres", "--timeout=30s")
    sim.settle()
    assert {p["spec"]["containers"][0]["image"] for p in pods_json(sim)} == {"postgres:16.1"}
    revisions = json.loads(kubectl(sim, "get", "controllerrevisions", "-o", "json").stdout)["items"]
    by_rev = {r["revision"]: r["metadata"]["name"] for r in revisions}
    sts = client.AppsV1Api(api(sim)).read_namespaced_stateful_set("postgres", "default")
    assert sorted(by_rev) == [2, 3] and by_rev[3] == sts.status.update_revision == sts.status.current_revision


# --- cordon, drain, PodDisruptionBudget ------------------------------------------------------------------


def test_cordon_and_drain_ignoring_daemonsets(sim):
    apply(sim, "web.yaml", "postgres.yaml", "node-exporter.yaml")
    kubectl(sim, "rollout", "status", "statefulset/postgres", "--timeout=30s")
    kubectl(sim, "rollout", "status", "daemonset/node-exporter", "-n", "kube-system", "--timeout=30s")
    node = NODES[0]
    kubectl(sim, "cordon", node)
    sim.settle()
    n = json.loads(kubectl(sim, "get", "node", node, "-o", "json").stdout)
    assert n["spec"]["unschedulable"] is True
    assert {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}.items() <= n["spec"]["taints"][0].items()
    assert "SchedulingDisabled" in kubectl(sim, "get", "node", node).stdout

    r = kubectl_on_the_clock(sim, "drain", node, "--ignore-daemonsets", "--timeout=30s")
    assert f"node/{node} drained" in r.stdout
    assert "Ignoring DaemonSet-managed Pods" in r.stderr or "ignoring DaemonSet-managed Pods" in r.stderr
    sim.settle()
    on_node = pods_json(sim, "-A", "--field-selector", f"spec.nodeName={node}")
    # only DaemonSet pods stay: the provider's system DaemonSets (node-exporter among them, updated by
    # the apply above); metrics-server, a Deployment's pod, was evicted and runs elsewhere
    assert {p["metadata"]["ownerReferences"][0]["kind"] for p in on_node} == {"DaemonSet"}
    assert sorted(p["metadata"]["name"].rsplit("-", 1)[0] for p in on_node) == \
        sorted(d.name for d in default_daemonsets("gke"))
    everything = pods_json(sim, "-A")
    # the postgres pod evicted from the node cannot follow its zonal volume elsewhere (each sim node
    # is its own zone): it waits Pending, as on a real cluster, until the node takes pods again
    pending = [p for p in everything if p["status"]["phase"] != "Running"]
    assert [p["metadata"]["name"][:-1] for p in pending] == ["postgres-"]
    cond = next(c for c in pending[0]["status"]["conditions"] if c["type"] == "PodScheduled")
    assert cond["message"] == ("0/3 nodes are available: 1 node(s) were unschedulable, 2 node(s) had volume node "
                               "affinity conflict. preemption: 0/3 nodes are available: 3 Preemption is not helpful "
                               "for scheduling.")
    assert len([p for p in everything if p["metadata"]["namespace"] == "default"]) == 6
    kubectl(sim, "uncordon", node)
    sim.settle()
    n = json.loads(kubectl(sim, "get", "node", node, "-o", "json").stdout)
    assert not n["spec"].get("unschedulable") and not n["spec"].get("taints")
    assert {p["status"]["phase"] for p in pods_json(sim, "-A")} == {"Running"}


def test_drain_refused_while_pdb_would_be_violated(sim):
    apply(sim, "web.yaml", "web-pdb.yaml")
    sim.settle()
    policy = client.PolicyV1Api(api(sim))
    pdb = policy.read_namespaced_pod_disruption_budget("web", "default")
    assert (pdb.status.current_healthy, pdb.status.desired_healthy, pdb.status.expected_pods,
            pdb.status.disruptions_allowed) == (3, 3, 3, 0)
    node = NODES[0]
    victim = pods_json(sim, "--field-selector", f"spec.nodeName={node}")[0]["metadata"]["name"]

    r = kubectl(sim, "drain", node, "--ignore-daemonsets", "--timeout=3s", ok=False, timeout=60)
    assert r.returncode != 0
    assert "Cannot evict pod as it would violate the pod's disruption budget." in r.stderr
    assert victim in [p["metadata"]["name"] for p in pods_json(sim)]

    core = client.CoreV1Api(api(sim))
    with pytest.raises(ApiException) as e:
        core.create_namespaced_pod_eviction(victim, "default", {"apiVersion": "policy/v1", "kind": "Eviction",
                                                                "metadata": {"name": victim, "namespace": "default"}})
    assert e.value.status == 429
    body = json.loads(e.value.body)
    assert body["reason"] == "TooManyRequests"
    assert body["details"]["causes"][0]["message"] == \
        "The disruption budget web needs 3 healthy pods and has 3 currently"

    # Loosen the budget: the same drain now goes through and the pod is recreated elsewhere.
    kubectl(sim, "patch", "pdb", "web", "--type=merge", "-p", '{"spec":{"minAvailable":2}}')
    sim.settle()
    kubectl_on_the_clock(sim, "drain", node, "--ignore-daemonsets", "--timeout=30s")
    sim.settle()
    pods = pods_json(sim)
    assert victim not in [p["metadata"]["name"] for p in pods]
    assert len(pods) == 3 and all(p["spec"]["nodeName"] != node for p in pods)


# --- metrics -------------------------------------------------------------------------------------------


def test_top_pod_containers_and_top_node(sim):
    apply(sim, "web.yaml")
    sim.settle()
    sim.clock.advance(15)                     # metrics-server has scraped the new pods twice
    sim.settle()
    out = kubectl(sim, "top", "pod", "--containers", "--no-headers").stdout.splitlines()
    assert len(out) == 6
    for line in out:
        pod, container, cpu, mem = line.split()
        assert pod.startswith("web-") and container in ("nginx", "sidecar")
        assert re.fullmatch(r"\d+m", cpu) and re.fullmatch(r"\d+Mi", mem)
        assert int(mem[:-2]) > 0
    labelled = kubectl(sim, "top", "pod", "-A", "-l", "app.kubernetes.io/name=web").stdout.splitlines()
    assert labelled[0].split()[:2] == ["NAMESPACE", "NAME"] and len(labelled) == 4
    nodes = kubectl(sim, "top", "node").stdout.splitlines()
    assert nodes[0].split()[0] == "NAME" and len(nodes) == 4
    for line in nodes[1:]:
        name, cpu, cpu_pct, mem, mem_pct = line.split()
        assert name in NODES and cpu.endswith("m") and cpu_pct.endswith("%") and mem.endswith("Mi")
    # Raw API: metrics-server's shape.
    raw = json.loads(kubectl(sim, "get", "--raw", "/apis/metrics.k8s.io/v1beta1/namespaces/default/pods").stdout)
    assert raw["kind"] == "PodMetricsList" and len(raw["items"]) == 3
    item = raw["items"][0]
    assert item["window"] == "30s" and item["timestamp"].endswith("Z")
    assert re.fullmatch(r"\d+(n|u|m)?", item["containers"][0]["usage"]["cpu"])


def test_metrics_follow_the_sim_clock_trading_day(sim):
    apply(sim, "web.yaml")
    sim.settle()

    def total_cpu() -> int:
        body = sim.controllers.metrics_list("PodMetrics", "default", None, None)
        from eafix_capacity.sim.usage_model import cpu_nanocores
        return sum(cpu_nanocores(c["usage"]["cpu"]) for i in body["items"] for c in i["containers"])

    night = total_cpu()                       # 06:00 UTC: before London opens
    sim.clock.advance(9 * 3600)               # 15:00 UTC: London/New York overlap
    peak = total_cpu()
    assert peak > 2 * night


# --- HPA ------------------------------------------------------------------------------------------------


def test_hpa_scales_up_under_load_and_back_down_within_bounds(sim):
    doc = yaml.safe_load((DATA / "web.yaml").read_text())
    doc["spec"]["replicas"] = 2
    apps = client.AppsV1Api(api(sim))
    auto = client.AutoscalingV2Api(api(sim))
    apps.create_namespaced_deployment("default", doc)
    auto.create_namespaced_horizontal_pod_autoscaler("default", {
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "web"},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                 "minReplicas": 2, "maxReplicas": 7,
                 "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {
                     "type": "Utilization", "averageUtilization": 60}}}]}})
    sim.settle()
    seen = []
    sim.controllers.set_usage_model(constant_model(1.8))
    for _ in range(5):
        sim.clock.advance(15)
        sim.settle()
        seen.append(apps.read_namespaced_deployment("web", "default").spec.replicas)
    assert seen[0] == 6                      # 2 -> max(2x, +4) = 6 (wanted ceil(2 x 180/60) = 6)
    assert max(seen) == 7 and seen[-1] == 7  # capped at maxReplicas
    hpa = auto.read_namespaced_horizontal_pod_autoscaler("web", "default")
    limited = {c.type: c.reason for c in hpa.status.conditions}
    assert limited["ScalingLimited"] == "TooManyReplicas" and limited["ScalingActive"] == "ValidMetricFound"
    assert hpa.status.current_metrics[0].resource.current.average_utilization >= 150
    assert "cpu: " in kubectl(sim, "get", "hpa", "web").stdout
    assert len(pods_json(sim)) == 7

    sim.controllers.set_usage_model(constant_model(0.05))
    sim.clock.advance(15)
    sim.settle()
    assert apps.read_namespaced_deployment("web", "default").spec.replicas == 7   # stabilisation window
    for _ in range(22):
        sim.clock.advance(15)
        sim.settle()
        seen.append(apps.read_namespaced_deployment("web", "default").spec.replicas)
    assert seen[-1] == 2 and min(seen) == 2 and max(seen) == 7
    described = kubectl(sim, "describe", "hpa", "web").stdout
    assert "SuccessfulRescale" in described and "New size: 2; reason: All metrics below target" in described


# --- unschedulable pods -----------------------------------------------------------------------------------


def test_unschedulable_pod_is_explained_by_describe(sim):
    apply(sim, "too-big.yaml")
    sim.settle()
    pod = pods_json(sim, "-l", "app.kubernetes.io/name=too-big")[0]
    assert pod["status"]["phase"] == "Pending" and not pod["spec"].get("nodeName")
    cond = next(c for c in pod["status"]["conditions"] if c["type"] == "PodScheduled")
    expected = ("0/3 nodes are available: 3 Insufficient cpu. preemption: 0/3 nodes are available: "
                "3 No preemption victims found for incoming pod.")
    assert (cond["status"], cond["reason"], cond["message"]) == ("False", "Unschedulable", expected)
    described = kubectl(sim, "describe", "pod", pod["metadata"]["name"]).stdout
    assert "FailedScheduling" in described and "default-scheduler" in described
    assert "0/3 nodes are available: 3 Insufficient cpu." in described
    assert "PodScheduled   False" in described
    r = kubectl(sim, "rollout", "status", "deployment/too-big", "--timeout=2s", ok=False)
    assert r.returncode != 0


def test_stalled_rollout_exceeds_its_progress_deadline(sim):
    doc = yaml.safe_load((DATA / "too-big.yaml").read_text())
    doc["spec"]["progressDeadlineSeconds"] = 60
    client.AppsV1Api(api(sim)).create_namespaced_deployment("default", doc)
    sim.settle()
    sim.clock.advance(61)
    sim.settle()
    r = kubectl(sim, "rollout", "status", "deployment/too-big", "--timeout=10s", ok=False)
    assert r.returncode != 0
    assert 'deployment "too-big" exceeded its progress deadline' in r.stderr
    described = kubectl(sim, "describe", "deployment", "too-big").stdout
    assert re.search(r"Progressing\s+False\s+ProgressDeadlineExceeded", described)


def test_pending_pod_is_retried_when_a_node_is_uncordoned(sim):
    for n in NODES:
        kubectl(sim, "cordon", n)
    apply(sim, "web.yaml")
    sim.settle()
    pods = pods_json(sim)
    assert all(p["status"]["phase"] == "Pending" for p in pods)
    described = kubectl(sim, "describe", "pod", pods[0]["metadata"]["name"]).stdout
    assert "0/3 nodes are available: 3 node(s) were unschedulable." in described
    assert "3 Preemption is not helpful for scheduling." in described
    kubectl(sim, "uncordon", NODES[1])
    kubectl(sim, "rollout", "status", "deployment/web", "--timeout=30s")
    assert {p["spec"]["nodeName"] for p in pods_json(sim)} == {NODES[1]}


def test_pod_events_shown_by_describe(sim):
    apply(sim, "web.yaml")
    sim.settle()
    name = pods_json(sim)[0]["metadata"]["name"]
    described = kubectl(sim, "describe", "pod", name).stdout
    for reason in ("Scheduled", "Pulled", "Created", "Started"):
        assert re.search(rf"Normal\s+{reason}\s", described), reason
    assert f"Successfully assigned default/{name} to sim-n2-standard-8-" in described
    rs_described = kubectl(sim, "describe", "rs").stdout
    assert "SuccessfulCreate" in rs_described and "Created pod: web-" in rs_described
