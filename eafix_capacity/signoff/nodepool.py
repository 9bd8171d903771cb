"""Rehearse a node-pool upgrade on the twin: the provider's surge procedure, drain by drain.

Before a node-pool upgrade the question is not whether the plan fits on paper but whether the
provider's procedure gets through: each batch of old nodes is cordoned and drained while the
PodDisruptionBudgets hold, the evicted pods must find room (on the surge nodes, or on what is
left), and a drain that a budget blocks past the provider's timeout fails the upgrade (AKS
calls it ``PodDrainFailure``). This module runs that procedure against the sim twin through
the API, as the provider's upgrade controller would against the real cluster: surge nodes
register as Node objects (a kubelet's self-registration), drains go through
:mod:`.drain` (kubectl's eviction path), old nodes are deleted (their pods left behind are the
pod garbage collector's), and every step is recorded as an :class:`Observation`.

The defaults are each provider's documented ones (``../shared/DESIGN.md`` "Sign-off"):
GKE surge upgrades take ``max_surge + max_unavailable`` nodes at a time (1 and 0) and respect
PDBs for up to an hour; EKS managed node groups first add up to twice the zone count of new
nodes, then drain ``max_unavailable`` (1) at a time, failing a drain after 15 minutes
(``PodEvictionFailure``); AKS surges 1 node (or a percentage of the pool, rounded up; 33% is
advised for production) and fails with ``PodDrainFailure`` after a 30-minute drain timeout.
A drain past its timeout stops the rehearsal for every provider (GKE would go on and delete the
pods regardless of the budget: an outage the sign-off must catch either way). The nodes of a
batch are cordoned together and drained one after the other; in sim time that only lengthens
the rehearsal, it does not change what the budgets allow.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence
from urllib.parse import quote

from ..cluster.rest import delete_json, post_json
from ..errors import ClusterError, InputError
from .drain import cordon, drain, go_duration
from .observe import (list_nodes, list_pods, min_ready, observation_of, read_pdbs, read_workloads,
                      desired_replicas, required_ready)
from .records import BlockedEviction, Observation, Rehearsal

if TYPE_CHECKING:
    from ..sim.cluster import SimCluster

PROVIDERS = ("gke", "eks", "aks")
ZONE_LABEL = "topology.kubernetes.io/zone"
INSTANCE_TYPE_LABEL = "node.kubernetes.io/instance-type"
READY_POLL_SECONDS = 5.0
DEFAULT_READY_TIMEOUT = 600.0
STEADY_RETRY_SECONDS = 60.0
REQUEST_TIMEOUT = 10.0


@dataclass(frozen=True)
class UpgradeSettings:
    """A node-pool upgrade's procedure. ``max_surge``/``max_unavailable``: nodes, or a
    percentage of the pool (rounded up for the surge, down for unavailable, as AKS and GKE
    round); ``max_surge`` None on EKS: twice the zone count (its scale-up phase). ``surge_first``:
    all surge nodes are added before the first drain (EKS), else per batch (GKE, AKS).
    ``node_type``: the new nodes' type (None: the old nodes' type). ``ready_timeout_seconds``:
    how long the evicted pods may take to be Ready elsewhere after a batch. ``steady_retry_seconds``:
    see :func:`.drain.drain` (``steady_retry``): an eviction a budget keeps refusing is tried again
    this often on the twin, its 5-second retries in between counted as kubectl would make them."""

    provider: str
    max_surge: int | str | None
    max_unavailable: int | str
    drain_timeout_seconds: float
    surge_first: bool = False
    node_type: str | None = None
    ready_timeout_seconds: float = DEFAULT_READY_TIMEOUT
    steady_retry_seconds: float = STEADY_RETRY_SECONDS

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


PROVIDER_DEFAULTS: Mapping[str, Mapping[str, Any]] = {
    "gke": {"max_surge": 1, "max_unavailable": 0, "drain_timeout_seconds": 3600.0, "surge_first": False},
    "eks": {"max_surge": None, "max_unavailable": 1, "drain_timeout_seconds": 900.0, "surge_first": True},
    "aks": {"max_surge": 1, "max_unavailable": 0, "drain_timeout_seconds": 1800.0, "surge_first": False},
}
# every rehearsal reason starts "PodDrainFailure:" (AKS's name); EKS's own error code is added
FAILURE_SUFFIX = {"gke": "", "eks": " (EKS: PodEvictionFailure)", "aks": ""}


def _check_count(value: object, field: str, *, allow_none: bool = False) -> int | str | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool):
        raise InputError("must be a node count or a percentage:", field=field, value=value, valid='e.g. 1 or "33%"')
    if isinstance(value, int):
        if value < 0:
            raise InputError("must be >= 0, got", field=field, value=value, valid='e.g. 1 or "33%"')
        return value
    if isinstance(value, str) and value.endswith("%"):
        try:
            pct = int(value[:-1])
        except ValueError:
            pct = -1
        if not 0 <= pct <= 100:
            raise InputError("not a percentage from 0% to 100%:", field=field, value=value, valid='e.g. "33%"')
        return value
    raise InputError("must be a node count or a percentage:", field=field, value=value, valid='e.g. 1 or "33%"')


def upgrade_settings(provider: str, *, max_surge: object = "default", max_unavailable: object = None,
                     drain_timeout_seconds: object = None, node_type: str | None = None,
                     ready_timeout_seconds: object = None, steady_retry_seconds: object = None,
                     node_types_path: str | None = None) -> UpgradeSettings:
    """The provider's defaults with what is given; every bad value is a one-line ``InputError``
    naming the field (pure, but for reading the node types file when ``node_type`` is given)."""
    if provider not in PROVIDERS:
        raise InputError("unknown provider", field="provider", value=provider, valid=", ".join(PROVIDERS))
    d = PROVIDER_DEFAULTS[provider]
    surge = _check_count(d["max_surge"] if max_surge == "default" else max_surge, "max_surge",
                         allow_none=provider == "eks")
    unavailable = _check_count(d["max_unavailable"] if max_unavailable is None else max_unavailable,
                               "max_unavailable")
    assert unavailable is not None
    if surge in (0, "0%") and unavailable in (0, "0%"):
        raise InputError("max_surge and max_unavailable cannot both be 0 (no node would ever be upgraded):",
                         field="max_surge", value=surge, valid="max_surge >= 1 or max_unavailable >= 1")
    timeout = _check_seconds(d["drain_timeout_seconds"] if drain_timeout_seconds is None else drain_timeout_seconds,
                             "drain_timeout_seconds")
    ready = _check_seconds(DEFAULT_READY_TIMEOUT if ready_timeout_seconds is None else ready_timeout_seconds,
                           "ready_timeout_seconds")
    steady = _check_seconds(STEADY_RETRY_SECONDS if steady_retry_seconds is None else steady_retry_seconds,
                            "steady_retry_seconds")
    if node_type is not None:
        from ..nodes import get_node_type, load_node_types

        get_node_type(node_type, load_node_types(node_types_path))
    return UpgradeSettings(provider, surge, unavailable, timeout, bool(d["surge_first"]), node_type, ready, steady)


def _check_seconds(value: object, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0 or math.isinf(value):
        raise InputError("must be a number of seconds > 0, got", field=field, value=value, valid="e.g. 1800")
    return float(value)


def resolve_count(value: int | str, pool: int, *, round_up: bool) -> int:
    """Nodes of a setting against a pool of ``pool`` nodes (pure)."""
    if isinstance(value, int):
        return value
    pct = int(value[:-1])
    return math.ceil(pct * pool / 100) if round_up else (pct * pool) // 100


@dataclass(frozen=True)
class Batches:
    """The procedure's numbers for a pool: surge nodes per batch (or added first), nodes per batch."""

    surge: int
    unavailable: int
    batch: int
    surge_first: bool


def plan_batches(settings: UpgradeSettings, *, pool: int, zones: int) -> Batches:
    """How many nodes the procedure adds and drains at a time on a pool of ``pool`` nodes in
    ``zones`` zones (pure). GKE and AKS: ``surge + unavailable`` old nodes per batch, ``surge``
    new nodes added first for each batch; EKS: up to twice the zone count added once, then
    ``max_unavailable`` old nodes per batch."""
    unavailable = resolve_count(settings.max_unavailable, pool, round_up=False)
    if settings.max_surge is None:
        surge = min(2 * max(zones, 1), pool)
    else:
        surge = min(resolve_count(settings.max_surge, pool, round_up=True), pool)
    if settings.surge_first:
        batch = unavailable if unavailable > 0 else max(surge, 1)
    else:
        batch = surge + unavailable
    if batch <= 0:  # a percentage that rounds to nothing on a small pool still moves one node
        batch, surge = 1, (0 if unavailable > 0 else 1)
    return Batches(surge, unavailable, min(batch, pool), settings.surge_first)


# --- Node objects ---------------------------------------------------------------------------------

def new_node_objects(node_type: str, *, names: Sequence[str], zones: Sequence[str], provider: str,
                     mesh: str = "none", now: str | None = None, index_base: int = 0) -> list[dict[str, Any]]:
    """Node objects as :func:`eafix_capacity.sim.cluster.node_objects` builds them (the node
    type's allocatable on ``provider``), named ``names`` and in the zones (zone label values)
    ``zones`` (pure). ``index_base`` keeps their addresses apart from the old nodes'."""
    from ..sim.cluster import node_objects, renumber_node

    built = node_objects(node_type, nodes=len(names), zones=("a",), provider=provider,  # type: ignore[arg-type]
                         mesh=mesh, now=now)  # type: ignore[arg-type]
    out = []
    for i, (node, name, zone) in enumerate(zip(built, names, zones)):
        n = index_base + i
        node["metadata"]["labels"][ZONE_LABEL] = zone
        renumber_node(node, name=name, pod_cidr=f"10.245.{n % 256}.0/24", address=f"10.1.{n // 250}.{n % 250 + 2}",
                      machine_id=f"{name}-{n}")
        out.append(node)
    return out


def new_node_names(existing: Sequence[str], node_type: str, count: int) -> list[str]:
    """``count`` names for new nodes, none of them taken (pure): ``sim-<type>-u<g>-<i>``."""
    base = f"sim-{node_type.replace('.', '-').replace('_', '-').lower()}"
    taken = set(existing)
    generation = 1
    while any(n.startswith(f"{base}-u{generation}-") for n in taken):
        generation += 1
    return [f"{base}-u{generation}-{i}" for i in range(count)]


# --- the rehearsal ---------------------------------------------------------------------------------

def _labels(node: Mapping[str, Any]) -> Mapping[str, str]:
    return (node.get("metadata") or {}).get("labels") or {}


def _pdb_of_pods(blocked: Sequence[BlockedEviction]) -> str:
    by_pdb: dict[str, list[str]] = {}
    for b in blocked:
        by_pdb.setdefault(b.pdb or "(no PDB named)", []).append(f"{b.namespace}/{b.pod}")
    return "; ".join(f"PodDisruptionBudget {pdb} blocked the eviction of {', '.join(pods)}"
                     for pdb, pods in by_pdb.items())


def rehearse_nodepool_upgrade(session_or_api: Any, *, sim: SimCluster | None = None, namespace: str,
                              settings: UpgradeSettings, clock: Callable[[], datetime],
                              sleep: Callable[[float], object]) -> Rehearsal:
    """Replace every node of the twin as ``settings``' provider does (see the module docstring)
    and record each step. Only ever on the sim: a session or sim that is not one is refused."""
    api = getattr(session_or_api, "api", session_or_api)
    sim = sim if sim is not None else getattr(session_or_api, "sim", None)
    if sim is None:
        raise ClusterError("the node-pool upgrade is rehearsed on the sim twin only, never on a real cluster: "
                           "pass the twin's session or sim")
    t = REQUEST_TIMEOUT
    started = clock()
    desired = desired_replicas(read_workloads(api, namespace=namespace, timeout=t))
    required = required_ready(read_pdbs(api, namespace=namespace, timeout=t), desired)
    services = tuple(desired)
    old_nodes = sorted(list_nodes(api, timeout=t), key=lambda n: n["metadata"]["name"])
    old = [n["metadata"]["name"] for n in old_nodes]
    zone_of = {n["metadata"]["name"]: str(_labels(n).get(ZONE_LABEL) or "") for n in old_nodes}
    old_type = str(_labels(old_nodes[0]).get(INSTANCE_TYPE_LABEL) or "") if old_nodes else ""
    node_type = settings.node_type or old_type
    provider = str(((old_nodes[0].get("metadata") or {}).get("annotations") or {}).get("sim.eafix.io/provider")
                   or settings.provider) if old_nodes else settings.provider
    batches = plan_batches(settings, pool=len(old), zones=len(set(zone_of.values())))
    # the new node type must run on this cloud (allocatable per provider): refused before anything changes
    new_node_objects(node_type, names=["check"], zones=["check"], provider=provider, mesh=getattr(sim, "mesh", "none"))
    record = {"provider": settings.provider, "max_surge": settings.max_surge,
              "max_unavailable": settings.max_unavailable, "drain_timeout_seconds": settings.drain_timeout_seconds,
              "surge_first": settings.surge_first, "ready_timeout_seconds": settings.ready_timeout_seconds,
              "steady_retry_seconds": settings.steady_retry_seconds,
              "old_node_type": old_type, "new_node_type": node_type, "old_nodes": old,
              "surge_nodes": batches.surge, "batch_size": batches.batch}
    observations: list[Observation] = []
    samples: list[Observation] = []       # every look, the steps' and those between them (for min_ready)
    all_blocked: list[BlockedEviction] = []
    drains: list[dict[str, Any]] = []
    created: list[str] = []
    batch_log: list[list[str]] = []

    def look(action: str = "", blocked: Sequence[BlockedEviction] = (), *, step: bool = True) -> Observation:
        nodes = list_nodes(api, timeout=t) if step else []   # a sample between steps counts ready pods only
        pods = list_pods(api, namespace=namespace, timeout=t)
        obs = observation_of(nodes, pods, at=clock(), step=len(observations), action=action or "sample",
                             blocked=blocked, services=services)
        samples.append(obs)
        if step:
            observations.append(obs)
        return obs

    def add_nodes(count: int, zones: Sequence[str]) -> None:
        if count <= 0:
            return
        existing = [n["metadata"]["name"] for n in list_nodes(api, timeout=t)]
        names = new_node_names(existing, node_type, count)
        objs = new_node_objects(node_type, names=names, zones=zones, provider=provider, mesh=getattr(sim, "mesh", "none"),
                                now=clock().strftime("%Y-%m-%dT%H:%M:%SZ"), index_base=len(created))
        for obj in objs:  # a kubelet registers its node with its status (capacity, allocatable, Ready)
            post_json(api, "/api/v1/nodes", obj, timeout=t)
            created.append(obj["metadata"]["name"])
        look(f"surge: added node{'s' if count > 1 else ''} {', '.join(names)} ({node_type})")

    def finish(completed: bool, reason: str) -> Rehearsal:
        end = look("end", step=True)
        return Rehearsal(
            name="nodepool-upgrade", kind="nodepool-upgrade", completed=completed, reason=reason,
            started=started, finished=clock(), observations=tuple(observations), min_ready=min_ready(samples),
            desired=desired, required_ready=required,
            longest_block_seconds=max((b.seconds for b in all_blocked), default=0.0),
            pending_at_end=end.pending, settings=record,
            details={"batches": batch_log, "drains": drains, "new_nodes": list(created), "samples": len(samples)})

    look("start")
    remaining = list(old)
    removed = 0
    if batches.surge_first:
        add_nodes(batches.surge, [zone_of[n] for n in (old * 2)[:batches.surge]])
    while remaining:
        batch, remaining = remaining[:batches.batch], remaining[batches.batch:]
        batch_log.append(batch)
        if not batches.surge_first:
            add_nodes(min(batches.surge, len(old) - len(created)), [zone_of[n] for n in batch])
        for node in batch:  # the batch is cordoned before any of it is drained
            cordon(api, node, timeout=t)
        look(f"cordoned {', '.join(batch)}")
        for node in batch:
            result = drain(api, node, clock=clock, sleep=_sampling(sleep, look),
                           timeout=settings.drain_timeout_seconds, wait_for_grace=True,
                           steady_retry=settings.steady_retry_seconds)
            all_blocked.extend(result.blocked)
            drains.append({"node": node, "done": result.done, "timed_out": result.timed_out,
                           "seconds": result.seconds, "evicted": [str(p) for p in result.evicted],
                           "refusals": result.refusals, "errors": list(result.errors)})
            look(f"drain {node}: {len(result.evicted)} pods evicted in {result.seconds:g} s"
                 + (f", {result.refusals} evictions refused (429)" if result.refusals else "")
                 + ("" if result.done else f"; {result.summary()}"), result.blocked)
            if not result.done:
                if result.timed_out:
                    left = {(p.namespace, p.name) for p in result.not_evicted}
                    why = (_pdb_of_pods([b for b in result.blocked if (b.namespace, b.pod) in left])
                           or f"pods {', '.join(str(p) for p in result.not_evicted)} did not go")
                    return finish(False, f"PodDrainFailure: drain of {node} did not finish within "
                                         f"{go_duration(settings.drain_timeout_seconds)}: {why}"
                                         f"{FAILURE_SUFFIX[settings.provider]}")
                return finish(False, f"drain of {node} failed: " + "; ".join(result.errors))
        pending = _wait_ready(look, desired, clock=clock, sleep=sleep, timeout=settings.ready_timeout_seconds)
        if pending:
            return finish(False, f"after draining {', '.join(batch)} the evicted pods were not all Ready within "
                                 f"{settings.ready_timeout_seconds:g} s: {pending}")
        for node in batch:  # the cloud deletes the VM; the pods left on it are the pod GC's (DaemonSets')
            delete_json(api, f"/api/v1/nodes/{quote(node, safe='')}", timeout=t)
            removed += 1
        look(f"removed node{'s' if len(batch) > 1 else ''} {', '.join(batch)}")
        if removed > len(created):  # nodes upgraded in place (max unavailable): their replacements come up
            need = removed - len(created)
            add_nodes(need, [zone_of[n] for n in batch[-need:]])
    if len(created) < len(old):
        add_nodes(len(old) - len(created), [zone_of[n] for n in old[len(created):]])
        pending = _wait_ready(look, desired, clock=clock, sleep=sleep, timeout=settings.ready_timeout_seconds)
        if pending:
            return finish(False, f"every node was replaced but pods are not Ready: {pending}")
    return finish(True, f"{len(old)} nodes replaced by {len(created)} {node_type} nodes "
                        f"in {len(batch_log)} batches of up to {batches.batch}")


def _sampling(sleep: Callable[[float], object], look: Callable[..., Observation]) -> Callable[[float], object]:
    """A look at the cluster before ``sleep`` (it counts for the lowest ready replicas only): it
    sees the pods just evicted, before their replacements are Ready."""
    def wrapped(seconds: float) -> object:
        look(step=False)
        return sleep(seconds)
    return wrapped


def _wait_ready(look: Callable[..., Observation], desired: Mapping[str, int], *, clock: Callable[[], datetime],
                sleep: Callable[[float], object], timeout: float) -> str:
    """Wait until no pod is Pending and every service has its desired replicas Ready; "" then,
    else what is still missing (one line)."""
    start = clock()
    while True:
        obs = look(step=False)
        short = {s: (obs.ready.get(s, 0), n) for s, n in desired.items() if obs.ready.get(s, 0) < n}
        if not obs.pending and not short:
            look("evicted pods Running and Ready elsewhere")
            return ""
        if (clock() - start).total_seconds() >= timeout:
            look("pods still not Ready")
            parts = [f"{p.namespace}/{p.name} Pending: {p.reason}" for p in obs.pending]
            parts += [f"{s} {r}/{n} Ready" for s, (r, n) in sorted(short.items())]
            return "; ".join(parts)
        sleep(READY_POLL_SECONDS)
