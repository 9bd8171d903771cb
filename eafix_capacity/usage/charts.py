"""Matplotlib figures of what the services really use, for notebook 04 and ``usage report``.

The plan says what each service asks for; these figures show what it uses against that,
in the three views the right-sizing discussion needs: per service over time (the usage
distribution against the request and the limit, with the London and New York sessions
shaded, so a quiet night or weekend is seen for what it is), per node over time (requests
and usage as a share of allocatable, kube-capacity's view as a heatmap), and per service the
distribution of usage / request (how far the request is from what is used).

Each function is pure, as :mod:`eafix_capacity.charts`: a samples frame (``FRAME_COLUMNS``)
in, a new ``Figure`` out (no pyplot state, nothing shown or saved), the legend outside the
axes. The numbers behind each figure come from a pure function beside it
(:func:`service_bins`, :func:`node_grid`, :func:`usage_over_request_ratios`,
:func:`session_spans`) so a test or a notebook can read them. A frame without samples gives a
figure that says "no samples" (a notebook over an empty window still runs); a service the
frame does not have is an ``InputError`` naming the ones it has.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import matplotlib.dates as mdates
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from ..errors import InputError
from ..sim.usage_model import Session, load_usage_model
from .samples import NodeSample
from .tables import Allocatable, check_frame, parse_allocatable

_MI = 2**20
BAND = (0.25, 0.75)
"""The shaded usage band: the interquartile range (p25-p75) around the p50 line."""
MAX_BINS = 400
"""Time bins of the per-service chart when it picks the width itself."""
HEATMAP_BINS = 48
"""Time bins of the node heatmap when it picks the width itself."""
WHISKERS = (5, 95)
"""The usage / request boxes' whiskers: the 5th and 95th percentiles (no fliers drawn)."""
_SESSION_COLOURS = ("C2", "C4", "C5", "C6", "C8")


# ------------------------------------------------------------------ sessions


@dataclass(frozen=True, slots=True)
class SessionSpan:
    """One weekday's trading session, cut to the window shown (UTC)."""

    name: str
    start: pd.Timestamp
    end: pd.Timestamp


def default_sessions() -> tuple[Session, ...]:
    """The sessions of the shipped usage model (``data/usage-model.yaml``: London and New York)."""
    return load_usage_model().sessions


def session_spans(start: datetime, end: datetime, sessions: Sequence[Session]) -> list[SessionSpan]:
    """Every session open between ``start`` and ``end``, cut to them, weekdays only (the usage
    model's rule: weekends are quiet all day), ordered by start (pure)."""
    lo, hi = pd.Timestamp(start).tz_convert("UTC"), pd.Timestamp(end).tz_convert("UTC")
    spans = []
    day = lo.normalize()
    while day <= hi:
        if day.weekday() < 5:
            for s in sessions:
                a = max(lo, day + pd.Timedelta(minutes=s.open_minute))
                b = min(hi, day + pd.Timedelta(minutes=s.close_minute))
                if a < b:
                    spans.append(SessionSpan(s.name, a, b))
        day += pd.Timedelta(days=1)
    return sorted(spans, key=lambda sp: (sp.start, sp.name))


def _shade_sessions(ax: Axes, spans: Sequence[SessionSpan], names: Sequence[str]) -> None:
    colour = {n: _SESSION_COLOURS[i % len(_SESSION_COLOURS)] for i, n in enumerate(names)}
    seen: set[str] = set()
    for sp in spans:
        label = f"{sp.name} session" if sp.name not in seen else None
        seen.add(sp.name)
        patch = ax.axvspan(_num(sp.start), _num(sp.end), color=colour[sp.name], alpha=0.12, lw=0, label=label)
        patch.set_gid(f"session:{sp.name}")


# ------------------------------------------------------------------ helpers


def _num(t: pd.Timestamp) -> float:
    """A UTC timestamp as a matplotlib date number."""
    return float(mdates.date2num(t.tz_convert("UTC").tz_localize(None).to_pydatetime()))


def _utc(series: pd.Series) -> pd.Series:
    return pd.to_datetime(series, utc=True)


def _names(series: pd.Series) -> list[str]:
    """The distinct names in a column, sorted (without converting every row: 2 million of them)."""
    return sorted({str(v) for v in series.dropna().unique()})


def _floats(series: pd.Series) -> pd.Series:
    return pd.to_numeric(series, errors="coerce").astype("float64")


_NICE_MINUTES = (1, 2, 5, 10, 15, 20, 30, 60, 120, 180, 240, 360, 720, 1440)


def _bin_width(start: pd.Timestamp, end: pd.Timestamp, bins: int) -> pd.Timedelta:
    """The shortest of 1, 2, 5, 10, 15, 20, 30 min, 1, 2, 3, 4, 6, 12 h, 1 day (then whole
    days) that cuts the window into at most ``bins`` bins."""
    need = (end - start).total_seconds() / 60 / bins
    minutes = next((m for m in _NICE_MINUTES if m >= need), 1440 * math.ceil(need / 1440))
    return pd.Timedelta(minutes=minutes)


def _as_timedelta(value: str | timedelta | pd.Timedelta, field: str) -> pd.Timedelta:
    try:
        td = pd.Timedelta(value)
    except (TypeError, ValueError) as e:
        raise InputError("not a duration", field=field, value=value, valid="a duration such as 5min or 1h") from e
    if td <= pd.Timedelta(0):
        raise InputError("not a positive duration", field=field, value=value, valid="a duration such as 5min or 1h")
    return td


def _no_samples(title: str) -> Figure:
    fig = Figure(figsize=(8, 3), layout="constrained")
    ax = fig.subplots()
    ax.text(0.5, 0.5, "no samples", ha="center", va="center", fontsize=14, transform=ax.transAxes)
    ax.set_axis_off()
    fig.suptitle(f"{title}: no samples")
    return fig


def _legend_below(fig: Figure, axes: Iterable[Axes]) -> None:
    """One legend for the figure, below the axes, each label once."""
    seen: dict[str, Any] = {}
    for ax in axes:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            seen.setdefault(lab, h)
    if seen:
        fig.legend(list(seen.values()), list(seen), loc="outside lower center", ncols=min(len(seen), 5),
                   frameon=False)


def _date_axis(ax: Axes) -> None:
    locator = mdates.AutoDateLocator()
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))


# ------------------------------------------------------------------ per service over time


@dataclass(frozen=True)
class ServiceBins:
    """One container of one service, binned over time: per bin the usage percentiles over
    every sample of its pods in the bin (missing samples left out; a bin with none is NaN),
    and the highest request and limit any of its pods had (NaN when none is set)."""

    service: str
    container: str
    bin: pd.Timedelta | None
    """The bin width; None when every sampling instant is its own bin."""
    frame: pd.DataFrame
    """Indexed by bin start (UTC); columns ``{cpu,memory}_{p25,p50,p75,p95,max,request,limit}``
    (CPU in millicores, memory in bytes)."""
    pods: int


def _pick_container(df: pd.DataFrame, service: str, container: str | None) -> str:
    names = _names(df["container"])
    if container is not None:
        if container not in names:
            raise InputError("no samples of this container", obj=f"service {service}", field="container",
                             value=container, valid="one of " + ", ".join(names))
        return container
    if len(names) == 1:
        return names[0]
    if service in names:
        return service
    raise InputError("the service has several containers", obj=f"service {service}", field="container",
                     valid="choose one of " + ", ".join(names))


def service_bins(frame: pd.DataFrame, service: str, *, container: str | None = None,
                 bin: str | timedelta | None = None) -> ServiceBins:
    """The numbers behind :func:`service_usage` (pure). ``container`` defaults to the
    service's only container, else the one named like the service. ``bin`` defaults to each
    sampling instant when there are at most ``MAX_BINS`` of them, else the shortest round
    width (1, 2, 5, 10, 15, 30 min, 1 h, ...) that cuts the window into at most ``MAX_BINS``."""
    check_frame(frame, ("timestamp", "service", "pod", "container", "cpu_m", "memory_bytes", "cpu_request_m",
                        "cpu_limit_m", "memory_request_bytes", "memory_limit_bytes"))
    services = _names(frame["service"])
    if service not in services:
        raise InputError("no samples of this service", field="service", value=service,
                         valid=("one of " + ", ".join(services)) if services else "the frame is empty")
    df = frame[(frame["service"] == service).to_numpy(dtype=bool)]
    name = _pick_container(df, service, container)
    df = df[(df["container"] == name).to_numpy(dtype=bool)]
    ts = _utc(df["timestamp"])
    width: pd.Timedelta | None
    if bin is not None:
        width = _as_timedelta(bin, "bin")
    elif ts.nunique() <= MAX_BINS:
        width = None
    else:
        width = _bin_width(ts.min(), ts.max(), MAX_BINS)
    key = ts if width is None else ts.dt.floor(width)
    cols: dict[str, pd.Series] = {}
    for res, use, req, lim in (("cpu", "cpu_m", "cpu_request_m", "cpu_limit_m"),
                               ("memory", "memory_bytes", "memory_request_bytes", "memory_limit_bytes")):
        values = pd.DataFrame({"k": key, "v": _floats(df[use]), "req": _floats(df[req]),
                               "lim": _floats(df[lim])})
        used = values.dropna(subset=["v"]).groupby("k")["v"]
        for q, label in zip((BAND[0], 0.5, BAND[1], 0.95), ("p25", "p50", "p75", "p95")):
            cols[f"{res}_{label}"] = used.quantile(q)  # linear interpolation, numpy's default
        cols[f"{res}_max"] = used.max()
        grouped = values.groupby("k")
        cols[f"{res}_request"] = grouped["req"].max()
        cols[f"{res}_limit"] = grouped["lim"].max()
    index = pd.DatetimeIndex(key.drop_duplicates().sort_values(), name="bin")
    out = pd.DataFrame({k: v.reindex(index) for k, v in cols.items()}, index=index)
    return ServiceBins(service, name, width, out.astype("float64"), int(df["pod"].nunique()))


def service_usage(frame: pd.DataFrame, service: str, *, container: str | None = None,
                  sessions: Sequence[Session] | None = None, bin: str | timedelta | None = None) -> Figure:
    """One service's container over time, CPU above memory: per bin the p25-p75 band and the
    p50 line of usage over its pods' samples, the p95 and the max, against the request and
    the limit; the trading sessions shaded on weekdays (``sessions``, default the shipped
    usage model's London and New York)."""
    if frame.empty:
        return _no_samples(f"{service}: usage against request and limit")
    b = service_bins(frame, service, container=container, bin=bin)
    data = b.frame
    if data[["cpu_p50", "memory_p50"]].isna().all().all():
        return _no_samples(f"{service}/{b.container}: usage against request and limit")
    chosen = default_sessions() if sessions is None else tuple(sessions)
    x = np.array([_num(t) for t in data.index])
    width = b.bin or pd.Timedelta(0)
    spans = session_spans(data.index.min(), data.index.max() + width, chosen)
    fig = Figure(figsize=(11, 7), layout="constrained")
    ax_cpu, ax_mem = fig.subplots(2, 1, sharex=True)
    for ax, res, scale, unit in ((ax_cpu, "cpu", 1.0, "CPU (millicores)"), (ax_mem, "memory", _MI, "memory (MiB)")):
        _shade_sessions(ax, spans, [s.name for s in chosen])
        lo, mid, hi = (data[f"{res}_{q}"].to_numpy() / scale for q in ("p25", "p50", "p75"))
        band = ax.fill_between(x, lo, hi, color="C0", alpha=0.3, lw=0, label="usage p25-p75")
        band.set_gid("band")
        for col, style, label in (("p50", {"color": "C0"}, "usage p50"),
                                  ("p95", {"color": "C1"}, "usage p95"),
                                  ("max", {"color": "C3", "lw": 0.8}, "usage max")):
            (line,) = ax.plot(x, data[f"{res}_{col}"].to_numpy() / scale, label=label, **style)
            line.set_gid(col)
        for col, style in (("request", {"color": "k", "linestyle": "--"}),
                           ("limit", {"color": "C3", "linestyle": ":"})):
            values = data[f"{res}_{col}"].to_numpy() / scale
            if np.isnan(values).all():
                ax.plot([], [], label=f"{col}: none set", **style)
                continue
            (line,) = ax.plot(x, values, drawstyle="steps-post", label=col, **style)
            line.set_gid(col)
        ax.set_ylabel(unit)
        ax.set_ylim(bottom=0)
        _date_axis(ax)
    ax_mem.set_xlabel("time (UTC)")
    what = "each sampling instant" if b.bin is None else f"bins of {_duration(b.bin)}"
    fig.suptitle(f"{service} / {b.container}: usage against request and limit "
                 f"({b.pods} pod{'s' if b.pods != 1 else ''}, {what})")
    _legend_below(fig, (ax_cpu,))
    return fig


def _duration(td: pd.Timedelta) -> str:
    minutes = int(td.total_seconds() // 60)
    if minutes and td.total_seconds() % 60 == 0:
        return f"{minutes // 60} h" if minutes % 60 == 0 else f"{minutes} min"
    return f"{td.total_seconds():g} s"


# ------------------------------------------------------------------ per node over time


@dataclass(frozen=True)
class NodeGrid:
    """Per node (rows) and time bin (columns): usage and requests as a share of the node's
    allocatable (1.0 = all of it), each the mean over the bin's sampling instants; NaN where
    a bin has no sample or the node's allocatable is unknown."""

    nodes: tuple[str, ...]
    bins: pd.DatetimeIndex
    """Bin starts (UTC)."""
    bin: pd.Timedelta
    cpu_usage: np.ndarray
    cpu_requests: np.ndarray
    memory_usage: np.ndarray
    memory_requests: np.ndarray
    usage_from_pods: bool
    """True when no node samples were given and usage is the sum of the pods' (kube-capacity's fallback)."""
    pending_pods: int
    """Pods on no node in the frame (left out of every row)."""


def node_grid(frame: pd.DataFrame, node_samples: Iterable[NodeSample],
              nodes_allocatable: Mapping[str, Allocatable | Mapping[str, Any]], *,
              bin: str | timedelta | None = None) -> NodeGrid:
    """The numbers behind :func:`node_heatmap` (pure). Usage is each node's own samples
    (NodeMetrics: more than its pods use); with no node samples at all, the sum of its pods'
    (an instant with a missing pod sample is then left out). Requests at an instant are the
    sum over the containers sampled on the node (unset ones add nothing). ``bin`` defaults to
    the shortest round width that cuts the window into at most ``HEATMAP_BINS``."""
    check_frame(frame, ("timestamp", "pod", "node", "cpu_m", "memory_bytes", "cpu_request_m",
                        "memory_request_bytes"))
    alloc = parse_allocatable(nodes_allocatable)
    samples = list(node_samples)
    ts = _utc(frame["timestamp"])
    node_col = frame["node"].astype("string").fillna("")
    stamps = [pd.Timestamp(s.timestamp) for s in samples] + ([ts.min(), ts.max()] if len(ts) else [])
    nodes = tuple(sorted((set(alloc) | {str(n) for n in node_col.unique()} | {s.node for s in samples}) - {""}))
    if not stamps:
        empty = np.full((len(nodes), 0), np.nan)
        return NodeGrid(nodes, pd.DatetimeIndex([], tz="UTC"), pd.Timedelta(minutes=1), empty, empty, empty, empty,
                        not samples, 0)
    start, end = min(stamps), max(stamps)
    width = _as_timedelta(bin, "bin") if bin is not None else _bin_width(start, end, HEATMAP_BINS)
    first = start.floor(width)
    bins = pd.date_range(first, end.floor(width), freq=width)
    placed = frame.assign(timestamp=ts, node=node_col)
    placed = placed[placed["node"] != ""]
    per_instant = pd.DataFrame({
        "node": placed["node"], "timestamp": placed["timestamp"],
        "cpu_req": _floats(placed["cpu_request_m"]).fillna(0.0),
        "mem_req": _floats(placed["memory_request_bytes"]).fillna(0.0),
        "cpu_use": _floats(placed["cpu_m"]), "mem_use": _floats(placed["memory_bytes"])})
    per_instant = per_instant.assign(cpu_gap=per_instant["cpu_use"].isna(), mem_gap=per_instant["mem_use"].isna())
    summed = per_instant.groupby(["node", "timestamp"]).agg(
        cpu_req=("cpu_req", "sum"), mem_req=("mem_req", "sum"), cpu_use=("cpu_use", "sum"),
        mem_use=("mem_use", "sum"), cpu_gap=("cpu_gap", "any"), mem_gap=("mem_gap", "any")).reset_index()
    # an instant with a pod's sample missing has no known sum
    summed.loc[summed["cpu_gap"], "cpu_use"] = np.nan
    summed.loc[summed["mem_gap"], "mem_use"] = np.nan
    if samples:
        usage = pd.DataFrame({
            "node": [s.node for s in samples],
            "timestamp": pd.to_datetime([s.timestamp for s in samples], utc=True),
            "cpu_use": [np.nan if s.cpu_nanocores is None else s.cpu_nanocores / 10**6 for s in samples],
            "mem_use": [np.nan if s.memory_bytes is None else float(s.memory_bytes) for s in samples]})
    else:
        usage = summed[["node", "timestamp", "cpu_use", "mem_use"]]

    def grid(part: pd.DataFrame, col: str, per_node: Mapping[str, float]) -> np.ndarray:
        out = np.full((len(nodes), len(bins)), np.nan)
        if part.empty:
            return out
        means = part.assign(b=part["timestamp"].dt.floor(width)).groupby(["node", "b"])[col].mean()
        row = {n: i for i, n in enumerate(nodes)}
        col_of = {b: j for j, b in enumerate(bins)}
        for key, v in means.items():
            node, b = str(key[0]), pd.Timestamp(key[1])  # type: ignore[index]
            room = per_node.get(node)
            if node in row and b in col_of and room:
                out[row[node], col_of[b]] = float(v) / room
        return out

    cpu_room = {n: a.cpu_m for n, a in alloc.items()}
    mem_room = {n: float(a.memory_bytes) for n, a in alloc.items()}
    pending = int(frame.loc[node_col == "", "pod"].nunique())
    return NodeGrid(nodes, bins, width, grid(usage, "cpu_use", cpu_room), grid(summed, "cpu_req", cpu_room),
                    grid(usage, "mem_use", mem_room), grid(summed, "mem_req", mem_room), not samples, pending)


def node_heatmap(frame: pd.DataFrame, node_samples: Iterable[NodeSample],
                 nodes_allocatable: Mapping[str, Allocatable | Mapping[str, Any]], *,
                 bin: str | timedelta | None = None) -> Figure:
    """Per node over time, four heatmaps (nodes x time bins): CPU usage and CPU requests, memory
    usage and memory requests, each as a share of the node's allocatable on one colour scale
    (0 to at least 1: a cell above 1 uses more than the node can give)."""
    g = node_grid(frame, node_samples, nodes_allocatable, bin=bin)
    if not len(g.bins) or not g.nodes:
        return _no_samples("Requests and usage per node against allocatable")
    panels = (("cpu_usage", g.cpu_usage, "CPU usage"), ("cpu_requests", g.cpu_requests, "CPU requests"),
              ("memory_usage", g.memory_usage, "memory usage"),
              ("memory_requests", g.memory_requests, "memory requests"))
    finite = [a[np.isfinite(a)] for _, a, _ in panels]
    top = max([1.0, *(float(v.max()) for v in finite if v.size)])
    fig = Figure(figsize=(12, 2.2 + 0.9 * max(len(g.nodes), 2)), layout="constrained")
    axes = fig.subplots(2, 2, sharex=True, sharey=True)
    x0, x1 = _num(g.bins[0]), _num(g.bins[-1] + g.bin)
    image = None
    for ax, (gid, values, title) in zip(axes.flat, panels):
        image = ax.imshow(values, aspect="auto", interpolation="nearest", cmap="viridis", vmin=0, vmax=top,
                          extent=(x0, x1, len(g.nodes) - 0.5, -0.5))
        image.set_gid(gid)
        ax.set_title(f"{title} / allocatable")
        ax.set_yticks(range(len(g.nodes)), g.nodes)
        _date_axis(ax)
    for ax in axes[1]:
        ax.set_xlabel("time (UTC)")
    assert image is not None
    fig.colorbar(image, ax=axes, label=f"share of allocatable (mean per {_duration(g.bin)} bin; 1 = full)")
    title = f"Requests and usage per node against allocatable ({len(g.nodes)} node{'s' if len(g.nodes) != 1 else ''}"
    if g.usage_from_pods:
        title += "; usage = sum of the pods', no node samples"
    title += ")"
    if g.pending_pods:
        title += f"; {g.pending_pods} pod{'s' if g.pending_pods != 1 else ''} Pending on no node"
    fig.suptitle(title)
    return fig


# ------------------------------------------------------------------ usage / request


def usage_over_request_ratios(frame: pd.DataFrame) -> dict[str, dict[str, np.ndarray]]:
    """Per resource (``cpu``, ``memory``) and label, every sample's usage / its request (pure);
    a label is the service, or ``service/container`` when the service has several containers.
    Samples without usage or without a (non-zero) request are left out; a label with none is
    absent."""
    check_frame(frame, ("service", "container", "cpu_m", "memory_bytes", "cpu_request_m", "memory_request_bytes"))
    keys = frame[["service", "container"]]
    pairs = keys.drop_duplicates()
    per_service = pairs["service"].astype(str).value_counts()
    out: dict[str, dict[str, np.ndarray]] = {}
    for res, use, req in (("cpu", "cpu_m", "cpu_request_m"), ("memory", "memory_bytes", "memory_request_bytes")):
        u, r = _floats(frame[use]), _floats(frame[req])
        ok = (u.notna() & r.notna() & (r > 0)).to_numpy(dtype=bool)
        ratio = (u[ok] / r[ok]).groupby([keys["service"][ok], keys["container"][ok]], observed=True, sort=False)
        out[res] = {}
        for (svc, ctr), v in ratio:
            label = f"{svc}/{ctr}" if per_service.get(str(svc), 0) > 1 else str(svc)
            out[res][label] = v.to_numpy()
    return out


def usage_over_request(frame: pd.DataFrame) -> Figure:
    """Per service (per container where it has several), the distribution of usage / request
    over every sample, CPU beside memory: box p25-p75 with the median, whiskers p5-p95, a
    line at 1 (= the request). Below 1 the request is more than is used."""
    if frame.empty:
        return _no_samples("Usage / request per service")
    ratios = usage_over_request_ratios(frame)
    labels = sorted(set(ratios["cpu"]) | set(ratios["memory"]))
    if not labels:
        return _no_samples("Usage / request per service")
    fig = Figure(figsize=(11, 1.5 + 0.35 * len(labels)), layout="constrained")
    axes = fig.subplots(1, 2, sharey=True)
    for ax, res, title in ((axes[0], "cpu", "CPU"), (axes[1], "memory", "memory")):
        data = [ratios[res].get(lab, np.array([])) for lab in labels]
        at = [i for i, d in enumerate(data) if d.size]
        if at:
            parts = ax.boxplot([data[i] for i in at], positions=at, orientation="horizontal", whis=WHISKERS,
                               showfliers=False, widths=0.6, patch_artist=True,
                               boxprops={"facecolor": "C0", "alpha": 0.4},
                               medianprops={"color": "C1"})
            for i, line in zip(at, parts["medians"]):
                line.set_gid(f"median:{labels[i]}")
        ax.axvline(1.0, color="k", linestyle="--", label="usage = request")
        ax.set_yticks(range(len(labels)), labels)
        ax.set_ylim(len(labels) - 0.5, -0.5)
        ax.set_xlim(left=0)
        ax.set_xlabel(f"{title} usage / request")
        ax.set_title(title)
    no_request = sorted(set(_names(frame["service"])) - {lab.split("/")[0] for lab in labels})
    title = "Usage / request per service (box p25-p75 and median, whiskers p5-p95)"
    if no_request:
        title += f"; no request or usage: {', '.join(no_request)}"
    fig.suptitle(title)
    _legend_below(fig, axes[:1])
    return fig


__all__ = ["BAND", "HEATMAP_BINS", "MAX_BINS", "NodeGrid", "ServiceBins", "SessionSpan", "WHISKERS",
           "default_sessions", "node_grid", "node_heatmap", "service_bins", "service_usage", "session_spans",
           "usage_over_request", "usage_over_request_ratios"]
