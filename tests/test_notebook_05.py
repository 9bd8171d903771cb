"""Notebook 05 (the capacity sign-off): nbval over the committed notebook (the recommended plan
signed off on its twin, offline), the sign-off command over a live cluster (a sim running the
plan, with a utilisation store) judged on its twin, and a bad parameter.

What the default run finds is the plan's real limit, and the tests hold it to that: the
recommended plan's three nodes sit in three zones, so a single-replica service on a zonal disk
(Prometheus, Grafana) cannot move when its node or zone is lost (the scheduler's "volume node
affinity conflict"), and a StatefulSet's pod on an unreachable node stays Terminating until the
node returns (Redis, PostgreSQL): the node-loss and zone-loss rehearsals FAIL, while every
trading service keeps a replica, the node-pool upgrade completes within its PDBs and the
release rolls out.

Which pods a node holds varies between runs of the twin (two runs of the notebook put prometheus
and reporter on different nodes), and with it which pods a lost node strands and each rehearsal
step's table: the verdict, gates and rehearsal cells are tagged ``nbval-ignore-output`` (nbval
runs them, and does not compare their outputs), and these tests assert the findings on
summary.json instead.
"""
from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from eafix_capacity.catalog import load_catalog
from eafix_capacity.cli import main as cli_main
from eafix_capacity.errors import InputError
from eafix_capacity.paths import NOTEBOOKS_DIR
from eafix_capacity.signoff import notebook as nb
from notebook_helpers import (ROOT, assert_committed_with_the_conventions, assert_failed_in_the_validation_cell, run_nbval,
                              run_papermill)

NOTEBOOK = NOTEBOOKS_DIR / "05_upgrade_signoff.ipynb"
PARAMETERS = ["profile", "provider", "node_type", "nodes", "mesh", "headroom_pct", "cpu_limit_ratio",
              "memory_limit_ratio", "storage_gib", "max_pods", "replicas", "catalog", "manifests",
              "ignore_unknown_kinds", "zones", "zonal_pool", "exact", "exact_seconds", "growth_pct",
              "lead_time_days", "pools", "context", "kubeconfig", "namespace", "usage", "policy", "upgrade_node_type",
              "max_surge", "max_unavailable", "release_catalog", "release_manifests", "node_loss", "rehearsals",
              "output_dir"]
STUCK = ("volume node affinity conflict", "does not replace a pod until the old one is gone")

pytestmark = [pytest.mark.notebook, pytest.mark.sim]


def _trading() -> set[str]:
    return {s.name for s in load_catalog().services if s.tier == "trading"}


def _rehearsals(summary: dict, kind: str) -> list[dict]:
    return [r for r in summary["rehearsals"] if r["kind"] == kind]


def _assert_the_plans_limits(summary: dict) -> None:
    """The default plan's findings (see the module docstring), from summary.json."""
    plan = nb.make_plan(nb.NotebookParams())
    gates = {g["name"]: g for g in summary["gates"]}
    assert {n: g["verdict"] for n, g in gates.items() if n.startswith("plan:")} == \
        {f"plan:{g.name}": "PASS" if g.passed else "FAIL" for g in plan.gates}
    for resource in ("cpu", "memory"):
        f = gates[f"n+1:{resource}"]["figures"]
        # the mixin's rule: requests > allocatable - the largest node's allocatable cannot lose a node
        assert f["lost_allocatable"] * plan.nodes >= f["allocatable"]     # the largest is at least the mean
        assert gates[f"n+1:{resource}"]["verdict"] == (
            "PASS" if f["requests"] <= f["allocatable"] - f["lost_allocatable"] else "FAIL")
    (loss,) = _rehearsals(summary, "node-loss")
    zones = _rehearsals(summary, "zone-loss")
    assert len(zones) == 3       # one node in each of the plan's three zones
    (upgrade,) = _rehearsals(summary, "nodepool-upgrade")
    (release,) = _rehearsals(summary, "release-rollout")
    trading = _trading()
    for r in (loss, *zones):
        assert not r["completed"] and any(s in r["reason"] for s in STUCK), r["reason"]
        assert gates[f"rehearsal:{r['name']}"]["verdict"] == "FAIL"
        assert all(r["min_ready"][s] >= 1 for s in trading), r["min_ready"]   # two replicas, spread
    assert upgrade["completed"] and not upgrade["pending_at_end"]
    assert all(upgrade["min_ready"][s] >= upgrade["required_ready"][s] for s in trading)
    assert upgrade["settings"]["provider"] == "gke"
    assert release["completed"] and gates["rehearsal:release-rollout"]["verdict"] == "PASS"
    failing = [g["name"] for g in summary["gates"] if g["verdict"] == "FAIL"]
    assert failing and all(n.startswith(("rehearsal:node-loss", "rehearsal:zone-loss")) for n in failing)
    assert summary["gates"][0]["verdict"] == "FAIL"      # failing first


def test_committed_notebook_matches_its_outputs(tmp_path):
    result = run_nbval(NOTEBOOK, root=tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert " passed" in result.stdout
    summary = json.loads((tmp_path / "reports" / nb.NOTEBOOK / "summary.json").read_text())
    assert summary["verdict"] == "FAIL"
    _assert_the_plans_limits(summary)
    assert summary["inputs"]["context"] == "" and summary["usage"] == "no usage history given"
    assert not any(g["group"] in ("live", "usage") for g in summary["gates"])   # not judged, not required
    text = NOTEBOOK.read_text()
    assert str(ROOT) not in text and "/tmp/" not in text
    for g in summary["gates"]:      # every gate links to an evidence section of the report
        assert f'id=\\"{g["evidence"][1:]}\\"' in text and f'href=\\"{g["evidence"]}\\"' in text


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory):
    """A "live" cluster (a sim running the recommended plan) and a utilisation store of it."""
    from eafix_capacity.signoff.twin import plan_twin
    from eafix_capacity.sim.hooks import sim_clock_hooks
    from eafix_capacity.usage.metricsapi import sample_metrics_api
    from eafix_capacity.usage.store import UsageStore

    session = plan_twin(nb.make_plan(nb.NotebookParams()))
    store = tmp_path_factory.mktemp("usage")
    assert session.sim is not None
    hooks = sim_clock_hooks(session.sim)
    try:
        with UsageStore.open(store, create=True) as s:
            sample_metrics_api(session.api, context=session.target.context, namespace="eafix-trading",
                               on_round=lambda r: s.append_round(r.samples, node_samples=r.nodes,
                                                                 terminations=r.terminations),
                               interval=1800.0, duration=43200.0, quiet=True, clock=hooks.clock, sleep=hooks.sleep)
        yield session, store
    finally:
        session.close()


def _names(sim, kind) -> list[str]:
    return sorted(o["metadata"]["name"] for o in sim.store.list_objects(kind)[0])


def test_signoff_judges_a_live_cluster_on_its_twin_and_writes_every_output(tmp_path, live):
    from eafix_capacity.sim import resources as R

    session, store = live
    before = {k: _names(session.sim, k) for k in (R.NODE, R.POD)}
    params = tmp_path / "signoff.yaml"
    # the losses not rehearsed here (the default run's test rehearses them): a WARN each, never a PASS
    params.write_text("profile: recommended\nnode_type: n2-standard-8\nmax_surge: \"2\"\n"
                      "rehearsals: release-rollout,nodepool-upgrade\n"
                      "policy:\n  required: [plan, capacity, live, usage, rehearsal]\n")
    out = tmp_path / "reports"
    code = cli_main(["signoff", "--params", str(params), "--context", session.target.context, "--kubeconfig",
                     str(session.sim.kubeconfig), "--usage", str(store), "--out", str(out)])
    assert code == 0
    (run,) = [p for p in out.iterdir() if p.is_dir()]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["verdict"] == "WARN"
    gates = {g["name"]: g for g in summary["gates"]}
    assert gates["live:verify"]["verdict"] == "PASS"           # the live cluster runs the plan
    assert summary["twin"].startswith(f"twin of context {session.target.context}")
    usage = [g for g in summary["gates"] if g["group"] == "usage"]
    assert usage and summary["usage"].endswith(str(store))
    # 24 half-hourly rounds: fewer than the 100 samples the policy asks, over 11.5 h, not a day
    assert all(g["verdict"] != "PASS" for g in usage if "samples" in g["reason"])
    assert any("not enough data" in g["reason"] or "samples" in g["reason"] for g in usage)
    (upgrade,) = _rehearsals(summary, "nodepool-upgrade")
    assert upgrade["completed"] and upgrade["settings"]["max_surge"] == 2
    assert [r["kind"] for r in summary["rehearsals"]] == ["release-rollout", "nodepool-upgrade"]
    assert gates["rehearsal:node-loss"]["verdict"] == "WARN" and "not rehearsed" in gates["rehearsal:node-loss"]["reason"]
    failing = [g for g in summary["gates"] if g["verdict"] == "FAIL"]
    assert not [g["name"] for g in failing if g["required"]]
    # the live cluster was only read: its nodes and pods are as they were, though the twin's
    # nodes were all drained and replaced
    assert {k: _names(session.sim, k) for k in (R.NODE, R.POD)} == before
    # the outputs: the report, JUnit (one case per gate), Markdown, the run index
    html = (run / (NOTEBOOK.stem + ".html")).read_text()
    assert "Sign-off:" in html and "<script src=" not in html
    suite = ET.parse(run / "junit.xml").getroot()
    suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
    assert suite is not None and int(suite.get("tests")) == len(summary["gates"])
    assert len(suite.findall("testcase")) == len(summary["gates"])
    assert int(suite.get("failures")) == sum(1 for g in failing)    # an advisory FAIL still fails its case
    assert (run / "SUMMARY.md").read_text().splitlines()[0] == "## Capacity sign-off: **WARN**"
    index = (out / "index.html").read_text()
    assert run.name in index and "WARN" in index


@pytest.mark.parametrize(("values", "message"), [
    ({"node_loss": "all"}, r"node_loss: unknown node loss 'all'; largest"),
    ({"max_surge": "-1"}, r"max_surge"),
    ({"kubeconfig": "/k"}, r"kubeconfig: a kubeconfig without a context"),
])
def test_a_bad_parameter_fails_in_the_validation_cell(tmp_path, values, message):
    with pytest.raises(InputError, match=message):
        nb.NotebookParams.from_notebook(**values)
    if values != {"node_loss": "all"}:
        return
    with pytest.raises(InputError, match=message):
        run_papermill(NOTEBOOK, tmp_path, values)
    assert not (tmp_path / "summary.json").exists()
    assert_failed_in_the_validation_cell(tmp_path / NOTEBOOK.name)


def test_a_bad_rehearsal_parameter_in_a_params_file_is_refused_before_a_kernel_starts(tmp_path, capsys):
    params = tmp_path / "signoff.yaml"
    params.write_text("node_loss: all\n")
    assert cli_main(["signoff", "--params", str(params), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert f"{params}: node_loss: unknown node loss 'all'" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists() or not any((tmp_path / "r").iterdir())


def test_notebook_has_the_conventions():
    assert_committed_with_the_conventions(NOTEBOOK, PARAMETERS, nb.NotebookParams)
    assert NOTEBOOK.stem == nb.NOTEBOOK
    assert Path(nb.NotebookParams().output_dir).name == nb.NOTEBOOK
