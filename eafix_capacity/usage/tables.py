"""The table users know from ``kube-capacity --util --pods``, built from the kit's samples.

kube-capacity (robscott/kube-capacity) prints, per node, a ``*`` row with the node's totals
and then one row per pod (``--containers``: and per container): CPU and memory requests,
limits and usage, each absolute and as a percentage of the **node's allocatable**. Users
read that table already; the utilisation report prints the same one from the samples the
kit stored, so it needs no metrics-server at report time and can show a percentile over the
window instead of one instant. Pending pods (no node) count on no node: they get a block of
their own at the end, without percentages.

What is mirrored (pkg/capacity/resources.go and table.go):
- requests and limits of a pod are the sums over its containers of the figures that are set
  (``PodRequestsAndLimits``: an unset limit adds nothing, and a container without one
  prints ``0m (0%)``); a node's are the sums over its pods;
- a node's usage is its own metric (NodeMetrics: kubelet, runtime and OS included, so it is
  more than the sum of its pods); only when no node samples were given at all is it the sum
  of its pods' usage;
- the cluster ``*`` row is printed only with more than one node; rows are sorted by name;
- CPU prints as ``%dm`` (millicores rounded up), memory as ``%dMi`` (rounded up), the
  percentage as the truncated integer of the rounded figure over allocatable.
Unlike kube-capacity, a usage the source did not have is ``<unknown>`` (NA in the frame),
never ``0m``: a missing sample is not a zero.
"""
from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from .. import quantity
from ..errors import InputError, QuantityError
from .samples import NodeSample

_MI = 2**20
VOID = "*"
"""kube-capacity's ``VoidValue``: the column a totals row does not break down."""
NO_NODE = "<none>"
"""How the text shows a Pending pod's empty node (``kubectl get pods -o wide`` prints it so)."""
LATEST = "latest"
STALE_AFTER = timedelta(minutes=5)
"""A container whose last sample is older than this before the table's instant is gone (a
deleted or replaced pod): Prometheus's default lookback delta, after which an instant query
no longer returns a series."""

TABLE_COLUMNS = ("row", "node", "namespace", "pod", "container",
                 "cpu_request_m", "cpu_request_pct", "cpu_limit_m", "cpu_limit_pct",
                 "cpu_util_m", "cpu_util_pct",
                 "memory_request_bytes", "memory_request_pct", "memory_limit_bytes", "memory_limit_pct",
                 "memory_util_bytes", "memory_util_pct", "cpu_allocatable_m", "memory_allocatable_bytes")
"""The frame's columns. ``row`` is ``cluster``, ``node``, ``pending`` (the Pending pods'
totals), ``pod`` or ``container``; ``*`` stands where a totals row does not break down;
a Pending pod's ``node`` is ""; the ``_pct`` columns are exact percentages of the row's
``*_allocatable`` (the node's; the sum over the nodes on the cluster row; NA on no node or
an unknown allocatable). Every figure is a nullable float (``Float64``)."""
REQUIRED_COLUMNS = ("timestamp", "namespace", "pod", "container", "node", "cpu_m", "memory_bytes",
                    "cpu_request_m", "cpu_limit_m", "memory_request_bytes", "memory_limit_bytes")
_FIGURES = ("cpu_request_m", "cpu_limit_m", "memory_request_bytes", "memory_limit_bytes")
_USAGE = re.compile(r"^p(\d{1,2}(?:\.\d+)?|100)$")


@dataclass(frozen=True, slots=True)
class Allocatable:
    """What the scheduler may place on a node (``status.allocatable``)."""

    cpu_m: float
    memory_bytes: int


@dataclass(frozen=True)
class CapacityTable:
    """The table as a frame (``TABLE_COLUMNS``) and as kube-capacity's text."""

    frame: pd.DataFrame
    text: str
    usage: str
    """``latest`` or the percentile (``p95``, ``max``) the usage columns hold."""
    at: datetime
    """The instant the table describes (the last sample at or before it)."""

    def __str__(self) -> str:
        return self.text

    def _repr_html_(self) -> str:
        import html

        return f"<pre>{html.escape(self.text)}</pre>"


def check_frame(frame: pd.DataFrame, needed: Iterable[str] = REQUIRED_COLUMNS) -> None:
    """A one-line error when ``frame`` lacks a column the analysis reads."""
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise InputError("the samples frame lacks columns", field=", ".join(missing),
                         valid="a frame with eafix_capacity.usage.samples.FRAME_COLUMNS (the store's load)")


def parse_allocatable(nodes_allocatable: Mapping[str, Allocatable | Mapping[str, Any]]) -> dict[str, Allocatable]:
    """``{node: Allocatable}`` from Allocatable records or a node's ``status.allocatable``
    (``{"cpu": "3920m", "memory": "15Gi", ...}``)."""
    out: dict[str, Allocatable] = {}
    for name, value in nodes_allocatable.items():
        if isinstance(value, Allocatable):
            out[str(name)] = value
            continue
        if not isinstance(value, Mapping):
            raise InputError("not an allocatable", obj=f"node {name}", value=value,
                             valid='an Allocatable or a mapping {"cpu": "3920m", "memory": "15Gi"}')
        try:
            cpu = quantity.parse(value.get("cpu", 0)).milli_value()
            mem = quantity.parse(value.get("memory", 0)).int_value()
        except QuantityError as e:
            raise InputError(f"allocatable is not a quantity ({e})", obj=f"node {name}",
                             valid="Kubernetes quantities such as 3920m and 15Gi") from e
        out[str(name)] = Allocatable(float(cpu), mem)
    return out


def _usage_quantile(usage: str) -> float | None:
    """None for ``latest``; else the quantile in 0..1 (``max`` is 1)."""
    if usage == LATEST:
        return None
    if usage == "max":
        return 1.0
    m = _USAGE.match(usage) if isinstance(usage, str) else None
    if not m:
        raise InputError("unknown usage figure", field="usage", value=usage,
                         valid="latest, max or a percentile pNN such as p95")
    return float(m.group(1)) / 100


def _current(frame: pd.DataFrame, at: pd.Timestamp, stale_after: timedelta) -> pd.DataFrame:
    """Each container's last row at or before ``at``, for the containers still there."""
    frame = frame.reset_index(drop=True)
    last = frame.loc[frame.groupby(["namespace", "pod", "container"], observed=True, sort=False)["timestamp"].idxmax()]
    return last[last["timestamp"] >= at - stale_after]


def _nullable(v: Any) -> float | None:
    return None if v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)) else float(v)


def _pct(v: float | None, alloc: float | None) -> float | None:
    if v is None or alloc is None or alloc <= 0:
        return None
    return 100 * v / alloc


def _sum_set(values: Iterable[float | None]) -> float:
    """The sum of the figures that are set (PodRequestsAndLimits adds only those)."""
    return float(sum(v for v in values if v is not None))


def _sum_known(values: Iterable[float | None]) -> float | None:
    """The sum, unknown when any part is unknown (a missing sample is not a zero)."""
    vs = list(values)
    return None if any(v is None for v in vs) else float(sum(v for v in vs if v is not None))


def capacity_table(frame: pd.DataFrame, node_samples: Iterable[NodeSample] = (),
                   nodes_allocatable: Mapping[str, Allocatable | Mapping[str, Any]] | None = None, *,
                   containers: bool = False, usage: str = LATEST, at: datetime | None = None,
                   stale_after: timedelta = STALE_AFTER) -> CapacityTable:
    """kube-capacity's ``--util --pods`` (``containers=True``: ``--containers``) table (pure).

    ``frame`` has the samples (``FRAME_COLUMNS``); ``node_samples`` the nodes' own usage;
    ``nodes_allocatable`` each node's allocatable (nodes without pods are listed too).
    ``at`` (default: the last sample) is the instant described: each container's requests,
    limits and node are those of its last sample at or before it, and containers not sampled
    within ``stale_after`` before it are gone. ``usage`` is ``latest`` (the last sample, as
    kube-capacity shows the current metrics) or ``pNN``/``max`` over the samples up to ``at``
    (a pod's figure is then the sum of its containers' percentiles; a node's is the
    percentile of its own samples up to ``at``: give node samples of the same window).
    An empty frame is a one-line ``InputError``.
    """
    check_frame(frame)
    q = _usage_quantile(usage)
    if frame.empty:
        raise InputError("no samples to tabulate", valid="sample a cluster first, or widen the window")
    alloc = parse_allocatable(nodes_allocatable or {})
    ts = pd.to_datetime(frame["timestamp"], utc=True)
    if at is not None and (at.tzinfo is None or at.utcoffset() is None):
        raise InputError("the table's instant has no timezone", field="at", value=str(at),
                         valid="a timezone-aware UTC datetime")
    when = ts.max() if at is None else pd.Timestamp(at).tz_convert("UTC")
    df = frame.assign(timestamp=ts)
    df = df[df["timestamp"] <= when]
    if df.empty:
        raise InputError("no samples at or before the table's instant", field="at", value=str(when),
                         valid=f"a time at or after the first sample ({ts.min()})")
    cur = _current(df, when, stale_after)
    cur = cur.assign(node=cur["node"].astype("string").fillna("").astype(str),
                     namespace=cur["namespace"].astype(str), pod=cur["pod"].astype(str),
                     container=cur["container"].astype(str))
    if q is None:
        cpu_use = {k: _nullable(v) for k, v in zip(_keys(cur), cur["cpu_m"])}
        mem_use = {k: _nullable(v) for k, v in zip(_keys(cur), cur["memory_bytes"])}
    else:
        keys = set(_keys(cur))
        cpu_all, mem_all = _percentiles(df, "cpu_m", q), _percentiles(df, "memory_bytes", q)
        cpu_use = {k: cpu_all.get(k) for k in keys}
        mem_use = {k: mem_all.get(k) for k in keys}

    # container records: (node, namespace, pod, container) -> figures
    recs: dict[str, dict[tuple[str, str], dict[str, dict[str, float | None]]]] = {}
    for row in cur.to_dict("records"):
        ns, pod, name, node = str(row["namespace"]), str(row["pod"]), str(row["container"]), str(row["node"])
        figs = {f: _nullable(row[f]) for f in _FIGURES}
        figs["cpu_util_m"] = cpu_use[(ns, pod, name)]
        figs["memory_util_bytes"] = mem_use[(ns, pod, name)]
        recs.setdefault(node, {}).setdefault((ns, pod), {})[name] = figs

    node_list = list(node_samples)
    node_use = _node_usage(node_list, when, stale_after, q)
    nodes = sorted((set(alloc) | set(recs)) - {""})
    rows: list[dict[str, Any]] = []
    node_rows: list[dict[str, Any]] = []
    for node in nodes:
        a = alloc.get(node)
        pods = recs.get(node, {})
        pod_figs = {k: _pod_figures(c) for k, c in pods.items()}
        totals: dict[str, float | None] = {f: _sum_set(p[f] for p in pod_figs.values()) for f in _FIGURES}
        if node_list:
            cpu_u, mem_u = node_use.get(node, (None, None))
        else:  # no node metrics at all: kube-capacity's addPodUtilization
            cpu_u = _sum_known(p["cpu_util_m"] for p in pod_figs.values())
            mem_u = _sum_known(p["memory_util_bytes"] for p in pod_figs.values())
        totals["cpu_util_m"], totals["memory_util_bytes"] = cpu_u, mem_u
        head = _row("node", node, VOID, VOID, VOID, totals, a)
        node_rows.append(head)
        rows.append(head)
        rows.extend(_pod_rows(node, pods, pod_figs, a, containers))
    if len(nodes) > 1:
        known = [alloc.get(n) for n in nodes]
        cluster_alloc = (Allocatable(sum(x.cpu_m for x in known if x), sum(x.memory_bytes for x in known if x))
                         if all(known) else None)
        totals = {f: _sum_set(_nullable(r[f]) for r in node_rows) for f in _FIGURES}
        totals["cpu_util_m"] = _sum_known(r["cpu_util_m"] for r in node_rows)
        totals["memory_util_bytes"] = _sum_known(r["memory_util_bytes"] for r in node_rows)
        rows.insert(0, _row("cluster", VOID, VOID, VOID, VOID, totals, cluster_alloc))
    pending = recs.get("", {})
    if pending:
        pod_figs = {k: _pod_figures(c) for k, c in pending.items()}
        totals = {f: _sum_set(p[f] for p in pod_figs.values()) for f in _FIGURES}
        totals["cpu_util_m"] = _sum_known(p["cpu_util_m"] for p in pod_figs.values())
        totals["memory_util_bytes"] = _sum_known(p["memory_util_bytes"] for p in pod_figs.values())
        rows.append(_row("pending", "", VOID, VOID, VOID, totals, None))
        rows.extend(_pod_rows("", pending, pod_figs, None, containers))
    out = pd.DataFrame(rows, columns=list(TABLE_COLUMNS))
    for col in TABLE_COLUMNS[5:]:
        out[col] = out[col].astype("Float64")
    return CapacityTable(out, render_text(out, containers=containers), usage, when.to_pydatetime())


def _keys(df: pd.DataFrame) -> list[tuple[str, str, str]]:
    return list(zip(df["namespace"].astype(str), df["pod"].astype(str), df["container"].astype(str)))


def _percentiles(df: pd.DataFrame, col: str, q: float) -> dict[tuple[str, str, str], float | None]:
    """Per container, the ``q`` quantile of its known figures (linear interpolation, numpy's default)."""
    part = df[["namespace", "pod", "container"]].assign(v=pd.to_numeric(df[col], errors="coerce").astype("float64"))
    got = part.dropna(subset=["v"]).groupby(["namespace", "pod", "container"], observed=True, sort=False)["v"]
    return {(str(k[0]), str(k[1]), str(k[2])): float(v)  # type: ignore[index]
            for k, v in got.quantile(q).items()}


def _node_usage(samples: list[NodeSample], at: pd.Timestamp, stale_after: timedelta,
                q: float | None) -> dict[str, tuple[float | None, float | None]]:
    """Per node: CPU (millicores) and memory (bytes) from its own samples up to ``at``."""
    by_node: dict[str, list[NodeSample]] = {}
    for s in samples:
        if pd.Timestamp(s.timestamp) <= at:
            by_node.setdefault(s.node, []).append(s)
    out: dict[str, tuple[float | None, float | None]] = {}
    for node, got in by_node.items():
        got.sort(key=lambda s: s.timestamp)
        if q is None:
            last = got[-1]
            if pd.Timestamp(last.timestamp) < at - stale_after:
                continue
            out[node] = (None if last.cpu_nanocores is None else last.cpu_nanocores / 10**6,
                         None if last.memory_bytes is None else float(last.memory_bytes))
        else:
            cpu = [s.cpu_nanocores / 10**6 for s in got if s.cpu_nanocores is not None]
            mem = [float(s.memory_bytes) for s in got if s.memory_bytes is not None]
            out[node] = (float(np.quantile(cpu, q)) if cpu else None, float(np.quantile(mem, q)) if mem else None)
    return out


def _pod_figures(cs: Mapping[str, Mapping[str, float | None]]) -> dict[str, float | None]:
    figs: dict[str, float | None] = {f: _sum_set(c[f] for c in cs.values()) for f in _FIGURES}
    figs["cpu_util_m"] = _sum_known(c["cpu_util_m"] for c in cs.values())
    figs["memory_util_bytes"] = _sum_known(c["memory_util_bytes"] for c in cs.values())
    return figs


def _row(kind: str, node: str, namespace: str, pod: str, container: str,
         figs: Mapping[str, float | None], alloc: Allocatable | None) -> dict[str, Any]:
    row: dict[str, Any] = {"row": kind, "node": node, "namespace": namespace, "pod": pod, "container": container,
                           "cpu_allocatable_m": alloc.cpu_m if alloc else None,
                           "memory_allocatable_bytes": alloc.memory_bytes if alloc else None}
    for f in ("cpu_request_m", "cpu_limit_m", "cpu_util_m"):
        row[f] = figs[f]
        row[f.removesuffix("_m") + "_pct"] = _pct(figs[f], alloc.cpu_m if alloc else None)
    for f in ("memory_request_bytes", "memory_limit_bytes", "memory_util_bytes"):
        row[f] = figs[f]
        row[f.removesuffix("_bytes") + "_pct"] = _pct(figs[f], alloc.memory_bytes if alloc else None)
    return row


def _pod_rows(node: str, pods: Mapping[tuple[str, str], Mapping[str, Mapping[str, float | None]]],
              pod_figs: Mapping[tuple[str, str], Mapping[str, float | None]], alloc: Allocatable | None,
              containers: bool) -> list[dict[str, Any]]:
    rows = []
    for ns, pod in sorted(pods, key=lambda k: (k[1], k[0])):  # kube-capacity sorts pods by name
        rows.append(_row("pod", node, ns, pod, VOID, pod_figs[(ns, pod)], alloc))
        if containers:
            for name in sorted(pods[(ns, pod)]):
                rows.append(_row("container", node, ns, pod, name, pods[(ns, pod)][name], alloc))
    return rows


# ------------------------------------------------------------------ text


def _cpu_text(v: float | None, alloc_m: float | None) -> str:
    if v is None:
        return "<unknown>"
    milli = math.ceil(round(v, 6))  # Quantity.MilliValue rounds up; round() drops float noise
    if alloc_m is None:
        return f"{milli}m"
    share = int(float(milli) / alloc_m * 100) if alloc_m > 0 else 0  # resourceString's float64 arithmetic
    return f"{milli}m ({share}%)"


def _memory_text(v: float | None, alloc_bytes: float | None) -> str:
    if v is None:
        return "<unknown>"
    exact = math.ceil(round(v, 3))
    mib = -(-exact // _MI)  # formatToMegiBytes rounds up
    if alloc_bytes is None:
        return f"{mib}Mi"
    share = int(float(exact * 1000) / float(alloc_bytes * 1000) * 100) if alloc_bytes > 0 else 0
    return f"{mib}Mi ({share}%)"


def render_text(table: pd.DataFrame, *, containers: bool = False) -> str:
    """``table`` (``capacity_table``'s frame) as kube-capacity prints it: tabwriter columns
    (padding 2, cells joined by a tab and a space), a blank line before each node's block."""
    header = ["NODE", "NAMESPACE", "POD", *(["CONTAINER"] if containers else []), "CPU REQUESTS", "CPU LIMITS",
              "CPU UTIL", "MEMORY REQUESTS", "MEMORY LIMITS", "MEMORY UTIL"]
    lines: list[list[str] | None] = [header]
    for r in table.to_dict("records"):
        if r["row"] in ("node", "pending"):
            lines.append(None)
        cpu_a, mem_a = _na(r["cpu_allocatable_m"]), _na(r["memory_allocatable_bytes"])
        cells = [NO_NODE if r["node"] == "" else r["node"], r["namespace"], r["pod"]]
        if containers:
            cells.append(r["container"])
        # an unset request or limit prints as kube-capacity's zero Quantity; unknown usage does not
        for f in ("cpu_request_m", "cpu_limit_m", "cpu_util_m"):
            v = _na(r[f])
            cells.append(_cpu_text(0.0 if v is None and f != "cpu_util_m" else v, cpu_a))
        for f in ("memory_request_bytes", "memory_limit_bytes", "memory_util_bytes"):
            v = _na(r[f])
            cells.append(_memory_text(0.0 if v is None and f != "memory_util_bytes" else v, mem_a))
        lines.append(cells)
    rows = [[c if i == 0 else " " + c for i, c in enumerate(cs)] for cs in lines if cs is not None]
    # tabwriter: a column is as wide as its widest cell plus the padding; the last is not padded
    widths = [max(len(r[i]) for r in rows) for i in range(len(header) - 1)]
    out = []
    for line in lines:
        if line is None:
            out.append("")
            continue
        padded = [c if i == 0 else " " + c for i, c in enumerate(line)]
        out.append(("".join(c.ljust(w + 2) for c, w in zip(padded, widths)) + padded[-1]).rstrip())
    return "\n".join(out)


def _na(v: Any) -> Any:
    return None if v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)) else v


__all__ = ["Allocatable", "CapacityTable", "LATEST", "NO_NODE", "STALE_AFTER", "TABLE_COLUMNS", "VOID",
           "capacity_table", "check_frame", "parse_allocatable", "render_text"]
