"""DataFrames of a plan, for the CLI's table/CSV output and the notebooks.

The frames keep short machine column names (``cpu_request`` in cores, ``mem_limit_mib``),
which ``plan --format csv`` has always written; ``show`` turns a frame into the table a
report prints: no index column, a header with its unit, an empty cell instead of
``<NA>``, and every value in full.
"""
from __future__ import annotations

import html
import math
from dataclasses import dataclass
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pandas as pd

from .plan import Plan, service_table
from .profiles import Profile
from .scheduling import NodeShape, Placement, PodRequest, ScheduledPods, place, scheduler_spread

if TYPE_CHECKING:
    from .cost import Comparison

_MI = 2**20
_GI = 2**30

TABLES = ("services", "scenarios", "gates", "placement")

# Report headers, with the unit of every figure.
LABELS: dict[str, str] = {
    "service": "service", "tier": "tier", "kind": "kind", "port": "port", "replicas": "replicas",
    "hpa_max": "HPA max replicas",
    "cpu_request": "CPU request (cores/pod)", "cpu_limit": "CPU limit (cores/pod)",
    "mem_request_mib": "memory request (MiB/pod)", "mem_limit_mib": "memory limit (MiB/pod)",
    "total_cpu_request": "CPU requested, all replicas (cores)",
    "total_mem_request_gib": "memory requested, all replicas (GiB)",
    "storage_gib": "storage (GiB)",
    "scenario": "scenario", "pods": "pods", "cpu_request_cores": "CPU requested (cores)",
    "mem_request_gib": "memory requested (GiB)",
    "headroom_pct": "headroom kept per node (%)", "judged_on": "node room judged against",
    "nodes_needed": "nodes needed", "lower_bound": "lower bound (nodes)",
    "nodes_evaluated": "nodes judged", "fits": "fits",
    "cpu_util": "CPU requested / allocatable (%)", "mem_util": "memory requested / allocatable (%)",
    "gate": "gate", "result": "result", "detail": "detail",
    "what": "what", "cpu_cores": "CPU (cores)", "memory_gib": "memory (GiB)",
    "layout": "placement", "node": "node", "cpu_room_pct": "CPU of room for workloads (%)",
    "mem_room_pct": "memory of room for workloads (%)", "pod_names": "pods on the node",
    "pool": "node pool", "node_type": "node type", "nodes": "nodes",
    "price_usd_per_hour": "price (USD/hour/node)", "price_basis": "price basis", "price_source": "price source",
    "monthly_usd": "cost (USD/month, 730 h)", "provider": "provider", "family": "family", "vcpus": "vCPUs",
    "passed": "passes", "why": "why not",
    "exact": "exact count", "exact_lower_bound": "proven lower bound (nodes)",
    "first_fit_nodes": "first-fit decreasing (nodes)", "zone": "zone",
    "lost_in_zone_loss": "lost in zone-loss", "survivors": "replicas left (fewest, one zone lost)",
    "worst_zone": "zone whose loss leaves the fewest", "sized": "count", "labels": "labels",
    "taints": "taints", "services": "services",
}

PLACEMENT_COLUMNS = ["scenario", "layout", "node", "pods", "cpu_request_cores", "mem_request_gib", "cpu_room_pct",
                     "mem_room_pct", "pod_names"]


def services_frame(plan: Plan) -> pd.DataFrame:
    """Per-service figures in readable units (cores, MiB, GiB); with several pools, each
    service's pool first."""
    rows = service_table(plan)
    df = pd.DataFrame(rows)
    pool_of = {s.name: p.name for p in plan.pools for s in p.plan.catalog.services}
    out = pd.DataFrame({
        **({"pool": [pool_of[n] for n in df["service"]]} if plan.pools else {}),
        "service": df["service"], "tier": df["tier"], "kind": df["kind"], "port": df["port"],
        "replicas": df["replicas"], "hpa_max": df["hpa_max"].astype("Int64"),
        "cpu_request": df["cpu_request_m"] / 1000, "cpu_limit": df["cpu_limit_m"] / 1000,
        "mem_request_mib": df["memory_request_bytes"] / _MI,
        "mem_limit_mib": df["memory_limit_bytes"] / _MI,
        "total_cpu_request": df["total_cpu_request_m"] / 1000,
        "total_mem_request_gib": (df["total_memory_request_bytes"] / _GI).round(2),
        "storage_gib": df["storage_request_bytes"] / _GI,
    })
    return out


def headroom_pct(plan: Plan, scenario: str) -> float:
    """The share of each node's room kept free when ``scenario`` is judged: only the
    baseline keeps headroom; the peaks (HPA maximum, a rollout, a drained node) may use
    every node in full, which is why a peak can need fewer nodes than the baseline."""
    return float(plan.options.headroom_pct) if scenario == "baseline" else 0.0


def scenarios_frame(plan: Plan) -> pd.DataFrame:
    """One row per scenario; with several pools, each pool's rows and then the totals."""
    if plan.pools:
        frames = [scenarios_frame(p.plan).assign(pool=p.name) for p in plan.pools]
        total = _scenario_rows(plan).assign(pool="total")
        out = pd.concat([*frames, total], ignore_index=True)
        return out[["pool", *(c for c in out.columns if c != "pool")]]
    return _scenario_rows(plan)


def _scenario_rows(plan: Plan) -> pd.DataFrame:
    d = plan.to_dict()["scenarios"]
    rows = []
    for name, s in d.items():
        kept = headroom_pct(plan, name)
        rows.append({
            "scenario": name, "pods": s["pods"], "cpu_request_cores": s["cpu_request_m"] / 1000,
            "mem_request_gib": round(s["memory_request_bytes"] / _GI, 2),
            "headroom_pct": kept,
            "judged_on": (f"{100 - kept:g}% of each node's room for workloads" if kept
                          else "each node's full room for workloads"),
            "nodes_needed": s["nodes_needed"], "lower_bound": s["lower_bound"],
            "nodes_evaluated": s["nodes_evaluated"], "fits": s["fits"],
            "cpu_util": s["cpu_utilisation"], "mem_util": s["memory_utilisation"],
            **({"exact": s["exact"], "exact_lower_bound": s["exact_lower_bound"],
                "first_fit_nodes": s["first_fit_nodes"]} if plan.options.exact else {})})
    out = pd.DataFrame(rows)
    out["nodes_needed"] = out["nodes_needed"].astype("Int64")
    return out


def zones_frame(plan: Plan) -> pd.DataFrame:
    """With zones: each zone's nodes, and the nodes the zone-loss scenario keeps (per pool,
    the pool first, with several pools)."""
    if plan.pools:
        out = pd.concat([zones_frame(p.plan).assign(pool=p.name) for p in plan.pools], ignore_index=True)
        return out[["pool", "zone", "nodes", "lost_in_zone_loss"]]
    nodes = plan.node_zones
    kept = plan.nodes_of("zone-loss")[1] if plan.zone_labels else ()
    return pd.DataFrame([{"zone": z, "nodes": nodes.count(z), "lost_in_zone_loss": z not in kept}
                         for z in plan.zone_labels], columns=["zone", "nodes", "lost_in_zone_loss"])


def survivors_frame(plan: Plan) -> pd.DataFrame:
    """With zones: per trading service, the replicas left running the moment a zone is lost."""
    return pd.DataFrame([{"service": v.service, "tier": v.tier, "replicas": v.replicas,
                          "survivors": v.survivors, "worst_zone": v.zone} for v in plan.survivors],
                        columns=["service", "tier", "replicas", "survivors", "worst_zone"])


def gates_frame(plan: Plan, *, failing_first: bool = False) -> pd.DataFrame:
    gates = sorted(plan.gates, key=lambda g: g.passed) if failing_first else list(plan.gates)
    return pd.DataFrame([{"gate": g.name, "result": "PASS" if g.passed else "FAIL", "detail": g.detail}
                         for g in gates], columns=["gate", "result", "detail"])


def profiles_frame(plan: Plan, profiles: dict[str, Profile]) -> pd.DataFrame:
    """Cluster capacity and the plan's demand against each profile."""
    d = plan.to_dict()
    c = d["cluster"]
    rows: list[dict[str, Any]] = [
        {"what": "cluster capacity", "cpu_cores": c["capacity_cpu_m"] / 1000,
         "memory_gib": round(c["capacity_memory_bytes"] / _GI, 1), "storage_gib": c["storage_bytes"] / _GI},
        {"what": "cluster allocatable", "cpu_cores": c["allocatable_cpu_m"] / 1000,
         "memory_gib": round(c["allocatable_memory_bytes"] / _GI, 1), "storage_gib": c["storage_bytes"] / _GI},
        {"what": "baseline requests", "cpu_cores": d["totals"]["cpu_request_m"] / 1000,
         "memory_gib": round(d["totals"]["memory_request_bytes"] / _GI, 1),
         "storage_gib": d["totals"]["storage_request_bytes"] / _GI},
        {"what": "baseline limits", "cpu_cores": d["totals"]["cpu_limit_m"] / 1000,
         "memory_gib": round(d["totals"]["memory_limit_bytes"] / _GI, 1), "storage_gib": None}]
    for p in profiles.values():
        rows.append({"what": f"profile {p.name}", "cpu_cores": p.cpu_m / 1000,
                     "memory_gib": p.memory_bytes / _GI, "storage_gib": p.storage_bytes / _GI})
    return pd.DataFrame(rows)


# ------------------------------------------------------------------ placements


def scenario_pods(plan: Plan, scenario: str) -> list[PodRequest]:
    """The scenario's pods in creation order (service by service, as the catalogue lists
    them), with the spread the rendered manifests carry (the zone spread too, with zones)."""
    return plan.pod_requests(scenario)


def full_shape(plan: Plan) -> NodeShape:
    """What the scheduler lets pods request on one node: allocatable less DaemonSets."""
    a = plan.node
    return NodeShape(a.workload_cpu_m, a.workload_memory_bytes, a.workload_pods)


def scheduler_placement(plan: Plan, scenario: str) -> ScheduledPods:
    """How the default scheduler would spread the scenario's pods over the nodes it is
    judged on (the planned count; one fewer for ``node-drain``). The scheduler knows
    nothing of the plan's headroom, so every scenario is placed on the full room."""
    a = plan.node
    nodes, zones = plan.nodes_of(scenario)
    return scheduler_spread(scenario_pods(plan, scenario), full_shape(plan), nodes=nodes, zones=zones,
                            reserved_cpu_m=a.daemonset_cpu_m, reserved_memory_bytes=a.daemonset_memory_bytes)


def minimal_packing(plan: Plan, scenario: str) -> Placement | None:
    """The packing behind ``nodes_needed``: the sizing engine's first-fit placement on
    the fewest nodes it found (for ``node-drain``, the baseline on the surviving nodes;
    for the baseline, with its headroom kept free). None when no count fits."""
    r = plan.scenarios[scenario]
    if r.nodes_needed is None:
        return None
    nodes, zones = plan.nodes_of(scenario, r.nodes_needed)
    shape = plan.headroom_shape if scenario == "baseline" else full_shape(plan)
    return place(scenario_pods(plan, scenario), shape, nodes=nodes, zones=zones)


def _placement_rows(plan: Plan, scenario: str, layout: str, placement: Placement | None,
                    pending: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    shape = full_shape(plan)
    rows: list[dict[str, Any]] = []
    if placement is not None:
        for i, pods in placement.by_node().items():
            rows.append({"scenario": scenario, "layout": layout, "node": node_name(placement, i),
                         "pods": placement.pods[i], "cpu_request_cores": placement.cpu_m[i] / 1000,
                         "mem_request_gib": round(placement.memory_bytes[i] / _GI, 2),
                         "cpu_room_pct": round(100 * placement.cpu_m[i] / max(shape.cpu_m, 1), 1),
                         "mem_room_pct": round(100 * placement.memory_bytes[i] / max(shape.memory_bytes, 1), 1),
                         "pod_names": ", ".join(sorted(pods))})
    if pending:
        rows.append({"scenario": scenario, "layout": layout, "node": "Pending (fits no node)",
                     "pods": len(pending), "cpu_request_cores": None, "mem_request_gib": None,
                     "cpu_room_pct": None, "mem_room_pct": None, "pod_names": ", ".join(sorted(pending))})
    return rows


def node_name(placement: Placement, i: int) -> str:
    """``node-3``, or ``node-3 (us-central1-a)`` when the nodes have zones."""
    return f"node-{i} ({placement.zones[i]})" if placement.zones else f"node-{i}"


SCHEDULER = "default scheduler"
PACKING = "minimal packing"


def placement_frame(plan: Plan, scenario: str, *, layout: str = SCHEDULER) -> pd.DataFrame:
    """Pods per node for one scenario: ``SCHEDULER``, the default scheduler's spread over
    the nodes the scenario is judged on, or ``PACKING``, the packing that gives
    ``nodes_needed``; with several pools, every pool's nodes, the pool first."""
    if plan.pools:
        frames = [placement_frame(p.plan, scenario, layout=layout).assign(pool=p.name) for p in plan.pools]
        out = pd.concat(frames, ignore_index=True)
        return out[["pool", *PLACEMENT_COLUMNS]]
    if layout == SCHEDULER:
        s = scheduler_placement(plan, scenario)
        rows = _placement_rows(plan, scenario, layout, s.placement, s.pending)
    elif layout == PACKING:
        rows = _placement_rows(plan, scenario, layout, minimal_packing(plan, scenario))
    else:
        raise ValueError(f"unknown placement layout {layout!r}")
    return pd.DataFrame(rows, columns=PLACEMENT_COLUMNS)


def placements_frame(plan: Plan) -> pd.DataFrame:
    """Both placements of every scenario, one row per node (the ``placement`` CSV)."""
    frames = [placement_frame(plan, name, layout=layout)
              for name in plan.scenarios for layout in (SCHEDULER, PACKING)]
    return pd.concat(frames, ignore_index=True)


def pools_frame(plan: Plan) -> pd.DataFrame:
    """With several pools: each pool's node type, count, labels, taints and services."""
    return pd.DataFrame([{
        "pool": p.name, "node_type": p.plan.node_type.name, "nodes": p.plan.nodes,
        "sized": "given" if p.spec.nodes is not None else "sized by the plan",
        "labels": ", ".join(f"{k}={v}" for k, v in p.spec.labels.items()),
        "taints": ", ".join(f"{t.key}={t.value}:{t.effect}" for t in p.spec.taints),
        "services": ", ".join(s.name for s in p.plan.catalog.services),
        "passed": p.passed} for p in plan.pools],
        columns=["pool", "node_type", "nodes", "sized", "labels", "taints", "services", "passed"])


def frame(plan: Plan, table: str) -> pd.DataFrame:
    """One of ``TABLES`` by name."""
    if table == "services":
        return services_frame(plan)
    if table == "scenarios":
        return scenarios_frame(plan)
    if table == "gates":
        return gates_frame(plan)
    if table == "placement":
        return placements_frame(plan)
    if table == "cost":
        return cost_frame(plan)
    if table == "pools":
        return pools_frame(plan)
    raise ValueError(f"unknown table {table!r}; one of: {', '.join(TABLES)}")


def cost_frame(plan: Plan) -> pd.DataFrame:
    """The plan's monthly cost: one row per node pool and a total row (``--table cost``)."""
    from .cost import plan_cost
    cost = plan_cost(plan).to_dict()
    rows = [{k: p[k] for k in ("pool", "node_type", "nodes", "price_usd_per_hour", "price_basis",
                                "price_source", "monthly_usd")} for p in cost["pools"]]
    for row, pool in zip(rows, plan_cost(plan).pools):   # the price as the file states it, every digit
        row["price_usd_per_hour"] = None if pool.price_usd_per_hour is None else str(pool.price_usd_per_hour)
    rows.append({"pool": "total", "node_type": None, "nodes": sum(p["nodes"] for p in cost["pools"]),
                 "price_usd_per_hour": None, "price_basis": None, "price_source": None,
                 "monthly_usd": cost["total_monthly_usd"]})
    return pd.DataFrame(rows, columns=["pool", "node_type", "nodes", "price_usd_per_hour", "price_basis",
                                       "price_source", "monthly_usd"])


def comparison_frame(comparisons: Sequence[Comparison]) -> pd.DataFrame:
    """``plan --compare-node-types``: one row per node type, cheapest passing first."""
    columns = ["node_type", "provider", "family", "vcpus", "memory_gib", "nodes", "price_usd_per_hour",
               "price_basis", "monthly_usd", "passed", "why"]
    if any(c.pool for c in comparisons):
        columns = ["pool", *columns]
    rows = [{k: c.to_dict()[k] for k in columns} for c in comparisons]
    for row, c in zip(rows, comparisons):   # the price as the file states it, every digit
        row["price_usd_per_hour"] = None if c.price_usd_per_hour is None else str(c.price_usd_per_hour)
    df = pd.DataFrame(rows, columns=columns)
    df["nodes"] = df["nodes"].astype("Int64")
    return df


def csv_tables(plan: Plan) -> dict[str, str]:
    """Every table as CSV text, by file name (``services.csv``...): ``plan --out DIR``."""
    names = (*TABLES, "pools") if plan.pools else TABLES
    return {f"{name}.csv": frame(plan, name).to_csv(index=False) for name in names}


# ------------------------------------------------------------------ display


@dataclass(frozen=True)
class Table:
    """A frame as a report shows it. Jupyter renders ``_repr_html_``; nbconvert keeps it."""

    frame: pd.DataFrame
    caption: str = ""
    percent: tuple[str, ...] = ()     # columns holding a 0..1 share, shown as percent

    def _values(self) -> pd.DataFrame:
        df = self.frame.copy()
        for col in self.percent:
            if col in df:
                df[col] = [None if pd.isna(v) else round(100 * float(v), 1) for v in df[col]]
        return df

    def _repr_html_(self) -> str:
        df = self._values()
        head = "".join(f"<th>{html.escape(LABELS.get(str(c), str(c)))}</th>" for c in df.columns)
        body = []
        for row in df.itertuples(index=False):
            cells = []
            for col, v in zip(df.columns, row):
                text = _cell(v)
                cls = ' class="eafix-fail"' if text == "FAIL" else ' class="eafix-pass"' if text == "PASS" else ""
                align = ' style="text-align:left"' if isinstance(v, str) else ""
                cells.append(f"<td{cls}{align}>{html.escape(text)}</td>")
            body.append("<tr>" + "".join(cells) + "</tr>")
        caption = f"<caption>{html.escape(self.caption)}</caption>" if self.caption else ""
        return scrolling(f'<table class="eafix">{caption}<thead><tr>{head}</tr></thead>'
                         f'<tbody>{"".join(body)}</tbody></table>')

    def __repr__(self) -> str:
        text = plain_text(self._values(), labels=LABELS)
        return f"{self.caption}\n{text}" if self.caption else text


def scrolling(table_html: str) -> str:
    """A table in a container that scrolls sideways rather than cutting it at the page edge
    (inline style, so it holds in JupyterLab as in the exported HTML)."""
    return f'<div class="eafix-table" style="overflow-x:auto;max-width:100%">{table_html}</div>'


def plain_text(df: pd.DataFrame, *, labels: dict[str, str] | None = None) -> str:
    """``df`` as aligned text without the index, every value in full, empty cells for
    missing values (pandas prints ``<NA>``)."""
    names = [(labels or {}).get(str(c), str(c)) for c in df.columns]
    cells = pd.DataFrame({n: [_cell(v) for v in df[c]] for n, c in zip(names, df.columns)}, columns=names)
    with pd.option_context("display.max_colwidth", None, "display.width", 10_000,
                           "display.max_columns", None, "display.max_rows", None):
        return cells.to_string(index=False)


def _cell(v: object) -> str:
    if v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)):
        return ""
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        text = repr(round(v, 3))
        return text[:-2] if text.endswith(".0") else text
    return str(v)


def show(df: pd.DataFrame, *, caption: str = "", percent: tuple[str, ...] = ()) -> Table:
    """``df`` as a report table (see ``Table``)."""
    return Table(df, caption, percent)


def show_scenarios(plan: Plan) -> Table:
    return show(scenarios_frame(plan), percent=("cpu_util", "mem_util"),
                caption="Only the baseline keeps headroom free on each node; the peaks may use every "
                        "node in full, so a peak can need fewer nodes than the baseline.")


def show_gates(plan: Plan) -> Table:
    """The gates, failing ones first."""
    return show(gates_frame(plan, failing_first=True))
