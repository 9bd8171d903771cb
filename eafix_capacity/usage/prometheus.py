"""The Prometheus source: a window of container usage from a cluster's Prometheus.

A cluster that runs Prometheus (the seed's own on port 9090, kube-prometheus-stack) already
holds weeks of cAdvisor and kube-state-metrics series: the right-sizing can read them instead
of sampling ``kubectl top`` for days. This module runs krr's range queries over the HTTP API
(``/api/v1/query_range``; default window 14 days, step 1m15s) and joins the series into the
kit's :class:`~eafix_capacity.usage.samples.Sample` and
:class:`~eafix_capacity.usage.samples.Termination` records.

Prometheus refuses a range query of more than 11,000 points per series ("exceeded maximum
resolution of 11,000 points per timeseries", web/api/v1/api.go ``queryRange``), so a long
window is paged by time (:func:`pages`). A series with gaps gives missing samples (``None``),
never zeros; a query that returns nothing is a recorded gap with a warning; only a window
with no usage series at all is an error (:class:`NoSamples`). Every failure is a one-line
:class:`PrometheusError`. HTTP is urllib3 (already the official client's transport).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Iterable, Mapping, Sequence
from urllib.parse import unquote, urlsplit, urlunsplit

from eafix_capacity.errors import ClusterError, InputError, clip
from eafix_capacity.usage.samples import Sample, Termination

DEFAULT_WINDOW = timedelta(days=14)
DEFAULT_STEP = timedelta(seconds=75)
"""krr's defaults: 14 days of history at 1.25-minute steps."""
MAX_POINTS = 11_000
"""Prometheus' limit of points per series in one range query."""
SOURCE = "prometheus"
DEFAULT_TIMEOUT = 60.0

_USAGE_BY = "namespace, pod, container, node, app_kubernetes_io_name, label_app_kubernetes_io_name"


class PrometheusError(ClusterError):
    """A Prometheus that cannot answer, or answers no samples; the message is one line."""

    def __init__(self, message: str) -> None:
        super().__init__(clip(message, 600))


class PrometheusUnreachable(PrometheusError):
    """No HTTP answer: connection refused, a timeout, a TLS failure."""


class PrometheusHTTPError(PrometheusError):
    """An HTTP error answer, with Prometheus' own ``errorType`` and ``error`` when it sent them."""

    def __init__(self, message: str, *, status: int, error_type: str = "", error: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.error_type = error_type
        self.error = error


class NoSamples(PrometheusError):
    """Every usage series of the window is empty."""


@dataclass(frozen=True)
class Series:
    """One series of a range query: its labels and its (epoch seconds, value) points."""

    labels: Mapping[str, str]
    points: Mapping[float, float]


@dataclass
class PrometheusResult:
    samples: list[Sample]
    terminations: list[Termination]
    warnings: list[str] = field(default_factory=list)
    """The gaps (queries that returned nothing) and Prometheus' own warnings."""
    start: datetime | None = None
    end: datetime | None = None
    queries: int = 0
    """How many HTTP range queries were sent (pages included)."""


# --- pure parts -----------------------------------------------------------------------------


def pages(start: datetime, end: datetime, step: timedelta, *,
          max_points: int = MAX_POINTS) -> list[tuple[datetime, datetime]]:
    """``[start, end]`` cut into consecutive ranges of at most ``max_points`` evaluation points each,
    on the one grid ``start + k * step`` (the next page starts one step after the last one ends)."""
    if step <= timedelta(0):
        raise InputError("must be positive", field="--step", value=str(step), valid="a step such as 75s")
    if end < start:
        raise InputError("ends before it starts", field="window", value=f"{start} .. {end}",
                         valid="a start before the end")
    if max_points < 1:
        raise InputError("must be at least 1", field="max_points", value=max_points)
    total = int((end - start) // step) + 1
    out = []
    for first in range(0, total, max_points):
        last = min(total, first + max_points) - 1
        out.append((start + first * step, start + last * step))
    return out


def seconds_text(step: timedelta) -> str:
    """A duration for PromQL and the ``step`` parameter: ``75s``, ``1.5s``."""
    s = step.total_seconds()
    return f"{int(s)}s" if s == int(s) else f"{s:g}s"


def selector(namespace: str | None, *matchers: str) -> str:
    parts = list(matchers)
    if namespace:
        parts.append(f'namespace="{namespace}"')
    return "{" + ",".join(parts) + "}"


def queries(*, step: timedelta, namespace: str | None = None, rate_window: timedelta | None = None) -> dict[str, str]:
    """krr's queries (``max by`` collapses a container's duplicate series: two scrape jobs, a
    restarted container's old cgroup), keyed by what they are joined as."""
    containers = selector(namespace, 'container!=""', 'container!="POD"')
    window = seconds_text(rate_window or step)
    resources = selector(namespace, 'resource=~"cpu|memory"')
    oom = selector(namespace, 'reason="OOMKilled"')
    return {
        "cpu": f"max by ({_USAGE_BY}) (rate(container_cpu_usage_seconds_total{containers}[{window}]))",
        "memory": f"max by ({_USAGE_BY}) (container_memory_working_set_bytes{containers})",
        "requests": "max by (namespace, pod, container, resource) "
                    f"(kube_pod_container_resource_requests{resources})",
        "limits": "max by (namespace, pod, container, resource) "
                  f"(kube_pod_container_resource_limits{resources})",
        "oom": "max by (namespace, pod, container) "
               f"(kube_pod_container_status_last_terminated_reason{oom})",
        "restarts": "max by (namespace, pod, container) "
                    f"(kube_pod_container_status_restarts_total{selector(namespace)})",
        "labels": f"max by (namespace, pod, label_app_kubernetes_io_name) (kube_pod_labels{selector(namespace)})",
        "info": f"max by (namespace, pod, node) (kube_pod_info{selector(namespace)})",
    }


def parse_matrix(body: Mapping[str, Any], *, what: str) -> list[Series]:
    """The series of a ``resultType: matrix`` answer; ``NaN`` and unparsable values are dropped
    (a missing point, never a zero)."""
    data = body.get("data")
    if not isinstance(data, Mapping) or data.get("resultType") != "matrix" or not isinstance(data.get("result"), list):
        raise PrometheusError(f"Prometheus answered the {what} query without a matrix result "
                              f"(resultType {data.get('resultType') if isinstance(data, Mapping) else None!r})")
    out = []
    for item in data["result"]:
        labels = {str(k): str(v) for k, v in (item.get("metric") or {}).items()}
        points: dict[float, float] = {}
        for pair in item.get("values") or []:
            try:
                ts, value = float(pair[0]), float(pair[1])
            except (TypeError, ValueError, IndexError):
                continue
            if math.isfinite(value):
                points[ts] = value
        out.append(Series(labels, points))
    return out


def merge_pages(parts: Iterable[list[Series]]) -> list[Series]:
    """One series per label set across the pages of a query."""
    merged: dict[tuple[tuple[str, str], ...], dict[float, float]] = {}
    for part in parts:
        for s in part:
            merged.setdefault(tuple(sorted(s.labels.items())), {}).update(s.points)
    return [Series(dict(k), v) for k, v in merged.items()]


def _utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, timezone.utc)


def join(series: Mapping[str, list[Series]], *, context: str,
         grid: Sequence[float]) -> tuple[list[Sample], list[Termination]]:
    """The records of a window from the series of :func:`queries`: per container, one
    :class:`Sample` per grid point from its first to its last point in either usage series
    (``None`` where one has a gap); one :class:`Termination` per OOM kill seen (each restart
    count at which the last termination reads OOMKilled)."""
    Key = tuple[str, str, str]

    def key(s: Series) -> Key:
        return s.labels.get("namespace", ""), s.labels.get("pod", ""), s.labels.get("container", "")

    service: dict[tuple[str, str], str] = {}
    for s in series.get("labels", []):
        name = s.labels.get("label_app_kubernetes_io_name", "")
        if name:
            service[(s.labels.get("namespace", ""), s.labels.get("pod", ""))] = name
    node: dict[tuple[str, str], str] = {}
    for s in series.get("info", []):
        if s.labels.get("node"):
            node[(s.labels.get("namespace", ""), s.labels.get("pod", ""))] = s.labels["node"]
    usage: dict[str, dict[Key, dict[float, float]]] = {"cpu": {}, "memory": {}}
    labels_of: dict[Key, Mapping[str, str]] = {}
    for what in ("cpu", "memory"):
        for s in series.get(what, []):
            usage[what].setdefault(key(s), {}).update(s.points)
            labels_of.setdefault(key(s), s.labels)
    resources: dict[tuple[str, str, Key], dict[float, float]] = {}
    for which in ("requests", "limits"):
        for s in series.get(which, []):
            resources.setdefault((which, s.labels.get("resource", ""), key(s)), {}).update(s.points)

    def at(which: str, resource: str, k: Key, ts: float, scale: int) -> int | None:
        v = resources.get((which, resource, k), {}).get(ts)
        return None if v is None else int(round(v * scale))

    def service_of(k: Key) -> str:
        lbl = labels_of.get(k, {})
        return (service.get(k[:2]) or lbl.get("label_app_kubernetes_io_name") or lbl.get("app_kubernetes_io_name")
                or "")

    samples: list[Sample] = []
    for k in sorted(set(usage["cpu"]) | set(usage["memory"])):
        cpu, mem = usage["cpu"].get(k, {}), usage["memory"].get(k, {})
        seen = set(cpu) | set(mem)
        first, last = min(seen), max(seen)
        svc = service_of(k)
        where = node.get(k[:2]) or labels_of.get(k, {}).get("node", "")
        for ts in grid:
            if ts < first or ts > last:
                continue
            c, m = cpu.get(ts), mem.get(ts)
            samples.append(Sample(
                timestamp=_utc(ts), context=context, namespace=k[0], pod=k[1], container=k[2], service=svc,
                node=where, cpu_nanocores=None if c is None else int(round(c * 1e9)),
                memory_bytes=None if m is None else int(round(m)),
                cpu_request_m=at("requests", "cpu", k, ts, 1000), cpu_limit_m=at("limits", "cpu", k, ts, 1000),
                memory_request_bytes=at("requests", "memory", k, ts, 1),
                memory_limit_bytes=at("limits", "memory", k, ts, 1), source=SOURCE))

    restarts = {key(s): s.points for s in series.get("restarts", [])}
    terminations: list[Termination] = []
    for s in series.get("oom", []):
        k = key(s)
        counted: set[int] = set()
        for ts in sorted(s.points):
            if s.points[ts] < 1:
                continue
            count = int(restarts.get(k, {}).get(ts, 0))
            if count in counted:
                continue
            counted.add(count)
            terminations.append(Termination(
                timestamp=_utc(ts), context=context, namespace=k[0], pod=k[1], container=k[2], service=service_of(k),
                reason="OOMKilled", restart_count=count, memory_limit_bytes=at("limits", "memory", k, ts, 1),
                source=SOURCE))
    return samples, terminations


def error_message(url: str, status: int, reason: str, body: bytes, *, what: str) -> PrometheusHTTPError:
    """The one-line error of an HTTP error answer, with Prometheus' ``errorType: error`` when the
    body is its JSON error envelope, else the body's first line."""
    error_type = error = ""
    try:
        doc = json.loads(body)
        if isinstance(doc, Mapping):
            error_type, error = str(doc.get("errorType") or ""), str(doc.get("error") or "")
    except ValueError:
        pass
    if error or error_type:
        detail = f"{error_type}: {error}" if error_type else error
    else:
        text = body.decode("utf-8", "replace").strip()
        detail = text.splitlines()[0] if text else "(empty body)"
    return PrometheusHTTPError(f"Prometheus at {url} answered {status} {reason} to the {what} query: {detail}",
                               status=status, error_type=error_type, error=error)


# --- the HTTP client ------------------------------------------------------------------------


class PrometheusSource:
    """Range queries against one Prometheus (``url`` as ``--prometheus`` gives it, e.g.
    ``http://127.0.0.1:9090``), with an optional bearer token and CA bundle."""

    def __init__(self, url: str, *, token: str | None = None, token_file: str | None = None,
                 ca_file: str | None = None, context: str = "prometheus", timeout: float = DEFAULT_TIMEOUT,
                 max_points: int = MAX_POINTS) -> None:
        import urllib3

        if not url.startswith(("http://", "https://")):
            raise InputError("not an http(s) URL", field="--prometheus", value=url,
                             valid="a URL such as http://127.0.0.1:9090")
        if token_file:  # e.g. a service account's /var/run/secrets/kubernetes.io/serviceaccount/token
            try:
                with open(token_file, encoding="utf-8") as f:
                    token = f.read().strip()
            except OSError as e:
                raise InputError(f"cannot read the bearer token: {e.strerror}", file=token_file) from e
        if ca_file:
            try:
                with open(ca_file, "rb"):
                    pass
            except OSError as e:
                raise InputError(f"cannot read the CA bundle: {e.strerror}", file=ca_file) from e
        parts = urlsplit(url)
        self._headers = {"Accept": "application/json"}
        if parts.username is not None:  # basic auth in the URL: sent as a header, never shown in a message
            self._headers.update(urllib3.make_headers(basic_auth=f"{unquote(parts.username)}:"
                                                                 f"{unquote(parts.password or '')}"))
            host = parts.hostname or ""
            netloc = (f"[{host}]" if ":" in host else host) + (f":{parts.port}" if parts.port else "")
            url = urlunsplit(parts._replace(netloc=netloc))
        self.url = url.rstrip("/")
        """The URL without credentials: what every message names."""
        self.context = context
        self.max_points = max_points
        if token:
            self._headers["Authorization"] = f"Bearer {token}"
        kwargs: dict[str, Any] = {"timeout": urllib3.Timeout(connect=min(timeout, 10.0), read=timeout),
                                  "retries": False}
        if ca_file:
            kwargs.update(cert_reqs="CERT_REQUIRED", ca_certs=ca_file)
        self._http = urllib3.PoolManager(**kwargs)
        self.queries_sent = 0

    def _get(self, path: str, fields: Mapping[str, str], *, what: str) -> Mapping[str, Any]:
        import urllib3

        try:
            response = self._http.request("GET", self.url + path, fields=dict(fields), headers=self._headers)
        except urllib3.exceptions.SSLError as e:
            raise PrometheusUnreachable(f"Prometheus at {self.url}: TLS failed ({_reason(e)}); check --ca-file") from e
        except urllib3.exceptions.NewConnectionError as e:  # urllib3 2: a ConnectTimeoutError subclass, so first
            raise PrometheusUnreachable(f"Prometheus at {self.url} is unreachable ({_reason(e)}); is it running "
                                        "and is --prometheus right?") from e
        except urllib3.exceptions.TimeoutError as e:
            raise PrometheusUnreachable(f"Prometheus at {self.url} did not answer in time ({_reason(e)})") from e
        except urllib3.exceptions.HTTPError as e:
            raise PrometheusUnreachable(f"Prometheus at {self.url} is unreachable ({_reason(e)}); is it running "
                                        "and is --prometheus right?") from e
        self.queries_sent += 1
        if response.status >= 400:
            raise error_message(self.url, response.status, response.reason or "", response.data, what=what)
        try:
            body = json.loads(response.data)
        except ValueError as e:
            raise PrometheusError(f"Prometheus at {self.url} answered the {what} query with something that is not "
                                  f"JSON ({response.headers.get('Content-Type', 'no content type')})") from e
        if not isinstance(body, Mapping) or body.get("status") != "success":
            raise error_message(self.url, response.status, response.reason or "", response.data, what=what)
        return body

    def query_range(self, query: str, *, start: datetime, end: datetime, step: timedelta,
                    what: str = "range", warnings: list[str] | None = None) -> list[Series]:
        """``query`` over ``[start, end]``, paged so no request exceeds :attr:`max_points` points."""
        parts = []
        for first, last in pages(start, end, step, max_points=self.max_points):
            body = self._get("/api/v1/query_range", {
                "query": query, "start": _epoch(first), "end": _epoch(last), "step": seconds_text(step)}, what=what)
            if warnings is not None:
                warnings.extend(f"Prometheus: {w}" for w in body.get("warnings") or [])
            parts.append(parse_matrix(body, what=what))
        return merge_pages(parts)

    def read(self, *, end: datetime | None = None, window: timedelta = DEFAULT_WINDOW,
             step: timedelta = DEFAULT_STEP, namespace: str | None = None,
             rate_window: timedelta | None = None) -> PrometheusResult:
        """The samples and OOM kills of ``window`` ending at ``end`` (default now); CPU is
        ``rate`` over ``rate_window`` (default ``step``, as krr)."""
        if window <= timedelta(0):
            raise InputError("must be positive", field="--window", value=str(window), valid="e.g. 14d")
        end = (end or datetime.now(timezone.utc)).astimezone(timezone.utc)
        end = _EPOCH + timedelta(milliseconds=epoch_ms(end))  # Prometheus' resolution
        start = end - window
        if step < timedelta(milliseconds=1) or step % timedelta(milliseconds=1):
            raise InputError("not a whole number of milliseconds", field="--step", value=str(step),
                             valid="a step such as 75s")
        warnings: list[str] = []
        before = self.queries_sent
        found: dict[str, list[Series]] = {}
        for what, query in queries(step=step, namespace=namespace, rate_window=rate_window).items():
            found[what] = self.query_range(query, start=start, end=end, step=step, what=what, warnings=warnings)
            if not found[what] and what not in ("oom", "restarts"):  # no OOM kill is the good news
                warnings.append(f"no {what} series in {_span(start, end)}: recorded as a gap")
        if not found["cpu"] and not found["memory"]:
            raise NoSamples(f"Prometheus at {self.url} has no container usage samples in {_span(start, end)}"
                            + (f" for namespace {namespace}" if namespace else "")
                            + ": every cpu and memory series is empty (is cAdvisor scraped?)")
        samples, terminations = join(found, context=self.context, grid=grid(start, end, step))
        return PrometheusResult(samples, terminations, warnings, start=start, end=end,
                                queries=self.queries_sent - before)


def read_prometheus(url: str, *, token: str | None = None, token_file: str | None = None, ca_file: str | None = None,
                    context: str = "prometheus", end: datetime | None = None, window: timedelta = DEFAULT_WINDOW,
                    step: timedelta = DEFAULT_STEP, namespace: str | None = None, rate_window: timedelta | None = None,
                    timeout: float = DEFAULT_TIMEOUT) -> PrometheusResult:
    """``PrometheusSource(url, ...).read(...)`` in one call."""
    return PrometheusSource(url, token=token, token_file=token_file, ca_file=ca_file, context=context,
                            timeout=timeout).read(end=end, window=window, step=step, namespace=namespace,
                                                  rate_window=rate_window)


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def epoch_ms(t: datetime) -> int:
    """Milliseconds since the epoch, exactly: Prometheus' own timestamp unit."""
    return (t - _EPOCH) // timedelta(milliseconds=1)


def _epoch(t: datetime) -> str:
    ms = epoch_ms(t)
    return f"{ms // 1000}.{ms % 1000:03d}"


def grid(start: datetime, end: datetime, step: timedelta) -> list[float]:
    """The evaluation times of a range query, as Prometheus stamps them (whole milliseconds, in
    seconds: the floats its JSON timestamps parse to)."""
    first, step_ms = epoch_ms(start), step // timedelta(milliseconds=1)
    return [(first + k * step_ms) / 1000 for k in range(int((end - start) // step) + 1)]


def _span(start: datetime, end: datetime) -> str:
    return f"the window {start:%Y-%m-%dT%H:%M:%SZ} .. {end:%Y-%m-%dT%H:%M:%SZ}"


def _reason(e: BaseException) -> str:
    inner = getattr(e, "reason", None) or e
    text = str(inner)
    if "Connection refused" in text or "Errno 111" in text:
        return "connection refused"
    return clip(text, 200)
