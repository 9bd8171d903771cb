"""Matplotlib figures of a plan. Each function returns a new ``Figure`` (no pyplot
global state), which Jupyter displays inline and ``savefig`` writes to a file.

Legends sit outside the axes (they never cover a bar), and axes that count things
(nodes, pods) have integer ticks only.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from .growth import Runway
from .plan import Plan, service_table
from .profiles import Profile
from .scheduling import Placement
from .tables import PACKING, SCHEDULER, full_shape, headroom_pct, minimal_packing, node_name, scheduler_placement

if TYPE_CHECKING:
    from .cost import Comparison

_GI = 2**30
_MI = 2**20


def _legend_outside(fig: Figure, ax: Axes) -> None:
    """One legend for the figure, below the axes, from ``ax``'s labelled artists."""
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="outside lower center", ncols=min(len(labels), 4), frameon=False)


def requests_and_limits(plan: Plan) -> Figure:
    """Per-pod CPU and memory requests against limits, one bar pair per service."""
    rows = service_table(plan)
    names = [r["service"] for r in rows]
    x = np.arange(len(names))
    fig = Figure(figsize=(11, 6.5), layout="constrained")
    ax_cpu, ax_mem = fig.subplots(2, 1, sharex=True)
    w = 0.4
    ax_cpu.bar(x - w / 2, [r["cpu_request_m"] for r in rows], w, label="request", color="C0")
    ax_cpu.bar(x + w / 2, [r["cpu_limit_m"] for r in rows], w, label="limit", color="C1")
    ax_cpu.set_ylabel("CPU per pod (millicores)")
    ax_mem.bar(x - w / 2, [r["memory_request_bytes"] / _MI for r in rows], w, color="C0")
    ax_mem.bar(x + w / 2, [r["memory_limit_bytes"] / _MI for r in rows], w, color="C1")
    ax_mem.set_ylabel("memory per pod (MiB)")
    ax_mem.set_xticks(x, names, rotation=45, ha="right")
    fig.suptitle("Requests and limits per service (own containers, per pod)")
    _legend_outside(fig, ax_cpu)
    return fig


def totals_against_profiles(plan: Plan, profiles: dict[str, Profile]) -> Figure:
    """Cluster capacity, allocatable and baseline requests/limits against each profile."""
    d = plan.to_dict()
    c, t = d["cluster"], d["totals"]
    labels = ["capacity", "allocatable", "requests", "limits"]
    cpu = [c["capacity_cpu_m"], c["allocatable_cpu_m"], t["cpu_request_m"], t["cpu_limit_m"]]
    mem = [c["capacity_memory_bytes"], c["allocatable_memory_bytes"], t["memory_request_bytes"],
           t["memory_limit_bytes"]]
    fig = Figure(figsize=(11, 4.5), layout="constrained")
    axes = fig.subplots(1, 2)
    for ax, values, scale, unit, key in ((axes[0], cpu, 1000, "cores", "cpu_m"),
                                         (axes[1], mem, _GI, "GiB", "memory_bytes")):
        ax.bar(labels, [v / scale for v in values], color=["C0", "C0", "C1", "C3"])
        for i, p in enumerate(profiles.values()):
            ax.axhline(getattr(p, key) / scale, color=f"C{4 + i}", linestyle="--", label=f"{p.name} profile")
        ax.set_ylabel(unit)
    axes[0].set_title("CPU")
    axes[1].set_title("Memory")
    fig.suptitle(f"{plan.nodes} x {plan.node_type.name}: cluster totals against the profiles")
    _legend_outside(fig, axes[0])
    return fig


def nodes_per_scenario(plan: Plan) -> Figure:
    """Nodes needed (first-fit packing) and the lower bound per scenario, against the
    planned count; the baseline's label says it keeps headroom."""
    names = list(plan.scenarios)
    needed = [plan.scenarios[n].nodes_needed or 0 for n in names]
    lower = [plan.scenarios[n].lower_bound for n in names]
    x = np.arange(len(names))
    fig = Figure(figsize=(8, 4.5), layout="constrained")
    ax = fig.subplots()
    ax.bar(x - 0.2, needed, 0.4, label="nodes needed (first-fit packing)")
    ax.bar(x + 0.2, lower, 0.4, label="lower bound")
    ax.axhline(plan.nodes, color="C3", linestyle="--", label=f"planned nodes ({plan.nodes})")
    ticks = [f"{n}\n({headroom_pct(plan, n):g}% headroom)" if headroom_pct(plan, n) else f"{n}\n(no headroom)"
             for n in names]
    ax.set_xticks(x, ticks)
    ax.set_ylabel("nodes")
    ax.set_ylim(0, max([plan.nodes, *needed, *lower]) + 1)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title(f"Nodes needed per scenario ({plan.node_type.name}, {plan.options.provider})")
    _legend_outside(fig, ax)
    return fig


def placement(plan: Plan, scenario: str, *, layout: str = SCHEDULER) -> Figure:
    """CPU and memory requested on each node against the room for workloads:
    ``SCHEDULER``, the default scheduler's spread over the nodes the scenario is judged
    on, or ``PACKING``, the minimal packing that gives ``nodes_needed``."""
    if plan.pools:   # one row of the two charts per pool, each against its own node type's room
        fig = Figure(figsize=(10, 4.5 * len(plan.pools)), layout="constrained")
        rows = fig.subfigures(len(plan.pools), 1, squeeze=False)
        for sub, pool in zip(rows[:, 0], plan.pools):
            _placement_on(sub, pool.plan, scenario, layout=layout, pool=pool.name)
        return fig
    fig = Figure(figsize=(10, 4.5), layout="constrained")
    _placement_on(fig, plan, scenario, layout=layout)
    return fig


def _placement_on(fig: Any, plan: Plan, scenario: str, *, layout: str, pool: str = "") -> None:
    r = plan.scenarios[scenario]
    axes = fig.subplots(1, 2)
    pending: tuple[str, ...] = ()
    p: Placement | None
    if layout == SCHEDULER:
        s = scheduler_placement(plan, scenario)
        p, pending = s.placement, s.pending
        what = f"default scheduler, {scenario} on the {r.nodes_evaluated} nodes it is judged on"
    elif layout == PACKING:
        p = minimal_packing(plan, scenario)
        what = f"minimal packing, {scenario} on {p.nodes if p else '-'} nodes (nodes needed: {r.nodes_needed})"
    else:
        raise ValueError(f"unknown placement layout {layout!r}")
    where = f"pool {pool}: " if pool else ""
    if p is None:
        fig.suptitle(f"{where}{scenario}: no node count of {plan.node_type.name} fits it")
        return
    shape = full_shape(plan)
    nodes = [node_name(p, i) for i in range(p.nodes)]
    kept = headroom_pct(plan, scenario)
    for ax, used, room, scale, unit in ((axes[0], p.cpu_m, shape.cpu_m, 1000, "CPU requested (cores)"),
                                        (axes[1], p.memory_bytes, shape.memory_bytes, _GI,
                                         "memory requested (GiB)")):
        ax.bar(nodes, [u / scale for u in used], label="requested by pods")
        ax.axhline(room / scale, color="C3", linestyle="--", label="room for workloads")
        if kept:
            ax.axhline(room * (1 - kept / 100) / scale, color="C2", linestyle=":",
                       label=f"baseline limit with {kept:g}% headroom")
        ax.set_ylabel(unit)
        ax.set_ylim(0, room / scale * 1.05)
        ax.tick_params(axis="x", rotation=45)
    title = f"Placement: {where}{what} ({plan.node_type.name})"
    if pending:
        title += f"; {len(pending)} pods Pending"
    fig.suptitle(title)
    _legend_outside(fig, axes[0])


def growth_runway(runway: Runway) -> Figure:
    """Nodes needed per month as demand grows (``plan --growth``), against the planned
    count; the month the first gate fails at the planned count is marked."""
    months = [p.month for p in runway.series]
    needed = [p.nodes_needed for p in runway.series]
    fig = Figure(figsize=(9, 4.5), layout="constrained")
    ax = fig.subplots()
    known = [(m, n) for m, n in zip(months, needed) if n is not None]
    ax.step([m for m, _ in known], [n for _, n in known], where="post", marker="o",
            label="nodes needed (recommended count)")
    ax.axhline(runway.planned_nodes, color="C3", linestyle="--", label=f"planned nodes ({runway.planned_nodes})")
    if runway.months is not None:
        ax.axvline(runway.months, color="C1", linestyle=":",
                   label=f"{runway.gate} fails (month {runway.months})")
    beyond = [m for m, n in zip(months, needed) if n is None]
    if beyond:
        ax.axvspan(beyond[0] - 0.5, months[-1] + 0.5, color="0.85", label="beyond supported limits")
    ax.set_xlabel("month")
    ax.set_ylabel("nodes")
    ax.set_xlim(-0.5, months[-1] + 0.5)
    ax.set_ylim(0, max([runway.planned_nodes, *(n for _, n in known)]) + 1)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title(f"Growth runway at {runway.growth_text()} ({runway.node_type})")
    _legend_outside(fig, ax)
    return fig


def node_type_costs(comparisons: Sequence[Comparison], *, chosen: str | None = None) -> Figure:
    """Monthly cost of the smallest passing count of each node type (``plan
    --compare-node-types``), cheapest at the top and marked; types that cannot pass, or
    have no price, are named under the axes."""
    shown = [c for c in comparisons if c.passed and c.monthly_usd is not None]
    fig = Figure(figsize=(9, max(3.0, 0.3 * len(shown) + 1.5)), layout="constrained")
    _node_type_costs_on(fig, comparisons, chosen=chosen)
    return fig


def pool_node_type_costs(by_pool: Mapping[str, Sequence[Comparison]], *, chosen: Mapping[str, str] | None = None
                         ) -> Figure:
    """``plan --compare-node-types --pools``: one cost chart per pool, each of the types tried
    in that pool (the cluster's monthly cost with it), the pool's own type in the file marked."""
    heights = [max(3.0, 0.3 * sum(1 for c in cs if c.passed and c.monthly_usd is not None) + 1.5)
               for cs in by_pool.values()]
    fig = Figure(figsize=(9, sum(heights)), layout="constrained")
    subs = fig.subfigures(len(by_pool), 1, squeeze=False, height_ratios=heights)
    for sub, (pool, cs) in zip(subs[:, 0], by_pool.items()):
        _node_type_costs_on(sub, cs, chosen=(chosen or {}).get(pool), pool=pool)
    return fig


def _node_type_costs_on(fig: Any, comparisons: Sequence[Comparison], *, chosen: str | None, pool: str = "") -> None:
    from .cost import cheapest

    shown = [c for c in comparisons if c.passed and c.monthly_usd is not None]
    left_out = [c.node_type for c in comparisons if not (c.passed and c.monthly_usd is not None)]
    best = cheapest(comparisons)
    ax = fig.subplots()
    y = np.arange(len(shown))
    costs = [float(c.monthly_usd) for c in shown if c.monthly_usd is not None]
    colors = ["C2" if best is not None and c.node_type == best.node_type
              else "C1" if c.node_type == chosen else "C0" for c in shown]
    ax.barh(y, costs, color=colors)
    ax.set_yticks(y, [f"{c.node_type} x {c.nodes}" for c in shown])
    ax.invert_yaxis()
    for yi, cost in zip(y, costs):
        ax.text(cost, float(yi), f" ${cost:,.0f}", va="center", fontsize=8)
    ax.set_xlabel("USD per month (730 h), smallest node count that passes every gate"
                  + (" (the cluster's cost)" if pool else ""))
    title = f"Pool {pool}: node types by the cluster's monthly cost" if pool else "Node types by monthly cost"
    if best is not None:
        title += f": cheapest {best.node_type} ({best.nodes} nodes)"
    ax.set_title(title)
    if left_out:
        fig.supxlabel("not shown (no passing count, or no price): " + ", ".join(left_out), fontsize=8, wrap=True)
