"""The sign-off's gates on hand-computed cases: N+1 and N+zone as the kubernetes-mixin rule
(equal is a pass), each usage gate passing and failing on small hand-made frames, too little
data a WARN that says how much there was, the rehearsals on hand-made records, and a rehearsal
that did not run a WARN, never a PASS. Pure: no cluster, no files."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eafix_capacity.catalog import HPA, Catalog, Container, Resources, Service
from eafix_capacity.cluster.livestate import from_objects
from eafix_capacity.cluster.verify import Check
from eafix_capacity.errors import InputError
from eafix_capacity.inputs import PlanParams, plan_from_params
from eafix_capacity.paths import data_file
from eafix_capacity.signoff.gates import (HpaPoint, NodeRoom, PodAsk, capacity_from_live, capacity_from_objects,
                                          capacity_from_plan, headroom_figures, live_gates, n_plus_one, n_plus_zone,
                                          plan_gates, rehearsal_gates, usage_gates)
from eafix_capacity.signoff.policy import POLICY_FILE, Policy, policy_from_mapping
from eafix_capacity.signoff.records import (BlockedEviction, GateResult, Observation, PendingPod, Rehearsal)
from eafix_capacity.usage.samples import Termination
from eafix_capacity.yamlio import load_yaml_file
from usage.frames import typed_frame

MI, GI = 2**20, 2**30
T0 = datetime(2026, 1, 14, 8, 0, tzinfo=timezone.utc)
DEFAULTS = load_yaml_file(data_file(POLICY_FILE))


def policy(**own: Any) -> Policy:
    return policy_from_mapping(own, source="own.yaml", defaults=DEFAULTS)


# a policy that judges small frames: 10 samples over 10 minutes are enough
SMALL = {"min_samples": 10, "min_window": "10m"}


def by_name(gates: list[GateResult]) -> dict[str, GateResult]:
    return {g.name: g for g in gates}


# --- N+1 -----------------------------------------------------------------------------------------

def nodes(*cpus: float, memory: float = 32 * GI, zones: tuple[str | None, ...] | None = None) -> list[NodeRoom]:
    zs = zones or (None,) * len(cpus)
    return [NodeRoom(f"node-{i}", c, memory, zs[i], "n2-standard-8") for i, c in enumerate(cpus)]


def pods(cpu: float, memory: float = GI, n: int = 1) -> list[PodAsk]:
    return [PodAsk(f"pod-{i}", cpu / n, memory / n) for i in range(n)]


def test_n_plus_one_equal_is_a_pass_as_the_mixins_greater_than():
    g = by_name(n_plus_one(nodes(8000, 8000, 8000), pods(16000, n=4)))["n+1:cpu"]
    assert g.verdict == "PASS" and g.group == "capacity"
    assert g.reason == ("n+1 cpu: requests 16.0 cores <= 24.0 allocatable - 8.0 largest node (n2-standard-8): "
                        "0.0 cores left after losing it (0% of the requests)")
    assert (g.figures["requests"], g.figures["allocatable"], g.figures["lost_allocatable"]) == (16000, 24000, 8000)
    assert g.figures["headroom"] == 0 and g.figures["headroom_pct"] == 0


def test_n_plus_one_one_millicore_over_fails():
    g = by_name(n_plus_one(nodes(8000, 8000, 8000), pods(16001, n=3)))["n+1:cpu"]
    assert g.verdict == "FAIL"
    assert g.reason == ("n+1 cpu: requests 16.0 cores > 24.0 allocatable - 8.0 largest node (n2-standard-8): "
                        "cannot lose a node (short by 0.0 cores)")
    assert g.figures["headroom"] == -1


def test_n_plus_one_takes_the_largest_node_per_resource():
    ns = [NodeRoom("small", 4000, 64 * GI), NodeRoom("big", 16000, 16 * GI), NodeRoom("mid", 8000, 32 * GI)]
    gates = by_name(n_plus_one(ns, pods(12000, 48 * GI)))
    # cpu: 28 - 16 (big) = 12 cores left: equal, a pass; memory: 112 - 64 (small) = 48 GiB: equal, a pass
    assert gates["n+1:cpu"].verdict == "PASS" and gates["n+1:cpu"].figures["largest_node"] == "big"
    assert gates["n+1:memory"].verdict == "PASS" and gates["n+1:memory"].figures["largest_node"] == "small"
    assert gates["n+1:memory"].reason.startswith("n+1 memory: requests 48.0 GiB <= 112.0 allocatable - 64.0 "
                                                 "largest node (small)")
    over = by_name(n_plus_one(ns, pods(12000, 48 * GI + 1)))
    assert over["n+1:memory"].verdict == "FAIL" and over["n+1:cpu"].verdict == "PASS"


def test_one_node_or_none_cannot_lose_a_node():
    # the mixin's `and (sum - max) > 0` would keep a one-node cluster quiet; a sign-off says it fails
    one = by_name(n_plus_one(nodes(8000), pods(100)))
    assert one["n+1:cpu"].verdict == "FAIL" and "cannot lose a node" in one["n+1:cpu"].reason
    none = by_name(n_plus_one([], pods(100)))
    assert none["n+1:cpu"].verdict == "FAIL" and none["n+1:cpu"].reason == "n+1 cpu: no nodes: nothing to lose a node from"


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 64_000), st.integers(1, 2**38)), min_size=1, max_size=12),
       st.lists(st.tuples(st.integers(0, 16_000), st.integers(0, 2**35)), max_size=40))
def test_n_plus_one_is_the_mixin_rule(node_sizes, pod_sizes):
    ns = [NodeRoom(f"n{i}", c, m) for i, (c, m) in enumerate(node_sizes)]
    ps = [PodAsk(f"p{i}", c, m) for i, (c, m) in enumerate(pod_sizes)]
    gates = by_name(n_plus_one(ns, ps))
    for k, key in ((0, "n+1:cpu"), (1, "n+1:memory")):
        alloc = [n[k] for n in node_sizes]
        fires = sum(p[k] for p in pod_sizes) - (sum(alloc) - max(alloc)) > 0
        assert gates[key].verdict == ("FAIL" if fires else "PASS")


def test_capacity_from_plain_json_reads_quantities_zones_and_counts_pending_and_running_pods():
    node_objs = [{"metadata": {"name": f"n{i}", "labels": {"topology.kubernetes.io/zone": z,
                                                             "node.kubernetes.io/instance-type": "e2-standard-4"}},
                  "status": {"allocatable": {"cpu": "3920m", "memory": "13Gi", "pods": "110"}}}
                 for i, z in enumerate("abc")]
    pod_objs = [
        {"metadata": {"namespace": "eafix", "name": "run"}, "status": {"phase": "Running"},
         "spec": {"containers": [{"resources": {"requests": {"cpu": "0.5", "memory": "512Mi"}}},
                                 {"resources": {"requests": {"cpu": "100m"}}}],
                  "initContainers": [{"resources": {"requests": {"cpu": "4"}}}]}},
        {"metadata": {"namespace": "eafix", "name": "wait"}, "status": {"phase": "Pending"},
         "spec": {"containers": [{"resources": {"requests": {"cpu": "1", "memory": "1Gi"}}}]}},
        {"metadata": {"namespace": "eafix", "name": "done"}, "status": {"phase": "Succeeded"},
         "spec": {"containers": [{"resources": {"requests": {"cpu": "8"}}}]}},
    ]
    rooms, asks = capacity_from_objects(node_objs, pod_objs)
    assert [(r.cpu_m, r.memory_bytes, r.zone, r.instance_type) for r in rooms] == [(3920, 13 * GI, z, "e2-standard-4")
                                                                                   for z in "abc"]
    # init containers are not in kube_pod_container_resource_requests; a Succeeded pod is not counted
    assert [(a.name, a.cpu_m, a.memory_bytes) for a in asks] == [("eafix/run", 600, 512 * MI),
                                                                 ("eafix/wait", 1000, GI)]
    state = from_objects({"nodes": node_objs, "pods": pod_objs})
    live_rooms, live_asks = capacity_from_live(state)
    assert [(r.cpu_m, r.memory_bytes, r.zone) for r in live_rooms] == [(3920, 13 * GI, None)] * 3
    assert [(a.cpu_m, a.memory_bytes) for a in live_asks] == [(600, 512 * MI), (1000, GI)]


def test_capacity_from_the_plan_is_its_nodes_and_its_pods_with_the_daemonsets():
    plan = plan_from_params(PlanParams())
    rooms, asks = capacity_from_plan(plan)
    assert len(rooms) == plan.nodes and {r.cpu_m for r in rooms} == {plan.node.cpu_m}
    ds = plan.node.daemonset_cpu_m * plan.nodes
    assert sum(a.cpu_m for a in asks) == plan.scenarios["baseline"].requests.cpu_request_m + ds
    assert {g.verdict for g in n_plus_one(rooms, asks)} == {"PASS"}
    alone = plan_from_params(PlanParams(nodes=1))
    assert {g.verdict for g in n_plus_one(*capacity_from_plan(alone))} == {"FAIL"}


def test_headroom_figures_for_the_run_index():
    gates = n_plus_one(nodes(8000, 8000, 8000), pods(10000, 10 * GI))
    gates += n_plus_zone(nodes(8000, 8000, 8000, zones=("a", "b", "c")), pods(10000, 10 * GI), policy=policy())
    # cpu: 16 cores left for 10 requested: 60% more; memory: 64 GiB left for 10: 540%
    assert headroom_figures(gates) == {"cpu_n_plus_1_pct": 60.0, "memory_n_plus_1_pct": 540.0,
                                       "cpu_n_plus_zone_pct": 60.0, "memory_n_plus_zone_pct": 540.0}


# --- N+zone --------------------------------------------------------------------------------------

def test_n_plus_zone_loses_the_largest_zone():
    ns = nodes(8000, 8000, 8000, 4000, zones=("a", "a", "b", "c"))      # zone a: 16 cores of 28
    gates = by_name(n_plus_zone(ns, pods(12000), policy=policy()))
    g = gates["n+zone:cpu"]
    assert g.verdict == "PASS" and g.figures["largest_zone"] == "a"
    assert g.reason.startswith("n+zone cpu: requests 12.0 cores <= 28.0 allocatable - 16.0 largest zone (a, 2 nodes)")
    over = by_name(n_plus_zone(ns, pods(12001), policy=policy()))["n+zone:cpu"]
    assert over.verdict == "FAIL" and over.reason.endswith("cannot lose a zone (short by 0.0 cores)")


def test_n_plus_zone_without_zones_is_left_out_unless_the_policy_must_judge_it():
    assert n_plus_zone(nodes(8000, 8000), pods(1000), policy=policy()) == []
    (g,) = n_plus_zone(nodes(8000, 8000), pods(1000), policy=policy(must_judge=["n+zone"]))
    assert g.verdict == "WARN" and g.name == "n+zone"
    assert g.reason == ("n+zone: no node has a topology.kubernetes.io/zone label: a zone loss was not judged "
                        "(the policy's must_judge lists n+zone)")


def test_n_plus_zone_with_some_nodes_unzoned_or_one_zone_is_a_warn():
    (part,) = n_plus_zone(nodes(8000, 8000, 8000, zones=("a", None, "b")), pods(100), policy=policy())
    assert part.verdict == "WARN" and part.reason.startswith("n+zone: 1 of 3 nodes have no topology.kubernetes.io/zone "
                                                             "label (node-1)")
    (one,) = n_plus_zone(nodes(8000, 8000, zones=("a", "a")), pods(100), policy=policy())
    assert one.verdict == "WARN" and "all 2 nodes are in zone a: a zone loss takes the whole cluster" in one.reason


# --- the plan and the live cluster -------------------------------------------------------------

def test_plan_gates_are_every_gate_of_the_plan():
    plan = plan_from_params(PlanParams(nodes=1))
    gates = plan_gates(plan)
    assert [g.name for g in gates] == [f"plan:{g.name}" for g in plan.gates]
    assert {g.group for g in gates} == {"plan"}
    failed = [g for g in gates if g.verdict == "FAIL"]
    assert failed and {g.name.removeprefix("plan:") for g in failed} == {g.name for g in plan.failed_gates()}
    assert failed[0].reason.startswith(f"plan {failed[0].name.removeprefix('plan:')}: ")


def check(name: str, status: str, subject: str = "eafix", actual: str = "") -> Check:
    return Check(name, subject, status, "expected", actual)  # type: ignore[arg-type]


def test_live_gates_without_a_context():
    assert live_gates(None, policy=policy()) == []
    (g,) = live_gates(None, policy=policy(must_judge=["live"]))
    assert g.verdict == "WARN" and g.reason.startswith("no live cluster: live state not judged")


def test_live_gates_name_the_first_failing_checks_and_count_them():
    checks = [check("node-count", "PASS"), check("workload", "FAIL", "Deployment/risk-manager", "missing"),
              check("pod-restarts", "WARN"), check("pdb", "FAIL", "PodDisruptionBudget/redis", "disruptionsAllowed 0")]
    (g,) = live_gates(checks, policy=policy())
    assert g.verdict == "FAIL" and g.name == "live:verify" and g.group == "live"
    assert g.reason == ("live verify: 2 of 4 checks fail: workload Deployment/risk-manager (missing), "
                        "pdb PodDisruptionBudget/redis (disruptionsAllowed 0); 1 warn")
    (w,) = live_gates([check("a", "PASS"), check("b", "WARN")], policy=policy())
    assert w.verdict == "WARN" and w.reason == "live verify: 1 of 2 checks warn: b eafix"
    (p,) = live_gates([check("a", "PASS")], policy=policy())
    assert p.verdict == "PASS" and p.reason == "live verify: all 1 checks pass"
    (e,) = live_gates([], policy=policy())
    assert e.verdict == "WARN"


# --- observed usage ------------------------------------------------------------------------------

def frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Rows in the store's shape: UTC timestamps, Int64 figures, categories."""
    return typed_frame(rows)


def row(t: datetime, pod: str, cpu: float | None, mem: int | None, *, service: str = "risk-manager",
        container: str | None = None, req: tuple[int, int, int] = (200, 256 * MI, 512 * MI)) -> dict[str, Any]:
    return {"timestamp": t, "context": "sim", "namespace": "eafix", "pod": pod, "container": container or service,
            "service": service, "node": "n1", "cpu_m": cpu, "memory_bytes": mem, "cpu_request_m": req[0],
            "cpu_limit_m": 500, "memory_request_bytes": req[1], "memory_limit_bytes": req[2], "source": "sim-history"}


def series(n: int, *, cpu: float = 100, mem: int = 128 * MI, every: timedelta = timedelta(minutes=1),
           pods_: tuple[str, ...] = ("risk-manager-a",), **kw: Any) -> list[dict[str, Any]]:
    return [row(T0 + i * every, p, cpu, mem, **kw) for i in range(n) for p in pods_]


def svc(name: str = "risk-manager", *, tier: str = "trading", replicas: int = 2, hpa: HPA | None = None,
        cpu: int = 200, mem: int = 256 * MI, limit: int = 512 * MI) -> Service:
    return Service(name=name, port=8080, tier=tier, kind="Deployment", replicas=replicas,
                   containers=(Container(name, Resources(cpu, mem, 500, limit)),), hpa=hpa)


def catalog(*services: Service) -> Catalog:
    return Catalog(services or (svc(),), "services.yaml")


def usage(rows: list[dict[str, Any]], *, cat: Catalog | None = None, terms: tuple[Termination, ...] = (),
          hpa_history: Any = None, **own: Any) -> dict[str, GateResult]:
    pol = policy(usage={**SMALL, **own})
    return by_name(usage_gates(frame(rows), policy=pol, catalog=cat if cat is not None else catalog(),
                               terminations=terms, hpa_history=hpa_history))


def test_usage_within_the_request_passes():
    g = usage(series(20, cpu=150, mem=200 * MI))
    assert {x.verdict for x in g.values()} == {"PASS"}
    assert set(g) == {"usage:cpu-request:risk-manager", "usage:memory-request:risk-manager",
                      "usage:memory-limit:risk-manager", "usage:oom:risk-manager", "usage:restarts:risk-manager"}
    assert g["usage:cpu-request:risk-manager"].reason == (
        "usage cpu risk-manager: p95 150m <= request 200m (75% of it; container risk-manager, p95 over 1 pod, "
        "catalogue request, 20 samples over 19m00s)")


def test_cpu_p95_over_the_request_fails_and_the_margin_counts():
    rows = series(20, cpu=210)
    g = usage(rows)["usage:cpu-request:risk-manager"]
    assert g.verdict == "FAIL"
    assert g.reason.startswith("usage cpu risk-manager: p95 210m > request 200m (105% of it;")
    # 180m is within the request, but not with a 15% margin: 180 x 1.15 = 207m > 200m
    assert usage(series(20, cpu=180))["usage:cpu-request:risk-manager"].verdict == "PASS"
    within = usage(series(20, cpu=180), cpu={"margin_pct": 15})["usage:cpu-request:risk-manager"]
    assert within.verdict == "FAIL" and "p95 180m + 15% = 207m > request 200m" in within.reason


def test_a_spike_fails_the_peak_but_not_the_p95():
    rows = series(40, cpu=100)
    rows[5]["cpu_m"] = 400.0
    assert usage(rows)["usage:cpu-request:risk-manager"].verdict == "PASS"
    peak = usage(rows, cpu={"statistic": "peak"})["usage:cpu-request:risk-manager"]
    assert peak.verdict == "FAIL" and "peak 400m > request 200m" in peak.reason


def test_the_statistic_is_per_pod_then_the_largest_over_pods():
    # one pod at 250m, the other at 100m: the p95 per pod, the largest of them, is 250m
    rows = series(20, cpu=100, pods_=("risk-manager-a",)) + series(20, cpu=250, pods_=("risk-manager-b",))
    g = usage(rows)["usage:cpu-request:risk-manager"]
    assert g.verdict == "FAIL" and g.figures["value"] == 250 and "p95 over 2 pods" in g.reason


def test_memory_over_its_request_and_over_its_limit():
    g = usage(series(20, mem=300 * MI))
    assert g["usage:memory-request:risk-manager"].verdict == "FAIL"
    assert g["usage:memory-request:risk-manager"].reason.startswith(
        "usage memory risk-manager: peak 300Mi > request 256Mi (117% of it;")
    assert g["usage:memory-limit:risk-manager"].verdict == "PASS"
    over = usage(series(20, mem=600 * MI))["usage:memory-limit:risk-manager"]
    assert over.verdict == "FAIL" and over.reason.startswith(
        "usage memory-limit risk-manager: peak 600Mi > limit 512Mi (117% of it; container risk-manager, catalogue limit")


def test_the_catalogues_requests_are_judged_not_the_ones_observed():
    # the pods ran with a 1-core request; the plan's catalogue gives 200m: the plan's is what will run
    rows = series(20, cpu=300, req=(1000, 256 * MI, 512 * MI))
    assert usage(rows)["usage:cpu-request:risk-manager"].verdict == "FAIL"
    g = usage_gates(frame(rows), policy=policy(usage=SMALL), catalog=None)
    observed = by_name(g)["usage:cpu-request:risk-manager"]
    assert observed.verdict == "PASS" and "observed request" in observed.reason
    # without a catalogue the HPA maxima are unknown: said once, not silently passed
    assert by_name(g)["usage:hpa-max"].verdict == "WARN"


def kill(pod: str, n: int, reason: str = "OOMKilled", service: str = "risk-manager") -> Termination:
    return Termination(T0 + timedelta(minutes=n), "sim", "eafix", pod, service, service, reason, n, 512 * MI, "sim")


def test_an_oom_kill_fails_the_oom_gate():
    g = usage(series(20), terms=(kill("risk-manager-a", 3),))["usage:oom:risk-manager"]
    assert g.verdict == "FAIL"
    assert g.reason == ("usage oom risk-manager: 1 OOM kill (allowed 0); first risk-manager-a/risk-manager at "
                        "2026-01-14T08:03:00Z at a 512Mi limit")
    other = usage(series(20), terms=(kill("risk-manager-a", 3, reason="Error"),))["usage:oom:risk-manager"]
    assert other.verdict == "PASS"
    allowed = usage(series(20), terms=(kill("risk-manager-a", 3),), oom_kills_allowed=1)["usage:oom:risk-manager"]
    assert allowed.verdict == "PASS"


def test_a_restart_loop_fails_the_restart_gate():
    loop = tuple(kill("risk-manager-a", n, reason="Error") for n in range(1, 7))       # restarts 1..6: 6 restarts
    g = usage(series(20), terms=loop)["usage:restarts:risk-manager"]
    assert g.verdict == "FAIL"
    assert g.reason == ("usage restarts risk-manager: risk-manager-a/risk-manager restarted 6 times "
                        "(a restart loop: more than 5)")
    five = usage(series(20), terms=loop[:5])["usage:restarts:risk-manager"]
    assert five.verdict == "PASS" and "at most 5 restarts" in five.reason


def hpa_rows(extra_minutes: int) -> list[dict[str, Any]]:
    """Two pods for 60 minutes, and two more (the HPA's maximum of 4) for ``extra_minutes``."""
    base = series(61, pods_=("risk-manager-a", "risk-manager-b"))
    extra = [row(T0 + timedelta(minutes=10 + i), p, 100, 128 * MI)
             for i in range(extra_minutes + 1) for p in ("risk-manager-c", "risk-manager-d")]
    return base + extra


def test_an_hpa_at_its_maximum_longer_than_the_threshold_fails():
    cat = catalog(svc(hpa=HPA(2, 4, 70)))
    g = usage(hpa_rows(20), cat=cat)["usage:hpa-max:risk-manager"]
    assert g.verdict == "FAIL"
    assert g.reason == "usage hpa-max risk-manager: at its maximum of 4 replicas for 20m00s > 15m00s (pods sampled)"
    short = usage(hpa_rows(10), cat=cat)["usage:hpa-max:risk-manager"]
    assert short.verdict == "PASS" and "at its maximum of 4 for at most 10m00s" in short.reason
    never = usage(series(20, pods_=("a", "b")), cat=cat)["usage:hpa-max:risk-manager"]
    assert never.verdict == "PASS" and "at most 2 of its 4 maximum replicas" in never.reason
    longer = usage(hpa_rows(20), cat=cat, hpa_max_duration="30m")["usage:hpa-max:risk-manager"]
    assert longer.verdict == "PASS"


def test_hpa_readings_when_given_are_judged_instead_of_the_pods():
    cat = catalog(svc(hpa=HPA(2, 4, 70)))
    readings = {"risk-manager": [HpaPoint(T0 + timedelta(minutes=m), "risk-manager", 4) for m in range(0, 31, 5)]}
    g = usage(series(20), cat=cat, hpa_history=readings)["usage:hpa-max:risk-manager"]
    assert g.verdict == "FAIL" and "for 30m00s > 15m00s (7 HPA readings)" in g.reason


def test_too_little_data_is_a_warn_that_says_how_much_there_was():
    rows = series(12, every=timedelta(seconds=15))           # 12 samples over 2m45s
    g = by_name(usage_gates(frame(rows), policy=policy(), catalog=catalog()))
    cpu = g["usage:cpu-request:risk-manager"]
    assert cpu.verdict == "WARN"
    assert cpu.reason == ("usage cpu risk-manager: too little data to judge: 12 samples over 2m45s, the policy needs "
                          "100 samples over 24h00m; so far p95 100m <= request 200m (50% of it; container "
                          "risk-manager, p95 over 1 pod, catalogue request)")
    assert {x.verdict for x in g.values()} == {"WARN"}
    assert cpu.figures["samples"] == 12 and cpu.figures["span_seconds"] == 165


def test_in_too_little_data_a_seen_peak_still_fails_but_a_p95_does_not():
    rows = series(12, cpu=300, mem=600 * MI, every=timedelta(seconds=15))
    g = by_name(usage_gates(frame(rows), policy=policy(), catalog=catalog(),
                            terminations=(kill("risk-manager-a", 1),)))
    assert g["usage:cpu-request:risk-manager"].verdict == "WARN"                   # a p95 of 12 samples
    assert g["usage:memory-request:risk-manager"].verdict == "FAIL"                # a peak that happened
    assert g["usage:memory-limit:risk-manager"].reason.endswith("(from only 12 samples over 2m45s)")
    assert g["usage:oom:risk-manager"].verdict == "FAIL"


def test_no_usage_data():
    assert usage_gates(None, policy=policy(), catalog=catalog()) == []
    (g,) = usage_gates(None, policy=policy(must_judge=["usage"]), catalog=catalog())
    assert g.verdict == "WARN" and g.name == "usage:data" and g.reason.startswith("no usage data")
    (e,) = usage_gates(frame([]), policy=policy(), catalog=catalog())
    assert e.verdict == "WARN" and e.reason.startswith("no usage data: the usage history has 0 samples")


def test_a_catalogued_service_without_samples_is_a_warn_not_a_pass():
    cat = catalog(svc(), svc("execution-engine"), svc("idle", replicas=0))
    g = usage(series(20), cat=cat)
    assert g["usage:samples:execution-engine"].verdict == "WARN"
    assert "no samples of the service" in g["usage:samples:execution-engine"].reason
    assert g["usage:oom:execution-engine"].verdict == "WARN"          # no OOM kill seen in no window
    assert not any(k.endswith(":idle") for k in g)                     # scaled to zero: nothing to judge


def test_missing_figures_are_gaps_not_zeros():
    rows = series(20, cpu=150)
    for r in rows[:10]:
        r["cpu_m"] = None
    g = usage(rows)["usage:cpu-request:risk-manager"]
    assert g.verdict == "PASS" and g.figures["value"] == 150


# --- the rehearsals ------------------------------------------------------------------------------

def rehearsal(kind: str = "nodepool-upgrade", *, name: str | None = None, completed: bool = True,
              reason: str = "3 nodes replaced", min_ready: dict[str, int] | None = None,
              required: dict[str, int] | None = None, pending: tuple[PendingPod, ...] = (),
              block: float = 0.0, blocked: tuple[BlockedEviction, ...] = (),
              settings: dict[str, Any] | None = None) -> Rehearsal:
    obs = (Observation(T0, 0, "start", 3), Observation(T0 + timedelta(minutes=5), 1, "drain node-0", 3,
                                                       blocked=blocked))
    return Rehearsal(name or kind, kind, completed, reason, T0, T0 + timedelta(minutes=12), obs,  # type: ignore[arg-type]
                     min_ready if min_ready is not None else {"risk-manager": 1, "reporter": 1},
                     {"risk-manager": 2, "reporter": 2},
                     required if required is not None else {"risk-manager": 1, "reporter": 1},
                     longest_block_seconds=block, pending_at_end=pending,
                     settings=settings if settings is not None else {"provider": "aks"})


CAT = catalog(svc(), svc("reporter", tier="supporting"))


def all_three(**upgrade: Any) -> list[Rehearsal]:
    return [rehearsal(**upgrade), rehearsal("release-rollout"), rehearsal("node-loss", name="node-loss:node-0")]


def test_every_rehearsal_completed_passes():
    g = by_name(rehearsal_gates(all_three(), policy=policy(), catalog=CAT))
    assert {x.verdict for x in g.values()} == {"PASS"}
    assert set(g) == {"rehearsal:nodepool-upgrade", "rehearsal:release-rollout", "rehearsal:node-loss:node-0"}
    assert g["rehearsal:nodepool-upgrade"].reason == (
        "rehearsal nodepool-upgrade: completed in 12m00s (2 steps), no pod left Pending, longest PDB block 0s "
        "within the 30m00s drain timeout; 1 trading service kept its minAvailable; lowest ready: risk-manager 1 of 2")


def test_a_rehearsal_not_run_is_a_warn_never_a_pass():
    g = by_name(rehearsal_gates([rehearsal()], policy=policy(), catalog=CAT))
    for kind in ("release-rollout", "node-loss"):
        assert g[f"rehearsal:{kind}"].verdict == "WARN"
        assert "not rehearsed" in g[f"rehearsal:{kind}"].reason
    none = rehearsal_gates([], policy=policy(), catalog=CAT)
    assert [x.verdict for x in none] == ["WARN"] * 3


def test_pods_left_pending_fail_the_upgrade_naming_them():
    p = PendingPod("eafix", "risk-manager-x", "risk-manager", "0/2 nodes are available: 2 Insufficient cpu.")
    g = by_name(rehearsal_gates(all_three(pending=(p,), completed=False, reason="pods Pending after the last drain"),
                                policy=policy(), catalog=CAT))["rehearsal:nodepool-upgrade"]
    assert g.verdict == "FAIL"
    assert g.reason == ("rehearsal nodepool-upgrade: pods Pending after the last drain; 1 pod left Pending "
                        "(eafix/risk-manager-x: 0/2 nodes are available: 2 Insufficient cpu.)")


def test_a_pdb_blocking_past_the_drain_timeout_fails_naming_the_pdb():
    b = BlockedEviction("eafix", "redis-0", "redis", T0, 1900.0, "Cannot evict pod as it would violate the pod's "
                        "disruption budget.")
    g = by_name(rehearsal_gates(all_three(block=1900.0, blocked=(b,)), policy=policy(),
                                catalog=CAT))["rehearsal:nodepool-upgrade"]
    assert g.verdict == "FAIL"
    assert g.reason == ("rehearsal nodepool-upgrade: PDB redis blocked the eviction of eafix/redis-0 for 31m40s > "
                        "AKS's 30m00s drain timeout")
    # GKE respects PDBs for an hour; the policy's drain timeout overrides the provider's
    gke = all_three(block=1900.0, blocked=(b,), settings={"provider": "gke"})
    assert by_name(rehearsal_gates(gke, policy=policy(), catalog=CAT))["rehearsal:nodepool-upgrade"].verdict == "PASS"
    tight = policy(rehearsal={"drain_timeout": "10m"})
    g = by_name(rehearsal_gates(gke, policy=tight, catalog=CAT))["rehearsal:nodepool-upgrade"]
    assert g.verdict == "FAIL" and "> the policy's 10m00s drain timeout" in g.reason


def test_a_trading_service_below_its_min_available_fails_the_upgrade():
    low = all_three(min_ready={"risk-manager": 0, "reporter": 1})
    g = by_name(rehearsal_gates(low, policy=policy(), catalog=CAT))["rehearsal:nodepool-upgrade"]
    assert g.verdict == "FAIL" and g.reason == ("rehearsal nodepool-upgrade: risk-manager fell to 0 ready "
                                                "(its PDB keeps 1)")
    # reporter is a supporting service: not judged unless the policy's tiers name it
    sup = all_three(min_ready={"risk-manager": 1, "reporter": 0})
    assert by_name(rehearsal_gates(sup, policy=policy(), catalog=CAT))["rehearsal:nodepool-upgrade"].verdict == "PASS"
    wide = policy(rehearsal={"tiers": ["trading", "supporting"]})
    assert by_name(rehearsal_gates(sup, policy=wide, catalog=CAT))["rehearsal:nodepool-upgrade"].verdict == "FAIL"


def test_an_unfinished_rollout_or_node_loss_fails():
    rs = [rehearsal(), rehearsal("release-rollout", completed=False, reason="deployment risk-manager exceeded its "
                                 "progress deadline"),
          rehearsal("node-loss", name="node-loss:node-0", completed=False, reason="2 pods not rescheduled")]
    g = by_name(rehearsal_gates(rs, policy=policy(), catalog=CAT))
    assert g["rehearsal:release-rollout"].reason == ("rehearsal release-rollout: deployment risk-manager exceeded "
                                                     "its progress deadline")
    assert g["rehearsal:node-loss:node-0"].verdict == "FAIL"
    assert g["rehearsal:nodepool-upgrade"].verdict == "PASS"


@pytest.mark.parametrize("text", ["line one\nline two", "x" * 2000])
def test_a_rehearsals_own_reason_stays_one_short_line(text):
    (g,) = [x for x in rehearsal_gates([rehearsal(completed=False, reason=text)], policy=policy(), catalog=CAT)
            if x.name == "rehearsal:nodepool-upgrade"]
    assert "\n" not in g.reason and len(g.reason) < 400


def test_every_gate_is_json_and_one_line():
    cat = catalog(svc(hpa=HPA(2, 4, 70)), svc("execution-engine"))
    gates = usage_gates(frame(hpa_rows(20)), policy=policy(), catalog=cat, terminations=(kill("risk-manager-a", 3),))
    gates += n_plus_one(nodes(8000, 8000), pods(100)) + n_plus_zone(nodes(8000, 8000, zones=("a", "b")), pods(100),
                                                                      policy=policy())
    gates += rehearsal_gates(all_three(), policy=policy(), catalog=CAT)
    gates += plan_gates(plan_from_params(PlanParams(nodes=1)))
    for g in gates:
        assert json.loads(json.dumps(g.as_dict()))["name"] == g.name
        assert "\n" not in g.reason


def test_a_frame_without_the_stores_columns_is_refused():
    with pytest.raises(InputError, match="samples frame without column"):
        usage_gates(pd.DataFrame({"timestamp": []}), policy=policy(), catalog=catalog())


def test_a_container_without_a_request_is_not_judged_and_does_not_hide_a_fail():
    cat = catalog(svc())                      # the catalogue has no istio-proxy: its requests are the observed ones
    side = dict(service="risk-manager", container="istio-proxy", req=(None, None, None))
    ok = series(20, cpu=100) + series(20, cpu=50, **side)
    g = usage(ok, cat=cat)
    assert g["usage:cpu-request:risk-manager"].verdict == "WARN"
    assert g["usage:cpu-request:risk-manager"].reason.endswith("; container istio-proxy has no cpu request: not judged")
    assert g["usage:memory-limit:risk-manager"].verdict == "WARN"
    bad = series(20, cpu=300) + series(20, cpu=50, **side)
    assert usage(bad, cat=cat)["usage:cpu-request:risk-manager"].verdict == "FAIL"


def test_a_node_loss_that_leaves_a_service_without_a_ready_replica_fails():
    r = rehearsal("node-loss", name="node-loss:node-0")
    end = Observation(T0 + timedelta(minutes=12), 2, "node-0 lost: pods rescheduled", 2,
                      ready={"risk-manager": 2, "reporter": 0})
    lost = Rehearsal(**{**r.__dict__, "observations": r.observations + (end,)})
    g = by_name(rehearsal_gates([lost], policy=policy(), catalog=CAT))["rehearsal:node-loss:node-0"]
    assert g.verdict == "FAIL"
    assert g.reason == "rehearsal node-loss:node-0: 1 service with no ready replica at the end (reporter)"
    back = Observation(end.at, 2, end.action, 2, ready={"risk-manager": 2, "reporter": 1})
    ok = Rehearsal(**{**r.__dict__, "observations": r.observations + (back,)})
    assert by_name(rehearsal_gates([ok], policy=policy(), catalog=CAT))["rehearsal:node-loss:node-0"].verdict == "PASS"
