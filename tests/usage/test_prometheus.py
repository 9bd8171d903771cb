"""The Prometheus source against a REAL Prometheus: the sim's history (``sim history``)
backfilled with promtool and queried back, the sim's scrape endpoints scraped, and every
failure the source reports (down, 4xx, 5xx, empty, partial, TLS and token) against
Prometheus itself or a small stub."""
from __future__ import annotations

import http.server
import json
import ssl
import subprocess
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Iterator
from urllib.parse import parse_qs, urlsplit

import pytest
import urllib3

from eafix_capacity.cli import main as cli_main
from eafix_capacity.sim import resources as R
from eafix_capacity.sim.auth import serving_cert
from eafix_capacity.sim.cluster import SimCluster
from eafix_capacity.sim.history import pods_of_sim
from eafix_capacity.sim.scrape import cpu_seconds_counter
from eafix_capacity.sim.testing import frozen_sim_module, sim_cluster_module
from eafix_capacity.sim.usage_model import UsageModel, load_usage_model, memory_bytes
from eafix_capacity.usage import openmetrics, prometheus as P

from .promhelpers import RealPrometheus, binaries, free_port

__all__ = ["frozen_sim_module", "sim_cluster_module"]

STEP = timedelta(seconds=60)
MODEL_YAML = """\
seed: 7
noise: 0.08
sessions:
  london: {open: "08:00", close: "16:30"}
services:
  default: {cpu: 0.3, memory: 0.55, cpu_session: 0.6, memory_session: 0.2}
  hungry: {cpu: 0.5, memory: 0.995, cpu_session: 0.0, memory_session: 0.0}
"""
"""``hungry`` wants 0.995 of its request (= its limit), give or take 2% noise: over its limit
(an OOM kill) about a third of the steps, whatever the day."""


def pod(name: str, service: str, requests: dict, limits: dict) -> dict:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "hist", "labels": {"app.kubernetes.io/name": service}},
            "spec": {"containers": [{"name": "main", "image": f"eafix/{service}:1",
                                     "resources": {"requests": requests, "limits": limits}}]}}


@pytest.fixture(scope="module")
def deployed(frozen_sim_module: SimCluster) -> SimCluster:
    """Two pods in namespace ``hist`` of the module's (frozen) sim, running and measured."""
    sim = frozen_sim_module
    http = urllib3.PoolManager()
    r = http.request("POST", f"{sim.url}/api/v1/namespaces",
                     json={"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "hist"}})
    assert r.status == 201, r.data
    for p in (pod("quote-0", "quote-api", {"cpu": "250m", "memory": "256Mi"}, {"cpu": "1", "memory": "512Mi"}),
              pod("hungry-0", "hungry", {"cpu": "100m", "memory": "128Mi"}, {"memory": "128Mi"})):
        r = http.request("POST", f"{sim.url}/api/v1/namespaces/hist/pods", json=p)
        assert r.status == 201, r.data
    r = http.request("POST", f"{sim.url}/api/v1/namespaces/kube-system/services", json={
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "kube-state-metrics", "namespace": "kube-system"},
        "spec": {"ports": [{"name": "http-metrics", "port": 8080}]}})
    assert r.status == 201, r.data
    sim.settle()
    assert sim.clock is not None
    sim.clock.advance(30)  # past metrics-server's first resolution: the pods are measured
    sim.settle()
    return sim


def scrape_config(sim: SimCluster) -> str:
    """Prometheus scraping the sim every second: each node's cAdvisor and kube-state-metrics,
    through the API server's proxy paths, as a Prometheus outside a cluster scrapes it."""
    assert sim.store is not None
    host = sim.url.removeprefix("http://")
    jobs = [f"""\
  - job_name: cadvisor-{n["metadata"]["name"]}
    metrics_path: /api/v1/nodes/{n["metadata"]["name"]}/proxy/metrics/cadvisor
    static_configs: [{{targets: ["{host}"], labels: {{node: {n["metadata"]["name"]}}}}}]
""" for n in sim.store.list_objects(R.NODE)[0]]
    return f"""\
global: {{scrape_interval: 1s, scrape_timeout: 1s}}
scrape_configs:
{"".join(jobs)}  - job_name: kube-state-metrics
    metrics_path: /api/v1/namespaces/kube-system/services/kube-state-metrics:http-metrics/proxy/metrics
    static_configs: [{{targets: ["{host}"]}}]
"""


@dataclass
class Backfilled:
    """The sim's history written by ``sim history``, backfilled with promtool, served by a real Prometheus."""

    prom: RealPrometheus
    pods: list[dict]
    model: UsageModel
    start: datetime
    end: datetime

    def expected(self, t: datetime, pod_name: str) -> tuple[int, int, bool]:
        """The model's (cpu nanocores, working set capped at the limit, OOM-killed) at ``t``."""
        info = next(i for i in openmetrics.containers_of(self.pods) if i.pod == pod_name)
        cpu, mem = self.model.usage(info.labels, info.container, info.requests, info.limits, t, key=info.key,
                                    clamp=False)
        limit = memory_bytes(info.limits["memory"])
        return cpu, min(mem, limit), mem > limit


@pytest.fixture(scope="module")
def backfilled(deployed: SimCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backfilled]:
    prom_bin, promtool = binaries()
    where = tmp_path_factory.mktemp("prom-history")
    model_file = where / "usage-model.yaml"
    model_file.write_text(MODEL_YAML)
    out = where / "history.om"
    code = cli_main(["sim", "history", "--kubeconfig", str(deployed.kubeconfig), "--namespace", "hist",
                     "--days", "1", "--step", "60s", "--out", str(out), "--usage-model", str(model_file)])
    assert code == 0
    with out.open() as f:
        first = next(line for line in f if line.startswith("container_cpu_usage_seconds_total"))
    start = datetime.fromtimestamp(int(first.split()[-1]), timezone.utc)
    tsdb = where / "tsdb"
    subprocess.run([promtool, "tsdb", "create-blocks-from", "openmetrics", "--max-block-duration=24h",
                    str(out), str(tsdb)], check=True, capture_output=True, timeout=60)
    # the same Prometheus scrapes the sim now: its samples are hours after the history's window
    prom = RealPrometheus(prom_bin, where, tsdb=tsdb, config=scrape_config(deployed))
    assert deployed.store is not None
    pods = [dict(p) for p in deployed.store.list_objects(R.POD, "hist")[0]]
    try:
        yield Backfilled(prom, pods, load_usage_model(model_file), start, start + timedelta(days=1))
    finally:
        prom.stop()


# --- the history, read back through a real Prometheus ----------------------------------------------


def test_history_reads_back_the_usage_models_figures(backfilled: Backfilled) -> None:
    b = backfilled
    result = P.read_prometheus(b.prom.url, context="hist-ctx", end=b.end, window=b.end - b.start, step=STEP)
    steps = 24 * 60 + 1
    assert len(result.samples) == 2 * steps
    assert result.queries == 8  # one page per query: 1,441 points is under the 11,000 limit
    by_pod: dict[str, list[Any]] = {}
    for s in result.samples:
        by_pod.setdefault(s.pod, []).append(s)
    for name, service in (("quote-0", "quote-api"), ("hungry-0", "hungry")):
        samples = by_pod[name]
        assert [s.timestamp for s in samples] == [b.start + k * STEP for k in range(steps)]
        # rate() needs two points: the first step has no CPU figure, a missing sample (never 0)
        assert samples[0].cpu_nanocores is None and samples[0].memory_bytes is not None
        for s in samples:
            cpu, mem, _ = b.expected(s.timestamp, name)
            assert s.memory_bytes == mem, s
            if s is not samples[0]:
                # rate over [t-60s, t] holds exactly the points at t-60s and t (no extrapolation): the
                # counter's increase, cpu(t) x 60 s, over 60 s; the counter's decimal text parses to a
                # float64 within 4e-12 s (ulp of ~2e4 s), so the rate is within 1e-13 core of cpu(t)
                assert s.cpu_nanocores == cpu, s
            assert (s.service, s.node, s.context, s.container) == (service, samples[0].node, "hist-ctx", "main")
            assert s.node.startswith("sim-")
    quote = by_pod["quote-0"][5]
    assert (quote.cpu_request_m, quote.cpu_limit_m, quote.memory_request_bytes, quote.memory_limit_bytes) == (
        250, 1000, 256 * 2**20, 512 * 2**20)
    hungry = by_pod["hungry-0"][5]
    assert (hungry.cpu_request_m, hungry.cpu_limit_m, hungry.memory_limit_bytes) == (100, None, 128 * 2**20)


def test_history_oom_kills_are_terminations_at_the_limit(backfilled: Backfilled) -> None:
    b = backfilled
    result = P.read_prometheus(b.prom.url, end=b.end, window=b.end - b.start, step=STEP)
    kills = [b.start + k * STEP for k in range(24 * 60 + 1) if b.expected(b.start + k * STEP, "hungry-0")[2]]
    assert len(kills) > 50  # the model drives hungry over its limit about a third of the time
    assert [t.timestamp for t in result.terminations] == kills
    assert {(t.pod, t.container, t.reason, t.memory_limit_bytes, t.service) for t in result.terminations} == {
        ("hungry-0", "main", "OOMKilled", 128 * 2**20, "hungry")}
    assert [t.restart_count for t in result.terminations] == list(range(1, len(kills) + 1))
    capped = {s.timestamp: s.memory_bytes for s in result.samples if s.pod == "hungry-0"}
    assert all(capped[t] == 128 * 2**20 for t in kills)


def test_pages_keep_every_query_under_prometheus_limit(backfilled: Backfilled) -> None:
    b = backfilled
    step = timedelta(seconds=5)  # 17,281 points over the day: over the limit, so two pages
    assert P.pages(b.start, b.end, step) == [(b.start, b.start + 10_999 * step), (b.start + 11_000 * step, b.end)]
    query = 'container_memory_working_set_bytes{namespace="hist",pod="quote-0"}'
    source = P.PrometheusSource(b.prom.url)
    [series] = source.query_range(query, start=b.start, end=b.end, step=step)
    assert source.queries_sent == 2
    assert sorted(series.points) == P.grid(b.start, b.end, step)
    # a gauge between the history's points reads its last point (Prometheus' 5-minute lookback)
    for k in [*range(10_990, 11_010), *range(0, 17_281, 997)]:
        t = b.start + k * step
        assert series.points[t.timestamp()] == b.expected(b.start + (k * step) // STEP * STEP, "quote-0")[1], k
    # the same query in one request: refused by Prometheus itself, named in one line
    with pytest.raises(P.PrometheusHTTPError) as e:
        P.PrometheusSource(b.prom.url, max_points=20_000).query_range(query, start=b.start, end=b.end, step=step,
                                                                      what="memory")
    assert e.value.status == 400 and e.value.error_type == "bad_data"
    assert str(e.value) == (f"Prometheus at {b.prom.url} answered 400 Bad Request to the memory query: bad_data: "
                            "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query "
                            "resolution (?step=XX)")


def test_a_bad_query_is_prometheus_own_error(backfilled: Backfilled) -> None:
    with pytest.raises(P.PrometheusHTTPError) as e:
        P.PrometheusSource(backfilled.prom.url).query_range(
            "rate(container_cpu_usage_seconds_total)", start=backfilled.start, end=backfilled.end, step=STEP,
            what="cpu")
    assert e.value.status == 400 and e.value.error_type == "bad_data"
    assert "range vector" in e.value.error and "\n" not in str(e.value)


def test_a_window_without_samples_is_an_error(backfilled: Backfilled) -> None:
    b = backfilled
    before = b.start - timedelta(days=2)
    with pytest.raises(P.NoSamples) as e:
        P.read_prometheus(b.prom.url, end=before, window=timedelta(hours=6), step=STEP)
    assert str(e.value).startswith(f"Prometheus at {b.prom.url} has no container usage samples in the window ")
    with pytest.raises(P.NoSamples, match="for namespace nowhere"):
        P.read_prometheus(b.prom.url, end=b.end, window=timedelta(hours=1), step=STEP, namespace="nowhere")


def test_scrape_endpoints_refuse_what_a_real_api_server_refuses(deployed: SimCluster) -> None:
    http = urllib3.PoolManager()
    r = http.request("GET", f"{deployed.url}/api/v1/nodes/no-such-node/proxy/metrics/cadvisor")
    assert r.status == 404 and json.loads(r.data)["message"] == 'nodes "no-such-node" not found'
    r = http.request("GET", f"{deployed.url}/api/v1/namespaces/hist/services/kube-state-metrics:http/proxy/metrics")
    assert r.status == 404 and json.loads(r.data)["message"] == 'services "kube-state-metrics" not found'
    r = http.request("GET", f"{deployed.url}/api/v1/namespaces/default/services/https:kubernetes:443/proxy/metrics")
    assert r.status == 503 and json.loads(r.data)["message"] == 'no endpoints available for service "kubernetes"'
    assert deployed.store is not None
    node = deployed.store.list_objects(R.NODE)[0][0]["metadata"]["name"]
    r = http.request("GET", f"{deployed.url}/api/v1/nodes/{node}/proxy/stats/summary")
    assert (r.status, r.data) == (404, b"404 page not found\n")  # the kubelet serves only what the sim models


def test_pods_of_a_sim_in_python(deployed: SimCluster) -> None:
    assert sorted(p["metadata"]["name"] for p in pods_of_sim(deployed, namespace="hist")) == ["hungry-0", "quote-0"]
    assert len(pods_of_sim(deployed)) > 2  # the system DaemonSets' pods too


def test_cadvisor_counter_is_monotonic_and_memoised_to_the_same_figures() -> None:
    model = load_usage_model()
    p = pod("c-0", "quote-api", {"cpu": "250m", "memory": "256Mi"}, {"cpu": "1", "memory": "512Mi"})
    p["status"] = {"startTime": "2026-01-14T12:00:00Z"}
    container = p["spec"]["containers"][0]
    start = datetime(2026, 1, 14, 12, 0, tzinfo=timezone.utc)
    counters: dict[tuple[str, str], tuple[int, int]] = {}
    last = 0
    for k in range(1, 12):
        t = start + k * timedelta(seconds=7)
        value = cpu_seconds_counter(p, container, model, t, counters)
        assert value == cpu_seconds_counter(p, container, model, t)  # the memo changes nothing
        grid = [start + timedelta(seconds=15 * g) for g in range(1, int(k * 7 // 15) + 1)]
        assert value == sum(model.usage(p["metadata"]["labels"], "main", container["resources"]["requests"],
                                        container["resources"]["limits"], g, key="hist/c-0")[0] * 15 for g in grid)
        assert value >= last
        last = value
    assert last > 0


# --- failures, against a closed port and a stub ------------------------------------------------------


def test_prometheus_down_names_the_url() -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there any more
    with pytest.raises(P.PrometheusUnreachable) as e:
        P.read_prometheus(url, window=timedelta(hours=1))
    assert str(e.value) == (f"Prometheus at {url} is unreachable (connection refused); is it running and is "
                            "--prometheus right?")


class Stub:
    """A tiny HTTP(S) server answering ``/api/v1/query_range`` with ``answer(query) -> (status, body)``."""

    def __init__(self, answer: Callable[[str], tuple[int, bytes]], *, tls: ssl.SSLContext | None = None) -> None:
        self.headers: list[dict[str, str]] = []
        stub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - BaseHTTPRequestHandler's name
                stub.headers.append({k.lower(): v for k, v in self.headers.items()})
                query = parse_qs(urlsplit(self.path).query).get("query", [""])[0]
                status, body = answer(query)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                return

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture()
def stub() -> Iterator[Callable[..., Stub]]:
    made: list[Stub] = []

    def make(answer: Callable[[str], tuple[int, bytes]], **kw: Any) -> Stub:
        made.append(Stub(answer, **kw))
        return made[-1]

    yield make
    for s in made:
        s.close()


END = datetime(2026, 1, 14, 12, 0, tzinfo=timezone.utc)
T0 = END.timestamp() - 180


def matrix(series: list[tuple[dict, list[tuple[float, str]]]]) -> bytes:
    return json.dumps({"status": "success", "data": {"resultType": "matrix", "result": [
        {"metric": m, "values": [[ts, v] for ts, v in values]} for m, values in series]}}).encode()


def partial(query: str) -> tuple[int, bytes]:
    """cpu with a gap at T0+60 and NaN at T0+180; memory at every step; nothing else."""
    who = {"namespace": "ns", "pod": "p-0", "container": "c", "app_kubernetes_io_name": "svc"}
    if "container_cpu_usage_seconds_total" in query:
        return 200, matrix([(who, [(T0, "0.25"), (T0 + 120, "0.5"), (T0 + 180, "NaN")])])
    if "container_memory_working_set_bytes" in query:
        return 200, matrix([(who, [(T0 + k * 60, str(1000 + k)) for k in range(4)])])
    return 200, matrix([])


def test_a_partial_series_gives_missing_samples_and_empty_ones_warnings(stub: Callable[..., Stub]) -> None:
    s = stub(partial)
    result = P.read_prometheus(s.url, end=END, window=timedelta(minutes=3), step=STEP)
    assert [(x.timestamp.timestamp() - T0, x.cpu_nanocores, x.memory_bytes) for x in result.samples] == [
        (0, 250_000_000, 1000), (60, None, 1001), (120, 500_000_000, 1002), (180, None, 1003)]
    assert {(x.service, x.cpu_request_m, x.memory_limit_bytes, x.node) for x in result.samples} == {
        ("svc", None, None, "")}
    gaps = [w for w in result.warnings if w.startswith("no ")]
    assert [w.split(" series")[0] for w in gaps] == ["no requests", "no limits", "no labels", "no info"]
    assert all(w.endswith("recorded as a gap") for w in gaps)


def test_every_series_empty_is_an_error(stub: Callable[..., Stub]) -> None:
    s = stub(lambda q: (200, matrix([])))
    with pytest.raises(P.NoSamples) as e:
        P.read_prometheus(s.url, end=END, window=timedelta(minutes=3), step=STEP)
    assert str(e.value) == (f"Prometheus at {s.url} has no container usage samples in the window "
                            "2026-01-14T11:57:00Z .. 2026-01-14T12:00:00Z: every cpu and memory series is empty "
                            "(is cAdvisor scraped?)")


def test_5xx_names_status_and_prometheus_error(stub: Callable[..., Stub]) -> None:
    s = stub(lambda q: (503, b'{"status":"error","errorType":"unavailable","error":"TSDB not ready"}'))
    with pytest.raises(P.PrometheusHTTPError) as e:
        P.read_prometheus(s.url, end=END, window=timedelta(minutes=3), step=STEP)
    assert str(e.value) == (f"Prometheus at {s.url} answered 503 Service Unavailable to the cpu query: "
                            "unavailable: TSDB not ready")
    s = stub(lambda q: (502, b"<html><body>\nBad Gateway</body></html>"))
    with pytest.raises(P.PrometheusHTTPError) as e:
        P.read_prometheus(s.url, end=END, window=timedelta(minutes=3), step=STEP)
    assert str(e.value) == f"Prometheus at {s.url} answered 502 Bad Gateway to the cpu query: <html><body>"


def test_bearer_token_and_ca_file_are_used(stub: Callable[..., Stub], tmp_path: Path) -> None:
    cert = serving_cert()
    (tmp_path / "tls.crt").write_bytes(cert.cert_pem + cert.ca_pem)
    (tmp_path / "tls.key").write_bytes(cert.key_pem)
    (tmp_path / "ca.crt").write_bytes(cert.ca_pem)
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(tmp_path / "tls.crt", tmp_path / "tls.key")
    s = stub(partial, tls=tls)
    result = P.read_prometheus(s.url, token="s3cret-token", ca_file=str(tmp_path / "ca.crt"), end=END,
                               window=timedelta(minutes=3), step=STEP)
    assert len(result.samples) == 4
    assert {h.get("authorization") for h in s.headers} == {"Bearer s3cret-token"}
    (tmp_path / "token").write_text("from-a-file\n")
    s.headers.clear()
    P.read_prometheus(s.url, token_file=str(tmp_path / "token"), ca_file=str(tmp_path / "ca.crt"), end=END,
                      window=timedelta(minutes=3), step=STEP)
    assert {h.get("authorization") for h in s.headers} == {"Bearer from-a-file"}
    with pytest.raises(ValueError, match="cannot read the CA bundle"):
        P.PrometheusSource(s.url, ca_file=str(tmp_path / "missing.crt"))
    sent = len(s.headers)
    with pytest.raises(P.PrometheusUnreachable) as e:  # the system's CAs do not know the stub's
        P.read_prometheus(s.url, end=END, window=timedelta(minutes=3), step=STEP)
    assert str(e.value).startswith(f"Prometheus at {s.url}: TLS failed (") and "--ca-file" in str(e.value)
    assert len(s.headers) == sent  # no request was sent without TLS


def test_no_token_sends_no_authorization(stub: Callable[..., Stub]) -> None:
    s = stub(partial)
    P.read_prometheus(s.url, end=END, window=timedelta(minutes=3), step=STEP)
    assert s.headers and all("authorization" not in h for h in s.headers)


def test_basic_auth_in_the_url_is_sent_and_never_shown(stub: Callable[..., Stub]) -> None:
    s = stub(lambda q: (401, b"Unauthorized\n"))
    with_user = s.url.replace("http://", "http://admin:pa%40ss@")
    with pytest.raises(P.PrometheusHTTPError) as e:
        P.read_prometheus(with_user, end=END, window=timedelta(minutes=3), step=STEP)
    assert str(e.value) == f"Prometheus at {s.url} answered 401 Unauthorized to the cpu query: Unauthorized"
    assert s.headers[0]["authorization"] == "Basic YWRtaW46cGFAc3M="  # admin:pa@ss


# --- pure parts --------------------------------------------------------------------------------------


def test_pages_cover_the_window_on_one_grid() -> None:
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    step = timedelta(seconds=75)
    end = start + 25_000 * step
    got = P.pages(start, end, step)
    assert got == [(start, start + 10_999 * step), (start + 11_000 * step, start + 21_999 * step),
                   (start + 22_000 * step, end)]
    assert P.pages(start, start, step) == [(start, start)]
    assert P.pages(start, start + 10_999 * step, step) == [(start, start + 10_999 * step)]
    with pytest.raises(ValueError, match="must be positive"):
        P.pages(start, end, timedelta(0))
    with pytest.raises(ValueError, match="ends before it starts"):
        P.pages(end, start, step)


def test_krr_queries() -> None:
    q = P.queries(step=P.DEFAULT_STEP, namespace="eafix-trading")
    assert q["cpu"].endswith('(rate(container_cpu_usage_seconds_total{container!="",container!="POD",'
                             'namespace="eafix-trading"}[75s]))')
    assert 'kube_pod_container_status_last_terminated_reason{reason="OOMKilled",namespace="eafix-trading"}' in q["oom"]
    assert P.DEFAULT_WINDOW == timedelta(days=14) and P.DEFAULT_STEP == timedelta(minutes=1, seconds=15)


def test_history_text_is_openmetrics_ending_in_eof() -> None:
    pods = [pod("a-0", "svc", {"cpu": "250m", "memory": "64Mi"}, {"memory": "64Mi"})]
    pods[0]["spec"]["nodeName"] = "n1"
    start = datetime(2026, 1, 14, 12, 0, tzinfo=timezone.utc)
    model = load_usage_model()
    text = openmetrics.history_text(pods, model, start=start, end=start + 2 * STEP, step=STEP)
    assert text.endswith("\n# EOF\n")
    counter = [float(line.split()[1]) for line in text.splitlines()
               if line.startswith("container_cpu_usage_seconds_total{")]
    cpus = [model.usage({"app.kubernetes.io/name": "svc"}, "main", {"cpu": "250m", "memory": "64Mi"},
                        {"memory": "64Mi"}, start + k * STEP, key="hist/a-0")[0] for k in range(3)]
    assert counter == [sum(cpus[:k + 1]) * 60 / 1e9 for k in range(3)]  # monotonic CPU seconds
    assert 'kube_pod_container_resource_requests{namespace="hist",pod="a-0",uid="",container="main",node="n1",' \
           'resource="cpu",unit="core"} 0.25 1768392000' in text
    assert "# TYPE container_cpu_usage_seconds counter" in text
    with pytest.raises(ValueError, match="whole number of seconds"):
        openmetrics.history_text(pods, model, start=start, end=start, step=timedelta(milliseconds=1500))


def test_sim_history_refuses_a_bad_step(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert cli_main(["sim", "history", "--step", "1.5s", "--out", str(tmp_path / "h.om")]) == 2
    assert "--step" in capsys.readouterr().err
    assert not (tmp_path / "h.om").exists()


# --- the sim's scrape endpoints, scraped by a real Prometheus -------------------------------------


def test_real_prometheus_scrapes_the_sims_cadvisor_and_kube_state_metrics(
        deployed: SimCluster, backfilled: Backfilled) -> None:
    """Last in the module: Prometheus' first scrape waits ~5 s for its target discovery, which the
    other tests overlap."""
    sim, prom = deployed, backfilled.prom
    assert sim.store is not None
    pods = {p["metadata"]["name"]: p for p in sim.store.list_objects(R.POD, "hist")[0]}
    node = pods["quote-0"]["spec"]["nodeName"]
    deadline = time.monotonic() + 15
    while not (prom.instant('container_memory_working_set_bytes{pod="quote-0"}')
               and prom.instant('kube_pod_info{pod="quote-0"}')):  # the first scrapes of both jobs
        assert time.monotonic() < deadline, prom.log.read_text()[-2000:]
        time.sleep(0.2)
    assert sim.clock is not None and sim.controllers is not None
    t, model = sim.clock.now(), sim.controllers.model  # frozen: every scrape reads this instant
    p = pods["quote-0"]
    res = p["spec"]["containers"][0]["resources"]
    cpu_now, mem_now = model.usage(p["metadata"]["labels"], "main", res["requests"], res["limits"], t,
                                   key="hist/quote-0")
    [mem] = prom.instant('container_memory_working_set_bytes{pod="quote-0"}')
    assert mem["metric"]["node"] == node and mem["metric"]["id"].endswith("/main")
    assert int(mem["value"][1]) == mem_now
    [cpu] = prom.instant('container_cpu_usage_seconds_total{pod="quote-0"}')
    assert float(cpu["value"][1]) == pytest.approx(cpu_seconds_counter(p, p["spec"]["containers"][0], model, t)
                                                   / 1e9, abs=1e-9)
    result = P.read_prometheus(prom.url, window=timedelta(seconds=2), step=timedelta(seconds=1),
                               namespace="hist")
    quote = [s for s in result.samples if s.pod == "quote-0"]
    assert quote and {s.memory_bytes for s in quote} == {mem_now}
    assert {(s.service, s.node, s.cpu_request_m, s.memory_limit_bytes) for s in quote} == {
        ("quote-api", node, 250, 512 * 2**20)}
    assert float(cpu["value"][1]) > 0 and cpu_now > 0
