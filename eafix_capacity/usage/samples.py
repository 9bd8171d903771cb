"""The one record every utilisation source yields, and the table the analysis reads.

``kubectl top``, the metrics API and Prometheus report usage in different shapes and units
(``250m`` and ``12Mi`` columns, ``123456789n`` and ``12345Ki`` quantities, float series).
Each source parses at its boundary into :class:`Sample` (per container) and
:class:`NodeSample` (per node), so the store, the charts and the right-sizing strategies
never see a source's format. A figure the source did not have (``metrics not available
yet``, a pod without metrics, a series with a gap) is ``None``: a missing sample, never a
zero. CPU is kept in nanocores, the metrics API's own unit, so nothing is rounded;
``cpu_m`` is the export's millicores.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

SOURCES = ("kubectl-top", "metrics-api", "prometheus", "sim-history")
SERVICE_LABEL = "app.kubernetes.io/name"
"""The label a pod's service is read from (the renderer's ``app.kubernetes.io/name``)."""

EXPORT_COLUMNS = ("timestamp", "namespace", "pod", "container", "service", "node", "cpu_m", "memory_bytes",
                  "cpu_request_m", "cpu_limit_m", "memory_request_bytes", "memory_limit_bytes")
"""``usage export``'s columns, in this order (issue 10)."""
FRAME_COLUMNS = ("timestamp", "context", "namespace", "pod", "container", "service", "node", "cpu_m",
                 "memory_bytes", "cpu_request_m", "cpu_limit_m", "memory_request_bytes", "memory_limit_bytes",
                 "source")
"""The columns of the DataFrame the store loads and the strategies and charts read: ``timestamp``
a tz-aware UTC ``datetime64``; ``cpu_m`` float millicores (nanocores / 10**6); the byte and
millicore figures nullable integers (``Int64``); the names ``category`` or ``str``."""


@dataclass(frozen=True, slots=True)
class Sample:
    """One container's usage at one instant, with its request and limit at that time."""

    timestamp: datetime
    """UTC, timezone-aware."""
    context: str
    namespace: str
    pod: str
    container: str
    service: str
    """The pod's ``app.kubernetes.io/name`` ("" when it has none)."""
    node: str
    """The node the pod runs on ("" when unknown)."""
    cpu_nanocores: int | None
    memory_bytes: int | None
    """The working set (metrics-server's and cAdvisor's ``container_memory_working_set_bytes``)."""
    cpu_request_m: int | None
    cpu_limit_m: int | None
    memory_request_bytes: int | None
    memory_limit_bytes: int | None
    source: str

    def __post_init__(self) -> None:
        if self.timestamp.tzinfo is None or self.timestamp.utcoffset() != timezone.utc.utcoffset(None):
            raise ValueError(f"sample timestamp {self.timestamp!r} is not UTC (give a timezone-aware UTC datetime)")

    @property
    def cpu_m(self) -> float | None:
        return None if self.cpu_nanocores is None else self.cpu_nanocores / 10**6

    @property
    def missing(self) -> bool:
        return self.cpu_nanocores is None and self.memory_bytes is None


@dataclass(frozen=True, slots=True)
class NodeSample:
    """One node's usage at one instant (``kubectl top node``, NodeMetrics, cAdvisor's root cgroup)."""

    timestamp: datetime
    context: str
    node: str
    cpu_nanocores: int | None
    memory_bytes: int | None
    source: str


@dataclass(frozen=True, slots=True)
class Termination:
    """A container's last termination as the pod status (or kube-state-metrics) reports it:
    the OOM kills and restart loops the right-sizing and the sign-off gates look at."""

    timestamp: datetime
    """When it was seen (or the termination's ``finishedAt`` when known)."""
    context: str
    namespace: str
    pod: str
    container: str
    service: str
    reason: str
    """``OOMKilled``, ``Error``, ``Completed``, ...; the kubelet's ``lastState.terminated.reason``."""
    restart_count: int
    memory_limit_bytes: int | None
    """The limit the container ran with when it was killed."""
    source: str
