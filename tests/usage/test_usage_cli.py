"""``eafix-capacity usage`` end to end: sample a sim with the real kubectl into a run directory,
report it, recommend from a store of a trading day's samples, write the recommended catalogue,
export; and the bad inputs, each a one-line error before anything is read."""
from __future__ import annotations

import csv
import socket
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator

import pytest

from eafix_capacity.catalog import load_catalog
from eafix_capacity.cli import main
from eafix_capacity.sim.clock import TRADING_DAY_START
from eafix_capacity.sim.cluster import SimCluster
from eafix_capacity.usage.samples import EXPORT_COLUMNS, Sample
from eafix_capacity.usage.store import UsageStore

NS = "eafix-trading"


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def _one_error(err: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith("eafix-capacity: error: ")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.fixture(scope="module")
def day(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run directory with 200 rounds a minute apart for two risk-manager pods: CPU 100..299m
    (p95 known), memory up to 300 MiB, requests 200m / 256 MiB, limits 500m / 512 MiB."""
    directory = tmp_path_factory.mktemp("usage-day")
    start = datetime(2026, 1, 14, 8, 0, tzinfo=timezone.utc)
    with UsageStore.open(directory, create=True) as store:
        for i in range(200):
            samples = [Sample(timestamp=start + timedelta(minutes=i), context="eafix-sim", namespace=NS,
                              pod=f"risk-manager-{p}", container="risk-manager", service="risk-manager",
                              node=f"node-{p}", cpu_nanocores=(100 + i) * 10**6,
                              memory_bytes=(200 + i // 2) * 2**20, cpu_request_m=200, cpu_limit_m=500,
                              memory_request_bytes=256 * 2**20, memory_limit_bytes=512 * 2**20, source="kubectl-top")
                       for p in range(2)]
            store.append_round(samples)
    return directory


def test_recommend_prints_krr_figures_and_the_node_count(day, capsys):
    code, out, err = _run(capsys, "usage", "recommend", str(day), "--format", "json")
    assert code == 0, err
    import json

    [rec] = json.loads(out)["recommendations"]
    # p95 of 100..299 with linear interpolation: 100 + 0.95 * 199 = 289.05 -> 290m; memory 299 MiB x 1.15 -> 344 MiB
    assert (rec["workload"], rec["container"], rec["cpu_request_m"], rec["cpu_limit_m"]) == (
        "risk-manager", "risk-manager", 290, None)
    assert rec["memory_request_bytes"] == rec["memory_limit_bytes"] == 344 * 2**20
    assert rec["samples"] == 400
    assert "recommendations from run directory" in err and "simple, all hours" in err
    assert "nodes" in err.splitlines()[-1]


def test_write_catalog_is_a_services_file_whose_source_says_recommended(day, capsys, tmp_path):
    out_file = tmp_path / "services.yaml"
    code, _, err = _run(capsys, "usage", "recommend", str(day), "--write-catalog", str(out_file))
    assert code == 0, err
    catalog = load_catalog(out_file)
    risk = next(s for s in catalog.services if s.name == "risk-manager")
    assert risk.containers[0].resources.cpu_request_m == 290
    assert risk.sources["resources"] == "recommended: simple, all hours, 400 samples"
    assert f"wrote {out_file}" in err and "risk-manager" in err   # the diff against the current catalogue


def test_report_prints_the_table_and_writes_the_charts(day, capsys, tmp_path):
    code, out, err = _run(capsys, "usage", "report", str(day), "--charts", str(tmp_path / "charts"))
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["NODE", "NAMESPACE", "POD"]
    summary = [line.split() for line in lines if line.startswith("risk-manager")]
    # 400 samples; CPU p95 of 100..299 over both pods (each has every figure) 289.05; max 299; memory max 299 MiB
    assert summary == [["risk-manager", "risk-manager", "400", "289.0", "299.0", "200", "299.0", "256.0", "512.0"]]
    pngs = sorted(p.name for p in (tmp_path / "charts").iterdir())
    assert pngs == ["service-risk-manager.png", "usage-over-request.png"]
    assert all((tmp_path / "charts" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for name in pngs)


def test_session_peak_reads_the_sessions_and_export_writes_the_columns(day, capsys, tmp_path):
    code, out, err = _run(capsys, "usage", "recommend", str(day), "--strategy", "session-peak", "--format", "csv")
    assert code == 0, err
    assert "session-peak, london,new_york" in err
    exported = tmp_path / "samples.csv"
    code, out, err = _run(capsys, "usage", "export", str(day), "--out", str(exported))
    assert code == 0, err
    rows = list(csv.reader(exported.open()))
    assert tuple(rows[0]) == EXPORT_COLUMNS and len(rows) == 401
    assert rows[1][0] == "2026-01-14T08:00:00Z" and rows[1][6] == "100"


@pytest.mark.parametrize(("args", "needle"), [
    (["recommend", "--strategy", "krr"], "unknown strategy 'krr'; one of: simple, session-peak, vpa"),
    (["recommend", "/nonexistent/run"], "no such run directory '/nonexistent/run'"),
    (["recommend"], "give a run directory or --prometheus URL"),
    (["recommend", "--window", "25:00-26:00"], "--window: "),
    (["sample", "--interval", "15", "--samples", "1"], "--interval: invalid duration '15'"),
    (["sample", "--interval", "1s"], "say how long to sample"),
])
def test_bad_input_is_one_line_before_anything_is_read(capsys, args, needle):
    code, out, err = _run(capsys, "usage", *args)
    assert code == 2 and out == ""
    assert needle in _one_error(err)


def test_a_prometheus_that_is_down_is_named(capsys):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code, out, err = _run(capsys, "usage", "recommend", "--prometheus", f"http://127.0.0.1:{port}")
    assert code == 2 and out == ""
    assert f"http://127.0.0.1:{port}" in _one_error(err)


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimCluster]:
    with SimCluster(kubeconfig=tmp_path_factory.mktemp("usage-cli") / "kubeconfig", nodes=1,
                    clock_start=TRADING_DAY_START) as cluster:
        assert cluster.clock is not None
        cluster.clock.advance(180)   # past metrics-server's first window for the system pods
        cluster.settle()
        yield cluster


@pytest.mark.sim
@pytest.mark.kubectl
def test_sample_writes_every_round_and_report_reads_them(sim, capsys, tmp_path):
    out_dir = tmp_path / "run"
    code, out, err = _run(capsys, "usage", "sample", "--context", "eafix-sim", "--kubeconfig", str(sim.kubeconfig),
                          "-n", "kube-system", "--interval", "1s", "--samples", "2", "--out", str(out_dir), "--quiet")
    assert code == 0, err
    assert err.startswith('usage sample: context "eafix-sim" (the sim)')
    assert out.startswith("2 rounds, ")
    with UsageStore.open(out_dir, create=False) as store:
        frame: Any = store.frame()
    assert set(frame["namespace"]) == {"kube-system"} and frame["cpu_m"].notna().any()
    assert frame["timestamp"].nunique() == 2
    code, out, err = _run(capsys, "usage", "report", str(out_dir))
    assert code == 0, err
    assert out.splitlines()[0].split()[:3] == ["NODE", "NAMESPACE", "POD"]
    assert f"{len(frame)} samples from" in out
