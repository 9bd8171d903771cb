"""Jobs, CronJobs and EndpointSlices on the sim, through the real kubectl, on the sim clock."""
from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from eafix_capacity.sim import cron
from eafix_capacity.sim.cluster import SimCluster
from eafix_capacity.sim.controllers.cronjob import job_name
from eafix_capacity.sim.controllers.endpointslice import MAX_ENDPOINTS_PER_SLICE, desired_slices, resolve_port
from eafix_capacity.sim.controllers.job import wanted_active
from eafix_capacity.sim.testing import kubectl_on

pytestmark = [pytest.mark.sim, pytest.mark.kubectl]


@pytest.fixture(scope="module")
def sim(frozen_sim_module: SimCluster) -> SimCluster:
    return frozen_sim_module


kubectl = kubectl_on


def get(sim: SimCluster, *args: str) -> dict:
    return json.loads(kubectl(sim, "get", "-o", "json", *args).stdout)


def advance(sim: SimCluster, seconds: float) -> None:
    assert sim.clock is not None
    sim.settle()
    sim.clock.advance(seconds)
    sim.settle()


def namespace(sim: SimCluster, name: str) -> str:
    kubectl(sim, "create", "namespace", name)
    return name


JOB = """
apiVersion: batch/v1
kind: Job
metadata: {{name: {name}, namespace: {ns}}}
spec:
  completions: {completions}
  parallelism: {parallelism}
  backoffLimit: {backoff}
  template:
    metadata:
      annotations: {{sim.eafix.io/run-seconds: "{run}", sim.eafix.io/exit-code: "{code}"}}
    spec:
      restartPolicy: Never
      containers: [{{name: work, image: "busybox:1.36", resources: {{requests: {{cpu: 10m, memory: 16Mi}}}}}}]
"""


def job(name: str, ns: str, *, completions: int = 1, parallelism: int = 1, backoff: int = 6, run: float = 30,
        code: int = 0) -> str:
    return JOB.format(name=name, ns=ns, completions=completions, parallelism=parallelism, backoff=backoff, run=run,
                      code=code)


# --- pure parts -----------------------------------------------------------------------------------


def test_wanted_active_pods_follow_parallelism_and_the_completions_left() -> None:
    assert wanted_active({"parallelism": 2, "completions": 5}, succeeded=0) == 2
    assert wanted_active({"parallelism": 2, "completions": 5}, succeeded=4) == 1
    assert wanted_active({"parallelism": 2, "completions": 5}, succeeded=5) == 0
    assert wanted_active({"parallelism": 3, "completions": 5, "suspend": True}, succeeded=0) == 0
    assert wanted_active({"parallelism": 3}, succeeded=0) == 3  # a work queue: until one succeeds
    assert wanted_active({"parallelism": 3}, succeeded=1) == 0


def test_cron_schedules_parse_and_refuse_as_robfig_cron_does() -> None:
    s = cron.parse("*/15 9-17 * * MON-FRI")
    wednesday_6am = datetime(2026, 1, 14, 6, 0, tzinfo=timezone.utc)
    assert s.next_after(wednesday_6am) == datetime(2026, 1, 14, 9, 0, tzinfo=timezone.utc)
    assert s.latest_at_or_before(wednesday_6am) == datetime(2026, 1, 13, 17, 45, tzinfo=timezone.utc)
    saturday = datetime(2026, 1, 17, 12, 0, tzinfo=timezone.utc)
    assert s.next_after(saturday) == datetime(2026, 1, 19, 9, 0, tzinfo=timezone.utc)
    # day of month and day of week both restricted: either matches (robfig's star bit rule)
    either = cron.parse("0 0 13 * 5")
    assert either.next_after(datetime(2026, 2, 1, tzinfo=timezone.utc)) == datetime(2026, 2, 6, tzinfo=timezone.utc)
    assert cron.parse("@hourly").next_after(wednesday_6am) == datetime(2026, 1, 14, 7, 0, tzinfo=timezone.utc)
    for bad, message in [("bad", "expected exactly 5 fields, found 1: [bad]"),
                         ("61 * * * *", "end of range (61) above maximum (59): 61"),
                         ("*/0 * * * *", "step of range should be a positive number: */0"),
                         ("@often", "unrecognized descriptor: @often"),
                         ("x * * * *", 'failed to parse int from x: strconv.Atoi: parsing "x": invalid syntax')]:
        with pytest.raises(cron.CronError) as e:
            cron.parse(bad)
        assert str(e.value) == message


def test_most_recent_counts_missed_times_up_to_the_warning_limit() -> None:
    start = datetime(2026, 1, 14, 6, 0, tzinfo=timezone.utc)
    every_minute = cron.parse("* * * * *")
    assert cron.most_recent(every_minute, since=start, now=start.replace(minute=3)) == (start.replace(minute=3), 3)
    latest, missed = cron.most_recent(every_minute, since=start, now=start.replace(hour=12))
    assert latest == start.replace(hour=12) and missed == cron.MAX_MISSED + 1
    assert cron.most_recent(every_minute, since=start, now=start.replace(second=30)) == (None, 0)


def test_target_ports_resolve_by_number_and_by_container_port_name() -> None:
    pod = {"spec": {"containers": [{"ports": [{"name": "http", "containerPort": 8080},
                                              {"name": "dns", "containerPort": 53, "protocol": "UDP"}]}]}}
    assert resolve_port({"port": 80, "targetPort": 9090}, pod) == 9090
    assert resolve_port({"port": 80}, pod) == 80
    assert resolve_port({"port": 80, "targetPort": "http"}, pod) == 8080
    assert resolve_port({"port": 53, "targetPort": "dns"}, pod) is None  # TCP by default: no TCP port named dns
    assert resolve_port({"port": 53, "targetPort": "dns", "protocol": "UDP"}, pod) == 53


def test_slices_hold_at_most_a_hundred_endpoints() -> None:
    svc = {"spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080}]}}
    pods = [{"metadata": {"name": f"p{i:03}", "namespace": "ns", "uid": str(i)},
             "spec": {"nodeName": "n"}, "status": {"podIP": f"10.0.{i // 250}.{i % 250}", "conditions": []}}
            for i in range(MAX_ENDPOINTS_PER_SLICE * 2 + 1)]
    slices = desired_slices(svc, pods, {"n": "z"})
    assert [len(e) for _, e in slices] == [100, 100, 1]
    assert slices[0][1][0]["conditions"] == {"ready": False, "serving": False, "terminating": False}
    assert slices[0][1][0]["zone"] == "z"
    assert desired_slices(svc, [], {}) == [([], [])]


# --- through kubectl ------------------------------------------------------------------------------


def test_a_job_runs_to_completion_on_the_sim_clock(sim: SimCluster) -> None:
    ns = namespace(sim, "job-complete")
    kubectl(sim, "apply", "-f", "-", stdin=job("batch", ns, completions=3, parallelism=2, run=30))
    advance(sim, 0)
    live = get(sim, "job", "batch", "-n", ns)
    assert live["spec"]["selector"]["matchLabels"]["batch.kubernetes.io/controller-uid"] == live["metadata"]["uid"]
    pods = get(sim, "pods", "-n", ns, "-l", "batch.kubernetes.io/job-name=batch")["items"]
    assert len(pods) == 2 and {p["status"]["phase"] for p in pods} == {"Running"}
    assert live["status"]["active"] == 2 and "succeeded" not in live["status"]
    wait = kubectl(sim, "wait", "--for=condition=complete", "job/batch", "-n", ns, "--timeout=1s", ok=False)
    assert wait.returncode != 0
    advance(sim, 31)
    advance(sim, 31)
    done = get(sim, "job", "batch", "-n", ns)
    assert done["status"]["succeeded"] == 3 and "active" not in done["status"]
    assert [(c["type"], c["reason"]) for c in done["status"]["conditions"]] == [
        ("SuccessCriteriaMet", "CompletionsReached"), ("Complete", "CompletionsReached")]
    assert done["status"]["completionTime"]
    out = kubectl(sim, "wait", "--for=condition=complete", "job/batch", "-n", ns, "--timeout=5s")
    assert "condition met" in out.stdout
    pods = get(sim, "pods", "-n", ns)["items"]
    assert len(pods) == 3 and {p["status"]["phase"] for p in pods} == {"Succeeded"}
    term = pods[0]["status"]["containerStatuses"][0]["state"]["terminated"]
    assert (term["exitCode"], term["reason"]) == (0, "Completed")
    table = kubectl(sim, "get", "job", "batch", "-n", ns).stdout.split("\n")
    assert table[0].split()[:3] == ["NAME", "STATUS", "COMPLETIONS"] and table[1].split()[1:3] == ["Complete", "3/3"]


def test_a_failing_job_stops_at_its_backoff_limit(sim: SimCluster) -> None:
    ns = namespace(sim, "job-fail")
    kubectl(sim, "apply", "-f", "-", stdin=job("flaky", ns, backoff=1, run=5, code=2))
    advance(sim, 0)
    for _ in range(3):
        advance(sim, 6)
    failed = get(sim, "job", "flaky", "-n", ns)
    assert failed["status"]["failed"] == 2
    assert [(c["type"], c["reason"], c["message"]) for c in failed["status"]["conditions"]] == [
        ("FailureTarget", "BackoffLimitExceeded", "Job has reached the specified backoff limit"),
        ("Failed", "BackoffLimitExceeded", "Job has reached the specified backoff limit")]
    pods = get(sim, "pods", "-n", ns)["items"]
    assert {p["status"]["phase"] for p in pods} == {"Failed"}
    assert pods[0]["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 2
    out = kubectl(sim, "wait", "--for=condition=failed", "job/flaky", "-n", ns, "--timeout=5s")
    assert "condition met" in out.stdout


def test_a_cronjob_creates_jobs_on_schedule_and_keeps_its_history(sim: SimCluster) -> None:
    ns = namespace(sim, "cron")
    manifest = f"""
apiVersion: batch/v1
kind: CronJob
metadata: {{name: tick, namespace: {ns}}}
spec:
  schedule: "*/5 * * * *"
  successfulJobsHistoryLimit: 2
  jobTemplate:
    spec:
      template:
        metadata: {{annotations: {{sim.eafix.io/run-seconds: "10"}}}}
        spec:
          restartPolicy: OnFailure
          containers: [{{name: tick, image: "busybox:1.36"}}]
"""
    kubectl(sim, "apply", "-f", "-", stdin=manifest)
    advance(sim, 0)
    assert get(sim, "jobs", "-n", ns)["items"] == []
    assert sim.clock is not None
    runs = []
    for _ in range(4):
        now = sim.clock.now()
        nxt = cron.parse("*/5 * * * *").next_after(now)
        assert nxt is not None
        advance(sim, (nxt - now).total_seconds() + 1)
        runs.append(job_name("tick", nxt))
        advance(sim, 11)
    jobs = sorted(j["metadata"]["name"] for j in get(sim, "jobs", "-n", ns)["items"])
    assert jobs == sorted(runs[-2:])
    cj = get(sim, "cronjob", "tick", "-n", ns)
    assert cj["spec"]["concurrencyPolicy"] == "Allow" and cj["status"]["lastScheduleTime"]
    assert cj["status"].get("lastSuccessfulTime") and "active" not in cj["status"]
    one = get(sim, "job", runs[-1], "-n", ns)
    assert one["metadata"]["ownerReferences"][0]["kind"] == "CronJob"
    assert one["metadata"]["annotations"]["batch.kubernetes.io/cronjob-scheduled-timestamp"]


def test_a_cronjob_with_a_bad_schedule_is_refused(sim: SimCluster) -> None:
    manifest = """
apiVersion: batch/v1
kind: CronJob
metadata: {name: broken, namespace: default}
spec:
  schedule: "every five minutes"
  jobTemplate: {spec: {template: {spec: {restartPolicy: Never, containers: [{name: c, image: "busybox:1.36"}]}}}}
"""
    out = kubectl(sim, "apply", "-f", "-", stdin=manifest, ok=False)
    assert out.returncode == 1
    assert 'The CronJob "broken" is invalid: spec.schedule: Invalid value: "every five minutes": ' \
           "expected exactly 5 fields, found 3: [every five minutes]" in out.stderr


def test_services_get_endpointslices_and_endpoints_for_ready_pods(sim: SimCluster) -> None:
    ns = namespace(sim, "slices")
    manifest = f"""
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web, namespace: {ns}}}
spec:
  replicas: 3
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      containers:
      - name: web
        image: "nginx:1.27"
        ports: [{{name: http, containerPort: 8080}}]
        resources: {{requests: {{cpu: 10m, memory: 16Mi}}}}
---
apiVersion: v1
kind: Service
metadata: {{name: web, namespace: {ns}}}
spec:
  selector: {{app: web}}
  ports: [{{name: http, port: 80, targetPort: http}}]
"""
    kubectl(sim, "apply", "-f", "-", stdin=manifest)
    advance(sim, 0)
    slices = get(sim, "endpointslices", "-n", ns, "-l", "kubernetes.io/service-name=web")["items"]
    assert len(slices) == 1
    s = slices[0]
    assert s["addressType"] == "IPv4" and s["ports"] == [{"name": "http", "port": 8080, "protocol": "TCP"}]
    assert s["metadata"]["ownerReferences"][0]["kind"] == "Service"
    pods = {p["metadata"]["name"]: p for p in get(sim, "pods", "-n", ns)["items"]}
    assert sorted(e["targetRef"]["name"] for e in s["endpoints"]) == sorted(pods)
    for e in s["endpoints"]:
        pod = pods[e["targetRef"]["name"]]
        assert e["addresses"] == [pod["status"]["podIP"]] and e["nodeName"] == pod["spec"]["nodeName"]
        assert e["conditions"]["ready"] is True
    ep = get(sim, "endpoints", "web", "-n", ns)
    assert sorted(a["ip"] for a in ep["subsets"][0]["addresses"]) == sorted(p["status"]["podIP"] for p in pods.values())
    table = kubectl(sim, "get", "endpointslices", "-n", ns).stdout.split("\n")
    assert table[0].split() == ["NAME", "ADDRESSTYPE", "PORTS", "ENDPOINTS", "AGE"] and "8080" in table[1]
    kubectl(sim, "scale", "deployment/web", "-n", ns, "--replicas=1")
    advance(sim, 0)
    advance(sim, 60)  # past any graceful termination
    s = get(sim, "endpointslices", "-n", ns)["items"][0]
    assert len([e for e in s["endpoints"] if e["conditions"]["ready"]]) == 1


def test_a_job_whose_pods_would_restart_forever_is_refused(sim: SimCluster) -> None:
    manifest = """
apiVersion: batch/v1
kind: Job
metadata: {name: forever, namespace: default}
spec:
  template: {spec: {containers: [{name: c, image: "busybox:1.36"}]}}
"""
    out = kubectl(sim, "apply", "-f", "-", stdin=manifest, ok=False)
    assert out.returncode == 1
    assert 'The Job "forever" is invalid: spec.template.spec.restartPolicy: Unsupported value: "Always": ' \
           'supported values: "OnFailure", "Never"' in out.stderr
