"""The ``kubectl top`` sampler: against one sim with the real kubectl, and on kubectl's recorded answers.

The sim's clock is frozen; the sampler's injected ``sleep`` advances it (``clock.advance``), so
three 15 s rounds take no wall time. The sim always serves metrics.k8s.io, so the cluster
without metrics-server is a bare API server in the test (discovery without the group), against
which the real kubectl prints its own ``error: Metrics API not available``.
"""
from __future__ import annotations

import copy
import json
import math
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import pytest

from eafix_capacity.cluster.errors import TargetError
from eafix_capacity.errors import InputError
from eafix_capacity.sim import resources as R
from eafix_capacity.sim.cluster import SimCluster
from eafix_capacity.sim.testing import frozen_sim_module, kubectl_on, sim_cluster_module
from eafix_capacity.usage.kubectltop import (MetricsApiUnavailable, Round, check_schedule, run_subprocess,
                                             sample_kubectl_top)
from eafix_capacity.usage.podinfo import container_infos, pod_items, terminations
from eafix_capacity.usage.topparse import TopParseError

__all__ = ["frozen_sim_module", "sim_cluster_module"]   # the module-scoped sim, imported as fixtures

DATA = Path(__file__).resolve().parent.parent / "data" / "kubectl-top" / "v1.32.4"
NS = "eafix-trading"
MI = 2**20


def _deployment(name: str, namespace: str, replicas: int, containers: list[tuple[str, str]]) -> str:
    body = "".join(f"""
      - name: {c}
        image: eafix/{name}:1.0
        resources: {res}""" for c, res in containers)
    return f"""---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}, namespace: {namespace}}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app.kubernetes.io/name: {name}}}}}
  template:
    metadata: {{labels: {{app.kubernetes.io/name: {name}}}}}
    spec:
      containers:{body}
"""


def _namespace(name: str) -> str:
    return f"---\napiVersion: v1\nkind: Namespace\nmetadata: {{name: {name}}}\n"


RISK = [("risk-manager", "{requests: {cpu: 250m, memory: 256Mi}, limits: {cpu: '1', memory: 512Mi}}"),
        ("istio-proxy", "{requests: {cpu: 100m, memory: 128Mi}, limits: {cpu: '2', memory: 1Gi}}")]
INGESTOR = [("data-ingestor", "{requests: {cpu: 500m, memory: 1Gi}, limits: {memory: 1Gi}}")]


@pytest.fixture(scope="module")
def sim(frozen_sim_module: SimCluster) -> SimCluster:
    """The module's sim with two services deployed and measured (20 s of sim time after they start)."""
    kubectl_on(frozen_sim_module, "apply", "-f", "-",
               stdin=_namespace(NS) + _deployment("risk-manager", NS, 2, RISK)
               + _deployment("data-ingestor", NS, 1, INGESTOR))
    frozen_sim_module.settle()
    assert frozen_sim_module.clock is not None
    frozen_sim_module.clock.advance(20)
    return frozen_sim_module


def _sample(sim: SimCluster, *, namespace: str | None, samples: int, sleep: Callable[[float], object] | None = None,
            run: Callable[[Sequence[str], float], Any] = run_subprocess,
            on_round: Callable[[Round], object] | None = None) -> tuple[Any, list[Round]]:
    assert sim.clock is not None
    rounds: list[Round] = []

    def keep(r: Round) -> None:
        rounds.append(r)
        if on_round is not None:
            on_round(r)

    result = sample_kubectl_top(context="eafix-sim", kubeconfig=str(sim.kubeconfig), namespace=namespace,
                                interval=15, samples=samples, quiet=True, clock=sim.clock.now,
                                sleep=sleep or sim.clock.advance, run=run, on_round=keep,
                                cache_dir=str(Path(str(sim.kubeconfig)).parent / "kube-cache"))
    return result, rounds


def _api_figures(sim: SimCluster, namespace: str | None) -> dict[tuple[str, str, str], tuple[Any, Any]]:
    """What the sim's metrics API answers now, in nanocores and bytes (in-process, no HTTP)."""
    from eafix_capacity.usage.topparse import cpu_nanocores, memory_bytes

    body = sim.controllers.metrics_list("pods", namespace, None, None)
    out = {}
    for item in body["items"]:
        for c in item["containers"]:
            out[(item["metadata"]["namespace"], item["metadata"]["name"], c["name"])] = (
                cpu_nanocores(c["usage"]["cpu"]), memory_bytes(c["usage"]["memory"]))
    return out


def _pods(sim: SimCluster, namespace: str) -> list[dict[str, Any]]:
    assert sim.store is not None
    return sim.store.list_objects(R.POD, namespace)[0]


# --- against the sim, with the real kubectl ---------------------------------------------------------

@pytest.mark.sim
@pytest.mark.kubectl
def test_three_rounds_on_the_sim_clock_give_kubectls_figures_with_requests_and_limits(sim: SimCluster) -> None:
    assert sim.clock is not None
    start = sim.clock.now()
    api: list[dict[tuple[str, str, str], tuple[Any, Any]]] = []
    result, rounds = _sample(sim, namespace=NS, samples=3, on_round=lambda r: api.append(_api_figures(sim, NS)))
    assert (result.rounds, result.interrupted, result.missing) == (3, False, 0)
    assert [r.timestamp for r in rounds] == [start, start + timedelta(seconds=15), start + timedelta(seconds=30)]
    nodes = {p["metadata"]["name"]: p["spec"]["nodeName"] for p in _pods(sim, NS)}
    for r, figures in zip(rounds, api):
        assert len(r.samples) == 5 and result.samples == 15
        for s in r.samples:
            cpu, mem = figures[(s.namespace, s.pod, s.container)]
            # kubectl prints MilliValue (rounded up) and whole MiB (rounded down): the same figure, its units
            assert s.cpu_nanocores == math.ceil(cpu / 10**6) * 10**6
            assert s.memory_bytes == mem // MI * MI
            assert (s.timestamp, s.context, s.source, s.node) == (r.timestamp, "eafix-sim", "kubectl-top",
                                                                  nodes[s.pod])
            want = {"risk-manager": (250, 1000, 256 * MI, 512 * MI), "istio-proxy": (100, 2000, 128 * MI, 2**30),
                    "data-ingestor": (500, None, 2**30, 2**30)}[s.container]
            assert (s.cpu_request_m, s.cpu_limit_m, s.memory_request_bytes, s.memory_limit_bytes) == want
            assert s.service == ("data-ingestor" if s.container == "data-ingestor" else "risk-manager")
        assert sorted(n.node for n in r.nodes) == [f"sim-n2-standard-8-{i}" for i in range(3)]
        assert all(n.cpu_nanocores and n.memory_bytes for n in r.nodes)


@pytest.mark.sim
@pytest.mark.kubectl
def test_a_pod_without_metrics_yet_is_a_missing_sample_and_sampling_goes_on(sim: SimCluster) -> None:
    kubectl_on(sim, "apply", "-f", "-", stdin=_namespace("late") + _deployment("late-svc", "late", 1, INGESTOR))
    sim.settle()   # Running now: metrics-server has no two scrapes of it for 15 s
    late = _pods(sim, "late")[0]["metadata"]["name"]
    result, rounds = _sample(sim, namespace=None, samples=2)
    assert (result.rounds, result.interrupted) == (2, False)
    first = {(s.namespace, s.pod): s for s in rounds[0].samples}
    gap = first[("late", late)]
    assert (gap.cpu_nanocores, gap.memory_bytes, gap.missing) == (None, None, True)
    assert (gap.cpu_request_m, gap.memory_limit_bytes, gap.service) == (500, 2**30, "late-svc")
    others = [s for s in rounds[0].samples if s.namespace != "late"]
    assert others and all(not s.missing for s in others if s.namespace in (NS, "kube-system"))
    second = {(s.namespace, s.pod): s for s in rounds[1].samples}[("late", late)]
    assert second.cpu_nanocores is not None and second.memory_bytes is not None


@pytest.mark.sim
@pytest.mark.kubectl
def test_metrics_not_available_yet_records_every_pod_missing(sim: SimCluster) -> None:
    kubectl_on(sim, "apply", "-f", "-", stdin=_namespace("fresh") + _deployment("fresh-svc", "fresh", 2, INGESTOR))
    sim.settle()
    result, rounds = _sample(sim, namespace="fresh", samples=1)
    assert result.rounds == 1 and result.missing == 2
    assert rounds[0].notes == ["kubectl top pod: metrics not available yet"]
    assert [(s.namespace, s.container, s.cpu_nanocores, s.memory_bytes) for s in rounds[0].samples] == [
        ("fresh", "data-ingestor", None, None)] * 2
    assert len(rounds[0].nodes) == 3   # the nodes are measured all the same


@pytest.mark.sim
@pytest.mark.kubectl
def test_ctrl_c_in_the_sleep_keeps_every_round_taken(sim: SimCluster) -> None:
    assert sim.clock is not None
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        raise KeyboardInterrupt

    result, rounds = _sample(sim, namespace=NS, samples=10, sleep=sleep)
    assert (result.rounds, result.interrupted, len(rounds), result.samples) == (1, True, 1, 5)
    assert sleeps == [15.0] and not rounds[0].missing


@pytest.mark.sim
@pytest.mark.kubectl
def test_ctrl_c_during_a_round_drops_only_that_round(sim: SimCluster) -> None:
    calls: list[str] = []

    def run(argv: Sequence[str], timeout: float) -> Any:
        calls.append(" ".join(argv[1:3]))
        if calls.count("top node") == 2:   # the second round's kubectl top node
            raise KeyboardInterrupt
        return run_subprocess(argv, timeout)

    result, rounds = _sample(sim, namespace=NS, samples=3, run=run)
    assert (result.rounds, result.interrupted, len(rounds)) == (1, True, 1)
    assert sorted(calls) == ["get --raw", "get --raw", "top node", "top node", "top pod", "top pod"]


@pytest.mark.sim
@pytest.mark.kubectl
def test_a_context_that_does_not_exist_is_kubectls_one_line_error(sim: SimCluster) -> None:
    assert sim.clock is not None
    with pytest.raises(TargetError) as e:
        sample_kubectl_top(context="nope", kubeconfig=str(sim.kubeconfig), samples=1, quiet=True,
                           on_round=lambda r: None, clock=sim.clock.now, sleep=sim.clock.advance)
    assert str(e.value) == ('context "nope": kubectl top pod failed (exit 1): Error in configuration: context was '
                            "not found for specified context: nope; run the same kubectl command yourself to see "
                            "the whole error")


# --- no metrics-server: a bare API server and the real kubectl ----------------------------------------

class _BareApi(BaseHTTPRequestHandler):
    """An API server whose discovery has no metrics.k8s.io group (a cluster without metrics-server)."""

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        path = self.path.split("?")[0]
        body: dict[str, Any]
        if path == "/api":
            code, body = 200, {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [
                {"clientCIDR": "0.0.0.0/0", "serverAddress": self.headers["Host"]}]}
        elif path == "/apis":
            code, body = 200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": []}
        else:   # kube-apiserver's answer for a group it does not serve
            code, body = 404, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                               "message": "the server could not find the requested resource", "reason": "NotFound",
                               "details": {}, "code": 404}
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture()
def bare_cluster(tmp_path: Path) -> Iterator[Path]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _BareApi)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(f"""apiVersion: v1
kind: Config
clusters: [{{name: bare, cluster: {{server: "http://127.0.0.1:{server.server_address[1]}"}}}}]
users: [{{name: anon, user: {{}}}}]
contexts: [{{name: bare-cluster, context: {{cluster: bare, user: anon}}}}]
""")
    yield kubeconfig
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.mark.kubectl
def test_without_metrics_server_the_real_kubectl_error_names_the_context_and_metrics_server(
        bare_cluster: Path, tmp_path: Path) -> None:
    with pytest.raises(MetricsApiUnavailable) as e:
        sample_kubectl_top(context="bare-cluster", kubeconfig=str(bare_cluster), samples=3, quiet=True,
                           on_round=lambda r: None, cache_dir=str(tmp_path / "cache"))
    message = str(e.value)
    assert message.startswith('context "bare-cluster": Metrics API not available (kubectl top pod: '
                              '"error: Metrics API not available"); install metrics-server (')
    assert "\n" not in message
    assert (DATA / "top-pod.no-metrics-api.stderr").read_text() == "error: Metrics API not available\n"


# --- kubectl's recorded answers, through a fake runner ------------------------------------------------

@dataclass
class _Answer:
    returncode: int
    stdout: str
    stderr: str


class _Kubectl:
    """Answers the sampler's three kubectl calls from tests/data/kubectl-top/v1.32.4."""

    def __init__(self, **overrides: Any) -> None:
        self.answers: dict[str, Any] = {
            "top pod": _Answer(0, (DATA / "pod-containers-n.no-headers.txt").read_text(), ""),
            "top node": _Answer(0, (DATA / "node.no-headers.txt").read_text(), ""),
            "get --raw": _Answer(0, (DATA / "pods-eafix-trading.json").read_text(), "")}
        self.answers.update(overrides)
        self.calls: list[list[str]] = []

    def __call__(self, argv: Sequence[str], timeout: float) -> _Answer:
        self.calls.append(list(argv))
        answer = self.answers[" ".join(argv[1:3])]
        return answer(len(self.calls)) if callable(answer) else answer


class _Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 14, 14, 0, tzinfo=timezone.utc)

    def __call__(self) -> datetime:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def _fake_run(kubectl: _Kubectl, **kw: Any) -> tuple[Any, list[Round]]:
    clock = _Clock()
    rounds: list[Round] = []
    options: dict[str, Any] = {"namespace": NS, "interval": 1, "samples": 2, **kw}
    result = sample_kubectl_top(context="prod", quiet=True, clock=clock, sleep=clock.sleep, run=kubectl,
                                on_round=rounds.append, **options)
    return result, rounds


def test_the_command_lines_name_the_context_and_kubeconfig() -> None:
    kubectl = _Kubectl()
    _fake_run(kubectl, samples=1, kubeconfig="/k/config", timeout=20)
    tail = ["--context", "prod", "--kubeconfig", "/k/config", "--request-timeout=20s"]
    assert kubectl.calls == [["kubectl", "top", "pod", "--containers", "--no-headers", "-n", NS, *tail],
                             ["kubectl", "top", "node", "--no-headers", *tail],
                             ["kubectl", "get", "--raw", f"/api/v1/namespaces/{NS}/pods", *tail]]
    kubectl = _Kubectl(**{"top pod": _Answer(0, (DATA / "pod-containers-A.no-headers.txt").read_text(), "")})
    _fake_run(kubectl, samples=1, namespace=None)
    assert kubectl.calls[0][5] == "-A" and kubectl.calls[2][3] == "/api/v1/pods"


def test_duration_and_a_one_second_interval() -> None:
    kubectl = _Kubectl()
    result, rounds = _fake_run(kubectl, samples=None, duration=3, interval=1)
    assert result.rounds == 3 and [r.index for r in rounds] == [0, 1, 2]
    assert [(r.timestamp - rounds[0].timestamp).total_seconds() for r in rounds] == [0, 1, 2]
    assert result.samples == 15 and {s.context for r in rounds for s in r.samples} == {"prod"}


def test_a_slow_round_delays_the_next_instead_of_bursting() -> None:
    clock = _Clock()

    def slow(call: int) -> _Answer:
        clock.now += timedelta(seconds=40)   # each round's pod list takes 40 s; the interval is 15 s
        return _Answer(0, (DATA / "pods-eafix-trading.json").read_text(), "")

    rounds: list[Round] = []
    sample_kubectl_top(context="prod", namespace=NS, interval=15, samples=3, quiet=True, clock=clock,
                       sleep=clock.sleep, run=_Kubectl(**{"get --raw": slow}), on_round=rounds.append)
    assert [(r.timestamp - rounds[0].timestamp).total_seconds() for r in rounds] == [0, 40, 80]


@pytest.mark.parametrize("kw,problem", [
    ({"interval": 0.5, "samples": 1}, "interval: the sampling interval is too short or not a number 0.5"),
    ({"interval": 15}, "duration: neither a duration nor a number of samples"),
    ({"interval": 15, "duration": -1}, "duration: the duration is not a positive number of seconds -1"),
    ({"interval": 15, "samples": 0}, "samples: the number of samples is not a positive integer 0"),
])
def test_bad_schedules_are_refused(kw: dict[str, Any], problem: str) -> None:
    with pytest.raises(InputError) as e:
        check_schedule(duration=kw.get("duration"), samples=kw.get("samples"), interval=kw["interval"])
    assert str(e.value).startswith(problem)
    assert check_schedule(interval=15, duration=600, samples=None) == 40
    assert check_schedule(interval=15, duration=600, samples=5) == 5


def test_a_malformed_top_line_is_a_one_line_error_naming_the_command_and_round() -> None:
    bad = _Answer(0, "data-ingestor-76db889779-k8g8w   data-ingestor   229q   591Mi\n", "")
    with pytest.raises(TopParseError) as e:
        _fake_run(_Kubectl(**{"top pod": bad}))
    assert str(e.value).startswith(f'kubectl top pod --containers -n {NS} (context "prod", round 1): line 1: '
                                   "column 3 (CPU(cores)): not a CPU figure '229q'; ")


def test_a_pod_list_that_is_not_json_or_not_a_list() -> None:
    with pytest.raises(TargetError, match=r'^context "prod": kubectl get --raw /api/v1/namespaces/eafix-trading/'
                                          r"pods did not print JSON"):
        _fake_run(_Kubectl(**{"get --raw": _Answer(0, "<html>", "")}))
    with pytest.raises(InputError, match="not a pod list"):
        _fake_run(_Kubectl(**{"get --raw": _Answer(0, '{"kind": "Status"}', "")}))


def test_metrics_api_not_available_from_the_recorded_stderr() -> None:
    stderr = (DATA / "top-pod.no-metrics-api.stderr").read_text()
    with pytest.raises(MetricsApiUnavailable, match=r'^context "prod": Metrics API not available .*install '
                                                    r"metrics-server"):
        _fake_run(_Kubectl(**{"top pod": _Answer(1, "", stderr)}))


def test_no_resources_found_and_top_node_not_yet() -> None:
    empty = _Answer(0, "", (DATA / "pod-containers-n.empty.stderr").read_text())
    not_yet = _Answer(1, "", (DATA / "pod-containers-n.new-pods.stderr").read_text())
    result, rounds = _fake_run(_Kubectl(**{"top pod": empty, "top node": not_yet}), samples=1)
    assert result.rounds == 1 and result.missing == 5 and rounds[0].nodes == []
    assert rounds[0].notes == ["kubectl top node: metrics not available yet"]


def test_a_container_without_a_line_is_missing_but_its_pod_mate_is_not() -> None:
    lines = (DATA / "pod-containers-n.no-headers.txt").read_text().splitlines()
    kept = "\n".join(line for line in lines if not ("5djxk" in line and "istio-proxy" in line))
    _, rounds = _fake_run(_Kubectl(**{"top pod": _Answer(0, kept, "")}), samples=1)
    by = {(s.pod.rsplit("-", 1)[1], s.container): s for s in rounds[0].samples}
    assert by[("5djxk", "istio-proxy")].missing and not by[("5djxk", "risk-manager")].missing
    assert rounds[0].missing == 1


def test_a_pod_in_top_but_not_in_the_list_keeps_its_usage_without_requests() -> None:
    extra = (DATA / "pod-containers-n.no-headers.txt").read_text() + "newcomer-abc   app   5m   7Mi\n"
    _, rounds = _fake_run(_Kubectl(**{"top pod": _Answer(0, extra, "")}), samples=1)
    new = next(s for s in rounds[0].samples if s.pod == "newcomer-abc")
    assert (new.cpu_nanocores, new.memory_bytes, new.cpu_request_m, new.service, new.node) == (
        5 * 10**6, 7 * MI, None, "", "")


# --- the pod list: requests, limits and terminations -----------------------------------------------

def _recorded_pods() -> list[dict[str, Any]]:
    return [dict(p) for p in pod_items(json.loads((DATA / "pods-eafix-trading.json").read_text()), source="x")]


def test_container_infos_of_the_recorded_pod_list() -> None:
    infos = container_infos(_recorded_pods())
    assert len(infos) == 5 and all(i.measured for i in infos.values())
    ingestor = next(i for k, i in infos.items() if k[2] == "data-ingestor")
    assert (ingestor.service, ingestor.node, ingestor.cpu_request_m, ingestor.cpu_limit_m,
            ingestor.memory_request_bytes, ingestor.memory_limit_bytes) == (
        "data-ingestor", "sim-n2-standard-8-0", 500, None, 2**30, 2**30)


def test_pending_pods_are_not_measured_and_native_sidecars_are_containers() -> None:
    pod = copy.deepcopy(_recorded_pods()[0])
    pod["status"]["phase"] = "Pending"
    pod["spec"]["initContainers"] = [{"name": "sidecar", "restartPolicy": "Always",
                                      "resources": {"requests": {"cpu": "0.1", "memory": "64Mi"}}},
                                     {"name": "init-db", "resources": {}}]
    infos = container_infos([pod])
    assert sorted(k[2] for k in infos) == ["data-ingestor", "sidecar"]
    assert not any(i.measured for i in infos.values())
    assert infos[(NS, pod["metadata"]["name"], "sidecar")].cpu_request_m == 100


def test_a_bad_quantity_in_the_pod_list_names_the_pod_container_and_field() -> None:
    pod = copy.deepcopy(_recorded_pods()[0])
    pod["spec"]["containers"][0]["resources"]["requests"]["cpu"] = "lots"
    with pytest.raises(InputError, match=r"pod eafix-trading/data-ingestor-\S+: container data-ingestor: "
                                         r"resources.requests.cpu: .*'lots'"):
        container_infos([pod])


def test_terminations_are_reported_once_per_restart() -> None:
    pods = _recorded_pods()
    oom = copy.deepcopy(pods[0])
    status = oom["status"]["containerStatuses"][0]
    status["restartCount"] = 3
    status["lastState"] = {"terminated": {"exitCode": 137, "reason": "OOMKilled",
                                          "startedAt": "2026-01-14T13:00:00Z", "finishedAt": "2026-01-14T13:59:30Z"}}
    seen_at = datetime(2026, 1, 14, 14, 0, tzinfo=timezone.utc)
    found = terminations([oom, *pods[1:]], context="prod", seen_at=seen_at, source="kubectl-top")
    assert [(t.reason, t.restart_count, t.memory_limit_bytes, t.service, t.timestamp) for t in found] == [
        ("OOMKilled", 3, 2**30, "data-ingestor", datetime(2026, 1, 14, 13, 59, 30, tzinfo=timezone.utc))]

    def pod_list(call: int) -> _Answer:
        doc = {"kind": "PodList", "apiVersion": "v1", "items": [oom, *pods[1:]]}
        if call > 6:   # the third round: killed again
            status["restartCount"] = 4
            status["lastState"]["terminated"]["finishedAt"] = "2026-01-14T14:00:01Z"
        return _Answer(0, json.dumps(doc), "")

    _, rounds = _fake_run(_Kubectl(**{"get --raw": pod_list}), samples=3)
    assert [[t.restart_count for t in r.terminations] for r in rounds] == [[3], [], [4]]
