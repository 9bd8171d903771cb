"""Failure rehearsals on the twin: lose a node (the largest, or each in turn) or a whole zone.

The sign-off asks what a real failure would leave running, so a node is lost as a real one is
lost: its kubelet stops posting status. Nothing changes for ``node-monitor-grace-period``
(40 s, kube-controller-manager's default in pkg/controller/nodelifecycle/config/v1alpha1);
then the node lifecycle controller turns every condition Unknown, marks the node's pods not
Ready (MarkPodsNotReady) and taints it ``node.kubernetes.io/unreachable`` NoSchedule and
NoExecute. The taint eviction controller deletes the pods once their toleration ends: the
DefaultTolerationSeconds admission plugin gave every pod 300 s
(plugin/pkg/admission/defaulttolerationseconds). The deleted pods stay Terminating on the
unreachable node (no kubelet confirms them gone); ReplicaSets replace them at once, a
StatefulSet does not (its pod keeps its name until the old one is gone), so a StatefulSet
replica on the lost node stays down until the node returns. The scheduler places the
replacements on the nodes left, or leaves them Pending with its reason.

Each rehearsal records an :class:`~eafix_capacity.signoff.records.Observation` per step (ready
replicas per service, Pending pods and why) until every workload is Ready again or the
timeout passes, then restores the node (Ready again: the taints go, the kubelet finishes the
Terminating pods, the StatefulSet recreates its pod) and waits until every pod of the
namespace is Ready and none is Terminating, so the next rehearsal starts from the same nodes
and workloads (the placement can differ: Kubernetes does not move pods back).

The waits take keyword-only ``clock`` and ``sleep`` (:mod:`eafix_capacity.sim.hooks`), so on a
frozen sim an hour of failure takes a second. Only the sim can lose a node on purpose
(``sim.set_node_condition``), so ``sim`` is required.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping, Sequence

from ..errors import InputError
from ..quantity import cpu_millis, memory_bytes
from .observe import (desired_replicas, is_terminating, list_nodes, list_pods, min_ready,
                      observation_of, pending_pods, pod_is_ready, read_pdbs, read_workloads, required_ready, service_of)
from .records import Observation, PendingPod, Rehearsal, RehearsalKind

if TYPE_CHECKING:
    from ..sim.cluster import SimCluster

ZONE_LABEL = "topology.kubernetes.io/zone"
NODE_MONITOR_GRACE_SECONDS = 40.0
"""kube-controller-manager ``--node-monitor-grace-period`` default: how long a node whose kubelet
stopped still reads Ready before the node lifecycle controller marks it Unknown."""
DEFAULT_TIMEOUT_SECONDS = 900.0
"""How long a rehearsal waits for the evicted pods to be Ready elsewhere: the 40 s grace period,
the 300 s toleration, then time to schedule and pass readiness probes."""
DEFAULT_STEP_SECONDS = 30.0
RESTORE_TIMEOUT_SECONDS = 600.0
NO_ZONES = f"no node carries a {ZONE_LABEL} label: a zone loss cannot be rehearsed"

Clock = Callable[[], datetime]
Sleep = Callable[[float], object]


# --- pure ----------------------------------------------------------------------------------------

def _name(node: Mapping[str, Any]) -> str:
    return str((node.get("metadata") or {}).get("name") or "")


def _allocatable(node: Mapping[str, Any]) -> tuple[int, int]:
    alloc = (node.get("status") or {}).get("allocatable") or {}
    return cpu_millis(str(alloc.get("cpu") or "0")), memory_bytes(str(alloc.get("memory") or "0"))


def largest_node(nodes: Sequence[Mapping[str, Any]]) -> str:
    """The name of the node with the most allocatable CPU, then memory (the one whose loss
    takes the most room, as kubernetes-mixin's KubeCPUOvercommit subtracts); equal nodes: the
    first by name (pure)."""
    if not nodes:
        raise InputError("no nodes to choose the largest from", field="nodes", value=[],
                         valid="a cluster with at least one node")
    cpu_mem = {_name(n): _allocatable(n) for n in nodes}
    return min(cpu_mem, key=lambda name: (-cpu_mem[name][0], -cpu_mem[name][1], name))


def zones_of(nodes: Iterable[Mapping[str, Any]]) -> dict[str, list[str]]:
    """Zone -> its nodes' names, from ``topology.kubernetes.io/zone``; nodes without the label are
    left out, so a cluster without zone labels gives {} (pure)."""
    out: dict[str, list[str]] = {}
    for n in nodes:
        zone = ((n.get("metadata") or {}).get("labels") or {}).get(ZONE_LABEL)
        if zone:
            out.setdefault(str(zone), []).append(_name(n))
    return {z: sorted(names) for z, names in sorted(out.items())}


def _ready_count(workload: Mapping[str, Any]) -> tuple[int, int]:
    spec, status = workload.get("spec") or {}, workload.get("status") or {}
    replicas = spec.get("replicas", 1)
    return int(status.get("readyReplicas") or 0), int(replicas if replicas is not None else 1)


def not_recovered(workloads: Iterable[Mapping[str, Any]], pods: Sequence[Mapping[str, Any]],
                  lost: Iterable[str]) -> list[str]:
    """One line per workload with fewer Ready pods than it wants, saying why: Pending pods with
    the scheduler's reason, pods left Terminating on a lost node (pure)."""
    lost = set(lost)
    out = []
    for w in workloads:
        ready, want = _ready_count(w)
        svc = service_of((w.get("spec") or {}).get("template") or {}) or service_of(w)
        mine = [p for p in pods if service_of(p) == svc and svc]
        if ready >= want and not any((p.get("status") or {}).get("phase") == "Pending" and not is_terminating(p)
                                     for p in mine):
            continue
        why = []
        stuck = sorted(str(p["metadata"]["name"]) for p in mine if is_terminating(p)
                       and (p.get("spec") or {}).get("nodeName") in lost)
        if stuck:
            extra = (" (a StatefulSet does not replace a pod until the old one is gone)"
                     if w.get("kind") == "StatefulSet" else "")
            why.append(f"{', '.join(stuck)} Terminating on the lost node{extra}")
        for p in pending_pods(mine):
            why.append(f"{p.name} Pending: {p.reason}")
        kind = str(w.get("kind") or "workload")
        out.append(f"{kind} {(w.get('metadata') or {}).get('name')}: {ready}/{want} ready"
                   + (": " + "; ".join(why) if why else ""))
    return out


def _all_back(pods: Sequence[Mapping[str, Any]], workloads: Iterable[Mapping[str, Any]]) -> bool:
    """The namespace as before the loss: every workload Ready, every pod Ready (none Pending or
    Terminating)."""
    if any(is_terminating(p) for p in pods):
        return False
    if not all(pod_is_ready(p) for p in pods if (p.get("status") or {}).get("phase") != "Succeeded"):
        return False
    return all(r >= w for r, w in map(_ready_count, workloads))


# --- the rehearsals ------------------------------------------------------------------------------

@dataclass
class _Watch:
    """The observations of one rehearsal, numbered as they are taken."""

    api_client: Any
    namespace: str
    services: tuple[str, ...]
    clock: Clock
    observations: list[Observation]

    def look(self, action: str) -> tuple[Observation, list[dict[str, Any]], list[dict[str, Any]]]:
        nodes = list_nodes(self.api_client)
        pods = list_pods(self.api_client, namespace=self.namespace)
        obs = observation_of(nodes, pods, at=self.clock(), step=len(self.observations), action=action,
                             services=self.services)
        self.observations.append(obs)
        return obs, nodes, pods


def _check_positive(value: float, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0 or value != value:
        raise InputError("must be a number of seconds above 0", field=name, value=value, valid="e.g. 900")
    return float(value)


def rehearse_node_loss(api_client: Any, *, sim: SimCluster, namespace: str, node: str, clock: Clock, sleep: Sleep,
                       timeout: float = DEFAULT_TIMEOUT_SECONDS, step: float = DEFAULT_STEP_SECONDS,
                       grace_seconds: float = NODE_MONITOR_GRACE_SECONDS, restore: bool = True) -> Rehearsal:
    """Lose ``node`` (its kubelet stops), watch its pods be evicted and rescheduled, record what
    stayed Ready, then restore it. ``completed`` is whether every workload of ``namespace`` was
    Ready again within ``timeout`` seconds of the kubelet stopping."""
    names = [_name(n) for n in list_nodes(api_client)]
    if node not in names:
        raise InputError("no such node", field="node", value=node, valid="one of: " + ", ".join(sorted(names)))
    return _rehearse_loss(api_client, sim=sim, namespace=namespace, lost=(node,), kind="node-loss",
                          name=f"node-loss:{node}", clock=clock, sleep=sleep, timeout=timeout, step=step,
                          grace_seconds=grace_seconds, restore=restore, settings={"node": node})


def rehearse_each_node_loss(api_client: Any, *, sim: SimCluster, namespace: str, clock: Clock, sleep: Sleep,
                            timeout: float = DEFAULT_TIMEOUT_SECONDS,
                            step: float = DEFAULT_STEP_SECONDS) -> list[Rehearsal]:
    """Every node lost in turn (by name), each restored before the next: one rehearsal each."""
    return [rehearse_node_loss(api_client, sim=sim, namespace=namespace, node=name, clock=clock, sleep=sleep,
                               timeout=timeout, step=step)
            for name in sorted(_name(n) for n in list_nodes(api_client))]


def rehearse_zone_loss(api_client: Any, *, sim: SimCluster, namespace: str, zone: str, clock: Clock, sleep: Sleep,
                       timeout: float = DEFAULT_TIMEOUT_SECONDS, step: float = DEFAULT_STEP_SECONDS,
                       grace_seconds: float = NODE_MONITOR_GRACE_SECONDS, restore: bool = True) -> Rehearsal:
    """Every node of ``zone`` lost at once (kind ``zone-loss``). The lost zone is in the node
    lifecycle controller's full disruption while the other zones are normal, so its pods are
    evicted at the normal rate (as handleDisruption); losing every node of the cluster (where the
    real controller stops all evictions) is not what this models."""
    zones = zones_of(list_nodes(api_client))
    if not zones:
        raise InputError(NO_ZONES, field="zone", value=zone, valid="a cluster whose nodes have zone labels")
    if zone not in zones:
        raise InputError("no node in zone", field="zone", value=zone, valid="one of: " + ", ".join(zones))
    return _rehearse_loss(api_client, sim=sim, namespace=namespace, lost=tuple(zones[zone]), kind="zone-loss",
                          name=f"zone-loss:{zone}", clock=clock, sleep=sleep, timeout=timeout, step=step,
                          grace_seconds=grace_seconds, restore=restore,
                          settings={"zone": zone, "nodes": list(zones[zone])})


def rehearse_each_zone_loss(api_client: Any, *, sim: SimCluster, namespace: str, clock: Clock, sleep: Sleep,
                            timeout: float = DEFAULT_TIMEOUT_SECONDS,
                            step: float = DEFAULT_STEP_SECONDS) -> list[Rehearsal]:
    """Every zone lost in turn; none when the nodes carry no zone label (:data:`NO_ZONES` says so)."""
    return [rehearse_zone_loss(api_client, sim=sim, namespace=namespace, zone=z, clock=clock, sleep=sleep,
                               timeout=timeout, step=step)
            for z in zones_of(list_nodes(api_client))]


def _rehearse_loss(api_client: Any, *, sim: SimCluster, namespace: str, lost: tuple[str, ...],
                   kind: RehearsalKind, name: str, clock: Clock, sleep: Sleep, timeout: float, step: float,
                   grace_seconds: float, restore: bool, settings: Mapping[str, Any]) -> Rehearsal:
    if sim is None:
        raise InputError("a node is lost on purpose only on the sim twin", field="sim", value=None,
                         valid="the twin's SimCluster (never the cluster being signed off)")
    timeout, step = _check_positive(timeout, "timeout"), _check_positive(step, "step")
    if isinstance(grace_seconds, bool) or not isinstance(grace_seconds, (int, float)) or grace_seconds < 0:
        raise InputError("must be a number of seconds, 0 or more", field="grace_seconds", value=grace_seconds,
                         valid="e.g. 40")
    workloads = read_workloads(api_client, namespace=namespace)
    desired = desired_replicas(workloads)
    required = required_ready(read_pdbs(api_client, namespace=namespace), desired)
    watch = _Watch(api_client, namespace, tuple(desired), clock, [])
    started = clock()
    what = "node " + lost[0] if len(lost) == 1 else f"{len(lost)} nodes ({', '.join(lost)})"
    watch.look(f"kubelet stopped on {what}: still Ready until node-monitor-grace-period ({grace_seconds:g} s)")
    if grace_seconds:
        sleep(grace_seconds)
    for n in lost:
        sim.set_node_condition(n, ready=None)
    sleep(0)
    _, _, pods = watch.look(f"{what} Unknown: tainted node.kubernetes.io/unreachable NoSchedule and NoExecute, its pods not "
               "Ready; evicted after their tolerationSeconds (300 s by default)")
    lines: list[str] = []
    completed = False
    while True:
        elapsed = (clock() - started).total_seconds()
        lines = not_recovered(read_workloads(api_client, namespace=namespace), pods, lost)
        if not lines and elapsed > grace_seconds:
            completed = True
            break
        if elapsed >= timeout:
            break
        sleep(min(step, timeout - elapsed))
        elapsed = (clock() - started).total_seconds()
        _, _, pods = watch.look(f"{elapsed:g} s after the kubelet stopped")
    finished = clock()
    last = watch.observations[-1]
    if completed:
        reason = (f"every evicted pod of {what} is Running and Ready on the {last.nodes} node(s) left, "
                  f"{(finished - started).total_seconds():g} s after the kubelet stopped")
    else:
        reason = (f"not every workload Ready {timeout:g} s after losing {what}: " + "; ".join(lines))
    details: dict[str, Any] = {"not_recovered": lines, "lost_nodes": list(lost),
                               "grace_seconds": float(grace_seconds), "toleration_seconds_default": 300}
    if restore:
        details["restore"] = restore_nodes(api_client, sim=sim, namespace=namespace, nodes=lost, clock=clock,
                                           sleep=sleep, step=step)
    return Rehearsal(name=name, kind=kind, completed=completed, reason=" ".join(reason.split()), started=started,
                     finished=finished, observations=tuple(watch.observations),
                     min_ready=min_ready(watch.observations), desired=desired, required_ready=required,
                     pending_at_end=last.pending,
                     settings={**settings, "timeout_seconds": timeout, "step_seconds": step,
                               "grace_seconds": float(grace_seconds)},
                     details=details)


def restore_nodes(api_client: Any, *, sim: SimCluster, namespace: str, nodes: Iterable[str], clock: Clock,
                  sleep: Sleep, step: float = DEFAULT_STEP_SECONDS,
                  timeout: float = RESTORE_TIMEOUT_SECONDS) -> dict[str, Any]:
    """Bring lost nodes back (their kubelet posts Ready again: the taints go, the Terminating pods
    finish) and wait until the namespace is back to its start: every workload Ready, no pod
    Pending or Terminating. Returns what happened (``back``: whether it got there)."""
    nodes = tuple(nodes)
    started = clock()
    for n in nodes:
        sim.set_node_condition(n, ready=True)
    while True:
        sleep(0)
        pods = list_pods(api_client, namespace=namespace)
        back = _all_back(pods, read_workloads(api_client, namespace=namespace))
        elapsed = (clock() - started).total_seconds()
        if back or elapsed >= timeout:
            break
        sleep(min(step, timeout - elapsed))
    return {"nodes": list(nodes), "how": "marked Ready again (sim.set_node_condition ready=True)",
            "back": back, "seconds": elapsed,
            "note": (f"every pod of {namespace} Ready again, none Terminating, after {elapsed:g} s" if back else
                     f"{namespace} not back to every pod Ready within {timeout:g} s")}


def pending_services(pending: Iterable[PendingPod]) -> list[str]:
    """The services with a Pending pod (pure)."""
    return sorted({p.service for p in pending})


__all__ = ["NODE_MONITOR_GRACE_SECONDS", "NO_ZONES", "ZONE_LABEL", "largest_node", "not_recovered", "pending_services", "rehearse_each_node_loss", "rehearse_each_zone_loss",
           "rehearse_node_loss", "rehearse_zone_loss", "restore_nodes", "zones_of"]
