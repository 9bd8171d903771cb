"""Node pools: a plan's several groups of nodes, and which services each one runs.

A production cluster often has a second pool for the stateful services (Redis, PostgreSQL
and Prometheus on memory-optimised nodes), set apart by a label the services select and a
taint only they tolerate. A pools file says what the pools are:

    pools:
      - name: general
        node_type: n2-standard-8
        nodes: null                # null or left out: size it
      - name: memory
        node_type: n2-highmem-4
        nodes: 3
        labels: {eafix.io/pool: memory}
        taints: [{key: eafix.io/pool, value: memory, effect: NoSchedule}]
        services: [redis, postgresql, prometheus]

A service runs in the pool whose nodes its ``node_selector`` matches and whose NoSchedule
and NoExecute taints its ``tolerations`` tolerate (the catalogue's fields, as the rendering
writes them; kube-scheduler's NodeAffinity and TaintToleration filters). A pool's
``services`` list is a shorthand: those services get the pool's labels as their node
selector and a toleration of each of its taints. Sizing is per pool, so each service must
be able to run in exactly one pool: one it can run in nowhere would stay Pending, and one
that could go to two would be placed by the scheduler in either, which a per-pool count
cannot promise; both are refused, naming the service and the pools.

Pure: records in, records out (``load_pools`` reads the one file it is given).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping, Sequence

from .catalog import Catalog, Service
from .errors import InputError
from .labels import LABEL_KEY_RULE, LABEL_VALUE_RULE, is_valid_label_key, is_valid_label_value, label_map
from .limits import MAX_NODES, NODES_LIMIT_TEXT
from .scheduling import Taint, Toleration, untolerated_taint
from .yamlio import load_yaml_file

POOL_KEYS = ("name", "node_type", "nodes", "labels", "taints", "services")
TAINT_KEYS = ("key", "value", "effect")
EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
MAX_POOLS = 10


@dataclass(frozen=True)
class PoolSpec:
    """One node pool as the pools file gives it; ``nodes`` None: the plan sizes it."""

    name: str
    node_type: str
    nodes: int | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    taints: tuple[Taint, ...] = ()
    services: tuple[str, ...] = ()

    def runs(self, service: Service) -> bool:
        """Whether kube-scheduler would let the service's pods onto this pool's nodes."""
        if any(self.labels.get(k) != v for k, v in service.node_selector.items()):
            return False
        return untolerated_taint(self.taints, service.tolerations) is None


def load_pools(path: str | Path) -> tuple[PoolSpec, ...]:
    """The pools of a pools file."""
    return pools_from_dict(load_yaml_file(path), file=str(path))


def _check_name(name: Any, *, file: str, index: int) -> str:
    from .catalog import _dns_label_problem   # the catalogue's own DNS-label rule
    if not isinstance(name, str) or not name:
        raise InputError("missing or empty pool name", file=file, obj=f"pools[{index}]", field="name", value=name,
                         valid="a DNS label such as general or memory")
    problem = _dns_label_problem(name, letter_first=False)
    if problem:
        raise InputError(f"pool name {problem}", file=file, obj=f"pools[{index}]", field="name", value=name,
                         valid="a DNS label: lower-case letters, digits and '-', at most 63 characters")
    return name


def _taints(raw: Any, *, file: str, obj: str) -> tuple[Taint, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise InputError("not a list", file=file, obj=obj, field="taints", value=raw,
                         valid="a list of {key, value, effect}, e.g. [{key: eafix.io/pool, value: memory, "
                               "effect: NoSchedule}]")
    out: list[Taint] = []
    for i, t in enumerate(raw):
        where = f"taints[{i}]"
        if not isinstance(t, dict):
            raise InputError("not a mapping", file=file, obj=obj, field=where, value=t, valid="{key, value, effect}")
        unknown = sorted(str(k) for k in t if k not in TAINT_KEYS)
        if unknown:
            raise InputError("unknown field", file=file, obj=obj, field=f"{where}.{unknown[0]}", value=unknown[0],
                             valid="one of: " + ", ".join(TAINT_KEYS))
        key, value, effect = t.get("key"), t.get("value", ""), t.get("effect")
        if not isinstance(key, str) or not is_valid_label_key(key):
            raise InputError("invalid taint key", file=file, obj=obj, field=f"{where}.key", value=key,
                             valid=LABEL_KEY_RULE)
        if not isinstance(value, str) or not is_valid_label_value(value):
            raise InputError("invalid taint value", file=file, obj=obj, field=f"{where}.value", value=value,
                             valid=LABEL_VALUE_RULE)
        if effect not in EFFECTS:
            # as pkg/apis/core/validation validateTaintEffect
            raise InputError("invalid taint effect", file=file, obj=obj, field=f"{where}.effect", value=effect,
                             valid="one of: " + ", ".join(EFFECTS))
        taint = Taint(key, value, str(effect))
        if any(o.key == key and o.effect == effect for o in out):
            raise InputError("taint given twice", file=file, obj=obj, field=where, value=f"{key}:{effect}",
                             valid="each key and effect once (the API refuses duplicates)")
        out.append(taint)
    return tuple(out)


def pools_from_dict(doc: Any, *, file: str = "<dict>") -> tuple[PoolSpec, ...]:
    """The checked pools of a parsed pools file."""
    if not isinstance(doc, dict) or set(doc) != {"pools"}:
        raise InputError("expected a mapping with one key, pools", file=file, value=doc if not isinstance(doc, dict)
                         else sorted(map(str, doc)), valid="pools: [{name, node_type, nodes, labels, taints, services}]")
    raw = doc["pools"]
    if not isinstance(raw, list) or not raw:
        raise InputError("no pools", file=file, field="pools", value=raw, valid="a list of at least one pool")
    if len(raw) > MAX_POOLS:
        raise InputError(f"{len(raw)} pools", file=file, field="pools", valid=f"at most {MAX_POOLS} pools")
    out: list[PoolSpec] = []
    for i, p in enumerate(raw):
        if not isinstance(p, dict):
            raise InputError("not a mapping", file=file, obj=f"pools[{i}]", value=p,
                             valid="{name, node_type, nodes, labels, taints, services}")
        name = _check_name(p.get("name"), file=file, index=i)
        unknown = sorted(str(k) for k in p if k not in POOL_KEYS)
        if unknown:
            raise InputError("unknown field", file=file, obj=name, field=unknown[0], value=unknown[0],
                             valid="one of: " + ", ".join(POOL_KEYS))
        if any(o.name == name for o in out):
            raise InputError("pool name given twice", file=file, obj=name, field="name", value=name,
                             valid="each pool once")
        node_type = p.get("node_type")
        if not isinstance(node_type, str) or not node_type:
            raise InputError("missing node type", file=file, obj=name, field="node_type", value=node_type,
                             valid="a name from data/node-types.csv, e.g. n2-highmem-4")
        nodes = p.get("nodes")
        if nodes is not None and (isinstance(nodes, bool) or not isinstance(nodes, int)
                                  or not 1 <= nodes <= MAX_NODES):
            raise InputError("invalid node count", file=file, obj=name, field="nodes", value=nodes,
                             valid=f"a whole number from 1 to {MAX_NODES:,} ({NODES_LIMIT_TEXT}), or null to size it")
        services = p.get("services") or []
        if not isinstance(services, list) or not all(isinstance(s, str) and s for s in services):
            raise InputError("not a list of service names", file=file, obj=name, field="services", value=services,
                             valid="e.g. [redis, postgresql]")
        labels = label_map(p.get("labels"), field="labels",
                           fail=lambda fld, problem, value, valid: InputError(problem, file=file, obj=name, field=fld,
                                                                              value=value, valid=valid))
        out.append(PoolSpec(name, node_type, nodes, labels,
                            _taints(p.get("taints"), file=file, obj=name), tuple(services)))
    return tuple(out)


def place_services(catalog: Catalog, pools: Sequence[PoolSpec], *, file: str = "<pools>") -> Catalog:
    """The catalogue with each pool's ``services`` given the pool's labels as their node
    selector and a toleration of each of its taints (kept when the catalogue already says so)."""
    named: dict[str, PoolSpec] = {}
    for p in pools:
        for s in p.services:
            if s in named:
                raise InputError("service listed in two pools", file=file, obj=p.name, field="services", value=s,
                                 valid=f"once: it is in pool {named[s].name} already")
            named[s] = p
    known = set(catalog.names())
    for s, p in named.items():
        if s not in known:
            raise InputError("unknown service", file=file, obj=p.name, field="services", value=s,
                             valid="one of the catalogue's: " + ", ".join(catalog.names()))
    services = []
    for svc in catalog.services:
        pool = named.get(svc.name)
        if pool is None:
            services.append(svc)
            continue
        p = pool
        clash = {k: v for k, v in svc.node_selector.items() if p.labels.get(k, v) != v}
        if clash:
            raise InputError(f"the catalogue's node selector of {svc.name} does not select pool {p.name}",
                             file=file, obj=p.name, field="services", value=svc.name,
                             valid=f"list it under the pool it selects, or change its nodeSelector {clash}")
        tolerations = svc.tolerations + tuple(
            Toleration(key=t.key, operator="Equal", value=t.value, effect=t.effect)
            for t in p.taints if untolerated_taint((t,), svc.tolerations) is not None)
        services.append(replace(svc, node_selector={**svc.node_selector, **p.labels}, tolerations=tolerations))
    return replace(catalog, services=tuple(services))


def assign(catalog: Catalog, pools: Sequence[PoolSpec], *, file: str = "<pools>") -> dict[str, tuple[Service, ...]]:
    """Pool name -> the services it runs, each service in exactly one pool."""
    out: dict[str, list[Service]] = {p.name: [] for p in pools}
    for svc in catalog.services:
        fits = [p for p in pools if p.runs(svc)]
        if not fits:
            raise InputError("no pool runs service", file=file, obj=svc.name, field="node_selector",
                             value=dict(svc.node_selector) or "none",
                             valid="a pool whose labels its nodeSelector matches and whose taints it tolerates: "
                                   + "; ".join(_describe(p) for p in pools))
        if len(fits) > 1:
            raise InputError(f"service {svc.name} could run in pools {', '.join(p.name for p in fits)}",
                             file=file, obj=svc.name, field="node_selector", value=dict(svc.node_selector) or "none",
                             valid="a nodeSelector (or a taint on the other pools) that leaves it one pool: the "
                                   "plan sizes each pool for the services only it runs")
        out[fits[0].name].append(svc)
    return {name: tuple(s) for name, s in out.items()}


def _describe(p: PoolSpec) -> str:
    labels = ",".join(f"{k}={v}" for k, v in p.labels.items()) or "no labels"
    taints = ",".join(f"{t.key}={t.value}:{t.effect}" for t in p.taints) or "no taints"
    return f"{p.name} ({labels}; {taints})"
