"""``vpa``: the Vertical Pod Autoscaler recommender's target, lower and upper bound.

Mirrors kubernetes/autoscaler vertical-pod-autoscaler/pkg/recommender as if it had watched
the samples: per workload container one decaying CPU histogram of every sample weighted
by the container's request (model/aggregate_container_state.go addCPUSample, at least
0.1 core) and one of memory peaks, a pod's peak per 24 h interval (model/container.go
addMemorySample); exponential buckets growing 5% (util/histogram_options.go), 24 h
half-life (util/decaying_histogram.go); target p90, lower bound p50, upper bound p95, each
+15% (logic/recommender.go, logic/estimator.go), the upper bound x (1 + 1/confidence),
the lower x (1 + 0.001/confidence)^-2 with confidence = min(history in days, samples /
1440) (estimator.go getConfidence), then at least 25m and 250 MiB per pod, split over its
containers. An OOM kill adds a memory sample of max(request, peak) x 1.2, at least +100
MiB (container.go RecordOOM). History is the last 8 days, the Prometheus history
provider's default ``--history-length``. Limits keep their ratio to the request, as the
admission controller's default ``controlledValues: RequestsAndLimits`` sets them
(pkg/utils/vpa/limit_and_request_scaling.go).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable

import numpy as np
import pandas as pd

from ...errors import InputError
from ...quantity import from_bytes
from ..recommend import Figures, Recommendation, finish
from ..samples import Termination
from .common import (PodContainers, Settings, as_float_array, check_frame, current_figures, ns_array,
                     pod_containers, span_label, workload_of)

NAME = "vpa"
MAX_RESOURCE_AMOUNT = 10**14          # model/types.go MaxResourceAmount
MIN_SAMPLE_WEIGHT = 0.1               # model/aggregations_config.go minSampleWeight
EPSILON = 0.001 * MIN_SAMPLE_WEIGHT   # ... epsilon: the least weight of a non-empty bucket
BUCKET_GROWTH = 0.05                  # DefaultHistogramBucketSizeGrowth
HOUR_NS = 3600 * 10**9


@dataclass(frozen=True)
class Buckets:
    """util/histogram_options.go exponentialHistogramOptions."""

    max_value: float
    first: float
    ratio: float
    num: int

    @classmethod
    def make(cls, max_value: float, first: float, ratio: float = 1 + BUCKET_GROWTH) -> Buckets:
        num = int(math.ceil(math.log(max_value * (ratio - 1) / first + 1) / math.log(ratio))) + 1
        return cls(max_value, first, ratio, num)

    def find(self, values: np.ndarray) -> np.ndarray:
        """FindBucket: 0 below the first bucket's size, else floor(log_ratio(v (ratio-1) / first + 1))."""
        out = np.zeros(len(values), dtype=np.int64)
        big = values >= self.first
        idx = (np.log(values[big] * (self.ratio - 1) / self.first + 1) / math.log(self.ratio)).astype(np.int64)
        out[big] = np.minimum(idx, self.num - 1)
        return out

    def start(self, bucket: int) -> float:
        return 0.0 if bucket == 0 else self.first * (self.ratio ** bucket - 1) / (self.ratio - 1)


MEMORY_BUCKETS = Buckets.make(1e12, 1e7)   # memoryHistogramOptions: 10 MB first bucket, 1 TB max


def percentile(weights: np.ndarray, p: float, buckets: Buckets) -> float:
    """util/histogram.go Percentile: the end of the first bucket where the running weight
    reaches p x the total (the start of the last bucket, which has no end); 0 when empty."""
    nonempty = np.flatnonzero(weights >= EPSILON)
    if len(nonempty) == 0:
        return 0.0
    lo, hi = int(nonempty[0]), int(nonempty[-1])
    threshold = p * float(weights.sum())
    running = np.cumsum(weights[lo:hi])
    bucket = lo + int(np.searchsorted(running, threshold, side="left"))
    if bucket < buckets.num - 1:
        return buckets.start(bucket + 1)
    return buckets.start(bucket)


def _amount(v: float) -> int:
    """model/types.go resourceAmountFromFloat: truncated, 0 below 0, capped at 1e14."""
    if not v > 0:
        return 0
    return MAX_RESOURCE_AMOUNT if v > MAX_RESOURCE_AMOUNT else int(v)


def _confidence_scaled(base: int, multiplier: float, exponent: float, confidence: float) -> int:
    """estimator.go confidenceMultiplier: base x (1 + multiplier / confidence)^exponent."""
    if confidence <= 0:   # Go: 1/0 = +Inf; Inf^1 = Inf (capped), Inf^-2 = 0
        return (MAX_RESOURCE_AMOUNT if base > 0 else 0) if exponent > 0 else 0
    return _amount(base * math.pow(1 + multiplier / confidence, exponent))


@dataclass(frozen=True)
class Estimate:
    target: int
    lower: int
    upper: int


def estimate(weights: np.ndarray, buckets: Buckets, *, to_amount: float, confidence: float, minimum: int,
             settings: Settings) -> Estimate:
    """recommender.go CreatePodResourceRecommender: percentile, + margin, the bounds scaled by
    confidence, then the per-container minimum."""
    def margin(q: float) -> int:
        base = _amount(percentile(weights, q, buckets) * to_amount)
        return base + _amount(base * settings.vpa_margin_fraction)
    target = margin(settings.vpa_target_percentile)
    lower = _confidence_scaled(margin(settings.vpa_lower_percentile), 0.001, -2.0, confidence)
    upper = _confidence_scaled(margin(settings.vpa_upper_percentile), 1.0, 1.0, confidence)
    return Estimate(max(target, minimum), max(lower, minimum), max(upper, minimum))


def _proportional_limit(limit: int | None, request: int | None, recommended: int) -> int | None:
    """limit_and_request_scaling.go: the limit keeps its ratio to the request (big.Int Div)."""
    if limit is None or request is None or request <= 0:
        return None
    return limit * recommended // request


def run(frame: pd.DataFrame, terminations: Iterable[Termination] = (), settings: Settings = Settings()
        ) -> list[Recommendation]:
    check_frame(frame)
    if frame.empty:
        return []
    terminations = list(terminations)
    for t in terminations:
        if not isinstance(t, Termination):
            raise InputError("not a Termination record", field="terminations", value=type(t).__name__,
                             valid="usage.samples.Termination")
    pcs = pod_containers(frame)
    current = current_figures(frame, pcs)
    t_ns = ns_array(frame["timestamp"])
    history = settings.vpa_history_days
    keep = np.ones(len(frame), dtype=bool)
    if history is not None:
        start = int(t_ns.max()) - int(history * 24 * HOUR_NS)
        keep = t_ns >= start
        terminations = [t for t in terminations if pd.Timestamp(t.timestamp).as_unit("ns").value >= start]
    window = f"last {history:g} days" if history is not None else "all hours"

    pc_keys = pcs.keys
    groups: dict[tuple[str, str, str], int] = {}
    pc_group = np.empty(len(pc_keys), dtype=np.int64)
    by_pod: dict[tuple[str, str, str], int] = {}
    for i, (ns, svc, pod, c) in enumerate(pc_keys):
        pc_group[i] = groups.setdefault((ns, workload_of(svc, pod), c), len(groups))
        by_pod[(ns, pod, c)] = i
    n_groups = len(groups)
    codes = pcs.codes
    gid = pc_group[codes]

    half_life = settings.vpa_half_life_hours * HOUR_NS
    cpu_m = np.where(keep, as_float_array(frame["cpu_m"]), np.nan)
    mem = np.where(keep, as_float_array(frame["memory_bytes"]), np.nan)
    has = ~np.isnan(cpu_m) | ~np.isnan(mem)

    # --- CPU: every sample, weighted by its request (aggregate_container_state.go addCPUSample)
    ok = ~np.isnan(cpu_m)
    cg, ct = gid[ok], t_ns[ok]
    cores = np.floor(cpu_m[ok]) / 1000.0   # CPUAmountFromCores: usage is whole millicores
    req = as_float_array(frame["cpu_request_m"])[ok]
    weight = np.maximum(np.nan_to_num(np.floor(req), nan=0.0) / 1000.0, MIN_SAMPLE_WEIGHT)
    cpu_buckets = Buckets.make(1000.0, settings.vpa_cpu_first_bucket_cores)
    cpu_hist = _histograms(cg, ct, cores, weight, cpu_buckets, n_groups, half_life)
    cpu_n = np.bincount(cg, minlength=n_groups)
    cpu_first = np.full(n_groups, np.iinfo(np.int64).max, dtype=np.int64)
    cpu_last = np.full(n_groups, np.iinfo(np.int64).min, dtype=np.int64)
    np.minimum.at(cpu_first, cg, ct)
    np.maximum.at(cpu_last, cg, ct)

    # --- memory: one peak per pod and 24 h interval (container.go addMemorySample, RecordOOM)
    okm = ~np.isnan(mem)
    mem_req = as_float_array(frame["memory_request_bytes"])
    pc_w, end_w, peak_w, oom_by_pc = _memory_peaks(
        pcs, okm, t_ns, mem, mem_req, terminations, by_pod, current,
        interval=int(settings.vpa_memory_interval_hours * HOUR_NS), settings=settings)
    oom_info: dict[int, list[int]] = {}
    for i, bumps in oom_by_pc.items():
        oom_info.setdefault(int(pc_group[i]), []).extend(bumps)
    mem_hist = _histograms(pc_group[pc_w], end_w, peak_w.astype(np.float64), np.ones(len(peak_w)),
                           MEMORY_BUCKETS, n_groups, half_life)
    mem_n = np.bincount(gid[okm], minlength=n_groups)
    samples_n = np.bincount(gid[has], minlength=n_groups)
    pods_n = np.bincount(pc_group, minlength=n_groups)
    first_has = np.full(n_groups, np.iinfo(np.int64).max, dtype=np.int64)
    last_has = np.full(n_groups, np.iinfo(np.int64).min, dtype=np.int64)
    np.minimum.at(first_has, gid[has], t_ns[has])
    np.maximum.at(last_has, gid[has], t_ns[has])

    containers: dict[tuple[str, str], set[str]] = {}
    for ns, wl, c in groups:
        containers.setdefault((ns, wl), set()).add(c)
    interval_ns = settings.vpa_confidence_interval_hours * HOUR_NS
    out = []
    for (ns, wl, c), g in groups.items():
        per_pod = settings.containers_per_pod.get(wl) or len(containers[(ns, wl)])
        fraction = 1.0 / per_pod
        min_cpu = _amount(_amount(settings.vpa_pod_min_cpu_m * 0.001 * 1000.0) * fraction)
        min_mem = _amount(_amount(settings.vpa_pod_min_memory_mb * 1024 * 1024) * fraction)
        # estimator.go getConfidence, from the CPU samples only (as the aggregate counts them)
        n = int(cpu_n[g])
        confidence = 0.0 if n == 0 else min((cpu_last[g] - cpu_first[g]) / interval_ns,
                                            n / (interval_ns / (60 * 10**9)))
        cpu = estimate(cpu_hist[g], cpu_buckets, to_amount=1000.0, confidence=confidence, minimum=min_cpu,
                       settings=settings)
        memory = estimate(mem_hist[g], MEMORY_BUCKETS, to_amount=1.0, confidence=confidence, minimum=min_mem,
                          settings=settings)
        cur = current.get((ns, wl, c), Figures())
        hpa = settings.hpa.get(wl, frozenset())
        info: list[str] = []
        cpu_unknown = n == 0 or ("cpu" in hpa and not settings.allow_hpa)
        memory_unknown = int(mem_n[g]) == 0 or ("memory" in hpa and not settings.allow_hpa)
        if n == 0 and int(mem_n[g]) == 0:
            info.append("not enough data (0 samples)")
        elif n == 0 or int(mem_n[g]) == 0:
            info.append(f"not enough data for {'cpu' if n == 0 else 'memory'} (0 samples)")
        for resource, count in (("cpu", n), ("memory", int(mem_n[g]))):
            if count and resource in hpa and not settings.allow_hpa:
                info.append(f"HPA detected on {resource}: left unchanged (allow_hpa to recommend anyway)")
        kills = oom_info.get(g, [])
        for needed in kills[-1:]:
            info.append(f"OOM kill: memory raised to {from_bytes(needed)} in its 24 h peak "
                        f"(max(request, peak) x {settings.vpa_oom_bump_ratio:g}, at least "
                        f"+{from_bytes(settings.vpa_oom_min_bump_bytes)})")
        info.append(f"confidence {confidence:.2f} days; bounds cpu {cpu.lower}m..{_m(cpu.upper)}, memory "
                    f"{from_bytes(memory.lower)}..{_b(memory.upper)}")
        rec = Figures(
            cpu_request_m=None if cpu_unknown else cpu.target,
            cpu_limit_m=None if cpu_unknown else _proportional_limit(cur.cpu_limit_m, cur.cpu_request_m, cpu.target),
            memory_request_bytes=None if memory_unknown else memory.target,
            memory_limit_bytes=None if memory_unknown else _proportional_limit(
                cur.memory_limit_bytes, cur.memory_request_bytes, memory.target))
        first = pd.Timestamp(first_has[g], tz="UTC").to_pydatetime() if samples_n[g] else None
        last = pd.Timestamp(last_has[g], tz="UTC").to_pydatetime() if samples_n[g] else None
        out.append(finish(
            namespace=ns, workload=wl, container=c, current=cur, recommended=rec,
            cpu_unknown=cpu_unknown, memory_unknown=memory_unknown, oom_kills=len(kills),
            samples=int(samples_n[g]), cpu_samples=n, memory_samples=int(mem_n[g]), pods=int(pods_n[g]),
            strategy=NAME, window=f"{window} {span_label(first, last)}".strip(), info=tuple(info),
            lower=Figures(cpu_request_m=cpu.lower, memory_request_bytes=memory.lower),
            upper=Figures(cpu_request_m=cpu.upper, memory_request_bytes=memory.upper),
            first=first, last=last))
    out.sort(key=lambda r: (r.namespace, r.workload, r.container))
    return out


def _m(v: int) -> str:
    return "unbounded" if v >= MAX_RESOURCE_AMOUNT else f"{v}m"


def _b(v: int) -> str:
    return "unbounded" if v >= MAX_RESOURCE_AMOUNT else str(from_bytes(v))


def _histograms(group: np.ndarray, t_ns: np.ndarray, values: np.ndarray, weights: np.ndarray, buckets: Buckets,
                n_groups: int, half_life_ns: float) -> np.ndarray:
    """One decaying histogram per group: weight x 2^((t - reference) / half-life), the
    reference the group's first sample time rounded to the half-life (decaying_histogram.go
    shiftReferenceTimestamp; only relative weights matter)."""
    hist = np.zeros((n_groups, buckets.num), dtype=np.float64)
    if len(values) == 0:
        return hist
    first = np.full(n_groups, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(first, group, t_ns)
    hl = int(half_life_ns)
    ref = ((first + hl // 2) // hl) * hl
    decay = np.exp2((t_ns - ref[group]) / half_life_ns)
    flat = group * buckets.num + buckets.find(values)
    hist += np.bincount(flat, weights=weights * decay, minlength=n_groups * buckets.num).reshape(
        n_groups, buckets.num)
    return hist


def _memory_peaks(groups: PodContainers, valid: np.ndarray, t_all: np.ndarray, mem: np.ndarray,
                  request_all: np.ndarray, terminations: list[Termination], by_pod: dict[tuple[str, str, str], int],
                  current: dict[tuple[str, str, str], Figures], *, interval: int, settings: Settings
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[int, list[int]]]:
    """Each pod container's memory peak per interval [t0 + k i, t0 + (k+1) i), t0 its first
    sample, added at the interval's end. As container.go: a window whose first sample is 0
    keeps 0 (a peak is only replaced when the old one is not 0), and an OOM kill is a sample
    of max(request, peak so far) x 1.2, at least +100 MiB."""
    n_pc = len(groups.keys)
    series: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    t0 = np.full(n_pc, np.iinfo(np.int64).max, dtype=np.int64)
    for i in range(n_pc):
        rows = groups.rows(i)
        rows = rows[valid[rows]]
        tt = t_all[rows]
        if len(tt) > 1 and not (np.diff(tt) >= 0).all():
            by_time = np.argsort(tt, kind="stable")
            rows, tt = rows[by_time], tt[by_time]
        series.append((tt, mem[rows].astype(np.int64), request_all[rows]))
        if len(tt):
            t0[i] = tt[0]
    events: list[tuple[int, int, Termination]] = []
    for term in terminations:
        if term.reason != "OOMKilled":
            continue
        j = by_pod.get((term.namespace, term.pod, term.container))
        if j is None:
            continue
        when = int(pd.Timestamp(term.timestamp).as_unit("ns").value)
        events.append((j, when, term))
        t0[j] = min(t0[j], when)
    pcs: list[int] = []
    ks: list[int] = []
    peak: list[int] = []
    first_v: list[int] = []
    first_t: list[int] = []
    for i, (tt, vv, _rr) in enumerate(series):
        if len(tt) == 0:
            continue
        k = (tt - t0[i]) // interval
        starts = np.concatenate(([0], np.flatnonzero(np.diff(k)) + 1))
        pcs.extend([i] * len(starts))
        ks.extend(int(x) for x in k[starts])
        peak.extend(int(x) for x in np.maximum.reduceat(vv, starts))
        first_v.extend(int(x) for x in vv[starts])
        first_t.extend(int(x) for x in tt[starts])
    where = {(a, b): j for j, (a, b) in enumerate(zip(pcs, ks))}
    oom_by_pc: dict[int, list[int]] = {}
    for i, when, _term in sorted(events, key=lambda e: e[1]):
        kw = int((when - t0[i]) // interval)
        tt, vv, rr = series[i]
        before = (tt <= when) & (tt >= t0[i] + kw * interval)
        peak_so_far = int(vv[before].max()) if before.any() else 0
        seen = np.flatnonzero(tt <= when)
        if len(seen) and not math.isnan(rr[seen[-1]]):
            req = int(rr[seen[-1]])
        else:
            req = current.get(groups.workload(i), Figures()).memory_request_bytes or 0
        used = max(req, peak_so_far)
        needed = max(used + _amount(float(settings.vpa_oom_min_bump_bytes)),
                     _amount(used * settings.vpa_oom_bump_ratio))
        j = where.get((i, kw))
        if j is None:
            where[(i, kw)] = len(pcs)
            pcs.append(i)
            ks.append(kw)
            peak.append(needed)
            first_v.append(needed)
            first_t.append(when)
        else:
            if when < first_t[j]:
                first_v[j], first_t[j] = needed, when
            peak[j] = max(peak[j], needed)
        oom_by_pc.setdefault(i, []).append(needed)
    pcs_a = np.asarray(pcs, dtype=np.int64)
    ks_a = np.asarray(ks, dtype=np.int64)
    peak_values = np.where(np.asarray(first_v) == 0, 0.0, np.asarray(peak, dtype=np.float64))
    window_end = t0[pcs_a] + (ks_a + 1) * interval
    return pcs_a, window_end, peak_values, oom_by_pc
