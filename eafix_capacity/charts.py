"""Matplotlib figures of a plan. Each function returns a new ``Figure`` (no pyplot
global state), which Jupyter displays inline and ``savefig`` writes to a file."""
from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from .plan import Plan, service_table
from .profiles import Profile

_GI = 2**30
_MI = 2**20


def requests_and_limits(plan: Plan) -> Figure:
    """Per-pod CPU and memory requests against limits, one bar pair per service."""
    rows = service_table(plan)
    names = [r["service"] for r in rows]
    x = np.arange(len(names))
    fig = Figure(figsize=(11, 6), layout="constrained")
    ax_cpu, ax_mem = fig.subplots(2, 1, sharex=True)
    w = 0.4
    ax_cpu.bar(x - w / 2, [r["cpu_request_m"] for r in rows], w, label="request")
    ax_cpu.bar(x + w / 2, [r["cpu_limit_m"] for r in rows], w, label="limit")
    ax_cpu.set_ylabel("CPU per pod (millicores)")
    ax_cpu.legend()
    ax_mem.bar(x - w / 2, [r["memory_request_bytes"] / _MI for r in rows], w, label="request")
    ax_mem.bar(x + w / 2, [r["memory_limit_bytes"] / _MI for r in rows], w, label="limit")
    ax_mem.set_ylabel("memory per pod (MiB)")
    ax_mem.set_xticks(x, names, rotation=45, ha="right")
    fig.suptitle("Requests and limits per service (own containers, per pod)")
    return fig


def totals_against_profiles(plan: Plan, profiles: dict[str, Profile]) -> Figure:
    """Cluster capacity, allocatable and baseline requests/limits against each profile."""
    d = plan.to_dict()
    c, t = d["cluster"], d["totals"]
    labels = ["capacity", "allocatable", "requests", "limits"]
    cpu = [c["capacity_cpu_m"], c["allocatable_cpu_m"], t["cpu_request_m"], t["cpu_limit_m"]]
    mem = [c["capacity_memory_bytes"], c["allocatable_memory_bytes"], t["memory_request_bytes"],
           t["memory_limit_bytes"]]
    fig = Figure(figsize=(11, 4), layout="constrained")
    axes = fig.subplots(1, 2)
    for ax, values, scale, unit, key in ((axes[0], cpu, 1000, "cores", "cpu_m"),
                                         (axes[1], mem, _GI, "GiB", "memory_bytes")):
        ax.bar(labels, [v / scale for v in values], color=["C0", "C0", "C1", "C3"])
        for i, p in enumerate(profiles.values()):
            ax.axhline(getattr(p, key) / scale, color=f"C{4 + i}", linestyle="--", label=f"{p.name} profile")
        ax.set_ylabel(unit)
        ax.legend()
    axes[0].set_title("CPU")
    axes[1].set_title("Memory")
    fig.suptitle(f"{plan.nodes} x {plan.node_type.name}: cluster totals against the profiles")
    return fig


def nodes_per_scenario(plan: Plan) -> Figure:
    names = list(plan.scenarios)
    needed = [plan.scenarios[n].nodes_needed or 0 for n in names]
    lower = [plan.scenarios[n].lower_bound for n in names]
    x = np.arange(len(names))
    fig = Figure(figsize=(8, 4), layout="constrained")
    ax = fig.subplots()
    ax.bar(x - 0.2, needed, 0.4, label="nodes needed (FFD)")
    ax.bar(x + 0.2, lower, 0.4, label="lower bound")
    ax.axhline(plan.nodes, color="C3", linestyle="--", label=f"planned nodes ({plan.nodes})")
    ax.set_xticks(x, names)
    ax.set_ylabel("nodes")
    ax.legend()
    ax.set_title(f"Nodes needed per scenario ({plan.node_type.name}, {plan.options.provider})")
    return fig


def placement(plan: Plan, scenario: str) -> Figure:
    """CPU and memory requested on each node against the room for workloads."""
    r = plan.scenarios[scenario]
    fig = Figure(figsize=(10, 4), layout="constrained")
    axes = fig.subplots(1, 2)
    if r.placement is None:
        fig.suptitle(f"{scenario}: does not fit on {r.nodes_evaluated} nodes")
        return fig
    nodes = [f"node-{i}" for i in range(r.placement.nodes)]
    a = plan.node
    axes[0].bar(nodes, [c / 1000 for c in r.placement.cpu_m])
    axes[0].axhline(a.workload_cpu_m / 1000, color="C3", linestyle="--", label="room for workloads")
    axes[0].set_ylabel("CPU requested (cores)")
    axes[1].bar(nodes, [m / _GI for m in r.placement.memory_bytes])
    axes[1].axhline(a.workload_memory_bytes / _GI, color="C3", linestyle="--", label="room for workloads")
    axes[1].set_ylabel("memory requested (GiB)")
    for ax in axes:
        ax.legend()
        ax.tick_params(axis="x", rotation=45)
    fig.suptitle(f"Placement, {scenario} on {r.nodes_evaluated} x {plan.node_type.name}")
    return fig
