"""One scheduler in fact: the packer's placements, replayed through the sim scheduler's
filters on real Pod and Node objects, break no rule; the sim's own placements break none
of the packer's; and given the same order and the first feasible node, the sim's filters
and the packer reach the same verdict (and placement) at every node count.

Pure (no sim server): the sim scheduler is driven in-process on object snapshots.
"""
from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eafix_capacity import scheduling as S
from eafix_capacity.scheduling import (HOSTNAME, NodeShape, PodRequest, SpreadConstraint, ffd_order, lower_bound, pack,
                                       place, scheduler_spread)
from eafix_capacity.sim.scheduler import Binding, ClusterSnapshot, PodScheduler, schedule_pending

MI = 2**20
NS = "w"


def node_name(i: int) -> str:
    return f"node-{i:03d}"  # sorts as the index does, as the sim orders nodes by name


def node_objects(shape: NodeShape, n: int) -> list[dict]:
    return [{"metadata": {"name": node_name(i), "labels": {HOSTNAME: node_name(i)}}, "spec": {},
             "status": {"allocatable": {"cpu": f"{shape.cpu_m}m", "memory": str(shape.memory_bytes),
                                        "pods": str(shape.max_pods)}}}
            for i in range(n)]


def pod_object(p: PodRequest, order: int) -> dict:
    """The Pod a generated manifest gives this request: its group as the app label, the
    spread as a hostname topologySpreadConstraint and anti-affinity as a required term."""
    selector = {"matchLabels": {"app": p.group}}
    spec: dict = {"containers": [{"name": "c", "resources": {"requests": {
        "cpu": f"{p.cpu_m}m", "memory": str(p.memory_bytes)}}}]}
    if p.spread is not None:
        spec["topologySpreadConstraints"] = [{"maxSkew": p.spread.max_skew, "topologyKey": p.spread.topology_key,
                                              "whenUnsatisfiable": "DoNotSchedule", "labelSelector": selector}]
    if p.anti_affinity:
        spec["affinity"] = {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
            {"labelSelector": selector, "topologyKey": HOSTNAME}]}}
    return {"metadata": {"name": p.name, "namespace": NS, "labels": {"app": p.group},
                         "creationTimestamp": f"{order:06d}",
                         "ownerReferences": [{"uid": f"rs-{p.group}", "controller": True}]},
            "spec": spec, "status": {"phase": "Pending"}}


def replay(pods: list[PodRequest], shape: NodeShape, n: int, assignment) -> list[str]:
    """Every violation the sim scheduler's filters find in ``assignment``, placed in order."""
    objects = {p.name: pod_object(p, i) for i, p in enumerate(pods)}
    snap = ClusterSnapshot(node_objects(shape, n), [])
    sched = PodScheduler(snap)
    problems = []
    for name, i in assignment:
        why = sched.filter_reasons(objects[name], only=(node_name(i),))[node_name(i)]
        if why:
            problems.append(f"{name} on {node_name(i)}: {', '.join(why)}")
        snap.bind(objects[name], node_name(i))
    return problems


def sim_first_fit(pods: list[PodRequest], shape: NodeShape, n: int) -> tuple[tuple[str, int], ...] | None:
    """The packer's order, each pod on the first node the sim's filters accept."""
    snap = ClusterSnapshot(node_objects(shape, n), [])
    sched = PodScheduler(snap)
    out = []
    for k, p in enumerate(ffd_order(pods, shape)):
        obj = pod_object(p, k)
        reasons = sched.filter_reasons(obj)
        i = next((i for i in range(n) if not reasons[node_name(i)]), None)
        if i is None:
            return None
        snap.bind(obj, node_name(i))
        out.append((p.name, i))
    return tuple(out)


@st.composite
def workloads(draw: st.DrawFn) -> tuple[NodeShape, list[PodRequest]]:
    """Services of one to eight replicas in one or two sizes, each rule per service as
    a Deployment's: maxSkew-1 hostname spread (mostly), none, or maxSkew 2; anti-affinity
    for about one service in four."""
    shape = NodeShape(cpu_m=draw(st.integers(500, 8000)), memory_bytes=draw(st.integers(512, 16 * 1024)) * MI,
                      max_pods=draw(st.integers(1, 12)))
    pods: list[PodRequest] = []
    for g in range(draw(st.integers(1, 5))):
        sizes = draw(st.lists(st.tuples(st.integers(0, shape.cpu_m), st.integers(0, shape.memory_bytes // MI)),
                              min_size=1, max_size=2))
        anti = draw(st.integers(0, 3)) == 0
        spread = draw(st.sampled_from([SpreadConstraint()] * 3 + [None, SpreadConstraint(max_skew=2)]))
        for i in range(draw(st.integers(1, 8))):
            cpu, mem = draw(st.sampled_from(sizes))
            pods.append(PodRequest(f"g{g}-{i}", f"g{g}", cpu, mem * MI, anti_affinity=anti, spread=spread))
    return shape, pods


PROPS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPS
@given(workloads(), st.integers(-1, 2))
def test_packer_and_sim_agree_at_every_node_count(case: tuple[NodeShape, list[PodRequest]], extra: int) -> None:
    shape, pods = case
    n = max(lower_bound(pods, shape) + extra, 0)
    # the same verdict, and the same nodes, when both take the first feasible node
    packed = pack(pods, shape, nodes=n)
    assert sim_first_fit(pods, shape, n) == (packed.assignment if packed is not None else None)
    # the sizing engine's placement (first fit or balanced layers) breaks no sim filter
    placement = place(pods, shape, nodes=n)
    if placement is not None:
        assert replay(pods, shape, n, placement.assignment) == []
    if n:
        # the default scheduler's spread, as tables.py reports it, breaks none either
        spread = scheduler_spread(pods, shape, nodes=n)
        assert replay(pods, shape, n, spread.placement.assignment) == []


DEDICATED = S.Taint("dedicated", "trading", "NoSchedule")


@PROPS
@given(workloads(), st.integers(0, 2), st.lists(st.sampled_from(["plain"] * 6 + ["cordoned", "tainted"]),
                                               min_size=12, max_size=12),
       st.lists(st.booleans(), min_size=5, max_size=5))
def test_the_sims_own_placements_break_no_packer_rule(case: tuple[NodeShape, list[PodRequest]], extra: int,
                                                      kinds: list[str], tolerant: list[bool]) -> None:
    """The sim (its vectorised path for plain pods included) schedules a random workload
    on nodes some of which are cordoned or tainted; replayed through the rules on records
    built here, not by the sim's adapter, no binding breaks one, and a pod left Pending
    fits no node."""
    shape, pods = case
    n = lower_bound(pods, shape) + extra
    kinds = (kinds * (n // len(kinds) + 1))[:n]
    tolerations = (S.Toleration("dedicated", "Exists"),)
    pods = [replace(p, tolerations=tolerations) if tolerant[int(p.group[1:])] else p for p in pods]
    nodes = node_objects(shape, n)
    states = [S.NodeState(node_name(i), shape.cpu_m, shape.memory_bytes, shape.max_pods) for i in range(n)]
    for obj, st_, kind in zip(nodes, states, kinds):
        if kind == "cordoned":
            obj["spec"]["unschedulable"] = st_.unschedulable = True
        elif kind == "tainted":
            obj["spec"]["taints"] = [{"key": "dedicated", "value": "trading", "effect": "NoSchedule"}]
            st_.taints = (DEDICATED,)
    order = ffd_order(pods, shape)
    objects = [pod_object(p, i) for i, p in enumerate(order)]
    for p, obj in zip(order, objects):
        if p.tolerations:
            obj["spec"]["tolerations"] = [{"key": "dedicated", "operator": "Exists"}]
    results = schedule_pending(nodes, objects)
    by_name = {p.name: p for p in pods}
    index = {node_name(i): i for i in range(n)}
    assert [r.name for r in results] == [p.name for p in order]
    for r in results:
        pod = by_name[r.name]
        if isinstance(r, Binding):
            assert S.filter_node(pod, states[index[r.node]], states) == [], r
            states[index[r.node]].add(pod)
        else:
            assert all(S.filter_node(pod, st_, states) for st_ in states), r
            assert r.message.startswith(f"0/{n} nodes are available: ")


def test_below_the_lower_bound_neither_fits() -> None:
    shape = NodeShape(1000, 1024 * MI, 10)
    pods = [PodRequest(f"g-{i}", "g", 600, MI) for i in range(3)]
    assert lower_bound(pods, shape) == 3
    assert pack(pods, shape, nodes=2) is None and sim_first_fit(pods, shape, 2) is None
    packed = pack(pods, shape, nodes=3)
    assert packed is not None and sim_first_fit(pods, shape, 3) == packed.assignment


@pytest.mark.parametrize("assignment, why", [
    ((("g-0", 0), ("g-1", 0)), "g-1 on node-000: node(s) didn't match pod topology spread constraints"),
    ((("big-0", 0), ("big-1", 0)), "big-1 on node-000: Insufficient cpu"),
    ((("solo-0", 1), ("solo-1", 1)), "solo-1 on node-001: node(s) didn't match pod anti-affinity rules"),
])
def test_replay_finds_a_broken_placement(assignment, why) -> None:
    shape = NodeShape(1000, 1024 * MI, 10)
    pods = ([PodRequest(f"g-{i}", "g", 100, MI) for i in range(2)]
            + [PodRequest(f"big-{i}", "big", 600, MI, spread=None) for i in range(2)]
            + [PodRequest(f"solo-{i}", "solo", 100, MI, anti_affinity=True, spread=None) for i in range(2)])
    assert replay(pods, shape, 2, assignment) == [why]
