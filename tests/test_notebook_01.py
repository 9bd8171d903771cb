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
    """The matrix's run also asks for zones, the growth runway and exact counts: each shows."""
    params = {"profile": profile, "provider": provider, "node_type": node_type, "mesh": mesh,
              "scenario": "hpa-max", "zones": "3", "growth_pct": 5.0, "exact": "yes"}
    summary = run_papermill(NOTEBOOK, tmp_path, params)
    _assert_matches_the_library(summary, profile, provider, node_type, mesh, "hpa-max",
                                zones="3", growth_pct=5.0, exact=True)
    assert summary["inputs"]["zones"] == ["us-east-1a", "us-east-1b", "us-east-1c"]
    assert summary["cluster"]["nodes"] % 3 == 0 and summary["scenarios"]["zone-loss"]["exact"] is not None
    assert summary["growth"]["growth_pct"] == 5.0
    text = _outputs(tmp_path / NOTEBOOK.name)
    assert "zone-loss judges the loss of us-east-1a" in text and "runway: " in text
    assert "replicas left when one zone is lost" in text and "one node pool: set pools" in text


def _assert_matches_the_library(summary: dict, profile: str, provider: str, node_type: str, mesh: str,
                                scenario: str, **extra) -> None:
    expected = plan_from_params(PlanParams(profile=profile, provider=provider, node_type=node_type,
                                           mesh=mesh, **extra)).to_dict()
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


def _outputs(executed) -> str:
    import nbformat
    nb = nbformat.read(str(executed), as_version=4)
    return "\n".join(o.get("text", "") + str(o.get("data", {}).get("text/plain", ""))
                     + str(o.get("data", {}).get("text/html", ""))
                     for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))


def test_several_pools_show_when_used(tmp_path):
    """Several pools with zones (exact is automatic for the pools): the summary is the
    library's plan, and the pools' sections are there."""
    from eafix_capacity.paths import data_file
    pools = str(data_file("pools-memory.yaml"))
    pooled = run_papermill(NOTEBOOK, tmp_path / "pooled", {"pools": pools, "zones": "a,b,c"})
    expected = plan_from_params(PlanParams(pools=pools, zones="a,b,c")).to_dict()
    assert pooled["pools"] == expected["pools"] and pooled["gates"] == expected["gates"]
    assert [p["nodes"] % 3 for p in pooled["pools"]] == [0, 0]
    text = _outputs(tmp_path / "pooled" / NOTEBOOK.name)
    assert "redis, postgres, prometheus" in text and "no growth runway" in text
    assert "pool memory: the cluster&#x27;s monthly cost with each node type in it" in text or (
        "pool memory: the cluster's monthly cost with each node type in it" in text)
