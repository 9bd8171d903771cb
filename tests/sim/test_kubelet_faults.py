"""Probe delays and injected faults play out on the sim clock as on a real kubelet.

Readiness after ``initialDelaySeconds`` (and ``kubectl wait`` following it), ErrImagePull then
ImagePullBackOff, CrashLoopBackOff with the real restart back-off, readiness that never
passes, an OOM kill when the usage model drives memory above the limit, a rollout that stalls
into ProgressDeadlineExceeded, ``minReadySeconds``; the pure state machine and the faults file's
validation below them. One sim for the module, its clock frozen (only ``clock.advance`` moves it).
"""
from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Iterator

import pytest
from kubernetes import client, config

from eafix_capacity.errors import InputError
from eafix_capacity.sim import cli
from eafix_capacity.sim.cluster import SimCluster
from eafix_capacity.sim.controllers.containers import (Fault, OomEpisode, Probe, container_state, go_duration,
                                                       probe_pass_time, pull_failures, restart_loop)
from eafix_capacity.sim.faults import parse_faults
from eafix_capacity.sim.testing import run_kubectl
from eafix_capacity.sim.usage_model import constant_model

NS = "faults"
FAULTS = f"""
faults:
  - namespace: {NS}
    selector: {{app: crash}}
    fault: CrashLoopBackOff
  - namespace: {NS}
    selector: app in (unready)
    container: web
    fault: ReadinessFailure
"""


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimCluster]:
    d = tmp_path_factory.mktemp("faults")
    (d / "faults.yaml").write_text(FAULTS)
    with SimCluster(kubeconfig=d / "kubeconfig", faults=d / "faults.yaml") as s:
        s.clock.set_speed(0)
        kubectl(s, "create", "namespace", NS)
        yield s


def kubectl(sim: SimCluster, *args: str, ok: bool = True, stdin: str | None = None) -> subprocess.CompletedProcess:
    return run_kubectl(sim, *args, cache_dir=Path(str(sim.kubeconfig)).parent / "kube-cache", check=ok,
                       stdin=stdin)


def core(sim: SimCluster) -> client.CoreV1Api:
    return client.CoreV1Api(config.new_client_from_config(config_file=str(sim.kubeconfig)))


def deployment(name: str, *, probe: dict | None = None, annotations: dict | None = None, memory: str | None = None,
               **spec: object) -> str:
    container: dict = {"name": "web", "image": "nginx:1.27"}
    if probe:
        container["readinessProbe"] = probe
    if memory:
        container["resources"] = {"requests": {"memory": memory}, "limits": {"memory": memory}}
    meta: dict = {"labels": {"app": name}}
    if annotations:
        meta["annotations"] = annotations
    return json.dumps({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": NS},
                       "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                                "template": {"metadata": meta, "spec": {"containers": [container]}}, **spec}})


def start(sim: SimCluster, name: str, **kw: object) -> None:
    kubectl(sim, "apply", "-f", "-", stdin=deployment(name, **kw))  # type: ignore[arg-type]
    sim.settle()


def pod(sim: SimCluster, app: str) -> client.V1Pod:
    pods = core(sim).list_namespaced_pod(NS, label_selector=f"app={app}").items
    assert len(pods) == 1, [p.metadata.name for p in pods]
    return pods[0]


def ready(p: client.V1Pod) -> client.V1PodCondition:
    return next(c for c in p.status.conditions if c.type == "Ready")


def events(sim: SimCluster, p: client.V1Pod) -> list[tuple[str, str, str]]:
    evs = core(sim).list_namespaced_event(NS, field_selector=f"involvedObject.name={p.metadata.name}").items
    return [(e.type, e.reason, e.message) for e in evs]


def advance(sim: SimCluster, seconds: float) -> None:
    sim.clock.advance(seconds)
    sim.settle()


# --- through kubectl and the official client -----------------------------------------------------


def test_readiness_probe_delays_ready_and_kubectl_wait_follows(sim):
    start(sim, "probe", probe={"httpGet": {"path": "/", "port": 80}, "initialDelaySeconds": 20, "periodSeconds": 10})
    p = pod(sim, "probe")
    assert p.status.phase == "Running"
    assert (ready(p).status, ready(p).reason, ready(p).message) == \
        ("False", "ContainersNotReady", "containers with unready status: [web]")
    cr = next(c for c in p.status.conditions if c.type == "ContainersReady")
    assert (cr.status, cr.reason) == ("False", "ContainersNotReady")
    assert p.status.container_statuses[0].ready is False and p.status.container_statuses[0].started is True
    waited = kubectl(sim, "wait", "--for=condition=Ready", "pod", "-l", "app=probe", "-n", NS, "--timeout=1s",
                     ok=False)
    assert waited.returncode != 0 and "timed out waiting for the condition" in waited.stderr
    advance(sim, 19)
    assert ready(pod(sim, "probe")).status == "False"
    advance(sim, 1)  # the first probe tick at or after initialDelaySeconds
    p = pod(sim, "probe")
    assert ready(p).status == "True" and p.status.container_statuses[0].ready is True
    out = kubectl(sim, "wait", "--for=condition=Ready", "pod", "-l", "app=probe", "-n", NS, "--timeout=5s")
    assert "condition met" in out.stdout


def test_image_pull_failure_then_back_off_and_stalled_rollout(sim):
    start(sim, "pull", annotations={"sim.eafix.io/fault": "ErrImagePull"}, progressDeadlineSeconds=60)
    p = pod(sim, "pull")
    w = p.status.container_statuses[0].state.waiting
    missing = ('rpc error: code = NotFound desc = failed to pull and unpack image "docker.io/library/nginx:1.27": '
               'failed to resolve reference "docker.io/library/nginx:1.27": docker.io/library/nginx:1.27: not found')
    assert (p.status.phase, w.reason, w.message) == ("Pending", "ErrImagePull", missing)
    advance(sim, 20)  # pulls at 0 and 10 failed; 20 is inside the 20 s back-off
    p = pod(sim, "pull")
    w = p.status.container_statuses[0].state.waiting
    assert (w.reason, w.message) == \
        ("ImagePullBackOff", f'Back-off pulling image "nginx:1.27": ErrImagePull: {missing}')
    evs = events(sim, p)
    assert ("Warning", "Failed", f'Failed to pull image "nginx:1.27": {missing}') in evs
    assert ("Warning", "Failed", "Error: ErrImagePull") in evs
    assert ("Normal", "BackOff", 'Back-off pulling image "nginx:1.27"') in evs
    assert ("Warning", "Failed", "Error: ImagePullBackOff") in evs
    advance(sim, 10)  # 30: the next pull, failing again
    assert pod(sim, "pull").status.container_statuses[0].state.waiting.reason == "ErrImagePull"
    advance(sim, 31)  # no progress for more than progressDeadlineSeconds
    out = kubectl(sim, "rollout", "status", "deployment/pull", "-n", NS, "--timeout=5s", ok=False)
    assert out.returncode != 0
    assert 'error: deployment "pull" exceeded its progress deadline' in out.stderr


def test_crash_loop_restarts_at_the_real_back_off(sim):
    start(sim, "crash")
    p = pod(sim, "crash")
    cs = p.status.container_statuses[0]
    uid = p.metadata.uid
    assert p.status.phase == "Running" and ready(p).status == "False"
    assert cs.restart_count == 1 and cs.ready is False
    assert (cs.state.waiting.reason, cs.state.waiting.message) == \
        ("CrashLoopBackOff", f"back-off 10s restarting failed container=web pod={p.metadata.name}_{NS}({uid})")
    assert (cs.last_state.terminated.exit_code, cs.last_state.terminated.reason) == (1, "Error")
    advance(sim, 10)
    cs = pod(sim, "crash").status.container_statuses[0]
    assert cs.restart_count == 2 and "back-off 20s restarting" in cs.state.waiting.message
    assert (cs.last_state.terminated.finished_at - p.status.start_time).total_seconds() == 10
    advance(sim, 20)
    cs = pod(sim, "crash").status.container_statuses[0]
    assert cs.restart_count == 3 and "back-off 40s restarting" in cs.state.waiting.message
    assert ("Warning", "BackOff", f"Back-off restarting failed container web in pod {p.metadata.name}_{NS}({uid})") \
        in events(sim, p)
    table = kubectl(sim, "get", "pod", p.metadata.name, "-n", NS, "--no-headers").stdout.split()
    assert table[1:4] == ["0/1", "CrashLoopBackOff", "3"], table


def test_readiness_that_never_passes(sim):
    start(sim, "unready", probe={"httpGet": {"path": "/healthz", "port": 8080}, "periodSeconds": 5})
    advance(sim, 600)
    p = pod(sim, "unready")
    assert p.status.phase == "Running" and ready(p).status == "False"
    assert p.status.container_statuses[0].restart_count == 0
    assert ("Warning", "Unhealthy", "Readiness probe failed: HTTP probe failed with statuscode: 503") in events(sim, p)


def test_oom_kill_when_the_usage_model_drives_memory_over_the_limit(sim):
    start(sim, "hungry", memory="256Mi")
    assert pod(sim, "hungry").status.container_statuses[0].restart_count == 0
    normal = sim.controllers.model
    sim.controllers.set_usage_model(constant_model(0.1, memory=1.5))  # 384Mi wanted, 256Mi allowed
    try:
        sim.settle()
        cs = pod(sim, "hungry").status.container_statuses[0]
        assert (cs.last_state.terminated.reason, cs.last_state.terminated.exit_code) == ("OOMKilled", 137)
        assert cs.restart_count == 1 and cs.state.waiting.reason == "CrashLoopBackOff"
        advance(sim, 10)
        assert pod(sim, "hungry").status.container_statuses[0].restart_count == 2
    finally:
        sim.controllers.set_usage_model(normal)
        sim.settle()
    advance(sim, 40)  # memory back under the limit at the restart: that run goes on
    cs = pod(sim, "hungry").status.container_statuses[0]
    assert cs.state.running is not None and cs.ready is True
    assert cs.restart_count == 2 and cs.last_state.terminated.reason == "OOMKilled"


def test_min_ready_seconds_delays_availability(sim):
    start(sim, "slow", minReadySeconds=30)
    apps = client.AppsV1Api(config.new_client_from_config(config_file=str(sim.kubeconfig)))
    st = apps.read_namespaced_deployment_status("slow", NS).status
    assert (st.ready_replicas, st.available_replicas) == (1, None)
    advance(sim, 31)
    assert apps.read_namespaced_deployment_status("slow", NS).status.available_replicas == 1


def test_unknown_fault_annotation_is_ignored_with_a_warning(sim):
    start(sim, "typo", annotations={"sim.eafix.io/fault": "CrashLoop"})
    p = pod(sim, "typo")
    assert p.status.phase == "Running" and ready(p).status == "True"
    assert ("Warning", "SimFaultIgnored", "sim.eafix.io/fault: unknown fault 'CrashLoop'; one of ErrImagePull, "
            "CrashLoopBackOff, ReadinessFailure") in events(sim, p)


def test_sim_up_refuses_a_bad_faults_file(tmp_path, capsys):
    bad = tmp_path / "faults.yaml"
    bad.write_text("faults:\n  - namespace: x\n    fault: ErrImagePul\n")
    assert cli.main(["sim", "up", "--faults", str(bad), "--kubeconfig", str(tmp_path / "kc")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"error: {bad}: faults[0].fault: unknown fault 'ErrImagePul'; one of ErrImagePull, "
                   "CrashLoopBackOff, ReadinessFailure")
    assert not (tmp_path / "kc").exists()


# --- the faults file ----------------------------------------------------------------------------------


@pytest.mark.parametrize("text, where", [
    ("faults: {}\n", "faults: must be a list"),
    ("other: 1\n", "unknown top-level content"),
    ("faults:\n  - fault: CrashLoopBackOff\n", "faults[0].namespace: required"),
    ("faults:\n  - namespace: a\n    fault: CrashLoopBackOff\n    exitCode: 0\n",
     "faults[0].exitCode: must be a failing exit code 0; an integer from 1 to 255"),
    ("faults:\n  - namespace: a\n    fault: ErrImagePull\n    exitCode: 2\n",
     "faults[0].exitCode: does not apply to fault ErrImagePull 2"),
    ("faults:\n  - namespace: a\n    fault: ReadinessFailure\n    selector: 'app in (x'\n",
     "faults[0].selector: not a label selector"),
    ("faults:\n  - namespace: a\n    fault: ReadinessFailure\n    contianer: web\n",
     "faults[0].contianer: unknown field 'contianer'; one of namespace, selector, container"),
    ("faults: [\n", "not valid YAML"),
])
def test_bad_faults_files_are_refused_with_one_line(text, where):
    with pytest.raises(InputError) as e:
        parse_faults(text, source="f.yaml")
    msg = str(e.value)
    assert msg.startswith("f.yaml: ") and where in msg and "\n" not in msg


def test_faults_file_matches_by_namespace_and_selector():
    rules = parse_faults(FAULTS)
    pod_of = lambda ns, app: {"metadata": {"namespace": ns, "labels": {"app": app}}}  # noqa: E731
    assert [r.fault.kind for r in rules if r.matches(pod_of(NS, "crash"))] == ["CrashLoopBackOff"]
    assert [r.container for r in rules if r.matches(pod_of(NS, "unready"))] == ["web"]
    assert not any(r.matches(pod_of("other", "crash")) for r in rules)


# --- the pure state machine ---------------------------------------------------------------------------


def test_restart_back_off_doubles_to_five_minutes():
    starts = []
    for t in range(0, 2000):
        st = restart_loop(float(t), run_seconds=0.0, exit_code=1, reason="Error", container="c", pod_text="p")
        if not starts or st.restart_count != starts[-1][1]:
            starts.append((t, st.restart_count))
    assert starts[:8] == [(0, 1), (10, 2), (30, 3), (70, 4), (150, 5), (310, 6), (610, 7), (910, 8)]
    assert [go_duration(s) for s in (10, 80, 160, 300)] == ["10s", "1m20s", "2m40s", "5m0s"]
    far = restart_loop(86_400.0, run_seconds=0.0, exit_code=1, reason="Error")
    assert far.restart_count == 7 + (86_400 - 610) // 300 and "back-off 5m0s" in far.message


def test_a_long_run_forgets_the_back_off():
    # Running longer than twice the cap between exits: every exit restarts at once (flowcontrol expiry).
    st = restart_loop(2_500.0, run_seconds=700.0, exit_code=1, reason="Error")
    assert (st.state, st.restart_count, st.since) == ("running", 3, 2_100.0)


def test_image_pulls_back_off_and_show_err_image_pull_between():
    seen = [(t, pull_failures(float(t), image="x", message="m").reason) for t in (0, 15, 20, 30, 45, 70, 80)]
    assert seen == [(0, "ErrImagePull"), (15, "ErrImagePull"), (20, "ImagePullBackOff"), (30, "ErrImagePull"),
                    (45, "ImagePullBackOff"), (70, "ErrImagePull"), (80, "ImagePullBackOff")]


def test_probe_timing():
    assert probe_pass_time(Probe(0, 10, 1), origin=0, after=0, immediate=True) == 0
    assert probe_pass_time(Probe(15, 10, 1), origin=0, after=0, immediate=True) == 20
    assert probe_pass_time(Probe(10, 10, 3), origin=0, after=0, immediate=True) == 30
    spec = {"name": "c", "startupProbe": {"periodSeconds": 5, "initialDelaySeconds": 12},
            "readinessProbe": {"periodSeconds": 10}}
    assert container_state(spec, fault=None, elapsed=14.9).started is False
    st = container_state(spec, fault=None, elapsed=15)
    assert (st.started, st.ready) == (True, True)
    assert container_state({"name": "c"}, fault=Fault("ReadinessFailure"), elapsed=99).ready is True


def test_oom_episode_ends_and_the_count_stays():
    st = container_state({"name": "c"}, fault=None, elapsed=500, oom=(OomEpisode(100, 250),))
    assert (st.state, st.restart_count, st.last.reason if st.last else None) == ("running", 5, "OOMKilled")
    # 650 s after the last restart the back-off has expired: killed at 900 (restart at once), 910, 930, 970.
    again = container_state({"name": "c"}, fault=None, elapsed=1000, oom=(OomEpisode(100, 250), OomEpisode(900)))
    assert (again.restart_count, again.reason, again.next_change) == (9, "CrashLoopBackOff", 1050)
    assert "back-off 1m20s restarting" in again.message
