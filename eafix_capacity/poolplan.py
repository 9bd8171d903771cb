"""A plan of several node pools: each pool sized for the services only it runs, then
judged per pool and in total.

Packing is per pool (``pools.assign`` gives each service exactly one pool, so no pod could
land in another): every pool is a plan of its own (``plan.make_plan``) of its services on
its node type, at its given count or the smallest that passes its gates, with its own
scenarios (baseline, HPA maximum, the largest rollout surge among its services, one of its
nodes drained, a zone lost), overcommit ratios and, with zones, zone-loss and n+1. The
mesh's control plane runs in the first pool that takes pods without a node selector or a
toleration. The profile's CPU and memory and the storage are cluster-wide: they are judged
on the sum over the pools, and when the sum falls short, the first pool the plan sizes
grows until it does not (a pool whose count is given is never changed).

The total gates keep the names of a one-pool plan (``baseline-headroom``, ``node-drain``,
...): a total gate passes when every pool passes it, and each pool's own result is listed
as ``<pool>/<gate>``. Pure: records in, records out.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

from .catalog import ZERO, Catalog, Resources, Service
from .errors import InputError
from .nodes import NodeType, get_node_type
from .plan import Gate, Plan, PlanOptions, ScenarioResult, make_plan, profile_gates, storage_claims_gate
from .pools import PoolSpec, assign, place_services
from .profiles import Profile

if TYPE_CHECKING:
    from .cost import Comparison

CLUSTER_GATES = ("profile-cpu", "profile-memory", "profile-storage", "storage-claims")
AUTO_EXACT_NODES = 20   # with exact "auto", the solver proves the counts of every pool below this size


@dataclass(frozen=True)
class PoolPlan:
    """One pool of a plan of several: its spec and its own plan (its services only; the
    cluster-wide profile and storage gates are the total plan's)."""

    spec: PoolSpec
    plan: Plan

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def gates(self) -> tuple[Gate, ...]:
        """The pool's own gates (the cluster-wide ones are judged on the total)."""
        return tuple(g for g in self.plan.gates if g.name not in CLUSTER_GATES)

    @property
    def passed(self) -> bool:
        return all(g.passed for g in self.gates)


def _bare(pools: Sequence[PoolSpec]) -> PoolSpec | None:
    """The first pool that takes a pod with no node selector and no toleration."""
    probe = Service(name="probe", port=1, tier="trading", kind="Deployment", replicas=1, containers=())
    return next((p for p in pools if p.runs(probe)), None)


def _pool_profile(profile: Profile) -> Profile:
    """A profile asking nothing: a pool's own plan is not judged on the cluster's profile."""
    return replace(profile, cpu_m=0, memory_bytes=0, storage_bytes=0, storage_media="any")


def make_pools_plan(catalog: Catalog, profile: Profile, pools: Sequence[PoolSpec],
                    node_types: Mapping[str, NodeType], options: PlanOptions, *, file: str = "<pools>",
                    auto_exact: bool = False) -> Plan:
    """Size and judge every pool, then the cluster; the returned plan's ``pools`` hold each
    pool's own plan and its figures are the sums over them. With ``auto_exact`` (and
    ``options.exact`` off), a pool First-Fit Decreasing sizes under ``AUTO_EXACT_NODES``
    is planned again with the solver, within ``options.exact_seconds`` per scenario."""
    if options.nodes is not None:
        raise InputError("with pools, each pool's node count is in the pools file, not", field="nodes",
                         value=options.nodes, valid="leave nodes out; give a pool's nodes in the pools file")
    catalog = place_services(catalog, pools, file=file)
    assigned = assign(catalog, pools, file=file)
    for spec in pools:
        if not assigned[spec.name]:
            raise InputError("no service runs in pool", file=file, obj=spec.name, field="services",
                             valid="list services under it, or give services a nodeSelector that selects it; "
                                   "or leave the pool out")
    bare = _bare(pools)
    if options.mesh == "istio" and bare is None:
        raise InputError("the mesh's control plane (istiod) has no pool to run in", file=file, field="pools",
                         valid="a pool without taints whose labels need no node selector")
    plans: list[PoolPlan] = []
    for spec in pools:
        node_type = get_node_type(spec.node_type, node_types, file=file)
        sub = Catalog(services=assigned[spec.name], source_file=catalog.source_file)
        o = replace(options, nodes=spec.nodes, control_plane=bare is not None and spec.name == bare.name)
        pool = make_plan(sub, _pool_profile(profile), node_type, o)
        if auto_exact and not options.exact and pool.nodes < AUTO_EXACT_NODES:
            pool = make_plan(sub, _pool_profile(profile), node_type, replace(o, exact=True))
        plans.append(PoolPlan(spec, pool))
    plans = _meet_profile(plans, profile, node_types, file=file)
    return _total(catalog, profile, options, plans)


def _capacity(plans: Sequence[PoolPlan]) -> tuple[int, int]:
    return (sum(p.plan.node.capacity_cpu_m * p.plan.nodes for p in plans),
            sum(p.plan.node.capacity_memory_bytes * p.plan.nodes for p in plans))


def _meet_profile(plans: list[PoolPlan], profile: Profile, node_types: Mapping[str, NodeType], *,
                  file: str) -> list[PoolPlan]:
    """Grow the first sized pool until the pools' capacity meets the profile's CPU and memory."""
    grow = next((i for i, p in enumerate(plans) if p.spec.nodes is None), None)
    if grow is None:
        return plans
    spec = plans[grow].spec
    node_type = get_node_type(spec.node_type, node_types, file=file)
    zoning = plans[grow].plan.zoning
    step = zoning.step if zoning is not None else 1
    while True:
        cpu, memory = _capacity(plans)
        if cpu >= profile.cpu_m and memory >= profile.memory_bytes:
            return plans
        current = plans[grow].plan   # planned again with no fewer nodes: make_plan counts on until it passes
        plans[grow] = PoolPlan(spec, make_plan(current.catalog, _pool_profile(profile), node_type,
                                               replace(current.options, at_least=current.nodes + step)))


def _fleet(plans: Sequence[PoolPlan]) -> str:
    return " + ".join(f"{p.plan.nodes} x {p.plan.node_type.name}" for p in plans)


def _sum(values: Sequence[int | None]) -> int | None:
    return None if any(v is None for v in values) else sum(v for v in values if v is not None)


def _scenario(name: str, plans: Sequence[PoolPlan]) -> ScenarioResult:
    rs = [p.plan.scenarios[name] for p in plans]
    requests: Resources = ZERO
    for r in rs:
        requests = requests + r.requests
    return ScenarioResult(
        name=name, pods=sum(r.pods for r in rs), requests=requests,
        nodes_needed=_sum([r.nodes_needed for r in rs]), lower_bound=sum(r.lower_bound for r in rs),
        nodes_evaluated=sum(r.nodes_evaluated for r in rs), fits=all(r.fits for r in rs), placement=None,
        unfit=tuple(u for r in rs for u in r.unfit))


def _total(catalog: Catalog, profile: Profile, options: PlanOptions, plans: Sequence[PoolPlan]) -> Plan:
    cpu, memory = _capacity(plans)
    gates = profile_gates(profile, options, fleet=_fleet(plans), cpu_m=cpu, memory_bytes=memory)
    per_pool = [p.gates for p in plans]
    names = list(dict.fromkeys(g.name for gs in per_pool for g in gs))
    for name in names:
        results = [(p.name, g) for p, gs in zip(plans, per_pool) for g in gs if g.name == name]
        gates.append(Gate(name, all(g.passed for _, g in results),
                          "every pool: " + ", ".join(f"{pool} {'PASS' if g.passed else 'FAIL'}"
                                                     for pool, g in results)))
    claims = sum(s.storage_bytes for s in catalog.services)
    gates.append(storage_claims_gate(claims, profile, options))
    for p, gs in zip(plans, per_pool):
        gates.extend(Gate(f"{p.name}/{g.name}", g.passed, g.detail) for g in gs)
    first = plans[0].plan
    totals: Resources = ZERO
    for p in plans:
        totals = totals + p.plan.totals
    recommended = _sum([p.plan.recommended_nodes for p in plans])
    return Plan(
        catalog=catalog, profile=profile, node_type=first.node_type, options=replace(options, nodes=None),
        node=first.node, nodes=sum(p.plan.nodes for p in plans), recommended_nodes=recommended,
        nodes_given=all(p.plan.nodes_given for p in plans), totals=totals, storage_request_bytes=claims,
        scenarios={name: _scenario(name, plans) for name in first.scenarios}, gates=tuple(gates),
        headroom_shape=first.headroom_shape, zoning=first.zoning,
        survivors=tuple(v for p in plans for v in p.plan.survivors), pools=tuple(plans))


def pools_dict(plan: Plan) -> dict[str, Any]:
    """``Plan.to_dict`` of a plan of several pools: the one-pool shape with the cluster's
    figures summed over the pools, and a ``pools`` list of each pool's own figures."""
    pools: Sequence[PoolPlan] = plan.pools
    one = {p.name: p.plan.to_dict() for p in pools}
    first = next(iter(one.values()))
    cluster_keys = ("capacity_cpu_m", "capacity_memory_bytes", "allocatable_cpu_m", "allocatable_memory_bytes",
                    "workload_cpu_m", "workload_memory_bytes")
    cluster = {"nodes": plan.nodes, "nodes_given": plan.nodes_given, "recommended_nodes": plan.recommended_nodes,
               **{k: sum(d["cluster"][k] for d in one.values()) for k in cluster_keys},
               "storage_bytes": first["cluster"]["storage_bytes"]}
    scenarios = {}
    for name, r in plan.scenarios.items():
        alloc_cpu = sum(p.plan.node.cpu_m * p.plan.scenarios[name].nodes_evaluated for p in pools)
        alloc_mem = sum(p.plan.node.memory_bytes * p.plan.scenarios[name].nodes_evaluated for p in pools)
        ds_cpu = sum(p.plan.node.daemonset_cpu_m * p.plan.scenarios[name].nodes_evaluated for p in pools)
        ds_mem = sum(p.plan.node.daemonset_memory_bytes * p.plan.scenarios[name].nodes_evaluated for p in pools)
        scenarios[name] = {
            "pods": r.pods, "cpu_request_m": r.requests.cpu_request_m,
            "memory_request_bytes": r.requests.memory_request_bytes, "nodes_needed": r.nodes_needed,
            "lower_bound": r.lower_bound, "nodes_evaluated": r.nodes_evaluated, "fits": r.fits,
            "cpu_utilisation": round((r.requests.cpu_request_m + ds_cpu) / alloc_cpu, 4) if alloc_cpu else None,
            "memory_utilisation": (round((r.requests.memory_request_bytes + ds_mem) / alloc_mem, 4)
                                   if alloc_mem else None),
        }
    inputs = {**first["inputs"], "node_type": None, "nodes": None,
              "catalog": plan.catalog.source_file}
    from .cost import plan_cost
    return {
        "inputs": inputs,
        "services": [s for d in one.values() for s in d["services"]],
        "mesh_control_plane": [cp for d in one.values() for cp in d["mesh_control_plane"]],
        "totals": {"cpu_request_m": plan.totals.cpu_request_m, "memory_request_bytes": plan.totals.memory_request_bytes,
                   "cpu_limit_m": plan.totals.cpu_limit_m, "memory_limit_bytes": plan.totals.memory_limit_bytes,
                   "storage_request_bytes": plan.storage_request_bytes},
        "cluster": cluster,
        "pools": [{"name": p.name, "node_type": p.plan.node_type.name, "nodes": p.plan.nodes,
                   "nodes_given": p.spec.nodes is not None, "recommended_nodes": p.plan.recommended_nodes,
                   "labels": dict(p.spec.labels),
                   "taints": [{"key": t.key, "value": t.value, "effect": t.effect} for t in p.spec.taints],
                   "services": [s.name for s in p.plan.catalog.services],
                   "cluster": one[p.name]["cluster"], "scenarios": one[p.name]["scenarios"],
                   "gates": [{"name": g.name, "passed": g.passed, "detail": g.detail} for g in p.gates],
                   "passed": p.passed}
                  for p in pools],
        "scenarios": scenarios,
        **({"zone_loss_survivors": [s for d in one.values() for s in d.get("zone_loss_survivors", [])]}
           if plan.zone_labels else {}),
        "gates": [{"name": g.name, "passed": g.passed, "detail": g.detail} for g in plan.gates],
        "cost": plan_cost(plan).to_dict(),
        "passed": plan.passed,
    }


def compare_pool_node_types(catalog: Catalog, profile: Profile, pools: Sequence[PoolSpec],
                            node_types: Mapping[str, NodeType], options: PlanOptions, *, file: str = "<pools>",
                            families: Iterable[str] | None = None,
                            auto_exact: bool = False) -> dict[str, list[Comparison]]:
    """Per pool, every node type of the pools' cloud (and ``families``) tried in that pool,
    the other pools as the file gives them: the pool's smallest count at which the whole plan
    passes every gate (the pool is sized whatever its given count), and the cluster's monthly
    cost with it, cheapest first (``cost.compare_node_types`` for one pool)."""
    from .cost import Comparison, _sort_key, plan_cost

    cloud = get_node_type(pools[0].node_type, node_types, file=file).provider
    wanted = None if families is None else set(families)
    candidates = [t for t in node_types.values() if t.provider == cloud and (wanted is None or t.family in wanted)]
    if not candidates:
        raise InputError("no node type matches", field="families", value=",".join(sorted(wanted or ())),
                         valid=f"a family with node types of the pools' cloud ({cloud})")
    out: dict[str, list[Comparison]] = {}
    for i, spec in enumerate(pools):
        rows = []
        for t in candidates:
            trial = [*pools[:i], replace(spec, node_type=t.name, nodes=None), *pools[i + 1:]]
            nodes: int | None = None
            total = None
            why = ""
            try:
                plan = make_pools_plan(catalog, profile, trial, node_types, options, file=file, auto_exact=auto_exact)
            except InputError as e:
                why = str(e)
            else:
                if plan.passed:
                    nodes, total = plan.pools[i].plan.nodes, plan_cost(plan).total_monthly_usd
                else:
                    why = "; ".join(f"{g.name} FAIL: {g.detail}" for g in plan.failed_gates())
            rows.append(Comparison(
                node_type=t.name, provider=options.provider, family=t.family, vcpus=t.vcpus,
                memory_bytes=t.memory_bytes, nodes=nodes, price_usd_per_hour=t.price_usd_per_hour,
                price_source=t.price_source, price_basis=t.price_basis, monthly_usd=total, why=why, pool=spec.name))
        out[spec.name] = sorted(rows, key=_sort_key)
    return out
