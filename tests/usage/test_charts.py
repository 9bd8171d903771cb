"""Usage charts: the drawn lines are the percentiles, the shading is the sessions, the heatmap
is usage / allocatable, the boxes are usage / request, and no samples says so."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.dates as mdates  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.artist import Artist  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

from eafix_capacity.errors import InputError  # noqa: E402
from eafix_capacity.sim.usage_model import Session, load_usage_model  # noqa: E402
from eafix_capacity.usage.charts import (  # noqa: E402
    node_grid,
    node_heatmap,
    service_bins,
    service_usage,
    session_spans,
    usage_over_request,
    usage_over_request_ratios,
)
from eafix_capacity.usage.samples import NodeSample  # noqa: E402
from eafix_capacity.usage.tables import Allocatable  # noqa: E402
from usage.frames import typed_frame  # noqa: E402

MI = 2**20
GI = 2**30
FRIDAY = datetime(2026, 1, 9, tzinfo=timezone.utc)


def samples(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """A frame in the store's shape (FRAME_COLUMNS, UTC timestamps, Int64 figures, category names)."""
    full = [{"context": "sim", "namespace": "eafix-trading", "source": "test", "node": "node-a",
             "cpu_limit_m": None, "memory_limit_bytes": None, **r} for r in rows]
    return typed_frame(full)


def series(service: str, pods: int, start: datetime, step: timedelta, count: int, *, container: str | None = None,
           node: str = "node-a", seed: int = 1, req: tuple[int, int] = (250, 256 * MI),
           lim: tuple[int | None, int | None] = (500, 512 * MI)) -> list[dict[str, Any]]:
    """``pods`` pods of a service sampled ``count`` times, usage drawn from a seeded generator."""
    rng = np.random.default_rng(seed)
    rows = []
    for p in range(pods):
        for i in range(count):
            rows.append({"timestamp": start + i * step, "pod": f"{service}-{p}", "container": container or service,
                         "service": service, "node": node, "cpu_m": float(rng.uniform(20, 300)),
                         "memory_bytes": int(rng.uniform(100, 400) * MI), "cpu_request_m": req[0],
                         "memory_request_bytes": req[1], "cpu_limit_m": lim[0], "memory_limit_bytes": lim[1]})
    return rows


def by_gid(ax: Axes, gid: str) -> Any:
    found = [a for a in ax.get_children() if isinstance(a, Artist) and a.get_gid() == gid]
    assert len(found) == 1, (gid, found)
    return found[0]


def drawn(fig: Figure) -> Figure:
    FigureCanvasAgg(fig).draw()  # the figure renders (layout, legend, formatters)
    return fig


def when(x: float) -> pd.Timestamp:
    return pd.Timestamp(mdates.num2date(x)).tz_convert("UTC")


def test_service_lines_are_the_percentiles_per_bin() -> None:
    rows = series("risk-manager", 3, FRIDAY + timedelta(hours=9), timedelta(minutes=1), 30)
    rows[4]["cpu_m"] = None  # a missing sample: left out, not a zero
    rows[4]["memory_bytes"] = None
    for r in rows[40:50]:  # pod 1 is resized 09:10-09:19: the request line follows the highest
        r["cpu_request_m"] = 400
    df = samples(rows)
    fig = drawn(service_usage(df, "risk-manager", bin="5min"))
    ax_cpu, ax_mem = fig.axes[:2]
    known = df.dropna(subset=["cpu_m"])
    groups = known.groupby(known["timestamp"].dt.floor("5min"))
    for gid, expected in (("p50", groups["cpu_m"].quantile(0.5)), ("p95", groups["cpu_m"].quantile(0.95)),
                          ("max", groups["cpu_m"].max())):
        line = by_gid(ax_cpu, gid)
        np.testing.assert_allclose(line.get_ydata(), expected.to_numpy())
        assert [when(x) for x in line.get_xdata()] == list(expected.index)
    mem = known.groupby(known["timestamp"].dt.floor("5min"))["memory_bytes"]
    np.testing.assert_allclose(by_gid(ax_mem, "p95").get_ydata(),
                               mem.quantile(0.95).to_numpy(dtype=float) / MI)
    band = by_gid(ax_cpu, "band").get_paths()[0].vertices[:, 1]
    for q in (0.25, 0.75):
        for v in groups["cpu_m"].quantile(q):
            assert np.isclose(band, v).any()
    request = by_gid(ax_cpu, "request").get_ydata()
    assert list(request) == [250, 250, 400, 400, 250, 250]
    assert list(by_gid(ax_mem, "limit").get_ydata()) == [512.0] * 6
    assert "3 pods, bins of 5 min" in fig.get_suptitle()


def test_each_sampling_instant_is_a_bin_by_default_and_no_limit_is_said() -> None:
    df = samples(series("reporter", 2, FRIDAY + timedelta(hours=22), timedelta(seconds=15), 8, lim=(None, None)))
    b = service_bins(df, "reporter")
    assert b.bin is None and len(b.frame) == 8
    expected = df.groupby("timestamp")["cpu_m"].quantile(0.5)
    np.testing.assert_allclose(b.frame["cpu_p50"].to_numpy(), expected.to_numpy())
    fig = drawn(service_usage(df, "reporter"))
    labels = fig.legends[0].get_texts()
    assert "limit: none set" in [t.get_text() for t in labels]
    assert "each sampling instant" in fig.get_suptitle()
    # three days at one a minute: more than MAX_BINS instants, so the shortest round width
    # that gives at most 400 bins (4320 / 400 = 10.8 min -> 15 min)
    days = samples(series("reporter", 1, FRIDAY, timedelta(minutes=1), 3 * 1440))
    wide = service_bins(days, "reporter")
    assert wide.bin == pd.Timedelta(minutes=15) and len(wide.frame) == 3 * 96
    first = days[days["timestamp"] < pd.Timestamp(FRIDAY + timedelta(minutes=15))]
    assert wide.frame["cpu_max"].iloc[0] == first["cpu_m"].max()


def test_sessions_shaded_are_the_session_hours_in_the_window_and_skip_the_weekend() -> None:
    start = FRIDAY + timedelta(hours=6)  # Friday 06:00 .. Monday 18:00 + the last 30 min bin
    df = samples(series("risk-manager", 1, start, timedelta(minutes=30), 3 * 48 + 25))
    fig = drawn(service_usage(df, "risk-manager", bin="30min"))
    model = {s.name: s for s in load_usage_model().sessions}
    assert set(model) == {"london", "new_york"}
    end = start + timedelta(minutes=30 * (3 * 48 + 25))
    monday = FRIDAY + timedelta(days=3)
    for ax in fig.axes[:2]:
        shaded = [p for p in ax.patches if isinstance(p, Rectangle) and str(p.get_gid()).startswith("session:")]
        spans = sorted((str(p.get_gid()).split(":")[1], when(p.get_x()), when(p.get_x() + p.get_width()))
                       for p in shaded)
        expected = sorted((name, pd.Timestamp(day + timedelta(minutes=s.open_minute)),
                           pd.Timestamp(min(end, day + timedelta(minutes=s.close_minute))))
                          for day in (FRIDAY, monday) for name, s in model.items())
        assert spans == expected
        assert all(a.weekday() < 5 for _, a, _ in spans)
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "london session" in labels and "new_york session" in labels


def test_sessions_argument_and_spans_cut_to_the_window() -> None:
    tokyo = [Session("tokyo", 0, 6 * 60)]
    spans = session_spans(FRIDAY + timedelta(hours=3), FRIDAY + timedelta(days=3, hours=2), tokyo)
    assert [(s.name, s.start, s.end) for s in spans] == [
        ("tokyo", pd.Timestamp(FRIDAY + timedelta(hours=3)), pd.Timestamp(FRIDAY + timedelta(hours=6))),
        ("tokyo", pd.Timestamp(FRIDAY + timedelta(days=3)), pd.Timestamp(FRIDAY + timedelta(days=3, hours=2)))]
    df = samples(series("risk-manager", 1, FRIDAY, timedelta(hours=1), 12))
    fig = service_usage(df, "risk-manager", sessions=tokyo)
    gids = {p.get_gid() for p in fig.axes[0].patches if p.get_gid()}
    assert gids == {"session:tokyo"}
    weekend = samples(series("risk-manager", 1, FRIDAY + timedelta(days=1), timedelta(hours=1), 30))
    assert not [p for p in service_usage(weekend, "risk-manager").axes[0].patches if p.get_gid()]


def grid_frame() -> tuple[pd.DataFrame, list[NodeSample], dict[str, Any]]:
    start = FRIDAY + timedelta(hours=10)
    rows = (series("risk-manager", 2, start, timedelta(minutes=1), 30, node="node-a")
            + series("gui-gateway", 1, start, timedelta(minutes=1), 30, node="node-b", req=(500, GI), seed=2)
            + series("execution-engine", 1, start, timedelta(minutes=1), 30, node="", seed=3))
    rng = np.random.default_rng(7)
    nodes = [NodeSample(start + timedelta(minutes=i), "sim", n, int(rng.uniform(0.2, 3.5) * 10**9),
                        int(rng.uniform(1, 9) * GI), "test") for i in range(30) for n in ("node-a", "node-b")]
    alloc: dict[str, Any] = {"node-a": Allocatable(4000, 16 * GI), "node-b": {"cpu": "2", "memory": "8Gi"}}
    return samples(rows), nodes, alloc


def test_heatmap_is_usage_and_requests_over_allocatable_per_bin() -> None:
    df, nodes, alloc = grid_frame()
    fig = drawn(node_heatmap(df, nodes, alloc, bin="10min"))
    ns = pd.DataFrame({"node": [s.node for s in nodes], "t": [pd.Timestamp(s.timestamp) for s in nodes],
                       "cpu": [s.cpu_nanocores / 10**6 for s in nodes if s.cpu_nanocores is not None]})
    ns["b"] = ns["t"].dt.floor("10min")
    cpu = ns.pivot_table(index="node", columns="b", values="cpu", aggfunc="mean")
    expected_cpu = cpu.to_numpy() / np.array([[4000.0], [2000.0]])
    images = {im.get_gid(): im for ax in fig.axes for im in ax.images}
    np.testing.assert_allclose(np.asarray(images["cpu_usage"].get_array()), expected_cpu)
    placed = df[df["node"] != ""]
    per_instant = placed.groupby(["node", "timestamp"], observed=True)["memory_request_bytes"].sum().reset_index()
    per_instant["b"] = per_instant["timestamp"].dt.floor("10min")
    mem = per_instant.pivot_table(index="node", columns="b", values="memory_request_bytes", aggfunc="mean",
                                  observed=True)
    np.testing.assert_allclose(np.asarray(images["memory_requests"].get_array()),
                               mem.to_numpy(dtype=float) / np.array([[16.0 * GI], [8.0 * GI]]))
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["node-a", "node-b"]
    assert "1 pod Pending on no node" in fig.get_suptitle()


def test_heatmap_usage_falls_back_to_the_pods_without_node_samples() -> None:
    df, _, alloc = grid_frame()
    g = node_grid(df, [], alloc, bin="15min")
    assert g.usage_from_pods and g.nodes == ("node-a", "node-b") and len(g.bins) == 2
    a = df[df["node"] == "node-a"]
    per_instant = a.groupby("timestamp")["cpu_m"].sum()
    expected = per_instant.groupby(pd.DatetimeIndex(per_instant.index).floor("15min")).mean().to_numpy() / 4000
    np.testing.assert_allclose(g.cpu_usage[0], expected)


def test_usage_over_request_boxes_are_the_ratio_distribution() -> None:
    rows = (series("risk-manager", 2, FRIDAY, timedelta(minutes=1), 20)
            + series("redis", 1, FRIDAY, timedelta(minutes=1), 20, seed=5)
            + series("redis", 1, FRIDAY, timedelta(minutes=1), 20, container="exporter", seed=6, req=(50, 64 * MI))
            + series("grafana", 1, FRIDAY, timedelta(minutes=1), 5, req=(0, 0)))
    df = samples(rows)
    ratios = usage_over_request_ratios(df)
    assert set(ratios["cpu"]) == {"risk-manager", "redis/redis", "redis/exporter"}  # grafana requests nothing
    fig = drawn(usage_over_request(df))
    risk = df[df["service"] == "risk-manager"]
    median = float(np.median(risk["cpu_m"] / 250))
    assert by_gid(fig.axes[0], "median:risk-manager").get_xdata()[0] == pytest.approx(median)
    exporter = df[df["container"] == "exporter"]
    mem_median = float(np.median(exporter["memory_bytes"].to_numpy(dtype=float) / (64 * MI)))
    assert by_gid(fig.axes[1], "median:redis/exporter").get_xdata()[0] == pytest.approx(mem_median)
    assert "no request or usage: grafana" in fig.get_suptitle()


@pytest.mark.parametrize("chart", ["service", "heatmap", "ratio"])
def test_no_samples_is_an_empty_chart_that_says_so(chart: str) -> None:
    empty = samples([])
    if chart == "service":
        fig = service_usage(empty, "risk-manager")
    elif chart == "heatmap":
        fig = node_heatmap(empty, [], {"node-a": Allocatable(4000, 16 * GI)})
    else:
        fig = usage_over_request(empty)
    drawn(fig)
    assert fig.get_suptitle().endswith(": no samples")
    assert [t.get_text() for t in fig.axes[0].texts] == ["no samples"]


def test_all_gaps_is_no_samples_too() -> None:
    rows = series("risk-manager", 1, FRIDAY, timedelta(minutes=1), 5)
    for r in rows:
        r["cpu_m"] = r["memory_bytes"] = None
    assert service_usage(samples(rows), "risk-manager").get_suptitle().endswith("no samples")


def test_bad_inputs_are_one_line_errors() -> None:
    df = samples(series("redis", 1, FRIDAY, timedelta(minutes=1), 5)
                 + series("redis", 1, FRIDAY, timedelta(minutes=1), 5, container="exporter"))
    with pytest.raises(InputError, match=r"^service: no samples of this service 'nope'; one of redis$"):
        service_usage(df, "nope")
    assert service_bins(df, "redis").container == "redis"  # the container named like the service
    with pytest.raises(InputError, match=r"service redis: container: no samples of this container 'x'; one of "
                                         r"exporter, redis"):
        service_usage(df, "redis", container="x")
    with pytest.raises(InputError, match=r"^bin: not a duration 'soon'"):
        service_usage(df, "redis", bin="soon")
    with pytest.raises(InputError, match=r"^bin: not a positive duration"):
        node_grid(df, [], {}, bin="-5min")
    with pytest.raises(InputError, match=r"^cpu_m: the samples frame lacks columns"):
        usage_over_request(df.drop(columns=["cpu_m"]))
