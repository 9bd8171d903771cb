"""The demand each capacity scenario puts on the cluster, as a list of pods.

- ``baseline``: every service at its configured replicas.
- ``hpa-max``: every HPA at its maximum.
- ``rollout``: baseline plus the largest surge any single Deployment makes during a
  rolling update (maxSurge 25%, rounded up).
- ``node-drain``: the baseline pods, to be placed on one node fewer: a node-pool upgrade
  drains one node at a time, and a lost node leaves the same state.
- ``zone-loss`` (only in a plan with zones): the baseline pods, to be placed on the nodes
  of the zones left when one whole zone is lost.

With the mesh on, each injected pod carries the Istio sidecar, and the mesh's control
plane pods join every scenario.
"""
from __future__ import annotations

from dataclasses import dataclass
from math import ceil

from .catalog import ZERO, Catalog, Resources, Service
from .errors import InputError
from .mesh import CONTROL_PLANE, SIDECAR, Mesh

SCENARIOS = ("baseline", "hpa-max", "rollout", "node-drain")
ZONE_LOSS = "zone-loss"
ZONED_SCENARIOS = SCENARIOS + (ZONE_LOSS,)
# The seed's "10 trading services": the tiers that are EAFIX's own application
TRADING_TIERS = ("trading", "supporting")
MAX_SURGE = 0.25


@dataclass(frozen=True)
class PodDemand:
    """One pod of a scenario: the service (spread group) and its full requests/limits."""

    name: str
    service: str
    resources: Resources
    surge: bool = False


def pod_resources(service: Service, *, mesh: Mesh) -> Resources:
    """One pod's requests and limits, sidecar included when the mesh injects it."""
    r = service.pod_resources
    if mesh == "istio" and service.mesh_inject:
        r = r + SIDECAR
    return r


def uses_recreate(service: Service) -> bool:
    """A Deployment with a ReadWriteOnce claim is rolled out with ``Recreate``: a
    surge pod could not mount the volume the old pod holds."""
    return service.kind == "Deployment" and any(
        v.access_mode in ("ReadWriteOnce", "ReadWriteOncePod") for v in service.volumes)


def surge_pods(service: Service, replicas: int | None = None) -> int:
    """Extra pods a rolling update of the service creates at ``replicas`` (default: its
    baseline) with maxSurge 25%, rounded up; none for StatefulSets and ``Recreate``
    Deployments."""
    n = service.replicas if replicas is None else replicas
    if service.kind != "Deployment" or n == 0 or uses_recreate(service):
        return 0
    return ceil(n * MAX_SURGE)


def largest_surge(catalog: Catalog, *, mesh: Mesh) -> tuple[Service, int] | None:
    """The Deployment whose rollout surge asks for the most (cpu share + memory share
    of the catalogue's baseline totals); ties by name."""
    base = totals(demand(catalog, "baseline", mesh=mesh))
    best = None
    for s in catalog.services:
        n = surge_pods(s)
        if n == 0:
            continue
        r = pod_resources(s, mesh=mesh) * n
        weight = (r.cpu_request_m / max(base.cpu_request_m, 1)
                  + r.memory_request_bytes / max(base.memory_request_bytes, 1))
        key = (weight, s.name)
        if best is None or key[0] > best[0][0] or (key[0] == best[0][0] and s.name < best[1].name):
            best = (key, s, n)
    return (best[1], best[2]) if best else None


def demand(catalog: Catalog, scenario: str, *, mesh: Mesh, control_plane: bool = True) -> list[PodDemand]:
    """Every pod the scenario runs (the mesh's control plane's too, unless ``control_plane``
    is False: of several node pools, one runs it)."""
    if scenario not in ZONED_SCENARIOS:
        raise InputError("unknown scenario", field="scenario", value=scenario,
                         valid="one of: " + ", ".join(ZONED_SCENARIOS))
    pods: list[PodDemand] = []
    for s in catalog.services:
        # an HPA does not scale a target scaled to zero (ScalingActive=False, ScalingDisabled)
        n = s.max_replicas if scenario == "hpa-max" and s.replicas > 0 else s.replicas
        r = pod_resources(s, mesh=mesh)
        pods.extend(PodDemand(f"{s.name}-{i}", s.name, r) for i in range(n))
    if mesh == "istio" and control_plane:
        for cp in CONTROL_PLANE:
            pods.extend(PodDemand(f"{cp.name}-{i}", cp.name, cp.resources)
                        for i in range(cp.replicas))
    if scenario == "rollout":
        surge = largest_surge(catalog, mesh=mesh)
        if surge:
            s, n = surge
            r = pod_resources(s, mesh=mesh)
            pods.extend(PodDemand(f"{s.name}-surge-{i}", s.name, r, surge=True) for i in range(n))
    return pods


def is_multi_replica(service: Service) -> bool:
    """Whether the service can run more than one pod (now, or when its HPA scales it out):
    the services a zone spread is written for."""
    return service.replicas > 1 or (service.hpa is not None and service.hpa.max_replicas > 1)


def totals(pods: list[PodDemand]) -> Resources:
    total = ZERO
    for p in pods:
        total = total + p.resources
    return total


def peak_surge(catalog: Catalog, *, mesh: Mesh) -> tuple[Resources, int]:
    """The largest rollout surge of any single Deployment at its maximum replicas (a
    service scaled out by its HPA is rolled out too), taken per figure: each request,
    limit and the pod count is the largest over the services, so a quota sized with it
    admits whichever rollout happens."""
    cpu_req = mem_req = cpu_lim = mem_lim = pods = 0
    for s in catalog.services:
        n = surge_pods(s, s.max_replicas)
        r = pod_resources(s, mesh=mesh) * n
        cpu_req, mem_req = max(cpu_req, r.cpu_request_m), max(mem_req, r.memory_request_bytes)
        cpu_lim, mem_lim = max(cpu_lim, r.cpu_limit_m), max(mem_lim, r.memory_limit_bytes)
        pods = max(pods, n)
    return Resources(cpu_req, mem_req, cpu_lim, mem_lim), pods


def peak_totals(catalog: Catalog, *, mesh: Mesh) -> Resources:
    """The most the namespace can ask for at once: every service at its maximum plus the
    largest rollout surge at that size (what a ResourceQuota must admit). Control-plane
    pods excluded: they run in their own namespace."""
    peak = ZERO
    for s in catalog.services:
        peak = peak + pod_resources(s, mesh=mesh) * s.max_replicas
    return peak + peak_surge(catalog, mesh=mesh)[0]


def peak_pods(catalog: Catalog, *, mesh: Mesh) -> int:
    """Pods the namespace can run at once: every service at its maximum plus the largest
    rollout surge at that size."""
    return sum(s.max_replicas for s in catalog.services) + peak_surge(catalog, mesh=mesh)[1]
