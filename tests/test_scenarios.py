"""Scenario demand: pods and totals, recomputed here from the catalogue by hand."""
from __future__ import annotations

from math import ceil

import pytest

from eafix_capacity.catalog import HPA, ZERO, Catalog, Container, Resources, Service, Volume, load_catalog
from eafix_capacity.errors import InputError
from eafix_capacity.mesh import CONTROL_PLANE, SIDECAR, SIDECAR_NAME, parse_mesh
from eafix_capacity.scenarios import (
    SCENARIOS,
    demand,
    largest_surge,
    peak_totals,
    pod_resources,
    surge_pods,
    totals,
    uses_recreate,
)

MI = 2**20
GI = 2**30


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog()


def svc(name: str = "s", *, kind: str = "Deployment", replicas: int = 2, cpu: int = 100,
        mem: int = 128 * MI, hpa: HPA | None = None, volumes: tuple[Volume, ...] = (),
        mesh_inject: bool = True) -> Service:
    return Service(name, 8080, "trading", kind, replicas,
                   (Container(name, Resources(cpu, mem, cpu * 2, mem * 2)),),
                   hpa=hpa, volumes=volumes, mesh_inject=mesh_inject)


def hand_sum(catalog: Catalog, replicas_of, *, sidecar: bool) -> tuple[int, list[int]]:
    """Pod count and [cpu req, mem req, cpu lim, mem lim] summed over the catalogue's
    containers, with the sidecar figures added per injected pod."""
    count, sums = 0, [0, 0, 0, 0]
    for s in catalog.services:
        n = replicas_of(s)
        count += n
        for c in s.containers:
            r = c.resources
            for i, v in enumerate((r.cpu_request_m, r.memory_request_bytes, r.cpu_limit_m,
                                   r.memory_limit_bytes)):
                sums[i] += v * n
        if sidecar and s.mesh_inject:
            for i, v in enumerate((100, 128 * MI, 2000, GI)):
                sums[i] += v * n
    return count, sums


def as_list(r: Resources) -> list[int]:
    return [r.cpu_request_m, r.memory_request_bytes, r.cpu_limit_m, r.memory_limit_bytes]


# ------------------------------------------------------------------ without the mesh


def test_baseline_runs_every_configured_replica(catalog: Catalog) -> None:
    pods = demand(catalog, "baseline", mesh="none")
    count, sums = hand_sum(catalog, lambda s: s.replicas, sidecar=False)
    assert len(pods) == count == 22
    assert as_list(totals(pods)) == sums
    # anchors from services.yaml: 6.1 cores requested, 14.55 cores of limits
    assert sums[0] == 6100 and sums[2] == 14550
    per_service = {s.name: sum(p.service == s.name for p in pods) for s in catalog.services}
    assert per_service == {s.name: s.replicas for s in catalog.services}
    assert len({p.name for p in pods}) == len(pods)
    assert not any(p.surge for p in pods)


def test_hpa_max_runs_every_hpa_at_its_maximum(catalog: Catalog) -> None:
    pods = demand(catalog, "hpa-max", mesh="none")
    count, sums = hand_sum(catalog, lambda s: s.hpa.max_replicas if s.hpa else s.replicas, sidecar=False)
    assert len(pods) == count == 30
    assert sum(p.service == "signal-generator" for p in pods) == 10
    assert as_list(totals(pods)) == sums
    assert sums[0] == 6100 + 8 * 200


def test_rollout_adds_the_largest_single_deployment_surge(catalog: Catalog) -> None:
    base = demand(catalog, "baseline", mesh="none")
    pods = demand(catalog, "rollout", mesh="none")
    extra = [p for p in pods if p.surge]
    assert pods[: len(base)] == base
    assert len(pods) == len(base) + len(extra)
    # reporter (500m, 1Gi, one replica -> one surge pod) outweighs every other surge;
    # prometheus and grafana are larger or equal but roll out with Recreate (RWO volume)
    assert [p.service for p in extra] == ["reporter"]
    assert extra[0].resources == catalog.get("reporter").pod_resources
    assert largest_surge(catalog, mesh="none") == (catalog.get("reporter"), 1)
    count, sums = hand_sum(catalog, lambda s: s.replicas, sidecar=False)
    assert as_list(totals(pods)) == [sums[0] + 500, sums[1] + GI, sums[2] + 1000, sums[3] + 1536 * MI]


def test_node_drain_runs_the_baseline_pods(catalog: Catalog) -> None:
    assert demand(catalog, "node-drain", mesh="none") == demand(catalog, "baseline", mesh="none")


def test_unknown_scenario(catalog: Catalog) -> None:
    with pytest.raises(InputError) as e:
        demand(catalog, "black-friday", mesh="none")
    assert str(e.value) == ("scenario: unknown scenario 'black-friday'; "
                            "one of: baseline, hpa-max, rollout, node-drain, zone-loss")


def test_scenario_names() -> None:
    assert SCENARIOS == ("baseline", "hpa-max", "rollout", "node-drain")


# ------------------------------------------------------------------ with the mesh


def test_sidecar_figures_are_istio_defaults() -> None:
    assert SIDECAR == Resources(100, 128 * MI, 2000, GI)
    assert SIDECAR_NAME == "istio-proxy"


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_mesh_adds_a_sidecar_to_every_injected_pod_and_the_control_plane(
    catalog: Catalog, scenario: str,
) -> None:
    plain = demand(catalog, scenario, mesh="none")
    meshed = demand(catalog, scenario, mesh="istio")
    services = {s.name for s in catalog.services}
    workload = [p for p in meshed if p.service in services]
    control = [p for p in meshed if p.service not in services]
    assert [p.name for p in workload] == [p.name for p in plain]
    for before, after in zip(plain, workload):
        assert after.resources == before.resources + SIDECAR
    assert sorted(p.service for p in control) == ["istio-ingressgateway", "istiod"]
    assert {p.service: p.resources for p in control} == {cp.name: cp.resources for cp in CONTROL_PLANE}
    assert len(meshed) == len(plain) + 2


def test_meshed_baseline_totals_by_hand(catalog: Catalog) -> None:
    pods = demand(catalog, "baseline", mesh="istio")
    count, sums = hand_sum(catalog, lambda s: s.replicas, sidecar=True)
    istiod = [500, 2048 * MI, 500, 2048 * MI]
    gateway = [100, 128 * MI, 2000, GI]
    assert len(pods) == count + 2 == 24
    assert as_list(totals(pods)) == [a + b + c for a, b, c in zip(sums, istiod, gateway)]
    assert totals(pods).cpu_request_m == 6100 + 22 * 100 + 600


def test_a_service_that_opts_out_gets_no_sidecar() -> None:
    cat = Catalog((svc("in"), svc("out", mesh_inject=False)))
    by_service = {p.service: p.resources for p in demand(cat, "baseline", mesh="istio")}
    assert by_service["in"] == svc("in").pod_resources + SIDECAR
    assert by_service["out"] == svc("out").pod_resources
    assert pod_resources(svc("out", mesh_inject=False), mesh="istio") == svc("out").pod_resources


@pytest.mark.parametrize("value", [None, "", "none", "NONE"])
def test_no_mesh_spellings(catalog: Catalog, value: str | None) -> None:
    assert parse_mesh(value) == "none"
    assert demand(catalog, "baseline", mesh=parse_mesh(value)) == demand(catalog, "baseline", mesh="none")


def test_istio_spelled_in_capitals(catalog: Catalog) -> None:
    assert parse_mesh("Istio") == "istio"
    assert demand(catalog, "baseline", mesh=parse_mesh("Istio")) == demand(catalog, "baseline", mesh="istio")


def test_unknown_mesh() -> None:
    with pytest.raises(InputError, match=r"^mesh: unknown mesh 'linkerd'; one of: none, istio$"):
        parse_mesh("linkerd")


# ------------------------------------------------------------------ surge rules


@pytest.mark.parametrize("replicas", range(0, 13))
def test_surge_is_a_quarter_rounded_up(replicas: int) -> None:
    assert surge_pods(svc(replicas=replicas)) == ceil(replicas / 4)


def test_statefulsets_never_surge() -> None:
    assert surge_pods(svc(kind="StatefulSet", replicas=8)) == 0


@pytest.mark.parametrize("mode", ["ReadWriteOnce", "ReadWriteOncePod"])
def test_deployments_with_single_node_volumes_use_recreate(mode: str) -> None:
    s = svc(replicas=4, volumes=(Volume("data", GI, "/data", mode),))
    assert uses_recreate(s)
    assert surge_pods(s) == 0


def test_deployments_with_shared_volumes_still_surge() -> None:
    s = svc(replicas=4, volumes=(Volume("data", GI, "/data", "ReadWriteMany"),))
    assert not uses_recreate(s)
    assert surge_pods(s) == 1


def test_largest_surge_weighs_cpu_and_memory_shares() -> None:
    cpu_heavy = svc("cpu", replicas=1, cpu=1000, mem=MI)
    mem_heavy = svc("mem", replicas=1, cpu=10, mem=4 * GI)
    cat = Catalog((cpu_heavy, mem_heavy))
    # baseline: 1010m, 4Gi+1Mi; cpu share of "cpu" ~0.99, memory share of "mem" ~1.0
    assert largest_surge(cat, mesh="none")[0].name == "mem"


def test_largest_surge_counts_the_surge_pods_not_just_one_pod() -> None:
    wide = svc("wide", replicas=8, cpu=300)      # surge 2 x 300m
    tall = svc("tall", replicas=1, cpu=500)      # surge 1 x 500m
    assert largest_surge(Catalog((tall, wide)), mesh="none") == (wide, 2)


def test_largest_surge_ties_go_to_the_first_name() -> None:
    cat = Catalog((svc("zeta"), svc("alpha"), svc("mid")))
    assert largest_surge(cat, mesh="none")[0].name == "alpha"


def test_no_surge_when_nothing_can_surge() -> None:
    cat = Catalog((svc("db", kind="StatefulSet"), svc("zero", replicas=0)))
    assert largest_surge(cat, mesh="none") is None
    assert demand(cat, "rollout", mesh="none") == demand(cat, "baseline", mesh="none")


def test_surge_pods_carry_the_sidecar_with_the_mesh(catalog: Catalog) -> None:
    extra = [p for p in demand(catalog, "rollout", mesh="istio") if p.surge]
    assert len(extra) == 1
    assert extra[0].resources == catalog.get(extra[0].service).pod_resources + SIDECAR


# ------------------------------------------------------------------ scaled to zero, peak


def test_scaled_to_zero_service_runs_no_pods_in_any_scenario(catalog: Catalog) -> None:
    cat = catalog.with_replicas({"signal-generator": 0, "reporter": 0})
    for scenario in SCENARIOS:
        services = {p.service for p in demand(cat, scenario, mesh="none")}
        # an HPA does not scale up a target scaled to zero
        assert "signal-generator" not in services, scenario
        if scenario != "rollout":
            assert "reporter" not in services, scenario
    assert all(p.service != "reporter" for p in demand(cat, "rollout", mesh="none"))


def test_peak_totals_are_hpa_maximum_plus_the_surge_without_control_plane(catalog: Catalog) -> None:
    _, hpa = hand_sum(catalog, lambda s: s.hpa.max_replicas if s.hpa else s.replicas, sidecar=True)
    # per figure, the largest surge at maximum replicas: signal-generator at 10 surges 3 pods
    # (3 x 300m requests, 3 x 2500m limits with sidecars), reporter 1 pod (1Gi+128Mi, 1536Mi+1Gi)
    signal = as_list((catalog.get("signal-generator").pod_resources + SIDECAR) * 3)
    reporter = as_list(catalog.get("reporter").pod_resources + SIDECAR)
    surge = [max(a, b) for a, b in zip(signal, reporter)]
    assert as_list(peak_totals(catalog, mesh="istio")) == [a + b for a, b in zip(hpa, surge)]
    _, plain = hand_sum(catalog, lambda s: s.hpa.max_replicas if s.hpa else s.replicas, sidecar=False)
    assert peak_totals(catalog, mesh="none").cpu_request_m == plain[0] + 600  # 3 x 200m


@pytest.mark.parametrize("mesh", ["none", "istio"])
def test_peak_totals_admit_any_single_rollout_at_maximum_replicas(mesh) -> None:
    """A ResourceQuota sized with peak_totals/peak_pods must admit the rollout of any one
    Deployment while every service runs at its maximum (signal-generator at 10 surges 3)."""
    from eafix_capacity.scenarios import peak_pods, peak_totals, pod_resources, surge_pods
    catalog = load_catalog()
    at_max = ZERO
    for s in catalog.services:
        at_max = at_max + pod_resources(s, mesh=mesh) * s.max_replicas
    peak = peak_totals(catalog, mesh=mesh)
    pods = peak_pods(catalog, mesh=mesh)
    assert surge_pods(catalog.get("signal-generator"), 10) == 3
    for s in catalog.services:
        n = surge_pods(s, s.max_replicas)
        need = at_max + pod_resources(s, mesh=mesh) * n
        assert need.cpu_request_m <= peak.cpu_request_m and need.cpu_limit_m <= peak.cpu_limit_m
        assert need.memory_request_bytes <= peak.memory_request_bytes
        assert need.memory_limit_bytes <= peak.memory_limit_bytes
        assert sum(x.max_replicas for x in catalog.services) + n <= pods
