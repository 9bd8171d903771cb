"""The capacity plan: from catalogue, profile and node pool to node counts and gates.

``make_plan`` is pure: it takes loaded records and plain options and returns a ``Plan``
record. Every figure a report or notebook shows comes from here, and ``Plan.to_dict``
is the shape of ``plan --format json`` and of the notebooks' ``summary.json``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from math import ceil, floor
from typing import TYPE_CHECKING, Any

from .catalog import Catalog, Resources, max_pods_total
from .errors import InputError
from .limits import MAX_NODES, MAX_PODS, NODES_LIMIT_TEXT, PODS_LIMIT_TEXT
from .mesh import CONTROL_PLANE, Mesh, parse_mesh
from .nodes import Allocatable, NodeType, Provider, allocatable, parse_provider
from .profiles import Profile
from .scenarios import (SCENARIOS, TRADING_TIERS, ZONE_LOSS, ZONED_SCENARIOS, PodDemand, demand, is_multi_replica,
                        largest_surge, pod_resources, surge_pods, totals)
from .scheduling import ZONE, NodeShape, Placement, PodRequest, SpreadConstraint, lower_bound, min_nodes, place
from .zones import after_zone_loss, node_zones, parse_zones, resolve_zones, zone_label

if TYPE_CHECKING:
    from .exact import ExactResult
    from .growth import Runway
    from .poolplan import PoolPlan

DEFAULT_HEADROOM_PCT = 20.0
DEFAULT_CPU_LIMIT_RATIO = 4.0
DEFAULT_MEMORY_LIMIT_RATIO = 1.5
WORKLOAD_GATES = ("baseline-headroom", "hpa-max", "rollout", "node-drain")


@dataclass(frozen=True)
class PlanOptions:
    """Everything a plan depends on besides the records themselves. ``provider`` and
    ``mesh`` are parsed on construction (``"EKS"`` becomes ``"eks"``, ``None`` no mesh)."""

    provider: Provider
    nodes: int | None = None
    mesh: Mesh = "none"
    headroom_pct: float = DEFAULT_HEADROOM_PCT
    cpu_limit_ratio: float = DEFAULT_CPU_LIMIT_RATIO
    memory_limit_ratio: float = DEFAULT_MEMORY_LIMIT_RATIO
    storage_bytes: int | None = None       # provisioned persistent storage; default: profile's
    storage_media: str | None = None       # "ssd" or "any"; default: the profile's
    max_pods: int | None = None
    exact: bool = False                    # prove each scenario's minimum count (exact.py, CP-SAT)
    exact_seconds: float = 1.0             # the solver's time budget per scenario
    zones: tuple[str, ...] | int = ()      # zone names or a count of the cloud's (zones.py); (): no zones
    zonal_pool: bool = False               # with zones: counts need not be the same in every zone
    control_plane: bool = True             # the mesh's control plane runs here (one pool of several: poolplan.py)
    at_least: int = 0                      # without nodes: recommend no fewer (poolplan grows a pool for the profile)

    def __post_init__(self) -> None:
        object.__setattr__(self, "provider", parse_provider(self.provider))
        object.__setattr__(self, "mesh", parse_mesh(self.mesh))
        object.__setattr__(self, "zones", parse_zones(self.zones))


@dataclass(frozen=True)
class Gate:
    name: str
    passed: bool
    detail: str


@dataclass(frozen=True)
class ScenarioResult:
    name: str
    pods: int
    requests: Resources
    nodes_needed: int | None
    lower_bound: int
    nodes_evaluated: int           # the node count the scenario is judged on
    fits: bool
    placement: Placement | None    # at nodes_evaluated, None when it does not fit
    unfit: tuple[str, ...] = ()
    exact: str | None = None               # with exact: "optimal" or "best found (bound N)"
    exact_lower_bound: int | None = None   # with exact: the proven lower bound on nodes_needed
    first_fit_nodes: int | None = None     # with exact: First-Fit Decreasing's count


@dataclass(frozen=True)
class Zoning:
    """Where a zoned plan's scenarios run, for a cluster of n nodes (zones.py numbers them):
    the zone of each node a scenario's pods may use, and which counts a pool can have."""

    labels: tuple[str, ...]
    step: int                       # counts are multiples of it: the zone count, 1 for a zonal pool
    names: tuple[str, ...] = ()     # the zones as given (a, b, c), as the sim takes them

    def nodes_of(self, name: str, n: int) -> tuple[str, ...]:
        if name == "node-drain":
            return node_zones(self.labels, max(n - 1, 0))
        if name == ZONE_LOSS:
            return after_zone_loss(self.labels, n)
        return node_zones(self.labels, n)

    def cycle(self, name: str) -> tuple[str, ...]:
        """The zones the scenario's nodes take in turn."""
        return self.labels[1:] if name == ZONE_LOSS else self.labels

    def residue(self, name: str) -> tuple[int, int]:
        """(modulus, residue) of the count of nodes the scenario's pods use."""
        if self.step == 1:
            return 1, 0
        if name == "node-drain":
            return self.step, self.step - 1
        if name == ZONE_LOSS:
            return len(self.labels) - 1, 0
        return self.step, 0

    def cluster_count(self, name: str, used: int) -> int:
        """The smallest cluster (a multiple of ``step``) whose scenario nodes number ``used`` or more."""
        n = max(-(-used // self.step) * self.step, self.step)
        while len(self.nodes_of(name, n)) < used:
            n += self.step
        return n

    def round_up(self, n: int) -> int:
        return -(-n // self.step) * self.step


@dataclass(frozen=True)
class ZoneSurvivors:
    """A service's replicas left running the moment a zone is lost, before any is
    rescheduled: the fewest over every zone, from the baseline placement."""

    service: str
    tier: str
    replicas: int
    survivors: int
    zone: str           # the zone whose loss leaves the fewest


@dataclass(frozen=True)
class Plan:
    catalog: Catalog
    profile: Profile
    node_type: NodeType
    options: PlanOptions
    node: Allocatable
    nodes: int                       # the count the gates are judged on
    recommended_nodes: int | None
    nodes_given: bool
    totals: Resources                # baseline pods, sidecars included when meshed
    storage_request_bytes: int
    scenarios: dict[str, ScenarioResult]
    gates: tuple[Gate, ...]
    headroom_shape: NodeShape = field(repr=False, default=NodeShape(0, 0, 0))
    growth: Runway | None = None     # the growth runway (growth.py), only with --growth
    zoning: Zoning | None = None                     # with zones: where each scenario's pods run
    survivors: tuple[ZoneSurvivors, ...] = ()        # with zones: per trading service, a zone's loss
    # with several node pools (poolplan.py): each pool's own plan; the figures above are then
    # the sums over them, and node_type, node and headroom_shape the first pool's
    pools: tuple[PoolPlan, ...] = ()

    def _one_pool(self, what: str) -> None:
        if self.pools:
            raise ValueError(f"{what}: a plan of several pools places pods per pool: ask plan.pools[i].plan")

    @property
    def zone_labels(self) -> tuple[str, ...]:
        """The ``topology.kubernetes.io/zone`` values of the plan's zones; () without zones."""
        return self.zoning.labels if self.zoning is not None else ()

    @property
    def node_zones(self) -> tuple[str, ...]:
        """Each node's zone (node i in zone i mod Z, as the sim numbers them); () without zones."""
        return node_zones(self.zone_labels, self.nodes)

    def nodes_of(self, scenario: str, nodes: int | None = None) -> tuple[int, tuple[str, ...]]:
        """How many nodes of a cluster of ``nodes`` (default: the plan's) the scenario's pods
        may use, and their zones (() without zones)."""
        self._one_pool("nodes_of")
        return _scenario_nodes(self.zoning, scenario, self.nodes if nodes is None else nodes)

    def pod_requests(self, scenario: str) -> list[PodRequest]:
        """The scenario's pods as the packer takes them, in creation order (service by
        service, as the catalogue lists them), each multi-replica service's with the zone
        spread when the plan has zones."""
        self._one_pool("pod_requests")
        spread = _zone_spread(self.catalog) if self.zoning is not None else frozenset()
        return _requests(demand(self.catalog, scenario, mesh=self.options.mesh,
                                control_plane=self.options.control_plane), zone_spread=spread)

    @property
    def passed(self) -> bool:
        return all(g.passed for g in self.gates)

    def failed_gates(self) -> list[Gate]:
        return [g for g in self.gates if not g.passed]

    def to_dict(self) -> dict[str, Any]:
        if self.pools:
            from .poolplan import pools_dict
            return pools_dict(self)
        n, a = self.nodes, self.node
        return {
            "inputs": {
                "profile": self.profile.name,
                "provider": self.options.provider,
                "node_type": self.node_type.name,
                "nodes": self.options.nodes,
                "mesh": self.options.mesh,
                "headroom_pct": self.options.headroom_pct,
                "cpu_limit_ratio": self.options.cpu_limit_ratio,
                "memory_limit_ratio": self.options.memory_limit_ratio,
                "storage_bytes": self.options.storage_bytes,
                "storage_media": self.options.storage_media,
                "max_pods": self.options.max_pods,
                "catalog": self.catalog.source_file,
                # only with zones, so the JSON of a plan without them is unchanged
                **({"zones": list(self.zone_labels), "zonal_pool": self.options.zonal_pool}
                   if self.zone_labels else {}),
            },
            "services": [
                {
                    "name": s.name,
                    "port": s.port,
                    "tier": s.tier,
                    "kind": s.kind,
                    "replicas": s.replicas,
                    "hpa_max_replicas": s.hpa.max_replicas if s.hpa else None,
                    **_resource_fields(s.pod_resources),
                    "storage_request_bytes": s.storage_bytes,
                }
                for s in self.catalog.services
            ],
            # pods that are in `totals` but are not EAFIX services: the mesh's control plane
            "mesh_control_plane": [
                {"name": cp.name, "namespace": cp.namespace, "replicas": cp.replicas,
                 **_resource_fields(cp.resources)}
                for cp in (CONTROL_PLANE if self.options.mesh == "istio" and self.options.control_plane else ())
            ],
            "totals": {**_resource_fields(self.totals),
                       "storage_request_bytes": self.storage_request_bytes},
            "cluster": {
                "nodes": n,
                "nodes_given": self.nodes_given,
                "recommended_nodes": self.recommended_nodes,
                "capacity_cpu_m": a.capacity_cpu_m * n,
                "capacity_memory_bytes": a.capacity_memory_bytes * n,
                "allocatable_cpu_m": a.cpu_m * n,
                "allocatable_memory_bytes": a.memory_bytes * n,
                "workload_cpu_m": a.workload_cpu_m * n,
                "workload_memory_bytes": a.workload_memory_bytes * n,
                "storage_bytes": _storage(self),
                "per_node": a.as_dict(),
                "daemonsets": [{"name": d.name, "cpu_m": d.cpu_m, "memory_bytes": d.memory_bytes}
                               for d in a.daemonsets],
                **({"nodes_per_zone": {z: self.node_zones.count(z) for z in self.zone_labels}}
                   if self.zone_labels else {}),
            },
            "scenarios": {
                name: {
                    "pods": r.pods,
                    "cpu_request_m": r.requests.cpu_request_m,
                    "memory_request_bytes": r.requests.memory_request_bytes,
                    "nodes_needed": r.nodes_needed,
                    "lower_bound": r.lower_bound,
                    "nodes_evaluated": r.nodes_evaluated,
                    "fits": r.fits,
                    **_utilisation(r, a),
                    **({"exact": r.exact, "exact_lower_bound": r.exact_lower_bound,
                        "first_fit_nodes": r.first_fit_nodes} if self.options.exact else {}),
                }
                for name, r in self.scenarios.items()
            },
            **({"zone_loss_survivors": [
                {"service": v.service, "tier": v.tier, "replicas": v.replicas, "survivors": v.survivors,
                 "zone": v.zone} for v in self.survivors]} if self.zone_labels else {}),
            "gates": [{"name": g.name, "passed": g.passed, "detail": g.detail} for g in self.gates],
            # only with --growth, so the JSON of a plan without it is unchanged
            **({"growth": self.growth.to_dict()} if self.growth is not None else {}),
            "cost": _cost(self),
            "passed": self.passed,
        }


def _cost(plan: Plan) -> dict[str, Any]:
    from .cost import plan_cost   # cost.py compares node types with make_plan, so imported here
    return plan_cost(plan).to_dict()


def _resource_fields(r: Resources) -> dict[str, int]:
    return {
        "cpu_request_m": r.cpu_request_m,
        "memory_request_bytes": r.memory_request_bytes,
        "cpu_limit_m": r.cpu_limit_m,
        "memory_limit_bytes": r.memory_limit_bytes,
    }


def _utilisation(r: ScenarioResult, a: Allocatable) -> dict[str, float | None]:
    """Requests (workload pods plus DaemonSets) as a share of allocatable."""
    n = r.nodes_evaluated
    if n <= 0:
        return {"cpu_utilisation": None, "memory_utilisation": None, "pods_utilisation": None}
    return {
        "cpu_utilisation": round((r.requests.cpu_request_m + a.daemonset_cpu_m * n) / (a.cpu_m * n), 4),
        "memory_utilisation": round(
            (r.requests.memory_request_bytes + a.daemonset_memory_bytes * n) / (a.memory_bytes * n), 4),
        "pods_utilisation": round((r.pods + a.daemonset_pods * n) / (a.max_pods * n), 4),
    }


def _storage(plan: Plan) -> int:
    s = plan.options.storage_bytes
    return plan.profile.storage_bytes if s is None else s


ZONE_SPREAD = SpreadConstraint(topology_key=ZONE)


def _zone_spread(catalog: Catalog) -> frozenset[str]:
    """The services the rendering gives a zone spread: those that can run several pods."""
    return frozenset(s.name for s in catalog.services if is_multi_replica(s))


def _requests(pods: list[PodDemand], *, zone_spread: frozenset[str] = frozenset()) -> list[PodRequest]:
    """The packer's pods; those of the ``zone_spread`` services spread over zones too, as
    the rendering's zone spread (maxSkew 1) says."""
    return [PodRequest(p.name, p.service, p.resources.cpu_request_m, p.resources.memory_request_bytes,
                       zone_spread=ZONE_SPREAD if p.service in zone_spread else None)
            for p in pods]


def _check_options(o: PlanOptions) -> None:
    if o.nodes is not None and (isinstance(o.nodes, bool) or not isinstance(o.nodes, int) or o.nodes < 1):
        raise InputError("invalid node count", field="nodes", value=o.nodes, valid="a whole number of at least 1")
    if o.nodes is not None and o.nodes > MAX_NODES:
        raise InputError("too many nodes", field="nodes", value=o.nodes, valid=f"at most {MAX_NODES:,}: {NODES_LIMIT_TEXT}")
    if isinstance(o.at_least, bool) or not isinstance(o.at_least, int) or not 0 <= o.at_least <= MAX_NODES:
        raise InputError("invalid smallest count", field="at_least", value=o.at_least,
                         valid=f"a whole number from 0 to {MAX_NODES:,}")
    if o.max_pods is not None and not isinstance(o.max_pods, bool) and isinstance(o.max_pods, int) \
            and o.max_pods > MAX_PODS:
        raise InputError("too many pods per node", field="max_pods", value=o.max_pods,
                         valid=f"at most {MAX_PODS:,}: {PODS_LIMIT_TEXT}")
    if not 0 <= o.headroom_pct < 100:
        raise InputError("invalid headroom", field="headroom_pct", value=o.headroom_pct,
                         valid="a percentage from 0 up to (not including) 100")
    for name in ("cpu_limit_ratio", "memory_limit_ratio"):
        v = getattr(o, name)
        if not v > 0:
            raise InputError("invalid overcommit ratio", field=name, value=v, valid="a number above 0")
        if v == float("inf"):
            raise InputError("invalid overcommit ratio", field=name, value=v, valid="a finite number above 0")
    if o.storage_bytes is not None and o.storage_bytes < 0:
        raise InputError("invalid storage", field="storage", value=o.storage_bytes, valid="0 or more bytes")
    if o.exact:
        from .exact import check_seconds
        check_seconds(o.exact_seconds)
    if o.storage_media not in (None, "ssd", "any"):
        raise InputError("invalid storage media", field="storage_media", value=o.storage_media,
                         valid="ssd or any")


def _check_pod_count(catalog: Catalog, mesh: Mesh, *, control_plane: bool = True) -> None:
    """Refuse a workload larger than a cluster can run, before any scenario's pods are
    listed (hpa-max bounds the baseline, so the rollout is counted only within bounds)."""
    extra = sum(cp.replicas for cp in CONTROL_PLANE) if mesh == "istio" and control_plane else 0
    scenario, peak = "hpa-max", max_pods_total(catalog) + extra
    baseline = sum(s.replicas for s in catalog.services) + extra
    if peak <= MAX_PODS < baseline + max((surge_pods(s) for s in catalog.services), default=0):
        surge = largest_surge(catalog, mesh=mesh)   # the surge the rollout scenario takes
        rollout = baseline + (surge[1] if surge else 0)
        if rollout > peak:
            scenario, peak = "rollout", rollout
    if peak > MAX_PODS:
        raise InputError(f"the {scenario} scenario runs {peak:,} pods", file=catalog.source_file or None,
                         field="replicas", valid=f"at most {MAX_PODS:,} pods in all: {PODS_LIMIT_TEXT}")


def _check_node_bound(reqs: dict[str, list[PodRequest]], *, shape: NodeShape, headroom: NodeShape,
                      node_type: str) -> None:
    """Refuse a workload no supported cluster of this node type can run, before packing
    (the search for a count would otherwise try ever larger clusters)."""
    for name, pods in reqs.items():
        node_shape = headroom if name == "baseline" else shape
        if any(p.cpu_m > node_shape.cpu_m or p.memory_bytes > node_shape.memory_bytes for p in pods):
            continue  # a pod larger than a node: the scenario's gate says so
        bound = lower_bound(pods, node_shape) + (1 if name == "node-drain" else 0)
        if bound > MAX_NODES:
            raise InputError(f"the {name} scenario needs at least {bound:,} {node_type} nodes",
                             field="nodes", valid=f"{NODES_LIMIT_TEXT}: a larger node type or fewer replicas")


def _check_recommended(n: int, node_type: str) -> None:
    if n > MAX_NODES:
        raise InputError(f"the workload needs {n:,} {node_type} nodes", field="nodes",
                         valid=f"{NODES_LIMIT_TEXT}: a larger node type or fewer replicas")


def _scenario_nodes(zoning: Zoning | None, scenario: str, n: int) -> tuple[int, tuple[str, ...]]:
    """How many nodes of a cluster of n the scenario's pods use, and their zones."""
    if zoning is not None:
        zones = zoning.nodes_of(scenario, n)
        return len(zones), zones
    return (n - 1 if scenario == "node-drain" else n), ()


def _check_zones(options: PlanOptions, node_type: NodeType) -> Zoning | None:
    if not options.zones:
        if options.zonal_pool:
            raise InputError("a zonal pool needs zones", field="zonal_pool", value=True,
                             valid="give zones too (--zones a,b,c), or leave zonal_pool out")
        return None
    names = resolve_zones(options.zones, cloud=node_type.provider)
    labels = tuple(zone_label(node_type.provider, z) for z in names)
    if len(labels) < 2:
        raise InputError("a zone loss needs 2 or more zones, got", field="zones", value=",".join(names),
                         valid="2 or more zones, e.g. a,b,c; leave zones out for a cluster in one zone")
    zoning = Zoning(labels, 1 if options.zonal_pool else len(labels), names)
    n = options.nodes
    if isinstance(n, int) and not isinstance(n, bool) and n % zoning.step:
        raise InputError(f"{n} nodes do not split evenly over {len(labels)} zones:", field="nodes", value=n,
                         valid=f"a multiple of {len(labels)} (a regional pool has the same number of nodes in "
                               "every zone), or a zonal pool (--zonal-pool)")
    return zoning


def make_plan(catalog: Catalog, profile: Profile, node_type: NodeType, options: PlanOptions) -> Plan:
    """Pack every scenario, pick the node count, and judge the gates."""
    _check_options(options)
    zoning = _check_zones(options, node_type)
    mesh = options.mesh
    _check_pod_count(catalog, mesh, control_plane=options.control_plane)
    node = allocatable(node_type, provider=options.provider, max_pods=options.max_pods, mesh=mesh)
    shape = NodeShape(node.workload_cpu_m, node.workload_memory_bytes, node.workload_pods)
    keep = 1 - options.headroom_pct / 100
    headroom = NodeShape(floor(shape.cpu_m * keep), floor(shape.memory_bytes * keep), shape.max_pods)

    names = ZONED_SCENARIOS if zoning else SCENARIOS
    spread = _zone_spread(catalog) if zoning else frozenset()
    pods = {name: demand(catalog, name, mesh=mesh, control_plane=options.control_plane) for name in names}
    reqs = {name: _requests(p, zone_spread=spread) for name, p in pods.items()}
    _check_node_bound(reqs, shape=shape, headroom=headroom, node_type=node_type.name)

    def shape_of(name: str) -> NodeShape:
        return headroom if name == "baseline" else shape

    if zoning is None:
        needed = {
            "baseline": min_nodes(reqs["baseline"], headroom, at_most=MAX_NODES),
            "hpa-max": min_nodes(reqs["hpa-max"], shape, at_most=MAX_NODES),
            "rollout": min_nodes(reqs["rollout"], shape, at_most=MAX_NODES),
            "node-drain": min_nodes(reqs["node-drain"], shape, at_most=MAX_NODES - 1),
        }
    else:
        z = zoning
        needed = {name: min_nodes(reqs[name], shape_of(name), at_most=MAX_NODES, step=z.step,
                                  zones=lambda n, name=name: z.nodes_of(name, n))   # type: ignore[misc]
                  for name in names}
    for name, r in needed.items():
        if r.beyond is not None:
            raise InputError(f"the {name} scenario does not pack on {MAX_NODES:,} {node_type.name} nodes",
                             field="nodes", valid=f"{NODES_LIMIT_TEXT}: a larger node type or fewer replicas")

    def cluster_count(name: str, used: int) -> int:
        """The cluster a scenario needs when its pods need ``used`` nodes."""
        if zoning is not None:
            return zoning.cluster_count(name, used)
        return used + 1 if name == "node-drain" else used   # node-drain runs the baseline on N-1 nodes

    counts: dict[str, int | None] = {}
    for name, r in needed.items():
        found = r.nodes_needed
        counts[name] = cluster_count(name, found) if found is not None and zoning is None else found
    exact: dict[str, ExactResult] = {}
    if options.exact:
        # CP-SAT, never above FFD's count; imported only here, so plans without it stay fast
        from .exact import min_nodes_exact
        for name, r in needed.items():
            if zoning is None:
                exact[name] = min_nodes_exact(reqs[name], shape_of(name), seconds=options.exact_seconds, ffd=r)
            else:
                modulus, residue = zoning.residue(name)
                exact[name] = min_nodes_exact(reqs[name], shape_of(name), seconds=options.exact_seconds, ffd=r,
                                              zones=zoning.cycle(name), modulus=modulus, residue=residue)
            used = exact[name].nodes
            counts[name] = cluster_count(name, used) if used is not None else None
    base_totals = totals(pods["baseline"])
    workload = [c for c in counts.values() if c is not None]
    recommended = None if len(workload) < len(counts) else max(
        max(workload),
        _nodes_for(profile.cpu_m, node.capacity_cpu_m),
        _nodes_for(profile.memory_bytes, node.capacity_memory_bytes),
        _nodes_for_ratio(base_totals.cpu_limit_m, options.cpu_limit_ratio, shape.cpu_m),
        _nodes_for_ratio(base_totals.memory_limit_bytes, options.memory_limit_ratio, shape.memory_bytes),
        options.at_least,
    )
    if recommended is not None and zoning is not None:
        recommended = zoning.round_up(recommended)
    n = options.nodes if options.nodes is not None else (recommended or (zoning.step if zoning else 1))

    def judge(n: int) -> dict[str, ScenarioResult]:
        scenarios = {}
        for name in names:
            evaluated, zones = _scenario_nodes(zoning, name, n)
            node_shape = shape_of(name)
            r = needed[name]
            placement = (place(reqs[name], node_shape, nodes=evaluated, zones=zones)
                         if r.nodes_needed is not None else None)
            extra: dict[str, Any] = {}
            if name in exact:
                e = exact[name]
                if placement is None and e.nodes is not None and evaluated >= e.nodes:
                    # FFD is not monotone in the count; the solver may place what it does not
                    from .exact import pack_exact
                    placement = (e.placement if e.placement is not None and e.placement.nodes == evaluated
                                 and e.placement.zones == zones
                                 else pack_exact(reqs[name], node_shape, nodes=evaluated, zones=zones,
                                                 seconds=options.exact_seconds))
                bound = cluster_count(name, e.lower_bound)
                extra = {"exact": e.verdict(offset=bound - e.lower_bound), "exact_lower_bound": bound,
                         "first_fit_nodes": None if e.ffd_nodes is None else cluster_count(name, e.ffd_nodes)}
            lb = r.lower_bound if zoning is not None else cluster_count(name, r.lower_bound)
            scenarios[name] = ScenarioResult(
                name=name, pods=len(pods[name]), requests=totals(pods[name]),
                nodes_needed=counts[name], lower_bound=lb,
                nodes_evaluated=evaluated, fits=placement is not None, placement=placement, unfit=r.unfit,
                **extra,
            )
        return scenarios

    if options.nodes is None and recommended is not None:
        _check_recommended(recommended, node_type.name)
    scenarios = judge(n)
    if options.nodes is None and recommended is not None:
        # First-fit with a spread is not monotone in the node count: a scenario packed on
        # k nodes can fail on a larger count (a spread layer finds its only allowed node
        # full). The recommendation must pass its own workload gates, so count up until it
        # does; with a node per pod every pod fits, so this ends.
        while not all(r.fits for r in scenarios.values()):
            n += zoning.step if zoning is not None else 1
            _check_recommended(n, node_type.name)
            scenarios = judge(n)
        recommended = n

    storage_claims = sum(s.storage_bytes for s in catalog.services)
    plan = Plan(
        catalog=catalog, profile=profile, node_type=node_type, options=options, node=node, nodes=n,
        recommended_nodes=recommended, nodes_given=options.nodes is not None, totals=base_totals,
        storage_request_bytes=storage_claims, scenarios=scenarios, gates=(), headroom_shape=headroom,
        zoning=zoning,
        survivors=(_survivors(catalog, reqs["baseline"], scenarios["baseline"].placement)
                   if zoning is not None else ()),
    )
    return _with_gates(plan, mesh=mesh)


def _survivors(catalog: Catalog, pods: list[PodRequest], placement: Placement | None) -> tuple[ZoneSurvivors, ...]:
    """Per trading service, the replicas left when the zone holding most of them is lost
    (none without a baseline placement: the baseline does not fit)."""
    if placement is None or not placement.zones:
        return ()
    group = {p.name: p.group for p in pods}
    per_zone: dict[str, dict[str, int]] = {}
    for pod, i in placement.assignment:
        held = per_zone.setdefault(group[pod], {})
        held[placement.zones[i]] = held.get(placement.zones[i], 0) + 1
    out = []
    for s in catalog.services:
        if s.tier not in TRADING_TIERS or s.replicas == 0:
            continue
        held = per_zone.get(s.name, {})
        zone = max(sorted(set(placement.zones)), key=lambda z: held.get(z, 0))
        out.append(ZoneSurvivors(s.name, s.tier, s.replicas, s.replicas - held.get(zone, 0), zone))
    return tuple(out)


def _nodes_for(amount: float, per_node: int) -> int:
    return max(1, -(-int(amount) // per_node)) if per_node > 0 else 1


def _nodes_for_ratio(limits: int, ratio: float, per_node: int) -> int:
    """Smallest node count whose overcommit gate passes, judged by the gate's own
    expression ``limits / (per_node * n) <= ratio`` so the two never disagree."""
    if per_node <= 0:
        return 1
    n = max(1, ceil(limits / (per_node * ratio)))
    while n > 1 and limits / (per_node * (n - 1)) <= ratio:
        n -= 1
    while limits / (per_node * n) > ratio:
        n += 1
    return n


def _cores(m: float) -> str:
    return f"{m / 1000:g} cores"


def _gib(b: float) -> str:
    return f"{b / 2**30:.1f} GiB"


def profile_gates(p: Profile, o: PlanOptions, *, fleet: str, cpu_m: int, memory_bytes: int) -> list[Gate]:
    """The profile's CPU, memory and storage against ``fleet`` (``3 x n2-standard-8``) of that
    capacity and the storage provisioned."""
    gates = [Gate("profile-cpu", cpu_m >= p.cpu_m,
                  f"{fleet} = {_cores(cpu_m)} against the {p.name} profile's {_cores(p.cpu_m)}"),
             Gate("profile-memory", memory_bytes >= p.memory_bytes,
                  f"{fleet} = {_gib(memory_bytes)} against the {p.name} profile's {_gib(p.memory_bytes)}")]
    storage = p.storage_bytes if o.storage_bytes is None else o.storage_bytes
    media = o.storage_media or ("ssd" if p.storage_media == "ssd" else "any")
    media_ok = p.storage_media != "ssd" or media == "ssd"
    gates.append(Gate("profile-storage", storage >= p.storage_bytes and media_ok,
                      f"{_gib(storage)} {media} provisioned{_assumed(o)} against the {p.name} profile's "
                      f"{_gib(p.storage_bytes)} {p.storage_media}"))
    return gates


def _assumed(o: PlanOptions) -> str:
    # Without a provisioned figure the gate has nothing to judge: say so rather than
    # letting a PASS on the profile's own figure read as evidence.
    return "" if o.storage_bytes is not None else " (assumed: no provisioned storage was given)"


def storage_claims_gate(claims: int, p: Profile, o: PlanOptions) -> Gate:
    storage = p.storage_bytes if o.storage_bytes is None else o.storage_bytes
    return Gate("storage-claims", claims <= storage,
                f"claims of {_gib(claims)} against {_gib(storage)} provisioned{_assumed(o)}")


def _with_gates(plan: Plan, *, mesh: Mesh) -> Plan:
    p, a, n, o = plan.profile, plan.node, plan.nodes, plan.options
    gates = profile_gates(p, o, fleet=f"{n} x {plan.node_type.name}", cpu_m=a.capacity_cpu_m * n,
                          memory_bytes=a.capacity_memory_bytes * n)

    def scenario_gate(gate: str, name: str, what: str) -> Gate:
        r = plan.scenarios[name]
        if r.unfit:
            return Gate(gate, False, f"{r.unfit[0]} is larger than one {plan.node_type.name}'s "
                                     f"room for workloads; no node count fits {what}")
        verdict = "fits" if r.fits else "does not fit"
        drained = f" (one of {n} drained)" if name == "node-drain" else ""
        detail = (f"{what} ({r.pods} pods, {_cores(r.requests.cpu_request_m)}, "
                  f"{_gib(r.requests.memory_request_bytes)} requested) {verdict} on "
                  f"{r.nodes_evaluated} nodes{drained}; needs {r.nodes_needed}")
        if not r.fits and r.nodes_needed is not None and r.nodes_needed <= n:
            detail += (f", but first-fit with the spread is not monotone: it packs {r.nodes_needed} "
                       f"and not {n}; try the recommended count")
        return Gate(gate, r.fits, detail)

    gates.append(scenario_gate("baseline-headroom", "baseline",
                               f"baseline with {o.headroom_pct:g}% headroom per node"))
    gates.append(scenario_gate("hpa-max", "hpa-max", "every HPA at its maximum"))
    surge = largest_surge(plan.catalog, mesh=mesh)
    surge_text = f"baseline plus the {surge[0].name} surge of {surge[1]}" if surge else "baseline (no surge)"
    gates.append(scenario_gate("rollout", "rollout", surge_text))
    gates.append(scenario_gate("node-drain", "node-drain", "baseline with one node drained"))
    if plan.zone_labels:
        gates.append(_zone_loss_gate(plan, scenario_gate("zone-loss", ZONE_LOSS,
                                                         f"baseline with zone {plan.zone_labels[0]} lost")))
        gates.append(_n_plus_one_gate(plan))
    gates.append(storage_claims_gate(plan.storage_request_bytes, p, o))
    wl_cpu, wl_mem = a.workload_cpu_m * n, a.workload_memory_bytes * n
    cpu_ratio = plan.totals.cpu_limit_m / wl_cpu
    mem_ratio = plan.totals.memory_limit_bytes / wl_mem
    gates.append(Gate("cpu-limit-overcommit", cpu_ratio <= o.cpu_limit_ratio,
                      f"CPU limits {_cores(plan.totals.cpu_limit_m)} are {cpu_ratio:.2f}x the "
                      f"{_cores(wl_cpu)} left for workloads (max {o.cpu_limit_ratio:g}x)"))
    gates.append(Gate("memory-limit-overcommit", mem_ratio <= o.memory_limit_ratio,
                      f"memory limits {_gib(plan.totals.memory_limit_bytes)} are {mem_ratio:.2f}x the "
                      f"{_gib(wl_mem)} left for workloads (max {o.memory_limit_ratio:g}x)"))
    return Plan(**{**plan.__dict__, "gates": tuple(gates)})


def _zone_loss_gate(plan: Plan, fits: Gate) -> Gate:
    """The zone-loss scenario's fit, and per trading service the replicas a zone's loss
    leaves running until the lost ones are rescheduled: a service of 2 or more replicas
    left with none fails the gate (its zone spread should have prevented it); a single
    replica cannot survive the loss of its zone, which the detail says."""
    r = plan.scenarios[ZONE_LOSS]
    left = sorted(set(plan.node_zones) - {plan.zone_labels[0]})
    detail = fits.detail.replace(f"on {r.nodes_evaluated} nodes", f"on the {r.nodes_evaluated} nodes of "
                                 f"{', '.join(left) or 'no zone'}", 1)
    down = [v for v in plan.survivors if v.survivors == 0 and v.replicas >= 2]
    single = [v.service for v in plan.survivors if v.replicas == 1]
    several = [v for v in plan.survivors if v.replicas >= 2]
    if several:
        fewest = min(several, key=lambda v: (v.survivors / v.replicas, v.service))
        detail += (f"; replicas left while the lost ones are rescheduled: fewest {fewest.service} "
                   f"{fewest.survivors} of {fewest.replicas} (zone {fewest.zone} lost)")
    if down:
        detail += "; left with none: " + ", ".join(f"{v.service} ({v.replicas} replicas in {v.zone})" for v in down)
    if single:
        detail += "; single replicas, down until rescheduled: " + ", ".join(single)
    return Gate("zone-loss", fits.passed and not down, detail)


def _n_plus_one_gate(plan: Plan) -> Gate:
    """kubernetes-mixin's KubeCPUOvercommit / KubeMemoryOvercommit at the baseline: the
    cluster cannot tolerate losing a node when sum(requests) > sum(allocatable) -
    max(allocatable); requests are the workload's and every node's DaemonSets'."""
    a, n, r = plan.node, plan.nodes, plan.scenarios["baseline"].requests
    parts, ok = [], True
    for what, requests, per_node, fmt in (
            ("CPU", r.cpu_request_m + a.daemonset_cpu_m * n, a.cpu_m, _cores),
            ("memory", r.memory_request_bytes + a.daemonset_memory_bytes * n, a.memory_bytes, _gib)):
        left = per_node * n - per_node
        ok = ok and requests <= left
        parts.append(f"{what} requests {fmt(requests)} {'<=' if requests <= left else '>'} "
                     f"{fmt(per_node * n)} allocatable - {fmt(per_node)} of the largest node")
    return Gate("n+1", ok, "; ".join(parts) + ("" if ok else ": the cluster cannot lose a node"))


def zones_line(plan: Plan) -> str:
    """How the plan's nodes sit in its zones: the recommendation's zone sentence."""
    how = ("the same in every zone (a regional pool)" if not plan.options.zonal_pool
           else "a zonal pool: counts may differ between zones")
    parts = []
    for name, p in ([(q.name, q.plan) for q in plan.pools] if plan.pools else [("", plan)]):
        per = ", ".join(f"{z} {p.node_zones.count(z)}" for z in p.zone_labels)
        parts.append(f"{name}: {per}" if name else per)
    return f"zones: {'; '.join(parts)} node(s); {how}; zone-loss judges the loss of {plan.zone_labels[0]}"


def service_table(plan: Plan) -> list[dict[str, Any]]:
    """Per-service rows (per pod and for all baseline replicas, sidecar separate)."""
    mesh = plan.options.mesh
    rows = []
    for s in plan.catalog.services:
        own = s.pod_resources
        full = pod_resources(s, mesh=mesh)
        rows.append({
            "service": s.name, "tier": s.tier, "kind": s.kind, "port": s.port,
            "replicas": s.replicas, "hpa_max": s.hpa.max_replicas if s.hpa else None,
            **_resource_fields(own),
            "sidecar_cpu_request_m": full.cpu_request_m - own.cpu_request_m,
            "sidecar_memory_request_bytes": full.memory_request_bytes - own.memory_request_bytes,
            "total_cpu_request_m": full.cpu_request_m * s.replicas,
            "total_memory_request_bytes": full.memory_request_bytes * s.replicas,
            "total_cpu_limit_m": full.cpu_limit_m * s.replicas,
            "total_memory_limit_bytes": full.memory_limit_bytes * s.replicas,
            "storage_request_bytes": s.storage_bytes,
        })
    return rows
