"""The sign-off's gates: every piece of evidence judged PASS, WARN or FAIL with a one-line reason.

Each function here takes one kind of evidence (the plan, the nodes and their pods, verify's
checks, the usage history, the rehearsals on the twin) and returns :class:`GateResult` records
whose reasons carry the figures behind the verdict, so a reviewer of the change request can
check the arithmetic without opening the report. Everything is pure: the evidence is read by
others (the twin, the rehearsals, the usage store, ``verify``), and :func:`judge` applies the
policy's ``required`` and ``strict`` to the lot. A gate the data cannot judge is a WARN that says
what was missing (how many samples over what span, which rehearsal did not run), never a PASS.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from fractions import Fraction
from typing import Any, Literal

import numpy as np
import pandas as pd

from ..catalog import Catalog, Service
from ..cluster.livestate import LiveState
from ..cluster.verify import Check
from ..errors import QuantityError, clip
from ..plan import Plan
from ..quantity import parse
from ..scenarios import demand
from ..usage.samples import Termination
from ..usage.strategies.common import as_float_array, check_frame, ns_array
from .policy import PROVIDER_DRAIN_TIMEOUTS, Policy, statistic_quantile
from .records import GateResult, Rehearsal, Verdict, overall_verdict

ZONE_LABEL = "topology.kubernetes.io/zone"
INSTANCE_TYPE_LABEL = "node.kubernetes.io/instance-type"
Resource = Literal["cpu", "memory"]
RESOURCES: tuple[Resource, ...] = ("cpu", "memory")
_PART = 300     # longest piece of someone else's text (a rehearsal's reason, a scheduler message) in a reason


# --- N+1 and N+zone: the cluster's requests after losing its largest node (or zone) ------------

@dataclass(frozen=True)
class NodeRoom:
    """One node's allocatable (what the mixin's ``kube_node_status_allocatable`` reports)."""

    name: str
    cpu_m: float
    memory_bytes: float
    zone: str | None = None
    instance_type: str = ""


@dataclass(frozen=True)
class PodAsk:
    """One pod's requests (what the mixin sums from ``kube_pod_container_resource_requests``)."""

    name: str
    cpu_m: float
    memory_bytes: float


def capacity_from_plan(plan: Plan, *, scenario: str = "baseline") -> tuple[list[NodeRoom], list[PodAsk]]:
    """The plan's nodes (``nodes`` x the node type's allocatable, no zones: a plan has none) and
    the scenario's pods, with one pod of each DaemonSet per node, as a live cluster reports them."""
    a = plan.node
    nodes = [NodeRoom(f"{plan.node_type.name}-{i + 1}", a.cpu_m, a.memory_bytes, None, plan.node_type.name)
             for i in range(plan.nodes)]
    pods = [PodAsk(p.name, p.resources.cpu_request_m, p.resources.memory_request_bytes)
            for p in demand(plan.catalog, scenario, mesh=plan.options.mesh)]
    pods += [PodAsk(f"{d.name}-{n.name}", d.cpu_m, d.memory_bytes) for n in nodes for d in a.daemonsets]
    return nodes, pods


def _quantity(text: object) -> Fraction:
    if text is None:
        return Fraction(0)
    try:
        return parse(str(text)).value
    except QuantityError:
        return Fraction(0)


def _counted(phase: object) -> bool:
    # the mixin's recording rule multiplies the requests by kube_pod_status_phase{phase=~"Pending|Running"}
    return phase in ("Pending", "Running")


def capacity_from_live(state: LiveState) -> tuple[list[NodeRoom], list[PodAsk]]:
    """Nodes and pods from verify's :class:`LiveState` (its nodes carry no labels, so no zones:
    use :func:`capacity_from_objects` on the plain JSON for N+zone)."""
    nodes = [NodeRoom(n.name, float(_quantity(n.allocatable.get("cpu")) * 1000),
                      float(_quantity(n.allocatable.get("memory"))), None, n.instance_type or "")
             for n in state.nodes]
    pods = [PodAsk(f"{p.namespace}/{p.name}",
                   float(sum((_quantity(c.requests.get("cpu")) for c in p.containers), Fraction(0)) * 1000),
                   float(sum((_quantity(c.requests.get("memory")) for c in p.containers), Fraction(0))))
            for p in state.pods if _counted(p.phase)]
    return nodes, pods


def capacity_from_objects(nodes: Iterable[Mapping[str, Any]], pods: Iterable[Mapping[str, Any]]
                          ) -> tuple[list[NodeRoom], list[PodAsk]]:
    """Nodes (with their ``topology.kubernetes.io/zone``) and pods from plain Kubernetes JSON, a
    live cluster's or the twin's. A pod's requests are its containers' (kube-state-metrics'
    ``kube_pod_container_resource_requests`` has no init containers)."""
    rooms = []
    for n in nodes:
        meta, alloc = n.get("metadata") or {}, (n.get("status") or {}).get("allocatable") or {}
        labels = meta.get("labels") or {}
        rooms.append(NodeRoom(str(meta.get("name") or ""), float(_quantity(alloc.get("cpu")) * 1000),
                              float(_quantity(alloc.get("memory"))), labels.get(ZONE_LABEL) or None,
                              str(labels.get(INSTANCE_TYPE_LABEL) or "")))
    asks = []
    for p in pods:
        if not _counted((p.get("status") or {}).get("phase")):
            continue
        meta = p.get("metadata") or {}
        containers = (p.get("spec") or {}).get("containers") or []
        req = [(c.get("resources") or {}).get("requests") or {} for c in containers if isinstance(c, Mapping)]
        asks.append(PodAsk(f"{meta.get('namespace', '')}/{meta.get('name', '')}",
                           float(sum((_quantity(r.get("cpu")) for r in req), Fraction(0)) * 1000),
                           float(sum((_quantity(r.get("memory")) for r in req), Fraction(0)))))
    return rooms, asks


def _amount(v: float, resource: Resource, *, unit: bool = True) -> str:
    text = f"{v / 1000:.1f}" if resource == "cpu" else f"{v / 2**30:.1f}"
    return text + (" cores" if resource == "cpu" else " GiB") if unit else text


def _sum(values: Iterable[float]) -> float:
    # millicores and bytes summed as the integers they are (a float sum of 10,000 pods drifts)
    return float(sum(Fraction(v) for v in values))


def _headroom_pct(left: float, requests: float) -> float | None:
    return None if requests <= 0 else round((left - requests) / requests * 100, 1)


def _loss_gate(name: str, what: str, lost: str, lost_room: float, total: float, requests: float,
               resource: Resource, extra: Mapping[str, Any]) -> GateResult:
    left = total - lost_room
    pct = _headroom_pct(left, requests)
    figures = {"resource": resource, "requests": requests, "allocatable": total, "lost": lost,
               "lost_allocatable": lost_room, "left": left, "headroom": left - requests, "headroom_pct": pct, **extra}
    head = (f"{what} {resource}: requests {_amount(requests, resource)}")
    arith = f"{_amount(total, resource, unit=False)} allocatable - {_amount(lost_room, resource, unit=False)} {lost}"
    # the mixin's rule: sum(requests) - (sum(allocatable) - max(allocatable)) > 0, so equal is a pass
    if requests > left:
        lose = "a node" if what == "n+1" else "a zone"
        return GateResult(name, "capacity", "FAIL", f"{head} > {arith}: cannot lose {lose}"
                          f" (short by {_amount(requests - left, resource)})", figures=figures)
    share = "" if pct is None else f" ({pct:g}% of the requests)"
    return GateResult(name, "capacity", "PASS", f"{head} <= {arith}: {_amount(left - requests, resource)} left "
                      f"after losing it{share}", figures=figures)


def n_plus_one(nodes: Sequence[NodeRoom], pod_requests: Sequence[PodAsk]) -> list[GateResult]:
    """Per resource, the kubernetes-mixin's KubeCPUOvercommit / KubeMemoryOvercommit rule
    (alerts/resource_alerts.libsonnet): the cluster cannot tolerate losing a node when
    ``sum(requests) > sum(allocatable) - max(allocatable)``. The mixin's second clause
    (``sum - max > 0``) only keeps a one-node cluster from alerting forever; a sign-off must
    say that one node cannot be lost, so it is not applied."""
    out = []
    for res in RESOURCES:
        resource = res
        name = f"n+1:{resource}"
        if not nodes:
            out.append(GateResult(name, "capacity", "FAIL", f"n+1 {resource}: no nodes: nothing to lose a node from",
                                  figures={"resource": resource, "nodes": 0}))
            continue
        rooms = [n.cpu_m if res == "cpu" else n.memory_bytes for n in nodes]
        i = max(range(len(nodes)), key=lambda k: rooms[k])
        largest = nodes[i]
        label = f"largest node ({largest.instance_type or largest.name})"
        requests = _sum(p.cpu_m if res == "cpu" else p.memory_bytes for p in pod_requests)
        out.append(_loss_gate(name, "n+1", label, rooms[i], _sum(rooms), requests, res,
                              {"nodes": len(nodes), "largest_node": largest.name, "pods": len(pod_requests)}))
    return out


def n_plus_zone(nodes: Sequence[NodeRoom], pod_requests: Sequence[PodAsk], *, policy: Policy) -> list[GateResult]:
    """Per resource, the same rule with the largest zone in place of the largest node:
    ``sum(requests) > sum(allocatable) - the largest zone's allocatable``. Nodes without a
    ``topology.kubernetes.io/zone`` label: nothing, or a WARN when the policy's ``must_judge``
    lists ``n+zone``; every node in one zone: a WARN (a zone loss takes the whole cluster)."""
    unzoned = [n.name for n in nodes if not n.zone]
    if not nodes or len(unzoned) == len(nodes):
        if not policy.must("n+zone"):
            return []
        return [GateResult("n+zone", "capacity", "WARN", f"n+zone: no node has a {ZONE_LABEL} label: a zone loss "
                           "was not judged (the policy's must_judge lists n+zone)", figures={"nodes": len(nodes)})]
    if unzoned:
        return [GateResult("n+zone", "capacity", "WARN", f"n+zone: {len(unzoned)} of {len(nodes)} nodes have no "
                           f"{ZONE_LABEL} label ({', '.join(unzoned[:3])}{', ...' if len(unzoned) > 3 else ''}): "
                           "a zone loss was not judged", figures={"nodes": len(nodes), "unzoned": len(unzoned)})]
    zones: dict[str, list[NodeRoom]] = defaultdict(list)
    for n in nodes:
        zones[str(n.zone)].append(n)
    if len(zones) == 1:
        (zone,) = zones
        return [GateResult("n+zone", "capacity", "WARN", f"n+zone: all {len(nodes)} nodes are in zone {zone}: a zone "
                           "loss takes the whole cluster (N+zone needs nodes in 2 or more zones)",
                           figures={"nodes": len(nodes), "zones": 1})]
    out = []
    for res in RESOURCES:
        resource = res
        per_zone = {z: _sum(n.cpu_m if res == "cpu" else n.memory_bytes for n in ns) for z, ns in zones.items()}
        zone = max(sorted(per_zone), key=lambda z: per_zone[z])
        requests = _sum(p.cpu_m if res == "cpu" else p.memory_bytes for p in pod_requests)
        out.append(_loss_gate(f"n+zone:{resource}", "n+zone", f"largest zone ({zone}, {len(zones[zone])} nodes)",
                              per_zone[zone], sum(per_zone.values()), requests, res,
                              {"nodes": len(nodes), "zones": len(zones), "largest_zone": zone}))
    return out


def headroom_figures(gates: Iterable[GateResult]) -> dict[str, float]:
    """The run index's headroom figures from the N+1 / N+zone gates: per resource, the allocatable
    left after losing the largest node (zone) beyond the requests, as a percentage of the
    requests (``cpu_n_plus_1_pct``, ``memory_n_plus_zone_pct``); negative when it does not fit."""
    out = {}
    for g in gates:
        head, _, resource = g.name.partition(":")
        pct = g.figures.get("headroom_pct")
        if head in ("n+1", "n+zone") and resource in ("cpu", "memory") and isinstance(pct, (int, float)):
            out[f"{resource}_{head.replace('+', '_plus_')}_pct"] = float(pct)
    return out


# --- the plan and the live cluster -------------------------------------------------------------

def plan_gates(plan: Plan) -> list[GateResult]:
    """Each of the plan's own gates at the target, as the sign-off's group ``plan``."""
    return [GateResult(f"plan:{g.name}", "plan", "PASS" if g.passed else "FAIL",
                       clip(f"plan {g.name}: {g.detail}", 1000), figures={"passed": g.passed})
            for g in plan.gates]


def live_gates(checks: Sequence[Check] | None, *, policy: Policy) -> list[GateResult]:
    """verify's checks (the live cluster against the plan) as one gate ``live:verify``; ``None``
    when no context was given: a WARN when the policy's ``must_judge`` lists ``live``, else nothing."""
    if checks is None:
        if not policy.must("live"):
            return []
        return [GateResult("live:verify", "live", "WARN", "no live cluster: live state not judged (no context given; "
                           "the policy's must_judge lists live)")]
    if not checks:
        return [GateResult("live:verify", "live", "WARN", "live verify: no checks were made: live state not judged",
                           figures={"checks": 0})]
    fails = [c for c in checks if c.status == "FAIL"]
    warns = [c for c in checks if c.status == "WARN"]
    figures = {"checks": len(checks), "fail": len(fails), "warn": len(warns)}

    def named(cs: list[Check]) -> str:
        shown = ", ".join(f"{c.name} {c.subject}" + (f" ({clip(c.actual, 80)})" if c.actual else "") for c in cs[:3])
        return shown + (f" and {len(cs) - 3} more" if len(cs) > 3 else "")

    if fails:
        warned = f"; {len(warns)} warn" if warns else ""
        return [GateResult("live:verify", "live", "FAIL", f"live verify: {len(fails)} of {len(checks)} checks fail: "
                           f"{named(fails)}{warned}", figures=figures)]
    if warns:
        return [GateResult("live:verify", "live", "WARN", f"live verify: {len(warns)} of {len(checks)} checks warn: "
                           f"{named(warns)}", figures=figures)]
    return [GateResult("live:verify", "live", "PASS", f"live verify: all {len(checks)} checks pass", figures=figures)]


# --- observed usage ------------------------------------------------------------------------------

@dataclass(frozen=True)
class HpaPoint:
    """An HPA's replica count at one instant (its ``status.currentReplicas``), when known."""

    timestamp: datetime
    service: str
    replicas: int


@dataclass(frozen=True)
class _ContainerUsage:
    container: str
    pods: int
    cpu_samples: int
    memory_samples: int
    cpu_stat: float | None          # millicores: the policy's statistic per pod, the largest over pods
    memory_stat: float | None       # bytes: likewise
    memory_peak: float | None
    cpu_request: float | None
    memory_request: float | None
    memory_limit: float | None
    basis: str                      # where the requests and limits come from: "catalogue" or "observed"


@dataclass(frozen=True)
class _ServiceUsage:
    service: str
    samples: int
    first: int | None                         # the first and last sample (ns since the epoch)
    last: int | None
    containers: tuple[_ContainerUsage, ...]
    pod_spans: tuple[tuple[int, int], ...]    # each pod's first and last sample (ns)
    times: np.ndarray                         # the service's sample times (ns), sorted and distinct

    @property
    def span_seconds(self) -> float:
        return 0.0 if self.first is None or self.last is None else (self.last - self.first) / 1e9


@dataclass(frozen=True)
class _Columns:
    """The frame's columns as arrays: the names as integer codes (factorized once; a 2-million-row
    frame's names as Python strings cost seconds), the figures as float64 with NaN for a gap."""

    service: np.ndarray
    services: tuple[str, ...]
    container: np.ndarray
    containers: tuple[str, ...]
    pod: np.ndarray
    t: np.ndarray
    cpu: np.ndarray
    mem: np.ndarray
    cpu_req: np.ndarray
    mem_req: np.ndarray
    mem_lim: np.ndarray


def _codes(col: pd.Series) -> tuple[np.ndarray, tuple[str, ...]]:
    codes, uniques = pd.factorize(col, use_na_sentinel=True)
    return np.asarray(codes), tuple("" if u is None else str(u) for u in uniques)


def _columns(frame: pd.DataFrame) -> _Columns:
    service, services = _codes(frame["service"])
    container, containers = _codes(frame["container"])
    pod, _ = _codes(frame["pod"])
    return _Columns(service, services, container, containers, pod, ns_array(frame["timestamp"]),
                    *(as_float_array(frame[c]) for c in ("cpu_m", "memory_bytes", "cpu_request_m",
                                                          "memory_request_bytes", "memory_limit_bytes")))


def _duration_text(seconds: float) -> str:
    s = int(round(seconds))
    if s >= 2 * 86400:
        return f"{s // 86400}d{s % 86400 // 3600:02d}h"
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    if s >= 60:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s}s"


def _cpu_text(m: float) -> str:
    return f"{m:.0f}m" if m < 10_000 else f"{m / 1000:.2f} cores"


def _mem_text(b: float) -> str:
    return f"{b / 2**30:.2f}Gi" if b >= 2**30 else f"{b / 2**20:.0f}Mi"


def _last_known(values: np.ndarray, t: np.ndarray) -> float | None:
    valid = ~np.isnan(values)
    return float(values[valid][np.argmax(t[valid])]) if valid.any() else None


def _stat(values: np.ndarray, pods: np.ndarray, q: float) -> float | None:
    """The quantile ``q`` of each pod's values (linear, as numpy's default and Prometheus'
    ``quantile_over_time``), the largest over the pods; gaps (NaN) are not samples."""
    valid = ~np.isnan(values)
    if not valid.any():
        return None
    v, p = values[valid], pods[valid]
    return max(float(np.quantile(v[p == k], q)) for k in np.unique(p))


def _service_usage(service: str, rows: np.ndarray, cols: _Columns, policy: Policy, svc: Service | None
                   ) -> _ServiceUsage:
    u = policy.usage
    q_cpu, q_mem = statistic_quantile(u.cpu_statistic), statistic_quantile(u.memory_statistic)
    cpu, mem, t, pod = cols.cpu[rows], cols.mem[rows], cols.t[rows], cols.pod[rows]
    has = ~np.isnan(cpu) | ~np.isnan(mem)
    containers, samples = [], 0
    for code in np.unique(cols.container[rows]):
        inside = cols.container[rows] == code
        cname = cols.containers[code] if code >= 0 else ""
        c_cpu, c_mem, c_pod, c_t = cpu[inside], mem[inside], pod[inside], t[inside]
        samples = max(samples, int(has[inside].sum()))
        spec = next((k for k in svc.containers if k.name == cname), None) if svc else None
        cpu_req: float | None
        mem_req: float | None
        mem_lim: float | None
        if spec is not None:
            cpu_req, mem_req = float(spec.resources.cpu_request_m), float(spec.resources.memory_request_bytes)
            mem_lim, basis = float(spec.resources.memory_limit_bytes), "catalogue"
        else:
            cpu_req = _last_known(cols.cpu_req[rows][inside], c_t)
            mem_req = _last_known(cols.mem_req[rows][inside], c_t)
            mem_lim, basis = _last_known(cols.mem_lim[rows][inside], c_t), "observed"
        mem_valid = ~np.isnan(c_mem)
        containers.append(_ContainerUsage(
            cname, int(len(np.unique(c_pod))), int((~np.isnan(c_cpu)).sum()), int(mem_valid.sum()),
            _stat(c_cpu, c_pod, q_cpu), _stat(c_mem, c_pod, q_mem),
            float(c_mem[mem_valid].max()) if mem_valid.any() else None,
            cpu_req or None, mem_req or None, mem_lim or None, basis))
    seen_t, seen_pod = t[has], pod[has]
    spans = tuple((int(seen_t[seen_pod == k].min()), int(seen_t[seen_pod == k].max())) for k in np.unique(seen_pod))
    return _ServiceUsage(service, samples, int(seen_t.min()) if len(seen_t) else None,
                         int(seen_t.max()) if len(seen_t) else None, tuple(containers), spans, np.unique(seen_t))


def _data_text(s: _ServiceUsage) -> str:
    return f"{s.samples:,} samples over {_duration_text(s.span_seconds)}"


def _enough(s: _ServiceUsage, policy: Policy) -> bool:
    return s.samples >= policy.usage.min_samples and s.span_seconds >= policy.usage.min_window_seconds


def _need_text(policy: Policy) -> str:
    u = policy.usage
    return f"the policy needs {u.min_samples:,} samples over {_duration_text(u.min_window_seconds)}"


def _usage_gate(check: str, s: _ServiceUsage, verdict: Verdict, reason: str, policy: Policy,
                figures: Mapping[str, Any], *, sound_fail: bool) -> GateResult:
    """A usage gate judged on ``s``'s samples: too little data makes a PASS a WARN, and a FAIL a
    WARN too unless the evidence holds however little data there is (``sound_fail``: a peak seen is
    a peak that happened; a percentile of a few samples is not the window's)."""
    name = f"usage:{check}:{s.service}"
    figures = {**figures, "samples": s.samples, "span_seconds": s.span_seconds}
    if _enough(s, policy):
        return GateResult(name, "usage", verdict, reason, figures=figures)
    if verdict == "FAIL" and sound_fail:
        return GateResult(name, "usage", "FAIL", f"{reason} (from only {_data_text(s)})", figures=figures)
    head, _, seen = reason.partition(": ")
    seen = seen.replace(f", {_data_text(s)}", "").replace(f" in {_data_text(s)}", "")
    return GateResult(name, "usage", "WARN", f"{head}: too little data to judge: {_data_text(s)}, "
                      f"{_need_text(policy)}; so far {seen}", figures=figures)


def _request_gate(s: _ServiceUsage, resource: Resource, policy: Policy) -> GateResult:
    u = policy.usage
    stat = u.cpu_statistic if resource == "cpu" else u.memory_statistic
    margin = u.cpu_margin_pct if resource == "cpu" else u.memory_margin_pct
    text = _cpu_text if resource == "cpu" else _mem_text
    check = f"{resource}-request"
    head = f"usage {resource} {s.service}"
    judged: list[tuple[_ContainerUsage, float, float | None]] = []
    for k in s.containers:
        value = k.cpu_stat if resource == "cpu" else k.memory_stat
        if value is not None:
            judged.append((k, value, k.cpu_request if resource == "cpu" else k.memory_request))
    if not judged:
        return GateResult(f"usage:{check}:{s.service}", "usage", "WARN", f"{head}: no {resource} samples: "
                          f"not judged ({_data_text(s)})", figures={"samples": s.samples})
    unrequested = [c.container for c, _, r in judged if r is None]
    rated = [(c, v, r) for c, v, r in judged if r is not None]
    if not rated:
        return GateResult(f"usage:{check}:{s.service}", "usage", "WARN", f"{head}: container "
                          f"{', '.join(unrequested)} has no {resource} request: nothing to judge its usage against",
                          figures={"samples": s.samples})
    # the worst container: its statistic (plus the margin) as the largest share of its request
    c, v, r = max(rated, key=lambda x: x[1] / x[2])
    need = v * (1 + margin / 100)
    plus = f" + {margin:g}% = {text(need)}" if margin else ""
    of = f"container {c.container}, {stat} over {c.pods} pod{'s' if c.pods != 1 else ''}, {c.basis} request"
    figures = {"container": c.container, "statistic": stat, "value": v, "margin_pct": margin, "request": r,
               "share_pct": round(v / r * 100, 1), "basis": c.basis}
    if need > r:
        reason = (f"{head}: {stat} {text(v)}{plus} > request {text(r)} ({v / r * 100:.0f}% of it; {of}, "
                  f"{_data_text(s)})")
        return _usage_gate(check, s, "FAIL", reason, policy, figures, sound_fail=stat == "peak")
    reason = f"{head}: {stat} {text(v)}{plus} <= request {text(r)} ({v / r * 100:.0f}% of it; {of}, {_data_text(s)})"
    if unrequested:
        # what has a request passed; the rest cannot be judged, so the gate is not a PASS
        return GateResult(f"usage:{check}:{s.service}", "usage", "WARN", f"{reason}; container "
                          f"{', '.join(unrequested)} has no {resource} request: not judged", figures=figures)
    return _usage_gate(check, s, "PASS", reason, policy, figures, sound_fail=stat == "peak")


def _limit_gate(s: _ServiceUsage, policy: Policy) -> GateResult:
    margin = policy.usage.memory_limit_margin_pct
    head = f"usage memory-limit {s.service}"
    judged = [c for c in s.containers if c.memory_peak is not None]
    if not judged:
        return GateResult(f"usage:memory-limit:{s.service}", "usage", "WARN", f"{head}: no memory samples: not "
                          f"judged ({_data_text(s)})", figures={"samples": s.samples})
    unlimited = [c.container for c in judged if c.memory_limit is None]
    limited = [c for c in judged if c.memory_limit is not None]
    if not limited:
        return GateResult(f"usage:memory-limit:{s.service}", "usage", "WARN", f"{head}: container "
                          f"{', '.join(unlimited)} has no memory limit: nothing to judge its peak against",
                          figures={"samples": s.samples})
    c = max(limited, key=lambda k: (k.memory_peak or 0) / (k.memory_limit or 1))
    peak, limit = float(c.memory_peak or 0), float(c.memory_limit or 1)
    need = peak * (1 + margin / 100)
    plus = f" + {margin:g}% = {_mem_text(need)}" if margin else ""
    figures = {"container": c.container, "peak": peak, "limit": limit, "margin_pct": margin,
               "share_pct": round(peak / limit * 100, 1), "basis": c.basis}
    rel = ">" if need > limit else "<="
    reason = (f"{head}: peak {_mem_text(peak)}{plus} {rel} limit {_mem_text(limit)} ({peak / limit * 100:.0f}% of it; "
              f"container {c.container}, {c.basis} limit, {_data_text(s)})")
    if unlimited and need <= limit:
        return GateResult(f"usage:memory-limit:{s.service}", "usage", "WARN", f"{reason}; container "
                          f"{', '.join(unlimited)} has no memory limit: not judged", figures=figures)
    return _usage_gate("memory-limit", s, "FAIL" if need > limit else "PASS", reason, policy, figures, sound_fail=True)


def _oom_gate(s: _ServiceUsage, kills: Sequence[Termination], policy: Policy) -> GateResult:
    allowed = policy.usage.oom_kills_allowed
    head = f"usage oom {s.service}"
    figures = {"oom_kills": len(kills), "allowed": allowed}
    if len(kills) > allowed:
        k = kills[0]
        limit = f" at a {_mem_text(k.memory_limit_bytes)} limit" if k.memory_limit_bytes else ""
        reason = (f"{head}: {len(kills)} OOM kill{'s' if len(kills) != 1 else ''} (allowed {allowed}); first "
                  f"{k.pod}/{k.container} at {k.timestamp:%Y-%m-%dT%H:%M:%SZ}{limit}")
        return _usage_gate("oom", s, "FAIL", reason, policy, figures, sound_fail=True)
    reason = f"{head}: {len(kills)} OOM kill{'s' if len(kills) != 1 else ''} (allowed {allowed}) in {_data_text(s)}"
    return _usage_gate("oom", s, "PASS", reason, policy, figures, sound_fail=True)


def _restart_gate(s: _ServiceUsage, terms: Sequence[Termination], policy: Policy) -> GateResult:
    """Restarts of one container in the window: the restart counts its terminations went through
    (the first one seen counts as one restart, so this is a lower bound)."""
    limit = policy.usage.max_restarts
    counts: dict[tuple[str, str], list[int]] = defaultdict(list)
    for t in terms:
        counts[(t.pod, t.container)].append(t.restart_count)
    worst = max(((max(v) - min(v) + 1, k) for k, v in counts.items()), default=(0, ("", "")))
    n, (pod, container) = worst
    head = f"usage restarts {s.service}"
    figures = {"restarts": n, "max_restarts": limit, "pod": pod, "container": container}
    if n > limit:
        reason = f"{head}: {pod}/{container} restarted {n} times (a restart loop: more than {limit})"
        return _usage_gate("restarts", s, "FAIL", reason, policy, figures, sound_fail=True)
    where = f" (most: {pod}/{container})" if n else ""
    reason = f"{head}: at most {n} restart{'s' if n != 1 else ''} of a container (limit {limit}){where}"
    return _usage_gate("restarts", s, "PASS", reason, policy, figures, sound_fail=True)


def _at_max_seconds(times: np.ndarray, counts: np.ndarray, at_most: int) -> tuple[float, int]:
    """The longest run of consecutive times with ``counts >= at_most``: its length in seconds
    (from the run's first time to its last) and the highest count seen."""
    longest, start = 0.0, None
    for i, c in enumerate(counts):
        if c >= at_most:
            start = i if start is None else start
            longest = max(longest, (int(times[i]) - int(times[start])) / 1e9)
        else:
            start = None
    return longest, int(counts.max()) if len(counts) else 0


def _hpa_gate(s: _ServiceUsage, svc: Service, history: Sequence[HpaPoint] | None, policy: Policy) -> GateResult:
    assert svc.hpa is not None
    top, limit = svc.hpa.max_replicas, policy.usage.hpa_max_seconds
    head = f"usage hpa-max {s.service}"
    if history:
        pts = sorted(history, key=lambda p: p.timestamp)
        times = ns_array(pd.Series([p.timestamp for p in pts]))
        counts = np.array([p.replicas for p in pts])
        basis = f"{len(pts)} HPA readings"
    elif len(s.times):
        firsts = np.sort(np.array([a for a, _ in s.pod_spans], dtype=np.int64))
        lasts = np.sort(np.array([b for _, b in s.pod_spans], dtype=np.int64))
        times = s.times
        # pods alive at t: first sample at or before t and last sample at or after t
        counts = np.searchsorted(firsts, times, side="right") - np.searchsorted(lasts, times, side="left")
        basis = "pods sampled"
    else:
        return GateResult(f"usage:hpa-max:{s.service}", "usage", "WARN", f"{head}: no samples and no HPA readings: "
                          "the time at its maximum is unknown", figures={"hpa_max_replicas": top})
    longest, most = _at_max_seconds(times, counts, top)
    figures = {"hpa_max_replicas": top, "longest_at_max_seconds": longest, "most_replicas": most,
               "threshold_seconds": limit, "basis": basis}
    if longest > limit:
        reason = (f"{head}: at its maximum of {top} replicas for {_duration_text(longest)} > "
                  f"{_duration_text(limit)} ({basis})")
        return _usage_gate("hpa-max", s, "FAIL", reason, policy, figures, sound_fail=True)
    at = f"at its maximum of {top} for at most {_duration_text(longest)}" if most >= top else \
        f"at most {most} of its {top} maximum replicas"
    reason = f"{head}: {at} (threshold {_duration_text(limit)}; {basis})"
    return _usage_gate("hpa-max", s, "PASS", reason, policy, figures, sound_fail=True)


def usage_gates(frame: pd.DataFrame | None, *, policy: Policy, catalog: Catalog | None,
                terminations: Iterable[Termination] = (),
                hpa_history: Mapping[str, Sequence[HpaPoint]] | None = None) -> list[GateResult]:
    """Per service, the observed usage against its requests and limits: the policy's statistic
    (p95 or peak) of CPU and memory within the request by the margin, the memory peak within the
    limit, OOM kills and restarts in the window, the time its HPA sat at its maximum (from
    ``hpa_history`` when given, else from the pods sampled over time). With a catalogue the
    services judged are its services with replicas and the requests are the catalogue's (the
    plan's); without one, every labelled service in the frame and the requests it ran with.
    ``frame`` None (no usage history): a WARN "no usage data" when the policy's ``must_judge``
    lists ``usage``, else nothing."""
    if frame is None:
        if not policy.must("usage"):
            return []
        return [GateResult("usage:data", "usage", "WARN", "no usage data: observed usage not judged (no usage history "
                           "given; the policy's must_judge lists usage)")]
    check_frame(frame)
    terms = list(terminations)
    cols = _columns(frame)
    services = ([s.name for s in catalog.services if s.replicas > 0] if catalog is not None
                else sorted(set(cols.services) - {""}))
    order = np.argsort(cols.service, kind="stable")
    bounds = np.searchsorted(cols.service[order], np.arange(len(cols.services) + 1))
    by_service = {n: order[bounds[i]:bounds[i + 1]] for i, n in enumerate(cols.services) if n}
    out: list[GateResult] = []
    if frame.empty or not services:
        return [GateResult("usage:data", "usage", "WARN", f"no usage data: the usage history has {len(frame):,} "
                           f"samples{'' if services else ' and no labelled service'}: observed usage not judged",
                           figures={"samples": int(len(frame))})]
    if catalog is None:
        out.append(GateResult("usage:hpa-max", "usage", "WARN", "usage hpa-max: no catalogue given: the HPA maxima are "
                              "unknown, so the time at maximum was not judged"))
    for name in services:
        svc = catalog.get(name) if catalog is not None else None
        s = _service_usage(name, by_service.get(name, np.array([], dtype=np.int64)), cols, policy, svc)
        mine = [t for t in terms if (t.service or t.pod) == name]
        if s.samples == 0:
            out.append(GateResult(f"usage:samples:{name}", "usage", "WARN", f"usage {name}: no samples of the service "
                                  "in the usage history: its usage was not judged", figures={"samples": 0}))
        else:
            out += [_request_gate(s, "cpu", policy), _request_gate(s, "memory", policy), _limit_gate(s, policy)]
        out.append(_oom_gate(s, [t for t in mine if t.reason == "OOMKilled"], policy))
        out.append(_restart_gate(s, mine, policy))
        if svc is not None and svc.hpa is not None:
            out.append(_hpa_gate(s, svc, (hpa_history or {}).get(name), policy))
    return out


# --- the rehearsals ------------------------------------------------------------------------------

EXPECTED_REHEARSALS = ("nodepool-upgrade", "release-rollout", "node-loss")
"""The rehearsals every sign-off runs; a zone loss only where the nodes have zones."""


def _drain_timeout(r: Rehearsal, policy: Policy) -> tuple[float, str]:
    if policy.drain_timeout_seconds is not None:
        return policy.drain_timeout_seconds, "the policy's"
    given = r.settings.get("drain_timeout_seconds")
    if isinstance(given, (int, float)) and not isinstance(given, bool) and given > 0:
        return float(given), "the rehearsal's"
    provider = str(r.settings.get("provider") or "").lower()
    if provider in PROVIDER_DRAIN_TIMEOUTS:
        return PROVIDER_DRAIN_TIMEOUTS[provider], f"{provider.upper()}'s"
    return min(PROVIDER_DRAIN_TIMEOUTS.values()), "the strictest provider's (no provider given)"


def _kept(r: Rehearsal, policy: Policy, catalog: Catalog | None) -> tuple[list[str], list[str]]:
    """The services judged for keeping their PDB's minAvailable, and those that did not."""
    if catalog is not None:
        judged = [s.name for s in catalog.services if s.tier in policy.tiers and s.name in r.required_ready]
    else:
        judged = sorted(r.required_ready)
    short = [f"{n} fell to {r.min_ready.get(n, 0)} ready (its PDB keeps {r.required_ready[n]})"
             for n in judged if r.min_ready.get(n, 0) < r.required_ready[n]]
    return judged, short


def _pending_text(r: Rehearsal) -> str:
    p = r.pending_at_end[0]
    n = len(r.pending_at_end)
    return (f"{n} pod{'s' if n != 1 else ''} left Pending ({p.namespace}/{p.name}: {clip(p.reason, _PART)}"
            f"{', ...' if n > 1 else ''})")


def _lowest_ready(r: Rehearsal, names: Sequence[str]) -> str:
    if not names:
        return ""
    n = min(names, key=lambda k: (r.min_ready.get(k, 0) / max(r.desired.get(k, 1), 1), k))
    return f"; lowest ready: {n} {r.min_ready.get(n, 0)} of {r.desired.get(n, '?')}"


def _rehearsal_gate(r: Rehearsal, policy: Policy, catalog: Catalog | None) -> GateResult:
    name, head = f"rehearsal:{r.name}", f"rehearsal {r.name}"
    problems: list[str] = []
    figures: dict[str, Any] = {"completed": r.completed, "pending_at_end": len(r.pending_at_end),
                               "seconds": (r.finished - r.started).total_seconds(), "steps": len(r.observations)}
    if not r.completed:
        problems.append(clip(r.reason, _PART))
    if r.pending_at_end:
        problems.append(_pending_text(r))
    judged: list[str] = []
    if r.kind == "nodepool-upgrade":
        timeout, whose = _drain_timeout(r, policy)
        blocks = [b for o in r.observations for b in o.blocked]
        longest = max([r.longest_block_seconds] + [b.seconds for b in blocks])
        figures.update(longest_block_seconds=longest, drain_timeout_seconds=timeout)
        if longest > timeout:
            b = max(blocks, key=lambda x: x.seconds, default=None)
            who = (f"PDB {b.pdb or '(unnamed)'} blocked the eviction of {b.namespace}/{b.pod}" if b
                   else "a PDB blocked a drain")
            problems.append(f"{who} for {_duration_text(longest)} > {whose} {_duration_text(timeout)} drain timeout")
        judged, short = _kept(r, policy, catalog)
        problems += short
        figures.update(services_judged=len(judged), services_short=len(short))
    else:
        judged = [s.name for s in catalog.services if s.tier in policy.tiers] if catalog is not None \
            else sorted(r.min_ready)
        last = r.observations[-1].ready if r.observations else {}
        down = [n for n, d in sorted(r.desired.items()) if d > 0 and last and last.get(n, 0) == 0]
        if r.kind in ("node-loss", "zone-loss") and down:
            problems.append(f"{len(down)} service{'s' if len(down) != 1 else ''} with no ready replica at the end "
                            f"({', '.join(down[:3])}{', ...' if len(down) > 3 else ''})")
    if problems:
        more = f"; and {len(problems) - 3} more" if len(problems) > 3 else ""
        return GateResult(name, "rehearsal", "FAIL", f"{head}: " + "; ".join(problems[:3]) + more, figures=figures)
    took = _duration_text((r.finished - r.started).total_seconds())
    if r.kind == "nodepool-upgrade":
        block = f"longest PDB block {_duration_text(figures['longest_block_seconds'])} within the " \
                f"{_duration_text(figures['drain_timeout_seconds'])} drain timeout"
        kept = (f"; {len(judged)} {'/'.join(policy.tiers)} service{'s' if len(judged) != 1 else ''} kept "
                f"{'their' if len(judged) != 1 else 'its'} minAvailable") if judged \
            else "; no service with a PDB to keep"
        reason = f"{head}: completed in {took} ({len(r.observations)} steps), no pod left Pending, {block}{kept}"
    elif r.kind == "release-rollout":
        reason = f"{head}: every rollout completed in {took}, no pod left Pending"
    else:
        reason = f"{head}: every service running again after {took}, no pod left Pending"
    return GateResult(name, "rehearsal", "PASS", reason + _lowest_ready(r, judged), figures=figures)


def rehearsal_gates(rehearsals: Sequence[Rehearsal], *, policy: Policy,
                    catalog: Catalog | None = None) -> list[GateResult]:
    """One gate per rehearsal: the node-pool upgrade completes with no pod left Pending, no PDB
    blocking a drain past the drain timeout (the policy's, else the rehearsal's, else the
    provider's) and every service of the policy's tiers (the catalogue's; without one, every
    service with a PDB) keeping its PDB's minAvailable; the release rollout completes; a node
    (or zone) loss leaves every service running. A rehearsal that did not run is a WARN."""
    out = [_rehearsal_gate(r, policy, catalog) for r in rehearsals]
    ran = {r.kind for r in rehearsals}
    for kind in EXPECTED_REHEARSALS:
        if kind not in ran:
            what = "the largest node's loss" if kind == "node-loss" else kind.replace("-", " ")
            out.append(GateResult(f"rehearsal:{kind}", "rehearsal", "WARN", f"rehearsal {kind}: not rehearsed: "
                                  f"{what} was not tried on the twin"))
    return out


# --- the verdict ---------------------------------------------------------------------------------

def judge(gates: Iterable[GateResult], *, policy: Policy) -> tuple[Verdict, tuple[GateResult, ...]]:
    """The gates with the policy's ``required`` applied, and the sign-off's verdict
    (:func:`~eafix_capacity.signoff.records.overall_verdict` with the policy's ``strict``)."""
    judged = tuple(replace(g, required=policy.is_required(g)) for g in gates)
    return overall_verdict(judged, strict=policy.strict), judged


__all__ = ["NodeRoom", "PodAsk", "HpaPoint", "capacity_from_plan", "capacity_from_live", "capacity_from_objects",
           "n_plus_one", "n_plus_zone", "headroom_figures", "plan_gates", "live_gates", "usage_gates",
           "rehearsal_gates", "judge", "EXPECTED_REHEARSALS"]
