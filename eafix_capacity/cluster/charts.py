"""Matplotlib figures of a live cluster against the plan, for notebook 03.

verify's checks say PASS or FAIL per row; these two figures show the same comparison at a
glance: per service the planned replicas and requests against what the cluster runs, and
per node the requests against allocatable (kube-capacity's view, with the pods the
scheduler could place nowhere named in the title). Each function is pure (a plan and a
``LiveState`` in, a new ``Figure`` out, no pyplot state), as :mod:`eafix_capacity.charts`.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ..manifests.render import DEFAULT_NAMESPACE
from ..plan import Plan
from .livestate import LiveState, Pod
from .verify import pod_requests

_GI = 2**30
SYSTEM_NAMESPACES = ("kube-system",)


def _legend_below(fig: Figure, handles: list, labels: list[str]) -> None:
    """One legend for the figure, below the axes (it never covers a bar)."""
    if handles:
        fig.legend(handles, labels, loc="outside lower center", ncols=min(len(labels), 4), frameon=False)


def _placed(pod: Pod) -> bool:
    return bool(pod.node) and not pod.terminated


@dataclass(frozen=True)
class ServiceRow:
    """One service: replicas planned, desired and ready; requests planned and of placed pods."""

    service: str
    planned: int
    desired: int
    ready: int
    planned_cpu_m: float
    live_cpu_m: float
    planned_memory_bytes: float
    live_memory_bytes: float


def service_rows(plan: Plan, live: LiveState, *, namespace: str = DEFAULT_NAMESPACE) -> list[ServiceRow]:
    """Per service of the plan: planned replicas, desired and ready replicas of its workload,
    and CPU (millicores) and memory (bytes) requests, planned (replicas x the plan's own
    containers: no sidecar, which the mesh injects) against the sum over its pods that the
    scheduler placed (pure)."""
    rows = []
    for svc in plan.catalog.services:
        w = live.workload(svc.kind, namespace, svc.name)
        pods = [p for p in live.pods if p.namespace == namespace and p.service == svc.name and _placed(p)]
        per_pod = svc.pod_resources
        cpu = sum((pod_requests(p)["cpu"] for p in pods), Fraction(0))
        mem = sum((pod_requests(p)["memory"] for p in pods), Fraction(0))
        rows.append(ServiceRow(svc.name, svc.replicas, w.desired if w else 0, w.ready if w else 0,
                               float(svc.replicas * per_pod.cpu_request_m), float(cpu * 1000),
                               float(svc.replicas * per_pod.memory_request_bytes), float(mem)))
    return rows


def planned_against_live(plan: Plan, live: LiveState, *, namespace: str = DEFAULT_NAMESPACE) -> Figure:
    """Per service: planned, desired and ready replicas; planned and live CPU and memory requests."""
    rows = service_rows(plan, live, namespace=namespace)
    names = [r.service for r in rows]
    x = np.arange(len(names))
    fig = Figure(figsize=(11, 8.5), layout="constrained")
    ax_rep, ax_cpu, ax_mem = fig.subplots(3, 1, sharex=True)
    w = 0.27
    ax_rep.bar(x - w, [r.planned for r in rows], w, label="planned", color="C0")
    ax_rep.bar(x, [r.desired for r in rows], w, label="live: desired", color="C1")
    ax_rep.bar(x + w, [r.ready for r in rows], w, label="live: ready", color="C2")
    ax_rep.set_ylabel("replicas")
    ax_rep.yaxis.set_major_locator(MaxNLocator(integer=True))
    w2 = 0.4
    ax_cpu.bar(x - w2 / 2, [r.planned_cpu_m for r in rows], w2, color="C0")
    ax_cpu.bar(x + w2 / 2, [r.live_cpu_m for r in rows], w2, color="C4",
               label="live: requests of placed pods")
    ax_cpu.set_ylabel("CPU requests (millicores)")
    ax_mem.bar(x - w2 / 2, [r.planned_memory_bytes / _GI for r in rows], w2, color="C0")
    ax_mem.bar(x + w2 / 2, [r.live_memory_bytes / _GI for r in rows], w2, color="C4")
    ax_mem.set_ylabel("memory requests (GiB)")
    ax_mem.set_xticks(x, names, rotation=45, ha="right")
    fig.suptitle(f"Planned against live, per service (namespace {namespace})")
    handles, labels = ax_rep.get_legend_handles_labels()
    more_h, more_l = ax_cpu.get_legend_handles_labels()
    _legend_below(fig, handles + more_h, labels + more_l)
    return fig


@dataclass(frozen=True)
class NodeRow:
    """One node: requests of its kube-system pods and of the rest, and its allocatable."""

    node: str
    system_cpu_m: float
    workload_cpu_m: float
    allocatable_cpu_m: float
    system_memory_bytes: float
    workload_memory_bytes: float
    allocatable_memory_bytes: float


def node_rows(live: LiveState) -> list[NodeRow]:
    """Per node: CPU (millicores) and memory (bytes) requested by its system pods and by the
    rest, and its allocatable (pure); Pending pods count on no node."""
    used: dict[tuple[str, str, str], Fraction] = defaultdict(Fraction)
    for p in live.pods:
        if not _placed(p):
            continue
        part = "system" if p.namespace in SYSTEM_NAMESPACES else "workload"
        for key, v in pod_requests(p).items():
            used[(str(p.node), part, key)] += v
    return [NodeRow(n.name, float(used[(n.name, "system", "cpu")] * 1000),
                    float(used[(n.name, "workload", "cpu")] * 1000), _milli(n.allocatable.get("cpu")),
                    float(used[(n.name, "system", "memory")]), float(used[(n.name, "workload", "memory")]),
                    _bytes(n.allocatable.get("memory")))
            for n in live.nodes]


def pending_requests(live: LiveState) -> tuple[float, float]:
    """CPU (millicores) and memory (bytes) requested by the pods placed on no node (pure): what
    the nodes lack room for."""
    pods = [p for p in live.pods if p.phase == "Pending" and not p.node]
    cpu = sum((pod_requests(p)["cpu"] for p in pods), Fraction(0))
    mem = sum((pod_requests(p)["memory"] for p in pods), Fraction(0))
    return float(cpu * 1000), float(mem)


def _milli(text: str | None) -> float:
    from ..quantity import parse

    return float(parse(text).value * 1000) if text else 0.0


def _bytes(text: str | None) -> float:
    from ..quantity import parse

    return float(parse(text).value) if text else 0.0


def node_requests(live: LiveState) -> Figure:
    """Per node: CPU and memory requested (system pods, then the rest, stacked) against its
    allocatable; with Pending pods, a last bar of what they request on no node."""
    rows = node_rows(live)
    pending = [p for p in live.pods if p.phase == "Pending" and not p.node]
    names = [r.node for r in rows] + (["Pending (on no node)"] if pending else [])
    x = np.arange(len(names))
    fig = Figure(figsize=(10, 4.8), layout="constrained")
    axes = fig.subplots(1, 2)
    waiting = pending_requests(live)
    for ax, key, scale, unit, wait in ((axes[0], "cpu_m", 1000, "CPU (cores)", waiting[0]),
                                       (axes[1], "memory_bytes", _GI, "memory (GiB)", waiting[1])):
        system = [float(getattr(r, f"system_{key}")) / scale for r in rows]
        workload = [float(getattr(r, f"workload_{key}")) / scale for r in rows]
        room = [float(getattr(r, f"allocatable_{key}")) / scale for r in rows]
        at = x[:len(rows)]
        ax.bar(at, system, 0.6, label="requests: kube-system", color="C7")
        ax.bar(at, workload, 0.6, bottom=system, label="requests: other pods", color="C0")
        ax.scatter(at, room, marker="_", s=900, color="C3", label="allocatable", zorder=3)
        tallest = [*room, *(s + w for s, w in zip(system, workload))]
        if pending:
            ax.bar(x[-1:], [wait / scale], 0.6, label="requests: Pending pods", color="C1", hatch="//")
            tallest.append(wait / scale)
        ax.set_ylabel(unit)
        ax.set_ylim(0, max([*tallest, 0.0]) * 1.1 or 1)
        ax.set_xticks(x, names, rotation=45, ha="right")
    title = f"Requests per node against allocatable ({len(rows)} node{'s' if len(rows) != 1 else ''})"
    if pending:
        title += f"; {len(pending)} pod{'s' if len(pending) != 1 else ''} Pending on no node"
    fig.suptitle(title)
    _legend_below(fig, *axes[0].get_legend_handles_labels())
    return fig


__all__ = ["NodeRow", "ServiceRow", "node_requests", "node_rows", "pending_requests", "planned_against_live",
           "service_rows"]
