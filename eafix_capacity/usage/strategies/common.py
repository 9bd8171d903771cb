"""What the strategies share: their settings, and the samples frame reduced per pod and workload.

A strategy reads the samples DataFrame (``usage.samples.FRAME_COLUMNS``), the containers'
terminations and a :class:`Settings`, and returns recommendations; nothing here does I/O.
Missing figures (``None`` in a sample, NaN / <NA> in the frame) are gaps: they are not
counted as samples and never enter a percentile or a peak as zeros.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd

from ...catalog import Catalog
from ...errors import InputError
from ..recommend import ALL_HOURS, FIGURES, MiB, Figures, SessionWindow
from ..samples import Termination

NEEDED_COLUMNS = ("timestamp", "namespace", "pod", "container", "service", "cpu_m", "memory_bytes",
                  "cpu_request_m", "cpu_limit_m", "memory_request_bytes", "memory_limit_bytes")
POD_KEYS = ["namespace", "service", "pod", "container"]
RESOURCES = ("cpu", "memory")


@dataclass(frozen=True)
class Settings:
    """Every strategy's settings, with the defaults of the tool each one mirrors."""

    # krr simple (robusta_krr/strategies/simple.py SimpleStrategySettings)
    cpu_percentile: float = 95.0
    memory_buffer_percentage: float = 15.0
    points_required: int = 100
    allow_hpa: bool = False
    oom_memory_buffer_percentage: float = 25.0
    # krr's Config.cpu_min_value (millicores) and memory_min_value (MiB), applied by
    # robusta_krr/core/runner.py _round_value after rounding up
    cpu_min_m: int = 10
    memory_min_bytes: int = 100 * MiB
    hpa: Mapping[str, frozenset[str]] = field(default_factory=lambda: MappingProxyType({}))
    """Per workload (service), the resources an HPA scales it on (see :func:`hpa_from_catalog`)."""
    window: SessionWindow = ALL_HOURS
    """The hours ``session-peak`` reads."""
    # VPA recommender (vertical-pod-autoscaler/pkg/recommender/logic/recommender.go flags,
    # model/aggregations_config.go defaults)
    vpa_target_percentile: float = 0.9
    vpa_lower_percentile: float = 0.5
    vpa_upper_percentile: float = 0.95
    vpa_margin_fraction: float = 0.15
    vpa_pod_min_cpu_m: float = 25.0
    vpa_pod_min_memory_mb: float = 250.0
    """``--pod-recommendation-min-memory-mb``; the recommender multiplies it by 1024 x 1024."""
    vpa_half_life_hours: float = 24.0
    vpa_memory_interval_hours: float = 24.0
    vpa_confidence_interval_hours: float = 24.0
    vpa_history_days: float | None = 8.0
    """The Prometheus history provider's ``--history-length`` (8d); None reads everything."""
    vpa_oom_bump_ratio: float = 1.2
    vpa_oom_min_bump_bytes: int = 100 * MiB
    vpa_cpu_first_bucket_cores: float = 0.001
    """aggregations_config.go cpuHistogramOptions (0.01 before autoscaler PR #7554)."""
    containers_per_pod: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))
    """Per workload, the containers its pods run (default: the containers seen in the samples)."""

    def __post_init__(self) -> None:
        _in_range("cpu_percentile", self.cpu_percentile, 0, 100, "a percentile above 0, at most 100")
        for name in ("memory_buffer_percentage", "oom_memory_buffer_percentage", "vpa_margin_fraction"):
            _in_range(name, getattr(self, name), 0, math.inf, "a finite number, 0 or more", low_open=False)
        for name in ("vpa_target_percentile", "vpa_lower_percentile", "vpa_upper_percentile"):
            _in_range(name, getattr(self, name), 0, 1, "a fraction above 0, at most 1")
        for name in ("vpa_half_life_hours", "vpa_memory_interval_hours", "vpa_confidence_interval_hours",
                     "vpa_oom_bump_ratio", "vpa_cpu_first_bucket_cores"):
            _in_range(name, getattr(self, name), 0, math.inf, "a finite number above 0")
        if self.vpa_history_days is not None:
            _in_range("vpa_history_days", self.vpa_history_days, 0, math.inf, "days above 0, or None for all")
        for name in ("points_required", "cpu_min_m", "memory_min_bytes", "vpa_oom_min_bump_bytes"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < (1 if name == "points_required" else 0):
                raise InputError("not a whole number", field=name, value=v,
                                 valid="an integer of at least 1" if name == "points_required" else "0 or more")
        for name in ("vpa_pod_min_cpu_m", "vpa_pod_min_memory_mb"):
            _in_range(name, getattr(self, name), 0, math.inf, "a finite number, 0 or more", low_open=False)
        for workload, resources in self.hpa.items():
            bad = sorted(set(resources) - set(RESOURCES))
            if bad:
                raise InputError("unknown HPA resource", obj=workload, field="hpa", value=bad[0],
                                 valid="cpu or memory")


def _in_range(name: str, v: object, low: float, high: float, valid: str, *, low_open: bool = True) -> None:
    ok = (not isinstance(v, bool) and isinstance(v, (int, float)) and math.isfinite(v)
          and (v > low if low_open else v >= low) and v <= high)
    if not ok:
        raise InputError("out of range", field=name, value=v, valid=valid)


def hpa_from_catalog(catalog: Catalog) -> dict[str, frozenset[str]]:
    """The resources each service's HPA scales on (the catalogue's HPAs target CPU)."""
    return {s.name: frozenset({"cpu"}) for s in catalog.services if s.hpa is not None}


def check_frame(frame: pd.DataFrame) -> None:
    if not isinstance(frame, pd.DataFrame):
        raise InputError("not a samples DataFrame", value=type(frame).__name__,
                         valid="the DataFrame the usage store loads (usage.samples.FRAME_COLUMNS)")
    missing = [c for c in NEEDED_COLUMNS if c not in frame.columns]
    if missing:
        raise InputError("samples frame without column", field=missing[0], value=missing,
                         valid="the columns of usage.samples.FRAME_COLUMNS")


def workload_of(service: object, pod: object) -> str:
    """The workload a pod belongs to: its service label, else the pod itself."""
    s = "" if service is None or (isinstance(service, float) and math.isnan(service)) else str(service)
    return s or str(pod)


def _opt_int(v: object) -> int | None:
    if v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)):
        return None
    return int(v)  # type: ignore[call-overload]


@dataclass(frozen=True)
class WorkloadStats:
    """One (namespace, workload, container) reduced for krr's rules."""

    namespace: str
    workload: str
    container: str
    pods: int
    samples: int
    cpu_samples: int
    memory_samples: int
    cpu_value: float | None
    """The max over pods of each pod's CPU percentile (millicores)."""
    memory_peak: int | None
    current: Figures
    first: datetime | None
    last: datetime | None


@dataclass(frozen=True)
class PodContainers:
    """The frame's rows grouped by pod container (namespace, service, pod, container):
    ``codes`` per row, and the rows of pod container ``i`` at ``order[bounds[i]:bounds[i+1]]``
    (in frame order). Built with factorize and one integer sort, so 2 million rows group in
    tens of milliseconds rather than the seconds a four-key ``groupby`` takes."""

    keys: tuple[tuple[str, str, str, str], ...]
    codes: np.ndarray
    order: np.ndarray
    bounds: np.ndarray

    def rows(self, i: int) -> np.ndarray:
        return self.order[self.bounds[i]:self.bounds[i + 1]]

    def workload(self, i: int) -> tuple[str, str, str]:
        ns, svc, pod, c = self.keys[i]
        return ns, workload_of(svc, pod), c


def pod_containers(frame: pd.DataFrame) -> PodContainers:
    combined = np.zeros(len(frame), dtype=np.int64)
    labels = []
    for col in POD_KEYS:
        codes, uniques = pd.factorize(frame[col], use_na_sentinel=False)
        names = ["" if (u is None or u is pd.NA or (isinstance(u, float) and math.isnan(u))) else str(u)
                 for u in uniques]
        combined = combined * max(len(names), 1) + codes.astype(np.int64)
        labels.append(names)
    pc, uniq = pd.factorize(combined)
    keys = []
    for value in np.asarray(uniq, dtype=np.int64):
        parts = []
        for names in reversed(labels):
            value, code = divmod(int(value), max(len(names), 1))
            parts.append(names[code])
        ns, svc, pod, c = reversed(parts)
        keys.append((ns, svc, pod, c))
    pc = pc.astype(np.int16 if len(keys) < 2**15 else np.int64)
    order = np.argsort(pc, kind="stable")
    bounds = np.concatenate(([0], np.cumsum(np.bincount(pc, minlength=len(keys)))))
    return PodContainers(tuple(keys), pc, order, bounds)


def ns_array(ts: pd.Series) -> np.ndarray:
    """UTC timestamps as int64 nanoseconds since the epoch."""
    idx = pd.DatetimeIndex(ts)
    if idx.tz is not None:
        idx = idx.tz_convert("UTC").tz_localize(None)
    return idx.as_unit("ns").asi8


def current_figures(frame: pd.DataFrame, groups: PodContainers | None = None
                    ) -> dict[tuple[str, str, str], Figures]:
    """Each container's requests and limits at its latest sample: per figure the last known
    value of the most recently seen pod."""
    groups = groups if groups is not None else pod_containers(frame)
    t = ns_array(frame["timestamp"])
    cols = [as_float_array(frame[f]) for f in FIGURES]
    out: dict[tuple[str, str, str], tuple[int, Figures]] = {}
    for i in range(len(groups.keys)):
        rows = groups.rows(i)
        if len(rows) == 0:
            continue
        tt = t[rows]
        figures: list[int | None] = []
        for col in cols:
            v = col[rows]
            valid = ~np.isnan(v)
            if not valid.any():
                figures.append(None)
                continue
            at = np.flatnonzero(valid)[np.argmax(tt[valid])]
            figures.append(int(v[at]))
        seen = int(tt.max())
        k = groups.workload(i)
        if k not in out or seen >= out[k][0]:
            out[k] = (seen, Figures(*figures))
    return {k: v[1] for k, v in out.items()}


def workload_stats(frame: pd.DataFrame, *, cpu_percentile: float, inside: np.ndarray | None = None,
                   groups: PodContainers | None = None) -> list[WorkloadStats]:
    """Per pod: the CPU percentile (linear interpolation, as numpy's default and
    Prometheus' ``quantile_over_time``), the memory peak and the counts of non-missing
    samples; then per workload container the max over its pods and the summed counts.
    Rows outside ``inside`` (when given) are gaps; the current figures read every row."""
    if frame.empty:
        return []
    groups = groups if groups is not None else pod_containers(frame)
    current = current_figures(frame, groups)
    t = ns_array(frame["timestamp"])
    cpu = as_float_array(frame["cpu_m"])
    mem = as_float_array(frame["memory_bytes"])
    if inside is not None:
        cpu = np.where(inside, cpu, np.nan)
        mem = np.where(inside, mem, np.nan)
    acc: dict[tuple[str, str, str], dict[str, Any]] = {}
    for i in range(len(groups.keys)):
        rows = groups.rows(i)
        c, m = cpu[rows], mem[rows]
        c = c[~np.isnan(c)]
        mvalid = ~np.isnan(m)
        has = mvalid | ~np.isnan(cpu[rows])
        a = acc.setdefault(groups.workload(i), {"pods": 0, "samples": 0, "cpu_n": 0, "mem_n": 0, "cpu": None,
                                                "mem": None, "first": None, "last": None})
        a["pods"] += 1
        a["samples"] += int(has.sum())
        a["cpu_n"] += len(c)
        a["mem_n"] += int(mvalid.sum())
        if len(c):
            q = float(np.percentile(c, cpu_percentile))
            a["cpu"] = q if a["cpu"] is None else max(a["cpu"], q)
        if mvalid.any():
            # exact: the bytes go back to int from the float column only through the max
            peak = int(np.max(m[mvalid]))
            a["mem"] = peak if a["mem"] is None else max(a["mem"], peak)
        if has.any():
            th = t[rows][has]
            lo, hi = int(th.min()), int(th.max())
            a["first"] = lo if a["first"] is None else min(a["first"], lo)
            a["last"] = hi if a["last"] is None else max(a["last"], hi)
    out = [WorkloadStats(namespace=ns, workload=wl, container=container, pods=a["pods"], samples=a["samples"],
                         cpu_samples=a["cpu_n"], memory_samples=a["mem_n"], cpu_value=a["cpu"],
                         memory_peak=a["mem"], current=current.get((ns, wl, container), Figures()),
                         first=_utc(a["first"]), last=_utc(a["last"]))
           for (ns, wl, container), a in acc.items()]
    out.sort(key=lambda w: (w.namespace, w.workload, w.container))
    return out


def _utc(ns: int | None) -> datetime | None:
    return None if ns is None else pd.Timestamp(ns, tz="UTC").to_pydatetime()


@dataclass(frozen=True)
class OomKills:
    count: int
    max_limit_bytes: int | None
    """The largest memory limit a kill happened at (krr's MaxOOMKilledMemoryLoader)."""
    events: tuple[Termination, ...]


def oom_kills(terminations: Iterable[Termination]) -> dict[tuple[str, str, str], OomKills]:
    """The OOM kills per (namespace, workload, container)."""
    grouped: dict[tuple[str, str, str], list[Termination]] = {}
    for t in terminations:
        if not isinstance(t, Termination):
            raise InputError("not a Termination record", field="terminations", value=type(t).__name__,
                             valid="usage.samples.Termination")
        if t.reason != "OOMKilled":
            continue
        grouped.setdefault((t.namespace, workload_of(t.service, t.pod), t.container), []).append(t)
    out = {}
    for k, events in grouped.items():
        limits = [e.memory_limit_bytes for e in events if e.memory_limit_bytes is not None]
        out[k] = OomKills(len(events), max(limits) if limits else None,
                          tuple(sorted(events, key=lambda e: e.timestamp)))
    return out


def span_label(first: datetime | None, last: datetime | None) -> str:
    if first is None or last is None:
        return ""
    return f"{first:%Y-%m-%dT%H:%MZ}..{last:%Y-%m-%dT%H:%MZ}"


def as_float_array(s: pd.Series) -> np.ndarray:
    """A numeric column as float64 with NaN for missing (``Int64``'s <NA> included)."""
    return s.astype("float64").to_numpy(na_value=np.nan) if hasattr(s, "to_numpy") else np.asarray(s, float)
