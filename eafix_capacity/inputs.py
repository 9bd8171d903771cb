"""Plan parameters as users give them (flags, notebook parameters, YAML files).

``PlanParams`` is the one place where loose user input becomes checked values:
the CLI, the report command and the notebooks' validation cell all go through it, so a
bad value gets the same message wherever it comes from, naming where it came from (the
params file, "command line" or "notebook parameters") and saying how to ask for the
default there (leave it out or null in YAML, leave the flag out, 0 in a notebook).

Every number is checked for type, range and finiteness (``nan`` and ``inf`` are
refused), and counts against the limits Kubernetes supports (``limits.py``), before
anything is loaded or allocated. ``catalog`` and ``manifests`` paths are made absolute
when the parameters are read (``from_mapping``): relative to the caller's working
directory for flags and notebook parameters, and relative to the params file's own
directory for a params file, so a report's kernel, which runs in ``notebooks/``, reads
the same files the command line named.
"""
from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Literal, Mapping

from .catalog import Catalog, load_catalog
from .errors import InputError
from .exact import check_seconds
from .limits import MAX_NODES, MAX_PODS, NODES_LIMIT_TEXT, PODS_LIMIT_TEXT
from .mesh import Mesh, parse_mesh
from .nodes import DEFAULT_NODE_TYPES_PATH, Provider, get_node_type, load_node_types, parse_provider
from .paths import data_file
from .plan import (DEFAULT_CPU_LIMIT_RATIO, DEFAULT_HEADROOM_PCT, DEFAULT_MEMORY_LIMIT_RATIO,
                   Plan, PlanOptions, make_plan)
from .profiles import get_profile, load_profiles
from .yamlio import load_yaml_file
from .zones import parse_zones


@dataclass(frozen=True)
class PlanParams:
    profile: str = "recommended"
    provider: Provider = "gke"
    node_type: str = "n2-standard-8"
    nodes: int | None = None
    mesh: Mesh = "none"
    headroom_pct: float = DEFAULT_HEADROOM_PCT
    cpu_limit_ratio: float = DEFAULT_CPU_LIMIT_RATIO
    memory_limit_ratio: float = DEFAULT_MEMORY_LIMIT_RATIO
    storage_gib: float | None = None
    max_pods: int | None = None
    catalog: str | None = None
    manifests: str | None = None
    replicas: Mapping[str, int] = field(default_factory=dict)
    ignore_unknown_kinds: bool = False   # with manifests: skip objects of unknown kind, warning each
    zones: str | None = None             # zone names "a,b,c" or a count "3" (zones.py); None: no zones
    zonal_pool: bool = False             # with zones: node counts need not be the same in every zone
    exact: bool | None = None            # prove minimum counts (exact.py, CP-SAT); None: auto (AUTO_EXACT)
    exact_seconds: float = 1.0           # with exact: the solver's budget per scenario
    growth_pct: float | None = None      # percent demand growth per month (growth.py); None: no runway
    lead_time_days: int | None = None    # with growth_pct: days to get more capacity
    pools: str | None = None             # a pools file (pools.py): several node pools; None: one pool

    def __post_init__(self) -> None:
        checked = check_params(self.__dict__, source=None, origin="python")
        object.__setattr__(self, "provider", checked["provider"])
        object.__setattr__(self, "mesh", checked["mesh"])

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any], *, source: str = "parameters",
                     origin: Origin = "file", base_dir: str | Path | None = None) -> PlanParams:
        """Checked parameters from loose values; errors name ``source``. ``catalog`` and
        ``manifests`` become absolute paths, relative ones taken from ``base_dir``
        (default: the current working directory)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted((k for k in raw if k not in known), key=str)
        if unknown:
            raise InputError("unknown parameter", file=source, field=str(unknown[0]), value=unknown[0],
                             valid="known parameters: " + ", ".join(sorted(known)))
        values = check_params(raw, source=source, origin=origin)
        for name in ("catalog", "manifests", "pools"):
            if values.get(name):
                values[name] = _absolute(values[name], base_dir)
        return cls(**values)

    @classmethod
    def from_notebook(cls, **values: Any) -> PlanParams:
        """From a notebook's parameters cell, where 0 and "" mean "not given" and
        ``replicas`` is text such as ``"reporter:2,gui-gateway:3"``."""
        for name in ("nodes", "storage_gib", "max_pods", "growth_pct", "lead_time_days"):
            if values.get(name) in (0, 0.0) and not isinstance(values.get(name), bool):
                values[name] = None
        for name in ("catalog", "manifests", "zones", "pools"):
            if values.get(name) == "":
                values[name] = None
        if isinstance(values.get("replicas"), str):
            values["replicas"] = parse_replicas_text(values["replicas"], source="notebook parameters")
        if isinstance(values.get("exact"), str):
            words = {"auto": None, "yes": True, "no": False}
            if values["exact"] not in words:
                raise InputError("not yes, no or auto", file="notebook parameters", field="exact",
                                 value=values["exact"], valid=EXACT_VALID)
            values["exact"] = words[values["exact"]]
        return cls.from_mapping(values, source="notebook parameters", origin="notebook")

    @classmethod
    def from_yaml(cls, path: str | Path) -> PlanParams:
        """From a params file; its relative ``catalog``/``manifests`` paths are relative to
        the file's own directory."""
        doc = load_yaml_file(path)
        if doc is None:
            doc = {}
        if not isinstance(doc, dict):
            raise InputError("expected a mapping of parameter names to values", file=str(path),
                             value=doc)
        return cls.from_mapping(doc, source=str(path), origin="file",
                                base_dir=Path(os.path.abspath(path)).parent)

    def notebook_parameters(self) -> dict[str, Any]:
        """The parameters as papermill passes them (nodes 0 = let the plan choose)."""
        return {
            "profile": self.profile, "provider": self.provider, "node_type": self.node_type,
            "nodes": self.nodes or 0, "mesh": self.mesh, "headroom_pct": float(self.headroom_pct),
            "cpu_limit_ratio": float(self.cpu_limit_ratio),
            "memory_limit_ratio": float(self.memory_limit_ratio),
            "storage_gib": float(self.storage_gib) if self.storage_gib is not None else 0.0,
            "max_pods": self.max_pods or 0,
            "replicas": ",".join(f"{name}:{n}" for name, n in self.replicas.items()),
            "catalog": self.catalog or "", "manifests": self.manifests or "",
            "ignore_unknown_kinds": bool(self.ignore_unknown_kinds),
            "zones": self.zones or "", "zonal_pool": bool(self.zonal_pool),
            "exact": {None: "auto", True: "yes", False: "no"}[self.exact], "exact_seconds": float(self.exact_seconds),
            "growth_pct": float(self.growth_pct) if self.growth_pct is not None else 0.0,
            "lead_time_days": self.lead_time_days or 0,
            "pools": self.pools or "",
        }


def check_growth_params(raw: Mapping[str, Any], *, source: str | None) -> None:
    """One-line errors for a bad growth rate or lead time."""
    from .catalog import check_growth_pct
    from .growth import problem_lead_time
    growth, lead = raw.get("growth_pct"), raw.get("lead_time_days")
    if growth is not None:
        problem = check_growth_pct(growth)
        if problem:
            raise InputError(problem, file=source, field="growth_pct", value=growth,
                             valid="percent demand growth per month, 0 to 1000 (without it, no runway)")
    if lead is not None:
        problem = problem_lead_time(lead)
        if problem:
            raise InputError(problem, file=source, field="lead_time_days", value=lead,
                             valid="whole days to get more capacity, 0 to 3650")
        if growth is None:
            raise InputError("a lead time needs a growth rate to judge", file=source, field="lead_time_days",
                             value=lead, valid="give growth_pct (--growth PCT) too")


def parse_replicas_text(text: str, *, source: str = "parameters") -> dict[str, int]:
    """Replica overrides written as one string, ``"reporter:2,gui-gateway:3"`` ("" for
    none): the form a notebook parameter can carry."""
    if not isinstance(text, str):
        raise InputError("not a string of SERVICE:N pairs", file=source, field="replicas", value=text,
                         valid="comma-separated SERVICE:N pairs, e.g. reporter:2,gui-gateway:3")
    out: dict[str, int] = {}
    for item in (t.strip() for t in text.split(",")):
        if not item:
            continue
        name, sep, n = item.partition(":")
        count = parse_count(n)
        if not sep or not name.strip() or count is None:
            raise InputError("invalid replica override", file=source, field="replicas", value=item,
                             valid="comma-separated SERVICE:N pairs, e.g. reporter:2,gui-gateway:3")
        out[name.strip()] = count
    return out


EXACT_VALID = ("true (every scenario), false (First-Fit Decreasing only) or null/auto (with pools: the solver for "
               "each pool under 20 nodes; one pool: off)")
_COUNT = re.compile(r"-?[0-9]{1,18}")


def parse_count(text: str) -> int | None:
    """The integer ``text`` spells in ASCII digits (at most 18 of them, so a million-digit
    string is refused, not converted), or None."""
    text = text.strip()
    return int(text) if _COUNT.fullmatch(text) else None


# ------------------------------------------------------------------ checking values

Origin = Literal["file", "cli", "notebook", "python"]

_DEFAULT_HINT: dict[str, str] = {
    "file": "null or leave it out for the default",
    "cli": "leave the flag out for the default",
    "notebook": "0 for the default",
    "python": "None for the default",
}
_NAME_DEFAULT_HINT: dict[str, str] = {
    "file": "leave it out for the default {default!r}",
    "cli": "leave the flag out for the default {default!r}",
    "notebook": "the default is {default!r}",
    "python": "the default is {default!r}",
}
_FLOAT_RANGES: dict[str, tuple[Callable[[float], bool], str]] = {
    # name: (in range, what is valid)
    "headroom_pct": (lambda v: 0 <= v < 100, "a percentage from 0 up to (not including) 100"),
    "cpu_limit_ratio": (lambda v: v > 0, "a finite number above 0"),
    "memory_limit_ratio": (lambda v: v > 0, "a finite number above 0"),
    "storage_gib": (lambda v: v >= 0, "GiB of persistent storage provisioned, a finite number, 0 or more"),
}


def check_params(raw: Mapping[str, Any], *, source: str | None, origin: Origin) -> dict[str, Any]:
    """The parameters in ``raw`` checked (provider and mesh parsed); an ``InputError``
    names ``source`` and the parameter, and says how to ask for the default from
    ``origin``. Checks only; nothing is loaded."""
    values = dict(raw)
    file = source
    hint = _DEFAULT_HINT[origin]
    defaults = PlanParams.__dataclass_fields__
    for name in ("profile", "node_type"):
        if name in values:
            v = values[name]
            if not isinstance(v, str) or not v.strip():
                default = defaults[name].default
                how = _NAME_DEFAULT_HINT[origin].format(default=default)
                raise InputError("null, not a name" if v is None else "not a non-empty string",
                                 file=file, field=name, value=v, valid=f"a name such as {default!r}; {how}")
    if "provider" in values:
        values["provider"] = parse_provider(values["provider"], file=file)
    if "mesh" in values:
        values["mesh"] = parse_mesh(values["mesh"], file=file)
    for name, limit, why in (("nodes", MAX_NODES, NODES_LIMIT_TEXT), ("max_pods", MAX_PODS, PODS_LIMIT_TEXT)):
        v = values.get(name)
        if v is None:
            continue
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise InputError("not a whole number of at least 1", file=file, field=name, value=v,
                             valid=f"an integer from 1 to {limit:,}, or {hint}")
        if v > limit:
            what = "nodes" if name == "nodes" else "pods per node"
            raise InputError(f"too many {what}", file=file, field=name, value=v,
                             valid=f"at most {limit:,}: {why}")
    for name, (in_range, valid) in _FLOAT_RANGES.items():
        if name not in values:
            continue
        v = values[name]
        if v is None and name == "storage_gib":
            continue
        extra = f", or {hint}" if name == "storage_gib" else ""
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise InputError("not a number", file=file, field=name, value=v, valid=valid + extra)
        if not math.isfinite(v) or not in_range(float(v)):
            problem = "not a finite number" if not math.isfinite(v) else "out of range"
            if name == "storage_gib" and math.isfinite(v) and v < 0:
                problem = "negative storage"
            raise InputError(problem, file=file, field=name, value=v, valid=valid + extra)
    if values.get("pools") is not None and not isinstance(values["pools"], str):
        raise InputError("not a path", file=file, field="pools", value=values["pools"],
                         valid=f"the path of a pools file (e.g. data/pools-memory.yaml), or {hint}")
    if values.get("pools") and values.get("nodes") is not None:
        raise InputError("with pools, each pool's node count is in the pools file, not", file=file, field="nodes",
                         value=values["nodes"], valid="leave nodes out; give a pool's nodes in the pools file")
    if values.get("pools") and values.get("growth_pct") is not None:
        raise InputError("the growth runway of several pools is not modelled yet", file=file, field="growth_pct",
                         value=values["growth_pct"], valid="leave growth_pct out with pools, or plan one pool")
    if values.get("catalog") is not None and not isinstance(values["catalog"], str):
        raise InputError("not a path", file=file, field="catalog", value=values["catalog"],
                         valid=f"the path of a services file, or {hint}")
    if values.get("manifests") is not None and not isinstance(values["manifests"], str):
        raise InputError("not a path", file=file, field="manifests", value=values["manifests"],
                         valid=f"the path of a manifests directory, or {hint}")
    if values.get("catalog") and values.get("manifests"):
        raise InputError("give either a catalogue file or a manifests directory, not both",
                         file=file, field="manifests", value=values["manifests"])
    replicas = values.get("replicas", {})
    if not isinstance(replicas, Mapping):
        raise InputError("not a mapping of service to replicas", file=file, field="replicas",
                         value=replicas, valid="SERVICE: N entries, e.g. {reporter: 2}")
    for service, n in replicas.items():
        if not isinstance(service, str) or not service:
            raise InputError("not a service name", file=file, field="replicas", value=service,
                             valid="SERVICE: N entries, e.g. {reporter: 2}")
        if isinstance(n, bool) or not isinstance(n, int):
            raise InputError("not an integer", file=file, obj=service, field="replicas", value=n,
                             valid="a whole number of replicas, 0 or more")
        if n < 0:
            raise InputError("negative replicas", file=file, obj=service, field="replicas", value=n,
                             valid="0 or more (0 scales the service to zero)")
        if n > MAX_PODS:
            raise InputError("too many replicas", file=file, obj=service, field="replicas", value=n,
                             valid=f"at most {MAX_PODS:,}: {PODS_LIMIT_TEXT}")
    for name in ("ignore_unknown_kinds", "zonal_pool"):
        if name in values and not isinstance(values[name], bool):
            raise InputError("not a boolean", file=file, field=name, value=values[name], valid="true or false")
    if values.get("exact") is not None and not isinstance(values["exact"], bool):
        raise InputError("not a boolean", file=file, field="exact", value=values["exact"], valid=EXACT_VALID)
    if values.get("zones") is not None:
        zones = parse_zones(values["zones"], file=file)
        values["zones"] = (str(zones) if isinstance(zones, int) else ",".join(zones)) or None
    if values.get("zonal_pool") and not values.get("zones"):
        raise InputError("a zonal pool needs zones", file=file, field="zonal_pool", value=True,
                         valid="give zones too (e.g. a,b,c), or leave zonal_pool out")
    if "exact_seconds" in values:
        values["exact_seconds"] = check_seconds(values["exact_seconds"], file=file)
    check_growth_params(values, source=file)
    if values.get("growth_pct") is not None:
        values["growth_pct"] = float(values["growth_pct"])
    return values


def _absolute(path: str, base_dir: str | Path | None) -> str:
    p = Path(path).expanduser()
    if not p.is_absolute():
        p = Path(base_dir if base_dir is not None else os.getcwd()) / p
    return os.path.normpath(p)


def load_inputs_catalog(params: PlanParams) -> Catalog:
    if params.manifests:
        from .manifests.importer import import_catalog
        catalog = import_catalog(params.manifests, ignore_unknown_kinds=params.ignore_unknown_kinds)
    else:
        catalog = load_catalog(params.catalog)
    return catalog.with_replicas(params.replicas) if params.replicas else catalog


def plan_options(params: PlanParams, *, provider: Provider | None = None) -> PlanOptions:
    """The plan options ``params`` give (``provider`` instead of theirs, for a comparison
    that plans each node type on its own cloud)."""
    storage = None if params.storage_gib is None else int(params.storage_gib * 2**30)
    zones = parse_zones(params.zones)
    return PlanOptions(
        provider=provider or params.provider, nodes=params.nodes, mesh=params.mesh,
        headroom_pct=float(params.headroom_pct), cpu_limit_ratio=float(params.cpu_limit_ratio),
        memory_limit_ratio=float(params.memory_limit_ratio), storage_bytes=storage,
        max_pods=params.max_pods, exact=bool(params.exact), exact_seconds=params.exact_seconds,
        zones=zones, zonal_pool=params.zonal_pool,
    )


def plan_from_params(params: PlanParams, *, catalog: Catalog | None = None) -> Plan:
    """Load the embedded (or given) data and make the plan; with ``catalog``, plan that
    catalogue (its replicas overridden as the params say) instead of loading one (the
    re-plan on recommended figures, usage/recommend.py). With a growth rate the plan
    carries its runway and the ``growth-runway`` gate (growth.py)."""
    if catalog is None:
        catalog = load_inputs_catalog(params)
    elif params.replicas:
        catalog = catalog.with_replicas(params.replicas)
    profile = get_profile(params.profile, load_profiles(), file=str(data_file("profiles.yaml")))
    if params.pools:
        from .poolplan import make_pools_plan
        from .pools import load_pools
        return make_pools_plan(catalog, profile, load_pools(params.pools), load_node_types(), plan_options(params),
                               file=params.pools, auto_exact=params.exact is None)
    node_type = get_node_type(params.node_type, load_node_types(), file=str(DEFAULT_NODE_TYPES_PATH))
    plan = make_plan(catalog, profile, node_type, plan_options(params))
    if params.growth_pct is not None:
        from .growth import plan_runway
        plan = plan_runway(plan, growth=params.growth_pct, lead_time_days=params.lead_time_days)
    return plan


def check_scenario(scenario: str) -> str:
    from .scenarios import SCENARIOS
    if scenario not in SCENARIOS:
        raise InputError("unknown scenario", field="scenario", value=scenario,
                         valid="one of: " + ", ".join(SCENARIOS))
    return scenario
