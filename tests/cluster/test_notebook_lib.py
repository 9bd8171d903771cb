"""Notebook 03's library side, without a cluster: the parameters' checks, the object
selection, what a stopped apply did not send, the outcomes and the summary, the secret
guard, and the two charts on the recorded live state of ``tests/data/live/``."""
from __future__ import annotations

import json
import math
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from matplotlib.figure import Figure

from eafix_capacity.cluster import charts
from eafix_capacity.cluster import notebook as nb
from eafix_capacity.cluster.applyerrors import ObjectFailure, QuotaExceeded
from eafix_capacity.cluster.context import Target
from eafix_capacity.cluster.livestate import LiveState, from_objects
from eafix_capacity.cluster.order import Phase, phases
from eafix_capacity.cluster.records import MASK, ApplyRecord, FieldChange, masked
from eafix_capacity.cluster.rollout import RolloutTimeout
from eafix_capacity.cluster.verify import Check, pod_requests, verify
from eafix_capacity.errors import InputError
from eafix_capacity.manifests.workflow import build_profile
from eafix_capacity.plan import Plan

LIVE = Path(__file__).resolve().parent.parent / "data" / "live"
NS = "eafix-trading"
TARGET = Target(context="eafix-sim", cluster="eafix-sim", server="http://127.0.0.1:6443", user="eafix-sim",
                namespace="default", identity="0f0e0d0c-0b0a-0908-0706-050403020100", auth="token")


@cache
def _plan() -> Plan:
    return nb.make_plan(nb.NotebookParams())


@cache
def _live(name: str = "recommended-pass.json") -> LiveState:
    return from_objects(json.loads((LIVE / name).read_text()))


@cache
def _rendered() -> tuple[dict[str, Any], ...]:
    return tuple(build_profile("recommended").objects)


def _record(kind: str, name: str, phase: str, outcome: str = "created", **kw: Any) -> ApplyRecord:
    return ApplyRecord(phase=phase, file="", document=None, kind=kind, api_version="v1", namespace=NS, name=name,
                       outcome=outcome, dry_run=False, **kw)


def _cm(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": NS}}


def _deployment(name: str, tier: str = "trading") -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": NS, "labels": {"eafix.io/tier": tier}}}


def _service(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": NS}}


# --- parameters ----------------------------------------------------------------------------------

def test_the_defaults_start_the_sim_for_the_recommended_plan():
    params = nb.NotebookParams.from_notebook()
    assert params.starts_sim and not params.dry_run and not params.external_secrets
    plan = nb.make_plan(params)
    assert (plan.profile.name, plan.nodes, plan.node_type.name, plan.options.mesh) == (
        "recommended", 3, "n2-standard-8", "none")
    assert not nb.NotebookParams.from_notebook(context="prod", kubeconfig="/k").starts_sim


@pytest.mark.parametrize(("values", "message"), [
    ({"profile": "huge"}, "notebook parameters: profile: unknown profile 'huge'; one of: minimum, recommended"),
    ({"profile": 3}, 'notebook parameters: profile: not a string 3; a string such as "recommended"'),
    ({"mesh": "consul"}, "notebook parameters: mesh: unknown mesh 'consul'; one of: none, istio"),
    ({"provider": "ibm"}, "notebook parameters: provider: unknown provider 'ibm'; one of: gke, eks, aks, generic"),
    ({"nodes": -1}, "notebook parameters: nodes: not a node count -1; a whole number from 1, or 0 for the "
                    "plan's recommended count"),
    ({"nodes": True}, "notebook parameters: nodes: not a node count True;"),
    ({"nodes": 6000}, "notebook parameters: nodes: too many nodes 6000; at most 5,000"),
    ({"timeout": 0}, "notebook parameters: timeout: not a timeout in seconds 0; a number of seconds per phase, "
                     "above 0 and at most 3600"),
    ({"timeout": math.nan}, "notebook parameters: timeout: not a timeout in seconds nan;"),
    ({"timeout": "60"}, "notebook parameters: timeout: not a timeout in seconds '60';"),
    ({"timeout": 7200.0}, "notebook parameters: timeout: not a timeout in seconds 7200.0;"),
    ({"yes": "yes"}, "notebook parameters: yes: not True or False 'yes'; True or False"),
    ({"dry_run": 1}, "notebook parameters: dry_run: not True or False 1; True or False"),
    ({"kubeconfig": "/k"}, "notebook parameters: kubeconfig: a kubeconfig without a context '/k'; set context "
                           "to the kubeconfig's context to write to, or leave kubeconfig empty"),
    ({"node_type": ""}, "notebook parameters: node_type: not a non-empty string '';"),
    ({"output_dir": ""}, "notebook parameters: output_dir: empty output directory;"),
    ({"colour": "red"}, "notebook parameters: colour: unknown parameter; one of: context, kubeconfig, yes,"),
])
def test_a_bad_parameter_is_one_line_naming_it_and_what_is_valid(values, message):
    with pytest.raises(InputError) as e:
        nb.NotebookParams.from_notebook(**values)
    assert str(e.value).startswith(message)
    assert "\n" not in str(e.value)


def test_an_unknown_node_type_is_refused_by_the_plan_naming_it():
    with pytest.raises(InputError, match=r"node_type: unknown node type 'n9-huge'; known node types: "):
        nb.make_plan(nb.NotebookParams.from_notebook(node_type="n9-huge"))


# --- objects ---------------------------------------------------------------------------------------

def test_the_external_secrets_variant_is_left_out_unless_asked_for():
    objects = list(_rendered())
    variant = [o for o in objects if o["apiVersion"].startswith("external-secrets.io/")]
    assert {o["kind"] for o in variant} == {"SecretStore", "ExternalSecret"}
    kept = nb.select_objects(objects, external_secrets=False)
    assert len(kept) == len(objects) - len(variant)
    assert not [o for o in kept if o["apiVersion"].startswith("external-secrets.io/")]
    assert [o["kind"] for o in kept if o["kind"] == "Secret"] == ["Secret"]   # the template stays
    assert nb.select_objects(objects, external_secrets=True) == objects
    assert nb.render_objects(nb.NotebookParams()) == kept


def test_not_sent_lists_the_later_phases_only():
    objects = [_service("api"), _deployment("api"), _cm("config"), _deployment("redis", "infrastructure")]
    assert [p.name for p in phases(objects)] == ["configmaps", "infrastructure", "workloads", "services"]
    assert nb.not_sent(objects, "infrastructure") == ["Deployment eafix-trading/api", "Service eafix-trading/api"]
    assert nb.not_sent(objects, "services") == []
    assert nb.not_sent(objects, "no-such-phase") == []


# --- outcomes --------------------------------------------------------------------------------------

def test_a_rollout_timeout_is_an_outcome_with_its_lines_and_what_was_not_sent():
    objects = [_cm("config"), _deployment("redis", "infrastructure"), _deployment("api"), _service("api")]
    records = [_record("ConfigMap", "config", "configmaps"), _record("Deployment", "redis", "infrastructure")]
    line = ("Deployment eafix-trading/redis: 0/1 ready; pod redis-0: Pending: Unschedulable: 0/1 nodes are "
            "available: 1 Insufficient cpu.")
    out = nb.outcome_of_failure(RolloutTimeout([line], timeout=2.0), objects, dry_run=False, records=records,
                                timeout=2.0, phase="infrastructure")
    assert (out.status, out.phase, out.lines, out.ok) == ("rollout-timeout", "infrastructure", (line,), False)
    assert out.not_sent == ("Deployment eafix-trading/api", "Service eafix-trading/api")
    assert out.rollout() == {"outcome": "timeout", "phase": "infrastructure", "timeout_s": 2.0, "lines": [line],
                             "phases": []}
    assert out.text().splitlines() == [
        "apply: 2 objects (2 created, 0 changed, 0 unchanged); stopped in phase infrastructure: rollout not "
        "finished within 2 s", f"  {line}", "  not sent: 2 objects of the later phases"]
    assert nb.overall([Check("node-count", "cluster", "PASS", "1", "1")], out) == "FAIL"


def test_a_refused_phase_is_an_outcome_naming_each_refused_object():
    objects = [_cm("config"), _deployment("api"), _service("api")]
    sent = [_record("ConfigMap", "config", "configmaps")]
    failure = ObjectFailure("quota", "(rendered in memory)", "Deployment eafix-trading/api", 403,
                            "exceeded quota: eafix-trading-quota")
    out = nb.outcome_of_failure(QuotaExceeded("workloads", [failure], sent), objects, dry_run=False,
                                records=sent, timeout=60.0)
    assert (out.status, out.phase, out.records) == ("refused", "workloads", tuple(sent))
    assert out.lines == ("(rendered in memory): Deployment eafix-trading/api: 403: exceeded quota: "
                         "eafix-trading-quota",)
    assert out.not_sent == ("Service eafix-trading/api",)
    assert out.rollout() == {"outcome": "stopped", "phase": "workloads", "timeout_s": 60.0, "lines": [],
                             "phases": []}
    with pytest.raises(TypeError):
        nb.outcome_of_failure(ValueError("x"), objects, dry_run=False, records=sent, timeout=1.0)


def test_overall_is_the_worst_check_when_the_apply_finished():
    done = nb.ApplyOutcome(False, "done", waited=("infrastructure",))
    warn = [Check("node-count", "cluster", "WARN", "2", "3"), Check("pdb", "service a", "PASS", "", "")]
    assert nb.overall(warn, done) == "WARN"
    assert nb.overall(warn[1:], done) == "PASS"
    assert nb.overall([*warn, Check("pod-pending", "pod x", "FAIL", "Running", "Pending")], done) == "FAIL"
    assert done.rollout() == {"outcome": "ready", "phase": None, "timeout_s": None, "lines": [],
                              "phases": ["infrastructure"]}
    skipped = nb.ApplyOutcome(False, "not-run", note="dry_run is set: nothing was applied")
    assert nb.overall(warn[1:], skipped) == "PASS" and skipped.rollout()["outcome"] == "not waited"
    assert skipped.text() == "apply: not run: dry_run is set: nothing was applied"
    refused_dry = nb.ApplyOutcome(True, "refused", phase="namespaces")
    assert nb.overall(warn[1:], refused_dry, skipped) == "FAIL"
    assert nb.checks_line(warn[1:], refused_dry, skipped) == (
        "1 checks: 1 PASS, 0 WARN, 0 FAIL; overall: FAIL (the dry run stopped in phase namespaces)")


class _FakeApply:
    """Stands in for ``cluster.apply.apply``: calls ``after_phase`` per phase as it does."""

    def __init__(self, per_phase: list[tuple[str, list[ApplyRecord]]]) -> None:
        self.per_phase = per_phase
        self.calls: list[dict[str, Any]] = []

    def __call__(self, objects: Any, **kw: Any) -> list[ApplyRecord]:
        self.calls.append(kw)
        out: list[ApplyRecord] = []
        for name, records in self.per_phase:
            out += records
            kw["after_phase"](Phase(name, wait_after=name == "infrastructure"), records)
        return out


def _timing_out_in(phase: str):
    def factory(api: Any, *, timeout: float, progress: bool):
        def wait(p: Phase, records: Any) -> None:
            if p.name == phase:
                raise RolloutTimeout([f"Deployment {NS}/api: 0/2 ready"], timeout=timeout)
        return wait
    return factory


def test_apply_and_wait_records_a_timeout_with_what_was_sent(monkeypatch):
    infra = [_record("StatefulSet", "redis", "infrastructure"), _record("Service", "redis", "infrastructure")]
    work = [_record("Deployment", "api", "workloads")]
    fake = _FakeApply([("configmaps", [_record("ConfigMap", "c", "configmaps")]), ("infrastructure", infra),
                       ("workloads", work)])
    monkeypatch.setattr("eafix_capacity.cluster.apply.apply", fake)
    session = nb.Session(TARGET, api=object())
    params = nb.NotebookParams.from_notebook(timeout=2.0, yes=True)
    out = nb.apply_and_wait(session, [_deployment("api")], params=params, dry=nb.ApplyOutcome(True, "done"),
                            progress=False, waiter_factory=_timing_out_in("workloads"))
    assert (out.status, out.phase, out.timeout) == ("rollout-timeout", "workloads", 2.0)
    assert [r.name for r in out.records] == ["c", "redis", "redis", "api"]
    assert out.waited == ("infrastructure",)   # the phases holding workloads that rolled out
    assert out.lines == (f"Deployment {NS}/api: 0/2 ready",)
    call = fake.calls[0]
    assert (call["dry_run"], call["context_given"], call["yes"], call["target"]) == (False, True, True, TARGET)
    assert "external_secrets" not in call
    nb.apply_and_wait(session, [], params=nb.NotebookParams.from_notebook(external_secrets=True), progress=False,
                      dry=nb.ApplyOutcome(True, "done"), waiter_factory=_timing_out_in("none"))
    assert fake.calls[-1]["external_secrets"] is True   # apply sends the variant instead of the template
    done = nb.apply_and_wait(session, [], params=params, dry=nb.ApplyOutcome(True, "done"), progress=False,
                             waiter_factory=_timing_out_in("none"))
    assert done.status == "done" and done.waited == ("infrastructure", "workloads")
    assert "rollout ready: 2 workloads (phases infrastructure, workloads)" in done.text()


def test_apply_and_wait_sends_nothing_for_a_dry_run_or_after_a_refused_dry_run(monkeypatch):
    fake = _FakeApply([])
    monkeypatch.setattr("eafix_capacity.cluster.apply.apply", fake)
    session = nb.Session(TARGET, api=object())
    only_dry = nb.apply_and_wait(session, [], params=nb.NotebookParams.from_notebook(dry_run=True),
                                 dry=nb.ApplyOutcome(True, "done"), progress=False)
    assert only_dry.status == "not-run" and "dry_run is set" in only_dry.note
    refused = nb.apply_and_wait(session, [], params=nb.NotebookParams(), progress=False,
                                dry=nb.ApplyOutcome(True, "refused", phase="workloads"))
    assert refused.status == "not-run" and refused.note == "the dry run was refused in phase workloads"
    assert fake.calls == []


# --- secrets ---------------------------------------------------------------------------------------

def test_a_secret_record_may_carry_masked_values_only():
    masked_change = FieldChange(".data.password", masked("Secret", ".data.password", "aHVudGVyMg=="),
                                masked("Secret", ".data.password", "c2VjcmV0"))
    whole = FieldChange(".stringData", None, masked("Secret", ".stringData", {"token": "t0k3n"}))
    assert masked_change.after == MASK and whole.after == {"token": MASK}
    nb.assert_no_secret_values([_record("Secret", "s", "secrets", "changed", changes=(masked_change, whole))])
    nb.assert_no_secret_values([_record("ConfigMap", "c", "configmaps", "changed",
                                        changes=(FieldChange(".data.k", "a", "b"),))])
    leaked = FieldChange(".data.password", MASK, "c2VjcmV0")
    with pytest.raises(ValueError, match=r"Secret eafix-trading/s: the change at \.data\.password carries a value"):
        nb.assert_no_secret_values([_record("Secret", "s", "secrets", "changed", changes=(leaked,))])
    with pytest.raises(ValueError, match="carries a value"):
        nb.summary(nb.NotebookParams(), _plan(), TARGET, objects=1, dry=nb.ApplyOutcome(True, "done"),
                   applied=nb.ApplyOutcome(False, "done", (_record("Secret", "s", "secrets", "changed",
                                                                   changes=(leaked,)),)),
                   checks=[], started_sim=True)


# --- summary and tables ----------------------------------------------------------------------------

def test_the_summary_holds_the_target_records_rollout_checks_and_result(tmp_path):
    checks = verify(_live(), _plan())
    applied = nb.ApplyOutcome(False, "done", (_record("Deployment", "api", "workloads", resource_version="42"),),
                              timeout=120.0, waited=("workloads",))
    params = nb.NotebookParams.from_notebook(output_dir=str(tmp_path))
    data = nb.summary(params, _plan(), TARGET, objects=1, dry=nb.ApplyOutcome(True, "done"), applied=applied,
                      checks=checks, started_sim=True)
    assert data["target"] == {"context": "eafix-sim", "cluster": "eafix-sim", "server": "http://127.0.0.1:6443",
                              "user": "eafix-sim", "namespace": "default",
                              "identity": "0f0e0d0c-0b0a-0908-0706-050403020100", "is_sim": True, "auth": "token",
                              "started_sim": True}
    assert data["plan"] == {"profile": "recommended", "provider": "gke", "node_type": "n2-standard-8", "nodes": 3,
                            "mesh": "none"}
    assert data["apply"]["records"] == [applied.records[0].as_dict()]
    assert data["apply"]["records"][0]["resource_version"] == "42"
    assert data["rollout"]["outcome"] == "ready"
    assert data["checks"] == [c.as_dict() for c in checks]
    assert data["counts"] == {"PASS": len(checks), "WARN": 0, "FAIL": 0} and data["result"] == "PASS"
    assert data["parameters"]["profile"] == "recommended" and "output_dir" not in data["parameters"]
    path = Path(nb.write_summary(params, data))
    assert path == tmp_path / "summary.json" and json.loads(path.read_text()) == data


def test_the_tables_put_failures_first_and_count_per_phase():
    records = [_record("Namespace", "ns", "namespaces"), _record("ConfigMap", "c", "configmaps", "changed",
                                                                   diff=(".data.k", ".data.j")),
               _record("ConfigMap", "d", "configmaps", "unchanged")]
    frame = nb.records_frame(records)
    assert list(frame.columns) == ["phase", "kind", "object", "outcome", "changed", "note"]
    assert frame.loc[1, "changed"] == ".data.k, .data.j" and frame.loc[0, "object"] == f"{NS}/ns"
    counts = nb.outcomes_frame(records)
    assert counts.to_dict(orient="records") == [
        {"phase": "namespaces", "created": 1, "changed": 0, "unchanged": 0, "objects": 1},
        {"phase": "configmaps", "created": 0, "changed": 1, "unchanged": 1, "objects": 2}]
    checks = verify(_live("recommended-drifted.json"), _plan())
    table = nb.checks_frame(checks)
    statuses = list(table["status"])
    assert statuses == sorted(statuses, key=["FAIL", "WARN", "PASS"].index) and statuses[0] == "FAIL"
    failing = nb.checks_frame(checks, passing=False)
    assert list(failing["status"]) == [s for s in statuses if s != "PASS"]
    assert nb.checks_line(checks, nb.ApplyOutcome(False, "done")) == (
        f"{len(checks)} checks: {statuses.count('PASS')} PASS, {statuses.count('WARN')} WARN, "
        f"{statuses.count('FAIL')} FAIL; overall: FAIL")
    assert nb.checks_line(checks[:1], nb.ApplyOutcome(False, "refused", phase="workloads")).endswith(
        "overall: FAIL (the apply stopped in phase workloads)")
    per = nb.check_counts(checks).set_index("check")
    assert per.loc["node-count"].to_dict() == {"PASS": 1, "WARN": 0, "FAIL": 0}
    assert int(per["FAIL"].sum()) == sum(c.status == "FAIL" for c in checks)


# --- charts ----------------------------------------------------------------------------------------

def test_the_service_chart_compares_planned_and_live_per_service():
    rows = {r.service: r for r in charts.service_rows(_plan(), _live())}
    assert list(rows) == [s.name for s in _plan().catalog.services]
    for svc in _plan().catalog.services:
        r = rows[svc.name]
        assert (r.planned, r.ready) == (svc.replicas, svc.replicas), svc.name
        assert r.live_cpu_m == r.planned_cpu_m and r.live_memory_bytes == r.planned_memory_bytes, svc.name
    drifted = {r.service: r for r in charts.service_rows(_plan(), _live("recommended-drifted.json"))}
    changed = {n for n in rows if (rows[n].desired, rows[n].ready, rows[n].live_cpu_m)
               != (drifted[n].desired, drifted[n].ready, drifted[n].live_cpu_m)}
    assert changed   # the drifted recording scales, resizes and leaves a replica Pending
    fig = charts.planned_against_live(_plan(), _live())
    assert isinstance(fig, Figure) and len(fig.axes) == 3
    assert [t.get_text() for t in fig.axes[2].get_xticklabels()] == list(rows)


def test_the_node_chart_sums_requests_per_node_against_allocatable():
    live = _live()
    rows = charts.node_rows(live)
    assert [r.node for r in rows] == [n.name for n in live.nodes]
    for r in rows:
        on = [p for p in live.pods if p.node == r.node and not p.terminated]
        assert r.system_cpu_m + r.workload_cpu_m == pytest.approx(sum(float(pod_requests(p)["cpu"]) * 1000
                                                                      for p in on))
        assert r.workload_memory_bytes > 0 and r.allocatable_memory_bytes > r.system_memory_bytes + \
            r.workload_memory_bytes
    fig = charts.node_requests(live)
    assert len(fig.axes) == 2
    assert fig.get_suptitle() == "Requests per node against allocatable (3 nodes)"
    drifted = _live("recommended-drifted.json")
    pending = [p for p in drifted.pods if p.phase == "Pending" and not p.node]
    assert pending
    figure = charts.node_requests(drifted)
    assert len(pending) == 1 and figure.get_suptitle().endswith("; 1 pod Pending on no node")
    assert [t.get_text() for t in figure.axes[0].get_xticklabels()][-1] == "Pending (on no node)"
    cpu_m, memory = charts.pending_requests(drifted)
    assert cpu_m == sum(float(pod_requests(p)["cpu"]) * 1000 for p in pending) > 0
    assert memory == sum(float(pod_requests(p)["memory"]) for p in pending) > 0
    assert charts.pending_requests(live) == (0.0, 0.0)


class _Clock:
    def __init__(self) -> None:
        self.advanced: list[float] = []

    def advance(self, seconds: float) -> None:
        self.advanced.append(seconds)


class _Sim:
    """What ``settle`` uses of a SimCluster: ``settle`` (raising as the controller manager
    does when they keep busy) and the clock."""

    def __init__(self, busy: bool = False) -> None:
        self.clock, self.busy, self.settled, self.stopped = _Clock(), busy, 0, False

    def settle(self) -> None:
        from eafix_capacity.errors import ClusterError

        self.settled += 1
        if self.busy:
            raise ClusterError("sim controllers did not settle within 5.0s")

    def stop(self) -> None:
        self.stopped = True


class _Api:
    closed = False

    def close(self) -> None:
        self.closed = True


def test_settle_moves_the_sim_clock_on_and_leaves_a_real_cluster_alone():
    sim = _Sim()
    assert nb.settle(nb.Session(TARGET, api=_Api(), sim=sim)) == (
        "sim: clock moved on 30 s and the controllers settled")
    assert (sim.clock.advanced, sim.settled) == ([nb.SIM_SETTLE_SECONDS], 2)
    busy = _Sim(busy=True)
    assert nb.settle(nb.Session(TARGET, api=_Api(), sim=busy)).endswith(
        "sim controllers did not settle within 5.0s")
    assert nb.settle(nb.Session(TARGET, api=_Api())) == (
        "not the sim the notebook started: verify reads the cluster as it is")


def test_closing_the_session_closes_the_client_and_stops_the_sim_once():
    api, sim = _Api(), _Sim()
    session = nb.Session(TARGET, api=api, sim=sim)
    assert session.started_sim
    session.close()
    session.close()
    assert api.closed and sim.stopped and session.closed
    with pytest.raises(ValueError, match="stand-in CRDs go to the sim only"):
        nb.install_mesh_crds(nb.Session(TARGET, api=_Api()))
