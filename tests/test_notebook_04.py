"""Notebook 04 (utilisation and right-sizing): nbval over the committed notebook, a papermill
matrix over the rest of its sources and strategies, and a bad parameter.

- nbval: metrics-api, simple, the shipped usage model, 103 rounds over a day on the sim the
  kernel starts (its clock moved on by the sampler).
- papermill, kubectl-top and vpa: 12 hourly rounds of the real kubectl top (06:02 to 17:02 UTC,
  through the London/New York overlap) with a usage model that drives execution-engine above its
  memory limit in the overlap, so the sim's kubelet OOM-kills it (sim/controllers/kubelet.py
  ``_episodes``): the kills show and the limit is raised.
- papermill, prometheus and session-peak: a REAL Prometheus holding the deployed plan's history
  (``sim history``, backfilled with promtool) from 04:00 to 10:00 UTC on a weekday; the London
  session opens at 08:00, so session-peak reads a third of what simple reads.
krr's OOM rule (exactly 1.25 x the limit) is tested in tests/usage/test_notebook_lib.py.
"""
from __future__ import annotations

import json
import subprocess
from datetime import datetime, timedelta, timezone

import pytest

from eafix_capacity.catalog import load_catalog
from eafix_capacity.errors import InputError
from eafix_capacity.paths import NOTEBOOKS_DIR, data_file
from eafix_capacity.usage import notebook as nb
from eafix_capacity.usage.store import UsageStore
from notebook_helpers import (ROOT, assert_committed_with_the_conventions, assert_failed_in_the_validation_cell, run_nbval,
                              run_papermill)
from usage.promhelpers import RealPrometheus, binaries

NOTEBOOK = NOTEBOOKS_DIR / "04_utilisation.ipynb"
PARAMETERS = ["context", "kubeconfig", "namespace", "source", "prometheus_url", "prometheus_end", "interval", "duration", "strategy",
              "window", "service", "usage_model", "profile", "node_type", "output_dir"]
OOM_SERVICE = "execution-engine"

pytestmark = [pytest.mark.notebook, pytest.mark.sim]


def _assert_matches_the_library(summary: dict, params: nb.NotebookParams, *, sampled_the_sim: bool = True) -> None:
    catalog = load_catalog()
    recs = summary["recommendations"]
    assert {r["workload"] for r in recs} == {s.name for s in catalog.services}
    assert {(r["workload"], r["container"]) for r in recs} == \
        {(s.name, c.name) for s in catalog.services for c in s.containers}
    assert {r["namespace"] for r in recs} == {params.namespace}
    counts = summary["counts"]
    assert summary["parameters"]["strategy"] == params.strategy == summary["strategy"]
    if not sampled_the_sim:
        return
    assert counts["rounds"] == counts["rounds_planned"] == nb.rounds_planned(params)
    assert counts["stored_samples"] == counts["samples"]   # a fresh store per sim run
    # every round samples every container of the namespace: at least one per service container
    assert counts["samples"] >= counts["rounds"] * len(recs)
    plan = nb.make_plan(params)
    assert summary["nodes"]["current_nodes"] == plan.recommended_nodes
    assert summary["nodes"]["node_type"] == params.node_type
    assert summary["target"]["is_sim"] and summary["target"]["started_sim"]


def test_committed_notebook_matches_its_outputs(tmp_path):
    result = run_nbval(NOTEBOOK, root=tmp_path)   # outputs in tmp_path/reports
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert " passed" in result.stdout
    summary = json.loads((tmp_path / "reports" / nb.NOTEBOOK / "summary.json").read_text())
    params = nb.NotebookParams()
    _assert_matches_the_library(summary, params)
    assert summary["counts"]["oom_kills"] == 0 and summary["oom_kills"] == {}
    assert summary["window"] == "all hours"
    # 103 rounds over a day: every workload has the 100 samples krr needs
    assert all(r["samples"] >= 100 for r in summary["recommendations"])
    hpa = {s.name for s in load_catalog().services if s.hpa is not None}
    for r in summary["recommendations"]:
        if r["workload"] in hpa:
            assert r["cpu_request_m"] is None and "HPA detected on cpu" in r["info"]
        else:
            assert r["cpu_request_m"] is not None and r["memory_limit_bytes"] == r["memory_request_bytes"]
    text = NOTEBOOK.read_text()
    assert str(ROOT) not in text and "/tmp/" not in text


def _oom_model(tmp_path) -> str:
    text = data_file("usage-model.yaml").read_text()
    line = next(ln for ln in text.splitlines() if ln.startswith(f"  {OOM_SERVICE}:"))
    # 1.9 x the request x the session curve: under the 2 x request limit outside the overlap,
    # above it in the London/New York overlap
    model = text.replace(line, f"  {OOM_SERVICE}: {{cpu: 0.35, memory: 1.90, cpu_session: 1.0, memory_session: 0.5}}")
    path = tmp_path / "oom-model.yaml"
    path.write_text(model)
    return str(path)


def test_kubectl_top_and_vpa_over_an_oom_model_show_the_kills_and_raise_the_limit(tmp_path):
    values = {"source": "kubectl-top", "strategy": "vpa", "usage_model": _oom_model(tmp_path), "interval": 3600.0,
              "duration": 43200.0}
    summary = run_papermill(NOTEBOOK, tmp_path / "out", values)
    params = nb.NotebookParams.from_notebook(**{**values, "output_dir": str(tmp_path / "out")})
    _assert_matches_the_library(summary, params)
    assert summary["window"] == "all hours"
    # the real kubectl top's figures joined with each container's request and limit from the pod list
    with UsageStore.open(tmp_path / "out" / "samples", create=False) as store:
        frame = store.frame()
    catalog = load_catalog()
    for s in catalog.services:
        for c in s.containers:
            rows = frame[(frame["service"] == s.name) & (frame["container"] == c.name)]
            assert len(rows) >= summary["counts"]["rounds"], (s.name, c.name)
            assert set(rows["cpu_request_m"]) == {c.resources.cpu_request_m}, (s.name, c.name)
            assert set(rows["memory_limit_bytes"]) == {c.resources.memory_limit_bytes}, (s.name, c.name)
    kills = summary["oom_kills"]
    # a pod the HPA added has no figures until metrics-server's next scrape: a missing sample (never
    # a zero) in its first round; every other sample has both figures
    gaps = frame[frame["cpu_m"].isna() | frame["memory_bytes"].isna()]
    first_round = frame.groupby("pod")["timestamp"].transform("min") == frame["timestamp"]
    assert first_round[gaps.index].all() and len(gaps) == summary["counts"]["missing"]
    assert (frame.drop(gaps.index)["memory_bytes"] > 0).all()
    assert set(kills) == {f"{OOM_SERVICE}/{OOM_SERVICE}"} and kills[f"{OOM_SERVICE}/{OOM_SERVICE}"] > 0
    assert summary["counts"]["oom_kills"] == sum(kills.values())
    limit = next(c.resources.memory_limit_bytes for s in catalog.services if s.name == OOM_SERVICE
                 for c in s.containers)
    rec = next(r for r in summary["recommendations"] if r["workload"] == OOM_SERVICE)
    # the VPA's OOM rule (max(request, peak) x 1.2, at least +100Mi, in the peak) raises the
    # limit past krr's 1.25 x the limit it was killed at too
    assert rec["memory_limit_bytes"] >= 1.25 * limit
    assert rec["severity"]["memory"] == "CRITICAL" and "OOM kill: memory raised to" in rec["info"]
    others = [r for r in summary["recommendations"] if r["workload"] != OOM_SERVICE]
    assert not any(r["info"] and "OOM" in r["info"] for r in others)
    executed = (tmp_path / "out" / NOTEBOOK.name).read_text()
    assert f"OOM kills: {OOM_SERVICE}/{OOM_SERVICE} x{kills[f'{OOM_SERVICE}/{OOM_SERVICE}']}" in executed


def _weekday_at_ten_utc(now: datetime) -> datetime:
    """The latest weekday 10:00 UTC that promtool may backfill up to (3 h before now, and a minute)."""
    latest = now - timedelta(hours=3, minutes=2)
    end = latest.replace(hour=10, minute=0, second=0, microsecond=0)
    if end > latest:
        end -= timedelta(days=1)
    while end.weekday() >= 5:
        end -= timedelta(days=1)
    return end


def test_prometheus_and_session_peak_read_a_real_prometheus_of_the_plans_history(tmp_path):
    from eafix_capacity.sim.history import pods_of_sim, write_sim_history

    prom_bin, promtool = binaries()
    params = nb.NotebookParams()
    session = nb.open_target(params, nb.make_plan(params))
    assert session is not None and session.sim is not None
    try:
        nb.deploy(session, params)
        pods = pods_of_sim(session.sim, namespace=params.namespace)
    finally:
        session.close()
    end = _weekday_at_ten_utc(datetime.now(timezone.utc))
    history = tmp_path / "history.om"
    start, written_end, _ = write_sim_history(pods, out=history, days=0.25, step=timedelta(seconds=30),
                                              now=end + timedelta(hours=3, minutes=1))
    assert (start, written_end) == (end - timedelta(hours=6), end)
    subprocess.run([promtool, "tsdb", "create-blocks-from", "openmetrics", str(history), str(tmp_path / "tsdb")],
                   check=True, capture_output=True, timeout=120)
    prom = RealPrometheus(prom_bin, tmp_path, tsdb=tmp_path / "tsdb", config="global: {scrape_interval: 1m}\n")
    try:
        values = {"source": "prometheus", "prometheus_url": prom.url, "prometheus_end": end.isoformat(),
                  "duration": 21600.0, "strategy": "session-peak"}
        summary = run_papermill(NOTEBOOK, tmp_path / "out", values)
    finally:
        prom.stop()
    params = nb.NotebookParams.from_notebook(**{**values, "output_dir": str(tmp_path / "out")})
    _assert_matches_the_library(summary, params, sampled_the_sim=False)
    assert summary["target"] == {"prometheus": prom.url, "is_sim": False, "started_sim": False}
    assert summary["counts"]["rounds"] is None and summary["counts"]["stored_samples"] == summary["counts"]["samples"]
    assert summary["window"] == "london,new_york"
    # every pod of the plan, every 75 s step of the six hours (Prometheus' default lookback fills
    # each step from the 30 s history)
    steps = 6 * 48 + 1
    assert summary["counts"]["samples"] == len(pods) * steps
    for r in summary["recommendations"]:
        replicas = sum(1 for p in pods if p["metadata"]["labels"]["app.kubernetes.io/name"] == r["workload"])
        # only 08:00 to 10:00 (London's open onwards) of the 04:00-10:00 history: 97 of the 289 steps
        assert r["samples"] == replicas * 97, r


def test_a_bad_parameter_fails_in_the_validation_cell(tmp_path):
    with pytest.raises(InputError, match=r"prometheus_url: source prometheus without a URL"):
        run_papermill(NOTEBOOK, tmp_path, {"source": "prometheus"})
    assert not (tmp_path / "summary.json").exists()
    assert_failed_in_the_validation_cell(tmp_path / NOTEBOOK.name)


def test_notebook_has_the_conventions():
    assert_committed_with_the_conventions(NOTEBOOK, PARAMETERS, nb.NotebookParams)
    assert NOTEBOOK.stem == nb.NOTEBOOK
