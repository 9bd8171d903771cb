"""Typed records of what a cluster is running, built from plain Kubernetes JSON.

``verify`` compares a cluster with a plan; keeping the reading (one list call per kind,
``read_live_state``) apart from the records (``from_objects``, pure) lets the comparison be
tested on recorded JSON with no cluster at all, and lets the CLI, the notebook and the
benchmarks share one reading. Only the fields a check reads are kept; quantities stay the
text the API server returned (canonical forms: ``0.5`` reads back as ``500m``) and are
compared as values by the checks.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import InputError

INSTANCE_TYPE_LABEL = "node.kubernetes.io/instance-type"
ZONE_LABEL = "topology.kubernetes.io/zone"
NAME_LABEL = "app.kubernetes.io/name"

# The keys ``from_objects`` accepts: the resource's plural (as ``kubectl get`` names it) or
# its kind; both map to the plural.
KINDS: dict[str, str] = {
    "nodes": "Node", "pods": "Pod", "deployments": "Deployment", "statefulsets": "StatefulSet",
    "horizontalpodautoscalers": "HorizontalPodAutoscaler", "poddisruptionbudgets": "PodDisruptionBudget",
    "persistentvolumeclaims": "PersistentVolumeClaim", "resourcequotas": "ResourceQuota",
}
_ALIASES = {**{k: k for k in KINDS}, **{v: k for k, v in KINDS.items()}}


@dataclass(frozen=True)
class Node:
    name: str
    instance_type: str | None
    allocatable: Mapping[str, str]          # cpu, memory, pods, ... as the kubelet reports them
    unschedulable: bool = False
    ready: bool = False
    ready_message: str = ""
    zone: str | None = None                 # topology.kubernetes.io/zone, when labelled


@dataclass(frozen=True)
class ContainerSpec:
    name: str
    image: str
    requests: Mapping[str, str] = field(default_factory=dict)
    limits: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ContainerState:
    name: str
    restarts: int = 0
    waiting_reason: str | None = None
    waiting_message: str = ""
    last_termination_reason: str | None = None


@dataclass(frozen=True)
class Owner:
    kind: str
    name: str


@dataclass(frozen=True)
class Pod:
    namespace: str
    name: str
    phase: str
    node: str | None
    labels: Mapping[str, str] = field(default_factory=dict)
    owner: Owner | None = None
    containers: tuple[ContainerSpec, ...] = ()
    init_containers: tuple[ContainerSpec, ...] = ()
    statuses: tuple[ContainerState, ...] = ()
    unschedulable_reason: str | None = None    # PodScheduled=False: its reason ...
    unschedulable_message: str = ""            # ... and the scheduler's message

    @property
    def service(self) -> str | None:
        return self.labels.get(NAME_LABEL)

    @property
    def terminated(self) -> bool:
        return self.phase in ("Succeeded", "Failed")


@dataclass(frozen=True)
class Workload:
    kind: str                       # Deployment or StatefulSet
    namespace: str
    name: str
    generation: int
    observed_generation: int | None
    desired: int                    # spec.replicas (the API server defaults it to 1)
    replicas: int = 0               # status.replicas
    updated: int = 0
    ready: int = 0
    available: int = 0
    current_revision: str | None = None
    update_revision: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    containers: tuple[ContainerSpec, ...] = ()


@dataclass(frozen=True)
class HPA:
    namespace: str
    name: str
    target_kind: str
    target_name: str
    min_replicas: int               # the API server defaults it to 1
    max_replicas: int
    current_replicas: int | None
    desired_replicas: int | None


@dataclass(frozen=True)
class PDB:
    namespace: str
    name: str
    selector: Mapping[str, str]     # matchLabels (matchExpressions are not read)
    disruptions_allowed: int
    current_healthy: int = 0
    expected_pods: int = 0
    has_expressions: bool = False


@dataclass(frozen=True)
class PVC:
    namespace: str
    name: str
    phase: str
    storage_class: str | None
    requested: str | None           # spec.resources.requests.storage
    capacity: str | None            # status.capacity.storage
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Quota:
    namespace: str
    name: str
    hard: Mapping[str, str]
    used: Mapping[str, str]


@dataclass(frozen=True)
class LiveState:
    nodes: tuple[Node, ...] = ()
    pods: tuple[Pod, ...] = ()
    workloads: tuple[Workload, ...] = ()
    hpas: tuple[HPA, ...] = ()
    pdbs: tuple[PDB, ...] = ()
    pvcs: tuple[PVC, ...] = ()
    quotas: tuple[Quota, ...] = ()

    def workload(self, kind: str, namespace: str, name: str) -> Workload | None:
        return next((w for w in self.workloads
                     if (w.kind, w.namespace, w.name) == (kind, namespace, name)), None)


# -- from plain JSON -----------------------------------------------------------------------

def _d(obj: Any, *keys: str) -> Any:
    for k in keys:
        if not isinstance(obj, Mapping):
            return None
        obj = obj.get(k)
    return obj


def _map(obj: Any) -> dict[str, str]:
    return {str(k): str(v) for k, v in obj.items()} if isinstance(obj, Mapping) else {}


def _int(obj: Any, default: int = 0) -> int:
    return obj if isinstance(obj, int) and not isinstance(obj, bool) else default


def _opt_int(obj: Any) -> int | None:
    return obj if isinstance(obj, int) and not isinstance(obj, bool) else None


def _meta(o: Mapping[str, Any]) -> tuple[str, str]:
    return str(_d(o, "metadata", "namespace") or ""), str(_d(o, "metadata", "name") or "")


def _containers(raw: Any) -> tuple[ContainerSpec, ...]:
    return tuple(ContainerSpec(name=str(c.get("name", "")), image=str(c.get("image", "")),
                               requests=_map(_d(c, "resources", "requests")),
                               limits=_map(_d(c, "resources", "limits")))
                 for c in (raw or []) if isinstance(c, Mapping))


def _condition(o: Mapping[str, Any], kind: str) -> Mapping[str, Any] | None:
    for c in _d(o, "status", "conditions") or []:
        if isinstance(c, Mapping) and c.get("type") == kind:
            return c
    return None


def _node(o: Mapping[str, Any]) -> Node:
    ready = _condition(o, "Ready")
    return Node(name=_meta(o)[1], instance_type=_d(o, "metadata", "labels", INSTANCE_TYPE_LABEL),
                allocatable=_map(_d(o, "status", "allocatable")),
                unschedulable=bool(_d(o, "spec", "unschedulable")),
                ready=ready is not None and ready.get("status") == "True",
                ready_message=str(ready.get("message") or ready.get("reason") or "") if ready else
                "no Ready condition", zone=_d(o, "metadata", "labels", ZONE_LABEL))


def _pod(o: Mapping[str, Any]) -> Pod:
    ns, name = _meta(o)
    owner = next((Owner(str(r.get("kind", "")), str(r.get("name", "")))
                  for r in _d(o, "metadata", "ownerReferences") or []
                  if isinstance(r, Mapping) and r.get("controller")), None)
    statuses = tuple(
        ContainerState(name=str(s.get("name", "")), restarts=_int(s.get("restartCount")),
                       waiting_reason=_d(s, "state", "waiting", "reason"),
                       waiting_message=str(_d(s, "state", "waiting", "message") or ""),
                       last_termination_reason=_d(s, "lastState", "terminated", "reason"))
        for s in _d(o, "status", "containerStatuses") or [] if isinstance(s, Mapping))
    scheduled = _condition(o, "PodScheduled")
    unsched = scheduled is not None and scheduled.get("status") == "False"
    return Pod(namespace=ns, name=name, phase=str(_d(o, "status", "phase") or "Pending"),
               node=_d(o, "spec", "nodeName") or None, labels=_map(_d(o, "metadata", "labels")),
               owner=owner, containers=_containers(_d(o, "spec", "containers")),
               init_containers=_containers(_d(o, "spec", "initContainers")), statuses=statuses,
               unschedulable_reason=str(scheduled.get("reason") or "") if unsched and scheduled else None,
               unschedulable_message=str(scheduled.get("message") or "") if unsched and scheduled else "")


def _workload(o: Mapping[str, Any], kind: str) -> Workload:
    ns, name = _meta(o)
    st = _d(o, "status") or {}
    return Workload(kind=kind, namespace=ns, name=name, generation=_int(_d(o, "metadata", "generation")),
                    observed_generation=_opt_int(st.get("observedGeneration")),
                    desired=_int(_d(o, "spec", "replicas"), 1), replicas=_int(st.get("replicas")),
                    updated=_int(st.get("updatedReplicas")), ready=_int(st.get("readyReplicas")),
                    available=_int(st.get("availableReplicas")),
                    current_revision=st.get("currentRevision"), update_revision=st.get("updateRevision"),
                    labels=_map(_d(o, "metadata", "labels")),
                    containers=_containers(_d(o, "spec", "template", "spec", "containers")))


def _hpa(o: Mapping[str, Any]) -> HPA:
    ns, name = _meta(o)
    return HPA(namespace=ns, name=name, target_kind=str(_d(o, "spec", "scaleTargetRef", "kind") or ""),
               target_name=str(_d(o, "spec", "scaleTargetRef", "name") or ""),
               min_replicas=_int(_d(o, "spec", "minReplicas"), 1), max_replicas=_int(_d(o, "spec", "maxReplicas")),
               current_replicas=_opt_int(_d(o, "status", "currentReplicas")),
               desired_replicas=_opt_int(_d(o, "status", "desiredReplicas")))


def _pdb(o: Mapping[str, Any]) -> PDB:
    ns, name = _meta(o)
    return PDB(namespace=ns, name=name, selector=_map(_d(o, "spec", "selector", "matchLabels")),
               disruptions_allowed=_int(_d(o, "status", "disruptionsAllowed")),
               current_healthy=_int(_d(o, "status", "currentHealthy")),
               expected_pods=_int(_d(o, "status", "expectedPods")),
               has_expressions=bool(_d(o, "spec", "selector", "matchExpressions")))


def _pvc(o: Mapping[str, Any]) -> PVC:
    ns, name = _meta(o)
    return PVC(namespace=ns, name=name, phase=str(_d(o, "status", "phase") or "Pending"),
               storage_class=_d(o, "spec", "storageClassName"),
               requested=_d(o, "spec", "resources", "requests", "storage"),
               capacity=_d(o, "status", "capacity", "storage"), labels=_map(_d(o, "metadata", "labels")))


def _quota(o: Mapping[str, Any]) -> Quota:
    ns, name = _meta(o)
    return Quota(namespace=ns, name=name, hard=_map(_d(o, "status", "hard") or _d(o, "spec", "hard")),
                 used=_map(_d(o, "status", "used")))


def from_objects(lists_by_kind: Mapping[str, list[dict[str, Any]]]) -> LiveState:
    """Records from the items of each list (keys: ``nodes`` or ``Node``, ``pods``, ...;
    a kind left out reads as none of it). Pure."""
    items: dict[str, list[Mapping[str, Any]]] = {k: [] for k in KINDS}
    for key, objs in lists_by_kind.items():
        plural = _ALIASES.get(key)
        if plural is None:
            raise InputError("unknown kind", field="live state", value=key,
                             valid="one of " + ", ".join(KINDS))
        if not isinstance(objs, list):
            raise InputError("not a list of objects", field=key, value=type(objs).__name__,
                             valid="the items of a Kubernetes list")
        items[plural] += [o for o in objs if isinstance(o, Mapping)]
    return LiveState(
        nodes=tuple(_node(o) for o in items["nodes"]),
        pods=tuple(_pod(o) for o in items["pods"]),
        workloads=tuple([_workload(o, "Deployment") for o in items["deployments"]]
                        + [_workload(o, "StatefulSet") for o in items["statefulsets"]]),
        hpas=tuple(_hpa(o) for o in items["horizontalpodautoscalers"]),
        pdbs=tuple(_pdb(o) for o in items["poddisruptionbudgets"]),
        pvcs=tuple(_pvc(o) for o in items["persistentvolumeclaims"]),
        quotas=tuple(_quota(o) for o in items["resourcequotas"]),
    )


# -- reading (the only I/O here) --------------------------------------------------------------

LIST_TIMEOUT = 60.0
"""Seconds per list call, to connect and again to answer: a list of 10,000 pods is megabytes."""

LIST_PATHS: dict[str, tuple[str, str]] = {
    "nodes": ("/api/v1/nodes", "Node"),
    "pods": ("/api/v1/pods", "Pod"),
    "deployments": ("/apis/apps/v1/deployments", "Deployment"),
    "statefulsets": ("/apis/apps/v1/statefulsets", "StatefulSet"),
    "horizontalpodautoscalers": ("/apis/autoscaling/v2/horizontalpodautoscalers", "HorizontalPodAutoscaler"),
    "poddisruptionbudgets": ("/apis/policy/v1/poddisruptionbudgets", "PodDisruptionBudget"),
    "persistentvolumeclaims": ("/api/v1/persistentvolumeclaims", "PersistentVolumeClaim"),
    "resourcequotas": ("/api/v1/resourcequotas", "ResourceQuota"),
}
"""The one list call per kind (cluster-wide), and the kind its items are."""


def read_lists(api_client: Any, *, timeout: float = LIST_TIMEOUT) -> dict[str, list[dict[str, Any]]]:
    """The items of each kind as plain dicts (:func:`~eafix_capacity.cluster.rest.list_items`).
    Each call waits ``timeout`` seconds to connect and again for its answer, then fails (``Timeout``)."""
    from .rest import list_items

    return {key: list_items(api_client, path, kind, timeout=timeout) for key, (path, kind) in LIST_PATHS.items()}


def read_live_state(api_client: Any, *, timeout: float = LIST_TIMEOUT) -> LiveState:
    """One list call per kind (no per-pod requests), then ``from_objects``. Errors from the
    client (``ApiException``, urllib3's) propagate for the caller to translate."""
    return from_objects(read_lists(api_client, timeout=timeout))


__all__ = ["LiveState", "Node", "Pod", "Workload", "HPA", "PDB", "PVC", "Quota", "ContainerSpec",
           "ContainerState", "Owner", "from_objects", "read_live_state", "read_lists", "KINDS"]
