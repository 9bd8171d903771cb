"""Notebook 04 (utilisation and right-sizing): nbval over the committed notebook, one papermill
run over the rest of the matrix, and a bad parameter.

Each run starts its own sim in the kernel (the notebook's default), its clock moved on by the
sampler. nbval: metrics-api, simple, the shipped usage model, 103 rounds over a day. The
papermill run: vpa over 24 half-hourly rounds (06:02 to 17:32 UTC, through the London/New York
overlap) with a usage model that drives execution-engine above its memory limit in the overlap,
so the sim's kubelet OOM-kills it (sim/controllers/kubelet.py ``_episodes``). session-peak and
krr's OOM rule (exactly 1.25 x the limit) are tested in tests/usage/test_notebook_lib.py, and so
is the kubectl-top source (two rounds): it costs 0.36 s a round against the sim here (three
kubectl processes), so no notebook run samples a day with it.
"""
from __future__ import annotations

import json

import pytest

from eafix_capacity.catalog import load_catalog
from eafix_capacity.errors import InputError
from eafix_capacity.paths import NOTEBOOKS_DIR, data_file
from eafix_capacity.usage import notebook as nb
from notebook_helpers import (ROOT, assert_committed_with_the_conventions, assert_failed_in_the_validation_cell, run_nbval,
                              run_papermill)

NOTEBOOK = NOTEBOOKS_DIR / "04_utilisation.ipynb"
PARAMETERS = ["context", "kubeconfig", "namespace", "source", "prometheus_url", "interval", "duration", "strategy",
              "window", "service", "usage_model", "profile", "node_type", "output_dir"]
OOM_SERVICE = "execution-engine"

pytestmark = [pytest.mark.notebook, pytest.mark.sim]


def _assert_matches_the_library(summary: dict, params: nb.NotebookParams) -> None:
    catalog = load_catalog()
    recs = summary["recommendations"]
    assert {r["workload"] for r in recs} == {s.name for s in catalog.services}
    assert {(r["workload"], r["container"]) for r in recs} == \
        {(s.name, c.name) for s in catalog.services for c in s.containers}
    assert {r["namespace"] for r in recs} == {params.namespace}
    counts = summary["counts"]
    assert counts["rounds"] == counts["rounds_planned"] == nb.rounds_planned(params)
    assert counts["stored_samples"] == counts["samples"]   # a fresh store per sim run
    # every round samples every container of the namespace: at least one per service container
    assert counts["samples"] >= counts["rounds"] * len(recs)
    plan = nb.make_plan(params)
    assert summary["nodes"]["current_nodes"] == plan.recommended_nodes
    assert summary["nodes"]["node_type"] == params.node_type
    assert summary["target"]["is_sim"] and summary["target"]["started_sim"]
    assert summary["parameters"]["strategy"] == params.strategy == summary["strategy"]


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


def test_vpa_over_an_oom_model_shows_the_kills_and_raises_the_limit(tmp_path):
    values = {"strategy": "vpa", "usage_model": _oom_model(tmp_path), "interval": 1800.0, "duration": 43200.0}
    summary = run_papermill(NOTEBOOK, tmp_path / "out", values)
    params = nb.NotebookParams.from_notebook(**{**values, "output_dir": str(tmp_path / "out")})
    _assert_matches_the_library(summary, params)
    assert summary["window"] == "all hours"
    kills = summary["oom_kills"]
    assert set(kills) == {f"{OOM_SERVICE}/{OOM_SERVICE}"} and kills[f"{OOM_SERVICE}/{OOM_SERVICE}"] > 0
    assert summary["counts"]["oom_kills"] == sum(kills.values())
    limit = next(c.resources.memory_limit_bytes for s in load_catalog().services if s.name == OOM_SERVICE
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


def test_a_bad_parameter_fails_in_the_validation_cell(tmp_path):
    with pytest.raises(InputError, match=r"prometheus_url: source prometheus without a URL"):
        run_papermill(NOTEBOOK, tmp_path, {"source": "prometheus"})
    assert not (tmp_path / "summary.json").exists()
    assert_failed_in_the_validation_cell(tmp_path / NOTEBOOK.name)


def test_notebook_has_the_conventions():
    assert_committed_with_the_conventions(NOTEBOOK, PARAMETERS, nb.NotebookParams)
    assert NOTEBOOK.stem == nb.NOTEBOOK
