"""Placement rules (kube-scheduler's filters and messages) and the packing engine.

Unit tests pin each filter's reason string; hypothesis checks the packing guarantees on
random pod sets: never below the lower bound, never an invalid placement, never a
success on fewer nodes than the lower bound, and the count is the first that FFD packs.
"""
from __future__ import annotations

from collections import Counter
from math import ceil

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eafix_capacity.scheduling import (
    HOSTNAME,
    R_ANTI_AFFINITY,
    R_CPU,
    R_MEMORY,
    R_PODS,
    R_SELECTOR,
    R_SPREAD,
    R_SPREAD_MISSING,
    R_TAINT,
    R_UNSCHEDULABLE,
    R_EXISTING_ANTI_AFFINITY,
    R_POD_AFFINITY,
    UNRESOLVABLE,
    AffinityTerm,
    Decision,
    LabelSelector,
    NodeSelectorRequirement,
    NodeSelectorTerm,
    NodeShape,
    NodeState,
    Placement,
    PodRequest,
    SpreadConstraint,
    Taint,
    Toleration,
    check_placement,
    ffd_order,
    filter_node,
    lower_bound,
    min_nodes,
    pack,
    place,
    schedule,
)

MI = 2**20
GI = 2**30


def node(name: str = "n0", cpu: int = 4000, mem: int = 8 * GI, pods: int = 110, **kw) -> NodeState:
    return NodeState(name, cpu, mem, pods, **kw)


def pod(name: str = "p", group: str = "g", cpu: int = 100, mem: int = 128 * MI, **kw) -> PodRequest:
    return PodRequest(name, group, cpu, mem, **kw)


def only(n: NodeState, p: PodRequest) -> list[str]:
    return filter_node(p, n, [n])


# ------------------------------------------------------------------ filter_node


def test_a_pod_that_fits_has_no_reasons() -> None:
    assert only(node(), pod()) == []


def test_insufficient_cpu() -> None:
    n = node(cpu=1000)
    n.add(pod("a", cpu=900))
    assert only(n, pod(cpu=101)) == [R_CPU]
    assert only(n, pod(cpu=100)) == []          # exactly full is allowed
    assert R_CPU == "Insufficient cpu"


def test_insufficient_memory() -> None:
    n = node(mem=GI)
    n.add(pod("a", mem=GI - 10))
    assert only(n, pod(mem=11)) == [R_MEMORY]
    assert only(n, pod(mem=10)) == []
    assert R_MEMORY == "Insufficient memory"


def test_too_many_pods() -> None:
    n = node(pods=2)
    n.add(pod("a", group="x"))
    assert only(n, pod(group="y")) == []
    n.add(pod("b", group="y"))
    assert only(n, pod(group="z")) == [R_PODS]
    assert R_PODS == "Too many pods"


def test_resource_fit_lists_every_insufficient_resource_in_kube_order() -> None:
    n = node(cpu=100, mem=100, pods=1)
    n.add(pod("a", group="x", cpu=100, mem=100))
    assert only(n, pod(group="y", cpu=1, mem=1)) == [R_PODS, R_CPU, R_MEMORY]


def test_untolerated_taint() -> None:
    # kube-scheduler 1.32+ no longer names the taint (tainttoleration Filter)
    n = node(taints=(Taint("dedicated", "infra"),))
    assert only(n, pod()) == [R_TAINT]
    assert R_TAINT == "node(s) had untolerated taint(s)"


@pytest.mark.parametrize(
    ("toleration", "tolerated"),
    [
        (Toleration("dedicated", "Equal", "infra"), True),
        (Toleration("dedicated", "Equal", "infra", "NoSchedule"), True),
        (Toleration("dedicated", "Equal", "db"), False),
        (Toleration("dedicated", "Exists"), True),
        (Toleration("other", "Exists"), False),
        (Toleration("dedicated", "Exists", effect="NoExecute"), False),
        (Toleration("", "Exists"), True),                 # tolerates everything
        (Toleration("", "Equal"), False),
    ],
)
def test_tolerations(toleration: Toleration, tolerated: bool) -> None:
    n = node(taints=(Taint("dedicated", "infra", "NoSchedule"),))
    assert (only(n, pod(tolerations=(toleration,))) == []) is tolerated


def test_prefer_no_schedule_taints_do_not_filter() -> None:
    n = node(taints=(Taint("spot", "true", "PreferNoSchedule"),))
    assert only(n, pod()) == []


def test_no_execute_taints_filter() -> None:
    n = node(taints=(Taint("gone", "", "NoExecute"),))
    assert only(n, pod()) == [R_TAINT]


def test_node_selector() -> None:
    n = node(labels={"pool": "trading"})
    assert only(n, pod(node_selector=(("pool", "trading"),))) == []
    assert only(n, pod(node_selector=(("pool", "infra"),))) == [R_SELECTOR]
    assert only(n, pod(node_selector=(("zone", "a"),))) == [R_SELECTOR]
    assert R_SELECTOR == "node(s) didn't match Pod's node affinity/selector"


def test_hostname_label_is_set() -> None:
    assert node("worker-7").labels[HOSTNAME] == "worker-7"
    assert only(node("worker-7"), pod(node_selector=((HOSTNAME, "worker-7"),))) == []


def test_cordoned_node_is_unschedulable_unless_tolerated() -> None:
    n = node(unschedulable=True)
    assert only(n, pod()) == [R_UNSCHEDULABLE]
    tol = Toleration("node.kubernetes.io/unschedulable", "Exists", effect="NoSchedule")
    assert only(n, pod(tolerations=(tol,))) == []


def test_the_first_failing_plugin_decides() -> None:
    n = node(cpu=0, unschedulable=True, taints=(Taint("a", "b"),), labels={"x": "y"})
    assert only(n, pod(node_selector=(("x", "z"),))) == [R_UNSCHEDULABLE]
    n.unschedulable = False
    assert only(n, pod(node_selector=(("x", "z"),))) == [R_TAINT]
    n.taints = ()
    assert only(n, pod(node_selector=(("x", "z"),))) == [R_SELECTOR]
    assert only(n, pod(node_selector=(("x", "y"),))) == [R_CPU]


def test_spread_max_skew_one_on_the_hostname() -> None:
    nodes = [node("a"), node("b"), node("c")]
    nodes[0].add(pod("g-0"))
    p = pod("g-1")
    assert filter_node(p, nodes[0], nodes) == [R_SPREAD]
    assert filter_node(p, nodes[1], nodes) == []
    nodes[1].add(p)
    nodes[2].add(pod("g-2"))
    # every node has one: a second on any node keeps the skew at 1
    assert all(filter_node(pod("g-3"), n, nodes) == [] for n in nodes)
    # other groups are not counted
    assert filter_node(pod("h-0", group="h"), nodes[0], nodes) == []
    assert R_SPREAD == "node(s) didn't match pod topology spread constraints"


def test_spread_with_a_larger_max_skew() -> None:
    nodes = [node("a"), node("b")]
    nodes[0].add(pod("g-0"))
    loose = pod("g-1", spread=SpreadConstraint(max_skew=2))
    assert filter_node(loose, nodes[0], nodes) == []
    nodes[0].add(loose)
    assert filter_node(pod("g-2", spread=SpreadConstraint(max_skew=2)), nodes[0], nodes) == [R_SPREAD]


def test_spread_ignores_nodes_outside_the_selector() -> None:
    nodes = [node("a", labels={"pool": "x"}), node("b", labels={"pool": "y"})]
    nodes[0].add(pod("g-0", node_selector=(("pool", "x"),)))
    # b is not an eligible domain, so its zero does not count as the minimum
    assert filter_node(pod("g-1", node_selector=(("pool", "x"),)), nodes[0], nodes) == []


def test_spread_honours_taints_only_when_asked() -> None:
    nodes = [node("a"), node("b", taints=(Taint("t", "v"),))]
    nodes[0].add(pod("g-0"))
    assert filter_node(pod("g-1"), nodes[0], nodes) == [R_SPREAD]
    honour = SpreadConstraint(honor_taints=True)
    assert filter_node(pod("g-1", spread=honour), nodes[0], nodes) == []


def test_spread_fails_on_a_node_without_the_topology_label() -> None:
    n = node("a")
    zone = SpreadConstraint(topology_key="topology.kubernetes.io/zone")
    assert filter_node(pod(spread=zone), n, [n]) == [R_SPREAD_MISSING]
    assert R_SPREAD_MISSING == "node(s) didn't match pod topology spread constraints (missing required label)"


def test_no_spread_constraint_allows_stacking() -> None:
    nodes = [node("a"), node("b")]
    nodes[0].add(pod("g-0"))
    assert filter_node(pod("g-1", spread=None), nodes[0], nodes) == []


def test_anti_affinity() -> None:
    nodes = [node("a"), node("b")]
    nodes[0].add(pod("g-0", anti_affinity=True))
    p = pod("g-1", anti_affinity=True, spread=None)
    assert filter_node(p, nodes[0], nodes) == [R_ANTI_AFFINITY]
    assert filter_node(p, nodes[1], nodes) == []
    assert filter_node(pod("h-0", group="h", anti_affinity=True), nodes[0], nodes) == []
    assert R_ANTI_AFFINITY == "node(s) didn't match pod anti-affinity rules"


def test_rules_with_label_selectors_count_the_selected_pods_of_the_namespace() -> None:
    sel = LabelSelector.of({"matchLabels": {"app": "web"}})
    web = dict(namespace="prod", labels={"app": "web"}, spread=None)
    spread = SpreadConstraint(selector=sel)
    nodes = [node("a"), node("b")]
    nodes[0].add(pod("w-0", group="", **web))
    nodes[1].add(pod("other-ns", group="", namespace="dev", labels={"app": "web"}, spread=None))
    p = pod("w-1", group="", **{**web, "spread_constraints": (spread,)})
    assert filter_node(p, nodes[0], nodes) == [R_SPREAD]
    assert filter_node(p, nodes[1], nodes) == []
    # a pod its own selector does not select adds nothing to the skew
    stranger = pod("s", group="", namespace="prod", labels={"app": "db"}, spread_constraints=(spread,), spread=None)
    assert filter_node(stranger, nodes[0], nodes) == []
    # a missing selector selects nothing
    assert not LabelSelector.of(None).matches({"app": "web"})
    assert LabelSelector.of({}).matches({"app": "web"})


def test_min_domains_and_schedule_anyway() -> None:
    nodes = [node("a"), node("b")]
    for n in nodes:
        n.add(pod(f"g-{n.name}"))
    assert filter_node(pod("g-x"), nodes[0], nodes) == []
    needs_three = SpreadConstraint(min_domains=3)
    assert filter_node(pod("g-x", spread=needs_three), nodes[0], nodes) == [R_SPREAD]
    soft = SpreadConstraint(min_domains=3, when_unsatisfiable="ScheduleAnyway")
    assert filter_node(pod("g-x", spread=soft), nodes[0], nodes) == []


def test_node_taints_policy_honour_leaves_tainted_domains_out() -> None:
    nodes = [node("a"), node("b", taints=(Taint("t", "v"),))]
    tol = (Toleration("t", "Exists"),)
    nodes[0].add(pod("g-0"))
    assert filter_node(pod("g-1", tolerations=tol), nodes[0], nodes) == [R_SPREAD]
    honour = SpreadConstraint(honor_taints=True)
    # tolerated, so b stays a domain even when taints are honoured
    assert filter_node(pod("g-1", tolerations=tol, spread=honour), nodes[0], nodes) == [R_SPREAD]


def test_pod_affinity_and_existing_anti_affinity() -> None:
    zone = "topology.kubernetes.io/zone"
    nodes = [node("a", labels={zone: "z1"}), node("b", labels={zone: "z2"})]
    cache = AffinityTerm(zone, LabelSelector.of({"matchLabels": {"app": "cache"}}))
    near = pod("api", group="", labels={"app": "api"}, spread=None, pod_affinity=(cache,))
    assert filter_node(near, nodes[0], nodes) == [R_POD_AFFINITY]
    nodes[1].add(pod("cache-0", group="", labels={"app": "cache"}, spread=None))
    assert filter_node(near, nodes[0], nodes) == [R_POD_AFFINITY]
    assert filter_node(near, nodes[1], nodes) == []
    # a placed pod's anti-affinity keeps out the pods it selects (the symmetric rule)
    guard = AffinityTerm(HOSTNAME, LabelSelector.of({"matchLabels": {"app": "api"}}))
    nodes[1].add(pod("guard", group="", labels={"app": "guard"}, spread=None, pod_anti_affinity=(guard,)))
    assert filter_node(near, nodes[1], nodes) == [R_EXISTING_ANTI_AFFINITY]
    assert R_EXISTING_ANTI_AFFINITY not in UNRESOLVABLE and R_POD_AFFINITY in UNRESOLVABLE


def test_node_selector_terms() -> None:
    gen = NodeSelectorRequirement("gen", "Gt", ("4",))
    n = node("a", labels={"gen": "5"})
    assert filter_node(pod(node_affinity=(NodeSelectorTerm((gen,)),)), n, [n]) == []
    assert filter_node(pod(node_affinity=(NodeSelectorTerm(),)), n, [n]) == [R_SELECTOR]  # an empty term matches none
    named = NodeSelectorTerm(match_fields=(NodeSelectorRequirement("metadata.name", "In", ("b",)),))
    assert filter_node(pod(node_affinity=(named,)), n, [n]) == [R_SELECTOR]
    either = (named, NodeSelectorTerm((NodeSelectorRequirement("gen", "In", ("5",)),)))
    assert filter_node(pod(node_affinity=either), n, [n]) == []
    assert not NodeSelectorRequirement("gen", "Lt", ("x",)).matches("5")


def test_remove_undoes_add() -> None:
    n = node()
    p = pod(cpu=250, mem=MI)
    n.add(p)
    assert (n.used_cpu_m, n.used_memory_bytes, n.pod_count, n.groups["g"]) == (250, MI, 1, 1)
    n.remove(p)
    assert (n.used_cpu_m, n.used_memory_bytes, n.pod_count, n.groups["g"]) == (0, 0, 0, 0)


# ------------------------------------------------------------------ schedule / Decision


def test_decision_message_format() -> None:
    nodes = [node(f"n{i}", cpu=100) for i in range(3)]
    d = schedule(pod(cpu=200), nodes)
    assert d.node is None
    assert d.message() == "0/3 nodes are available: 3 Insufficient cpu."


def test_decision_message_sorts_like_kube_scheduler() -> None:
    # FitError sorts the "<count> <reason>" strings, so counts lead the order
    d = Decision(None, Counter({R_CPU: 2, R_MEMORY: 1, R_UNSCHEDULABLE: 1}), 4)
    assert d.message() == ("0/4 nodes are available: 1 Insufficient memory, "
                           "1 node(s) were unschedulable, 2 Insufficient cpu.")


def test_decision_message_without_nodes() -> None:
    assert Decision(None, Counter(), 0).message() == "0/0 nodes are available."


def test_schedule_mixed_reasons() -> None:
    nodes = [node("a", cpu=100), node("b", mem=MI), node("c", unschedulable=True)]
    d = schedule(pod(cpu=200, mem=2 * MI), nodes)
    assert d.node is None
    assert d.reasons == Counter({R_CPU: 1, R_MEMORY: 1, R_UNSCHEDULABLE: 1})
    assert d.message() == ("0/3 nodes are available: 1 Insufficient cpu, 1 Insufficient memory, "
                           "1 node(s) were unschedulable.")


def test_schedule_picks_the_least_allocated_node_and_leaves_nodes_alone() -> None:
    nodes = [node("a"), node("b"), node("c")]
    nodes[0].add(pod("x-0", group="x", cpu=2000))
    nodes[2].add(pod("y-0", group="y", cpu=500))
    before = [(n.used_cpu_m, n.pod_count) for n in nodes]
    d = schedule(pod(), nodes)
    assert d.node == "b"
    assert d.reasons == Counter({})
    assert [(n.used_cpu_m, n.pod_count) for n in nodes] == before


def test_schedule_breaks_ties_by_name() -> None:
    assert schedule(pod(), [node("z"), node("m"), node("q")]).node == "m"


def test_schedule_counts_reasons_of_the_nodes_that_fail_only() -> None:
    nodes = [node("a", cpu=10), node("b")]
    d = schedule(pod(cpu=100), nodes)
    assert d.node == "b"
    assert d.reasons == Counter({R_CPU: 1})


# ------------------------------------------------------------------ lower bound, order, pack


SHAPE = NodeShape(cpu_m=1000, memory_bytes=GI, max_pods=10)


def pods_of(n: int, cpu: int, mem: int, group: str = "g", **kw) -> list[PodRequest]:
    return [PodRequest(f"{group}-{i}", group, cpu, mem, **kw) for i in range(n)]


def test_lower_bound_cpu() -> None:
    assert lower_bound(pods_of(5, 300, MI), SHAPE) == 2          # 1500m / 1000m
    assert lower_bound(pods_of(10, 300, MI), SHAPE) == 3         # 3000m exactly


def test_lower_bound_memory() -> None:
    assert lower_bound(pods_of(5, 1, 300 * MI), SHAPE) == 2      # 1500Mi / 1Gi


def test_lower_bound_pods() -> None:
    assert lower_bound(pods_of(21, 1, 1), SHAPE) == 3            # 21 / 10


def test_lower_bound_pods_above_half_a_node_cannot_share() -> None:
    # 1800m in total would fit two nodes, but no two 600m pods share a 1000m node
    big = [PodRequest(f"p{i}", f"g{i}", 600, MI) for i in range(3)]
    assert lower_bound(big, SHAPE) == 3
    tall = [PodRequest(f"p{i}", f"g{i}", 1, GI // 2 + 1) for i in range(3)]
    assert lower_bound(tall, SHAPE) == 3
    exactly_half = [PodRequest(f"p{i}", f"g{i}", 500, MI) for i in range(2)]
    assert lower_bound(exactly_half, SHAPE) == 1


def test_lower_bound_anti_affinity_group() -> None:
    assert lower_bound(pods_of(4, 1, 1, anti_affinity=True), SHAPE) == 4


def test_lower_bound_of_nothing_is_zero_and_of_something_at_least_one() -> None:
    assert lower_bound([], SHAPE) == 0
    assert lower_bound(pods_of(1, 0, 0), SHAPE) == 1


def test_lower_bound_is_exact_for_large_memory_figures() -> None:
    shape = NodeShape(10**6, 3 * 10**15, 10**6)
    big = pods_of(3, 1, 10**15) + [PodRequest("one-more", "h", 1, 1)]
    assert lower_bound(big, shape) == 2


def test_ffd_order_sorts_by_share_then_group_then_name() -> None:
    pods = [PodRequest("b-1", "b", 100, 0), PodRequest("a-1", "a", 100, 0),
            PodRequest("big", "z", 600, 0), PodRequest("mem", "m", 0, GI // 2),
            PodRequest("tie", "n", 500, 0)]
    assert [p.name for p in ffd_order(pods, SHAPE)] == ["big", "mem", "tie", "a-1", "b-1"]


def test_pack_spreads_a_group_over_the_nodes() -> None:
    placement = pack(pods_of(3, 100, MI), SHAPE, nodes=3)
    assert placement is not None
    assert sorted(i for _, i in placement.assignment) == [0, 1, 2]
    assert placement.by_node() == {0: ["g-0"], 1: ["g-1"], 2: ["g-2"]}
    assert placement.cpu_m == (100, 100, 100)
    assert placement.pods == (1, 1, 1)


def test_pack_with_no_nodes() -> None:
    assert pack(pods_of(1, 1, 1), SHAPE, nodes=0) is None
    assert pack([], SHAPE, nodes=0) == Placement(0, (), (), (), ())


def test_pack_fails_when_the_spread_cannot_hold() -> None:
    # two pods of 600m on two nodes of 1000m: one each, a third must break the spread
    # or the CPU; an unrelated small pod still fits
    pods = pods_of(2, 600, MI) + [PodRequest("s", "s", 300, MI)]
    assert pack(pods, SHAPE, nodes=2) is not None
    assert pack(pods_of(3, 600, MI), SHAPE, nodes=2) is None


def test_place_falls_back_to_balanced_layers_when_first_fit_strands_a_spread_group() -> None:
    # first fit puts a-0 beside c-0 on node-0; b's first layer then needs all three nodes
    # and node-0 has 100m left. Balanced layers put a-0 on the empty node-2 instead.
    pods = ([PodRequest("a-0", "a", 200, 1)] + [PodRequest(f"b-{i}", "b", 200, 1) for i in range(3)]
            + [PodRequest(f"c-{i}", "c", 700, 1) for i in range(2)])
    shape = NodeShape(1000, GI, 110)
    assert pack(pods, shape, nodes=3) is None
    balanced = pack(pods, shape, nodes=3, balanced=True)
    assert balanced is not None
    assert place(pods, shape, nodes=3) == balanced
    assert check_placement(pods, shape, balanced) == []
    assert dict(balanced.assignment)["a-0"] == 2
    assert min_nodes(pods, shape).nodes_needed == 3


def test_min_nodes_reports_pods_too_large_for_a_node() -> None:
    pods = pods_of(2, 100, MI) + [PodRequest("huge", "h", 1001, MI)]
    r = min_nodes(pods, SHAPE)
    assert r.nodes_needed is None and r.placement is None
    assert r.unfit == ("huge",)
    assert r.lower_bound == 2


def test_min_nodes_of_nothing() -> None:
    r = min_nodes([], SHAPE)
    assert (r.nodes_needed, r.lower_bound) == (0, 0)
    assert r.placement == Placement(0, (), (), (), ())


def test_min_nodes_honours_at_least() -> None:
    r = min_nodes(pods_of(2, 100, MI), SHAPE, at_least=5)
    assert r.nodes_needed == 5 and r.lower_bound == 1
    assert r.placement is not None and r.placement.nodes == 5


def test_min_nodes_spread_keeps_replicas_apart_when_there_is_room() -> None:
    # three replicas fit one node by size, but on 3 nodes they must sit one per node
    r = min_nodes(pods_of(3, 100, MI), SHAPE)
    assert r.nodes_needed == 1
    wide = pack(pods_of(3, 100, MI), SHAPE, nodes=3)
    assert wide is not None and wide.pods == (1, 1, 1)


def test_check_placement_reports_violations() -> None:
    pods = pods_of(2, 600, MI)
    stacked = Placement(2, (("g-0", 0), ("g-1", 0)), (1200, 0), (2 * MI, 0), (2, 0))
    problems = check_placement(pods, SHAPE, stacked)
    assert problems == ["g-1 on node-0: Insufficient cpu"]
    small = pods_of(2, 100, MI)
    spread_broken = Placement(2, (("g-0", 0), ("g-1", 0)), (200, 0), (2 * MI, 0), (2, 0))
    assert check_placement(small, SHAPE, spread_broken) == [f"g-1 on node-0: {R_SPREAD}"]
    missing = Placement(2, (("g-0", 0),), (100, 0), (MI, 0), (1, 0))
    assert check_placement(small, SHAPE, missing) == ["not placed: g-1"]


# ------------------------------------------------------------------ properties

shapes = st.builds(
    NodeShape,
    cpu_m=st.integers(500, 16_000),
    memory_bytes=st.integers(512, 64 * 1024).map(lambda m: m * MI),
    max_pods=st.integers(1, 30),
)


@st.composite
def workloads(draw: st.DrawFn) -> tuple[NodeShape, list[PodRequest]]:
    """A node shape and groups of pods (a service's replicas, one to three pod sizes per
    group as during a resize), each pod no larger than the node so a placement exists.
    Rules are per group, as they are per Deployment: maxSkew-1 spread (mostly), none,
    or maxSkew 2; anti-affinity for about one group in four."""
    shape = draw(shapes)
    pods: list[PodRequest] = []
    for g in range(draw(st.integers(0, 8))):
        sizes = draw(st.lists(st.tuples(st.integers(0, shape.cpu_m), st.integers(0, shape.memory_bytes)),
                              min_size=1, max_size=3))
        anti = draw(st.integers(0, 3)) == 0
        spread = draw(st.sampled_from([SpreadConstraint()] * 4 + [None, SpreadConstraint(max_skew=2)]))
        for i in range(draw(st.integers(1, 12))):
            cpu, mem = draw(st.sampled_from(sizes))
            pods.append(PodRequest(f"g{g}-{i}", f"g{g}", cpu, mem, anti_affinity=anti, spread=spread))
    return shape, pods


PROPS = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _independent_check(pods: list[PodRequest], shape: NodeShape, placement: Placement) -> None:
    """The guarantees, recomputed without the scheduler's own code."""
    by_name = {p.name: p for p in pods}
    assert sorted(name for name, _ in placement.assignment) == sorted(by_name)
    cpu = [0] * placement.nodes
    mem = [0] * placement.nodes
    count = [0] * placement.nodes
    groups: dict[str, list[int]] = {}
    for name, i in placement.assignment:
        p = by_name[name]
        cpu[i] += p.cpu_m
        mem[i] += p.memory_bytes
        count[i] += 1
        groups.setdefault(p.group, [0] * placement.nodes)[i] += 1
    assert max(cpu, default=0) <= shape.cpu_m
    assert max(mem, default=0) <= shape.memory_bytes
    assert max(count, default=0) <= shape.max_pods
    assert (tuple(cpu), tuple(mem), tuple(count)) == (placement.cpu_m, placement.memory_bytes, placement.pods)
    for group, per_node in groups.items():
        members = [p for p in pods if p.group == group]
        if members[0].spread is not None and members[0].spread.max_skew == 1:
            # maxSkew 1: two pods share a node only when the group outnumbers the nodes
            assert max(per_node) - min(per_node) <= 1, (group, per_node)
            if len(members) <= placement.nodes:
                assert max(per_node) <= 1, (group, per_node)
        if members[0].spread is not None:
            assert max(per_node) - min(per_node) <= members[0].spread.max_skew, (group, per_node)
        if members[0].anti_affinity:
            assert max(per_node) <= 1, (group, per_node)


@PROPS
@given(workloads())
def test_min_nodes_is_valid_and_never_below_the_lower_bound(case: tuple[NodeShape, list[PodRequest]]) -> None:
    shape, pods = case
    r = min_nodes(pods, shape)
    lb = lower_bound(pods, shape)
    assert r.lower_bound == lb
    assert r.nodes_needed is not None and r.nodes_needed >= lb
    assert r.placement is not None and r.placement.nodes == r.nodes_needed
    assert check_placement(pods, shape, r.placement) == []
    _independent_check(pods, shape, r.placement)


@PROPS
@given(workloads())
def test_min_nodes_is_the_first_count_place_packs(case: tuple[NodeShape, list[PodRequest]]) -> None:
    shape, pods = case
    r = min_nodes(pods, shape)
    assert r.nodes_needed is not None
    for n in range(r.lower_bound, r.nodes_needed):
        assert place(pods, shape, nodes=n) is None, n


@PROPS
@given(workloads())
def test_pack_below_the_lower_bound_never_succeeds(case: tuple[NodeShape, list[PodRequest]]) -> None:
    shape, pods = case
    lb = lower_bound(pods, shape)
    for n in range(0, lb):
        assert pack(pods, shape, nodes=n) is None, n
        assert pack(pods, shape, nodes=n, balanced=True) is None, n


@PROPS
@given(workloads(), st.integers(0, 6))
def test_any_successful_pack_is_valid(case: tuple[NodeShape, list[PodRequest]], extra: int) -> None:
    shape, pods = case
    n = lower_bound(pods, shape) + extra
    first_fit = pack(pods, shape, nodes=n)
    for placement in (first_fit, pack(pods, shape, nodes=n, balanced=True), place(pods, shape, nodes=n)):
        if placement is not None:
            assert check_placement(pods, shape, placement) == []
            _independent_check(pods, shape, placement)
    if first_fit is not None:
        assert place(pods, shape, nodes=n) == first_fit


@PROPS
@given(workloads())
def test_batched_pack_equals_one_pod_at_a_time_first_fit(case: tuple[NodeShape, list[PodRequest]]) -> None:
    """``pack`` places runs of identical pods in one go; it must agree with placing
    them one by one on the first node ``filter_node`` accepts."""
    shape, pods = case
    n = lower_bound(pods, shape)
    assert pack(pods, shape, nodes=n) == _one_by_one(pods, shape, n)


def _one_by_one(pods: list[PodRequest], shape: NodeShape, n: int) -> Placement | None:
    nodes = [NodeState(f"node-{i}", shape.cpu_m, shape.memory_bytes, shape.max_pods) for i in range(n)]
    assignment = []
    for p in ffd_order(pods, shape):
        i = next((i for i, node in enumerate(nodes) if not filter_node(p, node, nodes)), None)
        if i is None:
            return None
        nodes[i].add(p)
        assignment.append((p.name, i))
    return Placement(n, tuple(assignment), tuple(x.used_cpu_m for x in nodes),
                     tuple(x.used_memory_bytes for x in nodes), tuple(x.pod_count for x in nodes))


@PROPS
@given(workloads())
def test_a_pod_larger_than_a_node_is_reported_unfit(case: tuple[NodeShape, list[PodRequest]]) -> None:
    shape, pods = case
    giant = PodRequest("giant", "giant", shape.cpu_m + 1, 0)
    r = min_nodes([*pods, giant], shape)
    assert r.nodes_needed is None and r.unfit == ("giant",)


def test_property_strategy_reaches_the_interesting_cases() -> None:
    """Guard against a strategy that never packs more than one pod per node or never
    needs more than one node: the examples above must include both."""
    shape = NodeShape(1000, GI, 10)
    pods = pods_of(7, 300, 100 * MI)
    r = min_nodes(pods, shape)
    assert r.nodes_needed == ceil(7 * 300 / 1000) == 3
    assert r.placement is not None and max(r.placement.pods) > 1


def test_packing_is_not_monotone_in_the_node_count() -> None:
    """The docstring's warning, pinned: packed on 2 nodes, the same pods fail on 3 (g1's
    last pod may only join node-0, where the large pods left 66m), so a caller judging a
    given count must pack at that count (the plan does)."""
    shape = NodeShape(500, 512 * MI, 4)
    pods = [PodRequest("g0-0", "g0", 98, 0, anti_affinity=True),
            PodRequest("g1-0", "g1", 67, 0), PodRequest("g1-1", "g1", 98, 0),
            PodRequest("g1-2", "g1", 98, 0),
            PodRequest("g2-0", "g2", 336, 0, anti_affinity=True),
            PodRequest("g3-0", "g3", 98, 0, spread=None)]
    assert min_nodes(pods, shape).nodes_needed == 2
    assert [place(pods, shape, nodes=n) is not None for n in range(1, 6)] == [False, True, False, True, True]


def test_min_nodes_stops_at_at_most() -> None:
    # 30 pods of 600m: one per 1000m node, so 30 nodes; a search capped at 20 ends there
    pods = [PodRequest(f"p{i}", f"g{i}", 600, MI) for i in range(30)]
    capped = min_nodes(pods, SHAPE, at_most=20)
    assert capped.nodes_needed is None and capped.placement is None and capped.beyond == 20
    assert min_nodes(pods, SHAPE, at_most=30).nodes_needed == 30
    assert min_nodes(pods, SHAPE, at_most=5).beyond == 5  # below the lower bound: no packing tried
