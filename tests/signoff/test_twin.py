"""The twin: a "live" source sim read once, read-only, onto a second sim that holds the same.

One source sim (four nodes in two zones, one tainted, one cordoned; a namespace with a Deployment
under an HPA, a StatefulSet with its claim, a PDB, a quota, a LimitRange, a Secret) started with
an audit log, and one twin of it, serve the whole module.
"""
from __future__ import annotations

import base64
import json
import socket
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml

from eafix_capacity.cluster.context import load_target
from eafix_capacity.cluster.errors import ContextNotFound, Forbidden, TargetError, Unreachable
from eafix_capacity.cluster.notebook import Session
from eafix_capacity.cluster.rest import get_json, list_items
from eafix_capacity.signoff import twin
from eafix_capacity.sim import cli
from eafix_capacity.sim import resources as R
from eafix_capacity.sim.cluster import CONTEXT, SimCluster, node_objects
from eafix_capacity.usage.samples import Sample
from eafix_capacity.usage.store import UsageStore

NS = "eafix-trading"
LIVE_SECRET = "live-s3cret-value-never-copied"
TAINT = {"key": "eafix.io/dedicated", "value": "infra", "effect": "NoSchedule"}
APP = "app.kubernetes.io/name"
# the observed figures of the hand-written utilisation store: execution-engine's p95 CPU is
# 200m of its 250m request (0.8), its peak memory 384Mi of 512Mi (0.75)
OBSERVED_CPU_SHARE, OBSERVED_MEMORY_SHARE = 0.8, 0.75


def _labels(name: str) -> dict[str, str]:
    return {APP: name}


def _namespace_objects() -> list[dict[str, Any]]:
    pod_resources = {"requests": {"cpu": "250m", "memory": "512Mi"}, "limits": {"cpu": "1", "memory": "1Gi"}}
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS, "labels": {"eafix.io/desk": "fx"}}},
        {"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "eafix-quota", "namespace": NS},
         "spec": {"hard": {"requests.cpu": "10", "requests.memory": "20Gi", "pods": "30"}}},
        {"apiVersion": "v1", "kind": "LimitRange", "metadata": {"name": "eafix-limits", "namespace": NS},
         "spec": {"limits": [{"type": "Container", "defaultRequest": {"cpu": "100m", "memory": "128Mi"},
                              "default": {"cpu": "500m", "memory": "256Mi"}}]}},
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "trader", "namespace": NS}},
        {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": "eafix-ssd"},
         "provisioner": "pd.csi.storage.gke.io", "volumeBindingMode": "WaitForFirstConsumer",
         "reclaimPolicy": "Delete", "parameters": {"type": "pd-ssd"}},
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "postgres-credentials", "namespace": NS},
         "stringData": {"password": LIVE_SECRET, "user": "eafix"}},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings", "namespace": NS},
         "data": {"mode": "live"}},
        {"apiVersion": "apps/v1", "kind": "StatefulSet",
         "metadata": {"name": "postgres", "namespace": NS, "labels": _labels("postgres")},
         "spec": {"serviceName": "postgres", "replicas": 1, "selector": {"matchLabels": _labels("postgres")},
                  "template": {"metadata": {"labels": _labels("postgres")}, "spec": {
                      "tolerations": [{**TAINT, "operator": "Equal"}],
                      "nodeSelector": {"eafix.io/pool": "infra"},
                      "containers": [{"name": "postgres", "image": "postgres:16", "resources": pod_resources,
                                      "env": [{"name": "PGPASSWORD", "valueFrom": {"secretKeyRef": {
                                          "name": "postgres-credentials", "key": "password"}}}],
                                      "volumeMounts": [{"name": "data", "mountPath": "/var/lib/postgresql"}]}]}},
                  "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {
                      "accessModes": ["ReadWriteOnce"], "storageClassName": "eafix-ssd",
                      "resources": {"requests": {"storage": "10Gi"}}}}]}},
        {"apiVersion": "apps/v1", "kind": "Deployment",
         "metadata": {"name": "execution-engine", "namespace": NS, "labels": _labels("execution-engine")},
         "spec": {"replicas": 2, "selector": {"matchLabels": _labels("execution-engine")},
                  "template": {"metadata": {"labels": _labels("execution-engine")}, "spec": {
                      "serviceAccountName": "trader",
                      "containers": [{"name": "engine", "image": "eafix/execution-engine:1.4",
                                      "resources": pod_resources,
                                      "envFrom": [{"configMapRef": {"name": "settings"}}]}]}}}},
        {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
         "metadata": {"name": "execution-engine", "namespace": NS},
         "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "execution-engine"},
                  "minReplicas": 3, "maxReplicas": 6,  # above the Deployment's 2: the HPA scales it to 3
                  "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {
                      "type": "Utilization", "averageUtilization": 70}}}]}},
        {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
         "metadata": {"name": "execution-engine", "namespace": NS},
         "spec": {"minAvailable": 2, "selector": {"matchLabels": _labels("execution-engine")}}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "execution-engine", "namespace": NS},
         "spec": {"selector": _labels("execution-engine"), "ports": [{"name": "http", "port": 8080}]}},
    ]


def _source_nodes() -> list[dict[str, Any]]:
    nodes = node_objects("n2-standard-8", nodes=4, zones=("a", "b"), provider="gke")
    nodes[2]["spec"]["taints"] = [dict(TAINT)]
    nodes[2]["metadata"]["labels"]["eafix.io/pool"] = "infra"
    nodes[3]["spec"]["unschedulable"] = True
    nodes[3]["spec"]["taints"] = [{"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}]
    return nodes


def _write_store(directory: Path, pods: list[dict[str, Any]]) -> None:
    """A utilisation store with known figures for execution-engine: CPU 100m..200m (p95 200m) of
    a 250m request, memory 256Mi..384Mi (peak 384Mi) of 512Mi."""
    start = datetime(2026, 1, 13, 8, 0, tzinfo=timezone.utc)
    with UsageStore.open(directory, create=True) as store:
        for i in range(40):
            t = start + timedelta(minutes=15 * i)
            cpu_m = 200 if i % 10 == 0 or i >= 36 else 100 + i  # the top 10 %: 200m
            memory = (384 if i == 20 else 256) * 2**20
            store.append_round([Sample(t, "prod", NS, p["metadata"]["name"], "engine", "execution-engine", "node-a",
                                       cpu_m * 10**6, memory, 250, 1000, 512 * 2**20, 2**30, "metrics-api")
                                for p in pods])


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimCluster]:
    d = tmp_path_factory.mktemp("source")
    with SimCluster(speed=0, node_objects=_source_nodes(), audit_log=d / "audit.log",
                    kubeconfig=d / "kubeconfig") as sim:
        target, api = load_target(kubeconfig=sim.kubeconfig, context=CONTEXT)
        try:
            twin.deploy_objects(Session(target, api, sim), _namespace_objects())
        finally:
            api.close()
        assert sim.clock is not None
        sim.clock.advance(30)  # past metrics-server's first window: the HPA acts on its minimum
        sim.settle()
        yield sim


class Twin:
    def __init__(self, sim: SimCluster, snapshot: twin.TwinSnapshot, reader_events: list[dict[str, Any]],
                 earlier_events: list[dict[str, Any]]) -> None:
        self.sim, self.snapshot, self.reader_events, self.earlier_events = sim, snapshot, reader_events, earlier_events


def _events(path: Path, start: int = 0, end: int | None = None) -> list[dict[str, Any]]:
    data = path.read_bytes()[start:end]
    return [json.loads(line) for line in data.decode().splitlines()]


@pytest.fixture(scope="module")
def the_twin(source: SimCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Twin]:
    d = tmp_path_factory.mktemp("twin")
    assert source.audit_log is not None and source.store is not None
    pods = source.store.list_objects(R.POD, NS, label_selector=f"{APP}=execution-engine")[0]
    _write_store(d / "usage", pods)
    before = source.audit_log.stat().st_size
    sim = SimCluster.from_context(CONTEXT, kubeconfig=source.kubeconfig, namespace=NS, usage_store=d / "usage",
                                  twin_kubeconfig=d / "kubeconfig")
    after = source.audit_log.stat().st_size
    with sim:
        yield Twin(sim, sim.snapshot, _events(source.audit_log, before, after), _events(source.audit_log, 0, before))


def _read(sim: SimCluster, path: str) -> list[dict[str, Any]]:
    target, api = load_target(kubeconfig=sim.kubeconfig, context=CONTEXT)
    try:
        return list_items(api, path, "", timeout=10)
    finally:
        api.close()


def _by_name(items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {i["metadata"]["name"]: i for i in items}


# --- the twin holds what the source holds ------------------------------------------------------------

@pytest.mark.sim
def test_the_twin_serves_the_sources_nodes(source: SimCluster, the_twin: Twin) -> None:
    src, tw = _by_name(_read(source, "/api/v1/nodes")), _by_name(_read(the_twin.sim, "/api/v1/nodes"))
    assert sorted(tw) == sorted(src) and len(tw) == 4
    for name, node in src.items():
        got = tw[name]
        assert got["metadata"]["labels"] == node["metadata"]["labels"]
        assert got["spec"].get("taints") == node["spec"].get("taints")
        assert got["spec"].get("unschedulable") == node["spec"].get("unschedulable")
        for key in ("capacity", "allocatable"):
            assert got["status"][key] == node["status"][key]
    zones = {n["metadata"]["labels"]["topology.kubernetes.io/zone"] for n in tw.values()}
    assert zones == {"us-central1-a", "us-central1-b"}
    assert tw["sim-n2-standard-8-3"]["spec"]["unschedulable"] is True


def _spec_of(items: list[dict[str, Any]]) -> dict[str, Any]:
    return {i["metadata"]["name"]: i.get("spec") for i in items}


@pytest.mark.sim
@pytest.mark.parametrize("path", [
    "/apis/apps/v1/namespaces/eafix-trading/statefulsets",
    "/apis/autoscaling/v2/namespaces/eafix-trading/horizontalpodautoscalers",
    "/apis/policy/v1/namespaces/eafix-trading/poddisruptionbudgets",
    "/api/v1/namespaces/eafix-trading/resourcequotas",
    "/api/v1/namespaces/eafix-trading/limitranges",
])
def test_the_twin_holds_the_same_objects(source: SimCluster, the_twin: Twin, path: str) -> None:
    src = _spec_of(_read(source, path))
    assert src and _spec_of(_read(the_twin.sim, path)) == src


@pytest.mark.sim
def test_the_twins_workloads_run_at_the_live_replicas(source: SimCluster, the_twin: Twin) -> None:
    src_hpa = _by_name(_read(source, "/apis/autoscaling/v2/namespaces/eafix-trading/horizontalpodautoscalers"))
    live = src_hpa["execution-engine"]["status"]["currentReplicas"]
    assert live == 3  # the HPA's minimum, above the Deployment's own 2
    assert the_twin.snapshot.hpa_replicas == {"execution-engine": 3}
    deploys = _by_name(_read(the_twin.sim, "/apis/apps/v1/namespaces/eafix-trading/deployments"))
    src_deploys = _by_name(_read(source, "/apis/apps/v1/namespaces/eafix-trading/deployments"))
    assert deploys["execution-engine"]["spec"] == src_deploys["execution-engine"]["spec"]
    assert deploys["execution-engine"]["spec"]["replicas"] == live
    pods = _read(the_twin.sim, "/api/v1/namespaces/eafix-trading/pods")
    running = sorted((p["metadata"]["labels"][APP], p["status"]["phase"]) for p in pods)
    assert running == [("execution-engine", "Running")] * 3 + [("postgres", "Running")]
    postgres = next(p for p in pods if p["metadata"]["name"] == "postgres-0")
    assert postgres["spec"]["nodeName"] == "sim-n2-standard-8-2"  # the tainted infra node, as in the source
    claims = _by_name(_read(the_twin.sim, "/api/v1/namespaces/eafix-trading/persistentvolumeclaims"))
    assert claims["data-postgres-0"]["status"]["phase"] == "Bound"
    assert claims["data-postgres-0"]["spec"]["storageClassName"] == "eafix-ssd"
    classes = _by_name(_read(the_twin.sim, "/apis/storage.k8s.io/v1/storageclasses"))
    assert classes["eafix-ssd"]["parameters"] == {"type": "pd-ssd"}
    namespace = _read(the_twin.sim, "/api/v1/namespaces")
    assert _by_name(namespace)[NS]["metadata"]["labels"]["eafix.io/desk"] == "fx"


@pytest.mark.sim
def test_the_reader_only_reads_the_source(the_twin: Twin) -> None:
    """The issue's proof: the source's audit log of the twin reader's requests holds only get,
    list and watch (the same log recorded the source's own set-up writes)."""
    verbs = {e["verb"] for e in the_twin.reader_events}
    assert verbs <= {"get", "list", "watch"} and "list" in verbs
    assert "patch" in {e["verb"] for e in the_twin.earlier_events}  # the set-up's server-side applies
    read = {(e["objectRef"].get("resource"), e["verb"]) for e in the_twin.reader_events}
    assert {("nodes", "list"), ("secrets", "list"), ("deployments", "list"), ("storageclasses", "list"),
            ("namespaces", "get")} <= read


@pytest.mark.sim
def test_secret_values_are_never_copied(source: SimCluster, the_twin: Twin) -> None:
    assert LIVE_SECRET not in repr(the_twin.snapshot)
    secrets = _by_name(_read(the_twin.sim, "/api/v1/namespaces/eafix-trading/secrets"))
    placeholder = base64.b64encode(b"REPLACE_ME").decode()
    assert secrets["postgres-credentials"]["data"] == {"password": placeholder, "user": placeholder}
    src = _by_name(_read(source, "/api/v1/namespaces/eafix-trading/secrets"))
    assert base64.b64decode(src["postgres-credentials"]["data"]["password"]).decode() == LIVE_SECRET


@pytest.mark.sim
def test_the_twins_metrics_follow_the_observed_usage(the_twin: Twin) -> None:
    sim = the_twin.sim
    assert sim.clock is not None
    sim.clock.advance(60)  # past a pod's first metrics window
    sim.settle()
    target, api = load_target(kubeconfig=sim.kubeconfig, context=CONTEXT)
    try:
        body = get_json(api, f"/apis/metrics.k8s.io/v1beta1/namespaces/{NS}/pods?labelSelector={APP}%3Dexecution-engine",
                        timeout=10)
    finally:
        api.close()
    assert len(body["items"]) == 3
    for item in body["items"]:
        usage = item["containers"][0]["usage"]
        cpu_m = int(usage["cpu"].removesuffix("n")) / 1e6
        memory = int(usage["memory"].removesuffix("Ki")) * 1024
        assert cpu_m == pytest.approx(250 * OBSERVED_CPU_SHARE, rel=0.09)  # the model's noise is 8 %
        assert memory == pytest.approx(512 * 2**20 * OBSERVED_MEMORY_SHARE, rel=0.03)


# --- the command line, and what is refused ---------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.sim
def test_sim_up_from_context_serves_the_twin(source: SimCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    port = _free_port()
    kubeconfig = tmp_path / "twin.kubeconfig"
    served: list[str] = []

    def serve_once(sim: SimCluster, *, ready: Any = None, cancel: Any = None) -> None:
        """run_forever, stopped once the banner is out and the twin has answered (no signal needed)."""
        try:
            ready()
            target, api = load_target(kubeconfig=kubeconfig, context=CONTEXT)
            try:
                served.extend(sorted(n["metadata"]["name"] for n in list_items(api, "/api/v1/nodes", "Node",
                                                                                 timeout=10)))
            finally:
                api.close()
        finally:
            sim.stop()

    monkeypatch.setattr(SimCluster, "run_forever", serve_once)
    assert cli.main(["sim", "up", "--from-context", CONTEXT, "--from-kubeconfig", str(source.kubeconfig),
                     "--port", str(port), "--kubeconfig", str(kubeconfig)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f'reading context "{CONTEXT}" (read-only) for its twin...'
    assert lines[1] == (f'twin of context "{CONTEXT}" at {source.url}: 4 nodes; namespace {NS}: 1 ConfigMap, '
                        "1 Deployment, 1 HorizontalPodAutoscaler, 1 LimitRange, 1 Namespace, 1 PersistentVolumeClaim, "
                        "1 PodDisruptionBudget, 1 ResourceQuota, 1 Secret, 1 Service, 1 ServiceAccount, "
                        "1 StatefulSet, 2 StorageClass")
    assert lines[2] == (f"sim cluster serving on http://127.0.0.1:{port} (4 x n2-standard-8 in us-central1-a, "
                        f"us-central1-b, context {CONTEXT})")
    assert lines[-1] == "Press Ctrl-C to stop."
    assert served == [f"sim-n2-standard-8-{i}" for i in range(4)]
    assert cli.main(["sim", "up", "--usage", str(tmp_path)]) == 2  # only with --from-context
    assert capsys.readouterr().err.strip().startswith("error: ")
    assert cli.main(["sim", "up", "--from-context", CONTEXT, "--nodes", "2"]) == 2
    assert "--nodes" in capsys.readouterr().err


@pytest.mark.sim
def test_a_missing_context_and_a_403_source_are_one_line_errors(source: SimCluster, tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ContextNotFound) as missing:
        SimCluster.from_context("prod-eu", kubeconfig=source.kubeconfig)
    assert "\n" not in str(missing.value) and 'context "prod-eu"' in str(missing.value)
    assert cli.main(["sim", "up", "--from-context", "prod-eu", "--from-kubeconfig", str(source.kubeconfig)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and "prod-eu" in err
    with SimCluster(nodes=1, speed=0, auth=True, system_pods=False, controllers=False,
                    kubeconfig=tmp_path / "admin.kubeconfig") as guarded:
        assert guarded.store is not None
        # bob may read namespaces (so the context loads) and nothing else
        guarded.store.create(R.CLUSTERROLE, {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                                             "metadata": {"name": "namespace-reader"},
                                             "rules": [{"apiGroups": [""], "resources": ["namespaces"],
                                                        "verbs": ["get"]}]})
        guarded.store.create(R.CLUSTERROLEBINDING, {
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": "bob"}, "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                                                     "name": "namespace-reader"},
            "subjects": [{"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "bob"}]})
        guarded.store.create(R.NAMESPACE, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
        doc = yaml.safe_load(Path(str(guarded.kubeconfig)).read_text(encoding="utf-8"))
        doc["users"][0]["user"]["token"] = guarded.issue_token("bob")
        bob = tmp_path / "bob.kubeconfig"
        bob.write_text(json.dumps(doc), encoding="utf-8")
        with pytest.raises(Forbidden) as refused:
            SimCluster.from_context(CONTEXT, kubeconfig=bob)
    text = str(refused.value)
    assert "\n" not in text
    target, api = load_target(kubeconfig=source.kubeconfig, context=CONTEXT)
    try:
        with pytest.raises(TargetError, match='namespace "eafix-nowhere" not found'):
            twin.read_snapshot(api, namespace="eafix-nowhere", target=target)
    finally:
        api.close()
    import kubernetes.client

    config = kubernetes.client.Configuration(host=f"http://127.0.0.1:{_free_port()}")  # nothing listens there
    config.retries = 0
    with kubernetes.client.ApiClient(config) as gone_api:
        with pytest.raises(Unreachable, match="cannot connect: .*Connection refused") as gone:
            twin.read_snapshot(gone_api)
    assert "\n" not in str(gone.value)
    assert ('403 Forbidden: nodes is forbidden: User "bob" cannot list resource "nodes" in API group "" at the '
            "cluster scope") in text


# --- pure pieces --------------------------------------------------------------------------------------

def test_a_snapshot_strips_what_the_server_sets_and_starts_hpa_targets_at_live_replicas() -> None:
    deploy = {"metadata": {"name": "web", "namespace": NS, "uid": "u1", "resourceVersion": "7", "generation": 3,
                           "creationTimestamp": "2026-01-01T00:00:00Z", "managedFields": [{"manager": "kubectl"}],
                           "annotations": {"deployment.kubernetes.io/revision": "4", "team": "fx"}},
              "spec": {"replicas": 2}, "status": {"replicas": 5}}
    hpa = {"metadata": {"name": "web-hpa", "namespace": NS},
           "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                    "minReplicas": 2, "maxReplicas": 9}, "status": {"currentReplicas": 5}}
    service = {"metadata": {"name": "web", "namespace": NS}, "spec": {"clusterIP": "10.0.0.9",
                                                                       "clusterIPs": ["10.0.0.9"], "ports": [{"port": 80}]}}
    secret = {"metadata": {"name": "pull", "namespace": NS, "annotations": {
        "kubectl.kubernetes.io/last-applied-configuration": '{"data":{"x":"c2VjcmV0"}}'}},
        "type": "kubernetes.io/dockerconfigjson", "data": {".dockerconfigjson": "eyJhdXRocyI6e319"}}
    token = {"metadata": {"name": "old-token", "namespace": NS}, "type": "kubernetes.io/service-account-token",
             "data": {"token": "dG9rZW4="}}
    snap = twin.snapshot_from_items(NS, {"metadata": {"name": NS, "uid": "n"}, "spec": {"finalizers": ["kubernetes"]}},
                                    [], {"deployments": [deploy], "hpas": [hpa], "services": [service],
                                         "secrets": [secret, token],
                                         "service_accounts": [{"metadata": {"name": "default", "namespace": NS}}]},
                                    [])
    assert snap.deployments[0] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                   "metadata": {"name": "web", "namespace": NS, "annotations": {"team": "fx"}},
                                   "spec": {"replicas": 2}}
    assert snap.hpa_replicas == {"web-hpa": 5} and "status" not in snap.hpas[0]
    web = next(o for o in snap.objects() if o["kind"] == "Deployment")
    assert web["spec"]["replicas"] == 5
    assert snap.services[0]["spec"] == {"ports": [{"port": 80}]}
    assert snap.namespace_object == {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}
    assert [s["metadata"]["name"] for s in snap.secrets] == ["pull"] and snap.service_accounts == ()
    assert snap.secrets[0]["data"] == {".dockerconfigjson": base64.b64encode(b"{}").decode()}
    assert "c2VjcmV0" not in repr(snap) and "eyJhdXRocyI6e319" not in repr(snap)


def test_the_observed_usage_model_takes_p95_cpu_and_peak_memory_per_service(tmp_path: Path) -> None:
    pods = [{"metadata": {"name": "execution-engine-0"}}]
    _write_store(tmp_path / "usage", pods)
    model = twin.observed_usage_model(tmp_path / "usage")
    engine = model.services["execution-engine"]
    assert (engine.cpu, engine.memory, engine.cpu_session, engine.memory_session) == (
        pytest.approx(OBSERVED_CPU_SHARE), pytest.approx(OBSERVED_MEMORY_SHARE), 0.0, 0.0)
    assert model.services["redis"].cpu == 0.30  # not observed: the shipped model's entry
    with pytest.raises(Exception, match="usage.sqlite"):
        twin.observed_usage_model(tmp_path / "nowhere")


# --- without a live cluster: the plan's twin -----------------------------------------------------------

@pytest.mark.sim
def test_without_a_cluster_the_twin_is_the_plan_deployed_on_its_node_pool(tmp_path: Path) -> None:
    from eafix_capacity.cluster import notebook as nb03
    from eafix_capacity.inputs import PlanParams, plan_from_params

    plan = plan_from_params(PlanParams(node_type="e2-standard-8"))
    rendered = nb03.render_objects(nb03.NotebookParams(profile=plan.profile.name, node_type=plan.node_type.name))
    want = {o["metadata"]["name"]: o["spec"].get("replicas", 1) for o in rendered
            if o["kind"] in ("Deployment", "StatefulSet")}
    session = twin.plan_twin(plan)
    try:
        assert session.sim is not None and session.sim.clock is not None
        assert session.sim.clock.speed == 0  # frozen: the rehearsals move it on
        snapshot = twin.read_snapshot(session.api, namespace=NS, target=session.target)
        nodes = _read(session.sim, "/api/v1/nodes")
    finally:
        session.close()
    assert len(snapshot.nodes) == plan.nodes
    assert {n["metadata"]["labels"]["node.kubernetes.io/instance-type"] for n in nodes} == {"e2-standard-8"}
    got = {o["metadata"]["name"]: o["spec"].get("replicas", 1) for o in (*snapshot.deployments,
                                                                           *snapshot.stateful_sets)}
    hpa_targets = {h["spec"]["scaleTargetRef"]["name"]: snapshot.hpa_replicas.get(h["metadata"]["name"])
                   for h in snapshot.hpas}
    assert sorted(got) == sorted(want)
    assert {k: v for k, v in got.items() if k not in hpa_targets} == {k: v for k, v in want.items()
                                                                      if k not in hpa_targets}
    assert all(got[name] == replicas for name, replicas in hpa_targets.items())
    assert snapshot.pdbs and snapshot.resource_quotas and snapshot.secrets
