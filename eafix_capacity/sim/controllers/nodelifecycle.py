"""The node lifecycle and taint eviction controllers' parts the sim needs.

In a real cluster the node lifecycle controller (pkg/controller/nodelifecycle) keeps a
node's taints in step with its state: ``node.kubernetes.io/unschedulable:NoSchedule`` with
``spec.unschedulable`` (``kubectl cordon``), ``node.kubernetes.io/not-ready`` while its
Ready condition is False and ``node.kubernetes.io/unreachable`` while it is Unknown (the
kubelet stopped posting status), each as NoSchedule (the scheduler then places nothing
there) and NoExecute. The taint eviction controller (pkg/controller/tainteviction) deletes
the pods on a node with a NoExecute taint they do not tolerate at once, and those that
tolerate it for ``tolerationSeconds`` (admission gives every pod 300 s for these two
taints) when that time has passed on the sim clock.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Mapping, Sequence

from eafix_capacity.sim import resources as R
from eafix_capacity.sim.apierror import StaleError
from eafix_capacity.sim.controllers.common import UNSCHEDULABLE_TAINT, deep_copy, is_active, now_text, set_condition
from eafix_capacity.sim.controllers.context import Context, Snapshot

NOT_READY_TAINT = "node.kubernetes.io/not-ready"
UNREACHABLE_TAINT = "node.kubernetes.io/unreachable"
_MANAGED = (UNSCHEDULABLE_TAINT, NOT_READY_TAINT, UNREACHABLE_TAINT)
_PRESSURE = (("MemoryPressure", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
             ("DiskPressure", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
             ("PIDPressure", "KubeletHasSufficientPID", "kubelet has sufficient PID available"))
NOT_READY_MESSAGE = ("container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady "
                     "message:Network plugin returns error: cni plugin not initialized")
"""The kubelet's Ready=False message when the CNI is down (one common cause, as a kubelet posts it)."""
UNKNOWN_MESSAGE = "Kubelet stopped posting node status."


def ready_status(node: Mapping) -> str:
    """The node's Ready condition status: ``True``, ``False`` or ``Unknown`` (also when missing)."""
    for c in (node.get("status") or {}).get("conditions") or []:
        if c.get("type") == "Ready":
            return str(c.get("status", "Unknown"))
    return "Unknown"


def node_conditions(conditions: Sequence[Mapping], *, ready: bool | None, now: str) -> list[dict]:
    """A node's conditions once it is Ready (``True``), NotReady (``False``) or its kubelet
    stopped posting (``None``): then, as the node lifecycle controller's
    tryUpdateNodeHealth, every kubelet condition turns Unknown with reason
    ``NodeStatusUnknown`` (pure)."""
    out = [dict(c) for c in conditions]

    def put(ctype: str, status: str, reason: str, message: str) -> None:
        old = next((c for c in out if c.get("type") == ctype), None)
        new = {"type": ctype, "status": status, "reason": reason, "message": message,
               "lastHeartbeatTime": now if ready is not None else (old or {}).get("lastHeartbeatTime", now),
               "lastTransitionTime": old["lastTransitionTime"] if old and old.get("status") == status and
               old.get("lastTransitionTime") else now}
        if old is None:
            out.append(new)
        else:
            out[out.index(old)] = new

    if ready is None:
        for ctype, _, _ in _PRESSURE:
            put(ctype, "Unknown", "NodeStatusUnknown", UNKNOWN_MESSAGE)
        put("Ready", "Unknown", "NodeStatusUnknown", UNKNOWN_MESSAGE)
        return out
    for ctype, reason, message in _PRESSURE:
        put(ctype, "False", reason, message)
    if ready:
        put("Ready", "True", "KubeletReady", "kubelet is posting ready status")
    else:
        put("Ready", "False", "KubeletNotReady", NOT_READY_MESSAGE)
    return out


def wanted_taints(node: Mapping) -> list[tuple[str, str]]:
    """(key, effect) of the taints the node lifecycle controller keeps on ``node`` (pure)."""
    out = []
    if (node.get("spec") or {}).get("unschedulable"):
        out.append((UNSCHEDULABLE_TAINT, "NoSchedule"))
    ready = ready_status(node)
    if ready != "True":
        key = NOT_READY_TAINT if ready == "False" else UNREACHABLE_TAINT
        out += [(key, "NoSchedule"), (key, "NoExecute")]
    return out


def _tolerates(tol: Mapping, taint: Mapping) -> bool:
    """v1.Toleration.ToleratesTaint."""
    if tol.get("effect") and tol.get("effect") != taint.get("effect"):
        return False
    if not tol.get("key"):
        return tol.get("operator") == "Exists"
    if tol.get("key") != taint.get("key"):
        return False
    return tol.get("operator") == "Exists" or (tol.get("value") or "") == (taint.get("value") or "")


def eviction_delay(pod: Mapping, taints: Sequence[Mapping]) -> float | None:
    """Seconds after the NoExecute ``taints`` appeared that the taint eviction controller
    deletes ``pod``: 0 when one is not tolerated, None when tolerated for ever; as
    tainteviction's GetMatchingTolerations and getMinTolerationTime (pure)."""
    noexec = [t for t in taints if t.get("effect") == "NoExecute"]
    if not noexec:
        return None
    tolerations = (pod.get("spec") or {}).get("tolerations") or []
    used = []
    for taint in noexec:
        matching = [t for t in tolerations if _tolerates(t, taint)]
        if not matching:
            return 0.0
        used += matching
    seconds = [int(t["tolerationSeconds"]) for t in used if t.get("tolerationSeconds") is not None]
    if not seconds:
        return None
    return float(max(0, min(seconds)))


def _parse(text: str | None) -> datetime | None:
    try:
        return datetime.strptime(str(text), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    except ValueError:
        return None


class NodeLifecycleController:
    """Reconciles every Node's taints and evicts pods from NoExecute-tainted nodes."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def sync(self, snap: Snapshot) -> None:
        """Taints follow ``spec.unschedulable`` and the Ready condition; then the taint eviction pass."""
        nodes = []
        for node in snap.nodes:
            nodes.append(self._sync_taints(node) or node)
        self._evict(snap.pods, nodes)

    def _sync_taints(self, node: dict) -> dict | None:
        spec = node.get("spec") or {}
        taints = spec.get("taints") or []
        want = wanted_taints(node)
        have = [(t.get("key"), t.get("effect")) for t in taints if t.get("key") in _MANAGED]
        if sorted(have) == sorted(want):
            return None
        now = now_text(self.ctx.clock)
        kept = [t for t in taints if t.get("key") not in _MANAGED or (t.get("key"), t.get("effect")) in want]
        kept += [{"key": k, "effect": e, "timeAdded": now} for k, e in want if (k, e) not in have]
        new = deep_copy(node)
        if kept:
            new.setdefault("spec", {})["taints"] = kept
        else:
            new.setdefault("spec", {}).pop("taints", None)
        try:
            updated = self.ctx.update(R.NODE, new)
        except StaleError:
            return None
        name = node["metadata"]["name"]
        was_cordoned = (UNSCHEDULABLE_TAINT, "NoSchedule") in have
        if was_cordoned != ((UNSCHEDULABLE_TAINT, "NoSchedule") in want):
            state = "NodeNotSchedulable" if not was_cordoned else "NodeSchedulable"
            self.ctx.event(node, reason=state, component="kubelet", host=name,
                           message=f"Node {name} status is now: {state}")
        was_ready = not any(k in (NOT_READY_TAINT, UNREACHABLE_TAINT) for k, _ in have)
        is_ready_now = ready_status(node) == "True"
        if was_ready != is_ready_now:
            # nodeutil.RecordNodeStatusChange, from the node lifecycle controller
            state = "NodeReady" if is_ready_now else "NodeNotReady"
            self.ctx.event(node, reason=state, component="node-controller",
                           message=f"Node {name} status is now: {state}")
        return updated

    def _evict(self, pods: list[dict], nodes: list[dict]) -> None:
        by_node = {n["metadata"]["name"]: n for n in nodes}
        now = self.ctx.clock.now()
        for pod in pods:
            node = by_node.get((pod.get("spec") or {}).get("nodeName") or "")
            if node is None or not is_active(pod):
                continue
            taints = [t for t in (node.get("spec") or {}).get("taints") or [] if t.get("effect") == "NoExecute"]
            if ready_status(node) == "Unknown":
                self._mark_not_ready(pod)
            delay = eviction_delay(pod, taints)
            if delay is None:
                continue
            added = [d for d in (_parse(t.get("timeAdded")) for t in taints) if d is not None]
            due = (max(added) if added else now) + timedelta(seconds=delay)
            if due > now:  # a pass runs when the toleration ends on the sim clock
                self.ctx.wake_at(self.ctx.clock.elapsed() + (due - now).total_seconds())
                continue
            self._delete(pod)

    def _mark_not_ready(self, pod: dict) -> None:
        """nodeutil.MarkPodsNotReady: the pods of an unreachable node turn Ready=False."""
        status = deep_copy(pod.get("status") or {})
        conds = status.get("conditions") or []
        if not any(c.get("type") == "Ready" and c.get("status") == "True" for c in conds):
            return
        now = now_text(self.ctx.clock)
        status["conditions"] = [dict(c, status="False", lastTransitionTime=now) if c.get("type") == "Ready" else c
                                for c in conds]
        try:
            self.ctx.update_status(R.POD, pod, status)
        except StaleError:
            return
        self.ctx.event(pod, reason="NodeNotReady", etype="Warning", component="node-controller",
                       message="Node is not ready")

    def _delete(self, pod: dict) -> None:
        """tainteviction addConditionAndDeletePod: a DisruptionTarget condition, then a delete
        (graceful: on an unreachable node the pod stays Terminating, as on a real cluster)."""
        status = deep_copy(pod.get("status") or {})
        status["conditions"] = set_condition(list(status.get("conditions") or []), "DisruptionTarget", "True",
                                             "DeletionByTaintManager", "Taint manager: deleting due to NoExecute "
                                             "taint", now=now_text(self.ctx.clock))
        try:
            self.ctx.update_status(R.POD, pod, status)
            pod = self.ctx.store.get(R.POD, pod["metadata"].get("namespace"), pod["metadata"]["name"])
        except StaleError:
            return
        if self.ctx.delete(R.POD, pod):
            meta = pod["metadata"]
            self.ctx.event(pod, reason="TaintManagerEviction", component="taint-eviction-controller",
                           message=f"Marking for deletion Pod {meta.get('namespace')}/{meta['name']}")
