"""Node pools (issue 12): the pools file, which pool runs each service, and the plan of
several pools judged per pool and in total (eafix_capacity/pools.py, poolplan.py)."""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from eafix_capacity.catalog import load_catalog
from eafix_capacity.cli import main
from eafix_capacity.errors import InputError
from eafix_capacity.inputs import PlanParams, plan_from_params
from eafix_capacity.nodes import load_node_types
from eafix_capacity.plan import PlanOptions
from eafix_capacity.poolplan import make_pools_plan
from eafix_capacity.pools import PoolSpec, assign, load_pools, place_services, pools_from_dict
from eafix_capacity.profiles import load_profiles
from eafix_capacity.scheduling import Taint, Toleration

EXAMPLE = Path(__file__).resolve().parent.parent / "data" / "pools-memory.yaml"
MEMORY = {"eafix.io/pool": "memory"}
TAINT = Taint("eafix.io/pool", "memory", "NoSchedule")
STATEFUL = ("redis", "postgres", "prometheus")


@pytest.fixture(scope="module")
def example() -> tuple[PoolSpec, ...]:
    return load_pools(EXAMPLE)


@pytest.fixture(scope="module")
def plan(example):
    return make_pools_plan(load_catalog(), load_profiles()["recommended"], example, load_node_types(),
                           PlanOptions(provider="gke"), file=str(EXAMPLE))


def test_the_example_pools_file(example) -> None:
    general, memory = example
    assert (general.name, general.node_type, general.nodes, dict(general.labels), general.taints) == (
        "general", "n2-standard-8", None, {}, ())
    assert (memory.node_type, dict(memory.labels), memory.taints, memory.services) == (
        "n2-highmem-4", MEMORY, (TAINT,), STATEFUL)


@pytest.mark.parametrize(("doc", "message"), [
    ({"pool": []}, "expected a mapping with one key, pools"),
    ({"pools": []}, "pools: no pools"),
    ({"pools": [{"node_type": "n2-standard-8"}]}, "pools[0]: name: missing or empty pool name"),
    ({"pools": [{"name": "Big", "node_type": "n2-standard-8"}]}, "pools[0]: name: pool name not a DNS label 'Big'"),
    ({"pools": [{"name": "a", "node_type": "n2-standard-8", "size": 3}]}, "a: size: unknown field 'size'"),
    ({"pools": [{"name": "a"}]}, "a: node_type: missing node type"),
    ({"pools": [{"name": "a", "node_type": "x", "nodes": 0}]}, "a: nodes: invalid node count 0"),
    ({"pools": [{"name": "a", "node_type": "x", "nodes": True}]}, "a: nodes: invalid node count True"),
    ({"pools": [{"name": "a", "node_type": "x"}, {"name": "a", "node_type": "y"}]}, "a: name: pool name given twice"),
    ({"pools": [{"name": "a", "node_type": "x", "labels": {"bad key!": "v"}}]}, "a: labels: invalid label key"),
    ({"pools": [{"name": "a", "node_type": "x", "labels": {"k": 3}}]}, "a: labels.k: invalid label value 3"),
    ({"pools": [{"name": "a", "node_type": "x", "taints": [{"key": "k", "effect": "Never"}]}]},
     "a: taints[0].effect: invalid taint effect 'Never'; one of: NoSchedule, PreferNoSchedule, NoExecute"),
    ({"pools": [{"name": "a", "node_type": "x", "taints": [{"key": "k", "effect": "NoSchedule"},
                                                             {"key": "k", "value": "v", "effect": "NoSchedule"}]}]},
     "a: taints[1]: taint given twice 'k:NoSchedule'"),
    ({"pools": [{"name": "a", "node_type": "x", "services": "redis"}]}, "a: services: not a list of service names"),
])
def test_bad_pools_files_are_one_line_errors(doc, message) -> None:
    with pytest.raises(InputError) as e:
        pools_from_dict(doc, file="p.yaml")
    assert message in str(e.value) and "\n" not in str(e.value) and str(e.value).startswith("p.yaml")


def test_each_service_runs_in_exactly_one_pool(example) -> None:
    catalog = place_services(load_catalog(), example, file="p")
    redis = catalog.get("redis")
    assert dict(redis.node_selector) == MEMORY
    assert redis.tolerations == (Toleration("eafix.io/pool", "Equal", "memory", "NoSchedule"),)
    assert catalog.get("grafana").node_selector == {} and catalog.get("grafana").tolerations == ()
    by_pool = assign(catalog, example, file="p")
    assert [s.name for s in by_pool["memory"]] == list(STATEFUL)
    assert len(by_pool["general"]) == len(catalog.services) - 3
    # a selector of a label no pool has: runs nowhere
    lost = replace(catalog, services=(replace(catalog.get("reporter"), node_selector={"disk": "nvme"}),))
    with pytest.raises(InputError, match=r"p: reporter: node_selector: no pool runs service \{'disk': 'nvme'\}"):
        assign(lost, example, file="p")
    # two untainted pools both run a service without a selector: the scheduler could pick either
    twin = (example[0], replace(example[0], name="spare"))
    with pytest.raises(InputError, match="service data-ingestor could run in pools general, spare"):
        assign(catalog, twin, file="p")


@pytest.mark.parametrize(("pools", "message"), [
    ((PoolSpec("a", "n2-standard-8", services=("nope",)),), "a: services: unknown service 'nope'"),
    ((PoolSpec("a", "n2-standard-8", services=("redis",)), PoolSpec("b", "n2-standard-8", services=("redis",))),
     "b: services: service listed in two pools 'redis'; once: it is in pool a already"),
])
def test_bad_service_lists_are_refused(pools, message) -> None:
    with pytest.raises(InputError, match=message):
        place_services(load_catalog(), pools, file="p")


def test_pools_never_share_pods_and_are_judged_each_and_in_total(plan, example) -> None:
    general, memory = (p for p in plan.pools)
    assert {s.name for s in memory.plan.catalog.services} == set(STATEFUL)
    assert not {s.name for s in general.plan.catalog.services} & set(STATEFUL)
    for pool in plan.pools:
        mine = {s.name for s in pool.plan.catalog.services}
        for name, r in pool.plan.scenarios.items():
            group = {q.name: q.group for q in pool.plan.pod_requests(name)}
            assert r.placement is not None and {group[pod] for pod, _ in r.placement.assignment} == mine
    names = [g.name for g in plan.gates]
    for gate in ("baseline-headroom", "hpa-max", "rollout", "node-drain", "cpu-limit-overcommit"):
        assert f"general/{gate}" in names and f"memory/{gate}" in names
        total = next(g for g in plan.gates if g.name == gate)
        assert total.passed == all(g.passed for g in plan.gates if g.name.endswith(f"/{gate}"))
    assert "general/profile-cpu" not in names and names[:3] == ["profile-cpu", "profile-memory", "profile-storage"]
    assert plan.nodes == sum(p.plan.nodes for p in plan.pools)
    profile = load_profiles()["recommended"]
    capacity = sum(p.plan.node.capacity_cpu_m * p.plan.nodes for p in plan.pools)
    assert capacity >= profile.cpu_m and plan.passed
    # the mesh's control plane would run in the untainted pool only
    meshed = make_pools_plan(load_catalog(), profile, example, load_node_types(),
                             PlanOptions(provider="gke", mesh="istio"), file="p")
    counts = {p.name: p.plan.scenarios["baseline"].pods for p in meshed.pools}
    assert counts["memory"] == 3 and counts["general"] > plan.pools[0].plan.scenarios["baseline"].pods


def test_a_short_profile_grows_the_first_sized_pool_only(example) -> None:
    profile = replace(load_profiles()["recommended"], cpu_m=64_000)
    given = (replace(example[0], nodes=None), replace(example[1], nodes=3))
    plan = make_pools_plan(load_catalog(), profile, given, load_node_types(), PlanOptions(provider="gke"), file="p")
    general, memory = plan.pools
    assert memory.plan.nodes == 3
    cpu = general.plan.node.capacity_cpu_m * general.plan.nodes + memory.plan.node.capacity_cpu_m * 3
    assert cpu >= 64_000 and cpu - general.plan.node.capacity_cpu_m < 64_000   # the smallest that meets it
    assert {g.name: g for g in plan.gates}["profile-cpu"].passed
    # nothing to grow: the profile gate fails and says by how much is missing
    fixed = (replace(example[0], nodes=2), replace(example[1], nodes=2))
    short = make_pools_plan(load_catalog(), profile, fixed, load_node_types(), PlanOptions(provider="gke"), file="p")
    gate = {g.name: g for g in short.gates}["profile-cpu"]
    assert not gate.passed and "2 x n2-standard-8 + 2 x n2-highmem-4 = 24 cores" in gate.detail


def test_zones_and_exact_apply_to_every_pool(example) -> None:
    plan = make_pools_plan(load_catalog(), load_profiles()["recommended"], example, load_node_types(),
                           PlanOptions(provider="gke", zones=3, exact=True), file="p")
    for pool in plan.pools:
        assert pool.plan.nodes % 3 == 0 and "zone-loss" in pool.plan.scenarios
        assert all(r.exact is not None for r in pool.plan.scenarios.values())
    names = [g.name for g in plan.gates]
    assert {"zone-loss", "n+1", "general/zone-loss", "memory/n+1"} <= set(names)


def test_the_json_and_cost_of_several_pools(plan) -> None:
    d = plan.to_dict()
    assert [p["name"] for p in d["pools"]] == ["general", "memory"]
    assert d["pools"][1]["services"] == list(STATEFUL) and d["pools"][1]["labels"] == MEMORY
    assert d["pools"][1]["taints"] == [{"key": "eafix.io/pool", "value": "memory", "effect": "NoSchedule"}]
    assert d["cluster"]["nodes"] == sum(p["nodes"] for p in d["pools"])
    assert d["cluster"]["capacity_cpu_m"] == sum(p["cluster"]["capacity_cpu_m"] for p in d["pools"])
    pools = d["cost"]["pools"]
    assert [p["pool"] for p in pools] == ["general", "memory"]
    assert d["cost"]["total_monthly_usd"] == pytest.approx(sum(p["monthly_usd"] for p in pools), abs=0.01)
    assert d["scenarios"]["baseline"]["pods"] == sum(p["scenarios"]["baseline"]["pods"] for p in d["pools"])
    json.dumps(d)


def test_cli_plan_with_pools(capsys, tmp_path) -> None:
    assert main(["plan", "--pools", str(EXAMPLE)]) == 0
    out = capsys.readouterr().out
    assert "memory/node-drain" in out and "redis, postgres, prometheus" in out
    assert "(general) + " in out.splitlines()[-1] and "(memory)" in out.splitlines()[-1]
    assert main(["plan", "--pools", str(EXAMPLE), "--format", "json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["pools"]) == 2
    for argv, message in ((["--nodes", "3"], "nodes: with pools, each pool's node count is in the pools file"),
                          (["--growth", "5"], "growth_pct: the growth runway of several pools is not modelled yet")):
        assert main(["plan", "--pools", str(EXAMPLE), *argv]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1
    assert main(["plan", "--pools", str(EXAMPLE), "--out", str(tmp_path / "csv")]) == 0
    capsys.readouterr()
    assert sorted(p.name for p in (tmp_path / "csv").iterdir()) == [
        "gates.csv", "placement.csv", "pools.csv", "scenarios.csv", "services.csv"]
    assert (tmp_path / "csv" / "pools.csv").read_text().splitlines()[2].startswith("memory,n2-highmem-4,2,")
    bad = tmp_path / "pools.yaml"
    bad.write_text(yaml.safe_dump({"pools": [{"name": "general", "node_type": "n9-mega"}]}))
    assert main(["plan", "--pools", str(bad)]) == 2
    assert f"{bad}: " in capsys.readouterr().err


def test_params_and_notebook_form_take_pools(tmp_path) -> None:
    p = PlanParams.from_mapping({"pools": "pools.yaml"}, base_dir=tmp_path)
    assert p.pools == str(tmp_path / "pools.yaml")
    assert PlanParams.from_notebook(**p.notebook_parameters()) == p
    assert plan_from_params(PlanParams(pools=str(EXAMPLE))).pools[1].name == "memory"


def test_exact_is_automatic_for_pools_under_20_nodes(example, capsys) -> None:
    """With pools and no --exact/--no-exact, every pool under 20 nodes has its counts proven;
    --no-exact keeps First-Fit Decreasing; a plan of one pool is not changed by the default."""
    auto = plan_from_params(PlanParams(pools=str(EXAMPLE)))
    assert all(p.plan.options.exact and p.plan.scenarios["baseline"].exact == "optimal" for p in auto.pools)
    off = plan_from_params(PlanParams(pools=str(EXAMPLE), exact=False))
    assert not any(p.plan.options.exact for p in off.pools)
    assert not plan_from_params(PlanParams()).options.exact
    big = (replace(example[0], nodes=20), example[1])
    mixed = make_pools_plan(load_catalog(), load_profiles()["recommended"], big, load_node_types(),
                            PlanOptions(provider="gke"), file="p", auto_exact=True)
    assert [p.plan.options.exact for p in mixed.pools] == [False, True]
    assert main(["plan", "--pools", str(EXAMPLE)]) == 0
    assert "memory/node-drain: 2 nodes, optimal" in capsys.readouterr().out
    with pytest.raises(InputError, match="notebook parameters: exact: not yes, no or auto 'maybe'"):
        PlanParams.from_notebook(exact="maybe")
    assert PlanParams.from_notebook(exact="auto").exact is None and PlanParams.from_notebook(exact="no").exact is False


@pytest.mark.sim
def test_the_twin_of_a_pooled_plan_runs_each_pools_services_on_its_nodes() -> None:
    """The sim a pooled plan starts has every pool's nodes (labels, taints, the provider's
    pool label), and the plan's rendering puts each service's pods on its pool's nodes."""
    from kubernetes import client

    from eafix_capacity.manifests.render import L_NAME
    from eafix_capacity.signoff.twin import plan_twin
    from eafix_capacity.sim.cluster import NODE_POOL_LABEL

    plan = plan_from_params(PlanParams(pools=str(EXAMPLE)))
    session = plan_twin(plan)
    try:
        core = client.CoreV1Api(session.api)
        pool_of_node = {n.metadata.name: n.metadata.labels[NODE_POOL_LABEL["gke"]] for n in core.list_node().items}
        assert sorted(pool_of_node.values()) == sorted(p.name for p in plan.pools for _ in range(p.plan.nodes))
        pool_of_service = {s.name: p.name for p in plan.pools for s in p.plan.catalog.services}
        pods = core.list_namespaced_pod("eafix-trading").items
        assert len(pods) == plan.scenarios["baseline"].pods
        for pod in pods:
            assert pod.spec.node_name, pod.metadata.name
            assert pool_of_node[pod.spec.node_name] == pool_of_service[pod.metadata.labels[L_NAME]], pod.metadata.name
    finally:
        session.close()


def test_notebook_02_and_manifests_generate_render_the_pools(tmp_path, capsys) -> None:
    from eafix_capacity.manifests.notebook import NotebookParams, run
    result = run(NotebookParams.from_notebook(output_dir=str(tmp_path), pools=str(EXAMPLE), zone_spread=True))
    rules = result.scheduling_rules().set_index("workload")
    assert rules.loc["redis", "nodeSelector"] == "eafix.io/pool=memory"
    assert rules.loc["redis", "tolerations"] == "eafix.io/pool=memory:NoSchedule"
    assert rules.loc["grafana", "nodeSelector"] == "" and rules.loc["risk-manager", "spread over"] == (
        "kubernetes.io/hostname, topology.kubernetes.io/zone")
    assert result.summary()["pools"] == str(EXAMPLE) and not result.summary()["matches_committed"]
    with pytest.raises(InputError, match="unknown service 'nope'"):
        bad = tmp_path / "bad.yaml"
        bad.write_text(yaml.safe_dump({"pools": [{"name": "m", "node_type": "n2-highmem-4", "services": ["nope"]}]}))
        NotebookParams.from_notebook(output_dir=str(tmp_path), pools=str(bad))
    out = tmp_path / "m"
    assert main(["manifests", "generate", "--profile", "minimum", "--pools", str(EXAMPLE), "--out", str(out)]) == 0
    capsys.readouterr()
    text = "\n".join(p.read_text() for p in out.rglob("*.y*ml"))
    assert text.count("eafix.io/pool: memory") == 3


def test_verify_refuses_a_pooled_plan_rather_than_misjudge_it(plan) -> None:
    from eafix_capacity.cluster.livestate import LiveState
    from eafix_capacity.cluster.verify import verify
    with pytest.raises(InputError, match="pools: verify judges a plan of one node pool; this plan has pools "
                                         "'general, memory'"):
        verify(LiveState(), plan)


def test_compare_node_types_per_pool(example, capsys, tmp_path) -> None:
    """Each pool's types tried in it: the cheapest re-planned alone at its count passes every
    gate, and one node fewer in that pool does not."""
    from eafix_capacity.poolplan import compare_pool_node_types
    catalog, profile, types = load_catalog(), load_profiles()["recommended"], load_node_types()
    by_pool = compare_pool_node_types(catalog, profile, example, types, PlanOptions(provider="gke"),
                                      file="p", families=("general", "memory"))
    assert list(by_pool) == ["general", "memory"]
    for i, (pool, rows) in enumerate(by_pool.items()):
        assert {r.pool for r in rows} == {pool} and all(types[r.node_type].provider == "gcp" for r in rows)
        best = next(r for r in rows if r.passed and r.monthly_usd is not None)
        assert best.monthly_usd == min(r.monthly_usd for r in rows if r.passed and r.monthly_usd is not None)
        trial = [*example[:i], replace(example[i], node_type=best.node_type, nodes=best.nodes), *example[i + 1:]]
        again = make_pools_plan(catalog, profile, trial, types, PlanOptions(provider="gke"), file="p")
        assert again.passed
        from eafix_capacity.cost import plan_cost
        assert plan_cost(again).total_monthly_usd == best.monthly_usd
        fewer = [*example[:i], replace(example[i], node_type=best.node_type, nodes=best.nodes - 1), *example[i + 1:]]
        assert best.nodes == 1 or not make_pools_plan(catalog, profile, fewer, types, PlanOptions(provider="gke"),
                                                      file="p").passed
    chart = tmp_path / "c.png"
    assert main(["plan", "--compare-node-types", "--pools", str(EXAMPLE), "--families", "memory",
                 "--format", "json", "--chart", str(chart)]) == 0
    d = json.loads(capsys.readouterr().out)
    assert set(d["pools"]) == {"general", "memory"} and d["pools"]["memory"]["chosen"] == "n2-highmem-4"
    assert all(t["family"] == "memory" and t["pool"] == "memory" for t in d["pools"]["memory"]["node_types"])
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["plan", "--compare-node-types", "--pools", str(EXAMPLE), "--providers", "eks"]) == 2
    assert "--providers: not with --compare-node-types --pools" in capsys.readouterr().err
