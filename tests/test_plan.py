"""The capacity plan: the JSON shape, totals by hand, gates, and the recommended count."""
from __future__ import annotations

import json
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eafix_capacity.catalog import Catalog, load_catalog
from eafix_capacity.errors import EafixCapacityError, InputError
from eafix_capacity.mesh import SIDECAR
from eafix_capacity.nodes import NodeType, load_node_types
from eafix_capacity.plan import WORKLOAD_GATES, Plan, PlanOptions, make_plan, service_table
from eafix_capacity.profiles import Profile, load_profiles
from eafix_capacity.scenarios import SCENARIOS
from eafix_capacity.scheduling import check_placement

MI = 2**20
GI = 2**30
GATES = ("profile-cpu", "profile-memory", "profile-storage", "baseline-headroom", "hpa-max", "rollout",
         "node-drain", "storage-claims", "cpu-limit-overcommit", "memory-limit-overcommit")
RESOURCE_FIELDS = ("cpu_request_m", "memory_request_bytes", "cpu_limit_m", "memory_limit_bytes")
CONTROL_PLANE = [(500, 2048 * MI, 500, 2048 * MI), (100, 128 * MI, 2000, GI)]   # istiod, gateway


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog()


@pytest.fixture(scope="module")
def profiles() -> dict[str, Profile]:
    return load_profiles()


@pytest.fixture(scope="module")
def node_types() -> dict[str, NodeType]:
    return load_node_types()


@pytest.fixture(scope="module")
def default_plan(catalog: Catalog, profiles: dict[str, Profile], node_types: dict[str, NodeType]) -> Plan:
    return make_plan(catalog, profiles["recommended"], node_types["n2-standard-8"], PlanOptions(provider="gke"))


@pytest.fixture(scope="module")
def mesh_plan(catalog: Catalog, profiles: dict[str, Profile], node_types: dict[str, NodeType]) -> Plan:
    return make_plan(catalog, profiles["recommended"], node_types["n2-standard-8"],
                     PlanOptions(provider="gke", mesh="istio"))


def plan_for(catalog: Catalog, profiles: dict[str, Profile], node_types: dict[str, NodeType], *,
             node_type: str = "n2-standard-8", profile: str = "recommended", **options) -> Plan:
    options.setdefault("provider", "gke")
    return make_plan(catalog, profiles[profile], node_types[node_type], PlanOptions(**options))


def gates(plan: Plan) -> dict[str, bool]:
    return {g.name: g.passed for g in plan.gates}


def failed(plan: Plan) -> set[str]:
    return {g.name for g in plan.failed_gates()}


def hand_totals(catalog: Catalog, *, mesh: bool) -> dict[str, int]:
    sums = [0, 0, 0, 0]
    for s in catalog.services:
        for c in s.containers:
            r = c.resources
            for i, v in enumerate((r.cpu_request_m, r.memory_request_bytes, r.cpu_limit_m, r.memory_limit_bytes)):
                sums[i] += v * s.replicas
        if mesh and s.mesh_inject:
            for i, v in enumerate((100, 128 * MI, 2000, GI)):
                sums[i] += v * s.replicas
    if mesh:
        for cp in CONTROL_PLANE:
            for i, v in enumerate(cp):
                sums[i] += v
    return dict(zip(RESOURCE_FIELDS, sums))


# ------------------------------------------------------------------ the JSON shape


def test_json_shape(default_plan: Plan, catalog: Catalog) -> None:
    d = json.loads(json.dumps(default_plan.to_dict()))
    assert {"inputs", "services", "totals", "scenarios", "gates"} <= set(d)
    assert d["inputs"]["profile"] == "recommended"
    assert d["inputs"]["provider"] == "gke"
    assert d["inputs"]["node_type"] == "n2-standard-8"
    assert d["inputs"]["mesh"] == "none"
    assert d["inputs"]["headroom_pct"] == 20.0
    assert d["inputs"]["nodes"] is None

    assert [s["name"] for s in d["services"]] == catalog.names()
    for s, svc in zip(d["services"], catalog.services):
        assert {"name", "port", "replicas", *RESOURCE_FIELDS} <= set(s)
        assert (s["port"], s["replicas"]) == (svc.port, svc.replicas)
        r = svc.pod_resources
        assert [s[f] for f in RESOURCE_FIELDS] == [r.cpu_request_m, r.memory_request_bytes,
                                                   r.cpu_limit_m, r.memory_limit_bytes]
        assert all(isinstance(s[f], int) for f in RESOURCE_FIELDS)
    seed = next(s for s in d["services"] if s["name"] == "indicator-engine")
    assert [seed[f] for f in RESOURCE_FIELDS] == [300, 512 * MI, 700, GI]

    assert {f: d["totals"][f] for f in RESOURCE_FIELDS} == hand_totals(catalog, mesh=False)

    assert list(d["scenarios"]) == list(SCENARIOS)
    for name, s in d["scenarios"].items():
        assert {"nodes_needed", "lower_bound", "cpu_utilisation", "memory_utilisation"} <= set(s), name
        assert isinstance(s["nodes_needed"], int) and s["nodes_needed"] >= s["lower_bound"] >= 1

    assert [g["name"] for g in d["gates"]] == list(GATES)
    for g in d["gates"]:
        assert set(g) == {"name", "passed", "detail"}
        assert isinstance(g["passed"], bool)
        assert g["detail"] and "\n" not in g["detail"]


def test_totals_with_the_mesh_include_every_sidecar_and_the_control_plane(mesh_plan: Plan,
                                                                          catalog: Catalog) -> None:
    d = mesh_plan.to_dict()
    assert d["inputs"]["mesh"] == "istio"
    assert {f: d["totals"][f] for f in RESOURCE_FIELDS} == hand_totals(catalog, mesh=True)
    # per-service figures stay the service's own containers
    for s, svc in zip(d["services"], catalog.services):
        assert s["cpu_request_m"] == svc.pod_resources.cpu_request_m
    assert d["scenarios"]["baseline"]["pods"] == 22 + 2


def test_utilisation_is_requests_plus_daemonsets_over_allocatable(default_plan: Plan) -> None:
    d = default_plan.to_dict()
    per_node = d["cluster"]["per_node"]
    for name, s in d["scenarios"].items():
        n = s["nodes_evaluated"]
        cpu = (s["cpu_request_m"] + per_node["daemonset_cpu_m"] * n) / (per_node["allocatable_cpu_m"] * n)
        mem = (s["memory_request_bytes"] + per_node["daemonset_memory_bytes"] * n) / (
            per_node["allocatable_memory_bytes"] * n)
        assert s["cpu_utilisation"] == pytest.approx(cpu, abs=1e-4), name
        assert s["memory_utilisation"] == pytest.approx(mem, abs=1e-4), name
        assert 0 < s["cpu_utilisation"] <= 1 and 0 < s["memory_utilisation"] <= 1


def test_node_drain_is_judged_on_one_node_fewer(default_plan: Plan) -> None:
    s = default_plan.scenarios
    assert s["node-drain"].nodes_evaluated == default_plan.nodes - 1
    assert s["baseline"].nodes_evaluated == default_plan.nodes
    # the drained cluster runs the baseline without headroom, on one node fewer
    assert s["node-drain"].nodes_needed >= 2
    assert s["node-drain"].lower_bound >= 2


def test_placements_are_valid(default_plan: Plan, mesh_plan: Plan) -> None:
    from eafix_capacity.plan import _requests
    from eafix_capacity.scenarios import demand
    from eafix_capacity.scheduling import NodeShape
    for plan in (default_plan, mesh_plan):
        a = plan.node
        full = NodeShape(a.workload_cpu_m, a.workload_memory_bytes, a.workload_pods)
        for name, r in plan.scenarios.items():
            assert r.placement is not None and r.placement.nodes == r.nodes_evaluated
            pods = _requests(demand(plan.catalog, name, mesh=plan.options.mesh))
            shape = plan.headroom_shape if name == "baseline" else full
            assert check_placement(pods, shape, r.placement) == [], name
            assert len(r.placement.assignment) == r.pods


def test_default_plan_recommends_three_n2_standard_8_and_passes(default_plan: Plan) -> None:
    # 24 cores of the recommended profile = 3 x 8 vCPUs; the workload needs fewer
    assert default_plan.recommended_nodes == 3
    assert default_plan.nodes == 3 and not default_plan.nodes_given
    assert default_plan.passed
    assert default_plan.to_dict()["passed"] is True


# ------------------------------------------------------------------ gates on constructed cases


def test_one_node_fails_baseline_headroom_and_node_drain(catalog, profiles, node_types) -> None:
    plan = plan_for(catalog, profiles, node_types, nodes=1)
    assert plan.nodes == 1 and plan.nodes_given
    assert {"baseline-headroom", "node-drain"} <= failed(plan)
    assert "does not fit on 0 nodes" in next(g.detail for g in plan.gates if g.name == "node-drain")
    assert not plan.passed


def test_too_few_nodes_fails_node_drain_but_not_baseline(catalog, profiles, node_types) -> None:
    base = plan_for(catalog, profiles, node_types, node_type="n2-standard-4", headroom_pct=0.0)
    needed = {name: r.nodes_needed for name, r in base.scenarios.items()}
    assert needed["baseline"] < needed["node-drain"]
    plan = plan_for(catalog, profiles, node_types, node_type="n2-standard-4", headroom_pct=0.0,
                    nodes=needed["node-drain"] - 1)
    assert gates(plan)["baseline-headroom"]
    assert not gates(plan)["node-drain"]


def test_tiny_storage_fails_storage_claims_and_profile_storage(catalog, profiles, node_types) -> None:
    plan = plan_for(catalog, profiles, node_types, storage_bytes=GI)
    assert failed(plan) == {"storage-claims", "profile-storage"}
    detail = next(g.detail for g in plan.gates if g.name == "storage-claims")
    assert detail == "claims of 145.0 GiB against 1.0 GiB provisioned"


def test_storage_between_claims_and_profile_fails_only_the_profile(catalog, profiles, node_types) -> None:
    plan = plan_for(catalog, profiles, node_types, storage_bytes=200 * GI)
    assert failed(plan) == {"profile-storage"}


def test_non_ssd_storage_fails_the_recommended_profile_only(catalog, profiles, node_types) -> None:
    assert failed(plan_for(catalog, profiles, node_types, storage_media="any")) == {"profile-storage"}
    assert gates(plan_for(catalog, profiles, node_types, profile="minimum", storage_media="any"))[
        "profile-storage"]


def test_low_cpu_overcommit_ratio_fails_at_a_given_count(catalog, profiles, node_types) -> None:
    plan = plan_for(catalog, profiles, node_types, nodes=3, cpu_limit_ratio=0.1)
    assert failed(plan) == {"cpu-limit-overcommit"}
    detail = next(g.detail for g in plan.gates if g.name == "cpu-limit-overcommit")
    assert "(max 0.1x)" in detail


def test_low_memory_overcommit_ratio_fails_at_a_given_count(catalog, profiles, node_types) -> None:
    plan = plan_for(catalog, profiles, node_types, nodes=3, memory_limit_ratio=0.05)
    assert failed(plan) == {"memory-limit-overcommit"}


def test_low_overcommit_ratio_raises_the_recommended_count_until_it_passes(catalog, profiles, node_types) -> None:
    plan = plan_for(catalog, profiles, node_types, cpu_limit_ratio=0.1)
    assert plan.passed
    assert plan.recommended_nodes > 3
    smaller = plan_for(catalog, profiles, node_types, cpu_limit_ratio=0.1, nodes=plan.recommended_nodes - 1)
    assert failed(smaller) == {"cpu-limit-overcommit"}


def test_recommended_count_meets_an_overcommit_ratio_at_the_boundary(catalog, profiles, node_types) -> None:
    """The ratio is chosen so limits / ratio lies half a millicore above a multiple of a
    node's workload CPU: truncating the quotient used to recommend one node too few."""
    base = plan_for(catalog, profiles, node_types)
    per_node, limits = base.node.workload_cpu_m, base.totals.cpu_limit_m
    for k in (4, 6, 9):
        ratio = limits / (per_node * k + 0.5)
        plan = plan_for(catalog, profiles, node_types, cpu_limit_ratio=ratio)
        assert plan.recommended_nodes == k + 1
        assert plan.passed, plan.failed_gates()


def test_profile_cpu_and_memory_gates(catalog, profiles, node_types) -> None:
    plan = plan_for(catalog, profiles, node_types, nodes=2)       # 16 cores, 64 GiB against 24 / 48
    assert not gates(plan)["profile-cpu"] and gates(plan)["profile-memory"]
    assert next(g.detail for g in plan.gates if g.name == "profile-cpu") == (
        "2 x n2-standard-8 = 16 cores against the recommended profile's 24 cores")
    high_cpu = NodeType("hicpu-32", "gcp", "compute", 32, 32 * GI, 110, None, "")
    plan = make_plan(catalog, profiles["recommended"], high_cpu, PlanOptions(provider="gke", nodes=1))
    assert gates(plan)["profile-cpu"] and not gates(plan)["profile-memory"]


def test_too_much_headroom_leaves_no_room_for_the_largest_pod(catalog, profiles, node_types) -> None:
    plan = plan_for(catalog, profiles, node_types, node_type="e2-standard-2", headroom_pct=60.0)
    assert plan.recommended_nodes is None
    assert plan.scenarios["baseline"].nodes_needed is None
    assert "baseline-headroom" in failed(plan)
    assert plan.scenarios["hpa-max"].nodes_needed is not None


def test_a_pod_larger_than_any_node_fails_every_workload_gate(catalog, profiles) -> None:
    tiny = NodeType("tiny", "aws", "general", 1, 2 * GI, 110, None, "")
    plan = make_plan(catalog, profiles["minimum"], tiny, PlanOptions(provider="generic"))
    assert plan.recommended_nodes is None
    assert set(WORKLOAD_GATES) <= failed(plan)
    for name in WORKLOAD_GATES:
        detail = next(g.detail for g in plan.gates if g.name == name)
        assert "larger than one tiny's room for workloads" in detail
    assert plan.scenarios["baseline"].unfit
    json.dumps(plan.to_dict())


def test_more_nodes_never_fail_a_workload_gate(catalog, profiles, node_types) -> None:
    for mesh in ("none", "istio"):
        rec = plan_for(catalog, profiles, node_types, mesh=mesh, profile="minimum").recommended_nodes
        for n in range(rec, rec + 4):
            g = gates(plan_for(catalog, profiles, node_types, mesh=mesh, profile="minimum", nodes=n))
            assert all(g[name] for name in WORKLOAD_GATES), (mesh, n, g)


# ------------------------------------------------------------------ the recommended count

CASES = [
    ("recommended", "gke", "n2-standard-8", "none"),
    ("recommended", "gke", "n2-standard-4", "istio"),
    ("minimum", "gke", "e2-standard-4", "none"),
    ("minimum", "gke", "n2-highmem-2", "istio"),
    ("minimum", "eks", "m5.large", "none"),
    ("recommended", "eks", "c5.2xlarge", "istio"),
    ("minimum", "eks", "r5.xlarge", "none"),
    ("recommended", "aks", "Standard_D4s_v5", "none"),
    ("minimum", "aks", "Standard_F8s_v2", "istio"),
    ("recommended", "aks", "Standard_E16s_v5", "none"),
    ("minimum", "generic", "m5.xlarge", "istio"),
    ("recommended", "generic", "n2-standard-16", "none"),
]


@pytest.mark.parametrize(("profile", "provider", "node_type", "mesh"), CASES)
def test_recommended_count_is_the_smallest_that_passes(catalog, profiles, node_types, profile: str,
                                                       provider: str, node_type: str, mesh: str) -> None:
    plan = plan_for(catalog, profiles, node_types, profile=profile, provider=provider,
                    node_type=node_type, mesh=mesh)
    n = plan.recommended_nodes
    assert n is not None and plan.nodes == n
    assert plan.passed, [g.detail for g in plan.failed_gates()]
    assert n >= max(r.nodes_needed for r in plan.scenarios.values())
    fewer = plan_for(catalog, profiles, node_types, profile=profile, provider=provider,
                     node_type=node_type, mesh=mesh, nodes=n - 1)
    assert not fewer.passed


@settings(max_examples=15, deadline=None)
@given(
    node_type=st.sampled_from(["n2-standard-4", "e2-standard-8", "n2-highmem-4", "c2-standard-8"]),
    profile=st.sampled_from(["minimum", "recommended"]),
    mesh=st.sampled_from(["none", "istio"]),
    headroom=st.sampled_from([0.0, 10.0, 35.0, 60.0]),
    cpu_ratio=st.floats(0.2, 6.0),
    memory_ratio=st.floats(0.2, 2.0),
    reporter=st.integers(0, 6),
    signal=st.sampled_from([0, 2, 5, 10]),
)
def test_recommended_count_property(catalog, profiles, node_types, node_type, profile, mesh, headroom,
                                    cpu_ratio, memory_ratio, reporter, signal) -> None:
    cat = catalog.with_replicas({"reporter": reporter, "signal-generator": signal})
    opts = PlanOptions(provider="gke", mesh=mesh, headroom_pct=headroom,
                       cpu_limit_ratio=cpu_ratio, memory_limit_ratio=memory_ratio)
    plan = make_plan(cat, profiles[profile], node_types[node_type], opts)
    assert plan.passed, [g.detail for g in plan.failed_gates()]
    fewer = make_plan(cat, profiles[profile], node_types[node_type],
                      replace(opts, nodes=plan.recommended_nodes - 1))
    assert not fewer.passed


# ------------------------------------------------------------------ monotone sanity


def test_bigger_nodes_never_need_more_of_them(catalog, profiles, node_types) -> None:
    counts = [plan_for(catalog, profiles, node_types, node_type=t, profile="minimum")
              for t in ("n2-standard-4", "n2-standard-8", "n2-standard-16")]
    recommended = [p.recommended_nodes for p in counts]
    assert recommended == sorted(recommended, reverse=True)
    for name in SCENARIOS:
        needed = [p.scenarios[name].nodes_needed for p in counts]
        assert needed == sorted(needed, reverse=True), name


def test_the_mesh_never_asks_for_less(default_plan: Plan, mesh_plan: Plan) -> None:
    for f in RESOURCE_FIELDS:
        assert getattr(mesh_plan.totals, f) > getattr(default_plan.totals, f)
    for name in SCENARIOS:
        assert mesh_plan.scenarios[name].nodes_needed >= default_plan.scenarios[name].nodes_needed
        assert mesh_plan.scenarios[name].pods == default_plan.scenarios[name].pods + 2
    assert mesh_plan.node.daemonset_cpu_m > default_plan.node.daemonset_cpu_m   # istio-cni


def test_more_headroom_never_needs_fewer_baseline_nodes(catalog, profiles, node_types) -> None:
    needed = [plan_for(catalog, profiles, node_types, node_type="n2-standard-4",
                       headroom_pct=h).scenarios["baseline"].nodes_needed for h in (0, 20, 40, 60)]
    assert needed == sorted(needed)
    assert needed[-1] > needed[0]


def test_more_replicas_never_need_fewer_nodes(catalog, profiles, node_types) -> None:
    plans = [make_plan(catalog.with_replicas({"reporter": n, "gui-gateway": n}), profiles["minimum"],
                       node_types["e2-standard-4"], PlanOptions(provider="gke"))
             for n in (1, 3, 6, 12)]
    for name in SCENARIOS:
        needed = [p.scenarios[name].nodes_needed for p in plans]
        assert needed == sorted(needed), name
    totals = [p.totals.cpu_request_m for p in plans]
    assert totals == sorted(totals) and totals[0] < totals[-1]


def test_scaling_a_service_to_zero_removes_its_demand(catalog, profiles, node_types) -> None:
    plan = make_plan(catalog.with_replicas({"postgres": 0, "signal-generator": 0}), profiles["minimum"],
                     node_types["n2-standard-8"], PlanOptions(provider="gke"))
    base = plan_for(catalog, profiles, node_types, profile="minimum")
    assert plan.totals.cpu_request_m == base.totals.cpu_request_m - 1000 - 2 * 200
    assert plan.scenarios["hpa-max"].pods == base.scenarios["hpa-max"].pods - 1 - 10
    # the StatefulSet's claim goes with its replicas
    assert plan.storage_request_bytes == base.storage_request_bytes - 80 * GI


# ------------------------------------------------------------------ service table, bad options


def test_service_table_separates_the_sidecar(mesh_plan: Plan, default_plan: Plan) -> None:
    rows = {r["service"]: r for r in service_table(mesh_plan)}
    r = rows["risk-manager"]
    assert (r["cpu_request_m"], r["memory_request_bytes"]) == (300, 512 * MI)
    assert (r["sidecar_cpu_request_m"], r["sidecar_memory_request_bytes"]) == (100, 128 * MI)
    assert r["total_cpu_request_m"] == 2 * (300 + 100)
    assert r["total_memory_limit_bytes"] == 2 * (GI + SIDECAR.memory_limit_bytes)
    plain = {r["service"]: r for r in service_table(default_plan)}
    assert plain["risk-manager"]["sidecar_cpu_request_m"] == 0
    assert plain["postgres"]["storage_request_bytes"] == 80 * GI


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        ({"nodes": 0}, "nodes: invalid node count 0; a whole number of at least 1"),
        ({"nodes": -2}, "nodes: invalid node count -2"),
        ({"nodes": 2.5}, "nodes: invalid node count 2.5"),
        ({"headroom_pct": 100.0}, "headroom_pct: invalid headroom 100.0"),
        ({"headroom_pct": -1.0}, "headroom_pct: invalid headroom -1.0"),
        ({"cpu_limit_ratio": 0.0}, "cpu_limit_ratio: invalid overcommit ratio 0.0; a number above 0"),
        ({"memory_limit_ratio": -1.0}, "memory_limit_ratio: invalid overcommit ratio -1.0"),
        ({"storage_bytes": -1}, "storage: invalid storage -1"),
        ({"storage_media": "nvme"}, "storage_media: invalid storage media 'nvme'; ssd or any"),
        ({"mesh": "linkerd"}, "mesh: unknown mesh 'linkerd'"),
        ({"provider": "eks"}, "is a gcp node type, but provider 'eks'; a node type on aws"),
        ({"provider": "openshift"}, "openshift"),
    ],
)
def test_bad_options(catalog, profiles, node_types, options: dict, fragment: str) -> None:
    options = {"provider": "gke", **options}
    with pytest.raises(InputError) as e:
        make_plan(catalog, profiles["recommended"], node_types["n2-standard-8"], PlanOptions(**options))
    assert isinstance(e.value, EafixCapacityError)
    assert fragment in str(e.value)


# ------------------------------------------------------------------ the plan's DataFrames


def test_frames_show_the_plan_in_readable_units(default_plan: Plan, profiles: dict[str, Profile]) -> None:
    from eafix_capacity.tables import (gates_frame, placement_frame, profiles_frame, scenarios_frame,
                                       services_frame)
    services = services_frame(default_plan).set_index("service")
    assert len(services) == 14
    assert services.loc["indicator-engine", "cpu_request"] == 0.3
    assert services.loc["indicator-engine", "mem_limit_mib"] == 1024
    assert services.loc["postgres", "storage_gib"] == 80
    assert services.loc["signal-generator", "hpa_max"] == 10

    scenarios = scenarios_frame(default_plan).set_index("scenario")
    assert list(scenarios.index) == list(SCENARIOS)
    assert scenarios.loc["baseline", "pods"] == 22
    assert scenarios.loc["baseline", "cpu_request_cores"] == 6.1

    g = gates_frame(default_plan)
    assert list(g["gate"]) == list(GATES) and set(g["result"]) == {"PASS"}

    for name in SCENARIOS:
        placed = placement_frame(default_plan, name)
        r = default_plan.scenarios[name]
        assert len(placed) == r.nodes_evaluated
        assert placed["pods"].sum() == r.pods
        assert placed["cpu_request_cores"].sum() == pytest.approx(r.requests.cpu_request_m / 1000)

    rows = profiles_frame(default_plan, profiles).set_index("what")
    assert rows.loc["profile recommended", "cpu_cores"] == 24
    assert rows.loc["cluster capacity", "cpu_cores"] == 24
    assert rows.loc["baseline requests", "cpu_cores"] == 6.1


def test_placement_frame_of_a_scenario_that_does_not_fit(catalog, profiles, node_types) -> None:
    from eafix_capacity.tables import PACKING, placement_frame
    plan = plan_for(catalog, profiles, node_types, nodes=1)
    packed = placement_frame(plan, "node-drain", layout=PACKING)
    assert packed["pods"].sum() == plan.scenarios["node-drain"].pods  # on the nodes it would need
    # one node drained of one: the scheduler has nowhere to put any pod
    pending = placement_frame(plan, "node-drain")
    assert list(pending["node"]) == ["Pending (fits no node)"]
    assert pending["pods"].sum() == plan.scenarios["node-drain"].pods


@pytest.mark.parametrize("mesh", ["none", "istio"])
def test_totals_are_services_plus_sidecars_plus_control_plane(mesh):
    from eafix_capacity.inputs import PlanParams, plan_from_params
    from eafix_capacity.mesh import SIDECAR
    d = plan_from_params(PlanParams(mesh=mesh)).to_dict()
    sidecar = SIDECAR if mesh == "istio" else None
    for field, side in (("cpu_request_m", "cpu_request_m"), ("memory_limit_bytes", "memory_limit_bytes")):
        per_pod = lambda s: s[field] + (getattr(sidecar, side) if sidecar else 0)  # noqa: E731
        services = sum(per_pod(s) * s["replicas"] for s in d["services"])
        control = sum(c[field] * c["replicas"] for c in d["mesh_control_plane"])
        assert d["totals"][field] == services + control
    assert bool(d["mesh_control_plane"]) == (mesh == "istio")


# ------------------------------------------------------------------ review fixes


def _place_failing_at(monkeypatch, counts: set[int]) -> None:
    """Make the plan's own packing fail at some node counts, as first-fit with a spread
    can on a count above the one ``min_nodes`` found (the packing is not monotone)."""
    import eafix_capacity.plan as plan_module
    real = plan_module.place

    def place(pods, shape, *, nodes, zones=(), ordered=False):
        return None if nodes in counts else real(pods, shape, nodes=nodes, zones=zones, ordered=ordered)
    monkeypatch.setattr(plan_module, "place", place)


def test_recommended_count_passes_its_own_workload_gates_when_packing_is_not_monotone(
        catalog, profiles, node_types, monkeypatch) -> None:
    assert plan_for(catalog, profiles, node_types).recommended_nodes == 3
    _place_failing_at(monkeypatch, {3})
    plan = plan_for(catalog, profiles, node_types)
    # 3 fails baseline, hpa-max and rollout; 4 fails node-drain (judged on 3): 5 is the first that passes
    assert plan.recommended_nodes == plan.nodes == 5
    assert plan.passed, [g.detail for g in plan.failed_gates()]
    assert plan.scenarios["baseline"].nodes_needed == 2   # min_nodes itself is unaffected


def test_a_given_count_the_packing_misses_says_so(catalog, profiles, node_types, monkeypatch) -> None:
    _place_failing_at(monkeypatch, {3})
    plan = plan_for(catalog, profiles, node_types, nodes=3)
    assert {"baseline-headroom", "hpa-max", "rollout"} <= failed(plan)
    detail = next(g.detail for g in plan.gates if g.name == "hpa-max")
    assert "does not fit on 3 nodes; needs 2, but first-fit with the spread is not monotone" in detail


def test_node_drain_detail_names_the_drained_cluster_size(default_plan: Plan) -> None:
    detail = next(g.detail for g in default_plan.gates if g.name == "node-drain")
    assert "fits on 2 nodes (one of 3 drained); needs 2" in detail


def test_storage_gates_say_when_the_provisioned_figure_is_assumed(catalog, profiles, node_types) -> None:
    assumed = {g.name: g.detail for g in plan_for(catalog, profiles, node_types).gates}
    given_ = {g.name: g.detail for g in plan_for(catalog, profiles, node_types, storage_bytes=600 * GI).gates}
    for name in ("profile-storage", "storage-claims"):
        assert "(assumed: no provisioned storage was given)" in assumed[name]
        assert "assumed" not in given_[name]
    assert given_["profile-storage"] == ("600.0 GiB ssd provisioned against the recommended profile's "
                                         "500.0 GiB ssd")


def test_max_pods_leaving_no_slot_after_daemonsets_is_bad_input(catalog, profiles, node_types) -> None:
    # GKE runs 4 DaemonSets: with 4 pods per node no workload pod fits, which is a bad
    # input, not a plan whose gates blame the first pod for being "larger than a node"
    with pytest.raises(InputError) as e:
        plan_for(catalog, profiles, node_types, max_pods=4)
    message = str(e.value)
    assert "n2-standard-8" in message and "pod slots" in message and "max pods above 4" in message
