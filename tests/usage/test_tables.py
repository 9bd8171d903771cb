"""kube-capacity's ``--util --pods`` table from samples: numbers, percentages, totals, Pending pods."""
from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np
import pandas as pd
import pytest

from eafix_capacity.errors import InputError
from eafix_capacity.usage.samples import NodeSample
from eafix_capacity.usage.tables import Allocatable, capacity_table
from usage.frames import typed_frame

MI = 2**20
GI = 2**30
T0 = datetime(2026, 1, 6, 9, 0, tzinfo=timezone.utc)  # a Tuesday


def samples(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """A frame in the store's shape (FRAME_COLUMNS, UTC timestamps, Int64 figures, category names)."""
    full = [{"context": "sim", "namespace": "eafix-trading", "service": r.get("pod", "").rsplit("-", 1)[0],
             "source": "test", "cpu_limit_m": None, "memory_limit_bytes": None, **r} for r in rows]
    return typed_frame(full)


def container(pod: str, name: str, node: str, *, minutes: range = range(3), cpu: Any = 100.0,
              mem: Any = 200 * MI, req: tuple[Any, Any] = (250, 256 * MI),
              lim: tuple[Any, Any] = (500, 512 * MI), namespace: str = "eafix-trading") -> list[dict[str, Any]]:
    """One container's samples, one a minute; ``cpu``/``mem`` a figure or a list per minute."""
    out = []
    for i, m in enumerate(minutes):
        out.append({"timestamp": T0 + timedelta(minutes=m), "namespace": namespace, "pod": pod, "container": name,
                    "node": node, "cpu_m": cpu[i] if isinstance(cpu, list) else cpu,
                    "memory_bytes": mem[i] if isinstance(mem, list) else mem,
                    "cpu_request_m": req[0], "memory_request_bytes": req[1],
                    "cpu_limit_m": lim[0], "memory_limit_bytes": lim[1]})
    return out


ALLOC: dict[str, Allocatable | Mapping[str, Any]] = {"node-a": Allocatable(4000, 16 * GI),
                                                     "node-b": {"cpu": "2", "memory": "8Gi"}}


def two_nodes() -> pd.DataFrame:
    return samples(
        container("risk-1", "risk", "node-a", cpu=[90.0, 95.0, 101.5], mem=[190 * MI, 195 * MI, 200 * MI])
        + container("risk-1", "istio-proxy", "node-a", cpu=10.0, mem=50 * MI, req=(100, 128 * MI), lim=(None, GI))
        + container("gui-1", "gui", "node-b", cpu=300.0, mem=GI, req=(500, GI), lim=(1000, 2 * GI))
        + container("exec-1", "exec", "", cpu=None, mem=None, req=(400, 512 * MI), lim=(800, 512 * MI)))


def node_samples(minute: int = 2) -> list[NodeSample]:
    at = T0 + timedelta(minutes=minute)
    return [NodeSample(at, "sim", "node-a", 900_000_000, 3 * GI, "test"),
            NodeSample(at, "sim", "node-b", 700_000_000, 2 * GI, "test")]


def row(table: pd.DataFrame, kind: str, node: str, pod: str = "*", container: str = "*") -> dict[str, Any]:
    got = table[(table["row"] == kind) & (table["node"] == node) & (table["pod"] == pod)
                & (table["container"] == container)]
    assert len(got) == 1, got
    return dict(got.iloc[0])


def test_pod_and_node_figures_are_sums_with_percentages_of_the_node_allocatable() -> None:
    t = capacity_table(two_nodes(), node_samples(), ALLOC)
    f = t.frame
    pod = row(f, "pod", "node-a", "risk-1")
    assert (pod["cpu_request_m"], pod["memory_request_bytes"]) == (350, 384 * MI)
    assert pod["cpu_limit_m"] == 500  # the sidecar sets no CPU limit: it adds nothing (PodRequestsAndLimits)
    assert pod["memory_limit_bytes"] == 512 * MI + GI
    assert pod["cpu_util_m"] == pytest.approx(111.5)  # the latest sample of each container, summed
    assert pod["memory_util_bytes"] == 250 * MI
    assert pod["cpu_request_pct"] == pytest.approx(100 * 350 / 4000)
    assert pod["memory_limit_pct"] == pytest.approx(100 * (512 * MI + GI) / (16 * GI))
    node_a = row(f, "node", "node-a")
    assert node_a["cpu_request_m"] == 350 and node_a["cpu_allocatable_m"] == 4000
    # the node's usage is its own NodeMetrics figure, more than its pods use
    assert node_a["cpu_util_m"] == 900 and node_a["cpu_util_pct"] == pytest.approx(22.5)
    assert node_a["memory_util_pct"] == pytest.approx(100 * 3 / 16)
    node_b = row(f, "node", "node-b")
    assert node_b["cpu_allocatable_m"] == 2000 and node_b["memory_request_pct"] == pytest.approx(100 / 8)
    cluster = row(f, "cluster", "*")
    assert cluster["cpu_request_m"] == 850  # the Pending pod's 400m counts on no node
    assert cluster["cpu_allocatable_m"] == 6000 and cluster["memory_allocatable_bytes"] == 24 * GI
    assert cluster["cpu_util_m"] == 1600 and cluster["cpu_util_pct"] == pytest.approx(100 * 1600 / 6000)
    assert list(f["row"]) == ["cluster", "node", "pod", "node", "pod", "pending", "pod"]


def test_text_is_kube_capacity_util_pods() -> None:
    lines = capacity_table(two_nodes(), node_samples(), ALLOC).text.splitlines()
    assert lines[0].split() == ["NODE", "NAMESPACE", "POD", "CPU", "REQUESTS", "CPU", "LIMITS", "CPU", "UTIL",
                                "MEMORY", "REQUESTS", "MEMORY", "LIMITS", "MEMORY", "UTIL"]
    # tabwriter columns: every column starts where the header's does
    starts = [lines[0].index(h) for h in ("NAMESPACE", "POD", "CPU REQUESTS", "CPU LIMITS", "CPU UTIL",
                                         "MEMORY REQUESTS", "MEMORY LIMITS", "MEMORY UTIL")]
    cells = {line.split()[0] + " " + line.split()[2]: line for line in lines[1:] if line}
    pod = cells["node-a risk-1"]
    assert [pod[s - 1] for s in starts] == [" "] * len(starts) and all(pod[s] != " " for s in starts)
    # 350m of 4000m is 8.75% -> 8 (kube-capacity truncates); 101.5m + 10m -> 112m (MilliValue rounds up)
    assert pod.split()[3:] == ["350m", "(8%)", "500m", "(12%)", "112m", "(2%)", "384Mi", "(2%)", "1536Mi",
                               "(9%)", "250Mi", "(1%)"]
    assert lines[1].split()[:6] == ["*", "*", "*", "850m", "(14%)", "1500m"]
    assert lines[2] == ""  # a blank line before each node's block
    assert cells["node-a *"].split()[3:9] == ["350m", "(8%)", "500m", "(12%)", "900m", "(22%)"]
    pending = cells["<none> exec-1"]
    assert pending.split()[3:] == ["400m", "800m", "<unknown>", "512Mi", "512Mi", "<unknown>"]


def test_pending_pod_is_on_no_node_without_percentages() -> None:
    f = capacity_table(two_nodes(), node_samples(), ALLOC).frame
    pod = row(f, "pod", "", "exec-1")
    assert pod["cpu_request_m"] == 400 and pd.isna(pod["cpu_request_pct"]) and pd.isna(pod["cpu_allocatable_m"])
    assert pd.isna(pod["cpu_util_m"])  # its samples are gaps, not zeros
    pending = row(f, "pending", "")
    assert pending["memory_request_bytes"] == 512 * MI
    assert set(f.loc[f["node"].isin(["node-a", "node-b"]), "pod"]) == {"*", "risk-1", "gui-1"}


def test_containers_rows_and_an_unset_limit_prints_zero() -> None:
    t = capacity_table(two_nodes(), node_samples(), ALLOC, containers=True)
    assert "CONTAINER" in t.text.splitlines()[0]
    side = row(t.frame, "container", "node-a", "risk-1", "istio-proxy")
    assert side["cpu_request_m"] == 100 and pd.isna(side["cpu_limit_m"])
    line = next(x for x in t.text.splitlines() if "istio-proxy" in x)
    assert line.split()[4:8] == ["100m", "(2%)", "0m", "(0%)"]
    assert list(t.frame.loc[t.frame["pod"] == "risk-1", "container"]) == ["*", "istio-proxy", "risk"]


def test_node_usage_is_the_sum_of_its_pods_without_node_samples() -> None:
    f = capacity_table(two_nodes(), [], ALLOC).frame
    assert row(f, "node", "node-a")["cpu_util_m"] == pytest.approx(111.5)
    assert row(f, "node", "node-b")["memory_util_bytes"] == GI


def test_a_missing_latest_sample_is_unknown_not_zero() -> None:
    df = samples(container("risk-1", "risk", "node-a", cpu=[90.0, 95.0, None], mem=[MI, MI, None])
                 + container("risk-1", "side", "node-a", cpu=5.0, mem=MI))
    t = capacity_table(df, [], {"node-a": Allocatable(4000, 16 * GI)})
    assert pd.isna(row(t.frame, "pod", "node-a", "risk-1")["cpu_util_m"])
    assert pd.isna(row(t.frame, "node", "node-a")["cpu_util_m"])
    assert "<unknown>" in next(x for x in t.text.splitlines() if "risk-1" in x)
    assert not (t.frame["row"] == "cluster").any()  # one node: no cluster line, as kube-capacity


def test_percentile_usage_and_the_instant() -> None:
    cpu = [float(v) for v in range(10, 110, 10)]
    df = samples(container("risk-1", "risk", "node-a", minutes=range(10), cpu=cpu, mem=MI)
                 + container("old-1", "old", "node-a", minutes=range(3), cpu=1.0, mem=MI))
    t = capacity_table(df, [], {"node-a": Allocatable(4000, 16 * GI)}, usage="p95")
    assert row(t.frame, "pod", "node-a", "risk-1")["cpu_util_m"] == pytest.approx(float(np.quantile(cpu, 0.95)))
    # old-1's last sample is 7 minutes before the last one: gone (deleted or replaced)
    assert "old-1" not in set(t.frame["pod"])
    early = capacity_table(df, [], {"node-a": Allocatable(4000, 16 * GI)}, at=T0 + timedelta(minutes=4))
    assert row(early.frame, "pod", "node-a", "risk-1")["cpu_util_m"] == 50.0
    assert "old-1" in set(early.frame["pod"])
    assert early.at == T0 + timedelta(minutes=4)
    top = capacity_table(df, [], {"node-a": Allocatable(4000, 16 * GI)}, usage="max")
    assert row(top.frame, "pod", "node-a", "risk-1")["cpu_util_m"] == 100.0


def test_a_node_without_pods_is_listed_with_zero_requests() -> None:
    f = capacity_table(two_nodes(), node_samples(), {**ALLOC, "node-c": Allocatable(1000, GI)}).frame
    idle = row(f, "node", "node-c")
    assert idle["cpu_request_m"] == 0 and idle["cpu_request_pct"] == 0 and pd.isna(idle["cpu_util_m"])


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"usage": "p200"}, "usage: unknown usage figure 'p200'; latest, max or a percentile pNN such as p95"),
    ({"usage": "mean"}, "unknown usage figure 'mean'"),
    ({"nodes_allocatable": {"node-a": {"cpu": "lots"}}}, "node node-a: allocatable is not a quantity"),
    ({"at": T0 - timedelta(hours=1)}, "no samples at or before the table's instant"),
    ({"at": datetime(2026, 1, 6, 9, 1)}, "at: the table's instant has no timezone '2026-01-06 09:01:00'"),
])
def test_bad_inputs_are_one_line_errors(kwargs: dict[str, Any], message: str) -> None:
    args: dict[str, Any] = {"nodes_allocatable": ALLOC, **kwargs}
    with pytest.raises(InputError) as e:
        capacity_table(two_nodes(), node_samples(), **args)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_an_empty_frame_or_missing_columns_is_a_one_line_error() -> None:
    with pytest.raises(InputError, match="^no samples to tabulate; sample a cluster first"):
        capacity_table(samples([]), [], ALLOC)
    with pytest.raises(InputError, match="^cpu_request_m: the samples frame lacks columns; "):
        capacity_table(two_nodes().drop(columns=["cpu_request_m"]), [], ALLOC)


def test_a_node_of_unknown_allocatable_and_a_frame_with_a_repeated_index() -> None:
    parts = [samples(container("risk-1", "risk", "node-a", cpu=[1.0, 2.0, 3.0])),
             samples(container("gui-1", "gui", "node-x", cpu=7.0))]
    df = pd.concat(parts)  # the index repeats 0, 1, 2
    t = capacity_table(df, [], {"node-a": Allocatable(4000, 16 * GI)})
    assert row(t.frame, "pod", "node-a", "risk-1")["cpu_util_m"] == 3.0
    other = row(t.frame, "node", "node-x")
    assert other["cpu_request_m"] == 250 and pd.isna(other["cpu_request_pct"])
    assert pd.isna(row(t.frame, "cluster", "*")["cpu_allocatable_m"])
    line = next(x for x in t.text.splitlines() if "gui-1" in x)
    assert line.split()[3:6] == ["250m", "500m", "7m"]
