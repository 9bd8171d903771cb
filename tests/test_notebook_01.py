"""Notebook 01: nbval over the committed notebook, papermill over a parameter matrix."""
from __future__ import annotations

import json

import pytest

from eafix_capacity.inputs import PlanParams, plan_from_params
from eafix_capacity.mesh import CONTROL_PLANE, SIDECAR
from eafix_capacity.paths import NOTEBOOKS_DIR
from notebook_helpers import run_nbval, run_papermill

NOTEBOOK = NOTEBOOKS_DIR / "01_capacity_model.ipynb"

pytestmark = pytest.mark.notebook


def test_committed_notebook_matches_its_outputs(tmp_path):
    result = run_nbval(NOTEBOOK, root=tmp_path)   # outputs in tmp_path/reports
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert " passed" in result.stdout
    # the default parameters' row of the matrix: (recommended, gke, n2-standard-8, none)
    summary = json.loads((tmp_path / "reports" / "01_capacity_model" / "summary.json").read_text())
    _assert_matches_the_library(summary, "recommended", "gke", "n2-standard-8", "none", "baseline")


# Every profile, provider and mesh once (each kernel run costs seconds): the defaults are nbval's
# run above; the plan's own tests cover every combination without a kernel.
MATRIX = [
    ("minimum", "eks", "m5.2xlarge", "istio"),
]


@pytest.mark.parametrize("profile,provider,node_type,mesh", MATRIX)
def test_papermill_summary_matches_the_library(tmp_path, profile, provider, node_type, mesh):
    params = {"profile": profile, "provider": provider, "node_type": node_type, "mesh": mesh,
              "scenario": "hpa-max"}
    summary = run_papermill(NOTEBOOK, tmp_path, params)
    _assert_matches_the_library(summary, profile, provider, node_type, mesh, "hpa-max")


def _assert_matches_the_library(summary: dict, profile: str, provider: str, node_type: str, mesh: str,
                                scenario: str) -> None:
    expected = plan_from_params(PlanParams(profile=profile, provider=provider, node_type=node_type,
                                           mesh=mesh)).to_dict()
    assert summary["inputs"] == expected["inputs"]
    assert summary["totals"] == expected["totals"]
    assert summary["scenarios"] == expected["scenarios"]
    assert summary["gates"] == expected["gates"]
    assert summary["scenario_shown"] == scenario
    assert summary["evidence"]["verdict"] == ("PASS" if expected["passed"] else "FAIL")
    assert summary["evidence"]["command"].startswith(
        f"eafix-capacity report --profile {profile} --provider {provider} --node-type {node_type}")
    assert summary["inputs"]["profile"] == profile
    assert summary["cluster"]["per_node"]["node_type"] == node_type
    # the recommended count passes every gate
    assert summary["passed"] is True
    assert summary["cluster"]["nodes"] == summary["cluster"]["recommended_nodes"]
    if mesh == "istio":
        injected_pods = sum(s["replicas"] for s in summary["services"])
        own = sum(s["cpu_request_m"] * s["replicas"] for s in summary["services"])
        control_plane = sum(p.resources.cpu_request_m * p.replicas for p in CONTROL_PLANE)
        assert summary["totals"]["cpu_request_m"] == own + injected_pods * SIDECAR.cpu_request_m + control_plane


def test_bad_parameter_fails_in_the_validation_cell(tmp_path):
    from eafix_capacity.errors import InputError
    with pytest.raises(InputError, match="unknown provider.*'gcp'"):
        run_papermill(NOTEBOOK, tmp_path, {"provider": "gcp"})
    assert not (tmp_path / "summary.json").exists()
