"""Zones (issue 12): regional node counts, the zone spread in the packing, the zone-loss
scenario and gate, the n+1 gate, the exact mode with zones, and the inputs that ask for them."""
from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eafix_capacity.catalog import Catalog, catalog_from_dict
from eafix_capacity.cli import main
from eafix_capacity.errors import InputError
from eafix_capacity.exact import min_nodes_exact, pack_exact
from eafix_capacity.inputs import PlanParams, plan_from_params
from eafix_capacity.nodes import NodeType, allocatable, load_node_types
from eafix_capacity.plan import PlanOptions, make_plan
from eafix_capacity.profiles import Profile, load_profiles
from eafix_capacity.scheduling import (ZONE, NodeShape, PodRequest, SpreadConstraint, check_placement, min_nodes,
                                       pack, place)
from eafix_capacity.zones import after_zone_loss, node_zones, parse_zones, resolve_zones, zone_labels

NODE = "n2-standard-8"
MI = 2**20


@pytest.fixture(scope="module")
def node_type() -> NodeType:
    return load_node_types()[NODE]


@pytest.fixture(scope="module")
def profile() -> Profile:
    return load_profiles()["minimum"]


@pytest.fixture(scope="module")
def pod_cpu_m(node_type: NodeType) -> int:
    """A CPU request such that exactly two pods fit one node's room for workloads."""
    room = allocatable(node_type, provider="gke").workload_cpu_m
    cpu = int(room / 2.5)
    assert room // cpu == 2
    return cpu


def feed(cpu_m: int, replicas: int = 4) -> Catalog:
    svc = {"name": "feed", "port": 8080, "tier": "trading", "kind": "Deployment", "replicas": replicas,
           "containers": [{"name": "feed", "requests": {"cpu": f"{cpu_m}m", "memory": "64Mi"},
                           "limits": {"cpu": f"{cpu_m}m", "memory": "64Mi"}}],
           "source": {"port": "seed", "replicas": "seed", "resources": "seed"}}
    return catalog_from_dict({"services": [svc]}, file="feed.yaml")


# ------------------------------------------------------------------ zones.py

def test_zone_names_counts_and_labels() -> None:
    assert parse_zones("a, b ,c") == ("a", "b", "c") and parse_zones(["a", "b"]) == ("a", "b")
    assert parse_zones("3") == 3 and parse_zones(2) == 2 and parse_zones("") == () and parse_zones(None) == ()
    assert resolve_zones(3, cloud="gcp") == ("a", "b", "c")
    assert resolve_zones("3", cloud="azure") == ("1", "2", "3")   # AKS zones are numbered
    assert zone_labels("azure", ("1", "2")) == ("eastus-1", "eastus-2")
    assert zone_labels("aws", ("a", "b")) == ("us-east-1a", "us-east-1b")
    assert zone_labels("gcp", ("europe-west2-a", "europe-west2-b")) == ("europe-west2-a", "europe-west2-b")
    assert node_zones(("x", "y", "z"), 5) == ("x", "y", "z", "x", "y")
    assert after_zone_loss(("x", "y", "z"), 5) == ("y", "z", "y")


@pytest.mark.parametrize(("value", "message"), [
    (True, "zones: not zone names or a count True"),
    (0, "zones: zone count out of range 0"),
    ("11", "zones: zone count out of range 11"),
    ("a,,b", "zones: empty zone name in 'a,,b'"),
    ([1, 2], "zones: not zone names or a count [1, 2]"),
    ("a,b,a", "zone 'a' is given twice in 'a,b,a'"),
    ("a,b_", "zone 'b_' makes the label topology.kubernetes.io/zone=us-central1-b_, which Kubernetes refuses"),
])
def test_bad_zones_are_one_line_errors(value, message) -> None:
    with pytest.raises(InputError) as e:
        resolve_zones(value, cloud="gcp")
    assert message in str(e.value) and "\n" not in str(e.value)


# ------------------------------------------------------------------ packing with a zone spread

def _zoned(name: str, group: str, cpu: int, *, skew: int = 1) -> PodRequest:
    return PodRequest(name, group, cpu, 64 * MI, zone_spread=SpreadConstraint(topology_key=ZONE, max_skew=skew))


def test_the_zone_spread_refuses_what_the_hostname_spread_alone_allows() -> None:
    shape = NodeShape(1000, 4096 * MI, 110)
    zones = ("a", "a", "b")
    plain = [PodRequest(f"p{i}", "web", 400, 64 * MI) for i in range(4)]
    zoned = [_zoned(f"p{i}", "web", 400) for i in range(4)]
    assert pack(plain, shape, nodes=3, zones=zones) is not None
    # zone b has one node with room for 2: the spread puts 2 in a and 2 in b
    placed = pack(zoned, shape, nodes=3, zones=zones)
    assert placed is not None and not check_placement(zoned, shape, placed)
    per_zone = [placed.zones[i] for _, i in placed.assignment]
    assert per_zone.count("a") == per_zone.count("b") == 2
    # 6 pods: b would need 3, room for 2: refused, as kube-scheduler refuses the third
    six = [_zoned(f"p{i}", "web", 400) for i in range(6)]
    assert pack(six, shape, nodes=3, zones=zones) is None
    assert pack([PodRequest(f"p{i}", "web", 400, 64 * MI) for i in range(6)], shape, nodes=3, zones=zones)
    # a pod with a zone spread on nodes without zones fits nowhere (missing required label)
    assert pack(zoned[:1], shape, nodes=3) is None


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from("abcd"), st.integers(50, 900), st.booleans()), min_size=1, max_size=18),
       st.integers(2, 3), st.integers(1, 9))
def test_no_zoned_placement_breaks_either_spread(spec, zones, nodes) -> None:
    shape = NodeShape(1000, 4096 * MI, 8)
    pods = [(_zoned if z else lambda n, g, c: PodRequest(n, g, c, 64 * MI))(f"p{i}", g, c)
            for i, (g, c, z) in enumerate(spec)]
    labels = node_zones(tuple("xyz"[:zones]), nodes)
    placed = place(pods, shape, nodes=nodes, zones=labels)
    if placed is not None:
        assert check_placement(pods, shape, placed) == []
    r = min_nodes(pods, shape, zones=lambda n: node_zones(tuple("xyz"[:zones]), n), step=zones, at_most=200)
    assert r.nodes_needed is not None and r.nodes_needed % zones == 0
    assert r.placement is not None and check_placement(pods, shape, r.placement) == []


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from("abc"), st.integers(100, 700)), min_size=2, max_size=12),
       st.integers(2, 3))
def test_the_exact_count_with_zones_is_never_above_first_fit_and_its_placement_is_valid(spec, zones) -> None:
    shape = NodeShape(1000, 4096 * MI, 110)
    pods = [_zoned(f"p{i}", g, c) for i, (g, c) in enumerate(spec)]
    labels = tuple("xyz"[:zones])
    ffd = min_nodes(pods, shape, zones=lambda n: node_zones(labels, n), step=zones, at_most=200)
    e = min_nodes_exact(pods, shape, seconds=2, ffd=ffd, zones=labels, modulus=zones)
    assert ffd.placement is not None and e.nodes is not None and e.nodes <= ffd.placement.nodes
    assert e.nodes % zones == 0 and e.lower_bound <= e.nodes
    assert e.placement is not None and e.placement.zones == node_zones(labels, e.nodes)
    assert check_placement(pods, shape, e.placement) == []
    fixed = pack_exact(pods, shape, nodes=e.nodes, zones=node_zones(labels, e.nodes), seconds=2)
    assert fixed is not None and check_placement(pods, shape, fixed) == []


# ------------------------------------------------------------------ the plan, by hand

def test_zone_loss_and_counts_match_the_hand_computed_case(profile, node_type, pod_cpu_m) -> None:
    """4 replicas, 2 per node, zones a and b, no headroom.

    baseline: 2 per zone, one node each: 2 nodes. node-drain: 2 nodes leave 1 (room for 2 of
    4); 4 leave 3 (a, b, a), zone b's one node takes its 2: 4. zone-loss: zone a lost, the 4
    run on b's nodes, 2 each: b needs 2 nodes, so 4. The rollout's surge pod (25% of 4) makes
    5 pods: 3 nodes, 4 as a multiple of 2."""
    plan = make_plan(feed(pod_cpu_m), profile, node_type,
                     PlanOptions(provider="gke", zones=("a", "b"), headroom_pct=0))
    counts = {name: r.nodes_needed for name, r in plan.scenarios.items()}
    assert counts == {"baseline": 2, "hpa-max": 2, "rollout": 4, "node-drain": 4, "zone-loss": 4}
    assert plan.nodes % 2 == 0 and plan.node_zones.count("us-central1-a") == plan.node_zones.count("us-central1-b")
    zl = plan.scenarios["zone-loss"]
    assert zl.fits and zl.nodes_evaluated == plan.nodes // 2
    assert zl.placement is not None and set(zl.placement.zones) == {"us-central1-b"}
    (v,) = plan.survivors
    assert (v.service, v.replicas, v.survivors) == ("feed", 4, 2)
    gate = {g.name: g for g in plan.gates}["zone-loss"]
    assert gate.passed and "us-central1-a lost" in gate.detail and "fewest feed 2 of 4" in gate.detail
    # the same pool without equal zones: node-drain on 3 nodes leaves a and b
    zonal = make_plan(feed(pod_cpu_m), profile, node_type,
                      PlanOptions(provider="gke", zones=("a", "b"), headroom_pct=0, zonal_pool=True))
    assert zonal.scenarios["node-drain"].nodes_needed == 3 and zonal.scenarios["zone-loss"].nodes_needed == 4


def test_n_plus_one_is_the_mixin_inequality(profile, node_type, pod_cpu_m) -> None:
    a = allocatable(node_type, provider="gke")
    for nodes in (2, 4):
        plan = make_plan(feed(pod_cpu_m), profile, node_type,
                         PlanOptions(provider="gke", zones=("a", "b"), headroom_pct=0, nodes=nodes))
        gate = {g.name: g for g in plan.gates}["n+1"]
        cpu = 4 * pod_cpu_m + a.daemonset_cpu_m * nodes
        mem = 4 * 64 * MI + a.daemonset_memory_bytes * nodes
        expected = cpu <= a.cpu_m * (nodes - 1) and mem <= a.memory_bytes * (nodes - 1)
        assert gate.passed is expected, gate.detail
    assert not {g.name: g for g in make_plan(feed(pod_cpu_m), profile, node_type, PlanOptions(
        provider="gke", zones=("a", "b"), headroom_pct=0, nodes=2)).gates}["n+1"].passed


def test_a_lost_zone_that_takes_every_replica_fails_the_gate(profile, node_type) -> None:
    """With the zone spread a 2-replica service keeps one replica when a zone is lost; the
    gate fails when a service of 2 or more would keep none (survivors as a placement without
    the spread would leave them), and names it."""
    from dataclasses import replace

    from eafix_capacity.plan import ZoneSurvivors, _zone_loss_gate
    plan = make_plan(feed(100, replicas=2), profile, node_type, PlanOptions(provider="gke", zones=("a", "b", "c")))
    (v,) = plan.survivors
    assert v.survivors == 1 and {g.name: g for g in plan.gates}["zone-loss"].passed
    fits = {g.name: g for g in plan.gates}["zone-loss"]
    both = replace(plan, survivors=(ZoneSurvivors("feed", "trading", 2, 0, "us-central1-a"),))
    gate = _zone_loss_gate(both, fits)
    assert not gate.passed and "left with none: feed (2 replicas in us-central1-a)" in gate.detail
    single = replace(plan, survivors=(ZoneSurvivors("feed", "trading", 1, 0, "us-central1-a"),))
    gate = _zone_loss_gate(single, fits)
    assert gate.passed and "single replicas, down until rescheduled: feed" in gate.detail


def test_regional_counts_are_multiples_of_the_zones_for_every_node_type(profile) -> None:
    from eafix_capacity.catalog import load_catalog
    catalog = load_catalog()
    recommended = load_profiles()["recommended"]
    for name, t in load_node_types().items():
        provider = {"gcp": "gke", "aws": "eks", "azure": "aks"}[t.provider]
        plan = make_plan(catalog, recommended, t, PlanOptions(provider=provider, zones=3))
        assert plan.nodes % 3 == 0, name
        assert all(r.fits for r in plan.scenarios.values()), name
        for scenario, r in plan.scenarios.items():
            assert r.placement is not None
            assert check_placement(plan.pod_requests(scenario), plan.headroom_shape if scenario == "baseline"
                                   else _full(plan), r.placement) == [], (name, scenario)


def _full(plan) -> NodeShape:
    a = plan.node
    return NodeShape(a.workload_cpu_m, a.workload_memory_bytes, a.workload_pods)


def test_without_zones_nothing_changes(profile, node_type, pod_cpu_m) -> None:
    base = make_plan(feed(pod_cpu_m), profile, node_type, PlanOptions(provider="gke"))
    d = base.to_dict()
    assert "zone-loss" not in d["scenarios"] and "n+1" not in [g["name"] for g in d["gates"]]
    assert "zones" not in d["inputs"] and "zone_loss_survivors" not in d and "nodes_per_zone" not in d["cluster"]
    zoned = make_plan(feed(pod_cpu_m), profile, node_type, PlanOptions(provider="gke", zones=("a", "b")))
    z = zoned.to_dict()
    assert z["inputs"]["zones"] == ["us-central1-a", "us-central1-b"] and z["inputs"]["zonal_pool"] is False
    assert sum(z["cluster"]["nodes_per_zone"].values()) == zoned.nodes
    assert z["zone_loss_survivors"][0]["service"] == "feed"


@pytest.mark.parametrize(("options", "message"), [
    ({"zones": ("a", "b", "c"), "nodes": 4},
     "nodes: 4 nodes do not split evenly over 3 zones: 4; a multiple of 3 (a regional pool has the same number"),
    ({"zones": ("a",)}, "zones: a zone loss needs 2 or more zones, got 'a'"),
    ({"zonal_pool": True}, "zonal_pool: a zonal pool needs zones True"),
])
def test_bad_zone_options_are_refused(profile, node_type, pod_cpu_m, options, message) -> None:
    with pytest.raises(InputError) as e:
        make_plan(feed(pod_cpu_m), profile, node_type, PlanOptions(provider="gke", **options))
    assert message in str(e.value) and "\n" not in str(e.value)
    assert make_plan(feed(pod_cpu_m), profile, node_type, PlanOptions(
        provider="gke", zones=("a", "b", "c"), nodes=4, zonal_pool=True)).nodes == 4


def test_exact_with_zones_through_the_plan(profile, node_type, pod_cpu_m) -> None:
    ffd = make_plan(feed(pod_cpu_m), profile, node_type, PlanOptions(provider="gke", zones=("a", "b"), headroom_pct=0))
    exact = make_plan(feed(pod_cpu_m), profile, node_type,
                      PlanOptions(provider="gke", zones=("a", "b"), headroom_pct=0, exact=True))
    for name, r in exact.scenarios.items():
        assert r.exact == "optimal" and r.nodes_needed is not None
        assert r.nodes_needed <= (ffd.scenarios[name].nodes_needed or 0) and r.nodes_needed % 2 == 0
        assert r.first_fit_nodes == ffd.scenarios[name].nodes_needed, name


# ------------------------------------------------------------------ params, CLI, report

def test_params_take_zones_and_the_notebook_form_round_trips() -> None:
    p = PlanParams.from_mapping({"zones": ["a", "b", "c"], "zonal_pool": True})
    assert p.zones == "a,b,c" and p.zonal_pool
    assert PlanParams.from_notebook(**p.notebook_parameters()) == p
    assert PlanParams.from_notebook(**{**PlanParams().notebook_parameters(), "zones": "3"}).zones == "3"
    with pytest.raises(InputError, match="zonal_pool: a zonal pool needs zones"):
        PlanParams(zonal_pool=True)
    with pytest.raises(InputError, match="f.yaml: zones: zone count out of range 0"):
        PlanParams.from_mapping({"zones": 0}, source="f.yaml")
    plan = plan_from_params(PlanParams(provider="aks", node_type="Standard_D8s_v5", zones="3"))
    assert plan.zone_labels == ("eastus-1", "eastus-2", "eastus-3")


def test_cli_plan_with_zones(capsys) -> None:
    assert main(["plan", "--zones", "a,b,c"]) == 0
    out = capsys.readouterr().out
    assert "zone-loss" in out and "n+1" in out
    assert ("zones: us-central1-a 1, us-central1-b 1, us-central1-c 1 node(s); the same in every zone "
            "(a regional pool); zone-loss judges the loss of us-central1-a") in out
    assert main(["plan", "--zones", "3", "--format", "json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["inputs"]["zones"] == ["us-central1-a", "us-central1-b", "us-central1-c"]
    assert d["cluster"]["nodes"] % 3 == 0 and "zone-loss" in d["scenarios"]
    assert main(["plan", "--zones", "a,b,c", "--nodes", "4"]) == 2
    err = capsys.readouterr().err
    assert "nodes: 4 nodes do not split evenly over 3 zones" in err and err.count("\n") == 1
    assert main(["plan", "--zonal-pool"]) == 2
    assert "zonal_pool: a zonal pool needs zones" in capsys.readouterr().err


def test_the_report_command_reproduces_zones_exact_and_growth() -> None:
    from eafix_capacity.cli import build_parser, params_from_args
    from eafix_capacity.report import reproduce_command
    import shlex
    params = PlanParams(zones="a,b,c", zonal_pool=True, exact=True, exact_seconds=2.0, growth_pct=5.0,
                        lead_time_days=30)
    argv = shlex.split(reproduce_command(params))
    assert params_from_args(build_parser().parse_args(argv[1:])) == params


def test_the_twin_of_a_zoned_plan_has_its_zones_and_spread() -> None:
    """The sim a sign-off rehearses on has the plan's zones, and the plan's rendering carries
    the zone spread, so what the sim places keeps each multi-replica service in every zone."""
    from eafix_capacity.signoff.twin import plan_objects, start_plan_sim
    plan = plan_from_params(PlanParams(zones="a,b,c"))
    spread = [o for o in plan_objects(plan) if o["kind"] in ("Deployment", "StatefulSet")
              and len(o["spec"]["template"]["spec"]["topologySpreadConstraints"]) == 2]
    assert {o["metadata"]["name"] for o in spread} == {s.name for s in plan.catalog.services
                                                       if s.replicas > 1 or (s.hpa and s.hpa.max_replicas > 1)}
    session = start_plan_sim(plan)
    try:
        from kubernetes import client
        nodes = client.CoreV1Api(session.api).list_node().items
        assert [n.metadata.labels[ZONE] for n in nodes] == list(plan.node_zones)
    finally:
        session.close()


def test_verify_checks_the_zones_and_each_services_zone_spread() -> None:
    """A zoned plan's verify: nodes per zone as planned, and per multi-replica service at most
    one more replica in one zone than another (what the zone spread promises)."""
    from eafix_capacity.cluster.livestate import LiveState, Node, Pod
    from eafix_capacity.cluster.verify import verify
    plan = plan_from_params(PlanParams(zones="a,b,c", nodes=3))
    zones = ["us-central1-a", "us-central1-b", "us-central1-c"]
    nodes = tuple(Node(f"n{i}", "n2-standard-8", {}, ready=True, zone=z) for i, z in enumerate(zones))

    def pods(*where: int) -> tuple[Pod, ...]:
        return tuple(Pod(namespace="eafix-trading", name=f"risk-manager-{k}", phase="Running", node=f"n{i}",
                         labels={"app.kubernetes.io/name": "risk-manager"}) for k, i in enumerate(where))

    def checks(live: LiveState) -> dict[str, object]:
        return {c.name: c for c in verify(live, plan) if c.name == "node-zones"
                or (c.name == "zone-spread" and c.subject == "service risk-manager")}

    good = checks(LiveState(nodes=nodes, pods=pods(0, 1)))
    assert good["node-zones"].status == "PASS" and good["zone-spread"].status == "PASS"
    skewed = checks(LiveState(nodes=nodes, pods=pods(0, 0, 0)))
    assert skewed["zone-spread"].status == "FAIL"
    assert "3 of 3 replicas in us-central1-a" in skewed["zone-spread"].evidence
    one_zone = tuple(Node(f"n{i}", "n2-standard-8", {}, ready=True, zone="us-central1-a") for i in range(3))
    missing = checks(LiveState(nodes=one_zone, pods=pods(0, 1)))["node-zones"]
    assert missing.status == "FAIL" and "missing us-central1-b=1, us-central1-c=1" in missing.evidence
    assert not [c for c in verify(LiveState(nodes=nodes), plan_from_params(PlanParams(nodes=3)))
                if c.name in ("node-zones", "zone-spread")]
