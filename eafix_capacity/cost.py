"""What a plan costs per month, and which node type runs the workload for the least.

A node count is only half an answer: the buyer asks what it costs, and whether another
node type would pass every gate for less. The price per hour comes from
``data/node-types.csv`` with its source and basis (``list``, ``derived`` or ``estimate``;
``unknown`` when there is no price), so every figure here can be traced to where it came
from. A month is 730 hours (8,760 h / 12), the figure the providers' calculators use.

Everything here is pure except ``compare_from_params`` and ``compare_pools_from_params``,
which load the data files the way ``inputs.plan_from_params`` does and then call the pure
``compare_node_types`` (``poolplan.compare_pool_node_types`` with several pools: each pool's
types tried in it, the cost being the cluster's).
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from .errors import InputError
from .nodes import CLOUD_OF_PROVIDER, FAMILIES, GIB, NodeType, Provider

if TYPE_CHECKING:
    from .catalog import Catalog
    from .inputs import PlanParams
    from .plan import Plan, PlanOptions
    from .pools import PoolSpec
    from .profiles import Profile

HOURS_PER_MONTH = 730
DEFAULT_POOL = "default"   # the one pool of a plan without a pools file
COMPARE_PROVIDERS: tuple[Provider, ...] = ("gke", "eks", "aks")
PROVIDER_OF_CLOUD: Mapping[str, Provider] = {cloud: p for p, cloud in CLOUD_OF_PROVIDER.items()}


def monthly_cost(price_usd_per_hour: Decimal | None, nodes: int, *, hours: int = HOURS_PER_MONTH) -> Decimal | None:
    """``hours`` x price x ``nodes`` in USD, exact; None when the price is unknown."""
    if price_usd_per_hour is None:
        return None
    return price_usd_per_hour * hours * nodes


def _usd(value: Decimal | None) -> float | None:
    """A USD figure for JSON: rounded to the cent."""
    return None if value is None else float(round(value, 2))


@dataclass(frozen=True)
class PoolCost:
    pool: str
    node_type: str
    nodes: int
    price_usd_per_hour: Decimal | None
    price_source: str
    price_basis: str
    monthly_usd: Decimal | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "pool": self.pool, "node_type": self.node_type, "nodes": self.nodes,
            "price_usd_per_hour": None if self.price_usd_per_hour is None else float(self.price_usd_per_hour),
            "price_source": self.price_source, "price_basis": self.price_basis,
            "monthly_usd": _usd(self.monthly_usd),
        }


@dataclass(frozen=True)
class PlanCost:
    pools: tuple[PoolCost, ...]
    hours_per_month: int = HOURS_PER_MONTH

    @property
    def total_monthly_usd(self) -> Decimal | None:
        """The sum over the pools; None when any pool's price is unknown."""
        costs = [p.monthly_usd for p in self.pools]
        if any(c is None for c in costs):
            return None
        return sum((c for c in costs if c is not None), Decimal(0))

    def to_dict(self) -> dict[str, Any]:
        """The ``cost`` section of ``plan --format json``."""
        return {"currency": "USD", "hours_per_month": self.hours_per_month,
                "pools": [p.to_dict() for p in self.pools],
                "total_monthly_usd": _usd(self.total_monthly_usd)}

    def line(self) -> str:
        """One line for the text output of ``plan``."""
        parts = []
        for p in self.pools:
            if p.price_usd_per_hour is None or p.monthly_usd is None:
                parts.append(f"{p.nodes} x {p.node_type}: unknown (no price for {p.node_type} in the node types file)")
            else:
                parts.append(f"{p.nodes} x {p.node_type} at ${p.price_usd_per_hour}/h ({p.price_basis}: "
                             f"{p.price_source}) = ${_usd(p.monthly_usd):,.2f}")
        total = self.total_monthly_usd
        total_text = "unknown" if total is None else f"${_usd(total):,.2f}"
        return f"cost per month ({self.hours_per_month} h): {'; '.join(parts)}; total {total_text}"


def plan_cost(plan: Plan) -> PlanCost:
    """The monthly cost of ``plan`` at the node count its gates are judged on, per pool."""
    pools = [(p.name, p.plan) for p in plan.pools] if plan.pools else [(DEFAULT_POOL, plan)]
    return PlanCost(pools=tuple(PoolCost(
        pool=name, node_type=p.node_type.name, nodes=p.nodes, price_usd_per_hour=p.node_type.price_usd_per_hour,
        price_source=p.node_type.price_source, price_basis=p.node_type.price_basis,
        monthly_usd=monthly_cost(p.node_type.price_usd_per_hour, p.nodes)) for name, p in pools))


# --------------------------------------------------------------------------- comparison


@dataclass(frozen=True)
class Comparison:
    """One node type in ``compare_node_types``: the smallest node count passing every gate
    (None when no count does, ``why`` saying which gates fail or why it cannot be planned)."""

    node_type: str
    provider: Provider
    family: str
    vcpus: int
    memory_bytes: int
    nodes: int | None
    price_usd_per_hour: Decimal | None
    price_source: str
    price_basis: str
    monthly_usd: Decimal | None
    why: str = ""
    pool: str = ""        # with several pools: the pool this type was tried in; monthly_usd is the cluster's

    @property
    def passed(self) -> bool:
        return self.nodes is not None

    def to_dict(self) -> dict[str, Any]:
        return {
            "node_type": self.node_type, "provider": self.provider, "family": self.family,
            "vcpus": self.vcpus, "memory_gib": self.memory_bytes / GIB, "passed": self.passed,
            "nodes": self.nodes,
            "price_usd_per_hour": None if self.price_usd_per_hour is None else float(self.price_usd_per_hour),
            "price_source": self.price_source, "price_basis": self.price_basis,
            "monthly_usd": _usd(self.monthly_usd), "why": self.why,
            **({"pool": self.pool} if self.pool else {}),
        }


def parse_choices(value: str | None, *, flag: str, valid: Sequence[str]) -> tuple[str, ...] | None:
    """A comma-separated flag value (``gke,eks``) as a tuple; None for no flag. An empty
    or unknown item is an ``InputError`` naming the flag and the valid values."""
    if value is None:
        return None
    items = tuple(v.strip().lower() for v in value.split(","))
    for item in items:
        if item not in valid:
            raise InputError("unknown value" if item else "empty value", file="command line", field=flag,
                             value=item, valid=f"comma-separated, from: {', '.join(valid)}")
    return tuple(dict.fromkeys(items))


def select_node_types(types: Mapping[str, NodeType], *, providers: Iterable[str] | None = None,
                      families: Iterable[str] | None = None) -> list[NodeType]:
    """The node types on the given managed providers (gke, eks, aks) and families, in file order."""
    clouds = None if providers is None else {CLOUD_OF_PROVIDER[p] for p in providers}  # type: ignore[index]
    fams = None if families is None else set(families)
    return [t for t in types.values()
            if (clouds is None or t.provider in clouds) and (fams is None or t.family in fams)]


def _sort_key(c: Comparison) -> tuple[int, Decimal, int, str]:
    # passing and priced first, by cost (at equal cost, fewer nodes to run first); then
    # passing without a price; then the types no count passes
    rank = 0 if c.passed and c.monthly_usd is not None else 1 if c.passed else 2
    return rank, c.monthly_usd if c.monthly_usd is not None else Decimal(0), c.nodes or 0, c.node_type


def compare_node_types(catalog: Catalog, profile: Profile, types: Mapping[str, NodeType], options: PlanOptions, *,
                       providers: Iterable[str] | None = None,
                       families: Iterable[str] | None = None) -> list[Comparison]:
    """Every node type (filtered by ``providers`` and ``families``) planned on its cloud's
    managed Kubernetes (gcp on gke, aws on eks, azure on aks) with ``options`` otherwise
    (mesh, headroom, ratios, storage, max pods, exact), sorted by monthly cost.

    The count of a type is the plan's ``recommended_nodes`` with ``nodes=None``: make_plan
    takes the largest of every count-dependent gate's own minimum (each scenario's packing,
    the profile's CPU and memory, the two overcommit ratios) and counts up from there until
    every scenario packs, so it is the smallest count at which every count-dependent gate
    passes. The storage gates do not depend on the count: when one fails at that count, no
    count passes, and ``why`` names the failing gates.
    """
    from .plan import make_plan

    providers = tuple(providers) if providers is not None else None
    families = tuple(families) if families is not None else None
    if providers is not None:
        bad = [p for p in providers if p not in COMPARE_PROVIDERS]
        if bad:
            raise InputError("unknown value", field="providers", value=bad[0],
                             valid=f"from: {', '.join(COMPARE_PROVIDERS)}")
    if families is not None:
        bad = [f for f in families if f not in FAMILIES]
        if bad:
            raise InputError("unknown value", field="families", value=bad[0], valid=f"from: {', '.join(FAMILIES)}")
    selected = select_node_types(types, providers=providers, families=families)
    if not selected:
        raise InputError("no node type matches", field="providers/families",
                         value=f"{','.join(providers or COMPARE_PROVIDERS)} / {','.join(families or FAMILIES)}",
                         valid="a provider and family with at least one node type in the node types file")
    out = []
    for t in selected:
        provider = PROVIDER_OF_CLOUD[t.provider]
        nodes: int | None = None
        why = ""
        try:
            plan = make_plan(catalog, profile, t, replace(options, provider=provider, nodes=None))
        except InputError as e:
            why = str(e)
        else:
            if plan.passed:
                nodes = plan.nodes
            else:
                why = "; ".join(f"{g.name} FAIL: {g.detail}" for g in plan.failed_gates())
        out.append(Comparison(
            node_type=t.name, provider=provider, family=t.family, vcpus=t.vcpus, memory_bytes=t.memory_bytes,
            nodes=nodes, price_usd_per_hour=t.price_usd_per_hour, price_source=t.price_source,
            price_basis=t.price_basis,
            monthly_usd=None if nodes is None else monthly_cost(t.price_usd_per_hour, nodes), why=why))
    return sorted(out, key=_sort_key)


def cheapest(comparisons: Iterable[Comparison]) -> Comparison | None:
    """The cheapest passing node type with a known price, or None."""
    priced = [c for c in comparisons if c.passed and c.monthly_usd is not None]
    return min(priced, key=_sort_key) if priced else None


def rank_of(comparisons: Sequence[Comparison], node_type: str) -> int | None:
    """1-based place of ``node_type`` in the sorted comparison, None when not in it."""
    for i, c in enumerate(comparisons, 1):
        if c.node_type == node_type:
            return i
    return None


def comparison_to_dict(comparisons: Sequence[Comparison], *, chosen: str | None = None) -> dict[str, Any]:
    """The JSON of ``plan --compare-node-types --format json``."""
    best = cheapest(comparisons)
    return {
        "currency": "USD", "hours_per_month": HOURS_PER_MONTH,
        "cheapest": None if best is None else best.node_type,
        "chosen": chosen, "chosen_rank": None if chosen is None else rank_of(comparisons, chosen),
        "node_types": [c.to_dict() for c in comparisons],
    }


def comparison_lines(comparisons: Sequence[Comparison], *, chosen: str | None = None) -> list[str]:
    """The sentences under the comparison table: the cheapest type and the chosen one's place
    (the pool's, when the rows are one pool's of several)."""
    best = cheapest(comparisons)
    pool = next((c.pool for c in comparisons if c.pool), "")
    what = f"cheapest type for pool {pool}" if pool else "cheapest passing node type"
    if best is None:
        lines = [f"{what}: none (no node type with a price passes every gate)"]
    else:
        tied = [c.node_type for c in comparisons
                if c is not best and c.passed and c.monthly_usd == best.monthly_usd]
        tie = f"; same cost: {', '.join(tied)}" if tied else ""
        lines = [f"{what}: {best.node_type} ({best.provider}), {best.nodes} nodes, "
                 f"${_usd(best.monthly_usd):,.2f} per month ({HOURS_PER_MONTH} h, {best.price_basis} price{tie})"]
    if chosen is not None:
        rank = rank_of(comparisons, chosen)
        if rank is not None:
            label = f"the pools file's {pool} type" if pool else "--node-type"
            lines.append(f"{label} {chosen}: #{rank} of {len(comparisons)}")
    return lines


def compare_from_params(params: PlanParams, *, providers: Iterable[str] | None = None,
                        families: Iterable[str] | None = None) -> list[Comparison]:
    """Load the catalogue, profile and node types as ``plan_from_params`` does, and compare
    with the params' options (zones and exact counts included); their node count and
    node type are not used."""
    from .inputs import load_inputs_catalog, plan_options
    from .nodes import load_node_types
    from .paths import data_file
    from .profiles import get_profile, load_profiles

    if params.pools:
        raise InputError("with pools, the comparison is per pool, not", field="pools", value=params.pools,
                         valid="compare_pools_from_params")
    catalog = load_inputs_catalog(params)
    profile = get_profile(params.profile, load_profiles(), file=str(data_file("profiles.yaml")))
    options = replace(plan_options(params, provider="generic"), nodes=None)
    return compare_node_types(catalog, profile, load_node_types(), options, providers=providers, families=families)


def compare_pools_from_params(params: PlanParams, *, pools: Sequence[PoolSpec] | None = None,
                              families: Iterable[str] | None = None) -> dict[str, list[Comparison]]:
    """``plan --compare-node-types --pools FILE``: per pool, every node type of the pools'
    cloud tried in that pool (``poolplan.compare_pool_node_types``); ``pools``: the file's
    pools when the caller has read them already."""
    from .inputs import load_inputs_catalog, plan_options
    from .nodes import load_node_types
    from .paths import data_file
    from .poolplan import compare_pool_node_types
    from .pools import load_pools
    from .profiles import get_profile, load_profiles

    if not params.pools:
        raise InputError("no pools file to compare per pool", field="pools", valid="a pools file")
    catalog = load_inputs_catalog(params)
    profile = get_profile(params.profile, load_profiles(), file=str(data_file("profiles.yaml")))
    return compare_pool_node_types(catalog, profile, pools if pools is not None else load_pools(params.pools),
                                   load_node_types(),
                                   plan_options(params), file=params.pools, families=families,
                                   auto_exact=params.exact is None)
