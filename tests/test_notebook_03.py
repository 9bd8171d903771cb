"""Notebook 03 (apply and verify): nbval over the committed notebook, papermill over a matrix.

Each run starts its own sim in the kernel (the notebook's default). The matrix covers both
profiles, the mesh on and off, and a cluster that fits the plan and one too small for it, in
the fewest kernel runs (each costs 12-15 s): nbval runs (recommended, no mesh, the plan's 3
nodes); papermill runs (minimum, istio, one e2-standard-4 node where the baseline needs four)
with a 2 s rollout timeout. That the Istio rendering applies whole and verifies is tested
through the command, in tests/cluster/test_apply_cmd.py.
"""
from __future__ import annotations

import json

import pytest

from eafix_capacity.cluster import notebook as nb
from eafix_capacity.cluster.order import phases
from eafix_capacity.errors import InputError
from eafix_capacity.paths import NOTEBOOKS_DIR
from notebook_helpers import (ROOT, assert_committed_with_the_conventions, assert_failed_in_the_validation_cell, run_nbval,
                              run_papermill)

NOTEBOOK = NOTEBOOKS_DIR / "03_apply_and_verify.ipynb"
PARAMETERS = ["context", "kubeconfig", "yes", "profile", "provider", "node_type", "nodes", "mesh", "zones", "dry_run",
              "external_secrets", "timeout", "output_dir"]

pytestmark = [pytest.mark.notebook, pytest.mark.sim]


def _refs_in_phase_order(objects: list) -> list[tuple[str, str, str]]:
    return [(p.name, o.kind, o.name) for p in phases(objects) for o in p.objects]


def _assert_matches_the_library(summary: dict, params: nb.NotebookParams) -> None:
    """The records are the library's rendering in apply order, the checks cover the plan."""
    plan = nb.make_plan(params)
    objects = nb.render_objects(params)
    assert summary["objects"] == len(objects)
    assert summary["plan"] == {"profile": plan.profile.name, "provider": plan.options.provider,
                               "node_type": plan.node_type.name, "nodes": plan.nodes, "mesh": plan.options.mesh}
    dry = [(r["phase"], r["kind"], r["name"]) for r in summary["dry_run"]["records"]]
    assert dry == _refs_in_phase_order(objects)
    assert {r["outcome"] for r in summary["dry_run"]["records"]} == {"created"}
    assert all(r["dry_run"] and r["resource_version"] is None for r in summary["dry_run"]["records"])
    names = {c["name"] for c in summary["checks"]}
    assert names >= {"node-count", "node-allocatable", "replicas-ready", "resources", "pdb", "pod-pending",
                     "node-requests", "claim", "quota"}
    workloads = {c["subject"] for c in summary["checks"] if c["name"] == "replicas-desired"}
    assert workloads == {f"{s.kind}/{s.name}" for s in plan.catalog.services}
    nodes = [c for c in summary["checks"] if c["name"] == "node-instance-type"]
    assert len(nodes) == plan.nodes and {c["status"] for c in nodes} == {"PASS"}
    counts = {s: sum(c["status"] == s for c in summary["checks"]) for s in ("PASS", "WARN", "FAIL")}
    assert summary["counts"] == counts
    assert summary["target"]["is_sim"] and summary["target"]["started_sim"]
    assert summary["target"]["context"] == "eafix-sim" and len(summary["target"]["identity"]) == 36


def _no_secret_values(*texts: str) -> None:
    # the rendered Secret holds REPLACE_ME placeholders; no record holds a value, so none is shown
    for text in texts:
        assert "REPLACE_ME" not in text


def test_committed_notebook_matches_its_outputs(tmp_path):
    result = run_nbval(NOTEBOOK, root=tmp_path)   # outputs in tmp_path/reports
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert " passed" in result.stdout
    summary_path = tmp_path / "reports" / "03_apply_and_verify" / "summary.json"
    summary = json.loads(summary_path.read_text())
    _assert_matches_the_library(summary, nb.NotebookParams())
    assert summary["result"] == "PASS" and summary["counts"]["FAIL"] == summary["counts"]["WARN"] == 0
    assert summary["rollout"]["outcome"] == "ready"
    assert summary["rollout"]["phases"] == ["infrastructure", "workloads"]
    applied = summary["apply"]["records"]
    assert [(r["phase"], r["kind"], r["name"]) for r in applied] == \
        [(r["phase"], r["kind"], r["name"]) for r in summary["dry_run"]["records"]]
    assert all(r["outcome"] == "created" and r["resource_version"] and not r["dry_run"] for r in applied)
    _no_secret_values(NOTEBOOK.read_text(), summary_path.read_text())


def test_minimum_with_the_mesh_on_too_few_nodes_times_out_and_fails_with_the_schedulers_reason(tmp_path):
    values = {"profile": "minimum", "mesh": "istio", "node_type": "e2-standard-4", "nodes": 1, "timeout": 2.0}
    summary = run_papermill(NOTEBOOK, tmp_path, values)
    params = nb.NotebookParams.from_notebook(**values)
    plan = nb.make_plan(params)
    assert plan.scenarios["baseline"].nodes_needed > 1   # the plan says so too
    _assert_matches_the_library(summary, params)
    rollout = summary["rollout"]
    assert (rollout["outcome"], rollout["timeout_s"]) == ("timeout", 2.0)
    # one line per workload not ready; those with a Pending pod quote the scheduler
    assert rollout["lines"] and all(line.startswith(("Deployment eafix-trading/", "StatefulSet eafix-trading/"))
                                    for line in rollout["lines"])
    assert any("Pending: Unschedulable: 0/1 nodes are available: 1 Insufficient" in line for line in rollout["lines"])
    assert summary["apply"]["status"] == "rollout-timeout"
    # nothing after the phase that timed out was sent: the mesh's objects come last and stay unsent
    not_sent = summary["apply"]["not_sent"]
    assert not_sent == nb.not_sent(nb.render_objects(params), rollout["phase"])
    assert {"Gateway", "VirtualService", "PeerAuthentication"} <= {ref.split()[0] for ref in not_sent}
    assert "custom-resources" not in {r["phase"] for r in summary["apply"]["records"]}
    pending = [c for c in summary["checks"] if c["name"] == "pod-pending"]
    assert pending and {c["status"] for c in pending} == {"FAIL"}
    unschedulable = [c for c in pending if c["evidence"].startswith("Unschedulable")]
    assert unschedulable and all("Unschedulable: 0/1 nodes are available: 1 Insufficient" in c["evidence"]
                                 for c in unschedulable)
    assert summary["result"] == "FAIL" and summary["counts"]["FAIL"] >= len(pending)
    executed = (tmp_path / NOTEBOOK.name).read_text()
    assert f"stopped in phase {rollout['phase']}: rollout not finished within 2 s" in executed
    _no_secret_values(executed)


def test_a_bad_parameter_fails_in_the_validation_cell(tmp_path):
    with pytest.raises(InputError, match=r"timeout: not a timeout in seconds 0; a number of seconds per phase"):
        run_papermill(NOTEBOOK, tmp_path, {"timeout": 0})
    assert not (tmp_path / "summary.json").exists()
    assert_failed_in_the_validation_cell(tmp_path / NOTEBOOK.name)


def test_notebook_has_the_conventions():
    assert_committed_with_the_conventions(NOTEBOOK, PARAMETERS, nb.NotebookParams)
    text = NOTEBOOK.read_text()
    assert str(ROOT) not in text and "/tmp/" not in text
    assert NOTEBOOK.stem == nb.NOTEBOOK   # summary.json's "notebook" and the default output_dir


def test_zones_reach_the_plan_the_rendering_the_sim_and_verify():
    """Notebook 03's ``zones``: the plan counts per zone, the rendering carries the zone
    spread, the sim it starts has the plan's zones, and verify's zone checks pass once
    everything runs (the library calls the notebook makes, without a kernel)."""
    params = nb.NotebookParams.from_notebook(zones="a,b,c", timeout=120.0, output_dir="unused")
    plan = nb.make_plan(params)
    assert plan.nodes % 3 == 0 and "zone-loss" in plan.scenarios
    objects = nb.render_objects(params)
    zoned = {o["metadata"]["name"] for o in objects if o["kind"] in ("Deployment", "StatefulSet")
             and [c["topologyKey"] for c in o["spec"]["template"]["spec"]["topologySpreadConstraints"]]
             == ["kubernetes.io/hostname", "topology.kubernetes.io/zone"]}
    assert zoned and zoned == {s.name for s in plan.catalog.services
                               if s.replicas > 1 or (s.hpa is not None and s.hpa.max_replicas > 1)}
    session = nb.open_session(params, plan)
    try:
        dry = nb.dry_run(session, objects, params=params)
        applied = nb.apply_and_wait(session, objects, params=params, dry=dry)
        assert applied.status == "done", applied.note
        nb.settle(session)
        checks = nb.verify_live(session, plan, params).checks
        zones = [c for c in checks if c.name == "node-zones"]
        assert [c.status for c in zones] == ["PASS"]
        assert zones[0].actual == "us-central1-a=1, us-central1-b=1, us-central1-c=1"
        spread = {c.subject: c.status for c in checks if c.name == "zone-spread"}
        assert spread == {f"service {name}": "PASS" for name in zoned}
    finally:
        session.close()
