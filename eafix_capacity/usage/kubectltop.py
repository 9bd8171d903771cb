"""Sample a cluster's usage with the real ``kubectl top``, one round every interval.

``kubectl top`` is what a user already has and trusts, and on a laptop pointed at a managed
cluster it is often the only source: it goes through the user's kubeconfig, exec plugins and
all. Each round runs ``kubectl top pod --containers`` (``-A`` or ``-n NS``), ``kubectl top node``
and one pod list, at once (a round then takes as long as its slowest call: about 0.9 s at
1,000 pods against the sim on this machine), and turns them into :class:`~eafix_capacity.usage.samples.Sample`,
:class:`~eafix_capacity.usage.samples.NodeSample` and
:class:`~eafix_capacity.usage.samples.Termination` records, handed to ``on_round`` once the
round is complete (the store writes one transaction per round), so a stopped sampler loses at
most the round in flight.

The pod list (requests, limits, node, service, last terminations) is read with
``kubectl get --raw /api/v1/pods`` rather than through the official client: the same binary,
context and credentials as the two ``top`` calls (an exec plugin that works for one works for
all; nothing else has to load the kubeconfig), the server's JSON as it wrote it (``-o json``
would decode and re-encode every pod), and one injectable ``run`` for the tests.

A figure kubectl does not have is a missing sample (``None``), never a zero: a Running pod of
the pod list without a ``top`` line (a new pod, a gap in metrics-server), and every pod while
kubectl says ``metrics not available yet``; sampling goes on. ``Metrics API not available``
(no metrics-server) stops it with :class:`MetricsApiUnavailable`. Ctrl-C stops it after the
rounds already delivered, and the run says it was interrupted.
"""
from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Mapping, Protocol, Sequence

from eafix_capacity.cluster.errors import TargetError, Timeout
from eafix_capacity.errors import InputError
from eafix_capacity.usage.podinfo import ContainerInfo, Key, container_infos, pod_items, terminations
from eafix_capacity.usage.samples import NodeSample, Sample, Termination
from eafix_capacity.usage.topparse import NodeUsage, PodUsage, parse_top_nodes, parse_top_pods

SOURCE = "kubectl-top"
MIN_INTERVAL = 1.0
"""Seconds: the shortest interval (issue 10: "the interval may be as short as 1 s")."""
DEFAULT_TIMEOUT = 30.0
"""Seconds each kubectl call may take (``--request-timeout``, and the subprocess's own limit)."""
METRICS_API_NOT_AVAILABLE = "Metrics API not available"
"""kubectl top's error when discovery has no metrics.k8s.io group (top_pod.go / top_node.go)."""
NOT_YET = ("metrics not available yet", "Metrics not available for pod")
"""kubectl top's errors for a list that has pods but no PodMetrics yet (top_pod.go verifyEmptyMetrics;
the second when a pod older than metricsCreationDelay has none)."""
INSTALL_METRICS_SERVER = ("install metrics-server (kubectl apply -f https://github.com/kubernetes-sigs/"
                          "metrics-server/releases/latest/download/components.yaml) or check the APIService "
                          "v1beta1.metrics.k8s.io (kubectl get apiservice v1beta1.metrics.k8s.io)")


class MetricsApiUnavailable(TargetError):
    """The cluster serves no metrics.k8s.io: metrics-server is not installed (or not registered)."""


@dataclass(frozen=True)
class Round:
    """Everything one sampling round read, delivered whole to ``on_round``."""

    index: int
    """0 for the first round of a run."""
    timestamp: datetime
    """When the round started (UTC); the samples' own timestamps may be the metrics' (metrics API)."""
    context: str
    samples: list[Sample]
    nodes: list[NodeSample]
    terminations: list[Termination]
    """The terminations seen for the first time in this run (each once, not every round)."""
    notes: list[str] = field(default_factory=list)
    """What the source said instead of figures (``metrics not available yet``)."""

    @property
    def missing(self) -> int:
        return sum(1 for s in self.samples if s.missing)


@dataclass(frozen=True)
class SampleRun:
    """How a sampling run ended."""

    context: str
    rounds: int
    """Rounds delivered to ``on_round``."""
    samples: int
    missing: int
    interrupted: bool
    """Ctrl-C stopped it; every complete round before it was delivered, the round in flight dropped."""
    started: datetime | None
    finished: datetime | None


class Completed(Protocol):
    returncode: int
    stdout: str
    stderr: str


Runner = Callable[[Sequence[str], float], Completed]
"""``run(argv, timeout)``: runs ``argv`` and returns its exit code, stdout and stderr."""
RoundReader = Callable[[int, datetime], Round]


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def run_subprocess(argv: Sequence[str], timeout: float) -> Completed:
    """The default runner: ``subprocess.run`` with text output and the timeout."""
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, check=False)


# --- the loop (shared with the metrics API source) -------------------------------------------------

def check_schedule(*, interval: float, duration: float | None, samples: int | None) -> int:
    """The number of rounds a run plans (pure): ``samples``, or as many rounds as start within
    ``duration``, whichever is fewer. Bad values are an :class:`InputError`."""
    if isinstance(interval, bool) or not isinstance(interval, (int, float)) or not interval >= MIN_INTERVAL:
        raise InputError("the sampling interval is too short or not a number", field="interval", value=interval,
                         valid=f"at least {MIN_INTERVAL:g} s (e.g. 15 s, metrics-server's resolution)")
    if duration is None and samples is None:
        raise InputError("neither a duration nor a number of samples", field="duration",
                         valid="give a duration (e.g. 600 s) or a number of sampling rounds")
    planned = []
    if duration is not None:
        if isinstance(duration, bool) or not isinstance(duration, (int, float)) or not duration > 0 \
                or math.isinf(duration):
            raise InputError("the duration is not a positive number of seconds", field="duration", value=duration,
                             valid="a positive number of seconds, e.g. 600")
        planned.append(max(1, math.ceil(duration / interval)))
    if samples is not None:
        if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
            raise InputError("the number of samples is not a positive integer", field="samples", value=samples,
                             valid="1 or more sampling rounds")
        planned.append(samples)
    return min(planned)


def run_rounds(read_round: RoundReader, *, context: str, on_round: Callable[[Round], object], interval: float,
               duration: float | None = None, samples: int | None = None, quiet: bool = False,
               clock: Callable[[], datetime] = utc_now, sleep: Callable[[float], object] = time.sleep,
               description: str = "sampling") -> SampleRun:
    """Call ``read_round(index, timestamp)`` every ``interval`` seconds of ``clock`` and hand each
    complete round to ``on_round``, for ``samples`` rounds or ``duration`` seconds (the first to
    end). A round that takes longer than the interval delays the next one (no burst to catch
    up). Ctrl-C (``KeyboardInterrupt``, also from ``sleep``, ``read_round`` or ``on_round``)
    stops the run: the rounds delivered before it are kept and the result says ``interrupted``.
    Other errors propagate; the rounds already delivered stay delivered."""
    from tqdm import tqdm  # type: ignore[import-untyped]  # no stubs in the venv

    total = check_schedule(interval=interval, duration=duration, samples=samples)
    taken = n_samples = n_missing = 0
    interrupted = False
    started: datetime | None = None
    end: datetime | None = None
    bar = tqdm(total=total, unit="round", desc=f"{description} {context}", disable=quiet, file=sys.stderr,
               leave=False, dynamic_ncols=True)
    try:
        started = clock()
        end = started + timedelta(seconds=duration) if duration is not None else None
        next_at = started
        for index in range(total):
            if index:
                wait = (next_at - clock()).total_seconds()
                if wait > 0:
                    sleep(wait)
            at = clock()
            if end is not None and at >= end:
                break
            next_at = at + timedelta(seconds=interval)
            current = read_round(index, at)
            on_round(current)
            taken += 1
            n_samples += len(current.samples)
            n_missing += current.missing
            left = ((end - clock()).total_seconds() if end is not None
                    else (total - taken) * interval)
            bar.set_postfix_str(f"{max(0.0, left):.0f} s left, {n_missing} missing", refresh=False)
            bar.update(1)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        bar.close()
    return SampleRun(context=context, rounds=taken, samples=n_samples, missing=n_missing, interrupted=interrupted,
                     started=started, finished=clock() if started is not None else None)


# --- one kubectl round ------------------------------------------------------------------------------

def kubectl_argv(*args: str, kubectl: str, context: str, kubeconfig: str | None, timeout: float,
                 cache_dir: str | None = None) -> list[str]:
    """A kubectl command line for ``context`` (pure)."""
    argv = [kubectl, *args, "--context", context]
    if kubeconfig:
        argv += ["--kubeconfig", kubeconfig]
    if cache_dir:
        argv += ["--cache-dir", cache_dir]
    return argv + [f"--request-timeout={timeout:g}s"]


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


def _run(run: Runner, argv: list[str], *, context: str, timeout: float) -> Completed:
    try:
        return run(argv, timeout + 5)
    except FileNotFoundError as e:
        raise TargetError(f"{argv[0]} not found: {e.strerror or e}", context=context,
                          check="install kubectl or put it on PATH (or pass the kubectl path)") from e
    except subprocess.TimeoutExpired as e:
        raise Timeout(f"`{' '.join(argv[1:3])}` did not finish within {timeout + 5:g} s", context=context,
                      check="check that the API server answers (kubectl get --raw /readyz)") from e


def _failure(result: Completed, argv: list[str], *, context: str) -> TargetError:
    said = _first_line(result.stderr) or _first_line(result.stdout) or "no output"
    if METRICS_API_NOT_AVAILABLE in result.stderr:
        return MetricsApiUnavailable(f'{METRICS_API_NOT_AVAILABLE} (kubectl {" ".join(argv[1:3])}: "{said}")',
                                     context=context, check=INSTALL_METRICS_SERVER)
    return TargetError(f"kubectl {' '.join(argv[1:3])} failed (exit {result.returncode}): {said}", context=context,
                       check="run the same kubectl command yourself to see the whole error")


def _top(run: Runner, argv: list[str], *, context: str, timeout: float) -> tuple[str, str | None]:
    """The output of a ``kubectl top`` call, or ("", note) when kubectl says the metrics are not there yet."""
    result = _run(run, argv, context=context, timeout=timeout)
    if result.returncode == 0:
        return result.stdout, None
    said = _first_line(result.stderr)
    if any(text in result.stderr for text in NOT_YET) and METRICS_API_NOT_AVAILABLE not in result.stderr:
        return "", said.removeprefix("error: ")
    raise _failure(result, argv, context=context)


def round_records(index: int, timestamp: datetime, *, context: str, source: str, pods: Sequence[PodUsage],
                  nodes: Sequence[NodeUsage], infos: Mapping[Key, ContainerInfo], namespace: str | None,
                  new_terminations: list[Termination], notes: list[str],
                  pod_times: Mapping[tuple[str, str], datetime] | None = None) -> Round:
    """One :class:`Round` from parsed figures and the pod list (pure): a sample per figure, with the
    container's request, limit, node and service, then a missing sample for every container of a
    measured pod that had none. ``pod_times`` gives a pod's own metrics timestamp (metrics API)."""
    out: list[Sample] = []
    seen: set[Key] = set()
    for u in pods:
        ns = u.namespace if u.namespace is not None else (namespace or "")
        key = (ns, u.pod, u.container or "")
        if key in seen:
            continue
        seen.add(key)
        info = infos.get(key)
        at = pod_times.get((ns, u.pod), timestamp) if pod_times else timestamp
        out.append(Sample(at, context, ns, u.pod, key[2], info.service if info else "", info.node if info else "",
                          u.cpu_nanocores, u.memory_bytes, info.cpu_request_m if info else None,
                          info.cpu_limit_m if info else None, info.memory_request_bytes if info else None,
                          info.memory_limit_bytes if info else None, source))
    for key, info in infos.items():
        if info.measured and key not in seen and (namespace is None or key[0] == namespace):
            out.append(Sample(timestamp, context, info.namespace, info.pod, info.container, info.service, info.node,
                              None, None, info.cpu_request_m, info.cpu_limit_m, info.memory_request_bytes,
                              info.memory_limit_bytes, source))
    out.sort(key=lambda s: (s.namespace, s.pod, s.container))
    node_samples = [NodeSample(timestamp, context, n.node, n.cpu_nanocores, n.memory_bytes, source) for n in nodes]
    return Round(index=index, timestamp=timestamp, context=context, samples=out, nodes=node_samples,
                 terminations=new_terminations, notes=notes)


def fresh_terminations(found: list[Termination], seen: set[tuple[Any, ...]]) -> list[Termination]:
    """Of ``found``, those not in ``seen`` (by container, restart count, reason and time); adds them."""
    out = []
    for t in found:
        key = (t.namespace, t.pod, t.container, t.restart_count, t.reason, t.timestamp)
        if key not in seen:
            seen.add(key)
            out.append(t)
    return out


def kubectl_round_reader(*, context: str, kubeconfig: str | None = None, namespace: str | None = None,
                         run: Runner = run_subprocess, timeout: float = DEFAULT_TIMEOUT,
                         kubectl: str = "kubectl", cache_dir: str | None = None) -> RoundReader:
    """The function that reads one round through kubectl (``namespace`` None: all namespaces;
    ``cache_dir``: kubectl's discovery cache, by default its own ``~/.kube/cache``)."""
    scope = ["-n", namespace] if namespace else ["-A"]
    def argv(*args: str) -> list[str]:
        return kubectl_argv(*args, kubectl=kubectl, context=context, kubeconfig=kubeconfig, timeout=timeout,
                            cache_dir=cache_dir)

    top_pod = argv("top", "pod", "--containers", "--no-headers", *scope)
    top_node = argv("top", "node", "--no-headers")
    path = f"/api/v1/namespaces/{namespace}/pods" if namespace else "/api/v1/pods"
    get_pods = argv("get", "--raw", path)
    seen: set[tuple[Any, ...]] = set()

    def read(index: int, timestamp: datetime) -> Round:
        # the three calls run at once: a round takes as long as the slowest, and they see one moment
        pool = ThreadPoolExecutor(max_workers=3, thread_name_prefix="kubectl-top")
        try:
            pod_call = pool.submit(_top, run, top_pod, context=context, timeout=timeout)
            node_call = pool.submit(_top, run, top_node, context=context, timeout=timeout)
            list_call = pool.submit(_run, run, get_pods, context=context, timeout=timeout)
            (pod_text, pod_note), (node_text, node_note) = pod_call.result(), node_call.result()
            listed = list_call.result()
        finally:  # on Ctrl-C, return without waiting for the calls still running (they got the SIGINT too)
            pool.shutdown(wait=False, cancel_futures=True)
        notes = [f"kubectl top {what}: {note}" for what, note in (("pod", pod_note), ("node", node_note)) if note]
        if listed.returncode != 0:
            raise _failure(listed, get_pods, context=context)
        where = f'kubectl get --raw {path} (context "{context}", round {index + 1})'
        try:
            doc = json.loads(listed.stdout)
        except ValueError as e:
            raise TargetError(f"kubectl get --raw {path} did not print JSON: {e}", context=context) from e
        items = pod_items(doc, source=where)
        pods = parse_top_pods(pod_text, containers=True, all_namespaces=namespace is None,
                              source=f'kubectl top pod --containers {" ".join(scope)} (context "{context}", round {index + 1})')
        nodes = parse_top_nodes(node_text, source=f'kubectl top node (context "{context}", round {index + 1})')
        found = terminations(items, context=context, seen_at=timestamp, source=SOURCE)
        return round_records(index, timestamp, context=context, source=SOURCE, pods=pods, nodes=nodes,
                             infos=container_infos(items), namespace=namespace,
                             new_terminations=fresh_terminations(found, seen), notes=notes)

    return read


def sample_kubectl_top(*, context: str, on_round: Callable[[Round], object], kubeconfig: str | None = None,
                       namespace: str | None = None, interval: float = 15.0, duration: float | None = None,
                       samples: int | None = None, quiet: bool = False, clock: Callable[[], datetime] = utc_now,
                       sleep: Callable[[float], object] = time.sleep, run: Runner = run_subprocess,
                       timeout: float = DEFAULT_TIMEOUT, kubectl: str = "kubectl",
                       cache_dir: str | None = None) -> SampleRun:
    """Sample ``context`` with the real kubectl every ``interval`` seconds for ``duration`` seconds
    or ``samples`` rounds (``namespace`` None: ``-A``), handing each complete :class:`Round` to
    ``on_round``. Raises :class:`MetricsApiUnavailable` without metrics-server, another
    :class:`~eafix_capacity.cluster.errors.TargetError` when kubectl fails otherwise, and
    :class:`~eafix_capacity.usage.topparse.TopParseError` for output it cannot read; returns
    normally (``interrupted=True``) on Ctrl-C."""
    reader = kubectl_round_reader(context=context, kubeconfig=kubeconfig, namespace=namespace, run=run,
                                  timeout=timeout, kubectl=kubectl, cache_dir=cache_dir)
    return run_rounds(reader, context=context, on_round=on_round, interval=interval, duration=duration,
                      samples=samples, quiet=quiet, clock=clock, sleep=sleep, description="kubectl top")
