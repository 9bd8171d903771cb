"""What a rehearsal sees after each of its steps: one :class:`Observation` per step.

Every rehearsal (a node-pool upgrade, a release rollout, a node or zone loss) asks the same
questions after each step: how many nodes can take pods, which pods are Pending and why (the
scheduler's PodScheduled message), and how many replicas of each service are Ready. The
answers come from two plain-JSON LIST calls (nodes, the namespace's pods) through the official
client's ``ApiClient`` (:mod:`eafix_capacity.cluster.rest`), so the same code reads the sim
twin and a real cluster. The rest is pure: the lowest Ready count seen per service, and what
each service must keep, its PodDisruptionBudget resolved to a count as the disruption
controller resolves it.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any, Iterable, Mapping, Sequence

from ..cluster.rest import list_items
from ..kobject import scaled_value
from .records import BlockedEviction, Observation, PendingPod

SERVICE_LABEL = "app.kubernetes.io/name"
DEFAULT_TIMEOUT = 10.0


# --- pure: one object at a time ------------------------------------------------------------------

def _condition(obj: Mapping[str, Any], ctype: str) -> Mapping[str, Any] | None:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if isinstance(c, Mapping) and c.get("type") == ctype:
            return c
    return None


def node_takes_pods(node: Mapping[str, Any]) -> bool:
    """Ready (its Ready condition True) and schedulable (not cordoned)."""
    ready = _condition(node, "Ready")
    return ready is not None and ready.get("status") == "True" and not (node.get("spec") or {}).get("unschedulable")


def is_terminating(pod: Mapping[str, Any]) -> bool:
    return bool((pod.get("metadata") or {}).get("deletionTimestamp"))


def pod_is_ready(pod: Mapping[str, Any]) -> bool:
    """Counted as a ready replica: its Ready condition is True and it is not being deleted (as
    the disruption controller's countHealthyPods)."""
    ready = _condition(pod, "Ready")
    return ready is not None and ready.get("status") == "True" and not is_terminating(pod)


def service_of(obj: Mapping[str, Any]) -> str:
    return str(((obj.get("metadata") or {}).get("labels") or {}).get(SERVICE_LABEL) or "")


def pending_reason(pod: Mapping[str, Any]) -> str:
    """The scheduler's message (PodScheduled False), else what keeps a bound pod Pending."""
    cond = _condition(pod, "PodScheduled")
    node = (pod.get("spec") or {}).get("nodeName")
    if cond is not None and cond.get("status") == "False":
        return str(cond.get("message") or cond.get("reason") or "not scheduled")
    if node:
        return f"scheduled to {node}, containers not started"
    return "not scheduled yet"


def pending_pods(pods: Iterable[Mapping[str, Any]]) -> tuple[PendingPod, ...]:
    """The pods in phase Pending that are not being deleted, with why (pure)."""
    out = []
    for p in pods:
        if (p.get("status") or {}).get("phase") == "Pending" and not is_terminating(p):
            meta = p.get("metadata") or {}
            out.append(PendingPod(str(meta.get("namespace") or ""), str(meta.get("name") or ""),
                                  service_of(p), pending_reason(p)))
    return tuple(sorted(out, key=lambda x: (x.service, x.name)))


def ready_replicas(pods: Iterable[Mapping[str, Any]], services: Iterable[str] = ()) -> dict[str, int]:
    """Ready pods per service (label ``app.kubernetes.io/name``); ``services`` are listed even
    with none (pure)."""
    out = {s: 0 for s in services}
    for p in pods:
        svc = service_of(p)
        if not svc:
            continue
        out.setdefault(svc, 0)
        if pod_is_ready(p):
            out[svc] += 1
    return dict(sorted(out.items()))


def observation_of(nodes: Sequence[Mapping[str, Any]], pods: Sequence[Mapping[str, Any]], *, at: datetime,
                   step: int, action: str, blocked: Iterable[BlockedEviction] = (),
                   services: Iterable[str] = ()) -> Observation:
    """The :class:`Observation` of listed nodes and pods (pure)."""
    return Observation(at=at, step=step, action=action, nodes=sum(1 for n in nodes if node_takes_pods(n)),
                       pending=pending_pods(pods), blocked=tuple(blocked), ready=ready_replicas(pods, services))


# --- the reads -----------------------------------------------------------------------------------

def list_nodes(api_client: Any, *, timeout: float = DEFAULT_TIMEOUT) -> list[dict[str, Any]]:
    return list_items(api_client, "/api/v1/nodes", "Node", timeout=timeout)


def list_pods(api_client: Any, *, namespace: str, timeout: float = DEFAULT_TIMEOUT) -> list[dict[str, Any]]:
    return list_items(api_client, f"/api/v1/namespaces/{namespace}/pods", "Pod", timeout=timeout)


def observe(api_client: Any, *, namespace: str, at: datetime, step: int, action: str,
            blocked: Iterable[BlockedEviction] = (), services: Iterable[str] = (),
            timeout: float = DEFAULT_TIMEOUT) -> Observation:
    """The cluster now: two LIST calls (nodes, the namespace's pods). ``services`` are reported
    even when none of their pods is left (0 ready)."""
    nodes = list_nodes(api_client, timeout=timeout)
    pods = list_pods(api_client, namespace=namespace, timeout=timeout)
    return observation_of(nodes, pods, at=at, step=step, action=action, blocked=blocked, services=services)


def read_workloads(api_client: Any, *, namespace: str, timeout: float = DEFAULT_TIMEOUT) -> list[dict[str, Any]]:
    """The namespace's Deployments and StatefulSets (two LIST calls)."""
    return (list_items(api_client, f"/apis/apps/v1/namespaces/{namespace}/deployments", "Deployment", timeout=timeout)
            + list_items(api_client, f"/apis/apps/v1/namespaces/{namespace}/statefulsets", "StatefulSet",
                         timeout=timeout))


def read_pdbs(api_client: Any, *, namespace: str, timeout: float = DEFAULT_TIMEOUT) -> list[dict[str, Any]]:
    return list_items(api_client, f"/apis/policy/v1/namespaces/{namespace}/poddisruptionbudgets",
                      "PodDisruptionBudget", timeout=timeout)


# --- pure: across observations -------------------------------------------------------------------

def min_ready(observations: Iterable[Observation]) -> dict[str, int]:
    """The lowest Ready count of each service over ``observations``; a service missing from an
    observation had no pod then, so 0."""
    obs = list(observations)
    services = sorted({s for o in obs for s in o.ready})
    return {s: min(o.ready.get(s, 0) for o in obs) for s in services}


def desired_replicas(workloads: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """Desired replicas per service of Deployments and StatefulSets (``spec.replicas``, 1 when
    unset, as the API defaults it); the service is the pod template's ``app.kubernetes.io/name``,
    else the workload's own."""
    out: dict[str, int] = {}
    for w in workloads:
        spec = w.get("spec") or {}
        svc = service_of(spec.get("template") or {}) or service_of(w)
        if not svc:
            continue
        replicas = spec.get("replicas", 1)
        out[svc] = out.get(svc, 0) + (int(replicas) if replicas is not None else 1)
    return dict(sorted(out.items()))


def pdb_desired_healthy(spec: Mapping[str, Any], *, expected: int) -> int:
    """A PDB's desiredHealthy as pkg/controller/disruption getExpectedPodCount computes it:
    ``maxUnavailable`` -> expected - ceil(value of expected), at least 0; ``minAvailable`` as a
    number -> that number; as a percentage -> ceil(value of expected); neither -> 0. ``expected``
    is the owning controllers' scale (the desired replicas)."""
    if spec.get("maxUnavailable") is not None:
        return max(0, expected - scaled_value(spec["maxUnavailable"], expected, round_up=True, field="maxUnavailable"))
    if spec.get("minAvailable") is not None:
        return scaled_value(spec["minAvailable"], expected, round_up=True, field="minAvailable")
    return 0


def pdb_service(pdb: Mapping[str, Any]) -> str:
    """The service a PDB protects: its selector's ``app.kubernetes.io/name``, "" for another selector."""
    selector = (pdb.get("spec") or {}).get("selector") or {}
    return str((selector.get("matchLabels") or {}).get(SERVICE_LABEL) or "")


def required_ready(pdbs: Iterable[Mapping[str, Any]], desired: Mapping[str, int]) -> dict[str, int]:
    """Per service, the Ready replicas its PDB makes the eviction API keep (desiredHealthy,
    counted against the service's desired replicas); with two PDBs on one service the larger."""
    out: dict[str, int] = {}
    for pdb in pdbs:
        svc = pdb_service(pdb)
        if not svc:
            continue
        need = pdb_desired_healthy(pdb.get("spec") or {}, expected=int(desired.get(svc, 0)))
        out[svc] = max(out.get(svc, 0), need)
    return dict(sorted(out.items()))
