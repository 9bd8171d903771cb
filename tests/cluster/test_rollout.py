"""The rollout wait: readiness and its explanations on small dicts, then ``wait_for`` against
one sim for the module (ten-times clock from the trading-day morning, as test_verify_cmd runs
it) through the official client: a healthy Deployment, one whose image cannot be pulled, and
one too big for any node."""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Iterator

import pytest

from eafix_capacity.cluster.apply import ApplyRecord
from eafix_capacity.cluster.context import load_target
from eafix_capacity.cluster.rollout import (
    RolloutTimeout, WorkloadRef, is_ready, refs_of_records, wait_for, waiter, why_not_ready)
from eafix_capacity.errors import ClusterError
from eafix_capacity.sim.clock import TRADING_DAY_START
from eafix_capacity.sim.cluster import SimCluster
from eafix_capacity.sim.faults import FAULT_ANNOTATION

NS = "default"


def _deployment(**status: Any) -> dict[str, Any]:
    return {"kind": "Deployment", "metadata": {"name": "api", "namespace": NS, "generation": 2},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "api"}}},
            "status": {"observedGeneration": 2, "replicas": 2, "updatedReplicas": 2, "readyReplicas": 2,
                       "availableReplicas": 2, **status}}


def _pod(name: str, *, labels: dict[str, str] | None = None, **status: Any) -> dict[str, Any]:
    return {"kind": "Pod", "metadata": {"name": name, "namespace": NS, "labels": labels or {"app": "api"}},
            "status": {"phase": "Pending", **status}}


# -- readiness (pure) ------------------------------------------------------------------------

def test_a_deployment_is_ready_only_when_every_count_matches_an_observed_generation():
    assert is_ready(_deployment())
    assert not is_ready(_deployment(observedGeneration=1))             # the controller has not seen it yet
    assert not is_ready(_deployment(availableReplicas=1))
    assert not is_ready(_deployment(updatedReplicas=1))
    assert not is_ready(_deployment(readyReplicas=1))
    assert not is_ready(_deployment(replicas=3, updatedReplicas=2))    # an old replica still terminating
    no_status = _deployment()
    del no_status["status"]
    assert not is_ready(no_status)
    defaulted = _deployment(replicas=1, updatedReplicas=1, readyReplicas=1, availableReplicas=1)
    del defaulted["spec"]["replicas"]                                   # spec.replicas defaults to 1
    assert is_ready(defaulted)


def test_a_statefulset_is_ready_with_its_ready_replicas_and_the_update_revision_current():
    sts = {"kind": "StatefulSet", "metadata": {"name": "pg", "namespace": NS, "generation": 1},
           "spec": {"replicas": 1},
           "status": {"observedGeneration": 1, "readyReplicas": 1, "currentRevision": "pg-1",
                      "updateRevision": "pg-1"}}
    assert is_ready(sts)
    rolling = copy.deepcopy(sts)
    rolling["status"]["updateRevision"] = "pg-2"
    assert not is_ready(rolling)
    rolling["spec"]["updateStrategy"] = {"type": "OnDelete"}             # revisions only move on delete
    assert is_ready(rolling)
    unready = copy.deepcopy(sts)
    unready["status"]["readyReplicas"] = 0
    assert not is_ready(unready)


def test_a_daemonset_is_ready_when_every_scheduled_pod_is_ready_and_updated():
    ds = {"kind": "DaemonSet", "metadata": {"name": "agent", "namespace": NS, "generation": 3},
          "status": {"observedGeneration": 3, "desiredNumberScheduled": 3, "numberReady": 3,
                     "updatedNumberScheduled": 3}}
    assert is_ready(ds)
    assert not is_ready({**ds, "status": {**ds["status"], "numberReady": 2}})
    assert not is_ready({**ds, "status": {**ds["status"], "observedGeneration": 2}})


def test_a_crd_is_ready_once_its_names_are_accepted_and_it_is_established():
    crd = {"kind": "CustomResourceDefinition", "metadata": {"name": "gateways.networking.istio.io"},
           "status": {"conditions": [{"type": "NamesAccepted", "status": "True", "reason": "NoConflicts"},
                                     {"type": "Established", "status": "False", "reason": "Installing",
                                      "message": "the initial names have not been accepted"}]}}
    assert not is_ready(crd)
    assert why_not_ready(crd, [], []) == (
        "CustomResourceDefinition default/gateways.networking.istio.io: not served yet: "
        "Established False: the initial names have not been accepted")
    crd["status"]["conditions"][1].update(status="True", reason="InitialNamesAccepted", message="")
    assert is_ready(crd)
    assert not is_ready({"kind": "CustomResourceDefinition", "metadata": {"name": "x"}})


def test_a_kind_without_a_rule_is_refused():
    with pytest.raises(ValueError, match="no readiness rule for kind 'Service'"):
        is_ready({"kind": "Service"})


# -- why not (pure) --------------------------------------------------------------------------

UNSCHEDULABLE = "0/3 nodes are available: 3 Insufficient cpu. preemption: 0/3 nodes are available: " \
                "3 No preemption victims found for incoming pod."


def test_a_ready_workload_needs_no_explanation():
    assert why_not_ready(_deployment(), [], []) is None


def test_a_pending_pod_is_explained_with_the_schedulers_message():
    pending = _pod("api-1", conditions=[{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                                         "message": UNSCHEDULABLE}])
    line = why_not_ready(_deployment(readyReplicas=0, availableReplicas=0), [pending, copy.deepcopy(pending)], [])
    assert line == (f"Deployment {NS}/api: 0/2 ready, 2 updated, 0 available; "
                    f"pod api-1 (+1 more): Pending: Unschedulable: {UNSCHEDULABLE}")


def test_the_failed_scheduling_event_is_used_when_the_condition_has_no_message():
    pending = _pod("api-1", conditions=[{"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}])
    event = {"reason": "FailedScheduling", "message": UNSCHEDULABLE,
             "involvedObject": {"kind": "Pod", "name": "api-1", "namespace": NS}}
    line = why_not_ready(_deployment(readyReplicas=1, availableReplicas=1), [pending], [event])
    assert line is not None and line.endswith(f"pod api-1: Pending: Unschedulable: {UNSCHEDULABLE}")


def test_image_pulls_crash_loops_and_failing_probes_are_each_named():
    pull = _pod("api-1", containerStatuses=[{"name": "api", "state": {"waiting": {
        "reason": "ImagePullBackOff", "message": 'Back-off pulling image "api:9"'}}}])
    crash = _pod("api-2", phase="Running", containerStatuses=[{"name": "api", "restartCount": 4,
        "state": {"waiting": {"reason": "CrashLoopBackOff"}},
        "lastState": {"terminated": {"reason": "Error", "exitCode": 2}}}])
    probing = _pod("api-3", phase="Running", conditions=[{"type": "Ready", "status": "False"}],
                   containerStatuses=[{"name": "api", "state": {"running": {}}}])
    ready = _pod("api-4", phase="Running", conditions=[{"type": "Ready", "status": "True"}])
    other = _pod("web-1", labels={"app": "web"}, containerStatuses=[{"name": "web", "state": {"waiting": {
        "reason": "ErrImagePull"}}}])
    unhealthy = {"reason": "Unhealthy", "message": "Readiness probe failed: HTTP probe failed with statuscode: 503",
                 "involvedObject": {"kind": "Pod", "name": "api-3", "namespace": NS}}
    line = why_not_ready(_deployment(readyReplicas=1, availableReplicas=1),
                         [pull, crash, probing, ready, other], [unhealthy])
    assert line == (f"Deployment {NS}/api: 1/2 ready, 2 updated, 1 available; "
                    'pod api-1: ImagePullBackOff: container api: Back-off pulling image "api:9"; '
                    "pod api-2: CrashLoopBackOff: container api (4 restarts, last exit Error 2); "
                    "pod api-3: probe failing: Readiness probe failed: HTTP probe failed with statuscode: 503")


def test_without_pods_the_counts_and_the_unobserved_generation_say_why():
    line = why_not_ready(_deployment(observedGeneration=1, updatedReplicas=0, replicas=2), [], [])
    assert line == (f"Deployment {NS}/api: 2/2 ready, 0 updated, 2 available, 2 old pending termination, "
                    "generation 2 not yet observed (at 1)")


def test_only_real_applies_of_workloads_are_waited_for():
    def rec(kind: str, dry_run: bool = False) -> ApplyRecord:
        return ApplyRecord(phase="p", file="f", document=0, kind=kind, api_version="apps/v1", namespace=NS,
                           name="x", outcome="created", dry_run=dry_run)
    refs = refs_of_records([rec("Deployment"), rec("ConfigMap"), rec("StatefulSet", dry_run=True), rec("DaemonSet")])
    assert refs == [WorkloadRef("Deployment", NS, "x"), WorkloadRef("DaemonSet", NS, "x")]


# -- against the sim -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SimCluster, Any]]:
    home: Path = tmp_path_factory.mktemp("rollout")
    with SimCluster(kubeconfig=home / "kubeconfig", speed=10, clock_start=TRADING_DAY_START, nodes=2,
                    node_type="n2-standard-8") as sim:
        _, client = load_target(kubeconfig=sim.kubeconfig, context="eafix-sim")
        yield sim, client
        client.close()


def _create(live: tuple[SimCluster, Any], name: str, *, cpu: str = "50m",
            annotations: dict[str, str] | None = None) -> WorkloadRef:
    from kubernetes import client

    sim, api = live
    container = {"name": "main", "image": "registry.example/app:1.0",
                 "resources": {"requests": {"cpu": cpu, "memory": "64Mi"}}}
    body: dict[str, Any] = {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": NS},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}, "annotations": annotations or {}},
                              "spec": {"containers": [container]}}}}
    apps: Any = client.AppsV1Api(api)  # the client's stubs want a V1Deployment; it sends a dict as is
    apps.create_namespaced_deployment(NS, body)
    sim.settle()  # scheduled (or refused) and synced by the kubelet before the 1 s waits start
    return WorkloadRef("Deployment", NS, name)


@pytest.mark.sim
def test_a_healthy_deployment_rolls_out_with_a_text_progress_bar(live, capsys):
    api = live[1]
    ref = _create(live, "healthy")
    hook = waiter(api, timeout=20, poll_interval=0.1)
    record = ApplyRecord(phase="trading", file="d.yaml", document=0, kind="Deployment", api_version="apps/v1",
                         namespace=NS, name="healthy", outcome="created", dry_run=False)
    hook("trading", [record])
    err = capsys.readouterr().err
    assert "rollout trading" in err and "1/1" in err     # tqdm's plain bar on a non-terminal stderr
    wait_for(api, [ref], timeout=1, progress=False, poll_interval=0.1)   # ready stays ready
    assert capsys.readouterr().err == ""


@pytest.mark.sim
def test_an_image_that_cannot_be_pulled_times_out_naming_the_pull_error(live):
    api = live[1]
    ref = _create(live, "no-image", annotations={FAULT_ANNOTATION: "ErrImagePull"})
    with pytest.raises(RolloutTimeout) as caught:
        wait_for(api, [ref], timeout=1, progress=False, poll_interval=0.1)
    assert isinstance(caught.value, ClusterError)
    lines = str(caught.value).splitlines()
    assert lines[0] == "rollout not finished within 1 s: 1 workload(s) not ready"
    assert lines[1].startswith(f"Deployment {NS}/no-image: 0/1 ready")
    assert "pod no-image-" in lines[1]
    assert "ErrImagePull: container main" in lines[1] or "ImagePullBackOff: container main" in lines[1]


@pytest.mark.sim
def test_a_deployment_too_big_for_the_nodes_times_out_with_the_schedulers_message(live):
    api = live[1]
    ref = _create(live, "too-big", cpu="500")
    missing = WorkloadRef("Deployment", NS, "never-applied")
    with pytest.raises(RolloutTimeout) as caught:
        wait_for(api, [ref, missing], timeout=1, progress=False, poll_interval=0.1)
    lines = caught.value.lines
    assert len(lines) == 2
    assert f"Deployment {NS}/too-big: 0/1 ready" in lines[0]
    assert "Pending: Unschedulable: 0/2 nodes are available: 2 Insufficient cpu." in lines[0]
    assert lines[1] == f"Deployment {NS}/never-applied: not found"


def test_the_wait_looks_again_soon_then_backs_off_to_the_poll_interval(monkeypatch):
    from eafix_capacity.cluster import rollout

    rounds = {"n": 0}
    ready = {"kind": "Deployment", "metadata": {"name": "x", "namespace": NS, "generation": 1},
             "spec": {"replicas": 1}, "status": {"observedGeneration": 1, "replicas": 1, "updatedReplicas": 1,
                                                 "readyReplicas": 1, "availableReplicas": 1}}

    def deployments() -> list[dict[str, Any]]:
        rounds["n"] += 1
        return [ready if rounds["n"] > 5 else {**ready, "status": {}}]

    monkeypatch.setattr(rollout, "_list_calls", lambda _: {"Deployment": deployments})
    now, slept = [0.0], []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    wait_for(object(), [WorkloadRef("Deployment", NS, "x")], timeout=60, progress=False, poll_interval=0.5,
             clock=lambda: now[0], sleep=sleep)
    assert slept == [0.1, 0.2, 0.4, 0.5, 0.5] and rounds["n"] == 6
