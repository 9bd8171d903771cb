"""Release rehearsal: a new rendering applied to a sim, rolled out under the quota, plans side by side."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import pytest

from eafix_capacity.cluster.apply import apply
from eafix_capacity.cluster.context import Target, load_target
from eafix_capacity.cluster.rest import list_items
from eafix_capacity.errors import InputError
from eafix_capacity.manifests.workflow import committed_dir
from eafix_capacity.paths import data_file
from eafix_capacity.signoff.release import (Release, compare_plans, rehearse_release, release_objects,
                                            replica_failures)
from eafix_capacity.sim.cluster import SimCluster
from eafix_capacity.sim.hooks import ClockHooks, sim_clock_hooks

NS = "eafix-trading"
# the part of the rendering risk-manager needs (its namespace, quota, limits, account, secret, config, PDB)
SUBSET = {("Namespace", "eafix-trading"), ("ResourceQuota", "eafix-trading-quota"),
          ("LimitRange", "eafix-trading-limits"), ("ServiceAccount", "risk-manager"),
          ("Secret", "trading-secrets"), ("ConfigMap", "eafix-config"), ("Deployment", "risk-manager"),
          ("PodDisruptionBudget", "risk-manager-pdb")}


def _subset(release: Release) -> list[Any]:
    return [o for o in release.objects if (o["kind"], o["metadata"]["name"]) in SUBSET]


def _raised_catalogue(tmp: Path) -> Path:
    """The embedded catalogue with risk-manager's CPU request raised from 300m to 600m."""
    text = data_file("services.yaml").read_text(encoding="utf-8")
    at = text.index("- name: risk-manager")
    old = 'requests: {cpu: "300m", memory: "512Mi"}'
    assert text.index(old, at) < text.index("- name: execution-engine")
    path = tmp / "services.yaml"
    path.write_text(text[:at] + text[at:].replace(old, 'requests: {cpu: "600m", memory: "512Mi"}', 1),
                    encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def releases(tmp_path_factory: pytest.TempPathFactory) -> tuple[Release, Release]:
    old = release_objects(catalog=data_file("services.yaml"))
    new = release_objects(catalog=_raised_catalogue(tmp_path_factory.mktemp("catalogue")))
    return old, new


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory,
        releases: tuple[Release, Release]) -> Iterator[tuple[SimCluster, Any, Target, ClockHooks]]:
    """A frozen sim running the old rendering's risk-manager."""
    with SimCluster(speed=0, kubeconfig=tmp_path_factory.mktemp("release") / "kubeconfig") as s:
        target, api = load_target(kubeconfig=str(s.kubeconfig), context="eafix-sim")
        apply(_subset(releases[0]), api_client=api, target=target, dry_run=False, context_given=True)
        s.settle()  # the pods exist before the clock moves on past their readiness probes
        hooks = sim_clock_hooks(s)
        hooks.sleep(30)
        try:
            yield s, api, target, hooks
        finally:
            api.close()


def _pods(api: Any, ns: str) -> list[dict[str, Any]]:
    return list_items(api, f"/api/v1/namespaces/{ns}/pods", "Pod", timeout=10)


# --- pure ----------------------------------------------------------------------------------------

def test_compare_plans_puts_the_changed_request_side_by_side(releases: tuple[Release, Release]) -> None:
    old, new = releases
    rows = compare_plans(old.plan, new.plan)
    by = {(r["section"], r["name"], r["field"]): r for r in rows}
    assert by[("service", "risk-manager", "cpu_request_m")] == {
        "section": "service", "name": "risk-manager", "field": "cpu_request_m", "old": 300, "new": 600,
        "changed": True}
    assert by[("service", "risk-manager", "total_cpu_request_m")]["new"] == 1200  # 2 replicas
    assert by[("service", "risk-manager", "cpu_limit_m")]["changed"] is False
    assert {r["name"] for r in rows if r["changed"] and r["section"] == "service"} == {"risk-manager"}
    assert {k[1] for k in by if k[0] == "scenario"} == {"baseline", "hpa-max", "rollout", "node-drain"}
    assert by[("scenario", "baseline", "nodes_needed")]["old"] == old.plan.scenarios["baseline"].nodes_needed


def test_release_objects_from_a_catalogue_and_from_a_directory(releases: tuple[Release, Release]) -> None:
    _, new = releases
    dep = next(o for o in new.objects if o["kind"] == "Deployment" and o["metadata"]["name"] == "risk-manager")
    assert dep["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]["cpu"] == "600m"
    assert not [o for o in new.objects if o["apiVersion"].startswith("external-secrets.io/")]
    from_dir = release_objects(manifests=committed_dir("recommended"))
    assert sorted((o.obj["kind"], o.obj["metadata"]["name"]) for o in from_dir.objects) == \
        sorted((o["kind"], o["metadata"]["name"]) for o in releases[0].objects)
    assert from_dir.plan.nodes == releases[0].plan.nodes
    with pytest.raises(InputError, match="exactly one of catalog and manifests"):
        release_objects()


def test_replica_failures_names_the_workload_as_the_rollout_wait_does() -> None:
    refused = {"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate", "message": "exceeded quota: q"}
    workloads = [{"kind": "Deployment", "metadata": {"namespace": "ns", "name": "a"}, "status": {"conditions": [
                     refused, {"type": "Available", "status": "True"}]}},
                 {"kind": "Deployment", "metadata": {"namespace": "ns", "name": "b"},
                  "status": {"conditions": [dict(refused, status="False")]}}]
    assert replica_failures(workloads) == {"Deployment ns/a": "exceeded quota: q"}


# --- on the sim ----------------------------------------------------------------------------------

def test_a_release_raising_a_cpu_request_rolls_out_with_surge(
        sim: tuple[SimCluster, Any, Target, ClockHooks], releases: tuple[Release, Release]) -> None:
    s, api, target, hooks = sim
    old, new = releases
    r = rehearse_release(api, sim=s, target=target, objects=_subset(new), old_plan=old.plan, new_plan=new.plan,
                         namespace=NS, clock=hooks.clock, sleep=hooks.sleep, timeout=300)

    assert r.completed, r.reason
    assert r.kind == "release-rollout"
    assert r.desired["risk-manager"] == 2
    # maxSurge 25% of 2 rounds up to 1, maxUnavailable 25% rounds down to 0: never below 2 Ready
    assert r.min_ready["risk-manager"] == 2
    assert max(o.ready["risk-manager"] for o in r.observations) == 2
    assert len(r.observations) > 2
    pods = [p for p in _pods(api, NS) if p["metadata"]["labels"]["app.kubernetes.io/name"] == "risk-manager"
            and not p["metadata"].get("deletionTimestamp")]  # the old ones may still be in their grace period
    assert [p["spec"]["containers"][0]["resources"]["requests"]["cpu"] for p in pods] == ["600m", "600m"]
    assert r.details["changed_services"] == ["risk-manager"]
    changed = {c["object"]: c["paths"] for c in r.details["changed_objects"]}
    assert any("requests" in p and "cpu" in p for p in changed[f"Deployment {NS}/risk-manager"])
    assert "ResourceQuota eafix-trading/eafix-trading-quota" in changed  # the quota grows with the release


def test_a_release_whose_surge_breaks_the_quota_does_not_complete(
        sim: tuple[SimCluster, Any, Target, ClockHooks], releases: tuple[Release, Release]) -> None:
    s, api, target, hooks = sim
    old, new = releases
    labels = {"app.kubernetes.io/name": "tight"}

    def deployment(cpu: str) -> dict[str, Any]:
        return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "tight", "namespace": "tight"},
                "spec": {"replicas": 2, "selector": {"matchLabels": labels},
                         "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
                         "template": {"metadata": {"labels": labels}, "spec": {"containers": [{
                             "name": "c", "image": "nginx:1.27",
                             "resources": {"requests": {"cpu": cpu, "memory": "64Mi"},
                                           "limits": {"cpu": cpu, "memory": "64Mi"}}}]}}}}

    quota = {"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "tight-quota", "namespace": "tight"},
             "spec": {"hard": {"requests.cpu": "500m", "pods": "10"}}}  # room for 2 x 250m, no surge pod
    apply([{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "tight"}}, quota, deployment("250m")],
          api_client=api, target=target, dry_run=False, context_given=True)
    hooks.sleep(10)

    r = rehearse_release(api, sim=s, target=target, objects=[deployment("240m")], old_plan=old.plan,
                         new_plan=new.plan, namespace="tight", clock=hooks.clock, sleep=hooks.sleep, timeout=120,
                         step=30)

    assert not r.completed
    assert "Deployment tight/tight: 2/2 ready, 0 updated" in r.reason
    assert 'ReplicaFailure: pods "tight-' in r.reason
    assert "is forbidden: exceeded quota: tight-quota, requested: requests.cpu=240m, used: requests.cpu=500m, " \
           "limited: requests.cpu=500m" in r.reason
    assert r.min_ready == {"tight": 2}
    assert r.details["applied"] == {"changed": 1}
    assert "\n" not in r.reason


def test_an_empty_rendering_is_a_one_line_input_error(sim: tuple[SimCluster, Any, Target, ClockHooks],
                                                       releases: tuple[Release, Release]) -> None:
    s, api, target, hooks = sim
    with pytest.raises(InputError) as e:
        rehearse_release(api, sim=s, target=target, objects=[], old_plan=releases[0].plan,
                         new_plan=releases[1].plan, namespace=NS, clock=hooks.clock, sleep=hooks.sleep, timeout=60)
    assert "an empty rendering: nothing to release" in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(InputError, match="timeout"):
        rehearse_release(api, sim=s, target=target, objects=_subset(releases[1]), old_plan=releases[0].plan,
                         new_plan=releases[1].plan, namespace=NS, clock=hooks.clock, sleep=hooks.sleep, timeout=0)
