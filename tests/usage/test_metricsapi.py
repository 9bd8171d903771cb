"""The metrics.k8s.io source: the sim's PodMetrics and NodeMetrics through the official client, and bad answers.

The sim serves metrics.k8s.io as metrics-server does; a cluster without it is a bare API
server in the test, answering kube-apiserver's 404 for the group.
"""
from __future__ import annotations

import json
import threading
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterator

import pytest

from eafix_capacity.cluster.context import load_target
from eafix_capacity.sim.cluster import SimCluster
from eafix_capacity.sim.testing import frozen_sim_module, kubectl_on, sim_cluster_module
from eafix_capacity.usage.kubectltop import MetricsApiUnavailable, Round
from eafix_capacity.usage.metricsapi import parse_node_metrics, parse_pod_metrics, sample_metrics_api
from eafix_capacity.usage.topparse import TopParseError, cpu_nanocores, memory_bytes

__all__ = ["frozen_sim_module", "sim_cluster_module"]   # the module-scoped sim, imported as fixtures

NS = "eafix-trading"
MI = 2**20
DEPLOYMENT = """---
apiVersion: v1
kind: Namespace
metadata: {name: %(ns)s}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: %(name)s, namespace: %(ns)s}
spec:
  replicas: 2
  selector: {matchLabels: {app.kubernetes.io/name: %(name)s}}
  template:
    metadata: {labels: {app.kubernetes.io/name: %(name)s}}
    spec:
      containers:
      - name: app
        image: eafix/%(name)s:1.0
        resources: {requests: {cpu: 300m, memory: 512Mi}, limits: {cpu: '1', memory: 1Gi}}
"""


@pytest.fixture(scope="module")
def client(frozen_sim_module: SimCluster) -> Iterator[tuple[SimCluster, Any]]:
    kubectl_on(frozen_sim_module, "apply", "-f", "-", stdin=DEPLOYMENT % {"ns": NS, "name": "risk-manager"})
    frozen_sim_module.settle()
    assert frozen_sim_module.clock is not None
    frozen_sim_module.clock.advance(20)
    _, api_client = load_target(kubeconfig=frozen_sim_module.kubeconfig, context="eafix-sim")
    yield frozen_sim_module, api_client
    api_client.close()


def _run(sim: SimCluster, api_client: Any, *, namespace: str | None, samples: int) -> tuple[Any, list[Round], list]:
    assert sim.clock is not None
    rounds: list[Round] = []
    api: list[dict] = []

    def keep(r: Round) -> None:
        rounds.append(r)
        api.append(sim.controllers.metrics_list("pods", namespace, None, None))

    result = sample_metrics_api(api_client, context="eafix-sim", namespace=namespace, interval=15, samples=samples,
                                quiet=True, clock=sim.clock.now, sleep=sim.clock.advance, on_round=keep)
    return result, rounds, api


@pytest.mark.sim
def test_two_rounds_carry_the_metrics_apis_exact_figures_and_timestamps(client: tuple[SimCluster, Any]) -> None:
    sim, api_client = client
    result, rounds, api = _run(sim, api_client, namespace=NS, samples=2)
    assert (result.rounds, result.interrupted, result.missing, result.samples) == (2, False, 0, 4)
    assert rounds[1].timestamp - rounds[0].timestamp == timedelta(seconds=15)
    for r, body in zip(rounds, api):
        exact = {(i["metadata"]["name"], c["name"]): (cpu_nanocores(c["usage"]["cpu"]),
                                                      memory_bytes(c["usage"]["memory"]))
                 for i in body["items"] for c in i["containers"]}
        assert {(s.pod, s.container): (s.cpu_nanocores, s.memory_bytes) for s in r.samples} == exact
        for s in r.samples:   # the PodMetrics' own timestamp: the scrape's, metav1.Time to the second
            assert (s.timestamp, s.source, s.service, s.namespace) == (
                r.timestamp.replace(microsecond=0), "metrics-api", "risk-manager", NS)
            assert (s.cpu_request_m, s.cpu_limit_m, s.memory_request_bytes, s.memory_limit_bytes) == (
                300, 1000, 512 * MI, 2**30)
            assert s.node.startswith("sim-n2-standard-8-")
        assert sorted(n.node for n in r.nodes) == [f"sim-n2-standard-8-{i}" for i in range(3)]
        assert all(n.cpu_nanocores and n.memory_bytes and n.source == "metrics-api" for n in r.nodes)


@pytest.mark.sim
def test_a_pod_without_metrics_is_a_missing_sample(client: tuple[SimCluster, Any]) -> None:
    sim, api_client = client
    kubectl_on(sim, "apply", "-f", "-", stdin=DEPLOYMENT % {"ns": "late", "name": "late-svc"})
    sim.settle()
    result, rounds, _ = _run(sim, api_client, namespace=None, samples=1)
    late = [s for s in rounds[0].samples if s.namespace == "late"]
    assert len(late) == 2 and all(s.missing and s.cpu_request_m == 300 for s in late)
    assert result.missing == 2 and rounds[0].notes == []
    assert all(not s.missing for s in rounds[0].samples if s.namespace == NS)
    result, rounds, _ = _run(sim, api_client, namespace="late", samples=1)
    assert result.missing == 2 and rounds[0].notes == [
        "metrics.k8s.io has no PodMetrics yet (metrics not available yet)"]


class _BareApi(BaseHTTPRequestHandler):
    """kube-apiserver without metrics-server: 404 for every metrics.k8s.io path."""

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        data = json.dumps({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                           "message": "the server could not find the requested resource", "reason": "NotFound",
                           "details": {}, "code": 404}).encode()
        self.send_response(404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def test_a_404_on_the_group_is_metrics_api_not_available() -> None:
    import kubernetes.client

    server = ThreadingHTTPServer(("127.0.0.1", 0), _BareApi)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    configuration = kubernetes.client.Configuration()
    configuration.host = url
    configuration.retries = 0
    api_client = kubernetes.client.ApiClient(configuration)
    try:
        with pytest.raises(MetricsApiUnavailable) as e:
            sample_metrics_api(api_client, context="bare-cluster", samples=3, quiet=True, on_round=lambda r: None)
    finally:
        api_client.close()
        server.shutdown()
        server.server_close()
        thread.join()
    assert str(e.value).startswith(f'context "bare-cluster": {url}: Metrics API not available: GET '
                                   "/apis/metrics.k8s.io/v1beta1/pods: the server could not find the requested "
                                   "resource; install metrics-server (")
    assert e.value.status == 404


# --- pure: metrics-server's own shapes and bad ones -----------------------------------------------

NODE_METRICS = {   # metrics-server's answer as documented (kubectl get --raw /apis/metrics.k8s.io/v1beta1/nodes/ub18)
    "kind": "NodeMetricsList", "apiVersion": "metrics.k8s.io/v1beta1", "metadata": {},
    "items": [{"metadata": {"name": "ub18", "creationTimestamp": "2023-03-03T04:38:08Z"},
               "timestamp": "2023-03-03T04:37:54Z", "window": "20.064s",
               "usage": {"cpu": "329087452n", "memory": "2748180Ki"}}]}


def _pod_metrics(cpu: object = "123456789n", memory: object = "12345Ki", timestamp: object = "2026-01-14T06:00:05Z"
                 ) -> dict:
    return {"kind": "PodMetricsList", "apiVersion": "metrics.k8s.io/v1beta1", "metadata": {},
            "items": [{"metadata": {"name": "web-1", "namespace": "shop"}, "timestamp": timestamp, "window": "15.01s",
                       "containers": [{"name": "app", "usage": {"cpu": cpu, "memory": memory}}]}]}


def test_metrics_server_units_are_read_exactly() -> None:
    [node] = parse_node_metrics(NODE_METRICS, source="nodes")
    assert (node.node, node.cpu_nanocores, node.memory_bytes) == ("ub18", 329087452, 2748180 * 1024)
    [pod], times = parse_pod_metrics(_pod_metrics(timestamp="2026-01-14T06:00:05.123456Z"), source="pods")
    assert (pod.namespace, pod.pod, pod.container, pod.cpu_nanocores, pod.memory_bytes) == (
        "shop", "web-1", "app", 123456789, 12345 * 1024)
    assert times[("shop", "web-1")] == datetime(2026, 1, 14, 6, 0, 5, 123456, tzinfo=timezone.utc)


@pytest.mark.parametrize("doc,message", [
    (_pod_metrics(cpu="12 cores"), "pods: PodMetrics shop/web-1: container app: usage.cpu: not a CPU figure "
                                   "'12 cores'; a CPU figure is"),
    (_pod_metrics(memory="1.5GB"), "pods: PodMetrics shop/web-1: container app: usage.memory: not a memory figure "
                                   "'1.5GB'; a memory figure is"),
    (_pod_metrics(timestamp="yesterday"), "pods: PodMetrics shop/web-1: timestamp is not an RFC 3339 time "
                                          "'yesterday'; e.g. 2026-01-14T06:00:00Z"),
    ({"kind": "Status"}, "pods: not a PodMetricsList (no items list of objects); the JSON of GET "
                         "/apis/metrics.k8s.io/v1beta1/pods"),
])
def test_bad_pod_metrics_are_one_line_errors(doc: object, message: str) -> None:
    with pytest.raises(TopParseError) as e:
        parse_pod_metrics(doc, source="pods")
    assert str(e.value).startswith(message)
